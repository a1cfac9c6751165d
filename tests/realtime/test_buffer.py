"""RingBuffer: exact indices across wrap-arounds, copies, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from bci.realtime.buffer import RingBuffer


def test_exact_indices_across_wraparound():
    rng = np.random.default_rng(0)
    buf = RingBuffer(n_chans=2, n_samples=50)
    written = 0
    for n in rng.integers(1, 40, size=60):
        data = np.vstack([np.arange(written, written + n), -np.arange(written, written + n)])
        buf.write(data, np.arange(written, written + n) / 10.0)
        written += n
        data_back, ts = buf.get_last(buf.n_available)
        expected = np.arange(written - buf.n_available, written)
        np.testing.assert_array_equal(data_back[0], expected)
        np.testing.assert_array_equal(data_back[1], -expected)
        np.testing.assert_allclose(ts, expected / 10.0)
    assert buf.n_written == written


def test_write_larger_than_capacity_keeps_newest():
    buf = RingBuffer(1, 8)
    buf.write(np.arange(3.0)[None], np.arange(3.0))
    buf.write(np.arange(3.0, 23.0)[None], np.arange(3.0, 23.0))
    np.testing.assert_array_equal(buf.get_last(8)[0][0], np.arange(15.0, 23.0))
    np.testing.assert_array_equal(buf.get(17, 20)[0][0], [17, 18, 19])
    assert buf.oldest_index == 15


def test_reads_are_copies_and_input_untouched():
    buf = RingBuffer(1, 4)
    src = np.ones((1, 3))
    buf.write(src, np.zeros(3))
    out, _ = buf.get_last(3)
    out[:] = 7
    assert buf.get_last(3)[0].sum() == 3
    src[:] = 5
    assert buf.get_last(3)[0].sum() == 3


def test_errors():
    buf = RingBuffer(2, 10)
    with pytest.raises(ValueError, match=r"data must have shape \(2, n_new\)"):
        buf.write(np.zeros((3, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="one timestamp per sample"):
        buf.write(np.zeros((2, 4)), np.zeros(3))
    buf.write(np.zeros((2, 15)), np.zeros(15))
    with pytest.raises(ValueError, match=r"Samples \[0, 3\) are not in the buffer"):
        buf.get(0, 3)
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        RingBuffer(2, 0)
