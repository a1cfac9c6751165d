"""Online equals offline over loopback LSL, with a briefly trained decoder (tiny configuration)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("nir", reason="the benchmark exports a NIR file (pip install 'bci[nir]')")


def test_online_decode_trained_equals_offline(tmp_path, script_main):
    import torch

    from bci.data.reaching import load_center_out
    from bci.models.decoder import load_network
    from bci.models.spiking.ibmi import SNNStreaming

    try:
        load_center_out()
    except FileNotFoundError as err:
        pytest.skip(f"the staged reaching session is absent ({err})")
    results = script_main("benchmarks/online_decode.py")(
        ["--n-train-trials", "12", "--max-epochs", "2", "--n-hidden", "16",
         "--n-test-trials", "1", "--max-bins", "30", "--backends", "torch,nir",
         "--out", str(tmp_path)])
    # trained: the weights are no longer the seed's initialisation
    trained = load_network(tmp_path / "snn.bci")
    torch.manual_seed(0)
    seeded = SNNStreaming(84, 2, sfreq=20.0, n_hidden=16)
    assert not torch.allclose(trained.fc_in.weight, seeded.fc_in.weight)
    assert results["n_test_bins"] == 30
    rows = results["backends"]
    assert set(rows) == {"torch", "nir"}
    for row in rows.values():
        # every played bin decoded once, in order; the recorded signal is the played counts
        assert row["n_bins_decoded"] == 30
        assert row["bins_lost"] == 0
        assert row["indices_in_order"]
        assert row["signal_equals_counts"]
        # nothing lost, no NaN (a "stall" is only a pause of the busy machine's player)
        assert not set(row["stream_events"]) & {"gap", "lost", "nan", "reconnected"}
        assert row["output_names"] == ["vx", "vy"]
        # online decode == offline decode of the same bins
        assert row["max_abs_diff"] <= 1e-6
        assert row["r2_online"] == pytest.approx(row["r2_offline"], abs=1e-6)
        assert row["synops_per_s"] > 0
    # the torch model (float32) and the NumPy NIR simulator (float64) compute the same decoder
    assert rows["torch"]["r2_offline"] == pytest.approx(rows["nir"]["r2_offline"], abs=1e-5)
    assert rows["torch"]["synops_per_s"] == pytest.approx(rows["nir"]["synops_per_s"])
    saved = json.loads((tmp_path / "online_decode.json").read_text())
    assert saved["backends"].keys() == rows.keys()
    assert np.isfinite(saved["r2_model_per_trial"])
    assert (tmp_path / "online_decode.md").read_text().startswith("| backend | bins decoded")
