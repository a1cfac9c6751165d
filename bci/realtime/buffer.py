"""A preallocated ring buffer of multichannel samples and their timestamps."""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Fixed-size ring of the last ``n_samples`` samples of ``n_chans`` channels.

    Samples are addressed by their *absolute index*: the number of samples written before them
    since the buffer was created (``0, 1, 2, ...``). Writing never moves memory (no
    ``np.roll``); reads return copies in time order.

    Parameters
    ----------
    n_chans : int
        Number of channels.
    n_samples : int
        Capacity (samples); older samples are overwritten.
    dtype : numpy dtype
        Sample type (float64 by default).

    Examples
    --------
    >>> import numpy as np
    >>> buf = RingBuffer(n_chans=1, n_samples=4)
    >>> buf.write(np.arange(6.0)[np.newaxis], np.arange(6.0))
    >>> buf.get_last(3)[0]
    array([[3., 4., 5.]])
    >>> buf.n_written
    6
    """

    def __init__(self, n_chans: int, n_samples: int, dtype=np.float64) -> None:
        if n_chans < 1:
            raise ValueError(f"n_chans must be >= 1, got {n_chans}.")
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
        self.n_chans = int(n_chans)
        self.n_samples = int(n_samples)
        self._data = np.zeros((self.n_chans, self.n_samples), dtype=dtype)
        self._times = np.full(self.n_samples, np.nan)
        self.n_written = 0

    @property
    def n_available(self) -> int:
        """Samples that can be read back now (``min(n_written, n_samples)``)."""
        return min(self.n_written, self.n_samples)

    @property
    def oldest_index(self) -> int:
        """Absolute index of the oldest sample still held."""
        return self.n_written - self.n_available

    def write(self, data: np.ndarray, timestamps: np.ndarray) -> None:
        """Append samples.

        Parameters
        ----------
        data : array, shape (n_chans, n_new)
            New samples (copied).
        timestamps : array, shape (n_new,)
            Their times (s).
        """
        data = np.asarray(data)
        timestamps = np.asarray(timestamps, dtype=np.float64)
        if data.ndim != 2 or data.shape[0] != self.n_chans:
            raise ValueError(f"data must have shape ({self.n_chans}, n_new), got {data.shape}.")
        if timestamps.shape != (data.shape[1],):
            raise ValueError(f"{data.shape[1]} samples but timestamps of shape "
                             f"{timestamps.shape}; give one timestamp per sample.")
        n = data.shape[1]
        if n == 0:
            return
        if n >= self.n_samples:  # only the newest n_samples survive
            data, timestamps = data[:, -self.n_samples:], timestamps[-self.n_samples:]
            start = (self.n_written + n - self.n_samples) % self.n_samples
            k = self.n_samples
        else:
            start, k = self.n_written % self.n_samples, n
        first = min(k, self.n_samples - start)
        self._data[:, start:start + first] = data[:, :first]
        self._times[start:start + first] = timestamps[:first]
        if first < k:
            self._data[:, :k - first] = data[:, first:]
            self._times[:k - first] = timestamps[first:]
        self.n_written += n

    def get(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Copy of the samples with absolute indices ``start <= i < stop``.

        Raises ``ValueError`` when part of the range was overwritten or not written yet.

        Returns
        -------
        data : ndarray, shape (n_chans, stop - start)
        timestamps : ndarray, shape (stop - start,)
        """
        if start < self.oldest_index or stop > self.n_written or stop < start:
            raise ValueError(
                f"Samples [{start}, {stop}) are not in the buffer, which holds "
                f"[{self.oldest_index}, {self.n_written}); make buffer_s longer or read more "
                "often."
            )
        idx = np.arange(start, stop) % self.n_samples
        return self._data[:, idx], self._times[idx]

    def get_last(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Copy of the newest ``n`` samples, oldest first (see :meth:`get`)."""
        return self.get(self.n_written - n, self.n_written)

    def reset(self) -> None:
        """Forget every sample (indices restart at 0)."""
        self._data[:] = 0
        self._times[:] = np.nan
        self.n_written = 0
