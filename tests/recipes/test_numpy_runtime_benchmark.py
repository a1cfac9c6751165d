"""The NumPy-runtime benchmark in a tiny configuration (synthetic data, a few windows)."""

from __future__ import annotations

import json

import pytest


def test_numpy_runtime_benchmark_tiny(tmp_path, script_main):
    (row,) = script_main("benchmarks/numpy_runtime.py")(
        ["--configs", "synthetic", "--n-windows", "12", "--warmup", "2", "--out", str(tmp_path)])
    assert row["pipeline"] == "TS+LR"
    assert row["steps"] == ["covariances", "tangent_space", "linear"]
    assert (row["n_chans"], row["n_bands"], row["threads"]) == (8, 1, 1)
    assert row["max_abs_diff"] <= 1e-9  # the two decoders agree on every cue window
    for key in ("estimator_ms", "estimator_cpu_ms", "decoder_ms", "decoder_cpu_ms"):
        for runtime in ("sklearn", "numpy"):
            stats = row[key][runtime]
            assert stats["n"] == 12
            assert 0 < stats["p50"] <= stats["p99"] <= stats["max"]
        assert row[key]["speedup_p50"] == pytest.approx(
            row[key]["sklearn"]["p50"] / row[key]["numpy"]["p50"], abs=0.01)
    # the decoder's time includes the estimator's (plus the band-pass)
    assert row["decoder_ms"]["numpy"]["p50"] >= row["estimator_ms"]["numpy"]["p50"]
    # the NumPy file holds the arrays alone: smaller than the skops pipeline
    assert 0 < row["file_bytes"]["numpy"] < row["file_bytes"]["sklearn"]
    saved = json.loads((tmp_path / "numpy_runtime.json").read_text())
    assert saved["rows"][0]["max_abs_diff"] == row["max_abs_diff"]
    assert len(saved["loadavg_before"]) == 3
    assert (tmp_path / "numpy_runtime.md").read_text().startswith("| pipeline |")


def test_benchmark_refuses_bad_counts(tmp_path, script_main):
    with pytest.raises(SystemExit):
        script_main("benchmarks/numpy_runtime.py")(["--n-windows", "0", "--out", str(tmp_path)])
