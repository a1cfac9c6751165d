"""A per-cell cache of benchmark results: one JSON file per (dataset, subject, pipeline...).

A *cell* of a benchmark is one MOABB evaluation of one pipeline on one subject (all subjects
for a cross-subject evaluation). Its result rows are stored under a key made of everything that
decides them: the dataset (name and parameters, or the instance's attributes), the paradigm,
the subject(s), the pipeline definition (its parameters, recursively), the evaluation, the seed
and the versions of bci, MOABB, pyRiemann and scikit-learn. The key is hashed (SHA-256) into
the file name and stored in full inside the file, and a file is used only when the stored key
equals the wanted one: an entry written by other versions, or a corrupted one, is ignored (and
recomputed), never mixed in. Files are written atomically (a temporary file in the same folder,
then :func:`os.replace`), so a run killed mid-write leaves either the old entry or none, and an
interrupted benchmark resumes from the cells already written.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .._logging import logger

#: Version of the file layout; bump when the content of an entry changes.
FORMAT = 1
#: Packages whose versions are part of every key.
VERSIONED = ("bci", "moabb", "pyriemann", "scikit-learn")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def default_cache_dir() -> Path:
    """Default cache folder: ``$BCI_CACHE_DIR``, else ``$XDG_CACHE_HOME/bci/benchmark``.

    ``XDG_CACHE_HOME`` defaults to ``~/.cache``. Nothing is created here.
    """
    env = os.environ.get("BCI_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "bci" / "benchmark"


def versions() -> dict[str, str]:
    """Versions of the packages that decide a result (:data:`VERSIONED`)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:  # e.g. bci run from a source tree
            import bci

            out[name] = bci.__version__ if name == "bci" else "unknown"
    return out


def describe(obj: Any, depth: int = 0) -> Any:
    """Describe ``obj`` (estimator, paradigm, dataset, value) stably, as JSON-able values.

    scikit-learn estimators are described by their class and ``get_params(deep=False)``
    (recursively), functions by their qualified name, arrays by their dtype, shape and a
    SHA-256 of their bytes, other objects by their class and attributes. Memory addresses are
    removed, so the description of equal definitions is equal from one process to the next.

    Parameters
    ----------
    obj : object
        What to describe.
    depth : int
        Recursion depth (internal; deeper than 8 levels falls back to ``repr``).

    Returns
    -------
    description : JSON-able object
    """
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else repr(obj)
    if isinstance(obj, np.generic):
        return describe(obj.item(), depth)
    if isinstance(obj, np.ndarray):
        data = np.ascontiguousarray(obj)
        return {"ndarray": str(data.dtype), "shape": list(data.shape),
                "sha256": hashlib.sha256(data.tobytes()).hexdigest()}
    if depth > 8:
        return _ADDRESS.sub("", repr(obj))
    if isinstance(obj, (list, tuple)):
        return [describe(v, depth + 1) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((describe(v, depth + 1) for v in obj), key=repr)
    if isinstance(obj, dict):
        return {str(k): describe(v, depth + 1) for k, v in sorted(obj.items(), key=lambda kv:
                                                                    str(kv[0]))}
    cls = f"{type(obj).__module__}.{type(obj).__qualname__}"
    if callable(obj) and hasattr(obj, "__qualname__") and not hasattr(obj, "get_params"):
        return {"callable": f"{getattr(obj, '__module__', '')}.{obj.__qualname__}"}
    if hasattr(obj, "get_params"):
        return {"class": cls, "params": describe(obj.get_params(deep=False), depth + 1)}
    if hasattr(obj, "__dict__"):
        attrs = {k: v for k, v in vars(obj).items() if k != "subject_list"}
        return {"class": cls, "attrs": describe(attrs, depth + 1)}
    return {"class": cls, "repr": _ADDRESS.sub("", repr(obj))}


def cell_key(**parts: Any) -> dict[str, Any]:
    """Return the full key of a cell: ``parts`` described, plus :func:`versions` and the format."""
    return {"format": FORMAT, "versions": versions(),
            **{k: describe(v) for k, v in sorted(parts.items())}}


def key_hash(key: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``key``."""
    text = json.dumps(key, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def entry_path(cache_dir: str | os.PathLike, key: dict[str, Any], dataset_code: str) -> Path:
    """File of a cell: ``<cache_dir>/<dataset code>/<hash[:2]>/<hash>.json``."""
    digest = key_hash(key)
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(dataset_code)) or "dataset"
    return Path(cache_dir) / safe / digest[:2] / f"{digest}.json"


def read_entry(path: str | os.PathLike, key: dict[str, Any]) -> list[dict] | None:
    """Rows stored in ``path`` under exactly ``key``; None when absent, corrupted or stale.

    A file that cannot be parsed, or whose stored key differs from ``key`` (other versions of
    bci/MOABB/pyRiemann/scikit-learn, another format), is logged and ignored.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        logger.warning("Ignoring the unreadable cache entry %s: %s", path, err)
        return None
    try:
        entry = json.loads(text)
        stored, rows = entry["key"], entry["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise TypeError("rows is not a list of objects")
    except (ValueError, KeyError, TypeError) as err:
        logger.warning("Ignoring the corrupted cache entry %s (%s); the cell is recomputed.",
                       path, err)
        return None
    if stored != key:
        logger.warning("Ignoring the cache entry %s: it was written for another key (versions "
                       "%s, wanted %s); the cell is recomputed.", path,
                       stored.get("versions") if isinstance(stored, dict) else None,
                       key.get("versions"))
        return None
    return rows


def write_entry(path: str | os.PathLike, key: dict[str, Any], rows: list[dict]) -> Path:
    """Write ``rows`` under ``key`` to ``path`` atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"key": key, "rows": rows}, default=_json_default)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:16]}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot store a {type(obj).__name__} in the benchmark cache")
