"""Signal sources: what a :class:`~bci.realtime.stream.Stream` pulls samples from.

A source (:class:`Source`, an abstract base class) has ``info`` (:class:`SourceInfo`) and a
non-blocking ``pull(max_samples)`` returning ``(data (n_chans, n_samples), timestamps
(n_samples,))``. :class:`ArraySource` and :func:`raw_source` replay a recording
deterministically (tests, offline runs of the online code);
:class:`~bci.realtime.lsl.LSLSource` reads a live LSL stream. :class:`Dejitterer` smooths the
jitter of a regular stream's timestamps without smearing their steps (lost samples, clock
jumps), so that the stream can tell them apart.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._checks import check_positive


class SourceLostError(RuntimeError):
    """The source disappeared (e.g. the LSL outlet was closed); it may come back."""


@dataclass(frozen=True)
class SourceInfo:
    """What a source delivers.

    Attributes
    ----------
    name : str
        Stream name.
    ch_names : list of str
        Channel names, in the order of the rows of pulled data.
    sfreq : float
        Nominal sampling rate (Hz).
    source_id : str
        Unique id of the device or player, if known.
    ch_types : list of str | None
        MNE type of each channel (``eeg``, ``mag``, ``grad``, ``seeg``...), if known; the
        online loop then refuses a decoder trained on other types.
    """

    name: str
    ch_names: list[str]
    sfreq: float
    source_id: str = ""
    ch_types: list[str] | None = None

    @property
    def n_chans(self) -> int:
        """Number of channels."""
        return len(self.ch_names)


class Source(ABC):
    """Abstract base class of signal sources.

    A subclass must define :attr:`info` (a property) and :meth:`pull`; it may override
    :meth:`now` (when its timestamps are not on :func:`time.perf_counter`'s clock),
    :meth:`reconnect` (when a lost source can come back) and :meth:`close`.

    Examples
    --------
    >>> class Silent(Source):
    ...     info = SourceInfo("silent", ["Cz"], 100.0)
    ...     def pull(self, max_samples=None):
    ...         return np.empty((1, 0)), np.empty(0)
    >>> Silent().pull()[1].shape
    (0,)
    """

    @property
    @abstractmethod
    def info(self) -> SourceInfo:
        """What this source delivers (name, channels, nominal rate)."""

    @abstractmethod
    def pull(self, max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return the samples available now without waiting.

        Parameters
        ----------
        max_samples : int | None
            Return at most this many samples (None: all that are available).

        Returns
        -------
        data : ndarray, shape (n_chans, n_samples), float64
        timestamps : ndarray, shape (n_samples,), float64 (s)
        """

    def now(self) -> float:
        """Return the current time (s) on the clock that timestamps are compared with.

        The stream stamps each pulled chunk with it (its arrival time) and reads latencies and
        stalls from it: it must not jump when the source's timestamps do (a source whose
        device clock is corrected mid-session keeps a steady ``now``).
        """
        return time.perf_counter()

    def reconnect(self) -> SourceInfo:
        """Re-open a lost source; sources that cannot come back raise ``SourceLostError``."""
        raise SourceLostError(f"{type(self).__name__} cannot reconnect.")

    def close(self) -> None:  # noqa: B027 (optional hook: most sources hold nothing)
        """Release the source (idempotent)."""

    def __enter__(self) -> Source:
        """Return the source (released by ``__exit__``)."""
        return self

    def __exit__(self, *exc) -> None:
        """Release the source (:meth:`close`)."""
        self.close()


class Dejitterer:
    """Smooth the jitter of a regular stream's timestamps and keep their steps sharp.

    Timestamps of a regularly sampled device jitter (a chunk is stamped when it reaches the
    computer). liblsl's dejitter fits one line to every timestamp of the session, so a step
    (samples lost, or the device clock corrected) is smeared over minutes: a 2-s clock jump on a
    256-Hz stream came out as 479 one-sample "gaps" and end-to-end latencies of -2.5 s. This
    one fits the same exponentially weighted line (timestamp against sample
    count, recursive least squares with a half-life of ``halftime_s``) but treats a
    departure from the line of more than ``max_jitter_s`` as a step: the line is moved by the
    step, which comes out intact, between two samples, for the stream to classify (lost
    samples or clock jump, see :class:`~bci.realtime.stream.Stream`). Departures up to
    ``max_jitter_s`` are jitter and are smoothed away, as by liblsl.

    Parameters
    ----------
    sfreq : float
        Nominal rate (Hz); the line's slope starts at ``1 / sfreq`` and is then fitted (a
        device's true rate differs slightly).
    halftime_s : float
        Half-life (s of samples) of the weights of past timestamps (liblsl's default, 90 s).
    max_jitter_s : float
        Largest departure (s) from the fitted line still taken for jitter; larger ones are
        steps. Steps smaller than this cannot be told from jitter and are smoothed over (not
        reported), so set it above the device's jitter and below the smallest step that must
        be seen (0.01 s: steps of 3 samples at 256 Hz, 10 at 1 kHz).

    Attributes
    ----------
    steps : list of (int, float)
        Every step found: (index of the first sample after it, counted from the first
        timestamp given; size in s).

    Examples
    --------
    >>> dj = Dejitterer(100.0)
    >>> ts = np.r_[np.arange(50), np.arange(60, 110)] / 100.0  # 10 samples missing
    >>> out = dj(ts)
    >>> round(float(out[50] - out[49]), 6), [(i, round(s, 6)) for i, s in dj.steps]
    (0.11, [(50, 0.1)])
    """

    def __init__(self, sfreq: float, *, halftime_s: float = 90.0,
                 max_jitter_s: float = 0.01) -> None:
        self.sfreq = check_positive(sfreq, "sfreq", unit="Hz")
        self.halftime_s = check_positive(halftime_s, "halftime_s", unit="s")
        self.max_jitter_s = check_positive(max_jitter_s, "max_jitter_s", unit="s")
        self._lam = 2.0 ** (-1.0 / (self.halftime_s * self.sfreq))
        self._period = 1.0 / self.sfreq
        n_prior = max(self.sfreq, 2.0)  # prior on the slope: worth 1 s of regular samples
        self._prior = n_prior * (n_prior ** 2 - 1.0) / 12.0
        self.reset()

    def reset(self) -> None:
        """Forget the fitted line (the next timestamp starts a new one)."""
        self._n = 0  # timestamps seen
        self._t_ref: float | None = None
        self._w = 0.0  # sum of weights
        self._mx = self._my = 0.0  # weighted means of sample count and timestamp
        self._sxx = self._sxy = 0.0  # weighted centred sums of squares and products
        self.steps: list[tuple[int, float]] = []

    @property
    def period_s(self) -> float:
        """The fitted sampling period (s), ``1 / sfreq`` before any timestamp."""
        return (self._sxy + self._prior * self._period) / (self._sxx + self._prior)

    def _predict(self, x: np.ndarray) -> np.ndarray:
        return self._my + self.period_s * (x - self._mx)

    def _update(self, x: np.ndarray, y: np.ndarray) -> None:
        """Add samples ``(x, y)`` (consecutive counts) to the exponentially weighted fit."""
        m = x.size
        w = self._lam ** np.arange(m - 1, -1, -1, dtype=float)
        wc = float(w.sum())
        mx, my = float(w @ x) / wc, float(w @ y) / wc
        sxx, sxy = float(w @ (x - mx) ** 2), float(w @ ((x - mx) * (y - my)))
        decay = self._lam ** m
        w_old = self._w * decay
        w_new = w_old + wc
        cross = w_old * wc / w_new
        dx, dy = self._mx - mx, self._my - my
        self._sxx = self._sxx * decay + sxx + cross * dx * dx
        self._sxy = self._sxy * decay + sxy + cross * dx * dy
        self._mx = (w_old * self._mx + wc * mx) / w_new
        self._my = (w_old * self._my + wc * my) / w_new
        self._w = w_new

    def __call__(self, timestamps) -> np.ndarray:
        """Dejitter the next chunk of timestamps (s); returns a new array."""
        y = np.asarray(timestamps, dtype=np.float64)
        if y.ndim != 1:
            raise ValueError(f"timestamps must be 1-D (n_samples,), got shape {y.shape}.")
        m = y.size
        out = np.empty(m)
        if m == 0:
            return out
        if self._t_ref is None:
            self._t_ref = float(y[0])
        y = y - self._t_ref
        x = self._n + np.arange(m, dtype=float)
        start = 0
        while start < m:
            if self._w == 0.0:  # no line yet: start one at this sample
                self._mx, self._my = float(x[start]), float(y[start])
            resid = y[start:] - self._predict(x[start:])
            off = np.abs(resid) > self.max_jitter_s
            if off[0]:  # a step before sample `start`: move the line by it
                same = np.abs(resid - resid[0]) <= self.max_jitter_s
                stop = start + (int(np.argmin(same)) if not same.all() else same.size)
                step = float(np.median(resid[:stop - start]))
                self._my += step
                self.steps.append((int(x[start]), step))
            else:
                stop = start + (int(np.argmax(off)) if off.any() else off.size)
            self._update(x[start:stop], y[start:stop])
            out[start:stop] = self._predict(x[start:stop])
            start = stop
        self._n += m
        return out + self._t_ref


class ArraySource(Source):
    """Replay an array as if it were a live stream, deterministically.

    Parameters
    ----------
    data : array, shape (n_chans, n_times)
        The signal (not copied unless needed; never modified).
    sfreq : float
        Sampling rate (Hz).
    ch_names : sequence of str | None
        Channel names; ``Ch1``... when None.
    chunk_size : int
        Samples per :meth:`pull` (the last one may be shorter) when ``clock`` is None.
    t0 : float
        Timestamp (s) of the first sample; sample ``i`` is stamped ``t0 + i / sfreq``.
    clock : callable | None
        Real-time pacing: when given (e.g. :func:`time.perf_counter` or a fake clock in tests),
        a pull returns the samples whose time since the first sample, ``i / sfreq``, has
        passed on ``clock()`` since the first pull (at most ``max_samples``). Without it
        every pull returns the next ``chunk_size`` samples.
    loop : bool
        Start again from the first sample at the end (timestamps keep increasing).
    name : str
        Stream name.
    ch_types : sequence of str | None
        MNE type of each channel (``eeg``, ``mag``, ``grad``...), if known.
    """

    def __init__(self, data, sfreq: float, ch_names: Sequence[str] | None = None, *,
                 chunk_size: int = 32, t0: float = 0.0, clock: Callable[[], float] | None = None,
                 loop: bool = False, name: str = "array",
                 ch_types: Sequence[str] | None = None) -> None:
        data = np.asarray(data)
        if data.ndim != 2:
            raise ValueError(f"data must be 2-D (n_chans, n_times), got shape {data.shape}.")
        if sfreq <= 0:
            raise ValueError(f"sfreq must be positive (Hz), got {sfreq}.")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1 (samples), got {chunk_size}.")
        ch_names = list(ch_names) if ch_names is not None else \
            [f"Ch{i + 1}" for i in range(data.shape[0])]
        if len(ch_names) != data.shape[0]:
            raise ValueError(f"{len(ch_names)} ch_names for data with {data.shape[0]} channels.")
        if ch_types is not None and len(ch_types) != data.shape[0]:
            raise ValueError(f"{len(ch_types)} ch_types for data with {data.shape[0]} channels.")
        self.data = data
        self.chunk_size = int(chunk_size)
        self.t0 = float(t0)
        self.clock = clock
        self.loop = loop
        self._info = SourceInfo(name=name, ch_names=ch_names, sfreq=float(sfreq),
                                source_id=f"array-{name}",
                                ch_types=None if ch_types is None else list(ch_types))
        self.n_pulled = 0
        self._clock0: float | None = None
        self._last_pull: tuple[float, float] | None = None  # (timestamp, perf_counter)

    @property
    def info(self) -> SourceInfo:
        """Name, channels and rate of the replayed array."""
        return self._info

    @property
    def exhausted(self) -> bool:
        """True once every sample was pulled (never when looping)."""
        return not self.loop and self.n_pulled >= self.data.shape[1]

    def now(self) -> float:
        """Return the source time (s).

        With a ``clock``: ``t0`` plus the clock time since the first pull. Without: the last
        pulled sample's timestamp plus the real time since that pull (so that latencies of a
        replay count only the processing time).
        """
        if self.clock is not None:
            return self.t0 + (self.clock() - self._clock0) if self._clock0 is not None \
                else self.t0
        if self._last_pull is None:
            return self.t0
        ts, perf = self._last_pull
        return ts + (time.perf_counter() - perf)

    def pull(self, max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return the next chunk (``chunk_size``) or, with a ``clock``, the samples now due.

        Returns
        -------
        data : ndarray, shape (n_chans, n_samples), float64
        timestamps : ndarray, shape (n_samples,), float64
            ``t0 + index / sfreq`` (s).
        """
        n_total = self.data.shape[1]
        if self.clock is None:
            n = self.chunk_size
        else:
            now = self.clock()
            if self._clock0 is None:
                self._clock0 = now
            due = int(np.floor((now - self._clock0) * self.info.sfreq)) + 1
            n = max(0, due - self.n_pulled)
        if max_samples is not None:
            n = min(n, int(max_samples))
        if not self.loop:
            n = min(n, n_total - self.n_pulled)
        idx = self.n_pulled + np.arange(n)
        data = self.data[:, idx % n_total] if self.loop else \
            self.data[:, self.n_pulled:self.n_pulled + n]
        ts = self.t0 + idx / self.info.sfreq
        self.n_pulled += n
        if n:
            self._last_pull = (float(ts[-1]), time.perf_counter())
        return np.array(data, dtype=np.float64), ts


def raw_source(raw, *, picks=None, chunk_size: int = 32, t0: float = 0.0,
               clock: Callable[[], float] | None = None, loop: bool = False,
               name: str | None = None) -> ArraySource:
    """Make an :class:`ArraySource` that replays an MNE Raw (or any file MNE reads).

    Parameters
    ----------
    raw : mne.io.BaseRaw | str | Path
        The recording, or its file (read with :func:`mne.io.read_raw`).
    picks : str | list | None
        Channels to replay (MNE ``picks``); data channels when None. Data are in volts (SI).
    chunk_size, t0, clock, loop
        See :class:`ArraySource`.
    name : str | None
        Stream name; the file's stem when None.

    Returns
    -------
    source : ArraySource
    """
    raw = read_recording(raw)
    picks = "data" if picks is None else picks
    raw = raw.copy().pick(picks)
    if name is None:
        fnames = getattr(raw, "filenames", None) or [None]
        name = Path(fnames[0]).stem if fnames[0] else "raw"
    return ArraySource(raw.get_data(), raw.info["sfreq"], raw.ch_names, chunk_size=chunk_size,
                       t0=t0, clock=clock, loop=loop, name=name,
                       ch_types=raw.get_channel_types())


def read_recording(raw):
    """Return ``raw`` (preloaded), or read it from a file :func:`mne.io.read_raw` reads.

    Raises ``FileNotFoundError`` when the file does not exist.
    """
    import mne

    if isinstance(raw, mne.io.BaseRaw):
        return raw.load_data() if not raw.preload else raw
    path = Path(raw)
    if not path.exists():
        raise FileNotFoundError(f"No recording at {path}.")
    return mne.io.read_raw(path, preload=True, verbose=False)
