"""ShallowConvNet / Shallow FBCSP net (Schirrmeister et al. 2017), as in braindecode.

Braindecode's ``ShallowFBCSPNet`` is the authors' own code base; this module follows it with its
default, paper configuration.

The architecture mirrors filter-bank CSP: temporal filters, spatial filters, squaring, mean
pooling, logarithm, then a linear classifier. The temporal and spatial convolutions have no
non-linearity between them, so (like braindecode's ``CombinedConv``) they run as one convolution
whose weight is their product; the parameters (and their count) are those of the two separate
layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_fraction, check_positive, ensure_int
from ._layers import _glorot_uniform_
from .base import MOMENTUM_HINT, EEGModule

__all__ = ["ShallowConvNet", "load_braindecode_state_dict"]


class _TemporalSpatialConv(nn.Module):
    """Temporal then spatial filters of ShallowConvNet, applied as one convolution.

    ``n_filters_time`` temporal filters (with bias) then ``n_filters_spat`` spatial filters (no
    bias), applied as one ``conv1d`` ``(B, n_chans, T) -> (B, n_filters_spat, T - K + 1)``.

    Weights: ``time_weight`` ``(n_filters_time, K)``, ``time_bias`` ``(n_filters_time,)``,
    ``spat_weight`` ``(n_filters_spat, n_filters_time, n_chans)``.
    """

    def __init__(self, n_chans: int, n_filters_time: int, kernel_size: int,
                 n_filters_spat: int) -> None:
        super().__init__()
        self.time_weight = nn.Parameter(torch.empty(n_filters_time, kernel_size))
        self.time_bias = nn.Parameter(torch.empty(n_filters_time))
        self.spat_weight = nn.Parameter(torch.empty(n_filters_spat, n_filters_time, n_chans))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # combined[o, c, k] = sum_i spat[o, i, c] * time[i, k]
        weight = torch.matmul(self.spat_weight.transpose(1, 2), self.time_weight)
        bias = self.spat_weight.sum(-1) @ self.time_bias
        return F.conv1d(x, weight, bias)

    def extra_repr(self) -> str:
        n_spat, n_time, n_chans = self.spat_weight.shape
        return (f"n_chans={n_chans}, n_filters_time={n_time}, "
                f"kernel_size={self.time_weight.shape[1]}, n_filters_spat={n_spat}")


class ShallowConvNet(EEGModule):
    """Shallow ConvNet (Schirrmeister et al. 2017), the deep-learning counterpart of FBCSP.

    Temporal convolution (``n_filters_time`` filters of ``filter_time_length`` samples, with
    bias), spatial convolution over all electrodes (``n_filters_spat`` filters, no bias),
    BatchNorm, squaring, average pooling (``pool_time_length`` samples, stride
    ``pool_time_stride``), ``log(max(x, 1e-6))``, dropout, linear classifier. Kernel and pooling
    sizes are in samples and were chosen for 250 Hz.

    Parameters
    ----------
    n_chans : int
        Number of EEG channels.
    n_outputs : int
        Number of outputs (classes).
    n_times : int
        Samples per window; at least :attr:`min_n_times` (99 with the defaults).
    sfreq : float | None
        Sampling rate (Hz); stored.
    n_filters_time, n_filters_spat : int
        Temporal and spatial filters (40 and 40).
    filter_time_length : int
        Temporal kernel, samples (25).
    pool_time_length, pool_time_stride : int
        Mean-pooling window and stride, samples (75 and 15).
    drop_prob : float
        Dropout probability before the classifier (0.5).
    batch_norm_eps : float
        BatchNorm epsilon (1e-5).
    batch_norm_momentum : float
        BatchNorm momentum, torch convention (0.1).

    Examples
    --------
    >>> import torch
    >>> model = ShallowConvNet(22, 4, 1000, sfreq=250.0)
    >>> model(torch.zeros(2, 22, 1000)).shape
    torch.Size([2, 4])
    >>> sum(p.numel() for p in model.parameters())
    46084

    References
    ----------
    Schirrmeister, R. T., Springenberg, J. T., Fiederer, L. D. J., Glasstetter, M., Eggensperger,
    K., Tangermann, M., Hutter, F., Burgard, W., Ball, T. (2017). Deep learning with
    convolutional neural networks for EEG decoding and visualization. Human Brain Mapping, 38(11),
    5391-5420.
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        *,
        sfreq: float | None = None,
        n_filters_time: int = 40,
        filter_time_length: int = 25,
        n_filters_spat: int = 40,
        pool_time_length: int = 75,
        pool_time_stride: int = 15,
        drop_prob: float = 0.5,
        batch_norm_eps: float = 1e-5,
        batch_norm_momentum: float = 0.1,
    ) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        self.n_filters_time = ensure_int(n_filters_time, "n_filters_time", minimum=1)
        self.filter_time_length = ensure_int(filter_time_length, "filter_time_length", minimum=1)
        self.n_filters_spat = ensure_int(n_filters_spat, "n_filters_spat", minimum=1)
        self.pool_time_length = ensure_int(pool_time_length, "pool_time_length", minimum=1)
        self.pool_time_stride = ensure_int(pool_time_stride, "pool_time_stride", minimum=1)
        self.drop_prob = check_fraction(drop_prob, "drop_prob", kind="probability")
        self.batch_norm_eps = check_positive(batch_norm_eps, "batch_norm_eps")
        self.batch_norm_momentum = check_fraction(batch_norm_momentum, "batch_norm_momentum",
                                                  allow_one=True, hint=MOMENTUM_HINT)
        self._check_n_times()

        self._n_times_final = self._pooled_length(self.n_times)
        self.conv_time_spat = _TemporalSpatialConv(self.n_chans, self.n_filters_time,
                                                   self.filter_time_length, self.n_filters_spat)
        self.bn = nn.BatchNorm1d(self.n_filters_spat, eps=self.batch_norm_eps,
                                 momentum=self.batch_norm_momentum)
        self.drop = nn.Dropout(self.drop_prob)
        self.final_layer = nn.Linear(self.n_filters_spat * self._n_times_final, self.n_outputs)
        self.reset_parameters()

    def _pooled_length(self, n_times: int) -> int:
        n_conv = n_times - self.filter_time_length + 1
        if n_conv < self.pool_time_length:
            return 0
        return (n_conv - self.pool_time_length) // self.pool_time_stride + 1

    def reset_parameters(self) -> None:
        """Initialise the weights as braindecode's ``ShallowFBCSPNet`` does.

        Xavier-uniform weights (with the fans of the original convolution layers), zero biases,
        BatchNorm ``gamma=1, beta=0``.
        """
        k, n_time, n_spat = self.filter_time_length, self.n_filters_time, self.n_filters_spat
        conv = self.conv_time_spat
        _glorot_uniform_(conv.time_weight, k, n_time * k)  # Conv2d(1, 40, (25, 1))
        nn.init.zeros_(conv.time_bias)
        _glorot_uniform_(conv.spat_weight, n_time * self.n_chans, n_spat * self.n_chans)
        # classifier Conv2d(40, n_outputs, (T', 1)): fan_in 40 T', fan_out n_outputs T'
        _glorot_uniform_(self.final_layer.weight, n_spat * self._n_times_final,
                         self.n_outputs * self._n_times_final)
        nn.init.zeros_(self.final_layer.bias)
        self.bn.reset_parameters()

    def _fits(self, n_times: int) -> bool:
        return self._pooled_length(n_times) >= 1

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
        x = self.bn(self.conv_time_spat(x))
        x = F.avg_pool1d(x * x, self.pool_time_length, self.pool_time_stride)
        x = self.drop(torch.log(torch.clamp(x, min=1e-6)))
        return self.final_layer(x.flatten(1))


def load_braindecode_state_dict(model: ShallowConvNet, state_dict: dict[str, torch.Tensor]
                                ) -> ShallowConvNet:
    """Copy the weights of a ``braindecode.models.ShallowFBCSPNet`` into ``model``.

    Parameters
    ----------
    model : ShallowConvNet
        Destination with the same sizes (modified in place and returned).
    state_dict : dict
        ``braindecode_model.state_dict()``.

    Returns
    -------
    model : ShallowConvNet
    """
    conv = model.conv_time_spat
    with torch.no_grad():
        conv.time_weight.copy_(state_dict["conv_time_spat.conv_time.weight"].reshape(
            conv.time_weight.shape))
        conv.time_bias.copy_(state_dict["conv_time_spat.conv_time.bias"])
        conv.spat_weight.copy_(state_dict["conv_time_spat.conv_spat.weight"].reshape(
            conv.spat_weight.shape))
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(model.bn, name).copy_(state_dict[f"bnorm.{name}"])
        model.final_layer.weight.copy_(state_dict["final_layer.conv_classifier.weight"].reshape(
            model.final_layer.weight.shape))
        model.final_layer.bias.copy_(state_dict["final_layer.conv_classifier.bias"])
    return model
