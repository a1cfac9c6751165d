"""Bessel low-pass filtering of decoder outputs, causal or block-bidirectional.

Zhou, Sun & Basu ("Combining SNNs with filtering for efficient neural decoding in implantable
brain-machine interfaces", 2024) raise the R^2 of SNN and ANN velocity decoders by low-pass
filtering their outputs, Bessel filters working best (maximally flat group delay, so little
overshoot and distortion of the reach profile). Two modes here, both on :mod:`scipy.signal`
second-order sections:

- ``"causal"``: ``sosfilt`` sample by sample with the state kept between chunks (no added
  buffering; the filter's own group delay, :meth:`BesselFilter.group_delay_s`, is the price);
- ``"block_bidirectional"``: the causal pass runs on over the whole stream, and each complete
  block of ``block_size`` samples is filtered again backwards in time (started from the steady
  state of its last sample, as ``scipy.signal.filtfilt`` does), cancelling most of the phase
  lag inside the block. A block is released when its last sample arrives: the first sample of
  a block waits ``block_size - 1`` samples. Short blocks give the low-latency variant, long
  blocks the high-accuracy one. ``block_size=1`` is the causal filter.

Each stream starts from the steady state of its first sample (no start-up transient from 0).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import signal

from ..._checks import check_option, check_positive, ensure_int

__all__ = ["BesselFilter", "MODES"]

MODES = ("causal", "block_bidirectional")


class BesselFilter:
    """Low-pass Bessel filter of decoder outputs, streaming or offline.

    Parameters
    ----------
    cutoff_hz : float
        Cutoff frequency (Hz), below ``sfreq / 2``.
    sfreq : float
        Output rate of the decoder (Hz; one output per bin).
    order : int
        Filter order.
    mode : "causal" | "block_bidirectional"
        See the module docstring.
    block_size : int
        Samples per block of the backward pass (``"block_bidirectional"`` only).
    norm : "phase" | "delay" | "mag"
        Normalisation of the cutoff (:func:`scipy.signal.bessel`).

    Examples
    --------
    >>> filt = BesselFilter(2.0, 20.0, order=2, mode="block_bidirectional", block_size=4)
    >>> x = np.ones((2, 10))
    >>> np.allclose(filt.filter(x), 1.0)  # a constant passes unchanged
    True
    >>> filt.buffering_s()  # worst-case wait of a sample for its block, seconds
    0.15
    """

    def __init__(self, cutoff_hz: float, sfreq: float, *, order: int = 2,
                 mode: Literal["causal", "block_bidirectional"] = "causal",
                 block_size: int = 4, norm: Literal["phase", "delay", "mag"] = "phase") -> None:
        check_positive(cutoff_hz, "cutoff_hz", unit="Hz")
        check_positive(sfreq, "sfreq", unit="Hz")
        if not cutoff_hz < sfreq / 2:
            raise ValueError(f"cutoff_hz={cutoff_hz} must be below the Nyquist frequency "
                             f"sfreq / 2 = {sfreq / 2} Hz.")
        ensure_int(order, "order", minimum=1)
        ensure_int(block_size, "block_size", minimum=1, what="samples")
        check_option("mode", mode, MODES)
        check_option("norm", norm, ("phase", "delay", "mag"))
        self.cutoff_hz, self.sfreq = float(cutoff_hz), float(sfreq)
        self.order, self.mode, self.block_size, self.norm = int(order), mode, int(block_size), norm
        self.sos = signal.bessel(self.order, self.cutoff_hz, btype="low", output="sos",
                                 fs=self.sfreq, norm=self.norm)
        self._zi_unit = signal.sosfilt_zi(self.sos)  # (n_sections, 2), steady state for input 1
        self.reset()

    # -- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the stream: the next sample starts a new one."""
        self._zi: np.ndarray | None = None
        self._pending = np.zeros((0, 0))

    def _steady(self, value: np.ndarray) -> np.ndarray:
        """Return the steady state for a constant input ``value`` ``(n_signals,)``.

        Shape ``(n_sections, n_signals, 2)``.
        """
        return self._zi_unit[:, None, :] * value[None, :, None]

    def _backward(self, block: np.ndarray) -> np.ndarray:
        rev = block[:, ::-1]
        out, _ = signal.sosfilt(self.sos, rev, axis=-1, zi=self._steady(rev[:, 0]))
        return out[:, ::-1]

    # -- streaming -----------------------------------------------------------------------------
    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Filter the next samples of the stream.

        Parameters
        ----------
        chunk : ndarray, shape (n_signals, n_samples)
            New decoder outputs (e.g. 2 velocity components), oldest first.

        Returns
        -------
        out : ndarray, shape (n_signals, n_released)
            Filtered samples released by this chunk: all of them (``"causal"``), or those of
            the blocks this chunk completed (``"block_bidirectional"``).
        """
        chunk = np.asarray(chunk, dtype=np.float64)
        if chunk.ndim != 2:
            raise ValueError(f"chunk must be 2-D (n_signals, n_samples), got shape "
                             f"{chunk.shape}.")
        if chunk.shape[1] == 0:
            return np.zeros((chunk.shape[0], 0))
        if self._zi is None:
            self._zi = self._steady(chunk[:, 0])
            self._pending = np.zeros((chunk.shape[0], 0))
        elif self._zi.shape[1] != chunk.shape[0]:
            raise ValueError(f"chunk has {chunk.shape[0]} signals, the stream has "
                             f"{self._zi.shape[1]}; call reset() to start a new stream.")
        forward, self._zi = signal.sosfilt(self.sos, chunk, axis=-1, zi=self._zi)
        if self.mode == "causal":
            return forward
        pending = np.concatenate([self._pending, forward], axis=1)
        n_done = pending.shape[1] // self.block_size * self.block_size
        self._pending = pending[:, n_done:]
        blocks = [self._backward(pending[:, i:i + self.block_size])
                  for i in range(0, n_done, self.block_size)]
        return np.concatenate(blocks, axis=1) if blocks else np.zeros((chunk.shape[0], 0))

    def flush(self) -> np.ndarray:
        """Release the last, incomplete block (filtered backwards as a shorter block)."""
        if self._pending.size == 0:
            return np.zeros((self._pending.shape[0], 0))
        out = self._backward(self._pending)
        self._pending = np.zeros((self._pending.shape[0], 0))
        return out

    # -- offline -------------------------------------------------------------------------------
    def filter(self, x: np.ndarray) -> np.ndarray:
        """Filter one whole stream offline; the filter is reset before and after.

        Same result as :meth:`push` chunk by chunk, then :meth:`flush`.

        Parameters
        ----------
        x : ndarray, shape (n_signals, n_samples)
            Decoder outputs over time.

        Returns
        -------
        y : ndarray, shape (n_signals, n_samples)
        """
        x = np.asarray(x, dtype=np.float64)
        self.reset()
        try:
            out = np.concatenate([self.push(x), self.flush()], axis=1)
        finally:
            self.reset()
        return out

    def filter_trials(self, trials: list[np.ndarray]) -> list[np.ndarray]:
        """:meth:`filter` applied to each ``(n_signals, n_bins)`` array (one stream each)."""
        return [self.filter(t) for t in trials]

    # -- latency -------------------------------------------------------------------------------
    def group_delay_s(self) -> float:
        """Return the group delay of the causal filter at low frequency (seconds).

        How far its output lags a slowly varying input.
        """
        b, a = signal.sos2tf(self.sos)
        _, delay = signal.group_delay((b, a), w=[1e-3 * self.cutoff_hz], fs=self.sfreq)
        return float(delay[0]) / self.sfreq

    def ramp_lag_s(self, n_samples: int = 400) -> float:
        """Return the mean lag of the filtered output behind a linear ramp (seconds).

        Measured by filtering one: the causal filter's group delay, or what is left of it after the
        backward passes of ``"block_bidirectional"`` (averaged over the positions inside a block).
        The start-up quarter of the ramp is left out.
        """
        ramp = np.arange(float(n_samples))[None]
        out = BesselFilter(self.cutoff_hz, self.sfreq, order=self.order, mode=self.mode,
                           block_size=self.block_size, norm=self.norm).filter(ramp)
        skip = n_samples // 4
        return float(np.mean(ramp[0, skip:] - out[0, skip:])) / self.sfreq

    def buffering_s(self) -> float:
        """Return the worst-case wait of a sample before it is released (seconds).

        ``(block_size - 1) / sfreq`` for ``"block_bidirectional"``, 0 for ``"causal"``.
        """
        if self.mode == "causal":
            return 0.0
        return round((self.block_size - 1) / self.sfreq, 12)

    def __repr__(self) -> str:
        """Return the filter settings as a constructor call."""
        extra = f", block_size={self.block_size}" if self.mode != "causal" else ""
        return (f"BesselFilter(cutoff_hz={self.cutoff_hz:g}, sfreq={self.sfreq:g}, "
                f"order={self.order}, mode={self.mode!r}{extra})")
