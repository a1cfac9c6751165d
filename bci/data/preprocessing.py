"""Validated preprocessing helpers on top of MNE: each returns a filtered COPY.

Thin wrappers around :meth:`mne.io.Raw.filter`, :meth:`mne.io.Raw.notch_filter`,
:meth:`mne.io.Raw.resample`, :meth:`mne.io.Raw.set_eeg_reference` (and their
:class:`mne.Epochs` counterparts, or :mod:`mne.filter` for plain arrays) that

- never modify their input (MNE's methods work in place; these work on ``inst.copy()``, loading
  the copy's data if the input was not preloaded),
- check frequencies against the Nyquist frequency and channel names against the recording before
  MNE runs, with errors that name the numbers and how to fix them,
- give :class:`mne.Epochs` the notch filter MNE only offers on Raw.

Examples
--------
>>> import mne, numpy as np
>>> from bci.data import bandpass
>>> info = mne.create_info(["C3", "C4"], sfreq=250.0, ch_types="eeg")
>>> raw = mne.io.RawArray(np.zeros((2, 2500)), info, verbose=False)
>>> bandpass(raw, 8.0, 30.0, verbose=False) is raw
False
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal, TypeVar

import mne
import numpy as np

from .._checks import check_option, check_positive, did_you_mean

logger = logging.getLogger(__name__)

__all__ = ["bandpass", "notch", "resample", "rereference"]

Inst = TypeVar("Inst", mne.io.BaseRaw, mne.BaseEpochs, np.ndarray)


def _sfreq_of(inst, sfreq: float | None, *, name: str = "sfreq") -> float:
    """Return the sampling frequency (Hz) of ``inst``.

    ``sfreq`` is required for, and only for, arrays.
    """
    if isinstance(inst, (mne.io.BaseRaw, mne.BaseEpochs)):
        if sfreq is not None:
            raise ValueError(
                f"{name} is only for ndarray input; {type(inst).__name__} carries its own "
                f"(info['sfreq'] = {inst.info['sfreq']} Hz): drop {name}={sfreq}."
            )
        return float(inst.info["sfreq"])
    if isinstance(inst, np.ndarray):
        if sfreq is None:
            raise ValueError(
                f"{name} (Hz) is required for ndarray input of shape {inst.shape}, e.g. "
                f"{name}=250.0; MNE objects carry it in info['sfreq']."
            )
        return check_positive(sfreq, name, unit="Hz")
    raise TypeError(
        "inst must be an mne.io.Raw, an mne.Epochs or a numpy ndarray (..., n_times), got "
        f"{type(inst).__name__}."
    )


def _check_array(x: np.ndarray) -> np.ndarray:
    """Check an ndarray ``(..., n_times)``; return it as float64 (a copy only if needed)."""
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"data must be (..., n_times) with n_times >= 1, got shape {x.shape}.")
    if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
        raise TypeError(f"data must be real numbers, got dtype {x.dtype}.")
    x = x.astype(np.float64, copy=False)
    bad = ~np.isfinite(x)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"data contains {int(bad.sum())} non-finite values (NaN/inf), first at index "
            f"{where}; interpolate or drop bad segments before filtering."
        )
    return x


def _copy_loaded(inst):
    """Return a preloaded copy of an MNE object; the input stays as it is (preloaded or not)."""
    out = inst.copy()
    if not out.preload:
        out.load_data(verbose=False)
    return out


def _check_below_nyquist(name: str, freq: float, sfreq: float) -> None:
    nyquist = sfreq / 2.0
    if not freq < nyquist:
        raise ValueError(
            f"{name}={freq} Hz must be below the Nyquist frequency sfreq / 2 = {nyquist} Hz "
            f"(sfreq={sfreq} Hz); lower {name} or use data sampled above {2 * freq} Hz."
        )


def bandpass(inst: Inst, l_freq: float, h_freq: float, *, sfreq: float | None = None,
             method: Literal["iir", "fir"] = "iir", iir_params: dict | None = None,
             phase: Literal["zero", "zero-double", "minimum", "forward"] = "zero",
             picks: str | list | None = None,
             verbose: bool | str | int | None = None) -> Inst:
    """Band-pass filter a copy of ``inst`` between ``l_freq`` and ``h_freq`` (Hz).

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | ndarray, shape (..., n_times)
        Data to filter; not modified.
    l_freq, h_freq : float
        Pass-band edges in Hz, ``0 < l_freq < h_freq < sfreq / 2``.
    sfreq : float | None
        Sampling frequency in Hz, required for (and only for) ndarray input.
    method : "iir" | "fir"
        ``"iir"`` (default): MNE's Butterworth, ``iir_params=dict(order=4, ftype="butter")``
        unless given, applied forward and backward with ``phase="zero"`` (so the magnitude
        response is squared: -6 dB at the edges); works on short epochs. ``"fir"``: MNE's
        default windowed-sinc design (its ``filter_length="auto"`` can exceed short epochs).
    iir_params : dict | None
        Passed to MNE (see :func:`mne.filter.construct_iir_filter`); only for ``method="iir"``.
    phase : "zero" | "zero-double" | "minimum" | "forward"
        Passed to MNE. ``"zero"`` is offline (non-causal); ``"forward"`` is causal (IIR only).
    picks : str | list | None
        Channels to filter (MNE picks; channel indices for arrays); None: all data channels.
    verbose : bool | str | int | None
        MNE's verbosity for this call.

    Returns
    -------
    out : same type as ``inst``
        Filtered copy (float64 for arrays, same shape).

    Raises
    ------
    ValueError
        Unless ``0 < l_freq < h_freq < sfreq / 2``; non-finite array values.
    """
    fs = _sfreq_of(inst, sfreq)
    check_option("filter method", method, ["iir", "fir"])
    l_freq = check_positive(l_freq, "l_freq", unit="Hz")
    h_freq = check_positive(h_freq, "h_freq", unit="Hz")
    if not l_freq < h_freq:
        raise ValueError(
            f"l_freq must be below h_freq, got l_freq={l_freq} Hz >= h_freq={h_freq} Hz; "
            "swap them (band-pass from l_freq up to h_freq)."
        )
    _check_below_nyquist("h_freq", h_freq, fs)
    if iir_params is not None and method != "iir":
        raise ValueError(f"iir_params is only used with method='iir', got method={method!r}.")
    kwargs = dict(method=method, iir_params=iir_params, phase=phase, verbose=verbose)
    logger.debug("bandpass %s-%s Hz (%s, %s) at sfreq=%s Hz", l_freq, h_freq, method, phase, fs)
    if isinstance(inst, np.ndarray):
        return mne.filter.filter_data(_check_array(inst), fs, l_freq, h_freq, picks=picks,
                                      copy=True, **kwargs)
    return _copy_loaded(inst).filter(l_freq, h_freq, picks=picks, **kwargs)


def notch(inst: Inst, freqs: float | Sequence[float] = 50.0, *, sfreq: float | None = None,
          harmonics: bool = True, notch_widths: float | Sequence[float] | None = None,
          method: Literal["fir", "iir", "spectrum_fit"] = "fir",
          picks: str | list | None = None, verbose: bool | str | int | None = None) -> Inst:
    """Notch-filter a copy of ``inst`` at the line frequency and its harmonics.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | ndarray, shape (..., n_times)
        Data to filter; not modified. (MNE has no ``Epochs.notch_filter``; epochs are filtered
        with :func:`mne.filter.notch_filter` through ``Epochs.apply_function``.)
    freqs : float | sequence of float
        Frequencies to remove, in Hz (50 in Europe, 60 in the Americas), each in
        ``(0, sfreq / 2)``.
    sfreq : float | None
        Sampling frequency in Hz, required for (and only for) ndarray input.
    harmonics : bool
        If True (default) and ``freqs`` is one number ``f``, remove ``f, 2f, 3f, ...`` strictly
        below the Nyquist frequency. A sequence of ``freqs`` is used as given.
    notch_widths : float | sequence of float | None
        Width of each notch in Hz; None: MNE's ``freqs / 200``.
    method : "fir" | "iir" | "spectrum_fit"
        MNE's notch method. ``"fir"`` (MNE's default) needs about 3.3 s of data; ``"iir"``
        (4th-order Butterworth band-stop per frequency, forward-backward) suits short epochs
        and is applied one frequency at a time (MNE's IIR notch takes one stop band).
    picks : str | list | None
        Channels to filter (MNE picks; channel indices for arrays); None: all data channels.
    verbose : bool | str | int | None
        MNE's verbosity for this call.

    Returns
    -------
    out : same type as ``inst``
        Filtered copy (float64 for arrays, same shape).

    Raises
    ------
    ValueError
        If a frequency is not in ``(0, sfreq / 2)``.
    """
    fs = _sfreq_of(inst, sfreq)
    check_option("notch method", method, ["fir", "iir", "spectrum_fit"])
    scalar = np.ndim(freqs) == 0
    values = [check_positive(f, "freqs", unit="Hz")
              for f in np.atleast_1d(np.asarray(freqs, dtype=object))]
    if not values:
        raise ValueError("freqs must name at least one frequency (Hz), got an empty sequence.")
    for f in values:
        _check_below_nyquist("freqs", f, fs)
    if scalar and harmonics:
        base = values[0]
        values = [base * k for k in range(1, int(np.ceil(fs / 2.0 / base)) + 1)
                  if base * k < fs / 2.0]
    freqs_arr = np.asarray(values, dtype=float)
    if notch_widths is None:
        widths = freqs_arr / 200.0  # MNE's default
    else:
        widths = np.atleast_1d(np.asarray(notch_widths, dtype=float))
        if widths.size not in (1, freqs_arr.size) or widths.ndim != 1 or np.any(widths <= 0):
            raise ValueError(
                f"notch_widths must be one positive width (Hz) or one per frequency "
                f"({freqs_arr.size}: {freqs_arr.tolist()} Hz), got {notch_widths!r}."
            )
        widths = np.broadcast_to(widths, freqs_arr.shape)
    # MNE's IIR notch takes one stop band at a time: apply them one after the other
    bands = ([(freqs_arr[i:i + 1], widths[i:i + 1]) for i in range(freqs_arr.size)]
             if method == "iir" else [(freqs_arr, widths)])
    logger.debug("notch at %s Hz (%s) at sfreq=%s Hz", freqs_arr, method, fs)

    def _notch_data(data: np.ndarray, picks=None) -> np.ndarray:
        for band, width in bands:
            data = mne.filter.notch_filter(data, fs, band, notch_widths=width, method=method,
                                           picks=picks, copy=True, verbose=verbose)
        return data

    if isinstance(inst, np.ndarray):
        return _notch_data(_check_array(inst), picks)
    out = _copy_loaded(inst)
    if isinstance(out, mne.io.BaseRaw):
        for band, width in bands:
            out.notch_filter(band, picks=picks, notch_widths=width, method=method,
                             verbose=verbose)
        return out
    # (n_epochs, n_picks, n_times) -> same
    return out.apply_function(_notch_data, picks="data" if picks is None else picks,
                              channel_wise=False, verbose=verbose)


def resample(inst: Inst, sfreq: float, *, orig_sfreq: float | None = None,
             npad: int | Literal["auto"] = "auto",
             method: Literal["fft", "polyphase"] = "fft",
             verbose: bool | str | int | None = None) -> Inst:
    """Resample a copy of ``inst`` to ``sfreq`` Hz (MNE's resampling, with its anti-aliasing).

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs | ndarray, shape (..., n_times)
        Data to resample; not modified.
    sfreq : float
        New sampling frequency in Hz.
    orig_sfreq : float | None
        Current sampling frequency in Hz, required for (and only for) ndarray input.
    npad : int | "auto"
        Samples of padding on each side for ``method="fft"`` (MNE's parameter, also used for
        arrays, so arrays and MNE objects give the same numbers). ``"auto"`` (MNE's default for
        Raw/Epochs) pads to a power of two, so the FFT runs at the ratio
        ``round(ratio * L) / L`` instead of ``sfreq / orig_sfreq``: 10 s at 250 Hz to 100 Hz come
        out stretched by 2.4e-4 (a 10 Hz sine drifts by up to 0.08 rad at the ends). For exact
        rates pass an ``npad`` with ``(n_times + 2 * npad) * sfreq / orig_sfreq`` an integer
        (e.g. ``npad=0`` when ``n_times * sfreq / orig_sfreq`` is one), or ``"polyphase"``.
    method : "fft" | "polyphase"
        MNE's resampling method.
    verbose : bool | str | int | None
        MNE's verbosity for this call.

    Returns
    -------
    out : same type as ``inst``
        Resampled copy with ``round(n_times * sfreq / orig_sfreq)`` samples per channel (MNE's
        rule), ``info["sfreq"] == sfreq`` for MNE objects.
    """
    fs = _sfreq_of(inst, orig_sfreq, name="orig_sfreq")
    new = check_positive(sfreq, "sfreq", unit="Hz")
    check_option("resampling method", method, ["fft", "polyphase"])
    logger.debug("resample %s Hz -> %s Hz (%s, npad=%s)", fs, new, method, npad)
    kwargs = dict(npad=npad, method=method, verbose=verbose)
    if isinstance(inst, np.ndarray):
        return mne.filter.resample(_check_array(inst), up=new, down=fs, **kwargs)
    return _copy_loaded(inst).resample(new, **kwargs)


def rereference(inst: Inst, ref: Literal["average"] | Sequence[str] = "average", *,
                verbose: bool | str | int | None = None) -> Inst:
    """Re-reference the EEG channels of a copy of ``inst`` (applied to the data, no projector).

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs
        Recording with EEG channels; not modified.
    ref : "average" | sequence of str
        ``"average"``: subtract the mean over EEG channels at each sample (the EEG channels then
        sum to zero); a list of channel names: subtract their mean (e.g. ``["M1", "M2"]``
        for linked mastoids, ``["Cz"]``, which then becomes a flat zero channel).
    verbose : bool | str | int | None
        MNE's verbosity for this call.

    Returns
    -------
    out : same type as ``inst``
        Re-referenced copy (:meth:`mne.io.Raw.set_eeg_reference` with ``projection=False``).

    Raises
    ------
    ValueError
        Unknown channel names (with a did-you-mean), an empty list, another string.
    TypeError
        For ndarray input (wrap it in :class:`mne.io.RawArray` / :class:`mne.EpochsArray`).
    """
    if not isinstance(inst, (mne.io.BaseRaw, mne.BaseEpochs)):
        raise TypeError(
            "rereference needs channel names: pass an mne.io.Raw or mne.Epochs (wrap arrays in "
            f"mne.io.RawArray / mne.EpochsArray), got {type(inst).__name__}."
        )
    if isinstance(ref, str):
        if ref != "average":
            raise ValueError(
                f"ref must be 'average' or a list of channel names, got the string {ref!r}; "
                f"for a single channel write ref=[{ref!r}]."
            )
        ref_channels: str | list[str] = "average"
    else:
        ref_channels = list(ref)
        if not ref_channels:
            raise ValueError("ref must name at least one channel, got an empty list.")
        for name in ref_channels:
            if name not in inst.ch_names:
                raise ValueError(
                    f"Reference channel {name!r} is not in the recording."
                    f"{did_you_mean(str(name), inst.ch_names)} "
                    f"Channels: {', '.join(inst.ch_names)}."
                )
    logger.debug("rereference to %s", ref_channels)
    return _copy_loaded(inst).set_eeg_reference(ref_channels=ref_channels, projection=False,
                                                verbose=verbose)
