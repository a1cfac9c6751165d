"""The `bci` command line."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from bci import cli
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


def test_unwritable_benchmark_out_fails_before_the_evaluation(tmp_path, monkeypatch, capsys):
    import bci.evaluation.benchmarks as benchmarks

    def never(*args, **kwargs):
        raise AssertionError("the evaluation ran before --out was checked")

    monkeypatch.setattr(benchmarks, "_run_moabb", never)
    (tmp_path / "a_file").write_text("")
    out = tmp_path / "a_file" / "bench"
    assert main(["benchmark", "--pipelines", "MDM", "--subjects", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"bci benchmark: error: Cannot write to the --out folder {str(out)!r}: Not a " \
           "directory" in err


def test_old_flag_spellings_are_hidden_aliases(capsys):
    from bci.cli import _build_parser

    parser = _build_parser()
    new = parser.parse_args(["stream", "--source", "x", "--window-s", "0.5", "--step-s", "0.2",
                             "--timeout-s", "3", "--min-interval-s", "2",
                             "--duration-s", "60"])
    old = parser.parse_args(["stream", "--source", "x", "--window", "0.5", "--step", "0.2",
                             "--timeout", "3", "--min-interval", "2", "--duration", "60"])
    assert vars(new) == vars(old)
    assert (new.window_s, new.step_s, new.timeout_s, new.min_interval_s, new.duration_s) == (
        0.5, 0.2, 3.0, 2.0, 60.0)
    unlimited = parser.parse_args(["stream", "--source", "x", "--max-per-minute", "none",
                                   "--max-per-session", "None", "--min-interval-s", "0"])
    assert (unlimited.max_per_minute, unlimited.max_per_session, unlimited.min_interval_s) == (
        None, None, 0.0)
    defaults = parser.parse_args(["stream", "--source", "x"])
    assert (defaults.window_s, defaults.step_s, defaults.timeout_s, defaults.min_interval_s,
            defaults.duration_s) == (None, 0.1, 10.0, 1.0, None)
    play_new = parser.parse_args(["play", "f.fif", "--name", "n", "--duration-s", "5",
                                  "--wait-s", "2"])
    play_old = parser.parse_args(["play", "f.fif", "--name", "n", "--duration", "5",
                                  "--wait", "2"])
    assert vars(play_new) == vars(play_old)
    export = parser.parse_args(["export", "m.bci", "--out", "m.nir", "--dt", "1e-4"])
    assert export.dt_s == 1e-4
    with pytest.raises(SystemExit):
        parser.parse_args(["stream", "--help"])
    shown = capsys.readouterr().out
    assert "--window-s" in shown
    assert "--window " not in shown  # the old spellings are hidden
    assert "--min-interval " not in shown


@pytest.mark.parametrize(("args", "message"), [
    (["--paradigm-param", "n_classes"], r"must look like KEY=VALUE, got 'n_classes'"),
    (["--paradigm-param", "=4"], r"must look like KEY=VALUE, got '=4'"),
    (["--paradigm-param", "n_classes=2", "--paradigm-param", "n_classes=3"],
     r"argument --paradigm-param: 'n_classes' is given twice"),
    (["--n-jobs", "0"], r"argument --n-jobs: the value must be an int >= 1, got 0"),
])
def test_key_value_and_count_errors_go_through_argparse(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: bci benchmark")
    assert re.search(message, err), err


@pytest.mark.parametrize(("flag", "value"), [("--lr", "nan"), ("--lr", "-1"),
                                             ("--max-epochs", "0"), ("--val-fraction", "1.5"),
                                             ("--batch-size", "-4")])
def test_train_numbers_checked_by_argparse(flag, value, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--dataset", "X", "--model", "EEGNet", "--out", "x.bci",
              f"{flag}={value}"])
    assert exc.value.code == 2
    assert f"argument {flag}: the value must be" in capsys.readouterr().err


def test_help_defaults_come_from_the_registries(monkeypatch, capsys):
    from bci.cli import _build_parser
    from bci.models.registry import MODELS
    from bci.pipelines.registry import DEEP_SETTINGS

    monkeypatch.setitem(DEEP_SETTINGS, "max_epochs", 77)
    monkeypatch.setitem(DEEP_SETTINGS, "lr", 0.0042)
    with pytest.raises(SystemExit):
        _build_parser().parse_args(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "training epochs (default 77)" in shown
    assert "AdamW learning rate (default 0.0042)" in shown
    assert f"deep decoder to train: {', '.join(MODELS)}" in shown


def test_console_command_freezes_the_collector_then_exits_with_main_status(monkeypatch):
    calls = []
    monkeypatch.setattr(cli, "main", lambda: calls.append("main") or 2)
    monkeypatch.setattr(cli.gc, "freeze", lambda: calls.append("freeze"))
    with pytest.raises(SystemExit) as exit_info:
        cli.run()
    assert exit_info.value.code == 2
    assert calls == ["main", "freeze"]
