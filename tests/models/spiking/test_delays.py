"""Learnable synaptic delays: exact shifts, delay gradients, streaming state, operation counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.models._threads import torch_threads
from bci.models.spiking.cost import count_operations
from bci.models.spiking.delays import DelayedLinear, DelaySNN
from bci.models.spiking.ibmi import SNNStreaming, fit_sequence_decoder


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _layer(delays: list[list[float]], weights: list[list[float]], max_delay: int = 5
           ) -> DelayedLinear:
    layer = DelayedLinear(len(delays[0]), len(delays), max_delay, init_delay="zero")
    with torch.no_grad():
        layer.delay.copy_(torch.tensor(delays))
        layer.weight.copy_(torch.tensor(weights))
    return layer


@pytest.mark.parametrize("d", [0, 1, 3, 5])
def test_a_spike_arrives_exactly_d_steps_later(d):
    layer = _layer([[float(d)]], [[2.0]])
    x = torch.zeros(1, 12, 1)
    x[0, 4, 0] = 1.0
    out = layer(x)[0, :, 0]
    expected = torch.zeros(12)
    expected[4 + d] = 2.0
    assert torch.equal(out, expected)


def test_each_synapse_has_its_own_delay_and_delays_round_and_clamp():
    # output 0 reads input 0 two steps late and input 1 at once; output 1 the other way round;
    # 1.6 rounds to 2, -3 clamps to 0 and 9 to max_delay=5
    layer = _layer([[1.6, -3.0], [9.0, 0.4]], [[1.0, 10.0], [100.0, 1000.0]])
    assert layer.integer_delays().tolist() == [[2, 0], [5, 0]]
    x = torch.zeros(1, 8, 2)
    x[0, 0, 0] = 1.0  # input 0 spikes at step 0
    x[0, 1, 1] = 1.0  # input 1 at step 1
    out = layer(x)[0]
    assert out[:, 0].tolist() == [0.0, 10.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert out[:, 1].tolist() == [0.0, 1000.0, 0.0, 0.0, 0.0, 100.0, 0.0, 0.0]


def test_history_continues_the_stream():
    torch.manual_seed(0)
    layer = DelayedLinear(3, 4, 4)
    x = torch.randn(2, 10, 3)
    whole = layer(x)
    tail = layer(x[:, 6:], x[:, 2:6])
    torch.testing.assert_close(tail, whole[:, 6:])
    with pytest.raises(ValueError, match=r"history must be \(batch=2, max_delay=4"):
        layer(x, x[:, :3])
    with pytest.raises(ValueError, match=r"in_features=3\), got \(2, 10, 2\)"):
        layer(x[..., :2])


def test_delay_gradient_follows_the_signal():
    # the target is the input 3 steps late; starting at delay 2, the gradient must push the
    # delay up (d loss / d delay < 0), and plain gradient steps reach delay 3
    layer = _layer([[2.0]], [[1.0]], max_delay=6)
    x = torch.zeros(1, 30, 1)
    x[0, 5:12, 0] = torch.tensor([0.2, 0.6, 1.0, 1.0, 0.6, 0.2, 0.0])
    target = torch.roll(x, 3, dims=1)
    loss = (layer(x) - target).pow(2).sum()
    loss.backward()
    assert layer.delay.grad.item() < 0
    assert layer.weight.grad.item() != 0
    opt = torch.optim.SGD([layer.delay], lr=0.5)
    for _ in range(20):
        opt.zero_grad()
        (layer(x) - target).pow(2).sum().backward()
        opt.step()
    assert layer.integer_delays().item() == 3


def test_operation_count_is_one_per_synapse_and_delayed_input():
    layer = _layer([[0.0, 2.0], [1.0, 4.0]], [[1.0, 0.0], [1.0, 1.0]])
    x = torch.zeros(1, 6, 2)
    x[0, 0, 0] = 3.0  # reaches output 0 at step 0 and output 1 at step 1
    x[0, 3, 1] = 2.0  # weight 0 to output 0; reaches output 1 at step 7: after the window
    x[0, 1, 1] = 1.0  # reaches output 1 at step 5
    model = torch.nn.Sequential(layer)
    counts = count_operations(_Seq(layer), x.transpose(1, 2), sfreq=1.0)
    assert counts.effective_macs == 3.0  # three products fall inside the window
    assert counts.dense_ops == 6 * 4.0
    assert counts.synaptic_operations_by_layer == {"layer": 3.0}
    assert counts.state_bytes == 4 * (5 * 2)  # the delay line: max_delay steps of 2 inputs
    assert model[0] is layer


class _Seq(torch.nn.Module):
    """(batch, in, steps) -> DelayedLinear, as count_operations feeds models."""

    def __init__(self, layer: DelayedLinear) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x.transpose(1, 2))


def test_delay_snn_without_delays_is_snn_streaming():
    torch.manual_seed(0)
    snn = SNNStreaming(6, 2, sfreq=20.0, n_hidden=8).eval()
    delayed = DelaySNN(6, 2, sfreq=20.0, n_hidden=8, max_delay=0).eval()
    with torch.no_grad():
        delayed.fc_in.weight.copy_(snn.fc_in.weight)
        delayed.fc_out.load_state_dict(snn.fc_out.state_dict())
    x = torch.poisson(torch.full((3, 6, 40), 2.0), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(delayed.forward_sequence(x), snn.forward_sequence(x))
    assert count_operations(delayed, x).as_dict()["effective_macs"] == \
        count_operations(snn, x).effective_macs


def test_delay_snn_streams_chunk_by_chunk_and_trains():
    from bci.data.reaching import make_reaching

    torch.manual_seed(0)
    model = DelaySNN(12, 2, sfreq=20.0, n_hidden=16, max_delay=4).eval()
    x = torch.poisson(torch.full((2, 12, 30), 1.5), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        whole = model.forward_sequence(x)
        first, state = model.forward_sequence(x[..., :11], return_state=True)
        second = model.forward_sequence(x[..., 11:], state)
    torch.testing.assert_close(torch.cat([first, second], -1), whole)
    assert state[0].shape == (2, 4, 12)
    data = make_reaching(24, 12, sfreq=20.0, random_state=0)
    before = model.fc_in.delay.detach().clone()
    result = fit_sequence_decoder(model, data.subset(range(20)), val=data.subset(range(20, 24)),
                                  max_epochs=2, random_state=0)
    assert len(result.train_loss) >= 1
    assert not torch.equal(model.fc_in.delay.detach(), before)  # the delays were learnt


def test_invalid_arguments():
    with pytest.raises(ValueError, match=r"max_delay must be an int >= 0 \(steps\), got -1"):
        DelayedLinear(2, 2, -1)
    with pytest.raises(ValueError, match=r"sigma must be a finite number > 0 \(steps\)"):
        DelayedLinear(2, 2, 3, sigma=0.0)
    with pytest.raises(ValueError, match="init_delay"):
        DelayedLinear(2, 2, 3, init_delay="random")
    with pytest.raises(ValueError, match=r"max_delay must be an int >= 0 \(bins\)"):
        DelaySNN(4, 2, sfreq=20.0, max_delay=-2)
    with pytest.raises(ValueError, match="needs sfreq"):
        DelaySNN(4, 2)


def test_pruning_zeroes_the_smallest_weights_and_their_operations():
    layer = _layer([[0.0, 1.0, 2.0], [0.0, 0.0, 3.0]], [[0.5, -4.0, 0.1], [2.0, -0.2, 3.0]])
    x = torch.full((1, 8, 3), 2.0)  # counts, not spikes: multiply-accumulates
    before = count_operations(_Seq(layer), x.transpose(1, 2), sfreq=1.0).effective_macs
    assert layer.prune(1 / 3) == 2  # |0.1| and |-0.2|
    assert layer.weight_mask.tolist() == [[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    after = count_operations(_Seq(layer), x.transpose(1, 2), sfreq=1.0).effective_macs
    # each pruned synapse saved one product per step its delayed input is inside the window
    assert before - after == (8 - 2) + (8 - 0)
    # fine-tuning cannot revive a pruned synapse: it contributes nothing, whatever its weight
    with torch.no_grad():
        layer.weight.fill_(1.0)
    assert layer.kernel()[0, 2].abs().sum() == 0
    assert layer.prune(0.5) == 3  # cumulative: one more
    with pytest.raises(ValueError, match="fraction"):
        layer.prune(1.0)


# Outputs of SNNStreaming and DelaySNN before they shared one implementation
# (_SpikingStreamingDecoder), recorded from the code of commit b25f49b: seed 3, Poisson counts.
RECORDED = {
    "snn": [[0.20168828964233398, 0.5105115175247192, 0.2934775650501251],
            [0.5124117136001587, 0.3925004303455353, 0.6443871259689331]],
    "cuba": [[0.26755088567733765, 0.368012011051178, 0.42894476652145386],
             [0.8127648830413818, 0.7413510084152222, 0.6980363130569458]],
    "delay": [[-0.03729122877120972, 0.08729895204305649, 0.023613516241312027],
              [0.10681798309087753, -0.0639452263712883, -0.05774366855621338]],
}
BUILD = {
    "snn": lambda: SNNStreaming(12, 2, sfreq=20.0, n_hidden=16),
    "cuba": lambda: SNNStreaming(12, 2, sfreq=20.0, n_hidden=16, neuron="cuba", learn_tau=True),
    "delay": lambda: DelaySNN(12, 2, sfreq=20.0, n_hidden=16, max_delay=4),
}


@pytest.mark.parametrize("name", list(RECORDED))
def test_shared_forward_reproduces_the_outputs_recorded_before_sharing(name):
    torch.manual_seed(3)  # initialisation draws in the same order as before
    model = BUILD[name]().eval()
    x = torch.poisson(torch.full((3, 12, 30), 2.0), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out, state = model.forward_sequence(x[..., :17], return_state=True)
    torch.testing.assert_close(out[0, :, -3:], torch.tensor(RECORDED[name]), rtol=0, atol=1e-6)
    # the state layouts are unchanged: (hidden, read-out), with the delay line first for DelaySNN
    assert len(state) == (3 if name == "delay" else 2)


def test_delay_snn_network_file_round_trip(tmp_path):
    from bci.models.decoder import load_network, network_info, save_network

    torch.manual_seed(0)
    model = DelaySNN(6, 2, sfreq=20.0, n_hidden=8, max_delay=3, sigma=0.5).eval()
    assert model.fc_in.prune(0.25) == 12
    with torch.no_grad():
        model.output_scale.copy_(torch.tensor([2.0, 0.5]))
    path = save_network(model, tmp_path / "delay.bci", info={"fold": 1})
    back = load_network(path)
    assert type(back) is DelaySNN
    assert not back.training
    assert back.get_config() == model.get_config()
    assert back.get_config()["max_delay"] == 3
    assert back.get_config()["sigma"] == 0.5
    # weights, real-valued delays and the pruning mask (a buffer) come back exactly
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    assert int((back.fc_in.weight_mask == 0).sum()) == 12
    x = torch.poisson(torch.full((2, 6, 25), 1.5), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(back.forward_sequence(x), model.forward_sequence(x))
    assert network_info(path) == {"fold": 1}
    # weights only (no pickle): the payload is a plain state_dict of tensors
    import zipfile

    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["manifest.json", "network.pt"]


def _pruned_delay_snn() -> DelaySNN:
    torch.manual_seed(0)
    model = DelaySNN(5, 2, sfreq=20.0, n_hidden=6, max_delay=3, learn_tau=True).eval()
    model.fc_in.prune(0.3)
    with torch.no_grad():
        model.output_scale.copy_(torch.tensor([2.0, 0.5]))
        model.output_offset.copy_(torch.tensor([0.1, -0.3]))
        model.fc_in.weight.mul_(4.0)  # enough input for the hidden neurons to spike
    return model


def test_delay_snn_exports_to_nir_as_one_branch_per_delay(tmp_path):
    nir = pytest.importorskip("nir")
    from bci.hw.nir_export import graph_input, load_nir, save_nir, to_nir

    model = _pruned_delay_snn()
    graph = to_nir(model)
    delays = model.fc_in.integer_delays()
    kept = model.fc_in.weight_mask != 0
    used = sorted({int(d) for d in delays[kept]})
    assert sorted(n for n in graph.nodes if n.startswith("fc_in_d")) == \
        sorted(f"fc_in_d{d}" for d in used)
    for d in used:
        if d:  # every input channel delayed by d steps of dt = 1 / sfreq
            np.testing.assert_allclose(graph.nodes[f"delay_d{d}"].delay, np.full(5, d / 20.0))
            assert ("input", f"delay_d{d}") in graph.edges
        assert (f"fc_in_d{d}", "lif_hidden") in graph.edges
    # the branches, simulated from the graph alone, are the delayed layer: sum_d W_d x[t - d]
    x = torch.poisson(torch.full((2, 5, 30), 1.5), generator=torch.Generator().manual_seed(4))
    inputs = graph_input(model, x).double().numpy()  # (batch, n_bins, n_chans)
    summed = np.zeros((2, 30, 6))
    for d in used:
        lag = round(float(graph.nodes[f"delay_d{d}"].delay[0]) * 20.0) if d else 0
        shifted = np.concatenate([np.zeros((2, lag, 5)), inputs[:, :30 - lag]], axis=1)
        summed += shifted @ np.asarray(graph.nodes[f"fc_in_d{d}"].weight, dtype=float).T
    with torch.no_grad():
        reference = model.fc_in(model.encoder(x)).double().numpy()
    np.testing.assert_allclose(summed, reference, rtol=1e-6, atol=1e-6)
    assert int(sum(np.count_nonzero(graph.nodes[f"fc_in_d{d}"].weight) for d in used)) == \
        int(kept.sum())  # pruned synapses are not in the graph
    # the file reads back into the same network: same predictions, same delays and mask
    back = load_nir(save_nir(model, tmp_path / "delay.nir"))
    assert type(back) is DelaySNN
    assert back.get_config() == model.get_config()
    assert torch.equal(back.fc_in.integer_delays()[kept], delays[kept])
    assert torch.equal(back.fc_in.weight_mask, model.fc_in.weight_mask)
    with torch.no_grad():
        torch.testing.assert_close(back.forward_sequence(x), model.forward_sequence(x),
                                   rtol=0, atol=1e-6)
        assert model.forward_sequence(x).abs().sum() > 0
    assert isinstance(graph, nir.NIRGraph)


def test_nir_graph_of_a_delay_snn_is_checked_when_read():
    nir = pytest.importorskip("nir")
    from bci.hw.nir_export import from_nir, to_nir

    model = _pruned_delay_snn()
    graph = to_nir(model)
    d = max(int(n[len("fc_in_d"):]) for n in graph.nodes if n.startswith("fc_in_d"))
    assert d > 0
    graph.nodes[f"delay_d{d}"] = nir.Delay(delay=np.full(5, (d + 1) / 20.0))
    with pytest.raises(ValueError, match=rf"'delay_d{d}' must delay its 5 channels by {d} "
                                         r"steps"):
        from_nir(graph)
    graph = to_nir(model)
    weight = np.asarray(graph.nodes["fc_in_d0"].weight).copy()
    weight[np.asarray(graph.nodes[f"fc_in_d{d}"].weight) != 0] = 1.0  # a second delay
    graph.nodes["fc_in_d0"] = nir.Linear(weight=weight)
    with pytest.raises(ValueError, match="one delay per synapse"):
        from_nir(graph)
    graph = to_nir(model)
    graph.edges.remove((f"fc_in_d{d}", "lif_hidden"))
    with pytest.raises(ValueError, match="must chain its nodes"):
        from_nir(graph)


def test_cli_exports_a_delay_snn_network_file_to_nir(tmp_path, capsys):
    pytest.importorskip("nir")
    from bci.cli import main
    from bci.hw.nir_export import load_nir
    from bci.models.decoder import save_network

    model = _pruned_delay_snn()
    path = save_network(model, tmp_path / "delay.bci")
    assert main(["export", "--format", "nir", str(path), "--out", str(tmp_path / "d.nir")]) == 0
    back = load_nir(tmp_path / "d.nir")
    x = torch.poisson(torch.full((1, 5, 20), 1.5), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        torch.testing.assert_close(back.forward_sequence(x), model.forward_sequence(x),
                                   rtol=0, atol=1e-6)
