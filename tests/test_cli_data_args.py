"""`bci benchmark` / `bci train` data arguments: --subjects, --dataset-param."""

from __future__ import annotations

import argparse
import re

import pandas as pd
import pytest

from bci.cli import _subjects, main
from bci.models.decoder import load_decoder


def test_subject_lists_and_ranges():
    assert _subjects("1,2,5-7") == [1, 2, 5, 6, 7]
    assert _subjects(" 3 - 4 ,9") == [3, 4, 9]
    assert _subjects("2-2") == [2]


@pytest.mark.parametrize(("text", "match"), [
    ("5-2", r"the subject range '5-2' is reversed; write it low-high \(2-5\)"),
    ("0", r"subject numbers start at 1, got 0 in '0'"),
    ("0-3", r"subject numbers start at 1, got 0"),
    ("-1", r"subjects must be numbers >= 1 and ranges like '1,2,5-7', got '-1'"),
    ("1,,2", r"got an empty item in '1,,2'"),
    ("1-", r"got '1-'"),
    ("1.5", r"got '1.5'"),
    ("1,2-4,3", r"subject\(s\) \[3\] given twice"),
])
def test_bad_subjects_are_argparse_errors(text, match, capsys):
    with pytest.raises(argparse.ArgumentTypeError, match=match):
        _subjects(text)
    with pytest.raises(SystemExit) as info:
        main(["benchmark", "--subjects", text])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --subjects" in err
    assert re.search(match, err)


def test_dataset_params_reach_the_dataset(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["benchmark", "--dataset", "SyntheticMotorImagery", "--pipelines", "CSP+LDA",
                 "--dataset-param", "n_subjects=1", "--dataset-param", "n_trials=10",
                 "--dataset-param", "n_runs=1", "--out", str(out)]) == 0
    results = pd.read_csv(out / "results.csv")
    assert results.subject.tolist() == [1]  # n_subjects=1: subject 1 only
    assert results.samples.tolist() == [20]  # 1 run of 10 trials per class
    assert main(["benchmark", "--dataset-param", "n_trial=10", "--out", str(out)]) == 2
    assert ("Unknown parameter 'n_trial' of dataset SyntheticMotorImagery. Did you mean "
            "'n_trials'?") in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # refused by argparse, before any work
        main(["benchmark", "--dataset-param", "n_trials", "--out", str(out)])
    assert exit_.value.code == 2
    assert ("argument --dataset-param: KEY=VALUE parameters must look like KEY=VALUE, got "
            "'n_trials'") in capsys.readouterr().err


def test_train_ssvep_filter_bank_svm_decoder(tmp_path, capsys):
    path = tmp_path / "ssvep.bci"
    assert main(["train", "--dataset", "SyntheticSSVEP", "--paradigm", "SSVEP", "--pipeline",
                 "SSVEP_TS+SVM", "--subjects", "1", "--dataset-param", "n_runs=1",
                 "--dataset-param", "n_trials=6", "--out", str(path)]) == 0
    assert "Saved SSVEP_TS+SVM decoder" in capsys.readouterr().out
    decoder = load_decoder(path)
    assert decoder.filters == [(12.5, 13.5), (16.5, 17.5), (20.5, 21.5)]
    assert decoder.info["paradigm"] == "FilterBankSSVEP"
    assert decoder.info["n_epochs"] == 24
    assert decoder.info["calibration"]["method"] == "sigmoid"
    assert len(decoder.train_amplitude) == decoder.n_chans == 8
