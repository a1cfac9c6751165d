"""The closed-loop latency benchmark on a real recording, in a short setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import requires_kalunga


@pytest.mark.real_data
@requires_kalunga
def test_latency_benchmark_short(tmp_path, script_main):
    (result,) = script_main("benchmarks/realtime_latency.py")(
        ["--configs", "8x256", "--duration-s", "4", "--floor-s", "1.5", "--out", str(tmp_path)])
    # the recording is found under MNE_DATA (set by tests/conftest.py)
    assert result["file"] == "mne_data/MNE-ssvepexo-data/zenodo/2392979/subject01_run1_raw.fif"
    assert result["samples_lost"] == 0
    assert result["gaps"] == 0
    assert result["n_chans"] == 8
    assert result["sfreq"] == 256.0
    assert result["stimuli"] >= 10  # one per decision after the 1-s warm-up, every 0.1 s
    assert result["end_to_end_ms"]["n"] == result["stimuli"]
    for key in ("transport_floor_ms", "end_to_end_ms", "decode_ms", "loop_overhead_ms"):
        stats = result[key]
        assert list(stats) == ["p50", "p99", "max", "n"]
        assert 0 <= stats["p50"] <= stats["p99"] <= stats["max"]
    # end to end includes the decoder's own time
    assert result["end_to_end_ms"]["p50"] >= result["decode_ms"]["p50"]
    assert (tmp_path / "latency.json").is_file()
    assert (tmp_path / "latency.md").read_text().startswith("| config |")
    assert not (tmp_path / "8x256_raw.fif").exists()  # the replayed copy is removed
    assert len(result["loadavg_before"]) == 3


def test_missing_recording_names_the_fix(tmp_path, script_main):
    with pytest.raises(SystemExit, match="pass --data"):
        script_main("benchmarks/realtime_latency.py")(
            ["--configs", "8x256", "--data", str(tmp_path), "--out", str(tmp_path / "out")])


def _small_fif(tmp_path):
    """Write a 4-s, 6-channel EEG recording at 250 Hz (seeded noise, volts); return its path."""
    import mne
    import numpy as np

    info = mne.create_info([f"E{i}" for i in range(6)], 250.0, "eeg")
    data = np.random.default_rng(0).standard_normal((6, 1000)) * 1e-5
    fif = tmp_path / "small_raw.fif"
    mne.io.RawArray(data, info, verbose=False).save(fif, verbose=False)
    return fif


def test_latency_benchmark_any_file(tmp_path, script_main):
    """``--file`` with ``--picks``/``--channels``: the configuration is named by its shape."""
    (result,) = script_main("benchmarks/realtime_latency.py")(
        ["--file", str(_small_fif(tmp_path)), "--picks", "eeg", "--channels", "4",
         "--unit-factor", "1e6", "--duration-s", "3", "--floor-s", "1",
         "--out", str(tmp_path / "out")])
    assert result["config"] == "4x250"
    assert result["n_chans"] == 4
    assert result["sfreq"] == 250.0
    assert result["samples_lost"] == 0
    assert result["gaps"] == 0
    assert result["decisions"] >= 10  # 3 s at 0.1-s steps, after the first 0.5-s window
    assert not (tmp_path / "out" / "4x250_raw.fif").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--channels", "7"], "fewer than the 7 asked"),
    (["--channels", "0"], "--channels must be an int >= 1"),
    (["--unit-factor", "nan"], "--unit-factor must be a finite number > 0"),
])
def test_latency_benchmark_bad_file_options(tmp_path, script_main, args, message):
    with pytest.raises(SystemExit, match=message):
        script_main("benchmarks/realtime_latency.py")(
            ["--file", str(_small_fif(tmp_path)), *args, "--out", str(tmp_path / "out")])


def test_latency_benchmark_missing_file(tmp_path, script_main):
    with pytest.raises(SystemExit, match="give a recording MNE reads"):
        script_main("benchmarks/realtime_latency.py")(
            ["--file", str(tmp_path / "none.fif"), "--out", str(tmp_path / "out")])


@pytest.mark.real_data
def test_latency_benchmark_meg_scale_short(tmp_path, script_main):
    """The README's MEG-scale row (``--configs 273x1200``) in a 3-s setting: nothing is lost."""
    data = Path(os.environ["MNE_DATA"]).parent
    if not (data / "meg_ieeg" / "mne-testing-data" / "CTF").is_dir():
        pytest.skip(f"the CTF MEG test recording is not staged under {data} (mne-testing-data)")
    (result,) = script_main("benchmarks/realtime_latency.py")(
        ["--configs", "273x1200", "--duration-s", "3", "--floor-s", "1", "--out", str(tmp_path)])
    assert result["n_chans"] == 273
    assert result["sfreq"] == 1200.0
    assert result["samples_lost"] == 0
    assert result["gaps"] == 0
    assert result["decisions"] >= 1
    assert result["end_to_end_ms"]["n"] == result["stimuli"]
