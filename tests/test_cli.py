"""The `bci` command line."""

from __future__ import annotations

import pandas as pd

from bci.cli import main
from bci.models.decoder import load_decoder


def test_pipelines_and_datasets(capsys):
    assert main(["pipelines"]) == 0
    assert "ACM+TS+SVM" in capsys.readouterr().out
    assert main(["datasets"]) == 0
    assert "PhysionetMI" in capsys.readouterr().out.split()


def test_benchmark_writes_table_csv_and_plot(tmp_path, capsys):
    out = tmp_path / "bench"
    code = main(["benchmark", "--dataset", "SyntheticMotorImagery", "--pipelines", "TS+LR,MDM",
                 "--subjects", "1", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "TS+LR" in printed
    assert "±" in printed
    assert "fit time" in printed
    results = pd.read_csv(out / "results.csv")
    assert set(results.pipeline) == {"TS+LR", "MDM"}
    assert (results.score > 0.9).all()
    assert (out / "scores.png").is_file()


def test_train_writes_a_loadable_decoder(tmp_path, capsys):
    path = tmp_path / "dec.bci"
    assert main(["train", "--dataset", "SyntheticMotorImagery", "--pipeline", "MDM",
                 "--subjects", "1-2", "--out", str(path)]) == 0
    assert "Saved MDM decoder" in capsys.readouterr().out
    decoder = load_decoder(path)
    assert decoder.info["subjects"] == [1, 2]
    assert decoder.info["pipeline"] == "MDM"


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["benchmark", "--pipelines", "TS+SVN", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "Unknown pipeline 'TS+SVN'. Did you mean 'TS+SVM'" in err
    assert main(["train", "--dataset", "SyntheticMotorImagery", "--pipeline", "MDM",
                 "--subjects", "99", "--out", str(tmp_path / "x.bci")]) == 2
    assert "Subject(s) [99] not in SyntheticMotorImagery" in capsys.readouterr().err
