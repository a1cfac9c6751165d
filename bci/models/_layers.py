"""Small layers and helpers shared by the deep decoders (private).

Padding and receptive-field arithmetic, Keras-style initialisation and max-norm constraints, the
composed temporal filter bank of the EEGNet family, depthwise spatial filters and "same" average
pooling. Used by :mod:`bci.models.eegnet`, :mod:`bci.models.eegnex`, :mod:`bci.models.shallow`
and :mod:`bci.models.spiking.conformer`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def _same_padding(span: int) -> tuple[int, int]:
    """Left/right zero padding of a ``padding="same"`` convolution or pooling of width ``span``.

    As in Keras/TensorFlow (and ``torch`` ``padding="same"``), an odd total goes to the right:
    ``span=64`` gives ``(31, 32)``.
    """
    total = span - 1
    return total // 2, total - total // 2


def _taps_reach_signal(n_in: int, kernel_size: int, dilation: int, padding: tuple[int, int]
                       ) -> bool:
    """Whether every tap of a stride-1 convolution over ``n_in`` samples sees a real sample.

    Tap ``j`` reads input sample ``t + j * dilation - padding[0]`` for output ``t``; the outputs
    are ``t = 0 .. n_in + sum(padding) - span``. The taps at both ends are the critical ones.
    """
    span = dilation * (kernel_size - 1) + 1
    n_out = n_in + padding[0] + padding[1] - span + 1
    if n_out < 1:
        return False
    # first tap: the last output reads sample n_out - 1 - padding[0]
    # last tap: the first output reads sample span - 1 - padding[0]
    return n_out - 1 - padding[0] >= 0 and span - 1 - padding[0] <= n_in - 1


def _smallest(predicate: Callable[[int], bool], upper: int = 1 << 24) -> int:
    """Smallest ``n >= 1`` with ``predicate(n)`` true, for a predicate monotone in ``n``."""
    hi = 1
    while not predicate(hi):
        hi *= 2
        if hi > upper:
            raise ValueError(
                f"no window of up to {upper} samples fits this architecture; check its kernel, "
                "dilation and pooling sizes."
            )
    lo = hi // 2 + 1 if hi > 1 else 1
    while lo < hi:
        mid = (lo + hi) // 2
        if predicate(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


def _glorot_uniform_(tensor: torch.Tensor, fan_in: int, fan_out: int) -> torch.Tensor:
    """Fill ``tensor`` with Keras' default ``glorot_uniform``, with explicit fans.

    Keras and torch count depthwise fans differently, so the fans are given, not inferred from the
    torch weight shape.
    """
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        return tensor.uniform_(-limit, limit)


def _max_norm(weight: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Return ``weight`` with every output unit rescaled to an L2 norm ``<= max_norm``.

    An output unit is a slice along dim 0.

    Computed in the forward pass from the stored weight, so the effective weight always satisfies
    the constraint and gradients flow through the projection; this is what braindecode's
    ``Conv2dWithConstraint``/``LinearWithConstraint`` parametrizations compute (Keras instead
    projects the stored weight after each optimiser step). No in-place change of a parameter
    happens in ``forward``.
    """
    return torch.renorm(weight, p=2, dim=0, maxnorm=max_norm)


class _TemporalFilterBank(torch.autograd.Function):
    """``(B, C, T_padded)`` signal -> ``(B, F, C, T)`` by ``F`` temporal FIR filters ``(F, K)``.

    The same 1-input-channel convolution as ``conv2d(x[:, None], w[:, None, None])``; the forward
    pass uses oneDNN's convolution. The backward pass computes the weight gradient as one grouped
    ``conv1d`` (one group per window, see ``backward``): on CPU it is several times faster than
    the generic convolution backward for a single input channel (about 0.05 s instead of 0.6 s for
    64 windows of 22 x 1,000 samples and 8 filters of 64 taps), and closer to a float64 reference
    (relative error about 3e-7 instead of 1e-6). The input gradient (only computed when the caller
    asks for gradients with respect to the signal) is a transposed convolution.
    """

    @staticmethod
    def forward(ctx, x_padded: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                channels_last: bool):
        out = F.conv2d(x_padded.unsqueeze(1), weight.unsqueeze(1).unsqueeze(1), bias)
        if channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        ctx.save_for_backward(x_padded, weight)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x_padded, weight = ctx.saved_tensors
        n_filters, kernel_size = weight.shape
        batch, n_chans, n_padded = x_padded.shape
        n_rows = batch * n_chans
        n_times = n_padded - kernel_size + 1
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[1]:
            # grad_w[f, k] = sum_b sum_{c, t} g[b, f, c, t] * x[b, c, t + k]: for each window b, a
            # convolution whose input channels are the C electrodes and whose kernel is the whole
            # gradient signal (one group per window), then a sum over windows; faster than the
            # generic backward, and more accurate than one reduction over all B * C * T terms.
            per_window = F.conv1d(x_padded.reshape(1, n_rows, n_padded),
                                  grad_out.reshape(batch * n_filters, n_chans, n_times),
                                  groups=batch)
            grad_w = per_window.reshape(batch, n_filters, kernel_size).sum(0)
        if ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        if ctx.needs_input_grad[0]:
            grad_x = F.conv_transpose2d(
                grad_out.contiguous(), weight.unsqueeze(1).unsqueeze(1)).squeeze(1)
        return grad_x, grad_w, grad_b, None


def _temporal_filter_bank(x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, int],
                          channels_last: bool = False, bias: torch.Tensor | None = None
                          ) -> torch.Tensor:
    """Filter every channel of ``x`` ``(B, C, T)`` with each row of ``weight`` ``(F, K)``.

    Returns ``(B, F, C, T + sum(padding) - K + 1)`` (cross-correlation, as ``torch.nn.Conv2d``,
    plus ``bias`` ``(F,)`` if given), in ``torch.channels_last`` memory format when
    ``channels_last``.
    """
    return _TemporalFilterBank.apply(F.pad(x, padding), weight, bias, channels_last)


class _TemporalConv(nn.Module):
    """First layer of the EEGNet family: ``n_filters`` temporal FIR filters shared by all channels.

    ``(B, C, T)`` -> ``(B, n_filters, C, T')`` with ``T' = T + sum(padding) - kernel_size + 1``;
    the weight is ``(n_filters, kernel_size)`` (a ``Conv2d(1, n_filters, (1, kernel_size))``
    weight without its singleton axes).
    """

    def __init__(self, n_filters: int, kernel_size: int, padding: tuple[int, int],
                 channels_last: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_filters, kernel_size))
        self.padding = padding
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _temporal_filter_bank(x, self.weight, self.padding, self.channels_last)

    def extra_repr(self) -> str:
        n_filters, kernel_size = self.weight.shape
        return f"1 -> {n_filters}, kernel_size={kernel_size}, padding={self.padding}"


class _SpatialDepthwise(nn.Module):
    """Depthwise spatial filters, each with a max-norm constraint.

    ``depth_multiplier`` spatial filters (over all ``n_chans`` electrodes) per input feature map.

    ``(B, n_maps, C, T)`` -> ``(B, n_maps * depth_multiplier, T)``; the weight is
    ``(n_maps * depth_multiplier, n_chans)`` (a ``Conv2d(n_maps, n_maps * depth_multiplier,
    (n_chans, 1), groups=n_maps)`` weight without its singleton axes; output ``f * D + d`` filters
    map ``f``). Computed as one batched matrix product, which is much faster on CPU than the
    grouped convolution, whose backward pass is a slow path in oneDNN.
    """

    def __init__(self, n_maps: int, depth_multiplier: int, n_chans: int,
                 max_norm: float | None) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_maps * depth_multiplier, n_chans))
        self.n_maps = n_maps
        self.depth_multiplier = depth_multiplier
        self.max_norm = max_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.max_norm is None else _max_norm(self.weight, self.max_norm)
        batch, _, n_chans, n_times = x.shape
        out = torch.matmul(weight.view(self.n_maps, self.depth_multiplier, n_chans),
                           x.contiguous())  # (B, n_maps, D, T)
        return out.view(batch, self.n_maps * self.depth_multiplier, n_times)

    def extra_repr(self) -> str:
        return (f"{self.n_maps} -> {self.n_maps * self.depth_multiplier}, "
                f"n_chans={self.weight.shape[1]}, max_norm={self.max_norm}")


class _MaxNormLinear(nn.Linear):
    """``nn.Linear`` whose weight rows are rescaled to an L2 norm ``<= max_norm`` in forward."""

    def __init__(self, in_features: int, out_features: int, max_norm: float) -> None:
        super().__init__(in_features, out_features)
        self.max_norm = max_norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, _max_norm(self.weight, self.max_norm), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, max_norm={self.max_norm}"


def _avg_pool_same(x: torch.Tensor, size: int) -> torch.Tensor:
    """Average-pool the last axis of ``(B, F, T)`` as Keras does with ``padding="same"``.

    Keras/TensorFlow ``AveragePooling(size, padding="same")``.

    ``ceil(T / size)`` outputs; when ``T`` is not a multiple of ``size`` the windows overhang by
    ``size * ceil(T / size) - T`` samples, split as in :func:`_same_padding` (extra on the right),
    and the overhang is left out of the average (not counted as zeros).
    """
    n_times = x.shape[-1]
    overhang = -n_times % size
    return F.avg_pool1d(x, size, size, padding=overhang // 2, ceil_mode=True,
                        count_include_pad=False)


def _avg_pool_same_length(n_times: int, size: int) -> int:
    return -(-n_times // size)
