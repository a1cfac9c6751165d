"""The seizure recipe end to end on synthetic segments (a small in-process configuration)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from bci.models._threads import torch_threads

RECIPE = Path(__file__).resolve().parents[3] / "recipes" / "seizure_spiking_conformer.py"


def _recipe(monkeypatch):
    spec = importlib.util.spec_from_file_location("seizure_spiking_conformer", RECIPE)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_recipe_quick_synthetic(tmp_path, capsys, monkeypatch):
    recipe = _recipe(monkeypatch)
    with torch_threads(1):
        recipe.main(["--quick", "--data", "synthetic", "--epochs", "2", "--segments-per-set", "5",
                     "--out", str(tmp_path)])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    summary = json.loads(last)
    assert summary["data"] == "synthetic" and summary["quick"] is True
    for key in ("sensitivity", "specificity", "false_alarms_per_hour", "synops_spiking",
                "synops_twin", "neuron_update_saving", "latency_s", "segment_accuracy",
                "neuron_update_saving_lif_trained_weights", "lif_trained_segment_accuracy"):
        assert key in summary, key
    for key in ("sensitivity", "specificity", "segment_accuracy", "twin_segment_accuracy"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert summary["false_alarms_per_hour"] >= 0
    assert 0.0 <= summary["neuron_update_saving"] < 1.0
    # spiking model: accumulates after the input layer; the twin only multiply-accumulates
    assert summary["effective_acs_spiking"] > 0
    assert summary["synops_twin"] > summary["effective_macs_spiking"]
    for name in ("metrics.json", "stream_probability.png", "training.png"):
        assert (tmp_path / name).stat().st_size > 0
    full = json.loads((tmp_path / "metrics.json").read_text())
    assert set(full["results"]) == {"spiking", "spiking_lif", "twin", "spiking@lif",
                                    "spiking_lif@approx"}
    assert not set(full["split"]["train"]) & set(full["split"]["test"])
