"""EEGNet (Lawhern et al. 2018), as in the authors' Keras code; defaults are EEGNet-8,2.

The authors' code is ``EEGNet`` in github.com/vlawhern/arl-eegmodels ``EEGModels.py``.

Differences with braindecode's ``braindecode.models.EEGNet`` (1.8.1), which has the same
parameters (so the same parameter count for the same configuration):

- ``"same"`` padding as Keras: 31 zeros left and 32 right for the 64-sample temporal kernel, 7 and
  8 for the 16-sample separable kernel, so the lengths are ``T`` and ``T // 4``; braindecode pads
  ``kernel // 2`` on both sides (one extra output sample after each of these convolutions).
  Both give the same classifier size whenever ``(T // 4) // 8 == ((T + 1) // 4 + 1) // 8``
  (true for 512 and 1,000 samples, e.g.).
- The classifier is a dense layer with max-norm 0.25 as in the Keras code; braindecode's default
  is an unconstrained convolution (``final_layer_with_constraint=False``).
- Keras ``glorot_uniform`` initialisation with Keras' fans (braindecode: Xavier with torch's fans,
  which differ for depthwise kernels).
- Dropout 0.5 (the Keras code's default, the paper's within-subject setting); braindecode: 0.25.

The ``EEGNet_8_2`` of the EEGNeX authors' benchmark code is a variant (``"same"`` pooling,
BatchNorm over the time axis); this module follows EEGNet's own authors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_fraction, check_positive, ensure_int
from ._layers import (
    _glorot_uniform_,
    _MaxNormLinear,
    _same_padding,
    _SpatialDepthwise,
    _taps_reach_signal,
    _TemporalConv,
)
from .base import MOMENTUM_HINT, EEGModule

__all__ = ["EEGNet"]


class EEGNet(EEGModule):
    """EEGNet-8,2 (Lawhern et al. 2018): compact depthwise-separable convolutional decoder.

    Temporal convolution (``F1`` filters of ``kernel_length`` samples, ``"same"``), BatchNorm,
    depthwise spatial convolution (``D`` filters per temporal filter, max-norm
    ``max_norm_spatial``), BatchNorm, ELU, average pooling ``pool_1``, dropout; separable
    convolution (depthwise ``depthwise_kernel_length`` samples then pointwise to ``F2`` maps),
    BatchNorm, ELU, average pooling ``pool_2``, dropout; dense classifier (max-norm
    ``max_norm_linear``).

    The kernel and pooling sizes are in samples and were chosen for 128 Hz (the temporal kernel
    spans half a second); the authors suggest scaling them with the sampling rate (``sfreq`` is
    stored, not used to rescale).

    Parameters
    ----------
    n_chans : int
        Number of EEG channels.
    n_outputs : int
        Number of outputs (classes).
    n_times : int
        Samples per window; at least :attr:`min_n_times` (36 with the defaults).
    sfreq : float | None
        Sampling rate (Hz); stored.
    F1 : int
        Temporal filters (8).
    D : int
        Spatial filters per temporal filter (2).
    F2 : int | None
        Pointwise filters of the separable convolution; ``None`` means ``F1 * D`` (16).
    kernel_length : int
        Temporal kernel, samples (64: 0.5 s at 128 Hz).
    depthwise_kernel_length : int
        Kernel of the separable convolution's depthwise part, samples (16).
    pool_1, pool_2 : int
        Average-pooling sizes (and strides), samples (4 and 8).
    drop_prob : float
        Dropout probability (0.5: the Keras code's default and the paper's within-subject
        setting; the paper used 0.25 cross-subject, braindecode defaults to 0.25).
    max_norm_spatial, max_norm_linear : float
        Max L2 norm of each spatial filter and of each classifier unit's weights (1 and 0.25).
    batch_norm_eps : float
        BatchNorm epsilon (Keras: 1e-3).
    batch_norm_momentum : float
        BatchNorm momentum, torch convention (Keras 0.99 -> 0.01).

    Examples
    --------
    >>> import torch
    >>> model = EEGNet(22, 4, 512, sfreq=128.0)
    >>> model(torch.zeros(2, 22, 512)).shape
    torch.Size([2, 4])
    >>> sum(p.numel() for p in model.parameters())
    2484

    References
    ----------
    Lawhern, V. J., Solon, A. J., Waytowich, N. R., Gordon, S. M., Hung, C. P., Lance, B. J.
    (2018). EEGNet: a compact convolutional neural network for EEG-based brain-computer
    interfaces. Journal of Neural Engineering, 15(5), 056013.
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        *,
        sfreq: float | None = None,
        F1: int = 8,  # noqa: N803 (paper's names)
        D: int = 2,  # noqa: N803
        F2: int | None = None,  # noqa: N803
        kernel_length: int = 64,
        depthwise_kernel_length: int = 16,
        pool_1: int = 4,
        pool_2: int = 8,
        drop_prob: float = 0.5,
        max_norm_spatial: float = 1.0,
        max_norm_linear: float = 0.25,
        batch_norm_eps: float = 1e-3,
        batch_norm_momentum: float = 0.01,
    ) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        self.F1 = ensure_int(F1, "F1", minimum=1)
        self.D = ensure_int(D, "D", minimum=1)
        self.F2 = None if F2 is None else ensure_int(F2, "F2", minimum=1)
        self.kernel_length = ensure_int(kernel_length, "kernel_length", minimum=1)
        self.depthwise_kernel_length = ensure_int(depthwise_kernel_length,
                                                  "depthwise_kernel_length", minimum=1)
        self.pool_1 = ensure_int(pool_1, "pool_1", minimum=1)
        self.pool_2 = ensure_int(pool_2, "pool_2", minimum=1)
        self.drop_prob = check_fraction(drop_prob, "drop_prob", kind="probability")
        self.max_norm_spatial = check_positive(max_norm_spatial, "max_norm_spatial")
        self.max_norm_linear = check_positive(max_norm_linear, "max_norm_linear")
        self.batch_norm_eps = check_positive(batch_norm_eps, "batch_norm_eps")
        self.batch_norm_momentum = check_fraction(batch_norm_momentum, "batch_norm_momentum",
                                                  allow_one=True, hint=MOMENTUM_HINT)
        self._check_n_times()

        f1, f1d = self.F1, self.F1 * self.D
        f2 = f1d if self.F2 is None else self.F2
        bn = {"eps": self.batch_norm_eps, "momentum": self.batch_norm_momentum}
        self._pad_separable = _same_padding(self.depthwise_kernel_length)
        n_times_final = (self.n_times // self.pool_1) // self.pool_2

        self.conv_temporal = _TemporalConv(f1, self.kernel_length,
                                           _same_padding(self.kernel_length))
        self.bn_temporal = nn.BatchNorm2d(f1, **bn)
        self.conv_spatial = _SpatialDepthwise(f1, self.D, self.n_chans, self.max_norm_spatial)
        self.bn_1 = nn.BatchNorm1d(f1d, **bn)
        self.conv_separable_depth = nn.Conv1d(f1d, f1d, self.depthwise_kernel_length,
                                              groups=f1d, bias=False)
        self.conv_separable_point = nn.Conv1d(f1d, f2, 1, bias=False)
        self.bn_2 = nn.BatchNorm1d(f2, **bn)
        self.drop = nn.Dropout(self.drop_prob)
        self.final_layer = _MaxNormLinear(f2 * n_times_final, self.n_outputs,
                                          self.max_norm_linear)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialise the weights as Keras does.

        Keras initialisation: ``glorot_uniform`` kernels with Keras' fans, zero dense bias,
        BatchNorm ``gamma=1, beta=0``, fresh running statistics.
        """
        f1, d = self.F1, self.D
        f1d = f1 * d
        f2 = self.conv_separable_point.out_channels
        k, kd = self.kernel_length, self.depthwise_kernel_length
        _glorot_uniform_(self.conv_temporal.weight, k, k * f1)
        # DepthwiseConv2D kernel (n_chans, 1, F1, D)
        _glorot_uniform_(self.conv_spatial.weight, self.n_chans * f1, self.n_chans * d)
        # SeparableConv2D: depthwise (1, kd, F1 * D, 1), pointwise (1, 1, F1 * D, F2)
        _glorot_uniform_(self.conv_separable_depth.weight, kd * f1d, kd)
        _glorot_uniform_(self.conv_separable_point.weight, f1d, f2)
        _glorot_uniform_(self.final_layer.weight, self.final_layer.in_features,
                         self.final_layer.out_features)
        nn.init.zeros_(self.final_layer.bias)
        for bn in (self.bn_temporal, self.bn_1, self.bn_2):
            bn.reset_parameters()

    def _fits(self, n_times: int) -> bool:
        n_times_1 = n_times // self.pool_1
        return (
            _taps_reach_signal(n_times, self.kernel_length, 1, _same_padding(self.kernel_length))
            and n_times_1 >= 1
            and _taps_reach_signal(n_times_1, self.depthwise_kernel_length, 1,
                                   _same_padding(self.depthwise_kernel_length))
            and n_times_1 // self.pool_2 >= 1
        )

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
        x = self.bn_temporal(self.conv_temporal(x))  # (B, F1, C, T)
        x = self.conv_spatial(x)  # (B, F1 * D, T)
        x = self.drop(F.avg_pool1d(F.elu(self.bn_1(x)), self.pool_1))
        x = self.conv_separable_point(self.conv_separable_depth(F.pad(x, self._pad_separable)))
        x = self.drop(F.avg_pool1d(F.elu(self.bn_2(x)), self.pool_2))
        return self.final_layer(x.flatten(1))
