"""Causal, stateful signal processing shared by the online loop and offline replays.

Every processor takes chunks ``(n_chans, n_times)`` in time order and keeps what it needs of
the past (filter states), so processing a recording chunk by chunk gives the same samples as
processing it in one go (:meth:`ProcessingChain.apply`): a decoder sees identical input online
and offline. Each processor reports its group delay (s), the lag it adds to the signal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np


class Processor:
    """Base class: a causal transform of chunks ``(n_chans, n_times)`` with state."""

    name: str = "processor"

    def process(self, x: np.ndarray) -> np.ndarray:
        """Transform the next chunk (not modified); returns a new array of the same shape."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the past (filter states)."""

    @property
    def group_delay_s(self) -> float:
        """Delay (s) this stage adds, at its reference frequency."""
        return 0.0


class HoldNonFinite(Processor):
    """Replace NaN/inf samples by the channel's last finite sample (0 before the first one).

    Keeps later filter states finite after a NaN burst; ``n_replaced`` counts replaced values.
    """

    name = "hold_nonfinite"

    def __init__(self) -> None:
        self._last: np.ndarray | None = None
        self.n_replaced = 0

    def process(self, x: np.ndarray) -> np.ndarray:
        """Replace NaN/inf in a chunk ``(n_chans, n_times)`` by each channel's last finite value."""
        x = np.asarray(x, dtype=np.float64)
        bad = ~np.isfinite(x)
        if self._last is None:
            self._last = np.zeros(x.shape[0])
        if not bad.any():
            if x.shape[1]:
                self._last = x[:, -1].copy()
            return x.copy()
        self.n_replaced += int(bad.sum())
        y = np.where(bad, np.nan, x)
        # forward-fill along time: index of the last finite sample at or before each sample
        idx = np.where(~bad, np.arange(x.shape[1]), -1)
        np.maximum.accumulate(idx, axis=1, out=idx)
        filled = np.take_along_axis(y, np.maximum(idx, 0), axis=1)
        y = np.where(idx >= 0, filled, self._last[:, np.newaxis])
        if x.shape[1]:
            self._last = y[:, -1].copy()
        return y

    def reset(self) -> None:
        """Forget the last finite samples (the next gap starts from 0) and zero ``n_replaced``."""
        self._last = None
        self.n_replaced = 0


class CausalFilter(Processor):
    """Causal IIR filter (second-order sections) with kept state.

    Parameters
    ----------
    sfreq : float
        Sampling rate (Hz).
    l_freq, h_freq : float | None
        Band edges (Hz): both for a band-pass, ``l_freq`` only for a high-pass, ``h_freq`` only
        for a low-pass (Butterworth of ``order``).
    order : int
        Butterworth order (a band-pass has ``2 * order`` poles).
    kind : {"butter", "notch"}
        ``"notch"``: a second-order notch at ``l_freq`` Hz with quality ``quality``
        (``h_freq`` unused).
    quality : float
        Notch quality factor (centre / bandwidth).
    init : {"steady", "zeros"}
        Initial state: ``"steady"`` starts as if the first sample had lasted forever (no
        step transient from a DC offset), ``"zeros"`` from rest.

    Attributes
    ----------
    sos : ndarray, shape (n_sections, 6)
        The filter.
    ref_freq : float
        Frequency (Hz) at which :attr:`group_delay_s` is given: the band centre (geometric
        mean of the edges), the notch frequency's neighbourhood is excluded (reported at 0 Hz
        for notch and low-pass, at ``2 * l_freq`` for a high-pass).
    """

    def __init__(self, sfreq: float, l_freq: float | None = None, h_freq: float | None = None,
                 *, order: int = 4, kind: Literal["butter", "notch"] = "butter",
                 quality: float = 30.0, init: Literal["steady", "zeros"] = "steady") -> None:
        from scipy import signal

        if sfreq <= 0:
            raise ValueError(f"sfreq must be positive (Hz), got {sfreq}.")
        nyq = sfreq / 2
        for edge, label in ((l_freq, "l_freq"), (h_freq, "h_freq")):
            if edge is not None and not 0 < edge < nyq:
                raise ValueError(f"{label}={edge} Hz must be between 0 and the Nyquist "
                                 f"frequency {nyq:g} Hz.")
        if init not in ("steady", "zeros"):
            raise ValueError(f"init must be 'steady' or 'zeros', got {init!r}.")
        self.sfreq = float(sfreq)
        self.l_freq, self.h_freq, self.order, self.kind = l_freq, h_freq, order, kind
        self.quality, self.init = quality, init
        if kind == "notch":
            if l_freq is None:
                raise ValueError("A notch needs its frequency as l_freq (Hz), e.g. 50.")
            b, a = signal.iirnotch(l_freq, quality, fs=sfreq)
            self.sos = signal.tf2sos(b, a)
            self.name, self.ref_freq = f"notch {l_freq:g} Hz", 0.0
        elif kind == "butter":
            if l_freq is not None and h_freq is not None:
                if l_freq >= h_freq:
                    raise ValueError(f"l_freq={l_freq} must be below h_freq={h_freq} (Hz).")
                wn, btype = [l_freq, h_freq], "bandpass"
                self.ref_freq = float(np.sqrt(l_freq * h_freq))
            elif l_freq is not None:
                wn, btype, self.ref_freq = l_freq, "highpass", float(min(2 * l_freq, nyq / 2))
            elif h_freq is not None:
                wn, btype, self.ref_freq = h_freq, "lowpass", 0.0
            else:
                raise ValueError("Give l_freq and/or h_freq (Hz) for a Butterworth filter.")
            self.sos = signal.butter(order, wn, btype=btype, fs=sfreq, output="sos")
            self.name = f"{btype} {l_freq or ''}-{h_freq or ''} Hz".replace(" -", " ")
        else:
            raise ValueError(f"kind must be 'butter' or 'notch', got {kind!r}.")
        self._zi: np.ndarray | None = None

    def process(self, x: np.ndarray) -> np.ndarray:
        """Filter a chunk ``(n_chans, n_times)`` causally, continuing from the kept state.

        The state is initialised (per :attr:`init`) on the first non-empty chunk, or when the
        number of channels changes.
        """
        from scipy import signal

        x = np.asarray(x, dtype=np.float64)
        if x.shape[1] == 0:
            return x.copy()
        if self._zi is None or self._zi.shape[1] != x.shape[0]:
            zi = signal.sosfilt_zi(self.sos)[:, np.newaxis, :]
            zi = np.repeat(zi, x.shape[0], axis=1)
            self._zi = zi * x[np.newaxis, :, :1] if self.init == "steady" else zi * 0.0
        y, self._zi = signal.sosfilt(self.sos, x, axis=-1, zi=self._zi)
        return y

    def reset(self) -> None:
        """Drop the filter state; the next chunk starts it afresh (per :attr:`init`)."""
        self._zi = None

    def group_delay(self, freqs) -> np.ndarray:
        """Group delay (s) at ``freqs`` (Hz)."""
        from scipy import signal

        b, a = signal.sos2tf(self.sos)
        _, gd = signal.group_delay((b, a), w=np.atleast_1d(np.asarray(freqs, float)),
                                   fs=self.sfreq)
        return gd / self.sfreq

    @property
    def group_delay_s(self) -> float:
        """Group delay (s) at :attr:`ref_freq`."""
        return float(self.group_delay([self.ref_freq])[0])


class Rereference(Processor):
    """Re-reference to the average of all channels or of named reference channels.

    Parameters
    ----------
    ch_names : sequence of str
        The chunk's channels, in row order.
    ref : "average" | sequence of str
        Reference: common average, or the mean of these channels.
    """

    def __init__(self, ch_names: Sequence[str], ref: str | Sequence[str] = "average") -> None:
        self.ch_names = list(ch_names)
        if isinstance(ref, str) and ref == "average":
            self._idx = np.arange(len(self.ch_names))
        else:
            refs = [ref] if isinstance(ref, str) else list(ref)
            missing = [r for r in refs if r not in self.ch_names]
            if missing:
                raise ValueError(f"Reference channels {missing} are not among the stream's "
                                 f"channels {self.ch_names[:10]}...; pass ref='average' or "
                                 "existing names.")
            self._idx = np.array([self.ch_names.index(r) for r in refs])
        self.ref = ref
        self.name = f"reference {ref if isinstance(ref, str) else '+'.join(ref)}"

    def process(self, x: np.ndarray) -> np.ndarray:
        """Subtract the reference channels' mean from each row of a chunk ``(n_chans, n_times)``."""
        x = np.asarray(x, dtype=np.float64)
        return x - x[self._idx].mean(axis=0, keepdims=True)


class Recenter(Processor):
    """Online Euclidean re-centering: whiten by the running mean covariance of the past.

    Samples are taken in blocks of ``update_s`` (counted from the first sample, whatever the
    chunking): the samples of block ``k`` are multiplied by ``C_k^{-1/2}``, where ``C_k`` is
    the mean covariance of the blocks before it (exponential forgetting with time constant
    ``memory_s``). The output's covariance tends to identity across sessions and subjects
    (the online counterpart of Euclidean alignment); only past samples are used, and the
    result does not depend on how the signal is cut into chunks. Samples of the first block
    pass unchanged.

    Parameters
    ----------
    sfreq : float
        Sampling rate (Hz).
    memory_s : float
        Forgetting time constant (s).
    update_s : float
        Block length (s) between updates of the whitening matrix.
    reg : float
        Ridge added to the covariance's eigenvalues (fraction of their mean).
    """

    name = "recenter"

    def __init__(self, sfreq: float, *, memory_s: float = 60.0, update_s: float = 1.0,
                 reg: float = 1e-6) -> None:
        if memory_s <= 0 or update_s <= 0:
            raise ValueError(f"memory_s and update_s must be positive (seconds), got "
                             f"{memory_s} and {update_s}.")
        self.sfreq, self.memory_s, self.update_s, self.reg = sfreq, memory_s, update_s, reg
        self.n_block = max(int(round(update_s * sfreq)), 1)
        self.reset()

    def reset(self) -> None:
        """Forget the running covariance and whitening matrix; the next block passes unchanged."""
        self._cov: np.ndarray | None = None
        self._w: np.ndarray | None = None
        self._acc: np.ndarray | None = None  # sum of x x^T over the current block
        self._n_acc = 0

    def _close_block(self) -> None:
        cov = self._acc / self._n_acc
        alpha = 1.0 - np.exp(-self._n_acc / (self.memory_s * self.sfreq))
        self._cov = cov if self._cov is None else (1 - alpha) * self._cov + alpha * cov
        evals, evecs = np.linalg.eigh(self._cov)
        evals = np.maximum(evals, self.reg * max(evals.mean(), 1e-300))
        self._w = (evecs / np.sqrt(evals)) @ evecs.T
        self._acc[:] = 0.0
        self._n_acc = 0

    def process(self, x: np.ndarray) -> np.ndarray:
        """Whiten a chunk ``(n_chans, n_times)`` block by block with the covariance of past blocks.

        Each sample is multiplied by the whitening matrix of the blocks completed before its
        own (unchanged in the first block), and accumulated into its block's covariance.
        """
        x = np.asarray(x, dtype=np.float64)
        if self._acc is None:
            self._acc = np.zeros((x.shape[0], x.shape[0]))
        out = np.empty_like(x)
        i = 0
        while i < x.shape[1]:
            j = min(x.shape[1], i + self.n_block - self._n_acc)
            part = x[:, i:j]
            out[:, i:j] = part if self._w is None else self._w @ part
            self._acc += part @ part.T
            self._n_acc += j - i
            if self._n_acc == self.n_block:
                self._close_block()
            i = j
        return out


class FunctionProcessor(Processor):
    """Wrap a stateless causal function ``f(chunk) -> chunk`` as a stage (a hook).

    Parameters
    ----------
    func : callable
        Takes and returns ``(n_chans, n_times)`` arrays; must use no future samples.
    name : str
        Stage name in reports.
    group_delay_s : float
        Delay (s) it adds, for the latency report.
    """

    def __init__(self, func: Callable[[np.ndarray], np.ndarray], name: str = "function",
                 group_delay_s: float = 0.0) -> None:
        self.func, self.name, self._delay = func, name, float(group_delay_s)

    def process(self, x: np.ndarray) -> np.ndarray:
        """Apply ``func`` to a float64 copy of the chunk ``(n_chans, n_times)``.

        Raises ``ValueError`` if ``func`` changes the number of samples.
        """
        y = np.asarray(self.func(np.array(x, dtype=np.float64)), dtype=np.float64)
        if y.shape[-1] != np.shape(x)[-1]:
            raise ValueError(f"{self.name} returned {y.shape[-1]} samples for "
                             f"{np.shape(x)[-1]}; a stage must keep the number of samples.")
        return y

    @property
    def group_delay_s(self) -> float:
        """Delay (s) given at construction."""
        return self._delay


class Envelope(Processor):
    """Causal amplitude envelope: root mean square over the last ``window_s``.

    Parameters
    ----------
    sfreq : float
        Sampling rate (Hz).
    window_s : float
        RMS window (s); the envelope lags by about half of it.
    """

    def __init__(self, sfreq: float, window_s: float = 0.2) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive (seconds), got {window_s}.")
        self.sfreq, self.window_s = float(sfreq), float(window_s)
        self.n = max(int(round(window_s * sfreq)), 1)
        self.name = f"rms {window_s:g} s"
        self.reset()

    def reset(self) -> None:
        """Forget the past squares; the next window is padded with zeros."""
        self._tail: np.ndarray | None = None

    def process(self, x: np.ndarray) -> np.ndarray:
        """RMS over the ``n`` samples ending at each sample of a chunk ``(n_chans, n_times)``.

        Samples before the first chunk count as zeros.
        """
        x = np.asarray(x, dtype=np.float64)
        if self._tail is None:
            self._tail = np.zeros((x.shape[0], self.n))
        sq = np.concatenate([self._tail, x * x], axis=1)
        csum = np.cumsum(sq, axis=1)
        # sum of the n squares ending at each new sample
        total = csum[:, self.n:] - csum[:, :-self.n]
        self._tail = sq[:, -self.n:]
        return np.sqrt(np.maximum(total, 0.0) / self.n)

    @property
    def group_delay_s(self) -> float:
        """Delay (s) of the moving window's centre, ``(n - 1) / 2`` samples."""
        return (self.n - 1) / 2 / self.sfreq


class ProcessingChain(Processor):
    """Stages applied in order; the same object serves online chunks and offline recordings.

    Parameters
    ----------
    steps : sequence of Processor
        The stages.
    hold_nonfinite : bool
        Prepend :class:`HoldNonFinite` so that a NaN burst does not poison the filter states.

    Examples
    --------
    >>> import numpy as np
    >>> chain = ProcessingChain([CausalFilter(250.0, 1.0, 40.0)])
    >>> x = np.random.default_rng(0).standard_normal((2, 1000))
    >>> offline = chain.apply(x)
    >>> chain.reset()
    >>> online = np.concatenate([chain.process(c) for c in np.array_split(x, 7, axis=1)], axis=1)
    >>> bool(np.allclose(offline, online, rtol=0, atol=1e-12))
    True
    """

    name = "chain"

    def __init__(self, steps: Sequence[Processor] = (), *, hold_nonfinite: bool = True) -> None:
        steps = list(steps)
        for step in steps:
            if not isinstance(step, Processor):
                raise TypeError(f"Processing steps must be Processor instances, got "
                                f"{type(step).__name__}; wrap functions in FunctionProcessor.")
        self.steps = ([HoldNonFinite()] if hold_nonfinite else []) + steps

    def process(self, x: np.ndarray) -> np.ndarray:
        """Run a chunk ``(n_chans, n_times)`` through the stages in order; it must be 2-D."""
        y = np.asarray(x, dtype=np.float64)
        if y.ndim != 2:
            raise ValueError(f"chunks must be 2-D (n_chans, n_times), got shape {y.shape}.")
        for step in self.steps:
            y = step.process(y)
        return y

    def reset(self) -> None:
        """Reset every stage."""
        for step in self.steps:
            step.reset()

    def apply(self, data) -> np.ndarray:
        """Process a whole recording offline: :meth:`reset`, then one :meth:`process` call.

        Parameters
        ----------
        data : array, shape (n_chans, n_times)
            The recording (not modified).

        Returns
        -------
        out : ndarray, shape (n_chans, n_times)
            Exactly what the online loop computes chunk by chunk (to float precision).
        """
        self.reset()
        return self.process(data)

    @property
    def group_delays(self) -> dict[str, float]:
        """Group delay (s) of each stage, by stage name."""
        return {step.name: step.group_delay_s for step in self.steps}

    @property
    def group_delay_s(self) -> float:
        """Total delay (s): the sum of the stages' group delays."""
        return float(sum(self.group_delays.values()))
