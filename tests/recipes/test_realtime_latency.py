"""The closed-loop latency benchmark on a real recording, in a short setting."""

from __future__ import annotations

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
