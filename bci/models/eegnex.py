"""EEGNeX (Chen et al. 2024), as in the authors' public code, with a braindecode-compatible mode.

Reference code: ``EEGNeX_8_32`` in ``BenchmarkModels.py`` of github.com/chenxiachan/EEGNeX (Keras).
braindecode re-implements it as ``braindecode.models.EEGNeX`` with a few differences, all of which
are keyword arguments here (the defaults follow the authors' code; :data:`BRAINDECODE_KWARGS`
selects braindecode's choices):

============================  ==========================  ===================================
                              authors' code (default)     braindecode ``EEGNeX`` (1.8.1)
============================  ==========================  ===================================
ELU after block 1's BN        yes                         no (``activation_block_1=False``)
pooling of block 5            4                           8 (``pool_block_5=8``)
pooling windows               Keras ``padding="same"``:   one zero sample on each side,
                              ``ceil(T / p)`` outputs,    counted in the average:
                              overhang not averaged       ``floor((T + 2 - p) / p) + 1``
                                                          outputs (``pool_padding="pad1"``)
BatchNorm ``eps``, momentum   Keras: 1e-3, 0.99           torch: 1e-5, 0.9
                              (torch ``momentum=0.01``)   (``momentum=0.1``)
weight initialisation         Keras ``glorot_uniform``    torch defaults (Kaiming uniform),
                              (Keras fans for the         Xavier for the spatial conv
                              depthwise kernel), zero
                              bias
============================  ==========================  ===================================

Both versions use 64-sample kernels in blocks 1 and 2 (the "8,32" of "EEGNeX-8,32" is the number
of filters of those blocks), the same parameters, and the max-norm constraints (1 on the spatial
filters, 0.25 on the classifier). The parameter count differs only through the classifier input
size: for 22 channels, 4 classes and 1,000 samples, 57,476 (default) vs 56,452 (braindecode); for
500 samples, 56,484 vs 55,940.

One deliberate deviation from the authors' code, shared with braindecode: their Keras model calls
``BatchNormalization()`` with its default ``axis=-1`` on channels-first tensors, so each of its
five BatchNorm layers normalises every *time sample* separately (``2 * n_times`` parameters, or
``2 * n_times / 4`` after the first pooling), which ties the parameters to the window length and
to the position in the window; with that quirk the Keras model has 64,188 trainable parameters
for 22 channels, 4 classes and 1,000 samples. Here, as in braindecode and in EEGNet, BatchNorm
normalises each feature map (``2 * n_filters`` parameters per layer).

The max-norm constraints are applied as a projection of the weight in the forward pass (as
braindecode's parametrizations); Keras projects the stored weight after each optimiser step. Both
guarantee that the weights used by the network satisfy the constraint.

CPU speed: the depthwise spatial convolution runs as a batched matrix product (oneDNN's grouped
convolution backward is a slow path), the first layer's weight gradient as a grouped ``conv1d``,
and block 2 in channels-last memory. Without the ELU between blocks 1 and 2
(``activation_block_1=False``, braindecode's variant), blocks 1 and 2 are linear up to block 2's
BatchNorm, so they run as one bank of ``2 * kernel_block_1_2 - 1``-tap filters on the raw signal
(exactly, including BatchNorm's batch statistics and the zero padding at the window edges; see
``EEGNeX._fused_blocks_1_2``): a quarter of the multiply-adds and no gradient with respect to
block 1's output. ``conv_1`` and ``conv_2`` then hold the weights but their modules are not
called (forward hooks on them do not fire).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_bool, check_fraction, check_option, check_positive, ensure_int
from ._layers import (
    _avg_pool_same,
    _avg_pool_same_length,
    _glorot_uniform_,
    _MaxNormLinear,
    _same_padding,
    _SpatialDepthwise,
    _taps_reach_signal,
    _temporal_filter_bank,
    _TemporalConv,
)
from .base import MOMENTUM_HINT, EEGModule

__all__ = ["BRAINDECODE_KWARGS", "EEGNeX", "braindecode_parameter_name",
           "load_braindecode_state_dict"]

#: Keyword arguments that make :class:`EEGNeX` compute exactly what ``braindecode.models.EEGNeX``
#: (default arguments, braindecode 1.8.1) computes, e.g. ``EEGNeX(22, 4, 1000,
#: **BRAINDECODE_KWARGS)``; load its weights with :func:`load_braindecode_state_dict`.
BRAINDECODE_KWARGS = {
    "activation_block_1": False,
    "pool_block_5": 8,
    "pool_padding": "pad1",
    "batch_norm_eps": 1e-5,
    "batch_norm_momentum": 0.1,
}

_POOL_PADDINGS = ("same", "pad1")


def _pool_length(n_times: int, size: int, padding: str) -> int:
    if padding == "same":
        return _avg_pool_same_length(n_times, size)
    return (n_times + 2 - size) // size + 1


class EEGNeX(EEGModule):
    """EEGNeX-8,32 (Chen et al. 2024): a purely convolutional EEG decoder.

    Block 1 and 2: two temporal convolutions (``filter_1`` then ``filter_2`` filters of
    ``kernel_block_1_2`` samples, ``"same"`` padding) with BatchNorm (ELU between them in the
    authors' code); block 3: depthwise spatial convolution over all electrodes
    (``depth_multiplier`` filters per map, max-norm ``max_norm_conv``), BatchNorm, ELU, average
    pooling, dropout; blocks 4 and 5: two dilated temporal convolutions (``filter_2`` then
    ``filter_1`` filters) with BatchNorm, then ELU, average pooling, dropout; a dense classifier
    with max-norm ``max_norm_linear``. The module docstring lists the differences with
    braindecode's re-implementation.

    Parameters
    ----------
    n_chans : int
        Number of EEG channels.
    n_outputs : int
        Number of outputs (classes).
    n_times : int
        Samples per window; at least :attr:`min_n_times` (121 with the defaults).
    sfreq : float | None
        Sampling rate (Hz); stored, kernel sizes are in samples and are not rescaled.
    filter_1, filter_2 : int
        Filters of blocks 1 and 5, and of blocks 2 and 4 (8 and 32).
    depth_multiplier : int
        Spatial filters per map in block 3 (2).
    kernel_block_1_2 : int
        Temporal kernel of blocks 1 and 2, samples (64).
    kernel_block_4, kernel_block_5 : int
        Temporal kernels of blocks 4 and 5, samples (16 and 16).
    dilation_block_4, dilation_block_5 : int
        Dilations of blocks 4 and 5 (2 and 4).
    pool_block_3, pool_block_5 : int
        Average-pooling sizes (and strides) after blocks 3 and 5, samples (4 and 4; braindecode:
        4 and 8).
    pool_padding : {"same", "pad1"}
        ``"same"``: Keras ``padding="same"`` pooling of the authors' code. ``"pad1"``: one zero
        sample on each side, counted in the average (braindecode).
    activation_block_1 : bool
        ELU after block 1's BatchNorm (authors' code: True; braindecode: False).
    drop_prob : float
        Dropout probability after blocks 3 and 5 (0.5).
    max_norm_conv, max_norm_linear : float
        Max L2 norm of each spatial filter and of each classifier unit's weights (1 and 0.25).
    batch_norm_eps : float
        BatchNorm epsilon (Keras: 1e-3; braindecode: 1e-5).
    batch_norm_momentum : float
        BatchNorm running-statistics momentum, torch convention (Keras 0.99 -> 0.01;
        braindecode: 0.1).

    Examples
    --------
    >>> import torch
    >>> model = EEGNeX(22, 4, 1000, sfreq=250.0)
    >>> model(torch.zeros(2, 22, 1000)).shape
    torch.Size([2, 4])
    >>> sum(p.numel() for p in EEGNeX(22, 4, 1000, **BRAINDECODE_KWARGS).parameters())
    56452

    References
    ----------
    Chen, X., Teng, X., Chen, H., Pan, Y., Geyer, P. (2024). Toward reliable signals decoding for
    electroencephalogram: A benchmark study to EEGNeX. Biomedical Signal Processing and Control,
    87, 105475. Code: https://github.com/chenxiachan/EEGNeX
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        *,
        sfreq: float | None = None,
        filter_1: int = 8,
        filter_2: int = 32,
        depth_multiplier: int = 2,
        kernel_block_1_2: int = 64,
        kernel_block_4: int = 16,
        dilation_block_4: int = 2,
        kernel_block_5: int = 16,
        dilation_block_5: int = 4,
        pool_block_3: int = 4,
        pool_block_5: int = 4,
        pool_padding: Literal["same", "pad1"] = "same",
        activation_block_1: bool = True,
        drop_prob: float = 0.5,
        max_norm_conv: float = 1.0,
        max_norm_linear: float = 0.25,
        batch_norm_eps: float = 1e-3,
        batch_norm_momentum: float = 0.01,
    ) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        self.filter_1 = ensure_int(filter_1, "filter_1", minimum=1)
        self.filter_2 = ensure_int(filter_2, "filter_2", minimum=1)
        self.depth_multiplier = ensure_int(depth_multiplier, "depth_multiplier", minimum=1)
        self.kernel_block_1_2 = ensure_int(kernel_block_1_2, "kernel_block_1_2", minimum=1)
        self.kernel_block_4 = ensure_int(kernel_block_4, "kernel_block_4", minimum=1)
        self.dilation_block_4 = ensure_int(dilation_block_4, "dilation_block_4", minimum=1)
        self.kernel_block_5 = ensure_int(kernel_block_5, "kernel_block_5", minimum=1)
        self.dilation_block_5 = ensure_int(dilation_block_5, "dilation_block_5", minimum=1)
        self.pool_block_3 = ensure_int(pool_block_3, "pool_block_3", minimum=1)
        self.pool_block_5 = ensure_int(pool_block_5, "pool_block_5", minimum=1)
        self.pool_padding = check_option("pool_padding", pool_padding, _POOL_PADDINGS)
        if pool_padding == "pad1" and min(pool_block_3, pool_block_5) < 2:
            raise ValueError(
                "pool_padding='pad1' needs pooling sizes >= 2 (samples), got "
                f"pool_block_3={pool_block_3}, pool_block_5={pool_block_5}."
            )
        self.activation_block_1 = check_bool(activation_block_1, "activation_block_1")
        self.drop_prob = check_fraction(drop_prob, "drop_prob", kind="probability")
        self.max_norm_conv = check_positive(max_norm_conv, "max_norm_conv")
        self.max_norm_linear = check_positive(max_norm_linear, "max_norm_linear")
        self.batch_norm_eps = check_positive(batch_norm_eps, "batch_norm_eps")
        self.batch_norm_momentum = check_fraction(batch_norm_momentum, "batch_norm_momentum",
                                                  allow_one=True, hint=MOMENTUM_HINT)
        self._check_n_times()

        f1, f2, f3 = self.filter_1, self.filter_2, self.filter_2 * self.depth_multiplier
        bn = {"eps": self.batch_norm_eps, "momentum": self.batch_norm_momentum}
        self._pad_1_2 = _same_padding(self.kernel_block_1_2)
        self._pad_4 = _same_padding(self.dilation_block_4 * (self.kernel_block_4 - 1) + 1)
        self._pad_5 = _same_padding(self.dilation_block_5 * (self.kernel_block_5 - 1) + 1)
        n_times_3 = _pool_length(self.n_times, self.pool_block_3, self.pool_padding)
        n_times_5 = _pool_length(n_times_3, self.pool_block_5, self.pool_padding)

        # Block 1: (B, C, T) -> (B, F1, C, T), kept in channels-last memory for block 2's conv.
        self.conv_1 = _TemporalConv(f1, self.kernel_block_1_2, self._pad_1_2, channels_last=True)
        self.bn_1 = nn.BatchNorm2d(f1, **bn)
        # Block 2: (B, F1, C, T) -> (B, F2, C, T)
        self.conv_2 = nn.Conv2d(f1, f2, (1, self.kernel_block_1_2), bias=False)
        self.bn_2 = nn.BatchNorm2d(f2, **bn)
        # Block 3: (B, F2, C, T) -> (B, F2 * D, T3), T3 = T pooled by pool_block_3
        self.conv_3 = _SpatialDepthwise(f2, self.depth_multiplier, self.n_chans,
                                        self.max_norm_conv)
        self.bn_3 = nn.BatchNorm1d(f3, **bn)
        # Blocks 4 and 5: (B, F2 * D, T3) -> (B, F2, T3) -> (B, F1, T3 // pool_block_5)
        self.conv_4 = nn.Conv1d(f3, f2, self.kernel_block_4, dilation=self.dilation_block_4,
                                bias=False)
        self.bn_4 = nn.BatchNorm1d(f2, **bn)
        self.conv_5 = nn.Conv1d(f2, f1, self.kernel_block_5, dilation=self.dilation_block_5,
                                bias=False)
        self.bn_5 = nn.BatchNorm1d(f1, **bn)
        self.drop = nn.Dropout(self.drop_prob)
        self.final_layer = _MaxNormLinear(f1 * n_times_5, self.n_outputs, self.max_norm_linear)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the weights as the authors' Keras code does.

        Keras initialisation of the authors' code: ``glorot_uniform`` kernels (fans as Keras
        computes them), zero dense bias, BatchNorm ``gamma=1, beta=0``, fresh running stats.
        """
        f1, f2, d = self.filter_1, self.filter_2, self.depth_multiplier
        k12, k4, k5 = self.kernel_block_1_2, self.kernel_block_4, self.kernel_block_5
        _glorot_uniform_(self.conv_1.weight, k12, k12 * f1)
        _glorot_uniform_(self.conv_2.weight, k12 * f1, k12 * f2)
        # Keras DepthwiseConv2D kernel (n_chans, 1, F2, D): fan_in = n_chans * F2,
        # fan_out = n_chans * D
        _glorot_uniform_(self.conv_3.weight, self.n_chans * f2, self.n_chans * d)
        _glorot_uniform_(self.conv_4.weight, k4 * f2 * d, k4 * f2)
        _glorot_uniform_(self.conv_5.weight, k5 * f2, k5 * f1)
        fan_in, n_out = self.final_layer.in_features, self.final_layer.out_features
        _glorot_uniform_(self.final_layer.weight, fan_in, n_out)
        nn.init.zeros_(self.final_layer.bias)
        for bn in (self.bn_1, self.bn_2, self.bn_3, self.bn_4, self.bn_5):
            bn.reset_parameters()

    def _pool(self, x: torch.Tensor, size: int) -> torch.Tensor:
        if self.pool_padding == "same":
            return _avg_pool_same(x, size)
        return F.avg_pool1d(x, size, size, padding=1)

    def _fits(self, n_times: int) -> bool:
        n_times_3 = _pool_length(n_times, self.pool_block_3, self.pool_padding)
        if n_times_3 < 1:
            return False
        return (
            _taps_reach_signal(n_times, self.kernel_block_1_2, 1,
                               _same_padding(self.kernel_block_1_2))
            and _taps_reach_signal(n_times_3, self.kernel_block_4, self.dilation_block_4,
                                   _same_padding(self.dilation_block_4
                                                 * (self.kernel_block_4 - 1) + 1))
            and _taps_reach_signal(n_times_3, self.kernel_block_5, self.dilation_block_5,
                                   _same_padding(self.dilation_block_5
                                                 * (self.kernel_block_5 - 1) + 1))
            and _pool_length(n_times_3, self.pool_block_5, self.pool_padding) >= 1
        )

    def _blocks_1_2(self, x: torch.Tensor, fuse: bool) -> torch.Tensor:
        """Blocks 1 and 2 up to block 2's BatchNorm: ``(B, C, T)`` -> ``(B, F2, C, T)``.

        ``fuse`` (only valid without the ELU between the blocks) computes the same function as
        the layer-by-layer path with one ``2 * K - 1``-tap filter bank on the raw signal, see
        :meth:`_fused_blocks_1_2`.
        """
        if fuse:
            if self.activation_block_1:
                raise RuntimeError("blocks 1 and 2 can only be fused without activation_block_1.")
            return self.bn_2(self._fused_blocks_1_2(x))
        # block 1 (channels-last (B, F1, C, T))
        x = self.bn_1(self.conv_1(x))
        if self.activation_block_1:
            x = F.elu(x)
        # block 2: 'same' padding (31 left, 32 right for 64 taps) as an explicit pad, which keeps
        # the channels-last layout that oneDNN's convolution backward is fastest with; back to
        # contiguous (B, F2, C, T) for BN and block 3's batched matrix product (a BatchNorm whose
        # input and gradient differ in memory format takes a slow path)
        return self.bn_2(self.conv_2(F.pad(x, self._pad_1_2)).contiguous())

    def _fused_blocks_1_2(self, x: torch.Tensor) -> torch.Tensor:
        """Block 2's convolution output, when nothing non-linear separates it from block 1.

        Block 1's convolution, its BatchNorm (an affine map per filter, ``scale * h + shift``,
        with batch statistics in training) and block 2's convolution compose into ``F2`` filters
        of ``2 * K - 1`` taps applied to the raw signal, plus a bias. Block 2 pads its input with
        zeros, while the composed filters see block 1's output continued beyond the window; the
        contribution of those ``K - 1`` outside samples is computed on the edges only and
        subtracted. Same function as the layer-by-layer path (to float rounding), with 4 times
        fewer multiply-adds and no gradient with respect to a ``(B, F1, C, T)`` activation.
        """
        k = self.kernel_block_1_2
        pad_l, pad_r = self._pad_1_2
        n_times = self.n_times
        w1 = self.conv_1.weight  # (F1, K)
        w2 = self.conv_2.weight  # (F2, F1, 1, K)
        # block 1 over u = -pad_l .. T + pad_r - 1 (all the samples block 2's kernels reach)
        h1 = _temporal_filter_bank(x, w1, (2 * pad_l, 2 * pad_r))  # (B, F1, C, T + K - 1)
        mean, var = self._bn_1_statistics(h1[..., pad_l:pad_l + n_times])
        scale = self.bn_1.weight * torch.rsqrt(var + self.bn_1.eps)
        shift = self.bn_1.bias - mean * scale
        # composed[f, r] = sum_k sum_tau w2[f, k, tau] * scale[k] * w1[k, r - tau]
        w2_scaled = w2[:, :, 0] * scale[:, None]
        composed = F.conv1d(F.pad(w2_scaled, (k - 1, k - 1)), w1.flip(-1).unsqueeze(0))
        bias = w2[:, :, 0].sum(-1) @ shift
        out = _temporal_filter_bank(x, composed.squeeze(1), (2 * pad_l, 2 * pad_r),
                                    bias=bias)  # (B, F2, C, T)
        # block 1's normalised output outside the window, which block 2 sees as zeros: its
        # contribution to the first pad_l and last pad_r outputs, as small matrix products
        scale, shift = scale.view(1, -1, 1, 1), shift.view(1, -1, 1, 1)
        left = right = None
        if pad_l:
            outside = h1[..., :pad_l] * scale + shift  # u = -pad_l .. -1
            left = _edge_product(outside, _edge_matrix(w2[:, :, 0], pad_l, "left"))
            left = left[..., :n_times]
        if pad_r:
            outside = h1[..., pad_l + n_times:] * scale + shift  # u = T .. T + pad_r - 1
            right = _edge_product(outside, _edge_matrix(w2[:, :, 0], pad_r, "right"))
            right = right[..., max(pad_r - n_times, 0):]
        if torch.jit.is_tracing():  # the JIT tracer rejects in-place custom functions
            n_left = 0 if left is None else min(pad_l, n_times)
            n_right = 0 if right is None else min(pad_r, n_times)
            zeros = out.new_zeros(())
            left = zeros if left is None else F.pad(left, (0, n_times - n_left))
            right = zeros if right is None else F.pad(right, (n_times - n_right, 0))
            return out - left - right
        return _SubtractEdges.apply(out, left, right)

    def _bn_1_statistics(self, h1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the mean and variance block 1's BatchNorm uses.

        With ``nn.BatchNorm2d``'s semantics: batch statistics and running-statistics update in
        training, running statistics in eval.
        """
        bn = self.bn_1
        if not bn.training and bn.track_running_stats:
            return bn.running_mean, bn.running_var
        var, mean = torch.var_mean(h1, dim=(0, 2, 3), unbiased=False)
        if bn.training and bn.track_running_stats:
            with torch.no_grad():
                bn.num_batches_tracked.add_(1)
                momentum = (1.0 / float(bn.num_batches_tracked) if bn.momentum is None
                            else bn.momentum)
                n = h1.numel() // h1.shape[1]
                bn.running_mean.mul_(1 - momentum).add_(mean, alpha=momentum)
                bn.running_var.mul_(1 - momentum).add_(var * (n / max(n - 1, 1)),
                                                       alpha=momentum)
        return mean, var

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of windows.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_chans, n_times)`` float32 EEG windows.

        Returns
        -------
        logits : torch.Tensor
            ``(batch, n_outputs)``, no softmax.
        """
        self._check_input(x)
        x = self._blocks_1_2(x, fuse=not self.activation_block_1)
        # block 3
        x = self.drop(self._pool(F.elu(self.bn_3(self.conv_3(x))), self.pool_block_3))
        # blocks 4 and 5
        x = self.bn_4(self.conv_4(F.pad(x, self._pad_4)))
        x = self.bn_5(self.conv_5(F.pad(x, self._pad_5)))
        x = self.drop(self._pool(F.elu(x), self.pool_block_5))
        return self.final_layer(x.flatten(1))


def _edge_matrix(weight: torch.Tensor, n_edge: int, side: str) -> torch.Tensor:
    """Block 2's kernels restricted to the samples outside the window, as a matrix.

    ``weight`` ``(F2, F1, K)``; returns ``(F2 * n_edge, F1 * n_edge)`` mapping the ``n_edge``
    block-1 samples just outside the window (``u = -n_edge .. -1`` on the left, ``T .. T + n_edge -
    1`` on the right) to the ``n_edge`` outputs they reach (``t = 0 .. n_edge - 1``, resp. ``T -
    n_edge .. T - 1``). Output ``t`` reads sample ``u = t + tau - pad_left`` with tap ``tau``.
    """
    n_out, n_in, kernel_size = weight.shape
    t = torch.arange(n_edge).view(-1, 1)
    j = torch.arange(n_edge).view(1, -1)
    # left: u = j - n_edge, tau = u - t + pad_left with pad_left = n_edge: tau = j - t
    # right: u = T + j, t = T - n_edge + t', tau = j - t' + K - 1 (pad_left = K - 1 - n_edge)
    tau = j - t if side == "left" else j - t + kernel_size - 1
    valid = (tau >= 0) & (tau < kernel_size)
    taps = weight[:, :, tau.clamp(0, kernel_size - 1)] * valid  # (F2, F1, t, j)
    return taps.permute(0, 2, 1, 3).reshape(n_out * n_edge, n_in * n_edge)


def _edge_product(outside: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``(B, F1, C, n_edge)`` samples times an :func:`_edge_matrix` -> ``(B, F2, C, n_edge)``."""
    batch, n_in, n_chans, n_edge = outside.shape
    rows = outside.permute(0, 2, 1, 3).reshape(batch * n_chans, n_in * n_edge)
    out = rows @ matrix.t()
    return out.view(batch, n_chans, -1, n_edge).permute(0, 2, 1, 3)


class _SubtractEdges(torch.autograd.Function):
    """Subtract the edge corrections in place, with a light backward pass.

    ``out[..., :L] -= left`` and ``out[..., T - R:] -= right``; the backward pass does not copy the
    full ``(B, F2, C, T)`` gradient (autograd's own in-place slice assignment does).
    """

    @staticmethod
    def forward(ctx, out: torch.Tensor, left: torch.Tensor | None,
                right: torch.Tensor | None):
        n_times = out.shape[-1]
        ctx.n_left = 0 if left is None else left.shape[-1]
        ctx.n_right = 0 if right is None else right.shape[-1]
        if left is not None:
            out[..., :ctx.n_left] -= left
        if right is not None:
            out[..., n_times - ctx.n_right:] -= right
        ctx.mark_dirty(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        n_times = grad.shape[-1]
        grad_left = -grad[..., :ctx.n_left] if ctx.needs_input_grad[1] else None
        grad_right = (-grad[..., n_times - ctx.n_right:] if ctx.needs_input_grad[2]
                      else None)
        return grad, grad_left, grad_right


# braindecode.models.EEGNeX state_dict key -> (our key, our shape is a view of theirs)
_BRAINDECODE_KEYS = {
    "block_1.1.weight": "conv_1.weight",
    "block_2.0.weight": "conv_2.weight",
    "block_3.0.parametrizations.weight.original": "conv_3.weight",
    "block_4.0.weight": "conv_4.weight",
    "block_5.0.weight": "conv_5.weight",
    "final_layer.parametrizations.weight.original": "final_layer.weight",
    "final_layer.bias": "final_layer.bias",
}
_BRAINDECODE_BN = {"block_1.2": "bn_1", "block_2.1": "bn_2", "block_3.1": "bn_3",
                   "block_4.1": "bn_4", "block_5.1": "bn_5"}


def braindecode_parameter_name(key: str) -> str:
    """Name in :class:`EEGNeX` of a ``braindecode.models.EEGNeX`` parameter or buffer.

    Parameters
    ----------
    key : str
        A key of braindecode's ``state_dict()`` (e.g. ``"block_1.2.running_mean"``).

    Returns
    -------
    name : str
        The key of the same tensor in our ``state_dict()`` (``"bn_1.running_mean"``).

    Examples
    --------
    >>> braindecode_parameter_name("block_1.1.weight"), braindecode_parameter_name("block_2.1.bias")
    ('conv_1.weight', 'bn_2.bias')
    """
    if key in _BRAINDECODE_KEYS:
        return _BRAINDECODE_KEYS[key]
    prefix, _, name = key.rpartition(".")
    if prefix not in _BRAINDECODE_BN:
        raise ValueError(f"{key!r} is not a parameter of braindecode's EEGNeX; its keys are "
                         f"{sorted(_BRAINDECODE_KEYS)} and the BatchNorm layers "
                         f"{sorted(_BRAINDECODE_BN)}.")
    return f"{_BRAINDECODE_BN[prefix]}.{name}"


def load_braindecode_state_dict(model: EEGNeX, state_dict: dict[str, torch.Tensor]) -> EEGNeX:
    """Copy the weights of a ``braindecode.models.EEGNeX`` into ``model``.

    ``model`` must have the same sizes (build it with :data:`BRAINDECODE_KWARGS` to also compute
    the same function). braindecode stores the max-norm constrained weights before their
    projection (``parametrizations.weight.original``); so does :class:`EEGNeX` (it projects in the
    forward pass), so they are copied unchanged.

    Parameters
    ----------
    model : EEGNeX
        Destination (modified in place and returned).
    state_dict : dict
        ``braindecode_model.state_dict()``.

    Returns
    -------
    model : EEGNeX
    """
    mapping = dict(_BRAINDECODE_KEYS)
    for theirs, ours in _BRAINDECODE_BN.items():
        for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            mapping[f"{theirs}.{name}"] = f"{ours}.{name}"
    missing = sorted(set(mapping) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(mapping))
    if missing or unexpected:
        raise ValueError(
            "state_dict is not a braindecode EEGNeX state_dict: "
            f"missing {missing}, unexpected {unexpected}."
        )
    own = model.state_dict()
    converted = {}
    for theirs, ours in mapping.items():
        value = state_dict[theirs]
        if value.numel() != own[ours].numel():
            raise ValueError(
                f"{theirs} has shape {tuple(value.shape)}, which does not fit {ours} "
                f"{tuple(own[ours].shape)}; build the EEGNeX with the same n_chans, n_outputs, "
                "n_times and architecture keywords (see BRAINDECODE_KWARGS)."
            )
        converted[ours] = value.reshape(own[ours].shape).clone()
    model.load_state_dict(converted)
    return model
