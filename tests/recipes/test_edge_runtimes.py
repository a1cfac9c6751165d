"""The edge-runtime benchmark (torch / ONNX Runtime float32 / int8) in a tiny configuration."""

from __future__ import annotations

import json

import pytest

from tests.conftest import requires_kalunga

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.mark.real_data
@requires_kalunga
def test_edge_runtimes_benchmark_tiny(tmp_path, script_main):
    results = script_main("benchmarks/edge_runtimes.py")(
        ["--model", "EEGNet", "--datasets", "Kalunga2016", "--kalunga-subjects", "1",
         "--folds", "2", "--max-folds", "1", "--max-epochs", "1", "--n-latency", "10",
         "--threads", "1,2", "--int8-variants", "minmax,entropy+first", "--out",
         str(tmp_path)])
    res = results["datasets"]["Kalunga2016"]
    assert res["n_folds"] == 1
    assert res["n_test_windows"] == 32  # half of subject 1's 64 windows
    assert res["n_chans"] == 8
    assert res["n_times"] == 513
    runtimes = res["runtimes"]
    # ONNX Runtime float32 computes what torch computes: same decisions, same accuracy
    assert res["max_abs_diff_fp32_vs_torch"] <= 1e-5
    assert runtimes["onnx_fp32"]["accuracy"] == runtimes["torch"]["accuracy"]
    for name in ("torch", "onnx_fp32", "onnx_int8"):
        r = runtimes[name]
        assert 0.0 <= r["accuracy"] <= 1.0
        assert r["accuracy"] * 32 == pytest.approx(round(r["accuracy"] * 32), abs=0.01)
        for threads in ("1", "2"):
            assert 0 < r["latency_ms"][threads]["p50"] <= r["latency_ms"][threads]["p99"]
        assert r["file_bytes"] > 1000
        assert r["peak_rss_mib"] > 20
        # the ONNX files run without torch, and so need less memory
        assert r["imports_torch"] == (name == "torch")
    assert runtimes["onnx_int8"]["file_bytes"] < runtimes["onnx_fp32"]["file_bytes"]
    assert runtimes["onnx_fp32"]["peak_rss_mib"] < runtimes["torch"]["peak_rss_mib"]
    assert res["accuracy_change_int8_points"] == pytest.approx(
        100 * (runtimes["onnx_int8"]["accuracy"] - runtimes["torch"]["accuracy"]), abs=0.01)
    assert set(res["speedup_int8_vs_torch"]) == {"1", "2"}
    # the int8 variants: the first is the table's int8; decisions changed counted per window
    variants = res["int8_variants"]
    assert list(variants) == ["minmax", "entropy+first"]
    assert variants["minmax"]["accuracy"] == runtimes["onnx_int8"]["accuracy"]
    assert variants["minmax"]["file_bytes"] == runtimes["onnx_int8"]["file_bytes"]
    for v in variants.values():
        assert 0 <= v["windows_changed_vs_torch"] <= 32
        assert v["change_points"] == pytest.approx(
            100 * (v["accuracy"] - runtimes["torch"]["accuracy"]), abs=0.01)
        # a changed accuracy needs at least that many changed decisions
        assert v["windows_changed_vs_torch"] >= round(abs(v["change_points"]) * 32 / 100)
        assert 0 < v["latency_ms_1_thread"]["p50"] <= v["latency_ms_1_thread"]["p99"]
        assert 1000 < v["file_bytes"] < runtimes["onnx_fp32"]["file_bytes"]
        diff = v["proba_abs_diff_vs_torch"]
        assert 0 <= diff["mean"] <= diff["max"] <= 1
        if v["windows_changed_vs_torch"]:  # a changed decision moves probabilities
            assert diff["max"] > 0
    written = json.loads((tmp_path / "edge_runtimes.json").read_text())
    assert written["datasets"]["Kalunga2016"]["runtimes"]["torch"]["accuracy"] == \
        runtimes["torch"]["accuracy"]
    # the running totals written after each fold (a run cut short still leaves numbers)
    partial = json.loads((tmp_path / "edge_runtimes.partial.json").read_text())["Kalunga2016"]
    assert partial["n_folds"] == 1
    assert partial["n_test_windows"] == 32
    assert partial["accuracy"]["torch"] == runtimes["torch"]["accuracy"]
    for name, v in variants.items():
        assert partial["int8_variants"][name]["windows_changed_vs_torch"] == \
            v["windows_changed_vs_torch"]
        assert partial["int8_variants"][name]["accuracy"] == v["accuracy"]
    table = (tmp_path / "edge_runtimes.md").read_text()
    assert table.startswith("| dataset | runtime | p50 / p99 ms (1 thr) | p50 / p99 ms (2 thr)")
    assert table.count("| Kalunga2016 |") == 4


def test_unknown_int8_variant_is_refused(tmp_path, script_main):
    with pytest.raises(SystemExit, match=r"Unknown int8 variant flag\(s\) \['middle'\]"):
        script_main("benchmarks/edge_runtimes.py")(
            ["--int8-variants", "minmax+middle", "--out", str(tmp_path)])


def test_unknown_dataset_is_refused(tmp_path, script_main):
    with pytest.raises(SystemExit, match="Unknown dataset"):
        script_main("benchmarks/edge_runtimes.py")(
            ["--datasets", "Kalunga", "--out", str(tmp_path)])
