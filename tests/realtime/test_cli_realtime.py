"""`bci play`, `bci stream`, `bci session-report` end to end on loopback LSL (short)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from bci.cli import main

pytest.importorskip("pylsl")


def test_play_stream_report(tmp_path, mi_decoder, mi_recording, capsys):
    fif = tmp_path / "mi_raw.fif"
    mi_recording.save(fif, verbose=False)
    decoder_file = mi_decoder.save(tmp_path / "mi.bci")
    name = f"bci-cli-{os.getpid()}"
    player = subprocess.Popen([sys.executable, "-m", "bci.cli", "play", str(fif), "--name", name,
                               "--duration", "30"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=os.environ.copy())
    try:
        record = tmp_path / "session"
        code = main(["stream", "--source", name, "--decoder", str(decoder_file),
                     "--policy", "threshold:target=left_hand,on=0.5,off=0.5,refractory_s=0.2",
                     "--stimulator", "none", "--record", str(record), "--duration", "3.5",
                     "--step", "0.1", "--min-interval", "0.5", "--timeout", "20"])
    finally:
        player.terminate()
        player.wait(10)
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
    assert main(["stream", "--source", name, "--record", str(record), "--timeout", "0.2",
                 "--window", "1"]) == 2
    assert "error" in capsys.readouterr().err
