"""The latency benchmark and the spindle recipe, on real recordings, in short settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"


def _module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.real_data
@pytest.mark.skipif(not (DATA / "mne_data" / "MNE-ssvepexo-data").is_dir(),
                    reason=f"Kalunga2016 recordings are not staged under {DATA}")
def test_latency_benchmark_short(tmp_path):
    bench = _module(ROOT / "benchmarks" / "realtime_latency.py")
    (result,) = bench.main(["--configs", "8x256", "--duration", "4", "--floor", "1.5",
                            "--out", str(tmp_path)])
    assert result["samples_lost"] == 0
    assert result["gaps"] == 0
    assert result["n_chans"] == 8
    assert result["sfreq"] == 256.0
    assert result["stimuli"] >= 10  # one per decision after the 1-s warm-up, every 0.1 s
    for key in ("transport_floor_ms", "end_to_end_ms", "decode_ms", "loop_overhead_ms"):
        assert result[key]["p50"] is not None
        assert result[key]["p50"] >= 0
    # end to end includes the decoder's own time
    assert result["end_to_end_ms"]["p50"] >= result["decode_ms"]["p50"]
    assert (tmp_path / "latency.json").is_file()
    assert (tmp_path / "latency.md").is_file()
    assert len(result["loadavg_before"]) == 3


@pytest.mark.real_data
@pytest.mark.skipif(not (DATA / "dreams_spindles").is_dir(),
                    reason=f"DREAMS spindle excerpts are not staged under {DATA}")
def test_spindle_recipe_pieces_on_real_excerpt():
    sc = _module(ROOT / "recipes" / "spindle_closed_loop.py")
    ex = sc.load_excerpt(1)
    assert ex["sfreq"] == 100.0
    assert ex["signal"].size == 180000
    assert ex["ch"] == "C3-A1"
    # the reference merges overlapping spindles of the two experts
    ref = ex["reference"]
    assert np.all(ref[1:, 0] > ref[:-1].sum(1))
    assert len(ref) <= len(ex["expert1"]) + len(
        ex["expert2"])
    ex["signal"] = ex["signal"][:int(240 * ex["sfreq"])]  # first 4 minutes
    t, score, _ = sc.offline_scores(ex)
    assert len(t) == int((240 - sc.WINDOW_S) / sc.STEP_S) + 1
    np.testing.assert_allclose(np.diff(t), sc.STEP_S, atol=1e-6)
    stims, _ = sc.detect(t, score, 2.0, 0.1)
    assert len(stims) > 0
    assert np.diff(stims).min() >= 1.0
    counts = sc.score_events(np.array([10.0, 20.0, 31.0]),
                             np.array([[9.9, 0.5], [30.0, 0.8], [50.0, 1.0]]))
    assert counts["tp_spindles"] == 2
    assert counts["tp_stimuli"] == 2
    np.testing.assert_allclose(counts["latencies_s"], [0.1, 1.0])
    rates = sc._rates(counts)
    assert rates["recall"] == pytest.approx(2 / 3, abs=1e-3)
    assert rates["precision"] == \
        pytest.approx(2 / 3, abs=1e-3)
