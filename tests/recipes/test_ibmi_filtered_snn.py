"""The intracortical BMI recipe in its smallest configuration (2 folds, 1 epoch)."""

from __future__ import annotations

import json
import os

import pytest

RECIPE = "recipes/ibmi_filtered_snn.py"
DECODERS = ["SNNStreaming", "SNN3D", "ANNDecoder", "GRUDecoder", "LinearDecoder", "DelaySNN",
            "DelaySNN-128", "DelaySNN-128-pruned", "DelaySNN-128-pruned-50"]
VARIANTS = ["raw", "causal", "block_low_latency", "block_high_accuracy",
            "high_accuracy_per_output"]
REACHING = os.environ.get("MNE_DATASETS_REACHING_PATH")  # set by tests/conftest.py


def _check(summary: dict, out) -> None:
    assert json.loads((out / "metrics.json").read_text()) == summary
    assert list(summary["r2"]) == DECODERS
    for name in DECODERS:
        assert list(summary["r2"][name]) == VARIANTS
        assert all(v <= 1.0 for v in summary["r2"][name].values())
        assert summary["val_r2"][name] <= 1.0  # recorded for every fold (to choose by)
        assert (out / f"{name}.bci").exists()  # every first-fold network, DelaySNN too
        # one record per fold, and the operations are the mean of the folds'
        assert summary["folds_done"][name] == list(range(1, summary["folds"] + 1))
        assert [json.loads((out / "folds" / f"{name}_fold{k}.json").read_text())["scores"]
                ["raw"] for k in summary["folds_done"][name]] == pytest.approx(
                    summary["r2_by_fold"][name]["raw"], abs=1e-4)
        assert summary["synaptic_operations"][name] == pytest.approx(
            sum(summary["synaptic_operations_by_fold"][name]) / summary["folds"], abs=0.2)
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
    from bci.models.decoder import load_network
    from bci.models.spiking.delays import DelaySNN

    assert type(load_network(tmp_path / "DelaySNN.bci")) is DelaySNN


def test_only_folds_then_resume_merges_the_folds(tmp_path, monkeypatch, script_main):
    """A run cut short is finished with --resume: folds already written are not retrained."""
    monkeypatch.setenv("MNE_DATASETS_REACHING_PATH", str(tmp_path / "no_reaching_here"))
    main = script_main(RECIPE)
    common = ["--quick", "--epochs", "1", "--folds", "3", "--decoders", "LinearDecoder",
              "DelaySNN", "--out", str(tmp_path)]
    part = main([*common, "--only-folds", "2"])
    assert part["folds_done"] == {"LinearDecoder": [2], "DelaySNN": [2]}
    assert sorted(p.name for p in (tmp_path / "folds").iterdir()) == \
        ["DelaySNN_fold2.json", "LinearDecoder_fold2.json"]
    written = (tmp_path / "folds" / "DelaySNN_fold2.json").read_text()
    full = main([*common, "--resume"])
    assert full["folds_done"] == {"LinearDecoder": [1, 2, 3], "DelaySNN": [1, 2, 3]}
    # fold 2 was read back, not retrained: its file and scores are those of the first run
    assert (tmp_path / "folds" / "DelaySNN_fold2.json").read_text() == written
    for name in ("LinearDecoder", "DelaySNN"):
        assert full["r2_by_fold"][name]["raw"][1] == part["r2_by_fold"][name]["raw"][0]
    # the same splits as a run of all folds at once: ridge regression is deterministic
    fresh = main([*common[:-1], str(tmp_path / "fresh")])
    assert fresh["r2_by_fold"]["LinearDecoder"] == full["r2_by_fold"]["LinearDecoder"]
    # records of other settings are not reused
    other = main([*common, "--resume", "--epochs", "2", "--only-folds", "2",
                  "--decoders", "LinearDecoder"])
    assert other["folds_done"] == {"LinearDecoder": [2]}
    assert json.loads((tmp_path / "folds" / "LinearDecoder_fold2.json").read_text())[
        "epochs"] == 2


def test_bad_fold_selection(tmp_path, script_main):
    main = script_main(RECIPE)
    with pytest.raises(SystemExit):
        main(["--quick", "--only-folds", "3", "--out", str(tmp_path)])  # --quick: 2 folds


def test_operations_are_counted_on_real_bins_only():
    """Zero padding after a trial's end is not averaged in (it would flatter the SNNs)."""
    import importlib.util
    import sys
    from pathlib import Path

    import torch

    from bci.data.reaching import make_reaching
    from bci.models.spiking.cost import count_operations
    from bci.models.spiking.ibmi import GRUDecoder

    path = Path(__file__).resolve().parents[2] / RECIPE
    spec = importlib.util.spec_from_file_location("ibmi_recipe_ops", path)
    recipe = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = recipe
    try:
        spec.loader.exec_module(recipe)
    finally:
        del sys.modules[spec.name]
    data = make_reaching(3, 5, sfreq=20.0, random_state=0)
    torch.manual_seed(0)
    model = GRUDecoder(5, 2, sfreq=20.0, n_hidden=4).eval()
    counts = recipe.count_on_trials(model, data)
    bins = [s.shape[1] for s in data.spikes]
    assert counts.n_predictions == sum(bins)
    each = [count_operations(model, torch.as_tensor(s[None], dtype=torch.float32))
            for s in data.spikes]
    truth = sum(c.synaptic_operations * n for c, n in zip(each, bins, strict=True)) / sum(bins)
    assert counts.synaptic_operations == pytest.approx(truth, rel=1e-12)
    # dense operations per bin are a fixed number per prediction: the weighted mean keeps it
    assert counts.dense_ops == pytest.approx(each[0].dense_ops, rel=1e-12)
    # equal weights: the plain mean
    mean = recipe.combine_counts(each, [1.0, 1.0, 1.0])
    assert mean.effective_macs == pytest.approx(sum(c.effective_macs for c in each) / 3)


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
