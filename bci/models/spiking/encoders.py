"""Encoders from continuous signals (or spike counts) to the inputs of a spiking layer.

- :class:`DirectEncoder` ("direct" or "current" coding): the signal itself, optionally
  compressed (``sqrt``, ``log1p``) and scaled per channel, is the input current of the first
  layer at every step; the first synaptic layer then does multiply-accumulates, the others
  accumulates of spikes.
- :class:`ThresholdEncoder`: each channel is compared with ``n_levels`` learnable thresholds and
  emits a spike per step where the signal exceeds a threshold (a trainable threshold encoder in
  the spirit of STAL, Spike Threshold Adaptive Learning); gradients reach the thresholds through
  the surrogate of :func:`~bci.models.spiking.surrogate.spike`.

Both map ``(batch, n_chans, n_times)`` (the ``bci`` network convention) to time-major currents
``(batch, n_times, n_features)`` for :class:`~bci.models.spiking.neurons.LIF`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..._checks import check_option, check_positive, check_real, ensure_int
from .surrogate import SurrogateName, check_surrogate, spike

__all__ = ["DeltaEncoder", "DirectEncoder", "ThresholdEncoder", "TRANSFORMS"]

TRANSFORMS = ("none", "sqrt", "log1p")
Transform = Literal["none", "sqrt", "log1p"]


def _check_signal(x: torch.Tensor, n_chans: int, who: str) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{who} expects a floating-point torch.Tensor (batch, n_chans, n_times).")
    if x.ndim != 3 or x.shape[1] != n_chans:
        raise ValueError(f"{who} expects input of shape (batch, n_chans={n_chans}, n_times), got "
                         f"{tuple(x.shape)}.")


def _transform(x: torch.Tensor, transform: str) -> torch.Tensor:
    if transform == "sqrt":
        return torch.sqrt(torch.clamp(x, min=0.0))
    if transform == "log1p":
        return torch.log1p(torch.clamp(x, min=0.0))
    return x


class DirectEncoder(nn.Module):
    """Direct (current) input: ``gain * f(x) + bias`` per channel, time-major.

    Parameters
    ----------
    n_chans : int
        Channels (units) of the input.
    transform : "none" | "sqrt" | "log1p"
        Compression applied first (``sqrt`` and ``log1p`` clip negative values to 0; use them
        for counts).
    learn_gain : bool
        Learn one gain and one offset per channel (initialised at 1 and 0); identity otherwise.
    repeat : int
        Repeat each time step this many times (``1``: one step per input sample; ``> 1`` turns a
        static input of ``n_times=1`` into ``repeat`` identical steps, the usual "direct
        coding" of images).

    Examples
    --------
    >>> enc = DirectEncoder(2, transform="sqrt")
    >>> enc(torch.tensor([[[4.0, 9.0], [1.0, 0.0]]])).tolist()
    [[[2.0, 1.0], [3.0, 0.0]]]
    """

    def __init__(self, n_chans: int, *, transform: Transform = "none", learn_gain: bool = False,
                 repeat: int = 1) -> None:
        super().__init__()
        ensure_int(n_chans, "n_chans", minimum=1)
        ensure_int(repeat, "repeat", minimum=1, what="steps per sample")
        check_option("transform", transform, TRANSFORMS)
        self.n_chans, self.transform, self.repeat = int(n_chans), transform, int(repeat)
        self.learn_gain = bool(learn_gain)
        if self.learn_gain:
            self.gain = nn.Parameter(torch.ones(self.n_chans))
            self.bias = nn.Parameter(torch.zeros(self.n_chans))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_chans, n_times)`` -> currents ``(batch, n_times * repeat, n_chans)``."""
        _check_signal(x, self.n_chans, type(self).__name__)
        out = _transform(x, self.transform).transpose(1, 2)
        if self.learn_gain:
            out = out * self.gain + self.bias
        if self.repeat > 1:
            out = out.repeat_interleave(self.repeat, dim=1)
        return out


class ThresholdEncoder(nn.Module):
    """Spikes where a channel exceeds each of ``n_levels`` learnable thresholds.

    Output feature ``c * n_levels + k`` spikes at step ``t`` when ``f(x[c, t]) > theta[c, k]``
    (a thermometer code of the signal); thresholds start evenly spaced in ``init_range``.

    Parameters
    ----------
    n_chans : int
        Channels of the input.
    n_levels : int
        Thresholds per channel.
    init_range : tuple of float
        ``(low, high)``: initial thresholds are ``n_levels`` points evenly spaced inside it
        (in the units of ``f(x)``).
    transform : "none" | "sqrt" | "log1p"
        Compression applied before the comparison.
    surrogate, slope
        Surrogate gradient of the comparison (see :func:`~bci.models.spiking.surrogate.spike`).

    Examples
    --------
    >>> enc = ThresholdEncoder(1, n_levels=2, init_range=(0.0, 3.0))  # thresholds 1 and 2
    >>> enc(torch.tensor([[[0.5, 1.5, 2.5]]]))[0].tolist()
    [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]
    """

    def __init__(self, n_chans: int, *, n_levels: int = 2,
                 init_range: tuple[float, float] = (0.0, 2.0), transform: Transform = "none",
                 surrogate: SurrogateName = "fast_sigmoid", slope: float = 5.0) -> None:
        super().__init__()
        ensure_int(n_chans, "n_chans", minimum=1)
        ensure_int(n_levels, "n_levels", minimum=1)
        try:
            low, high = init_range
        except (TypeError, ValueError):
            raise TypeError(f"init_range must be a (low, high) pair, got {init_range!r}.") from None
        low = check_real(low, "init_range[0] (low)")
        high = check_real(high, "init_range[1] (high)")
        if not high > low:
            raise ValueError(f"init_range must be (low, high) with high > low, got {init_range}.")
        check_option("transform", transform, TRANSFORMS)
        self.n_chans, self.n_levels, self.transform = int(n_chans), int(n_levels), transform
        self.init_range = (low, high)
        self.surrogate, self.slope = check_surrogate(surrogate, slope)
        levels = torch.linspace(low, high, self.n_levels + 2)[1:-1]
        self.thresholds = nn.Parameter(levels.repeat(self.n_chans, 1))

    @property
    def n_features(self) -> int:
        """Number of spike trains out: ``n_chans * n_levels``."""
        return self.n_chans * self.n_levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_chans, n_times)`` -> spikes ``(batch, n_times, n_chans * n_levels)``."""
        _check_signal(x, self.n_chans, type(self).__name__)
        signal = _transform(x, self.transform).transpose(1, 2)  # (B, T, C)
        diff = signal.unsqueeze(-1) - self.thresholds  # (B, T, C, K)
        return spike(diff, self.surrogate, self.slope).flatten(2)


class DeltaEncoder(nn.Module):
    """Signed spikes where the signal's change between samples exceeds learnable thresholds.

    With ``d[c, t] = x[c, t] - x[c, t - 1]`` (``d[c, 0] = 0``), output feature
    ``c * n_levels + k`` at step ``t`` is ``+1`` where ``d[c, t] > theta[c, k]``, ``-1``
    where ``d[c, t] < -theta[c, k]`` and 0 otherwise: a thermometer code of the change, in
    the spirit of STAL's trainable thresholds (Spike Threshold Adaptive Learning) applied to a
    delta (temporal contrast) code. Gradients reach the thresholds (and the signal) through
    the surrogate of :func:`~bci.models.spiking.surrogate.spike`. The spikes hold only
    ``-1, 0, 1``, so a connection layer reading them performs accumulates (NeuroBench), one per
    event and synapse. Thresholds are kept positive (their absolute value is used).

    Parameters
    ----------
    n_chans : int
        Channels of the input.
    n_levels : int
        Thresholds per channel.
    init_threshold : float
        Initial threshold of the first level, in the units of the signal per sample (> 0);
        level ``k`` starts at ``(k + 1) * init_threshold``.
    surrogate, slope
        Surrogate gradient of the comparison (see :func:`~bci.models.spiking.surrogate.spike`).

    Examples
    --------
    >>> enc = DeltaEncoder(1, init_threshold=0.5)
    >>> enc(torch.tensor([[[0.0, 1.0, 1.2, 0.4, 0.4]]]))[0, :, 0].tolist()
    [0.0, 1.0, 0.0, -1.0, 0.0]
    """

    def __init__(self, n_chans: int, *, n_levels: int = 1, init_threshold: float = 0.5,
                 surrogate: SurrogateName = "fast_sigmoid", slope: float = 5.0) -> None:
        super().__init__()
        ensure_int(n_chans, "n_chans", minimum=1)
        ensure_int(n_levels, "n_levels", minimum=1)
        init_threshold = check_positive(init_threshold, "init_threshold",
                                        unit="signal units per sample")
        self.n_chans, self.n_levels = int(n_chans), int(n_levels)
        self.init_threshold = init_threshold
        self.surrogate, self.slope = check_surrogate(surrogate, slope)
        levels = init_threshold * torch.arange(1, self.n_levels + 1, dtype=torch.float32)
        self.thresholds = nn.Parameter(levels.repeat(self.n_chans, 1))

    @property
    def n_features(self) -> int:
        """Number of spike trains out: ``n_chans * n_levels``."""
        return self.n_chans * self.n_levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, n_chans, n_times)`` -> spikes ``(batch, n_times, n_chans * n_levels)``."""
        _check_signal(x, self.n_chans, type(self).__name__)
        diff = torch.diff(x, dim=-1, prepend=x[..., :1]).transpose(1, 2).unsqueeze(-1)
        theta = self.thresholds.abs()  # (C, K)
        up = spike(diff - theta, self.surrogate, self.slope)
        down = spike(-diff - theta, self.surrogate, self.slope)
        return (up - down).flatten(2)
