"""Encoders from counts to currents / spikes."""

from __future__ import annotations

import pytest
import torch

from bci.models.spiking.encoders import DeltaEncoder, DirectEncoder, ThresholdEncoder


def test_direct_encoder_transforms_and_repeat():
    x = torch.tensor([[[0.0, 4.0, 9.0], [1.0, 3.0, -2.0]]])
    out = DirectEncoder(2, transform="sqrt")(x)
    assert out.shape == (1, 3, 2)
    torch.testing.assert_close(out[0, :, 0], torch.tensor([0.0, 2.0, 3.0]))
    assert out[0, 2, 1] == 0.0  # negative counts clip to 0 before the square root
    log = DirectEncoder(2, transform="log1p")(x)
    torch.testing.assert_close(log[0, 1, 0], torch.log1p(torch.tensor(4.0)))
    rep = DirectEncoder(2, repeat=3)(x[..., :1])
    assert rep.shape == (1, 3, 2)
    assert torch.equal(rep[0, 0], rep[0, 2])


def test_direct_encoder_learned_gain_gets_gradients():
    enc = DirectEncoder(2, learn_gain=True)
    enc(torch.ones(1, 2, 4)).pow(2).sum().backward()
    assert enc.gain.grad.tolist() == [8.0, 8.0]  # d/dg sum (g x + b)^2 = 2 * 4 * 1


def test_threshold_encoder_thermometer_code_and_threshold_gradients():
    enc = ThresholdEncoder(1, n_levels=3, init_range=(0.0, 4.0))  # thresholds 1, 2, 3
    x = torch.tensor([[[0.5, 1.5, 2.5, 3.5]]])
    out = enc(x)
    assert out[0].sum(1).tolist() == [0.0, 1.0, 2.0, 3.0]
    out.sum().backward()
    assert (enc.thresholds.grad < 0).all()  # raising a threshold can only remove spikes
    with pytest.raises(ValueError, match="high > low"):
        ThresholdEncoder(1, init_range=(1.0, 1.0))
    with pytest.raises(TypeError, match=r"init_range must be a \(low, high\) pair, got 2.0"):
        ThresholdEncoder(1, init_range=2.0)
    with pytest.raises(ValueError, match=r"init_range\[1\] \(high\) must be a finite number, got "
                                         r"nan"):
        ThresholdEncoder(1, init_range=(0.0, float("nan")))
    with pytest.raises(TypeError, match=r"n_levels must be an int, got float"):
        ThresholdEncoder(1, n_levels=2.0)
    with pytest.raises(ValueError, match=r"repeat must be an int >= 1 \(steps per sample\), got 0"):
        DirectEncoder(1, repeat=0)
    with pytest.raises(ValueError, match="n_chans=1, n_times"):
        enc(torch.zeros(1, 2, 3))


def test_delta_encoder_signed_events_by_hand():
    enc = DeltaEncoder(2, n_levels=2, init_threshold=0.5)  # thresholds 0.5 and 1.0
    x = torch.tensor([[[0.0, 0.7, 2.0, 2.1, 0.9], [5.0, 5.0, 4.4, 4.4, 4.45]]])
    out = enc(x)  # changes: [0, .7, 1.3, .1, -1.2] and [0, 0, -.6, 0, .05]
    assert out.shape == (1, 5, 4)
    assert out[0, :, 0].tolist() == [0.0, 1.0, 1.0, 0.0, -1.0]  # channel 0, |change| > 0.5
    assert out[0, :, 1].tolist() == [0.0, 0.0, 1.0, 0.0, -1.0]  # channel 0, |change| > 1.0
    assert out[0, :, 2].tolist() == [0.0, 0.0, -1.0, 0.0, 0.0]
    assert out[0, :, 3].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0]
    assert set(out.unique().tolist()) <= {-1.0, 0.0, 1.0}
    # a constant offset emits nothing: only changes are coded
    assert not enc(x + 100.0)[:, 1:].ne(out[:, 1:]).any()


def test_delta_encoder_threshold_gradients_and_errors():
    enc = DeltaEncoder(1, init_threshold=0.5)
    x = torch.tensor([[[0.0, 0.6, 0.0, 0.6]]])  # |change| 0.6 just above the threshold
    enc(x).abs().sum().backward()
    assert enc.thresholds.grad.item() < 0  # raising the threshold can only remove events
    with pytest.raises(ValueError, match=r"init_threshold must be a finite number > 0"):
        DeltaEncoder(1, init_threshold=0.0)
    with pytest.raises(ValueError, match=r"init_threshold must be a finite number"):
        DeltaEncoder(1, init_threshold=float("nan"))
    with pytest.raises(ValueError, match="n_chans=1, n_times"):
        enc(torch.zeros(1, 2, 3))
