"""The pseudo-online recipe in its quick configuration (synthetic data, MDM, 0.5-s steps)."""

from __future__ import annotations

import json

import pytest


def test_quick_pseudo_online_recipe(tmp_path, script_main, capsys):
    assert script_main("recipes/pseudo_online.py")(["lr", "--quick", "--out",
                                                    str(tmp_path)]) == 0
    report = json.loads((tmp_path / "lr.json").read_text())
    assert report["dataset"] == "SyntheticMotorImagery"
    assert report["quick"] is True
    assert report["n_consecutive"] == 1
    (name, row), = report["summary"].items()
    assert name == "MDM"
    # 20 trials, each tested once over the 5 folds; the planted ERD decodes far above chance
    assert row["n_trials"] == 20
    assert row["online_accuracy"] >= 0.75
    assert 0.0 <= row["median_decision_s"] <= 4.0
    assert row["itr_bits_min"] >= 0.0
    assert report["per_subject_online_accuracy"]["MDM"]["1"] == row["online_accuracy"]
    for fname in ("results.csv", "trials.csv", "curves.csv", "accuracy_vs_time.png"):
        assert (tmp_path / "lr" / fname).is_file()
    out = capsys.readouterr().out
    assert "online@dl" in out
    assert "MDM" in out


@pytest.mark.parametrize(("flag", "pipelines"), [("--extra", ["MDM", "EEGNet"]),
                                                ("--only-extra", ["EEGNet"])])
def test_quick_pseudo_online_recipe_with_extra_pipelines(tmp_path, script_main, flag, pipelines):
    """``--extra`` adds the network (quick: EEGNet, 1 epoch); ``--only-extra`` runs it alone.

    ``--only-extra`` is the README's command for the network rows.
    """
    assert script_main("recipes/pseudo_online.py")(["lr", "--quick", flag, "--out",
                                                    str(tmp_path)]) == 0
    report = json.loads((tmp_path / "lr.json").read_text())
    assert report["pipelines"] == pipelines
    assert report["network_max_epochs"] == 1
    assert list(report["summary"]) == pipelines
    for row in report["summary"].values():
        assert row["n_trials"] == 20  # every trial tested once over the 5 folds
        assert 0.0 <= row["online_accuracy"] <= 1.0
    assert set(report["fit_s_per_fold"]) == set(pipelines)
    assert all(v > 0 for v in report["fit_s_per_fold"].values())
