"""The Neuro-GPT leave-one-subject-out recipe in a tiny configuration (synthetic SSVEP)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bci.models.decoder import network_info

PIPELINES = ["NeuroGPT-pre", "NeuroGPT-scratch", "EEGNeX", "EEGNeX-xsub-ft", "EEGNeX-xsub",
             "SSVEP_TS+LR", "SSVEP_TS+LR-modelch", "NeuroGPT-pre-noaug", "NeuroGPT-scratch-noaug"]
TESTS = ["NeuroGPT-pre - NeuroGPT-scratch", "NeuroGPT-pre - EEGNeX",
         "NeuroGPT-pre - EEGNeX-xsub-ft", "NeuroGPT-pre - SSVEP_TS+LR",
         "NeuroGPT-pre-noaug - NeuroGPT-scratch-noaug", "NeuroGPT-pre-noaug - SSVEP_TS+LR"]
TINY = ["--dataset", "SyntheticSSVEP", "--dataset-param", "n_trials=4", "--folds", "2",
        "--trials", "2", "all", "--pretrain-epochs", "1", "--max-epochs", "1",
        "--xsub-epochs", "1"]


def test_loso_runs_split_over_folders_merge_into_one_report(tmp_path, script_main, capsys):
    main = script_main("recipes/neurogpt_loso.py")
    a, b, joined = tmp_path / "a", tmp_path / "b", tmp_path / "joined"
    assert main([*TINY, "--subjects", "1", "--out", str(a)]) == 0
    assert main([*TINY, "--subjects", "2", "--out", str(b), "--arms", "NeuroGPT-pre",
                 "SSVEP_TS+LR"]) == 0
    partial = json.loads((b / "neurogpt_loso.json").read_text())
    assert sorted(partial["per_subject"]["2"]["scores"]) == ["NeuroGPT-pre", "SSVEP_TS+LR"]
    assert list(partial["summary"]) == ["NeuroGPT-pre", "SSVEP_TS+LR"]
    assert list(partial["tests"]) == ["NeuroGPT-pre - SSVEP_TS+LR"]
    first = json.loads((a / "neurogpt_loso.json").read_text())
    assert first["done_subjects"] == [1]
    assert first["pool_subjects"] == [1, 2]  # the dataset's subjects by default
    # one subject: no test
    assert np.isnan(first["tests"]["NeuroGPT-pre - EEGNeX"]["all"]["wilcoxon_p"])
    capsys.readouterr()
    # joining takes the subjects from the two folders and evaluates only subject 2's
    # missing arms
    assert main([*TINY, "--subjects", "1", "2", "--out", str(joined), "--merge", str(a),
                 str(b)]) == 0
    printed = capsys.readouterr().out
    assert "subject 1:" not in printed
    assert "subject 2:" in printed
    assert not (joined / "pretrained_s1.bci").exists()
    report = json.loads((joined / "neurogpt_loso.json").read_text())
    assert report["per_subject"]["1"] == first["per_subject"]["1"]
    assert report["per_subject"]["2"]["scores"]["NeuroGPT-pre"] == \
        partial["per_subject"]["2"]["scores"]["NeuroGPT-pre"]
    assert "EEGNeX cross-subject training" in report["per_subject"]["2"]["seconds"]
    assert report["subjects"] == report["done_subjects"] == [1, 2]
    assert list(report["scores"]) == PIPELINES
    for per_budget in report["scores"].values():
        assert sorted(per_budget) == ["2", "all"]
        assert all(sorted(s) == ["1", "2"] for s in per_budget.values())
    # each held-out subject's pretraining and cross-subject training saw only the other subject
    assert network_info(a / "pretrained_s1.bci")["sources"][0]["subjects"] == [2]
    assert network_info(b / "pretrained_s2.bci")["sources"][0]["subjects"] == [1]
    for held, other in (("1", 2), ("2", 1)):
        xsub = report["per_subject"][held]["cross_subject"]
        assert xsub["subjects"] == [other]
        # 4 classes x 4 trials x 2 runs of the other subject, none identical to the held-out's
        assert xsub["n_epochs"] == 32
        assert xsub["n_duplicates_left_out"] == 0
        assert len(report["per_subject"][held]["pretraining_losses"]) == 1
    # the planted SSVEP is found by the tangent-space pipeline (chance 0.25, 4 classes)
    assert report["summary"]["SSVEP_TS+LR"]["all"]["mean"] > 0.6
    assert report["summary"]["EEGNeX"]["2"]["n"] == 2
    assert list(report["tests"]) == TESTS
    pre = np.array([report["scores"]["NeuroGPT-pre"]["all"][s] for s in ("1", "2")])
    tsl = np.array([report["scores"]["SSVEP_TS+LR"]["all"][s] for s in ("1", "2")])
    assert report["tests"]["NeuroGPT-pre - SSVEP_TS+LR"]["all"]["difference"] == \
        pytest.approx(np.mean(pre - tsl))
    assert report["pretrained_vs_scratch"] == report["tests"][TESTS[0]]
    assert "NeuroGPT-pre - NeuroGPT-scratch (p)" in printed
    assert "NeuroGPT-pre-noaug - NeuroGPT-scratch-noaug (p)" in printed
    table = (joined / "neurogpt_loso.md").read_text().splitlines()
    assert table[0] == "| pipeline | trials/class | s1 | s2 | mean ± sd |"
    summary = report["summary"]["NeuroGPT-pre"]["all"]
    assert (f"| NeuroGPT-pre | all | {pre[0]:.3f} | {pre[1]:.3f} | {summary['mean']:.3f} ± "
            f"{summary['sd']:.3f} |") in table
    assert len(table) == 2 + len(PIPELINES) * 2 + 3 + len(TESTS)  # rows, blank, header, tests
    # merging again keeps the joined folder's complete subject 2, not b's partial one
    assert main([*TINY, "--subjects", "1", "2", "--out", str(joined), "--merge", str(a),
                 str(b)]) == 0
    assert "subject 2:" not in capsys.readouterr().out
    again = json.loads((joined / "neurogpt_loso.json").read_text())
    assert again["per_subject"] == report["per_subject"]
    # a rerun in a folder of a run with other settings is refused
    with pytest.raises(ValueError, match="other settings"):
        main([*TINY[:-1], "2", "--subjects", "1", "--out", str(a)])


MI_PIPELINES = ["NeuroGPT-pre", "NeuroGPT-scratch", "EEGNeX", "EEGNeX-xsub-ft", "EEGNeX-xsub",
                "TS+LR", "TS+LR-modelch", "NeuroGPT-pre-noaug", "NeuroGPT-scratch-noaug"]
MI_TINY = ["--dataset", "SyntheticMotorImagery", "--paradigm", "LeftRightImagery",
           "--dataset-param", "n_trials=4", "--extra-pretraining", "SyntheticSSVEP",
           "--extra-pretraining-subjects", "1", "--folds", "2", "--trials", "2", "all",
           "--pretrain-epochs", "1", "--max-epochs", "1", "--xsub-epochs", "1"]


def test_loso_motor_imagery_pretrains_on_the_other_subjects_and_an_extra_dataset(
        tmp_path, script_main):
    main = script_main("recipes/neurogpt_loso.py")
    out = tmp_path / "mi"
    assert main([*MI_TINY, "--subjects", "1", "2", "--out", str(out)]) == 0
    report = json.loads((out / "neurogpt_loso.json").read_text())
    assert report["paradigm"] == "LeftRightImagery"
    assert report["done_subjects"] == [1, 2]
    # the motor-imagery arms: TS+LR instead of SSVEP_TS+LR
    assert list(report["scores"]) == MI_PIPELINES
    assert list(report["tests"]) == [
        "NeuroGPT-pre - NeuroGPT-scratch", "NeuroGPT-pre - EEGNeX",
        "NeuroGPT-pre - EEGNeX-xsub-ft", "NeuroGPT-pre - TS+LR",
        "NeuroGPT-pre-noaug - NeuroGPT-scratch-noaug", "NeuroGPT-pre-noaug - TS+LR"]
    for held, other in (("1", 2), ("2", 1)):
        entry = report["per_subject"][held]
        # accuracy and ROC-AUC (two classes) of every arm at every budget
        for metric in (entry["scores"], entry["roc_auc"]):
            assert sorted(metric) == sorted(MI_PIPELINES)
            values = [v for per_budget in metric.values() for v in per_budget.values()]
            assert len(values) == 2 * len(MI_PIPELINES)
            assert all(0.0 <= v <= 1.0 for v in values)
        # the held-out subject is excluded from its own dataset only; the extra dataset's
        # subject pretrains for every held-out subject
        sources = network_info(out / f"pretrained_s{held}.bci")["sources"]
        assert sources == [{"name": "SyntheticMotorImagery", "subjects": [other]},
                           {"name": "SyntheticSSVEP", "subjects": [1]}]
        assert entry["pretraining_sources"] == sources
        assert set(entry["pretraining_minutes"]) == {"SyntheticMotorImagery", "SyntheticSSVEP"}
        assert entry["cross_subject"]["subjects"] == [other]
        assert entry["cross_subject"]["n_epochs"] == 16  # 2 classes x 4 trials x 2 runs
        assert entry["n_epochs"] == 16
        # the synthetic montage's channels among the model's 22
        assert entry["model_channels"] == {"C3": "C3", "Cz": "Cz", "C4": "C4"}
    # the planted ERD is found by the tangent-space pipeline (chance 0.5)
    assert report["summary"]["TS+LR"]["all"]["mean"] > 0.75
    auc = [report["per_subject"][s]["roc_auc"]["TS+LR"]["all"] for s in ("1", "2")]
    assert report["roc_auc_summary"]["TS+LR"]["all"]["mean"] == pytest.approx(np.mean(auc))
    table = (out / "neurogpt_loso.md").read_text().splitlines()
    stat = report["roc_auc_summary"]["TS+LR"]
    assert table[-len(MI_PIPELINES) - 2] == "| ROC-AUC | 2/class | all/class |"
    assert f"| TS+LR | {stat['2']['mean']:.3f} ± {stat['2']['sd']:.3f} | " \
        f"{stat['all']['mean']:.3f} ± {stat['all']['sd']:.3f} |" in table
    # arms of another paradigm are refused before anything is written
    with pytest.raises(ValueError, match="not an arm of --paradigm LeftRightImagery"):
        main([*MI_TINY, "--arms", "SSVEP_TS+LR", "--out", str(tmp_path / "wrong")])
    assert not (tmp_path / "wrong").exists()
