"""Sources: the abstract base class, the array replay, the step-keeping dejitterer."""

from __future__ import annotations

import numpy as np
import pytest

from bci.realtime.sources import ArraySource, Dejitterer, Source, SourceInfo, SourceLostError
from bci.realtime.stream import Stream

SFREQ = 256.0


class _Complete(Source):
    info = SourceInfo("ok", ["Cz"], 100.0)

    def pull(self, max_samples=None):
        return np.zeros((1, 2)), np.array([0.0, 0.01])


def test_source_is_an_abstract_base_class():
    class NoPull(Source):
        info = SourceInfo("x", ["Cz"], 100.0)

    class NoInfo(Source):
        def pull(self, max_samples=None):
            return np.empty((1, 0)), np.empty(0)

    with pytest.raises(TypeError, match="Can't instantiate abstract class NoPull.*pull"):
        NoPull()
    with pytest.raises(TypeError, match="Can't instantiate abstract class NoInfo.*info"):
        NoInfo()
    src = _Complete()
    with pytest.raises(SourceLostError, match="_Complete cannot reconnect"):
        src.reconnect()
    with Stream(src, threaded=False) as stream:
        assert stream.pump() == 2
    assert stream.ch_names == ["Cz"]


def test_array_source_keeps_its_behaviour():
    src = ArraySource(np.arange(10.0)[np.newaxis], 100.0, chunk_size=4, t0=2.0)
    assert isinstance(src, Source)
    assert src.info == SourceInfo("array", ["Ch1"], 100.0, "array-array")
    chunks = [src.pull() for _ in range(3)]
    np.testing.assert_array_equal(np.concatenate([d[0] for d, _ in chunks]), np.arange(10.0))
    np.testing.assert_allclose(np.concatenate([t for _, t in chunks]),
                               2.0 + np.arange(10) / 100.0)
    assert src.exhausted


def _chunked(ts: np.ndarray, rng: np.random.Generator, jitter_s: float):
    """Cut timestamps into chunks of 4-11 samples, each stamped late/early by one jitter."""
    bounds = np.cumsum(rng.integers(4, 12, size=ts.size))
    bounds = np.r_[0, bounds[bounds < ts.size], ts.size]
    return [ts[a:b] + rng.uniform(-jitter_s, jitter_s)
            for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def test_dejitterer_smooths_jitter_and_keeps_steps_sharp():
    """Both steps come out whole between two samples; the rest is smoothed.

    Chunks jittered by up to +-0.9 ms (< half a period), a 20-ppm clock, a +0.5-s clock jump at
    sample 7680 and 64 samples lost at 15360.
    """
    rng = np.random.default_rng(0)
    n = int(120 * SFREQ)
    true = 1000.0 + np.arange(n) / SFREQ * (1 + 20e-6)
    true[7680:] += 0.5
    true[15360:] += 64 / SFREQ
    dejitter = Dejitterer(SFREQ)
    out = np.concatenate([dejitter(chunk) for chunk in _chunked(true, rng, 0.0009)])
    steps = np.diff(out) * SFREQ  # in sample periods
    big = np.flatnonzero(steps > 1.5) + 1
    np.testing.assert_array_equal(big, [7680, 15360])
    assert [i for i, _ in dejitter.steps] == [7680, 15360]
    assert steps[7679] - 1 == pytest.approx(0.5 * SFREQ, abs=0.5)  # within half a sample
    assert int(round(steps[15359])) - 1 == 64  # the lost samples, exactly
    others = np.delete(steps, big - 1)
    assert 0.95 < others.min() <= others.max() < 1.05  # the line forms in the first 0.5 s
    settled = others[int(10 * SFREQ):]  # then each chunk moves the line less and less
    assert 0.995 < settled.min() <= settled.max() < 1.005
    # after a few seconds the output is within the jitter of the truth
    assert np.abs(out - true)[int(5 * SFREQ):].max() < 0.0009
    assert dejitter.period_s * SFREQ == pytest.approx(1 + 20e-6, abs=20e-6)  # vs 1 nominal


@pytest.mark.parametrize("step_s", [-10.0, -0.5, 0.02, 2.0])
def test_dejitterer_passes_exact_timestamps_through(step_s):
    ts = 50.0 + np.arange(2000) / SFREQ
    ts[1000:] += step_s
    dejitter = Dejitterer(SFREQ)
    out = np.concatenate([dejitter(c) for c in np.array_split(ts, 97)])
    np.testing.assert_allclose(out, ts, rtol=0, atol=1e-9)
    assert [i for i, _ in dejitter.steps] == [1000]
    assert dejitter.steps[0][1] == pytest.approx(step_s, abs=1e-9)


def test_dejitterer_reset_and_errors():
    dejitter = Dejitterer(100.0)
    np.testing.assert_allclose(dejitter(np.arange(5) / 100.0), np.arange(5) / 100.0)
    assert dejitter(np.empty(0)).shape == (0,)
    dejitter.reset()
    np.testing.assert_allclose(dejitter(7.0 + np.arange(3) / 100.0), 7.0 + np.arange(3) / 100.0)
    assert dejitter.steps == []
    with pytest.raises(ValueError, match=r"max_jitter_s must be a finite number > 0 \(s\), "
                                         r"got nan"):
        Dejitterer(100.0, max_jitter_s=float("nan"))
    with pytest.raises(ValueError, match="timestamps must be 1-D"):
        dejitter(np.zeros((2, 2)))
