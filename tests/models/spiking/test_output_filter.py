"""Bessel filtering of decoder outputs against scipy.signal."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from bci.models.spiking.output_filter import BesselFilter


def _noisy(seed=0, n=200, sfreq=20.0, noise=0.3):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / sfreq
    clean = np.stack([np.sin(2 * np.pi * 0.5 * t), np.cos(2 * np.pi * 0.3 * t)])
    return clean, clean + noise * rng.standard_normal(clean.shape)


def test_causal_equals_scipy_sosfilt_with_steady_start():
    _, x = _noisy()
    filt = BesselFilter(2.0, 20.0, order=3)
    sos = signal.bessel(3, 2.0, output="sos", fs=20.0, norm="phase")
    zi = signal.sosfilt_zi(sos)[:, None, :] * x[:, 0][None, :, None]
    expected, _ = signal.sosfilt(sos, x, axis=-1, zi=zi)
    np.testing.assert_allclose(filt.filter(x), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("mode", "block"), [("causal", 1), ("block_bidirectional", 5)])
def test_streaming_in_chunks_equals_offline(mode, block):
    _, x = _noisy(1, n=103)
    filt = BesselFilter(1.5, 20.0, mode=mode, block_size=block)
    offline = filt.filter(x)
    pieces = [filt.push(x[:, i:i + 7]) for i in range(0, x.shape[1], 7)]
    pieces.append(filt.flush())
    streamed = np.concatenate(pieces, axis=1)
    np.testing.assert_allclose(streamed, offline, rtol=1e-12, atol=1e-12)
    if mode == "block_bidirectional":  # released only when a block completes
        filt.reset()
        assert filt.push(x[:, :4]).shape == (2, 0)
        assert filt.push(x[:, 4:6]).shape == (2, 5)


def test_block_of_one_is_causal_and_block_is_forward_then_backward():
    _, x = _noisy(2, n=40)
    causal = BesselFilter(2.0, 20.0).filter(x)
    np.testing.assert_allclose(
        BesselFilter(2.0, 20.0, mode="block_bidirectional", block_size=1).filter(x), causal)
    whole = BesselFilter(2.0, 20.0, mode="block_bidirectional", block_size=40).filter(x)
    sos = BesselFilter(2.0, 20.0).sos
    rev = causal[:, ::-1]
    zi = signal.sosfilt_zi(sos)[:, None, :] * rev[:, 0][None, :, None]
    expected = signal.sosfilt(sos, rev, axis=-1, zi=zi)[0][:, ::-1]
    np.testing.assert_allclose(whole, expected, rtol=1e-12, atol=1e-12)


def test_filtering_recovers_a_smooth_signal_and_blocks_cut_the_lag():
    clean, x = _noisy(3, n=400, noise=1.0)
    err = {name: np.mean((f.filter(x) - clean) ** 2) for name, f in {
        "causal": BesselFilter(2.5, 20.0),
        "block": BesselFilter(2.5, 20.0, mode="block_bidirectional", block_size=8)}.items()}
    raw = np.mean((x - clean) ** 2)
    assert err["causal"] < 0.5 * raw
    assert err["block"] < err["causal"]  # phase lag removed inside blocks


def test_latency_figures():
    filt = BesselFilter(2.0, 20.0, order=2)
    # a slow ramp is delayed by the low-frequency group delay
    ramp = np.arange(400.0)[None] * 0.01
    lag_samples = np.mean(ramp[0, 100:] - filt.filter(ramp)[0, 100:]) / 0.01
    assert filt.group_delay_s() == pytest.approx(lag_samples / 20.0, rel=1e-3)
    assert filt.ramp_lag_s() == pytest.approx(filt.group_delay_s(), rel=1e-3)
    block = BesselFilter(2.0, 20.0, mode="block_bidirectional", block_size=8)
    assert abs(block.ramp_lag_s()) < 0.3 * filt.group_delay_s()  # backward passes undo it
    assert filt.buffering_s() == 0.0
    assert BesselFilter(2.0, 20.0, mode="block_bidirectional",
                        block_size=8).buffering_s() == pytest.approx(0.35)


def test_filter_errors():
    with pytest.raises(ValueError, match="below the Nyquist frequency"):
        BesselFilter(10.0, 20.0)
    with pytest.raises(ValueError, match=r"cutoff_hz must be a finite number > 0 \(Hz\), got 0.0"):
        BesselFilter(0.0, 20.0)
    with pytest.raises(TypeError, match=r"sfreq must be a number \(Hz\), got str"):
        BesselFilter(2.0, "20")
    with pytest.raises(TypeError, match=r"order must be an int, got float"):
        BesselFilter(2.0, 20.0, order=2.0)
    with pytest.raises(ValueError, match=r"block_size must be an int >= 1 \(samples\), got 0"):
        BesselFilter(2.0, 20.0, block_size=0)
    with pytest.raises(ValueError, match="Did you mean 'block_bidirectional'"):
        BesselFilter(2.0, 20.0, mode="block_bidirectional_")
    filt = BesselFilter(2.0, 20.0)
    filt.push(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="call reset\\(\\)"):
        filt.push(np.zeros((3, 3)))
