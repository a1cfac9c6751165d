"""`bci play --reaching` and `bci stream --decoder SNN.nir`: continuous decoding by CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from tests.realtime._helpers import playing

pytest.importorskip("nir", reason="the .nir decoder file needs nir (pip install 'bci[nir]')")


def _staged():
    from bci.realtime.player import reaching_counts

    try:
        return reaching_counts()
    except FileNotFoundError as err:
        pytest.skip(f"the staged reaching session is absent ({err})")


@pytest.mark.parametrize("backend", ["torch", "nir", "snntorch"])
def test_cli_play_reaching_and_stream_snn(tmp_path, capsys, backend):
    from bci.cli import main
    from bci.evaluation.ibmi_metrics import r2_neurobench
    from bci.models.decoder import save_network
    from bci.models.nir_runtime import NIRStepDecoder
    from bci.models.spiking.ibmi import SNNStreaming
    from bci.models.spiking.stepping import TorchStepDecoder
    from bci.realtime.recording import read_outputs, read_signal

    if backend == "snntorch":
        pytest.importorskip("snntorch", minversion="1.0",
                            reason="the snnTorch backend needs snnTorch >= 1.0 (bci[bench])")
        pytest.importorskip("nirtorch", reason="snnTorch's NIR import needs nirtorch")
    counts, sfreq, _ = _staged()
    assert counts.shape[0] == 84
    assert sfreq == 20.0
    torch.manual_seed(0)
    model = SNNStreaming(84, 2, sfreq=20.0, n_hidden=32).eval()
    with torch.no_grad():
        model.fc_in.weight.mul_(4.0)
    snn = tmp_path / "snn.nir"  # the README's commands: a network file, exported to NIR
    save_network(model, tmp_path / "snn.bci")
    assert main(["export", "--format", "nir", str(tmp_path / "snn.bci"), "--out", str(snn)]) == 0
    name = f"bci-reaching-{backend}-{os.getpid()}"
    record = tmp_path / "session"
    with playing("staged", name, "--reaching", "--type", "Spikes", "--wait", "60",
                 "--duration-s", "30"):
        code = main(["stream", "--source", name, "--decoder", str(snn), "--backend", backend,
                     "--outlet", f"{name}-velocity", "--record", str(record),
                     "--max-bins", "40", "--timeout-s", "30", "--stimulator", "none"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads((record / "summary.json").read_text())
    assert summary["n_bins"] == 40
    assert summary["backend"] == backend
    assert summary["synops_per_s"] > 0
    values, _, indices, names = read_outputs(record)
    assert names == ["vx", "vy"]
    np.testing.assert_array_equal(indices, np.arange(40))
    signal, _, _ = read_signal(record)
    np.testing.assert_array_equal(signal[:, :40], counts[:, :40])
    if backend == "snntorch":
        from bci.models.snntorch_runtime import SnnTorchStepDecoder

        offline_dec = SnnTorchStepDecoder(snn)
    else:
        offline_dec = NIRStepDecoder(snn) if backend == "nir" else TorchStepDecoder(model)
    offline = offline_dec.run(counts[:, :40])
    np.testing.assert_allclose(values, offline, atol=1e-6)
    assert main(["session-report", str(record)]) == 0  # draws outputs.png with synops/s
    assert (record / "outputs.png").is_file()
    assert "synaptic operations" in (record / "report.html").read_text()
    target = offline + np.random.default_rng(0).standard_normal(offline.shape)
    assert abs(r2_neurobench(target.T, values.T) - r2_neurobench(target.T, offline.T)) <= 1e-6


def test_cli_continuous_flags_need_a_nir_decoder(capsys):
    from bci.cli import main

    code = main(["stream", "--source", "x", "--outlet", "vel", "--stimulator", "none"])
    assert code != 0
    assert "--outlet is for continuous decoding" in capsys.readouterr().err


def test_cli_continuous_refusals(tmp_path, capsys):
    from bci.cli import main

    nir_file = tmp_path / "snn.nir"
    code = main(["stream", "--source", "x", "--decoder", str(nir_file), "--policy",
                 "threshold:target=a,on=0.8,off=0.6", "--stimulator", "none"])
    assert code != 0
    assert "--policy and --monitor do not apply" in capsys.readouterr().err
    code = main(["play", "staged", "--reaching", "--name", "x", "--picks", "a"])
    assert code != 0
    assert "with --reaching every unit is published" in capsys.readouterr().err
