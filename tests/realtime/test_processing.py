"""Causal processing: chunked online == offline, references (scipy), group delays, NaN holding."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from bci.realtime.processing import (
    CausalFilter,
    Envelope,
    FunctionProcessor,
    HoldNonFinite,
    ProcessingChain,
    Recenter,
    Rereference,
)

SFREQ = 250.0


def _chain(ch_names):
    return ProcessingChain([
        Rereference(ch_names, "average"),
        CausalFilter(SFREQ, 1.0, 40.0),
        CausalFilter(SFREQ, 50.0, kind="notch"),
        Recenter(SFREQ, memory_s=5.0, update_s=0.5),
        Envelope(SFREQ, 0.1),
    ])


def test_chunked_online_equals_offline_to_float_precision():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 5000)) * 1e-5 + 3e-3  # µV noise on a 3 mV DC offset
    x_copy = x.copy()
    chain = _chain([f"E{i}" for i in range(6)])
    offline = chain.apply(x)
    chain.reset()
    cuts = np.sort(rng.choice(np.arange(1, 5000), size=300, replace=False))
    online = np.concatenate([chain.process(c) for c in np.split(x, cuts, axis=1)], axis=1)
    np.testing.assert_array_equal(x, x_copy)  # inputs untouched
    scale = np.abs(offline).max()
    assert np.abs(online - offline).max() <= 1e-9 * scale
    # the whitening acted (the test would be weaker with an identity stage)
    late = offline[:, -1000:]
    assert late.std() > 100 * x.std()


def test_filter_matches_scipy_and_is_causal():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 2000))
    filt = CausalFilter(SFREQ, 8.0, 30.0, order=4, init="zeros")
    y = filt.process(x)
    sos = signal.butter(4, [8.0, 30.0], btype="bandpass", fs=SFREQ, output="sos")
    np.testing.assert_allclose(y, signal.sosfilt(sos, x, axis=-1), rtol=1e-12, atol=1e-15)
    # causal: changing the future does not change the past
    x2 = x.copy()
    x2[:, 1000:] = 0
    filt.reset()
    np.testing.assert_array_equal(filt.process(x2)[:, :1000], y[:, :1000])


def test_steady_state_start_has_no_step_transient():
    x = np.full((1, 500), 5.0)
    assert np.abs(CausalFilter(SFREQ, 1.0, 40.0).process(x)).max() < 1e-9
    assert np.abs(CausalFilter(SFREQ, 1.0, 40.0, init="zeros").process(x)).max() > 0.5


def test_group_delay_reported_matches_measured_lag():
    filt = CausalFilter(SFREQ, 8.0, 12.0, order=2)
    gd = filt.group_delay_s
    b, a = signal.sos2tf(filt.sos)
    _, ref = signal.group_delay((b, a), w=[np.sqrt(96.0)], fs=SFREQ)
    assert gd == pytest.approx(ref[0] / SFREQ)
    # a 10 Hz burst envelope comes out delayed by about the group delay
    t = np.arange(int(4 * SFREQ)) / SFREQ
    env = np.exp(-0.5 * ((t - 2.0) / 0.15) ** 2)
    y = filt.process((env * np.sin(2 * np.pi * 10 * t))[None])[0]
    peak = t[np.argmax(np.abs(signal.hilbert(y)))]
    assert peak - 2.0 == pytest.approx(gd, abs=0.02)
    chain = ProcessingChain([filt, Envelope(SFREQ, 0.2)])
    assert chain.group_delays["rms 0.2 s"] == pytest.approx(49 / 2 / SFREQ)
    assert chain.group_delay_s == pytest.approx(gd + 49 / 2 / SFREQ)


def test_envelope_of_sine_is_amplitude_over_sqrt2():
    t = np.arange(1000) / SFREQ
    env = Envelope(SFREQ, 0.2).process((3.0 * np.sin(2 * np.pi * 10 * t))[None])
    np.testing.assert_allclose(env[0, 100:], 3.0 / np.sqrt(2), rtol=1e-6)


def test_rereference_and_recenter_values():
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_allclose(Rereference(["a", "b", "c"]).process(x), x - x.mean(0))
    np.testing.assert_allclose(Rereference(["a", "b", "c"], ["b"]).process(x), x - x[1])
    with pytest.raises(ValueError, match=r"Reference channels \['z'\]"):
        Rereference(["a", "b"], ["z"])
    rng = np.random.default_rng(2)
    mix = np.array([[3.0, 1.0], [0.5, 2.0]])
    x = mix @ rng.standard_normal((2, 20000))
    y = Recenter(SFREQ, memory_s=1000.0, update_s=1.0)
    y.process(x[:, :10000])
    out = y.process(x[:, 10000:])
    np.testing.assert_allclose(out @ out.T / out.shape[1], np.eye(2), atol=0.1)


def test_nan_burst_does_not_poison_filter_state():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 1000))
    x[0, 300:350] = np.nan
    chain = ProcessingChain([CausalFilter(SFREQ, 1.0, 30.0)])
    y = chain.apply(x)
    assert np.isfinite(y).all()
    hold = chain.steps[0]
    assert isinstance(hold, HoldNonFinite)
    assert hold.n_replaced == 50
    held = HoldNonFinite().process(np.array([[np.nan, 1.0, np.nan, np.nan, 4.0]]))
    np.testing.assert_array_equal(held, [[0.0, 1.0, 1.0, 1.0, 4.0]])


def test_function_hook_and_errors():
    hook = FunctionProcessor(lambda c: 2 * c, name="double", group_delay_s=0.01)
    np.testing.assert_array_equal(hook.process(np.ones((1, 3))), 2 * np.ones((1, 3)))
    with pytest.raises(ValueError, match="must keep the number of samples"):
        FunctionProcessor(lambda c: c[:, :1]).process(np.ones((1, 3)))
    with pytest.raises(TypeError, match="wrap functions in FunctionProcessor"):
        ProcessingChain([lambda c: c])
    with pytest.raises(ValueError, match="h_freq=200 Hz must be between 0 and the Nyquist"):
        CausalFilter(SFREQ, 1.0, 200)
    with pytest.raises(ValueError, match="l_freq=30 must be below h_freq=10"):
        CausalFilter(SFREQ, 30, 10)
