"""Step-by-step decoding: torch's step API and our NumPy NIR simulator agree with the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.models.nir_runtime import NIRSimulator, NIRStepDecoder
from bci.models.spiking.ibmi import SNN3D, SNNStreaming
from bci.models.spiking.stepping import TorchStepDecoder

nir = pytest.importorskip("nir", reason="the NIR graphs need nir (pip install 'bci[nir]')")
nir_export = pytest.importorskip("bci.hw.nir_export")


def _model(neuron: str = "lif", n_chans: int = 12, seed: int = 0) -> SNNStreaming:
    torch.manual_seed(seed)
    model = SNNStreaming(n_chans, 2, sfreq=20.0, n_hidden=24, neuron=neuron, tau_s=0.1,
                         input_transform="sqrt").eval()
    with torch.no_grad():  # strong enough input weights that the hidden layer spikes
        model.fc_in.weight.mul_(4.0)
        model.output_scale.copy_(torch.tensor([2.0, 0.5]))
        model.output_offset.copy_(torch.tensor([0.1, -0.3]))
    return model


def _counts(n_chans: int = 12, n_bins: int = 150, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).poisson(1.5, (n_chans, n_bins)).astype(np.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_by_step_equals_whole_sequence(dtype):
    model, counts = _model(), _counts()
    stepper = TorchStepDecoder(model, dtype=dtype)
    online = stepper.run(counts)
    with torch.no_grad():
        offline = model.to(dtype).forward_sequence(torch.as_tensor(counts, dtype=dtype)[None])
    assert online.shape == (2, counts.shape[1])
    np.testing.assert_allclose(online, offline[0].double().numpy(), rtol=0, atol=1e-6)
    assert stepper.n_steps == counts.shape[1]
    # the state is carried: a restart from rest on the second half differs from the run on
    stepper.reset()
    half = stepper.run(counts[:, 75:])
    assert np.abs(half - online[:, 75:]).max() > 1e-3


@pytest.mark.parametrize("neuron", ["lif", "cuba"])
def test_nir_simulator_equals_torch(neuron):
    model, counts = _model(neuron), _counts()
    graph = nir_export.to_nir(model)
    nir_dec = NIRStepDecoder(graph)
    torch_dec = TorchStepDecoder(model, dtype=torch.float64)
    out_nir, out_torch = nir_dec.run(counts), torch_dec.run(counts)
    np.testing.assert_allclose(out_nir, out_torch, rtol=0, atol=1e-9)
    # the hidden layer spiked, and both counted the same synaptic operations
    assert nir_dec.simulator.spikes["lif_hidden"] > 0
    assert nir_dec.synops == torch_dec.synops
    # closed form: every weight is non-zero, so ops = nnz(input) * n_hidden + spikes * n_out
    expected = np.count_nonzero(counts) * 24 + nir_dec.simulator.spikes["lif_hidden"] * 2
    assert nir_dec.synops == expected
    assert nir_dec.sfreq == pytest.approx(20.0)


def test_nir_file_roundtrip(tmp_path):
    model, counts = _model(), _counts(n_bins=40)
    path = tmp_path / "snn.nir"
    nir_export.save_nir(model, path)
    np.testing.assert_allclose(NIRStepDecoder(path).run(counts),
                               NIRStepDecoder(nir_export.to_nir(model)).run(counts), atol=0)


def test_simulator_li_closed_form():
    graph = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([1])}),
        "li": nir.LI(tau=np.array([2.0]), r=np.array([2.0]), v_leak=np.array([0.0])),
        "output": nir.Output(output_type={"output": np.array([1])})},
        edges=[("input", "li"), ("li", "output")], metadata={"dt": 1.0})
    sim = NIRSimulator(graph)
    out = sim.run(np.ones((4, 1)))[:, 0]
    np.testing.assert_allclose(out, [1.0, 1.5, 1.75, 1.875])  # v <- v / 2 + 1
    sim.reset()
    assert sim.step(np.array([2.0]))[0] == 2.0


def test_errors():
    torch.manual_seed(0)
    windowed = SNN3D(8, 2, n_times=4, sfreq=20.0, reset="zero")
    with pytest.raises(TypeError, match="streaming decoders"):
        TorchStepDecoder(windowed)
    with pytest.raises(ValueError, match="SNNStreaming"):
        NIRStepDecoder(nir_export.to_nir(windowed))
    with pytest.raises(TypeError, match="nir.NIRGraph"):
        NIRSimulator({"a": 1})
    dec = NIRStepDecoder(nir_export.to_nir(_model()))
    with pytest.raises(ValueError, match=r"12 counts \(n_chans,\)"):
        dec.step(np.zeros(5))
    with pytest.raises(ValueError, match="torch.float32 or torch.float64"):
        TorchStepDecoder(_model(), dtype=torch.float16)
    graph = nir_export.to_nir(_model())
    graph.metadata.pop("dt")
    with pytest.raises(ValueError, match="'dt'"):
        NIRSimulator(graph)
    with pytest.raises(FileNotFoundError, match="No NIR file"):
        NIRStepDecoder("/nonexistent/snn.nir")


def test_runtime_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys; import bci.models.nir_runtime; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("neuron", ["lif", "cuba"])
def test_snntorch_import_steps_like_torch(neuron):
    pytest.importorskip("snntorch", minversion="1.0",
                        reason="the snnTorch backend needs snnTorch >= 1.0 (bci[bench])")
    pytest.importorskip("nirtorch", reason="snnTorch's NIR import needs nirtorch (bci[bench])")
    from bci.models.snntorch_runtime import SnnTorchStepDecoder

    model, counts = _model(neuron), _counts()
    snn = SnnTorchStepDecoder(nir_export.to_nir(model))
    ours = TorchStepDecoder(model)
    expected = ours.run(counts)
    np.testing.assert_allclose(snn.run(counts), expected, rtol=0, atol=1e-5)
    assert snn.synops == ours.synops > 0
    snn.reset()  # back to rest: the same outputs again
    np.testing.assert_allclose(snn.run(counts[:, :10]), expected[:, :10], rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="SNNStreaming"):
        SnnTorchStepDecoder(nir_export.to_nir(SNN3D(8, 2, n_times=4, sfreq=20.0,
                                                    reset="zero")))
