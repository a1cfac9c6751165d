"""NIR export of the spiking iBMI decoders.

Structure, exact round trips through NIR files, and the exported graphs run by independent
simulators (a NumPy reading of NIR's equations here, snnTorch's NIR importer when snnTorch is
installed) against our models.
"""

from __future__ import annotations

import json

import nir
import numpy as np
import pytest
import torch

from bci.hw.nir_export import NIR_EXPORTABLE, from_nir, graph_input, load_nir, save_nir, to_nir
from bci.models.spiking.ibmi import SNN3D, ANNDecoder, GRUDecoder, LinearDecoder, SNNStreaming

N_CHANS, SFREQ = 5, 20.0


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _trained_like(model):
    """Give a fresh model spiking weights, spread time constants and output statistics.

    Weights that make its neurons spike, learned time constants spread per neuron, and
    non-trivial output statistics (deterministic).
    """
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("logit"):  # learned decays: spread around their initial value
                param.add_(0.5 * torch.randn(param.shape, generator=gen))
            elif name.endswith("weight") and param.ndim == 2:
                param.mul_(3.0)
            elif name == "gain":
                param.copy_(torch.tensor([1.5, -0.7]))
        model.output_scale.copy_(torch.tensor([2.0, 0.5]))
        model.output_offset.copy_(torch.tensor([0.25, -1.0]))
    return model.eval()


def _make(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    if kind == "streaming":
        model = SNNStreaming(N_CHANS, 2, sfreq=SFREQ, n_hidden=12)
    elif kind == "streaming_cuba_learned":
        model = SNNStreaming(N_CHANS, 2, sfreq=SFREQ, n_hidden=12, neuron="cuba",
                             learn_tau=True)
    elif kind == "streaming_learned":
        model = SNNStreaming(N_CHANS, 2, sfreq=SFREQ, n_hidden=12, learn_tau=True,
                             input_transform="log1p")
    elif kind == "snn3d":
        model = SNN3D(N_CHANS, 2, n_times=4, sfreq=SFREQ, n_hidden_1=8, n_hidden_2=6,
                      reset="zero", learn_tau=True)
    elif kind == "snn3d_subtract":
        model = SNN3D(N_CHANS, 2, n_times=4, sfreq=SFREQ, n_hidden_1=8, n_hidden_2=6)
    else:
        model = LinearDecoder(N_CHANS, 2, n_times=3, sfreq=SFREQ)
    return _trained_like(model)


def _counts(n_bins: int = 40, batch: int = 3, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((batch, N_CHANS, n_bins), 2.0), generator=gen)


def _hidden_spikes(model, x) -> list[torch.Tensor]:
    """Spikes of every spiking layer of our model on counts / windows ``x``."""
    with torch.no_grad():
        inputs = graph_input(model, x)
        if isinstance(model, SNNStreaming):
            return [model.lif_hidden(model.fc_in(inputs))[0]]
        if isinstance(model, SNN3D):
            s1 = model.lif1(model.fc1(inputs))[0]
            return [s1, model.lif2(model.fc2(s1))[0]]
    return []


# ---------------------------------------------------------------------------------------------
# Structure
# ---------------------------------------------------------------------------------------------
def test_streaming_graph_structure_and_time_constants():
    model = _make("streaming")
    graph = to_nir(model)
    assert list(graph.nodes) == ["input", "fc_in", "lif_hidden", "fc_out", "lif_out",
                                 "output_scale", "output"]
    kinds = {name: type(node) for name, node in graph.nodes.items()}
    assert kinds == {"input": nir.Input, "fc_in": nir.Linear, "lif_hidden": nir.LIF,
                     "fc_out": nir.Affine, "lif_out": nir.LI, "output_scale": nir.Affine,
                     "output": nir.Output}
    assert graph.edges == [("input", "fc_in"), ("fc_in", "lif_hidden"),
                           ("lif_hidden", "fc_out"), ("fc_out", "lif_out"),
                           ("lif_out", "output_scale"), ("output_scale", "output")]
    # shapes without a batch axis
    assert graph.nodes["input"].input_type["input"].tolist() == [N_CHANS]
    assert graph.nodes["output"].output_type["output"].tolist() == [2]
    assert graph.nodes["fc_in"].weight.shape == (12, N_CHANS)
    np.testing.assert_array_equal(graph.nodes["fc_in"].weight, model.fc_in.weight.detach().numpy())
    # tau = dt / (1 - beta), r = tau / dt, at dt = 1 / sfreq; tau_s = 0.1 s at 20 Hz
    dt = 1 / SFREQ
    beta = np.exp(-1 / (0.1 * SFREQ))
    lif = graph.nodes["lif_hidden"]
    np.testing.assert_allclose(lif.tau, np.full(12, dt / (1 - beta)), rtol=1e-15)
    np.testing.assert_allclose(lif.r * dt / lif.tau, 1.0, rtol=1e-15)
    assert np.all(lif.v_leak == 0)
    assert np.all(lif.v_reset == 0)
    assert np.all(lif.v_threshold == model.threshold)
    np.testing.assert_array_equal(np.diag(graph.nodes["output_scale"].weight), [2.0, 0.5])
    meta = graph.metadata
    assert meta["bci_model"] == "SNNStreaming"
    assert meta["dt"] == dt
    assert json.loads(meta["bci_config"]) == model.get_config()
    assert "sqrt" in meta["graph_input"]


def test_snn3d_and_linear_graph_structure():
    graph = to_nir(_make("snn3d"), dt=1e-3)
    assert [type(n).__name__ for n in graph.nodes.values()] == [
        "Input", "Affine", "LIF", "Affine", "LIF", "Affine", "LI", "Scale", "Affine", "Output"]
    taus = graph.nodes["lif1"].tau
    assert taus.shape == (8,)
    assert np.ptp(taus) > 0
    assert graph.metadata["dt"] == 1e-3
    host = graph.metadata["bci_host_state"]  # the host-side LayerNorm travels with the graph
    assert set(host) == {"weight", "bias"}
    assert host["weight"].shape == (4, N_CHANS)
    del graph.metadata["bci_host_state"]
    with pytest.raises(ValueError, match="host-side LayerNorm"):
        from_nir(graph)
    linear = to_nir(_make("linear"))
    assert list(linear.nodes) == ["input", "fc", "output_scale", "output"]
    assert linear.nodes["input"].input_type["input"].tolist() == [N_CHANS * 3]


def test_cuba_node_parameters():
    model = _make("streaming_cuba_learned")
    node = to_nir(model).nodes["lif_hidden"]
    dt = 1 / SFREQ
    alpha = torch.sigmoid(model.lif_hidden.alpha.logit.detach().double()).numpy()
    assert isinstance(node, nir.CubaLIF)
    np.testing.assert_allclose(node.tau_syn, dt / (1 - alpha), rtol=1e-14)
    np.testing.assert_allclose(node.w_in * dt / node.tau_syn, 1.0, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# Round trip through NIR files
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["streaming", "streaming_cuba_learned", "streaming_learned",
                                  "snn3d", "snn3d_subtract", "linear"])
def test_round_trip_through_file_is_exact(kind, tmp_path):
    model = _make(kind)
    path = save_nir(model, tmp_path / "sub" / f"{kind}.nir", dt=1e-4 if "learned" in kind
                    else None, unsupported_reset="annotate")
    back = load_nir(path)
    assert type(back) is type(model)
    assert back.get_config() == model.get_config()
    assert not back.training
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    x = _counts() if isinstance(model, SNNStreaming) else _counts(model.n_times, batch=16)
    with torch.no_grad():
        assert (model.forward_sequence(x) - back.forward_sequence(x)).abs().max().item() == 0
        if not isinstance(model, SNNStreaming):
            assert (model(x) - back(x)).abs().max().item() == 0
    for s_ours, s_back in zip(_hidden_spikes(model, x), _hidden_spikes(back, x), strict=True):
        assert torch.equal(s_ours, s_back)
        assert s_ours.sum() > 0


def test_subtract_reset_is_refused_or_annotated(caplog):
    model = _make("snn3d_subtract")
    with pytest.raises(ValueError, match="resets by 'subtract'.*unsupported_reset='annotate'"):
        to_nir(model)
    graph = to_nir(model, unsupported_reset="annotate")
    assert graph.nodes["lif1"].metadata == {"bci_reset": "subtract"}
    assert np.all(graph.nodes["lif1"].v_reset == 0)
    assert "other than bci will reset to zero" in caplog.text
    with pytest.raises(ValueError, match="unsupported_reset"):
        to_nir(model, unsupported_reset="ignore")


# ---------------------------------------------------------------------------------------------
# An independent reading of the graph: NIR's equations, forward Euler, NumPy float64
# ---------------------------------------------------------------------------------------------
def _simulate_nir(graph, inputs: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run a chain NIR graph on ``inputs`` ``(batch, n_steps, n_in)`` with forward Euler.

    Steps of the graph's ``dt``: ``tau dv/dt = v_leak - v + r I``, spike when
    ``v > v_threshold`` then ``v = v_reset`` at once; ``tau_syn dI/dt = -I + w_in x``. Returns
    the output per step and the spikes of every spiking node. Written from NIR's node
    definitions only.
    """
    dt = float(graph.metadata["dt"])
    order, node = [], "input"
    while node != "output":
        node = next(b for a, b in graph.edges if a == node)
        order.append(node)
    batch, n_steps, _ = inputs.shape
    state = {name: {} for name in order}
    outputs, spikes = [], {name: [] for name in order
                           if isinstance(graph.nodes[name], (nir.LIF, nir.CubaLIF))}
    for t in range(n_steps):
        x = inputs[:, t].astype(np.float64)
        for name in order:
            n = graph.nodes[name]
            st = state[name]
            if isinstance(n, nir.Linear):
                x = x @ n.weight.T.astype(np.float64)
            elif isinstance(n, nir.Affine):
                x = x @ n.weight.T.astype(np.float64) + n.bias
            elif isinstance(n, nir.Scale):
                x = x * n.scale
            elif isinstance(n, nir.CubaLIF):
                i = st.get("i", np.zeros_like(x))
                i = i + dt / n.tau_syn * (-i + n.w_in * x)
                v = st.get("v", np.zeros_like(x))
                v = v + dt / n.tau_mem * (n.v_leak - v + n.r * i)
                z = (v > n.v_threshold).astype(np.float64)
                st["i"], st["v"] = i, np.where(z > 0, n.v_reset, v)
                spikes[name].append(z)
                x = z
            elif isinstance(n, nir.LIF):
                v = st.get("v", np.zeros_like(x))
                v = v + dt / n.tau * (n.v_leak - v + n.r * x)
                z = (v > n.v_threshold).astype(np.float64)
                st["v"] = np.where(z > 0, n.v_reset, v)
                spikes[name].append(z)
                x = z
            elif isinstance(n, nir.LI):
                v = st.get("v", np.zeros_like(x))
                st["v"] = x = v + dt / n.tau * (n.v_leak - v + n.r * x)
            elif not isinstance(n, nir.Output):
                raise AssertionError(f"unexpected node {name}")
        outputs.append(x)
    return np.stack(outputs, 1), {k: np.stack(v, 1) for k, v in spikes.items()}


@pytest.mark.parametrize("kind", ["streaming", "streaming_cuba_learned", "snn3d", "linear"])
def test_reference_simulation_of_the_file_matches_the_model(kind, tmp_path):
    model = _make(kind)
    path = save_nir(model, tmp_path / "model.nir")
    graph = nir.read(path)  # what another tool reads
    x = _counts(40) if isinstance(model, SNNStreaming) else _counts(model.n_times, batch=16)
    out, spikes = _simulate_nir(graph, graph_input(model, x).numpy())
    with torch.no_grad():
        if isinstance(model, SNNStreaming):
            expected = model.forward_sequence(x).transpose(1, 2).numpy()  # every step
        else:
            expected = model(x).numpy()[:, None]  # the window's last step
            out = out[:, -1:]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    for s_ref, s_ours in zip(spikes.values(), _hidden_spikes(model, x), strict=True):
        np.testing.assert_array_equal(s_ref, s_ours.numpy())
        assert 0 < s_ref.mean() < 1


# ---------------------------------------------------------------------------------------------
# snnTorch's NIR importer
# ---------------------------------------------------------------------------------------------
def _require_snntorch():
    """SnnTorch's ``import_from_nir`` (snnTorch >= 1.0, on nirtorch's ``nir_to_torch``), or skip."""
    pytest.importorskip("snntorch", minversion="1.0",
                        reason="the cross-check needs snnTorch >= 1.0 (bci[bench])")
    pytest.importorskip("nirtorch", reason="snnTorch's NIR import needs nirtorch (bci[bench])")
    from snntorch.import_nir import import_from_nir

    return import_from_nir


def _snntorch_chain(graph, names: list[str], n_in: int):
    """Import with snnTorch's ``import_from_nir`` the chain ``input -> names -> output``.

    The chain is cut from ``graph``. snnTorch 1.0's importer has no mapping for ``nir.LI``: a
    read-out LI becomes a ``nir.LIF`` with an infinite threshold (same membrane, never spikes),
    whose membrane is then read from the imported module.
    """
    import_from_nir = _require_snntorch()
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    for name in names:
        node = graph.nodes[name]
        if isinstance(node, nir.LI):
            node = nir.LIF(tau=node.tau, r=node.r, v_leak=node.v_leak,
                           v_threshold=np.full(node.tau.shape, np.inf))
        nodes[name] = node
    last = nodes[names[-1]]
    n_out = last.weight.shape[0] if hasattr(last, "weight") else last.v_threshold.shape[0]
    nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
    chain = ["input", *names, "output"]
    edges = list(zip(chain[:-1], chain[1:], strict=True))
    return import_from_nir(nir.NIRGraph(nodes=nodes, edges=edges))


def _step(module, inputs: torch.Tensor, readout: str | None = None) -> torch.Tensor:
    """Run an imported module step by step on ``(batch, n_steps, n)``.

    Returns the outputs, or the membrane of the ``readout`` submodule, per step.
    """
    outs = []
    with torch.no_grad():
        for t in range(inputs.shape[1]):
            out = module(inputs[:, t])
            out = out[0] if isinstance(out, tuple) else out
            outs.append(getattr(module, readout).mem.clone() if readout else out)
    return torch.stack(outs, 1)


def _destandardise(graph, membrane: torch.Tensor) -> torch.Tensor:
    node = graph.nodes["output_scale"]
    return membrane @ torch.as_tensor(node.weight).T + torch.as_tensor(node.bias)


@pytest.mark.parametrize("kind", ["streaming", "streaming_cuba_learned"])
def test_snntorch_import_runs_the_streaming_graph_like_our_model(kind):
    _require_snntorch()
    model = _make(kind)
    graph = to_nir(model, dt=1e-4)  # snnTorch 1.0's importer integrates at dt = 1e-4 s
    x = _counts(60)
    inputs = graph_input(model, x)
    spikes = _step(_snntorch_chain(graph, ["fc_in", "lif_hidden"], N_CHANS), inputs)
    (ours,) = _hidden_spikes(model, x)
    assert torch.equal(spikes, ours)
    assert 0 < ours.mean() < 1
    membrane = _step(_snntorch_chain(graph, ["fc_out", "lif_out"], 12), spikes,
                     readout="lif_out")
    with torch.no_grad():
        expected = model.forward_sequence(x).transpose(1, 2)
    assert (_destandardise(graph, membrane) - expected).abs().max() <= 1e-5


def test_snntorch_import_runs_the_snn3d_graph_like_our_model():
    _require_snntorch()
    model = _make("snn3d")
    graph = to_nir(model, dt=1e-4)
    x = _counts(model.n_times, batch=32)  # one window per row, each from rest
    inputs = graph_input(model, x)
    spikes = _step(_snntorch_chain(graph, ["fc1", "lif1", "fc2", "lif2"], N_CHANS), inputs)
    assert torch.equal(spikes, _hidden_spikes(model, x)[1])
    assert spikes.sum() > 0
    membrane = _step(_snntorch_chain(graph, ["fc3", "lif_out"], 6), spikes, readout="lif_out")
    gained = membrane[:, -1] * torch.as_tensor(graph.nodes["gain"].scale)
    with torch.no_grad():
        expected = model(x)
    assert (_destandardise(graph, gained) - expected).abs().max() <= 1e-5


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
def test_unsupported_models_raise_naming_the_module():
    ann = ANNDecoder(N_CHANS, 2, n_times=3, sfreq=SFREQ)
    with pytest.raises(TypeError, match=r"ANNDecoder.*'act1' \(ReLU\).*Exportable models: "
                                        "SNNStreaming, SNN3D, LinearDecoder, DelaySNN"):
        to_nir(ann)
    with pytest.raises(TypeError, match=r"GRUDecoder.*'gru' \(GRU\)"):
        to_nir(GRUDecoder(N_CHANS, 2, sfreq=SFREQ))
    with pytest.raises(TypeError, match="Cannot export Sequential"):
        to_nir(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Tanh()))
    with pytest.raises(TypeError, match="exports a model"):
        to_nir("model.pt")
    with pytest.raises(ValueError, match="dt must be a positive"):
        to_nir(_make("streaming"), dt=0.0)
    assert NIR_EXPORTABLE == ("SNNStreaming", "SNN3D", "LinearDecoder", "DelaySNN")


def test_spiking_conformer_is_refused_naming_the_attention():
    conformer = pytest.importorskip("bci.models.spiking.conformer")
    model = conformer.SpikingConformer(2, 2, 64, sfreq=128.0, d_model=8, n_heads=2)
    with pytest.raises(TypeError, match="SpikingConformer.*self-attention"):
        to_nir(model)


def test_from_nir_rejects_foreign_or_edited_graphs(tmp_path):
    model = _make("streaming")
    with pytest.raises(TypeError, match="expects a nir.NIRGraph"):
        from_nir(model)
    bare = nir.NIRGraph.from_list(nir.Linear(weight=np.ones((2, 3))))
    with pytest.raises(ValueError, match="no bci_model/bci_config metadata"):
        from_nir(bare)
    graph = to_nir(model)
    graph.nodes["lif_hidden"].v_reset = np.ones(12)
    with pytest.raises(ValueError, match="v_reset = 0"):
        from_nir(graph)
    graph = to_nir(model)
    graph.edges.append(("lif_hidden", "fc_in"))  # a recurrent edge bci does not read
    with pytest.raises(ValueError, match="no recurrent or skip edges"):
        from_nir(graph)
    graph = to_nir(model)
    graph.nodes["lif_hidden"].tau = graph.nodes["lif_hidden"].tau * 2
    graph.nodes["lif_hidden"].r = graph.nodes["lif_hidden"].r * 2
    with pytest.raises(ValueError, match="differ from the fixed decay"):
        from_nir(graph)
    graph = to_nir(model)
    graph.nodes["fc_in"] = nir.Linear(weight=np.ones((12, N_CHANS + 1)))
    with pytest.raises(ValueError, match=r"fc_in.weight has shape \(12, 6\)"):
        from_nir(graph)
    with pytest.raises(FileNotFoundError, match="No NIR file"):
        load_nir(tmp_path / "missing.nir")
    (tmp_path / "junk.nir").write_text("not hdf5")
    with pytest.raises(ValueError, match="not a NIR"):
        load_nir(tmp_path / "junk.nir")
