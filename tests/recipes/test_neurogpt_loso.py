"""The Neuro-GPT leave-one-subject-out recipe in a tiny configuration (synthetic SSVEP)."""

from __future__ import annotations

import json

from bci.models.decoder import network_info


def test_tiny_loso_run_pretrains_without_the_held_out_subject(tmp_path, script_main, capsys):
    argv = ["--dataset", "SyntheticSSVEP", "--dataset-param", "n_trials=4", "--subjects", "1",
            "2", "--folds", "2", "--trials", "2", "all", "--pretrain-epochs", "1",
            "--max-epochs", "1", "--out", str(tmp_path)]
    assert script_main("recipes/neurogpt_loso.py")(argv) == 0
    report = json.loads((tmp_path / "neurogpt_loso.json").read_text())
    assert report["subjects"] == [1, 2]
    assert list(report["scores"]) == ["NeuroGPT-pre", "NeuroGPT-scratch", "EEGNeX",
                                      "SSVEP_TS+LR"]
    for per_budget in report["scores"].values():
        assert sorted(per_budget) == ["2", "all"]
        assert all(sorted(s) == ["1", "2"] for s in per_budget.values())
    # each held-out subject's pretraining saw only the other subject
    assert network_info(tmp_path / "pretrained_s1.bci")["sources"][0]["subjects"] == [2]
    assert network_info(tmp_path / "pretrained_s2.bci")["sources"][0]["subjects"] == [1]
    # the planted SSVEP is found by the tangent-space pipeline (chance 0.25, 4 classes)
    assert report["summary"]["SSVEP_TS+LR"]["all"]["mean"] > 0.6
    assert report["summary"]["EEGNeX"]["2"]["n"] == 2
    printed = capsys.readouterr().out
    assert "pre - scratch (p)" in printed
    assert "SSVEP_TS+LR" in printed
