"""Test helpers: a source that injects faults, index-carrying signals, a fake clock."""

from __future__ import annotations

import numpy as np

from bci.realtime.sources import ArraySource, Source, SourceLostError


def index_signal(n_times: int, n_chans: int = 3, seed: int = 0) -> np.ndarray:
    """Row 0 carries the sample index; the other rows are seeded noise."""
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n_chans, n_times))
    data[0] = np.arange(n_times)
    return data


class FaultySource(Source):
    """Wrap an :class:`ArraySource` and break it on purpose, pull by pull.

    Parameters
    ----------
    inner : ArraySource
        The clean replay.
    drop : set of int
        Pull numbers whose chunk is thrown away (the samples are lost in transit).
    nan : set of int
        Pull numbers whose chunk is replaced by NaN.
    jump : dict of int -> float
        Pull numbers from which every timestamp is shifted by this many seconds (the device's
        clock jumps; the arrival clock, :meth:`now`, does not).
    lose_at : int | None
        Pull number at which the source is lost (raises SourceLostError).
    come_back : bool
        Whether reconnect() succeeds after the loss.
    raise_at : int | None
        Pull number that raises an unexpected error (a driver bug).
    """

    def __init__(self, inner: ArraySource, *, drop=(), nan=(), jump=None, lose_at=None,
                 come_back=True, raise_at=None) -> None:
        self.inner = inner
        self.drop, self.nan = set(drop), set(nan)
        self.jump = dict(jump or {})
        self.lose_at, self.come_back, self.raise_at = lose_at, come_back, raise_at
        self.n_pulls = 0
        self._shift = 0.0
        self.lost = False
        self.n_reconnects = 0

    @property
    def info(self):
        return self.inner.info

    @property
    def exhausted(self) -> bool:
        return self.inner.exhausted

    def now(self) -> float:
        return self.inner.now()

    def pull(self, max_samples=None):
        if self.lost:
            raise SourceLostError("still lost")
        k = self.n_pulls
        self.n_pulls += 1
        if k == self.lose_at:
            self.lost = True
            raise SourceLostError("unplugged")
        if k == self.raise_at:
            raise OSError("driver crashed")
        data, ts = self.inner.pull(max_samples)
        if k in self.jump:
            self._shift += self.jump[k]
        ts = ts + self._shift
        if k in self.drop:
            return np.empty((data.shape[0], 0)), np.empty(0)
        if k in self.nan:
            data = np.full_like(data, np.nan)
        return data, ts

    def reconnect(self):
        if not self.come_back:
            raise SourceLostError("gone for good")
        self.lost = False
        self.n_reconnects += 1
        return self.info


class FakeClock:
    """A clock tests advance by hand (no sleeping)."""

    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt
