"""`bci play`, `bci stream`, `bci session-report` end to end on loopback LSL (short)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest

from bci.cli import main

from ..conftest import requires_kalunga
from ._helpers import playing

pytest.importorskip("pylsl")


def test_play_stream_report(tmp_path, mi_decoder, mi_recording, capsys):
    fif = tmp_path / "mi_raw.fif"
    mi_recording.save(fif, verbose=False)
    decoder_file = mi_decoder.save(tmp_path / "mi.bci")
    name = f"bci-cli-{os.getpid()}"
    with playing(fif, name, "--duration-s", "30"):
        record = tmp_path / "session"
        code = main(["stream", "--source", name, "--decoder", str(decoder_file),
                     "--policy", "threshold:target=left_hand,on=0.5,off=0.5,refractory_s=0.2",
                     "--stimulator", "none", "--record", str(record), "--duration-s", "3.5",
                     "--step-s", "0.1", "--min-interval-s", "0.5", "--timeout-s", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads((record / "summary.json").read_text())
    assert summary["samples_lost"] == 0
    assert summary["gaps"] == 0
    # 3.5 s of session at 0.1 s steps (plus what queued while the decoder loaded, up to a
    # 2 s window before): at most 36 decisions
    assert 5 <= summary["decisions"] <= 36
    assert summary["stimuli_fired"] >= 1  # on >= 0.5 fires on one of the two classes ...
    assert summary["stimuli_suppressed"] >= 0
    assert summary["latency_ms"]["end_to_end"]["p99"] < 1000
    assert "Stopped: duration reached" in out
    assert main(["session-report", str(record)]) == 0
    assert (record / "report.html").is_file()
    assert (record / "latency.png").is_file()
    # a second session into the same folder is refused, not overwritten
    assert main(["stream", "--source", name, "--record", str(record), "--timeout-s", "0.2",
                 "--window-s", "1"]) == 2
    assert "error" in capsys.readouterr().err


# ---------------------------------------------------------------------- checked at parse time
STREAM = ["stream", "--source", "nowhere"]


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--min-interval-s", "nan", r"must be a finite number >= 0 \(s\), got nan"),
    ("--min-interval", "nan", r"must be a finite number >= 0 \(s\), got nan"),  # old spelling
    ("--min-interval-s", "-1", r"must be a finite number >= 0 \(s\), got -1.0"),
    ("--step-s", "nan", r"must be a finite number > 0 \(s\), got nan"),
    ("--step", "inf", r"must be a finite number > 0 \(s\), got inf"),
    ("--step-s", "0", r"must be a finite number > 0 \(s\), got 0.0"),
    ("--duration-s", "0", r"must be a finite number > 0 \(s\), got 0.0"),
    ("--duration", "-5", r"must be a finite number > 0 \(s\), got -5.0"),
    ("--window-s", "nan", r"must be a finite number > 0 \(s\), got nan"),
    ("--timeout-s", "-inf", r"must be a finite number > 0 \(s\), got -inf"),
    ("--notch", "nan", r"must be a finite number > 0 \(Hz\), got nan"),
    ("--max-per-minute", "-1", r"must be an int >= 0 \(stimuli\), got -1"),
    ("--max-per-session", "1.5", r"expected a whole number, got '1.5'"),
    ("--policy", "threshold:target=a,on=1.5", r"on must be a probability in \[0, 1\], got 1.5"),
    ("--policy", "threshold:on=0.5", r"needs target=<class name>"),
    ("--policy", "oscillation:channel=C3,refractory_s=-1", r"refractory_s must be a finite"),
    ("--stimulator", "lsl:x,wait_for_consumers_s=-1", r"wait_for_consumers_s must be a finite"),
    ("--stimulator", "audio:freq=nan", r"freq must be a finite number > 0 \(Hz\), got nan"),
    ("--policy", "threshold:target=a,on=nan", r"on must be a probability in \[0, 1\], got nan"),
    ("--stimulator", "serial", r"needs a port"),
    ("--stimulator", "none:x=1", r"takes no parameters"),
])
def test_stream_arguments_are_checked_by_argparse(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*STREAM, f"{flag}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: bci stream")
    assert re.search(rf"error: argument {flag}[^:]*: .*{message}", err), err


@pytest.mark.parametrize(("args", "message"), [
    (["--duration-s", "nan"], r"argument --duration-s[^:]*: .*got nan"),
    (["--duration", "0"], r"argument --duration[^:]*: .*got 0.0"),
    (["--wait-s", "-1"], r"argument --wait-s[^:]*: .*>= 0 \(s\), got -1.0"),
])
def test_play_arguments_are_checked_by_argparse(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["play", "x.fif", "--name", "x", *args])
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_unwritable_record_folder_fails_before_any_work(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    start = time.monotonic()
    # the source does not exist: looking for it would take --timeout-s (10 s) first
    assert main([*STREAM, "--record", str(tmp_path / "a_file" / "s"), "--timeout-s", "10"]) == 2
    assert time.monotonic() - start < 5.0
    err = capsys.readouterr().err
    assert "bci stream: error: Cannot write to the session folder" in err
    assert "Not a directory" in err


@requires_kalunga
def test_kalunga_class_names_and_every_lsl_marker(tmp_path, capsys):
    """Kalunga2016's classes '13', '17', '21', 'rest' as names, markers counted as received."""
    from moabb.datasets import Kalunga2016

    from bci.realtime.recording import read_events

    from .test_marker_delivery import Consumer

    decoder = tmp_path / "kalunga_s1.bci"
    assert main(["train", "--dataset", "Kalunga2016", "--paradigm", "SSVEP", "--pipeline",
                 "SSVEP_TS+LR", "--subjects", "1", "--out", str(decoder)]) == 0
    assert "classes ['13', '17', '21', 'rest']" in capsys.readouterr().out
    raw = Kalunga2016().get_data([1])[1]["0"]["0"].crop(0.0, 60.0)
    fif = tmp_path / "kalunga_s1_raw.fif"
    raw.save(fif, verbose=False)
    name = f"bci-kalunga-{os.getpid()}"
    with playing(fif, name, "--duration-s", "60"):
        # target=-1 used to mean the last class: refused before the session, with the classes
        refused = tmp_path / "refused"
        assert main(["stream", "--source", name, "--decoder", str(decoder), "--policy",
                     "threshold:target=-1", "--stimulator", "none", "--record", str(refused),
                     "--timeout-s", "20"]) == 2
        err = capsys.readouterr().err
        assert ("The target class '-1' is not one of the decoder classes ['13', '17', '21', "
                "'rest']") in err
        assert not (refused / "signal.f32").exists()
        # target=13 used to raise IndexError mid-session (no summary, empty events.jsonl)
        stim_name = f"{name}-stim"
        consumer = Consumer(stim_name)
        session = tmp_path / "session"
        code = main(["stream", "--source", name, "--decoder", str(decoder), "--policy",
                     "threshold:target=13,on=0.06,off=0.06,refractory_s=0", "--stimulator",
                     f"lsl:{stim_name},wait_for_consumers_s=20", "--record", str(session),
                     "--duration-s", "5", "--step-s", "0.1", "--min-interval-s", "0.2",
                     "--timeout-s", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads((session / "summary.json").read_text())
    received = consumer.wait_for(summary["stimuli_fired"])
    consumer.stop()
    assert summary["stopped_reason"] == "duration reached"
    assert summary["faults"] == {}
    assert summary["decisions"] >= 10
    assert summary["stimuli_fired"] >= 1
    assert len(received) == summary["stimuli_fired"] == summary["markers_sent_with_consumer"]
    assert summary["stimulator"]["has_consumers_at_start"] is True
    events = read_events(session)
    stims = [e for e in events if e["kind"] == "stim"]
    assert len(stims) == summary["stimuli_fired"]
    assert all(e["reason"].startswith("p(13)=") and e["consumer"] is True for e in stims)
    decisions = [e for e in events if e["kind"] == "decision"]
    assert len(decisions) == summary["decisions"]
    assert {d["description"] for d in decisions} <= {"13", "17", "21", "rest"}


def test_full_disk_through_the_cli_stops_cleanly(tmp_path, capsys):
    import mne
    import numpy as np

    from bci.realtime.recording import read_signal

    from .test_recording import _check_whole

    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=640k", "tmpfs", str(disk)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        n_chans, sfreq = 32, 1000.0
        data = np.random.default_rng(0).standard_normal((n_chans, 20000)) * 1e-5
        data[0] = np.arange(20000)
        info = mne.create_info([f"C{i}" for i in range(n_chans)], sfreq,
                               ["misc"] + ["eeg"] * (n_chans - 1))
        fif = tmp_path / "dense_raw.fif"
        mne.io.RawArray(data, info, verbose=False).save(fif, verbose=False)
        name = f"bci-full-{os.getpid()}"
        with playing(fif, name, "--duration-s", "30", "--picks", "all"):
            code = main(["stream", "--source", name, "--record", str(disk / "s"),
                         "--window-s", "0.5", "--stimulator", "none", "--duration-s", "20",
                         "--timeout-s", "20"])
        captured = capsys.readouterr()
        assert code == 1, captured.out  # main returned: a message and a status, no traceback
        assert "Stopped: recording failed: Recording to" in captured.out
        assert "No space left on device" in captured.out
        summary = json.loads((disk / "s" / "summary.json").read_text())
        n, _ = _check_whole(disk / "s", n_chans)
        assert n == summary["recording"]["samples_recorded"] > 0
        sig, _, _ = read_signal(disk / "s")
        idx = sig[0].astype(np.int64)
        np.testing.assert_array_equal(np.diff(idx), 1)  # whole and in order, up to the end
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True, check=False).returncode:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)
