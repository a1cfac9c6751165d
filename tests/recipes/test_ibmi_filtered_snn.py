"""The intracortical BMI recipe in its smallest configuration (2 folds, 1 epoch)."""

from __future__ import annotations

import json
import os

import pytest

RECIPE = "recipes/ibmi_filtered_snn.py"
SAVED = ["SNNStreaming", "SNN3D", "ANNDecoder", "GRUDecoder", "LinearDecoder"]
DECODERS = [*SAVED, "DelaySNN", "DelaySNN-128", "DelaySNN-128-pruned",
            "DelaySNN-128-pruned-50"]
VARIANTS = ["raw", "causal", "block_low_latency", "block_high_accuracy",
            "high_accuracy_per_output"]
REACHING = os.environ.get("MNE_DATASETS_REACHING_PATH")  # set by tests/conftest.py


def _check(summary: dict, out) -> None:
    assert json.loads((out / "metrics.json").read_text()) == summary
    assert list(summary["r2"]) == DECODERS
    for name in DECODERS:
        assert list(summary["r2"][name]) == VARIANTS
        assert all(v <= 1.0 for v in summary["r2"][name].values())
        assert (out / f"{name}.bci").exists() == (name in SAVED)
        assert (out / f"velocity_{name}.png").stat().st_size > 0
        # x and y each get their own cutoff, from the recipe's grid
        assert len(summary["cutoff_hz"][name]["high_accuracy_per_output"]) == 2
    assert (out / "pareto.png").stat().st_size > 0
    # the Pareto front: no decoder is both cheaper and better than one on it
    r2 = {n: summary["r2"][n]["high_accuracy_per_output"] for n in DECODERS}
    ops = summary["synaptic_operations"]
    front = summary["pareto"]
    assert front == sorted(front, key=ops.get)
    for name in DECODERS:
        dominated = any(ops[m] <= ops[name] and r2[m] >= r2[name]
                        and (ops[m], r2[m]) != (ops[name], r2[name]) for m in DECODERS)
        assert (name in front) == (not dominated), name
    # one weight per synapse: the delays add no operations beyond the streaming topology's
    assert summary["dense_ops"]["DelaySNN"] == summary["dense_ops"]["SNNStreaming"]
    # ridge regression needs no epochs: it decodes the velocity from the first fold on
    assert summary["r2"]["LinearDecoder"]["raw"] > 0.3
    # block filters wait for their blocks: the high-accuracy one (8 bins of 50 ms) longest
    assert summary["filter_latency_s"]["causal"]["buffering_max"] == 0.0
    assert summary["filter_latency_s"]["block_high_accuracy"]["buffering_max"] == \
        pytest.approx(7 * 0.05)
    assert summary["effective_acs"]["SNNStreaming"] > 0


def test_auto_falls_back_to_simulated(tmp_path, capsys, monkeypatch, script_main):
    monkeypatch.setenv("MNE_DATASETS_REACHING_PATH", str(tmp_path / "no_reaching_here"))
    summary = script_main(RECIPE)(["--quick", "--epochs", "1", "--out", str(tmp_path)])
    assert "Falling back to SIMULATED reaches" in capsys.readouterr().out
    assert summary["data"] == "simulated"
    assert summary["folds"] == 2
    _check(summary, tmp_path)


def test_decoder_subset(tmp_path, monkeypatch, script_main):
    monkeypatch.setenv("MNE_DATASETS_REACHING_PATH", str(tmp_path / "no_reaching_here"))
    summary = script_main(RECIPE)(["--quick", "--epochs", "1", "--folds", "2", "--decoders",
                                   "DelaySNN", "LinearDecoder", "--out", str(tmp_path)])
    assert list(summary["r2"]) == ["DelaySNN", "LinearDecoder"]
    assert set(summary["pareto"]) <= {"DelaySNN", "LinearDecoder"}
    assert not (tmp_path / "DelaySNN.bci").exists()


@pytest.mark.slow  # 286 real trials: about 30 s on 2 cores
@pytest.mark.real_data
@pytest.mark.skipif(not (REACHING and os.path.isdir(REACHING)),
                    reason="reaching data are not staged (MNE_DATASETS_REACHING_PATH)")
def test_real_data_found_through_the_environment(tmp_path, script_main):
    summary = script_main(RECIPE)(["--quick", "--data", "real", "--epochs", "1", "--out",
                                   str(tmp_path)])
    assert summary["data"] == "real"
    assert summary["memory_bytes"]["LinearDecoder"]["params"] > 0
    _check(summary, tmp_path)
