"""Signal sources: what a :class:`~bci.realtime.stream.Stream` pulls samples from.

A source has ``info`` (:class:`SourceInfo`) and a non-blocking ``pull(max_samples)`` returning
``(data (n_chans, n_samples), timestamps (n_samples,))``. :class:`ArraySource` and
:func:`raw_source` replay a recording deterministically (tests, offline runs of the online
code); :class:`~bci.realtime.lsl.LSLSource` reads a live LSL stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


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
    """

    name: str
    ch_names: list[str]
    sfreq: float
    source_id: str = ""

    @property
    def n_chans(self) -> int:
        """Number of channels."""
        return len(self.ch_names)


class Source:
    """Base class of signal sources (subclasses set ``info`` and implement :meth:`pull`)."""

    info: SourceInfo

    def pull(self, max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return the samples available now without waiting.

        Returns
        -------
        data : ndarray, shape (n_chans, n_samples), float64
        timestamps : ndarray, shape (n_samples,), float64 (s)
        """
        raise NotImplementedError

    def now(self) -> float:
        """Current time (s) on the clock of this source's timestamps."""
        return time.perf_counter()

    def reconnect(self) -> SourceInfo:
        """Re-open a lost source; sources that cannot come back raise ``SourceLostError``."""
        raise SourceLostError(f"{type(self).__name__} cannot reconnect.")

    def close(self) -> None:
        """Release the source (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
    """

    def __init__(self, data, sfreq: float, ch_names: Sequence[str] | None = None, *,
                 chunk_size: int = 32, t0: float = 0.0, clock: Callable[[], float] | None = None,
                 loop: bool = False, name: str = "array") -> None:
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
        self.data = data
        self.chunk_size = int(chunk_size)
        self.t0 = float(t0)
        self.clock = clock
        self.loop = loop
        self.info = SourceInfo(name=name, ch_names=ch_names, sfreq=float(sfreq),
                               source_id=f"array-{name}")
        self.n_pulled = 0
        self._clock0: float | None = None
        self._last_pull: tuple[float, float] | None = None  # (timestamp, perf_counter)

    @property
    def exhausted(self) -> bool:
        """True once every sample was pulled (never when looping)."""
        return not self.loop and self.n_pulled >= self.data.shape[1]

    def now(self) -> float:
        """Source time (s): with a ``clock``, ``t0`` plus the clock time since the first pull;
        without, the last pulled sample's timestamp plus the real time since that pull (so
        that latencies of a replay count only the processing time).
        """
        if self.clock is not None:
            return self.t0 + (self.clock() - self._clock0) if self._clock0 is not None \
                else self.t0
        if self._last_pull is None:
            return self.t0
        ts, perf = self._last_pull
        return ts + (time.perf_counter() - perf)

    def pull(self, max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
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
    """An :class:`ArraySource` replaying an MNE Raw (or any file MNE reads).

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
                       t0=t0, clock=clock, loop=loop, name=name)


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
