"""The deep-vs-Riemannian recipe in its quick configuration (synthetic data, 2 epochs)."""

from __future__ import annotations

import json


def test_quick_lr_leaves_the_registered_settings_alone(tmp_path, script_main):
    from moabb.evaluations import WithinSessionEvaluation

    from bci.pipelines.registry import DEEP_SETTINGS

    before = dict(DEEP_SETTINGS)
    assert script_main("recipes/deep_vs_riemann.py")(
        ["lr", "--quick", "--pipelines", "ShallowConvNet", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "lr.json").read_text())
    assert report["dataset"] == "SyntheticMotorImagery"
    assert report["metric"] == "ROC-AUC"
    assert report["deep_settings"]["max_epochs"] == 2
    (row,) = report["summary"].values()
    assert list(report["summary"]) == ["ShallowConvNet"]
    assert row["n"] == 5.0  # the 5 folds kept (--per-fold, the default)
    # the planted left/right effect is found even in 2 epochs
    assert 0.7 < row["score_mean"] <= 1.0
    assert 0.0 <= report["per_subject"]["ShallowConvNet"]["1"] <= 1.0
    assert (tmp_path / "lr" / "results.csv").is_file()
    # the run's epoch budget and fold setting do not outlive it
    assert DEEP_SETTINGS == before
    assert WithinSessionEvaluation._aggregate_folds is True
