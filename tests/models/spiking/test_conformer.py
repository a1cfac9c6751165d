"""Spiking Conformer: approximate neurons (exact skips), the twin, gradients, operation counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bci.models._threads import torch_threads
from bci.models.registry import MODELS, get_model
from bci.models.spiking import neurons as neurons_module
from bci.models.spiking.conformer import MatMul, SpikingConformer
from bci.models.spiking.cost import count_operations
from bci.models.spiking.neurons import LIF, ApproxLIF
from bci.models.spiking.surrogate import surrogate_proxy
from bci.models.training import recalibrate_batch_norm_stats


@pytest.fixture(autouse=True)
def _one_thread():
    """Run on one torch thread.

    The unrolled neurons run many tiny ops, which oversubscribed OpenMP threads on a busy machine
    slow down many times over.
    """
    with torch_threads(1):
        yield


TINY = dict(n_filters_time=2, kernel_time=5, pool_size=8, d_model=8, n_heads=2, depth=1,
            mlp_ratio=2, kernel_token=3, drop_prob=0.0)


def _tiny(seed: int = 0, **kwargs) -> SpikingConformer:
    torch.manual_seed(seed)
    return SpikingConformer(2, 2, 64, sfreq=128.0, **{**TINY, **kwargs})


def _x(batch: int = 6, seed: int = 1, n_chans: int = 2, n_times: int = 64) -> torch.Tensor:
    return torch.randn(batch, n_chans, n_times, generator=torch.Generator().manual_seed(seed))


def _calibrated(model: SpikingConformer, x: torch.Tensor) -> SpikingConformer:
    """Set the BatchNorm statistics to those of ``x``.

    So the untrained network's neurons receive unit-scale currents and spike.
    """
    return recalibrate_batch_norm_stats(model, x, batch_size=len(x))


# -- approximate neurons --------------------------------------------------------------------------
def _event_driven_reference(current: torch.Tensor, beta: float, threshold: float):
    """Neuron by neuron, step by step, touching only the neurons the skip rule does not skip."""
    batch, n_steps, n_neurons = current.shape
    spikes = torch.zeros_like(current)
    n_skipped = 0
    for b in range(batch):
        for n in range(n_neurons):
            v, s = 0.0, 0.0
            for t in range(n_steps):
                i = float(current[b, t, n])
                if v == 0.0 and i <= 0.0:
                    n_skipped += 1  # state stays 0, no spike: nothing to compute
                    continue
                v = max(0.0, beta * v + i - threshold * s)
                s = 1.0 if v > threshold else 0.0
                spikes[b, t, n] = s
    return spikes, n_skipped


def test_approx_lif_skips_are_exact():
    gen = torch.Generator().manual_seed(0)
    current = torch.randn(3, 20, 4, generator=gen, dtype=torch.float64) * 0.8
    lif = ApproxLIF(4, beta=0.7, threshold=1.0)
    spikes, _ = lif(current)
    ref, n_skipped = _event_driven_reference(current, 0.7, 1.0)
    assert torch.equal(spikes, ref)
    mask = lif.skip_mask(current)
    assert int(mask.sum()) == n_skipped > 0
    # skipped neurons never spike at that step
    assert not spikes[mask].any()


def test_approx_lif_equals_lif_without_negative_membrane():
    # positive currents and a reset to zero: the membrane never goes below 0, so the floor
    # never acts and nothing is skipped: identical to LIF (a subtractive reset can undershoot)
    gen = torch.Generator().manual_seed(1)
    current = torch.rand(2, 30, 5, generator=gen) * 0.9 + 0.01
    approx, plain = ApproxLIF(5, beta=0.6, reset="zero"), LIF(5, beta=0.6, reset="zero")
    assert torch.equal(approx(current)[0], plain(current)[0])
    assert not approx.skip_mask(current).any()


def test_approx_lif_hand_example_and_gradient():
    lif = ApproxLIF(1, beta=0.5, threshold=1.0)
    current = torch.tensor([[[-0.5], [0.6], [-1.0], [-0.2], [1.5]]], requires_grad=True)
    spikes, (v, s) = lif(current)
    assert spikes.flatten().tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert lif.skip_mask(current).flatten().tolist() == [True, False, False, True, False]
    assert v.item() == pytest.approx(1.5)
    assert s.item() == 1.0
    spikes.sum().backward()
    assert current.grad[0, 4, 0] > 0  # the surrogate gradient reaches the input


# -- the model ------------------------------------------------------------------------------------
def test_registered_and_documented_in_registry():
    assert MODELS["SpikingConformer"] is SpikingConformer
    model = get_model("SpikingConformer", 2, 2, 64, sfreq=128.0, **TINY)
    assert model.n_tokens == 8


def test_twin_and_plain_lif_share_parameters():
    spiking = _tiny()
    twin = _tiny(spiking=False)
    plain = _tiny(approximate=False)
    n = sum(p.numel() for p in spiking.parameters())
    assert n == sum(p.numel() for p in twin.parameters()) == sum(
        p.numel() for p in plain.parameters())
    # the same state dict loads into all three
    twin.load_state_dict(spiking.state_dict())
    plain.load_state_dict(spiking.state_dict())
    x = _x()
    for model in (spiking, twin, plain):
        assert model.eval()(x).shape == (6, 2)


def test_spiking_layers_emit_binary_spikes_and_twin_is_real_valued():
    x = _x()
    outputs = {}
    for spiking in (True, False):
        model = _calibrated(_tiny(spiking=spiking), x)
        seen = []
        kinds = (LIF,) if spiking else (nn.ReLU,)
        hooks = [m.register_forward_hook(lambda mod, args, out, seen=seen: seen.append(
            out[0] if isinstance(out, tuple) else out)) for m in model.modules()
            if isinstance(m, kinds)]
        with torch.no_grad():
            model(x)
        for h in hooks:
            h.remove()
        values = torch.cat([s.flatten() for s in seen])
        outputs[spiking] = values
    assert set(outputs[True].unique().tolist()) == {0.0, 1.0}
    assert len(outputs[False].unique()) > 10


def test_approximate_vs_plain_on_same_weights_differ_only_by_the_floor():
    x = _x(batch=8)
    approx = _calibrated(_tiny(), x)
    plain = _tiny(approximate=False)
    plain.load_state_dict(approx.state_dict())
    plain.eval()
    with torch.no_grad():
        out_a, out_p = approx(x), plain(x)
    assert torch.isfinite(out_a).all()
    assert torch.isfinite(out_p).all()
    # both run; where no membrane goes negative they would agree, here they need not
    assert out_a.shape == out_p.shape


def test_surrogate_gradients_flow_and_training_lowers_the_loss():
    # a surrogate gradient is not the true gradient, so a single step need not descend; a few
    # optimiser steps must
    model = _tiny().train()
    x, y = _x(batch=8), torch.tensor([0, 1] * 4)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss0 = F.cross_entropy(model(x), y)
    loss0.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert model.conv_time.weight.grad.abs().sum() > 0
    for _ in range(20):
        opt.step()
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
    assert loss.item() < 0.7 * loss0.item()


def test_surrogate_gradient_matches_finite_differences(monkeypatch):
    # with every spike replaced by the surrogate's proxy (whose exact derivative is the
    # surrogate), the network is smooth: its autograd gradient must match finite differences
    def proxy_spike(x, surrogate="fast_sigmoid", slope=25.0):
        return surrogate_proxy(x, surrogate, slope)

    monkeypatch.setattr(neurons_module, "spike", proxy_spike)
    torch.manual_seed(0)
    model = SpikingConformer(2, 2, 32, sfreq=128.0, approximate=False,
                             **{**TINY, "pool_size": 8}).double().eval()
    for module in model.modules():
        if isinstance(module, LIF):  # the reset must be differentiated too (detached by default)
            module.detach_reset = False
    x = _x(batch=2, n_times=32).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x_: model(x_), (x,), eps=1e-6, atol=1e-5,
                                     fast_mode=True)
    twin = SpikingConformer(2, 2, 32, sfreq=128.0, spiking=False, **TINY).double().eval()
    assert torch.autograd.gradcheck(lambda x_: twin(x_), (x,), eps=1e-6, atol=1e-5,
                                    fast_mode=True)


def test_seeded_training_mode_is_reproducible():
    x = _x()
    outs = []
    for _ in range(2):
        model = _tiny(seed=3, drop_prob=0.3).train()
        torch.manual_seed(4)
        outs.append(model(x))
    assert torch.equal(outs[0], outs[1])


def test_invalid_arguments():
    with pytest.raises(ValueError, match="d_model=10 must be a multiple of n_heads=4"):
        SpikingConformer(2, 2, 64, d_model=10, n_heads=4)
    with pytest.raises(TypeError, match="spiking must be True or False"):
        SpikingConformer(2, 2, 64, spiking=1)
    with pytest.raises(ValueError, match="Unknown twin_attention 'soft'"):
        SpikingConformer(2, 2, 64, twin_attention="soft")
    with pytest.raises(ValueError, match="beta must be a decay per step in \\(0, 1\\)"):
        SpikingConformer(2, 2, 64, beta=1.5)
    # the 3-token convolution needs 2 tokens of 8 samples
    assert SpikingConformer(2, 2, 64, **TINY).min_n_times == 16
    with pytest.raises(ValueError, match="n_times=15 is too short for SpikingConformer; it "
                                         "needs >= 16 samples"):
        SpikingConformer(2, 2, 15, **TINY)


# -- operation counts ---------------------------------------------------------------------------
class _MatMulModel(nn.Module):
    def __init__(self, b: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("b", b)
        self.matmul = MatMul()

    def forward(self, x):
        return self.matmul(x, self.b).sum(1)


def test_count_matmul_by_hand():
    b = torch.tensor([[1.0, 0.0], [2.0, 3.0], [0.0, 4.0]])
    spikes = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]])  # (1, 2, 3)
    counts = count_operations(_MatMulModel(b), spikes, sfreq=1.0)
    # row 1: inputs 0 and 2 -> 1 + 1 non-zero weights; row 2: inputs 1 and 2 -> 2 + 1
    assert counts.effective_acs == 5
    assert counts.effective_macs == 0
    assert counts.dense_ops == 2 * 3 * 2
    counts = count_operations(_MatMulModel(b), spikes * 0.5, sfreq=1.0)
    assert counts.effective_macs == 5
    assert counts.effective_acs == 0


class _ApproxModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.neurons = ApproxLIF(1, beta=0.5, threshold=1.0)

    def forward(self, x):
        return self.neurons(x.transpose(1, 2))[0].sum(1)


def test_count_skipped_updates_by_hand():
    x = torch.tensor([[[-0.5, 0.6, -1.0, -0.2, 1.5]]])  # (1 window, 1 neuron, 5 steps)
    counts = count_operations(_ApproxModel(), x, sfreq=1.0)
    assert counts.neuron_updates == 3
    assert counts.neuron_updates_skipped == 2
    assert counts.per_second()["neuron_updates_skipped"] == 2


def _neuron_steps(cfg: dict, n_chans: int, n_tokens: int) -> int:
    d, hidden = cfg["d_model"], cfg["mlp_ratio"] * cfg["d_model"]
    per_block = 5 * d + d + (d + hidden)  # attention (in, q, k, v, product), conv, MLP
    return n_tokens * (cfg["n_filters_time"] * n_chans + cfg["depth"] * per_block + d)


def test_conformer_operation_counts_by_hand():
    x = _x(batch=4)
    approx = _calibrated(_tiny(), x)
    plain = _tiny(approximate=False)
    plain.load_state_dict(approx.state_dict())
    twin = _tiny(spiking=False)
    twin.load_state_dict(approx.state_dict())
    c_a, c_p, c_t = (count_operations(m, x, sfreq=2.0) for m in (approx, plain, twin))
    # the only multiply-accumulates of the spiking model: the temporal convolution on the raw
    # signal: 2 filters x 2 channels x (64 outputs x 5 taps - 2 x 3 taps on the zero padding)
    assert c_a.effective_macs == c_p.effective_macs == 2 * 2 * (64 * 5 - 6)
    assert c_a.effective_acs > 0
    assert c_t.effective_acs == 0
    assert c_t.effective_macs > c_a.effective_macs
    # neuron updates: every neuron once per token; the approximate ones skip some
    total = _neuron_steps(TINY, 2, 8)
    assert c_p.neuron_updates == total
    assert c_p.neuron_updates_skipped == 0
    assert c_a.neuron_updates + c_a.neuron_updates_skipped == total
    assert c_a.neuron_updates_skipped > 0
    assert c_t.neuron_updates == 0
    assert 0 < c_a.activation_sparsity < 1
    assert c_a.param_bytes == c_t.param_bytes
    assert c_a.synaptic_operations == c_a.effective_macs + c_a.effective_acs
    # a windowed decoder keeps its input window as state: (n_chans x (n_times - 1)) floats
    assert c_t.state_bytes == 4 * 2 * 63


def test_network_file_round_trip(tmp_path):
    from bci.models.decoder import load_network, save_network

    model = _calibrated(_tiny(), _x()).eval()
    back = load_network(save_network(model, tmp_path / "conformer.bci")).eval()
    assert type(back) is SpikingConformer
    assert back.get_config() == model.get_config()
    with torch.no_grad():
        assert torch.equal(back(_x()), model(_x()))


def test_with_neurons_swaps_the_neuron_and_keeps_the_weights():
    x = _x(batch=8)
    approx = _calibrated(_tiny(), x)
    plain = approx.with_neurons(approximate=False)
    assert (plain.approximate, approx.approximate) == (False, True)
    assert not plain.training
    state, copied = approx.state_dict(), plain.state_dict()
    assert list(state) == list(copied)
    assert all(torch.equal(state[k], copied[k]) for k in state)
    # the same as building the plain model and loading the weights by hand
    by_hand = _tiny(approximate=False)
    by_hand.load_state_dict(state)
    with torch.no_grad():
        assert torch.equal(plain(x), by_hand.eval()(x))
        # and back: the approximate neuron again gives the original outputs
        assert torch.equal(plain.with_neurons(approximate=True)(x), approx.eval()(x))
    assert sum(isinstance(m, ApproxLIF) for m in plain.modules()) == 0
    assert sum(isinstance(m, ApproxLIF) for m in approx.modules()) > 0
    with pytest.raises(ValueError, match="non-spiking twin"):
        _tiny(spiking=False).with_neurons(approximate=True)
    with pytest.raises(TypeError, match="approximate"):
        approx.with_neurons(approximate="yes")


# -- spike-encoded input -------------------------------------------------------------------------
def _events_away_from_edges(batch: int = 3) -> torch.Tensor:
    """Return steps of +-1.5 at known samples, >= kernel_time // 2 from the window's edges."""
    x = torch.zeros(batch, 2, 64)
    gen = torch.Generator().manual_seed(3)
    for b in range(batch):
        for c in range(2):
            for t in torch.randperm(50, generator=gen)[:6].tolist():
                x[b, c, 5 + t:] += 1.5 if (t + b + c) % 2 else -1.5
    return x


def test_delta_input_first_layer_accumulates_its_events():
    x = _events_away_from_edges()
    model = _calibrated(_tiny(input_encoding="delta", encoder_threshold=1.0), x)
    with torch.no_grad():
        events = model.encoder(x)
    n_events = int(events.ne(0).sum())
    assert n_events == int(torch.diff(x, dim=-1).abs().gt(1.0).sum()) > 0
    counts = count_operations(model, x, sfreq=1.0)
    # every event reaches kernel_time taps of each of the n_filters_time filters, once
    kernel, n_filters = TINY["kernel_time"], TINY["n_filters_time"]
    assert counts.synaptic_operations_by_layer["conv_time"] == (
        n_events * kernel * n_filters / len(x))
    # no multiply-accumulate left anywhere: every connection reads spikes
    assert counts.effective_macs == 0
    assert counts.effective_acs == pytest.approx(sum(counts.synaptic_operations_by_layer.values()))
    # the dense-input model multiplies on its first layer instead
    dense = count_operations(_tiny(), x, sfreq=1.0)
    assert dense.synaptic_operations_by_layer["conv_time"] == dense.effective_macs > 0


def test_delta_input_levels_shape_config_and_errors():
    model = _tiny(input_encoding="delta", encoder_levels=3, encoder_threshold=0.25)
    assert model.conv_time.in_channels == 3
    assert model.encoder.thresholds.detach().tolist() == [[0.25, 0.5, 0.75]] * 2
    assert model(_x()).shape == (6, 2)
    rebuilt = SpikingConformer(**model.get_config())
    assert rebuilt.get_config() == model.get_config()
    assert _tiny().encoder is None
    with pytest.raises(ValueError, match="input_encoding"):
        _tiny(input_encoding="rate")
    with pytest.raises(ValueError, match=r"encoder_threshold must be a finite number > 0"):
        _tiny(input_encoding="delta", encoder_threshold=-1.0)
    with pytest.raises(ValueError, match=r"spike_penalty must be a finite number >= 0"):
        _tiny(spike_penalty=float("nan"))


def test_spike_penalty_adds_the_rate_gradient_and_changes_no_output():
    x = _x(batch=8).cumsum(-1) / 4  # a smooth signal: its changes drive the first neurons
    base = _calibrated(_tiny(input_encoding="delta"), x)
    penalised = _tiny(input_encoding="delta", spike_penalty=0.7)
    penalised.load_state_dict(base.state_dict())
    for model in (base, penalised):
        model.train()
        torch.manual_seed(0)
    # forward values are unchanged
    with torch.no_grad():
        assert torch.equal(base.eval()(x), penalised.eval()(x))
    # the penalised gradient equals the gradient of loss + 0.7 * sum of mean |spikes|
    spikes: list[torch.Tensor] = []

    def keep(module, args, output):
        spikes.append(output)

    hooks = [m.register_forward_hook(keep) for m in base.modules()
             if type(m).__name__ == "_Neurons"]
    hooks.append(base.encoder.register_forward_hook(keep))
    base.train()
    penalised.train()
    base.zero_grad()
    loss = base(x)[:, 0].pow(2).sum() + 0.7 * sum(s.abs().mean() for s in spikes)
    loss.backward()
    for hook in hooks:
        hook.remove()
    penalised.zero_grad()
    penalised(x)[:, 0].pow(2).sum().backward()
    for (name, p), q in zip(penalised.named_parameters(), base.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)
    plain = _grad_without_penalty(base.state_dict(), x)
    assert not torch.allclose(penalised.blocks[0].mlp.fc_1.weight.grad, plain)


def _grad_without_penalty(state: dict, x: torch.Tensor) -> torch.Tensor:
    model = _tiny(input_encoding="delta")
    model.load_state_dict(state)
    model.train()
    model(x)[:, 0].pow(2).sum().backward()
    return model.blocks[0].mlp.fc_1.weight.grad
