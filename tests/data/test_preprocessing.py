"""Preprocessing helpers: filter gains against closed forms, copies never alias the input."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from scipy.signal import butter, sosfreqz

from bci.data.preprocessing import bandpass, notch, rereference, resample

pytestmark = pytest.mark.filterwarnings("error")

SFREQ = 250.0
CH_NAMES = ["Fz", "Cz", "Pz", "Oz"]
DURATION_S = 10.0


def _times(n_times, sfreq=SFREQ):
    return np.arange(n_times) / sfreq


def _raw(components: dict[float, float], offsets=(0.0, 1.0, -2.0, 0.5)) -> mne.io.RawArray:
    """Every channel: sum of amplitude * sin(2 pi f t) (volts) plus a channel-specific offset."""
    t = _times(int(DURATION_S * SFREQ))
    signal = sum(amp * np.sin(2 * np.pi * f * t) for f, amp in components.items())
    data = np.stack([(k + 1) * 1e-6 * signal + off * 1e-6 for k, off in enumerate(offsets)])
    info = mne.create_info(CH_NAMES, SFREQ, ch_types="eeg")
    return mne.io.RawArray(data, info, verbose=False)


def _amplitude(x, freq, sfreq=SFREQ, skip_s=2.0):
    """Return the amplitude of the freq-Hz sinusoid in x (..., n_times).

    By least squares on sin/cos/DC, away from the edges (skip_s seconds each side, where filters
    have transients).
    """
    skip = int(skip_s * sfreq)
    t = _times(x.shape[-1], sfreq)[skip:-skip]
    design = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t),
                       np.ones_like(t)], axis=1)
    coef = np.linalg.lstsq(design, x[..., skip:-skip].reshape(-1, t.size).T, rcond=None)[0]
    return np.hypot(coef[0], coef[1]).reshape(x.shape[:-1])


def _epochs(raw, tmax=4.0):
    events = np.array([[int(2 * SFREQ), 0, 1], [int(5 * SFREQ), 0, 1]])
    return mne.Epochs(raw, events, tmin=0.0, tmax=tmax, baseline=None, preload=True,
                      verbose=False)


def test_bandpass_keeps_10_removes_40():
    raw = _raw({10.0: 1.0, 40.0: 1.0})
    before = raw.get_data()
    out = bandpass(raw, 8.0, 12.0, verbose=False)
    data = out.get_data()
    # closed form: MNE's default IIR is scipy's 4th-order Butterworth band-pass, run forward and
    # backward, so the steady-state gain of a sinusoid is |H(f)|^2
    sos = butter(4, [8.0, 12.0], btype="bandpass", fs=SFREQ, output="sos")
    _, h = sosfreqz(sos, worN=[10.0, 40.0], fs=SFREQ)
    gain_10, gain_40 = np.abs(h) ** 2
    assert 0.95 < gain_10 <= 1.0
    assert gain_40 < 1e-6
    amp_in = _amplitude(before, 10.0)
    np.testing.assert_allclose(_amplitude(data, 10.0) / amp_in, gain_10, rtol=1e-3)
    assert np.all(_amplitude(data, 40.0) / _amplitude(before, 40.0) < 1e-4)
    # the DC offsets are gone too, and the input is untouched
    assert np.abs(data[:, 500:-500].mean(axis=1)).max() < 1e-3 * np.abs(before).max()
    np.testing.assert_array_equal(raw.get_data(), before)
    assert out is not raw


def test_bandpass_array_and_epochs_match_raw():
    raw = _raw({10.0: 1.0, 40.0: 1.0})
    expected = bandpass(raw, 8.0, 12.0, verbose=False).get_data()
    arr = raw.get_data()
    arr_before = arr.copy()
    out = bandpass(arr, 8.0, 12.0, sfreq=SFREQ, verbose=False)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-20)
    np.testing.assert_array_equal(arr, arr_before)
    epochs = _epochs(raw)
    ep_before = epochs.get_data()
    ep_out = bandpass(epochs, 8.0, 12.0, verbose=False).get_data()
    np.testing.assert_array_equal(epochs.get_data(), ep_before)
    # 4 s epochs: the 10 Hz gain in their middle matches the closed form too
    ratio = _amplitude(ep_out, 10.0, skip_s=1.5) / _amplitude(ep_before, 10.0, skip_s=1.5)
    np.testing.assert_allclose(ratio, 0.9999, atol=2e-2)


def test_bandpass_does_not_load_the_input(tmp_path):
    fname = tmp_path / "sine_raw.fif"
    _raw({10.0: 1.0}).save(fname, verbose=False)
    lazy = mne.io.read_raw_fif(fname, preload=False, verbose=False)
    out = bandpass(lazy, 8.0, 12.0, verbose=False)
    assert out.preload
    assert not lazy.preload


def test_notch_removes_line_and_harmonics():
    raw = _raw({10.0: 1.0, 50.0: 1.0, 100.0: 0.5})
    before = raw.get_data()
    out = notch(raw, verbose=False).get_data()  # 50 Hz and its harmonic 100 Hz (< 125 Hz)
    np.testing.assert_array_equal(raw.get_data(), before)
    for freq in (50.0, 100.0):
        assert np.all(_amplitude(out, freq) / _amplitude(before, freq) < 1e-2)
    np.testing.assert_allclose(_amplitude(out, 10.0) / _amplitude(before, 10.0), 1.0, atol=1e-3)
    # without harmonics the 100 Hz component survives
    only_50 = notch(raw, 50.0, harmonics=False, verbose=False).get_data()
    np.testing.assert_allclose(_amplitude(only_50, 100.0) / _amplitude(before, 100.0), 1.0,
                               atol=1e-2)
    assert np.all(_amplitude(only_50, 50.0) / _amplitude(before, 50.0) < 1e-2)


def test_notch_iir_applies_each_harmonic():
    raw = _raw({10.0: 1.0, 50.0: 1.0, 100.0: 0.5})
    before = raw.get_data()
    out = notch(raw, 50.0, method="iir", verbose=False).get_data()
    for freq in (50.0, 100.0):
        assert np.all(_amplitude(out, freq) / _amplitude(before, freq) < 1e-2)
    np.testing.assert_allclose(_amplitude(out, 10.0) / _amplitude(before, 10.0), 1.0, atol=1e-3)


def test_notch_epochs_and_array():
    raw = _raw({10.0: 1.0, 50.0: 1.0})
    epochs = _epochs(raw)
    before = epochs.get_data()
    out = notch(epochs, 50.0, method="iir", verbose=False).get_data()
    np.testing.assert_array_equal(epochs.get_data(), before)
    assert np.all(_amplitude(out, 50.0, skip_s=1.0) / _amplitude(before, 50.0, skip_s=1.0) < 2e-2)
    np.testing.assert_allclose(_amplitude(out, 10.0, skip_s=1.0)
                               / _amplitude(before, 10.0, skip_s=1.0), 1.0, atol=1e-2)
    arr = raw.get_data()
    np.testing.assert_allclose(notch(arr, 50.0, sfreq=SFREQ, verbose=False),
                               notch(raw, 50.0, verbose=False).get_data(), rtol=1e-10,
                               atol=1e-20)


def test_resample_changes_n_times_and_keeps_the_sine():
    raw = _raw({10.0: 1.0})
    out = resample(raw, 100.0, verbose=False)
    assert out.info["sfreq"] == 100.0
    assert out.n_times == 1000
    assert raw.info["sfreq"] == SFREQ
    assert raw.n_times == 2500
    # 10 s hold exactly 100 periods and 2500 * 0.4 is an integer: with npad=0 the FFT resampling
    # is exact (npad="auto" pads to 4096 samples and runs at 1638/4096 != 0.4, see docstring)
    exact = resample(raw, 100.0, npad=0, verbose=False)
    t = _times(1000, 100.0)
    expected = 2e-6 * np.sin(2 * np.pi * 10.0 * t) + 1e-6  # channel Cz: scale 2, offset +1 uV
    np.testing.assert_allclose(exact.get_data()[1], expected, rtol=0, atol=1e-15)
    arr = raw.get_data()
    arr_before = arr.copy()
    for npad in ("auto", 0, 100):
        arr_out = resample(arr, 100.0, orig_sfreq=SFREQ, npad=npad, verbose=False)
        assert arr_out.shape == (4, 1000)
        np.testing.assert_allclose(arr_out, resample(raw, 100.0, npad=npad, verbose=False)
                                   .get_data(), rtol=1e-10, atol=1e-20)
    np.testing.assert_array_equal(arr, arr_before)
    epochs = _epochs(raw, tmax=4.0 - 1 / SFREQ)  # 1000 samples per epoch
    ep_out = resample(epochs, 125.0, verbose=False)
    assert ep_out.get_data().shape == (2, 4, 500)
    assert epochs.get_data().shape == (2, 4, 1000)


def test_average_reference_zero_mean():
    raw = _raw({10.0: 1.0})
    before = raw.get_data()
    out = rereference(raw, verbose=False).get_data()
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-20)
    np.testing.assert_allclose(out, before - before.mean(axis=0), rtol=1e-12, atol=1e-20)
    np.testing.assert_array_equal(raw.get_data(), before)
    epochs = _epochs(raw)
    np.testing.assert_allclose(rereference(epochs, verbose=False).get_data().mean(axis=1), 0.0,
                               atol=1e-20)


def test_channel_reference():
    raw = _raw({10.0: 1.0})
    before = raw.get_data()
    out = rereference(raw, ["Cz"], verbose=False).get_data()
    np.testing.assert_allclose(out[1], 0.0, atol=1e-20)
    np.testing.assert_allclose(out, before - before[1], rtol=1e-12, atol=1e-20)
    linked = rereference(raw, ["Fz", "Oz"], verbose=False).get_data()
    np.testing.assert_allclose(linked, before - (before[0] + before[3]) / 2, atol=1e-20)
    np.testing.assert_array_equal(raw.get_data(), before)


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda r: bandpass(r, 12.0, 8.0), ValueError,
     r"l_freq must be below h_freq, got l_freq=12.0 Hz >= h_freq=8.0 Hz"),
    (lambda r: bandpass(r, 8.0, 125.0), ValueError,
     r"h_freq=125.0 Hz must be below the Nyquist frequency sfreq / 2 = 125.0 Hz "
     r"\(sfreq=250.0 Hz\)"),
    (lambda r: bandpass(r, 0.0, 30.0), ValueError,
     r"l_freq must be a finite number > 0 \(Hz\), got 0.0"),
    (lambda r: bandpass(r, "8", 30.0), TypeError, r"l_freq must be a number \(Hz\), got str"),
    (lambda r: bandpass(r, 8.0, True), TypeError, r"h_freq must be a number \(Hz\), got bool"),
    (lambda r: notch(r, float("nan")), ValueError, r"freqs must be a finite number > 0 \(Hz\), "
                                                   r"got nan"),
    (lambda r: bandpass(r, 8.0, 30.0, method="butter"), ValueError,
     r"Unknown filter method 'butter'"),
    (lambda r: bandpass(r, 8.0, 30.0, sfreq=250.0), ValueError, r"sfreq is only for ndarray"),
    (lambda r: bandpass(r.get_data(), 8.0, 30.0), ValueError, r"sfreq \(Hz\) is required"),
    (lambda r: bandpass(r.get_data().tolist(), 8.0, 30.0, sfreq=250.0), TypeError,
     r"inst must be an mne.io.Raw, an mne.Epochs or a numpy ndarray"),
    (lambda r: bandpass(np.full((2, 100), np.nan), 8.0, 30.0, sfreq=250.0), ValueError,
     r"200 non-finite values \(NaN/inf\), first at index \(0, 0\)"),
    (lambda r: notch(r, 130.0), ValueError,
     r"freqs=130.0 Hz must be below the Nyquist frequency sfreq / 2 = 125.0 Hz"),
    (lambda r: notch(r, []), ValueError, r"at least one frequency"),
    (lambda r: notch(r, 50.0, notch_widths=[1.0, 2.0, 3.0]), ValueError,
     r"notch_widths must be one positive width \(Hz\) or one per frequency \(2: \[50.0, 100.0\]"),
    (lambda r: notch(r, 50.0, method="butter"), ValueError, r"Unknown notch method 'butter'"),
    (lambda r: resample(r, 100.0, method="sinc"), ValueError,
     r"Unknown resampling method 'sinc'\."),
    (lambda r: resample(r, -100.0), ValueError,
     r"sfreq must be a finite number > 0 \(Hz\), got -100.0"),
    (lambda r: resample(r.get_data(), 100.0), ValueError, r"orig_sfreq \(Hz\) is required"),
    (lambda r: rereference(r, ["cz"]), ValueError,
     r"Reference channel 'cz' is not in the recording\. Did you mean 'Cz'\?"),
    (lambda r: rereference(r, "Cz"), ValueError, r"for a single channel write ref=\['Cz'\]"),
    (lambda r: rereference(r, []), ValueError, r"at least one channel"),
    (lambda r: rereference(r.get_data()), TypeError, r"rereference needs channel names"),
])
def test_errors(call, exc, match):
    raw = _raw({10.0: 1.0})
    before = raw.get_data()
    with pytest.raises(exc, match=match):
        call(raw)
    np.testing.assert_array_equal(raw.get_data(), before)
