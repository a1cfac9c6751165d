"""The spiking-runtime benchmark in a tiny configuration (simulated reaches, one epoch)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("nir", reason="the benchmark exports a NIR file (pip install 'bci[nir]')")


def test_nir_runtime_benchmark_tiny(tmp_path, script_main):
    results = script_main("benchmarks/nir_runtime.py")(
        ["--synthetic", "--max-epochs", "1", "--n-hidden", "16", "--n-latency", "30",
         "--threads", "1", "--out", str(tmp_path)])
    runtimes = results["runtimes"]
    assert {"torch", "nir"} <= set(runtimes)
    for row in runtimes.values():
        # every runtime computes the model: same R^2, outputs within float32 rounding
        assert row["max_abs_diff_vs_model"] <= 1e-5
        assert row["r2"] == pytest.approx(results["r2_model"], abs=1e-6)
        p50, p99 = row["latency_ms_1_threads"]
        assert 0 < p50 <= p99
        assert row["peak_rss_mib"] > 0
    # the NumPy NIR simulator runs without torch; the torch runtime needs it
    assert runtimes["nir"]["imports_torch"] is False
    assert runtimes["torch"]["imports_torch"] is True
    assert runtimes["nir"]["peak_rss_mib"] < runtimes["torch"]["peak_rss_mib"]
    # the same spikes give the same synaptic operations in every runtime
    ops = {round(row["synops_per_s"], 6) for row in runtimes.values()}
    assert len(ops) == 1
    assert ops.pop() > 0
    saved = json.loads((tmp_path / "nir_runtime.json").read_text())
    assert saved["runtimes"].keys() == runtimes.keys()
    assert (tmp_path / "nir_runtime.md").read_text().startswith("| runtime | R^2 |")
    assert "peak RSS MiB" in (tmp_path / "nir_runtime.md").read_text()
