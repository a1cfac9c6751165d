"""Surrogate gradients and LIF / current-based LIF neurons.

Closed forms, finite differences, and snnTorch (the reference implementation) on the same currents.
"""

from __future__ import annotations

import math

import pytest
import torch

from bci.models.spiking.neurons import LIF, CubaLIF, decay_from_tau
from bci.models.spiking.surrogate import (
    SURROGATES,
    spike,
    surrogate_derivative,
    surrogate_proxy,
)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_surrogate_matches_finite_differences_of_its_proxy(name):
    x = torch.linspace(-0.6, 0.6, 41, dtype=torch.float64)
    x = x[x.abs() > 1e-3]  # the proxies of fast_sigmoid/triangle have kinks at 0 in higher terms
    h = 1e-6
    numeric = (surrogate_proxy(x + h, name, 3.0) - surrogate_proxy(x - h, name, 3.0)) / (2 * h)
    torch.testing.assert_close(surrogate_derivative(x, name, 3.0), numeric, rtol=1e-6,
                               atol=1e-8)
    xg = x.clone().requires_grad_(True)
    spike(xg, name, 3.0).sum().backward()
    torch.testing.assert_close(xg.grad, numeric, rtol=1e-6, atol=1e-8)


def test_spike_forward_is_heaviside_and_closed_form_derivatives():
    x = torch.tensor([-1.0, 0.0, 1e-7, 2.0])
    assert spike(x).tolist() == [0.0, 0.0, 1.0, 1.0]
    z = torch.tensor([0.5], dtype=torch.float64)
    assert surrogate_derivative(z, "fast_sigmoid", 2.0).item() == pytest.approx(1 / 4)
    assert surrogate_derivative(z, "atan", 2.0).item() == pytest.approx(
        1 / (1 + (math.pi / 2) ** 2))
    assert surrogate_derivative(z, "triangle", 4.0).item() == 0.0


def test_surrogate_errors():
    with pytest.raises(ValueError, match="Did you mean 'atan'"):
        spike(torch.zeros(1), "atann")
    with pytest.raises(ValueError, match=r"slope must be a finite number > 0, got 0.0. It is the "
                                         r"steepness of the surrogate gradient"):
        spike(torch.zeros(1), "atan", 0.0)
    with pytest.raises(TypeError, match=r"slope must be a number, got str"):
        spike(torch.zeros(1), "atan", "2")
    with pytest.raises(TypeError, match=r"surrogate must be a string, one of atan, "):
        spike(torch.zeros(1), None)


def test_lif_closed_form_subtract_and_zero_reset():
    current = torch.full((1, 4, 1), 0.6)
    spikes, (v, _) = LIF(1, beta=0.5, threshold=1.0, reset="subtract")(current)
    # v: 0.6, 0.9, 1.05 (spike), 0.5 * 1.05 + 0.6 - 1 = 0.125
    assert spikes.flatten().tolist() == [0.0, 0.0, 1.0, 0.0]
    assert v.item() == pytest.approx(0.125)
    spikes, (v, _) = LIF(1, beta=0.5, threshold=1.0, reset="zero")(current)
    assert spikes.flatten().tolist() == [0.0, 0.0, 1.0, 0.0]
    assert v.item() == pytest.approx(0.6)  # decayed potential removed: v = I
    membrane, _ = LIF(1, beta=0.5, reset="none", output="membrane")(current)
    expected = [0.6 * (1 - 0.5 ** (t + 1)) / 0.5 for t in range(4)]
    assert membrane.flatten().tolist() == pytest.approx(expected)


def test_decay_from_tau():
    assert decay_from_tau(0.1, 20.0) == pytest.approx(math.exp(-0.5))
    with pytest.raises(ValueError, match=r"tau_s must be a finite number > 0 \(seconds\), "
                                         r"got -1.0"):
        decay_from_tau(-1.0, 20.0)
    with pytest.raises(TypeError, match=r"sfreq must be a number \(Hz\), got str"):
        decay_from_tau(0.1, "20")


@pytest.mark.parametrize("reset", ["subtract", "zero", "none"])
def test_lif_matches_snntorch_leaky(reset):
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    gen = torch.Generator().manual_seed(0)
    current = torch.rand(3, 30, 5, generator=gen) * 0.8
    ours = LIF(5, beta=0.8, threshold=1.0, reset=reset, surrogate="fast_sigmoid", slope=25.0)
    spikes, _ = ours(current)
    ref = snn.Leaky(beta=0.8, threshold=1.0, reset_mechanism=reset,
                    spike_grad=surrogate.fast_sigmoid(slope=25))
    mem = torch.zeros(3, 5)
    ref_spikes = []
    for t in range(30):
        spk, mem = ref(current[:, t], mem)
        ref_spikes.append(spk)
    ref_spikes = torch.stack(ref_spikes, 1)
    assert ref_spikes.sum() > 5  # the comparison is about spiking activity
    torch.testing.assert_close(spikes, ref_spikes)


def test_lif_gradients_match_snntorch():
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    gen = torch.Generator().manual_seed(1)
    w = torch.randn(4, 6, generator=gen, dtype=torch.float64) * 0.5
    x = torch.rand(2, 25, 4, generator=gen, dtype=torch.float64)
    target = torch.randn(2, 25, 6, generator=gen, dtype=torch.float64)

    w1 = w.clone().requires_grad_(True)
    out, _ = LIF(6, beta=0.9, threshold=1.0, reset="subtract", slope=25.0)(x @ w1)
    ((out - target) ** 2).sum().backward()

    w2 = w.clone().requires_grad_(True)
    ref = snn.Leaky(beta=torch.tensor(0.9, dtype=torch.float64), threshold=1.0,
                    spike_grad=surrogate.fast_sigmoid(slope=25))
    mem = torch.zeros(2, 6, dtype=torch.float64)
    outs = []
    for t in range(25):
        spk, mem = ref(x[:, t] @ w2, mem)
        outs.append(spk)
    ((torch.stack(outs, 1) - target) ** 2).sum().backward()
    assert w1.grad.abs().sum() > 0
    torch.testing.assert_close(w1.grad, w2.grad)


def _straight_through_lif(current, beta, threshold, slope):
    """Run an independent LIF whose spike is a straight-through estimator.

    With the fast-sigmoid proxy: forward H(v - theta), backward d proxy / dv.
    """
    v = torch.zeros_like(current[:, 0])
    s = torch.zeros_like(v)
    outs = []
    for t in range(current.shape[1]):
        v = beta * v + current[:, t] - threshold * s.detach()
        proxy = surrogate_proxy(v - threshold, "fast_sigmoid", slope)
        s = (v > threshold).to(v.dtype) + proxy - proxy.detach()
        outs.append(s)
    return torch.stack(outs, 1)


def test_lif_gradient_equals_straight_through_reference_and_learnable_beta():
    gen = torch.Generator().manual_seed(2)
    w = (torch.randn(3, 4, generator=gen, dtype=torch.float64) * 0.7).requires_grad_(True)
    x = torch.rand(2, 20, 3, generator=gen, dtype=torch.float64)
    out = LIF(4, beta=0.7, slope=10.0)(x @ w)[0]  # fixed decays are exact in float64
    (g_ours,) = torch.autograd.grad(out.pow(2).sum() + out.sum(), w)
    ref = _straight_through_lif(x @ w, 0.7, 1.0, 10.0)
    (g_ref,) = torch.autograd.grad(ref.pow(2).sum() + ref.sum(), w)
    torch.testing.assert_close(g_ours, g_ref)

    lif = LIF(4, beta=0.7, learn_beta=True, slope=10.0).double()
    assert torch.allclose(lif.beta(torch.float64), torch.full((4,), 0.7, dtype=torch.float64))
    membrane_lif = LIF(4, beta=0.7, learn_beta=True, reset="none", output="membrane").double()
    membrane_lif(x @ w.detach())[0].sum().backward()
    assert membrane_lif.beta.logit.grad.abs().min() > 0


def test_cuba_lif_matches_snntorch_synaptic():
    snn = pytest.importorskip("snntorch")
    from snntorch import surrogate

    gen = torch.Generator().manual_seed(3)
    current = torch.rand(2, 40, 3, generator=gen) * 0.4
    spikes, _ = CubaLIF(3, alpha=0.6, beta=0.85, threshold=1.0)(current)
    ref = snn.Synaptic(alpha=0.6, beta=0.85, threshold=1.0,
                       spike_grad=surrogate.fast_sigmoid(slope=25))
    syn, mem = torch.zeros(2, 3), torch.zeros(2, 3)
    outs = []
    for t in range(40):
        spk, syn, mem = ref(current[:, t], syn, mem)
        outs.append(spk)
    ref_spikes = torch.stack(outs, 1)
    assert ref_spikes.sum() > 5
    torch.testing.assert_close(spikes, ref_spikes)


@pytest.mark.parametrize("cls", [LIF, CubaLIF])
def test_state_carries_across_chunks(cls):
    gen = torch.Generator().manual_seed(4)
    current = torch.rand(2, 30, 3, generator=gen)
    neuron = cls(3, beta=0.8, threshold=0.9)
    whole, _ = neuron(current)
    first, state = neuron(current[:, :13])
    second, _ = neuron(current[:, 13:], state)
    assert whole.sum() > 0
    torch.testing.assert_close(torch.cat([first, second], 1), whole)


def test_neuron_errors():
    with pytest.raises(ValueError, match="beta must be a decay per step in \\(0, 1\\)"):
        LIF(3, beta=1.5)
    with pytest.raises(ValueError, match="Unknown reset 'zeros'"):
        LIF(3, reset="zeros")
    with pytest.raises(ValueError, match="n_neurons=3\\), got \\(2, 5, 4\\)"):
        LIF(3)(torch.zeros(2, 5, 4))
    with pytest.raises(ValueError, match=r"beta must be a decay per step in \(0, 1\), got nan. A "
                                         r"decay per step is exp\(-dt / tau\)"):
        LIF(3, beta=float("nan"))
    with pytest.raises(ValueError, match=r"alpha must be a decay per step in \(0, 1\), got 0.0"):
        CubaLIF(3, alpha=0.0)
    with pytest.raises(TypeError, match=r"n_neurons must be an int, got float \(3.0\)"):
        LIF(3.0)
    with pytest.raises(ValueError, match=r"n_neurons must be an int >= 1, got 0"):
        LIF(0)
    with pytest.raises(ValueError, match=r"threshold must be a finite number > 0, got inf"):
        LIF(3, threshold=float("inf"))
    with pytest.raises(TypeError, match=r"beta must be a decay per step, got str"):
        LIF(3, beta="0.9")
