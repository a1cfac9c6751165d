"""Package-level contracts: cheap import, layering, CLI entry point."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bci

PACKAGE = Path(bci.__file__).parent
# data flows down this list, never back up (STYLE.md)
LAYERS = ["data", "features", "models", "evaluation", "realtime", "hw"]
ALLOWED = {  # subpackage -> bci subpackages it may import
    "data": set(),
    # features and models are one layer (STYLE.md): the registered deep pipelines build a
    # bci.models.classifier.DeepClassifier through a lazy import in their build function
    "features": {"data", "models"},
    "models": {"data", "features"},
    "evaluation": {"data", "features", "models"},
    "realtime": {"data", "features", "models"},
    "hw": {"data", "features", "models", "realtime"},
}


def test_import_is_cheap():
    code = ("import sys, bci; heavy = [m for m in ('torch', 'moabb', 'pylsl', 'mne', 'sklearn', "
            "'lightning', 'pyriemann') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == ""


def _bci_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    subpackage = path.relative_to(PACKAGE).parts[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and node.module.startswith("bci."):
                found.add(node.module.split(".")[1])
            elif node.level == 2 and node.module:  # from ..x import y
                found.add(node.module.split(".")[0])
            elif node.level == 1 and node.module is None:
                continue
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("bci.")}
    return {f for f in found if f in LAYERS and f != subpackage}


@pytest.mark.parametrize("layer", LAYERS)
def test_layering(layer):
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        bad = _bci_imports(path) - ALLOWED[layer]
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad} (upstream of {layer})"


def test_lazy_attributes():
    assert callable(bci.benchmark) and callable(bci.get_pipeline) and callable(bci.load_decoder)
    with pytest.raises(AttributeError, match="nope"):
        bci.nope  # noqa: B018


def test_set_log_level():
    bci.set_log_level("debug")
    import logging

    assert logging.getLogger("bci").level == logging.DEBUG
    bci.set_log_level("WARNING")
    with pytest.raises(ValueError, match="level must be one of"):
        bci.set_log_level("loud")
