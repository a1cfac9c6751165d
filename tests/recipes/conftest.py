"""Run the recipes and benchmarks in-process through their public ``main(argv)``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def script_main(monkeypatch):
    """Return a loader: ``script_main("recipes/x.py")`` is that script's ``main``.

    The script runs as a module named after its file (dataclasses look their module up in
    ``sys.modules``, removed again after the test); torch's thread count, which the scripts
    set, is restored.
    """
    import torch

    threads = torch.get_num_threads()

    def load(relative: str):
        path = ROOT / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, spec.name, module)
        spec.loader.exec_module(module)
        return module.main

    yield load
    torch.set_num_threads(threads)
