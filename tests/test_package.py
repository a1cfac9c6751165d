"""Package-level contracts: cheap import, layering, CLI entry point."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bci

PACKAGE = Path(bci.__file__).parent
# data flows down this list, never back up (STYLE.md): a layer imports only layers before it
LAYERS = ["data", "features", "models", "pipelines", "evaluation", "realtime", "hw"]


def test_import_is_cheap():
    code = ("import sys, bci; heavy = [m for m in ('torch', 'moabb', 'pylsl', 'mne', 'sklearn', "
            "'lightning', 'pyriemann') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""


def _module_name(path: Path) -> list[str]:
    parts = ["bci", *path.relative_to(PACKAGE).with_suffix("").parts]
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports, relative imports of any depth resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = (node.module or "").split(".")
            else:
                assert node.level <= len(package), f"{path}: import beyond the top package"
                base = package[: len(package) - node.level + 1] + (
                    node.module.split(".") if node.module else [])
            # "from .. import x" may import a subpackage x: count it as one
            found |= {".".join([*base, alias.name]) for alias in node.names}
            found.add(".".join(base))
    return found


def _bci_layers(path: Path) -> set[str]:
    """Return the ``bci`` layers ``path`` imports (its own excluded)."""
    own = path.relative_to(PACKAGE).parts[0]
    layers = {name.split(".")[1] for name in _imported_modules(path)
              if name.startswith("bci.") and len(name.split(".")) > 1}
    return {layer for layer in layers if layer in LAYERS and layer != own}


def test_layering_resolves_relative_imports():
    # the resolver itself: a file two packages deep importing three levels up
    assert _module_name(PACKAGE / "models" / "spiking" / "ibmi.py") == [
        "bci", "models", "spiking", "ibmi"]
    names = _imported_modules(PACKAGE / "models" / "spiking" / "ibmi.py")
    assert "bci.data.reaching" in names
    assert "bci.models.base" in names


@pytest.mark.parametrize("layer", LAYERS)
def test_layering(layer):
    allowed = set(LAYERS[: LAYERS.index(layer)])
    paths = sorted((PACKAGE / layer).rglob("*.py"))
    assert paths
    for path in paths:
        bad = _bci_layers(path) - allowed
        where = path.relative_to(PACKAGE)
        assert not bad, f"{where} imports {sorted(bad)} (not upstream of {layer})"


def test_every_subpackage_is_a_layer():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages == set(LAYERS)


def test_lazy_attributes():
    assert callable(bci.benchmark)
    assert callable(bci.get_pipeline)
    assert callable(bci.load_decoder)
    with pytest.raises(AttributeError, match="nope"):
        bci.nope  # noqa: B018


def test_set_log_level():
    bci.set_log_level("debug")
    import logging

    assert logging.getLogger("bci").level == logging.DEBUG
    bci.set_log_level("WARNING")
    with pytest.raises(ValueError, match="level must be one of"):
        bci.set_log_level("loud")


def test_log_messages_follow_the_current_stderr(capsys, monkeypatch):
    """The handler writes to sys.stderr as it is now, not as it was at set_log_level."""
    import io
    import logging

    log = logging.getLogger("bci")
    for handler in [h for h in log.handlers if not isinstance(h, logging.NullHandler)]:
        monkeypatch.setattr(log, "handlers", [h for h in log.handlers if h is not handler])
    old = io.StringIO()
    with monkeypatch.context() as m:  # the stderr of an earlier CLI call or test
        m.setattr("sys.stderr", old)
        bci.set_log_level("WARNING")
    old.close()
    logging.getLogger("bci.test").warning("after the swap")
    err = capsys.readouterr().err
    assert "after the swap" in err
    assert "Logging error" not in err
