"""Spiking Conformer: a convolutional front end and spiking transformer blocks on raw EEG.

After Gao, Sun, Chen & Liu (2024), "Epilepsy seizure detection and prediction using an
approximate spiking convolutional transformer" (arXiv 2402.09424): a spiking convolution module
(temporal then spatial convolution), spiking encoder blocks and a classification head, trained
with surrogate gradients, with an *approximate spiking neuron* that skips updates which cannot
change the output (:class:`~bci.models.spiking.neurons.ApproxLIF`). Written from the paper's
description and the Spikformer / spike-driven-transformer family; no code was copied.

Architecture (``B`` windows, ``C`` channels, ``T`` samples, ``F`` temporal filters, ``N =
T // pool_size`` tokens, ``d = d_model``)::

    x (B, C, T)
    -> temporal conv (F filters of kernel_time samples, "same" padding), BatchNorm
    -> average pooling by pool_size samples                          (B, F, C, N)
    -> neurons over the N token steps (F * C neurons)                 spikes
    -> spatial conv (C x 1 kernels, F -> d maps), BatchNorm          tokens (B, N, d)
    -> depth x [ x + SelfAttention(x); x + TokenConv(x); x + MLP(x) ]
    -> neurons, per-token linear read-out, mean over tokens           logits (B, n_outputs)

Every branch of a block starts with neurons, so every linear/convolution layer after the first
receives spikes (accumulates, not multiply-accumulates); the residual stream ``x`` itself is real
valued (the "membrane shortcut" of the spike-driven transformer), and BatchNorm, which can be
folded into the preceding weights at inference, follows every connection layer.

- **Spiking self-attention** (Spikformer): ``Q, K, V = neurons(BN(W s))`` are spikes, heads of
  ``d / n_heads`` features; no softmax, so ``(Q K^T) V`` equals ``Q (K^T V)`` and the model
  evaluates the cheaper order (``K^T V`` when there are more tokens than head features): all
  products have a spike operand, i.e. they are accumulates. The result is scaled by a learnable
  scalar (initialised at ``1 / sqrt(d / n_heads)``) and drives neurons of threshold
  ``attention_threshold``, then a linear projection and BatchNorm.
- **Token convolution** (the "conformer" part): a depthwise convolution over tokens of
  ``kernel_token`` tokens on spikes, BatchNorm.
- **MLP**: ``d -> mlp_ratio * d -> d`` with BatchNorm and neurons in between.

**Time steps: tokens are time.** The spiking neurons unroll over the ``N`` tokens of a window
(one step per ``pool_size / sfreq`` seconds, e.g. 92 ms for 16 samples at 173.61 Hz), so no input
is repeated over extra time steps: one window costs one pass of ``N`` steps. A neuron's membrane
carries information from earlier tokens to later ones within the window (it starts at rest in
every window). ``beta`` is the membrane decay per token step.

**Non-spiking twin** (``spiking=False``): the same layers and the same parameters, with ReLU in
place of every neuron layer and, by default, softmax attention (``twin_attention="softmax"``:
``softmax(scale * Q K^T) V``, the usual transformer; ``"linear"`` keeps the spiking model's
``scale * Q K^T V``). Its parameter count equals the spiking model's.

**Spike-encoded input** (``input_encoding="delta"``): the raw signal first passes a
:class:`~bci.models.spiking.encoders.DeltaEncoder` (a signed spike where a sample differs from
the previous one by more than a learnable threshold per channel and level), and the temporal
convolution reads those spikes (``encoder_levels`` input maps): the first layer, which on the
raw signal performs ``C * T * kernel_time * F`` multiply-accumulates, then performs
``kernel_time * F`` accumulates per input event. The default ``"dense"`` reads the signal.

**Spike-rate penalty** (``spike_penalty > 0``, training only): every spiking layer (and the
encoder) adds ``spike_penalty * mean |spikes|`` to the training loss, through its gradient (a
straight-through identity whose backward pass adds the penalty's gradient), so that training
trades accuracy against synaptic operations without a change to the training loop. It changes
no forward value.

**Approximate neurons** (``approximate=True``, spiking only): every neuron layer is an
:class:`~bci.models.spiking.neurons.ApproxLIF` (membrane floored at 0; resting neurons with
non-positive input are skipped, exactly); ``approximate=False`` uses plain
:class:`~bci.models.spiking.neurons.LIF` neurons with the same weights (load one model's state
dict into the other to compare them).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import (
    check_bool,
    check_fraction,
    check_option,
    check_positive,
    check_real,
    ensure_int,
)
from .._layers import _same_padding, _taps_reach_signal
from ..base import MOMENTUM_HINT, EEGModule
from .encoders import DeltaEncoder
from .neurons import DECAY_HINT, LIF, ApproxLIF
from .surrogate import SurrogateName, check_surrogate

__all__ = ["MatMul", "SpikingConformer"]

TWIN_ATTENTIONS = ("softmax", "linear")
INPUT_ENCODINGS = ("dense", "delta")


class _RatePenalty(torch.autograd.Function):
    """Identity forward; backward adds the gradient of ``weight * mean |s|`` to ``grad``."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.save_for_backward(s)
        ctx.weight = weight
        return s.view_as(s)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (s,) = ctx.saved_tensors
        return grad_out + (ctx.weight / s.numel()) * torch.sign(s), None


def _penalise(s: torch.Tensor, weight: float, training: bool) -> torch.Tensor:
    """Add ``weight * mean |s|`` to the training loss through the gradient (see module doc)."""
    if training and weight > 0 and s.requires_grad:
        return _RatePenalty.apply(s, weight)
    return s


class MatMul(nn.Module):
    """``a @ b`` as a module, so that its products can be counted.

    :func:`~bci.models.spiking.cost.count_operations` counts the products of attention (a product
    with a spike operand is an accumulate).
    """

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Return ``a @ b``."""
        return torch.matmul(a, b)


class _TokenNorm(nn.Module):
    """BatchNorm over the feature axis of tokens ``(B, N, d)``."""

    def __init__(self, n_features: int, momentum: float) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(n_features, momentum=momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(x.transpose(1, 2)).transpose(1, 2)


class _Neurons(nn.Module):
    """Neuron layer on tokens ``(B, N, n)`` -> ``(B, N, n)``.

    LIF/ApproxLIF spikes over the ``N`` token steps (from rest), or ReLU in the non-spiking twin.
    """

    def __init__(self, n_neurons: int, *, spiking: bool, approximate: bool, beta: float,
                 threshold: float, surrogate: str, slope: float,
                 spike_penalty: float = 0.0) -> None:
        super().__init__()
        self.spike_penalty = spike_penalty
        if spiking:
            cls = ApproxLIF if approximate else LIF
            self.neurons: nn.Module = cls(n_neurons, beta=beta, threshold=threshold,
                                          reset="subtract", surrogate=surrogate, slope=slope)
        else:
            self.neurons = nn.ReLU()
        self.spiking = spiking

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spiking:
            return _penalise(self.neurons(x)[0], self.spike_penalty, self.training)
        return self.neurons(x)


class _SelfAttention(nn.Module):
    def __init__(self, d_model: int, n_heads: int, neurons, spiking: bool,
                 twin_attention: str, attention_threshold: float, momentum: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.head_dim = d_model // n_heads
        self.spiking = spiking
        self.twin_attention = twin_attention
        self.neurons_in = neurons(d_model)
        self.q = nn.Linear(d_model, d_model, bias=False)
        self.k = nn.Linear(d_model, d_model, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.bn_q, self.bn_k, self.bn_v = (_TokenNorm(d_model, momentum) for _ in range(3))
        self.neurons_q, self.neurons_k, self.neurons_v = (neurons(d_model) for _ in range(3))
        self.scale = nn.Parameter(torch.tensor(1.0 / math.sqrt(self.head_dim)))
        self.matmul_1 = MatMul()
        self.matmul_2 = MatMul()
        self.neurons_attn = neurons(d_model, threshold=attention_threshold)
        self.proj = nn.Linear(d_model, d_model, bias=False)
        self.bn_proj = _TokenNorm(d_model, momentum)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, n_tokens, _ = x.shape
        return x.view(batch, n_tokens, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.neurons_in(x)
        q = self._heads(self.neurons_q(self.bn_q(self.q(s))))
        k = self._heads(self.neurons_k(self.bn_k(self.k(s))))
        v = self._heads(self.neurons_v(self.bn_v(self.v(s))))
        n_tokens = x.shape[1]
        if not self.spiking and self.twin_attention == "softmax":
            attn = torch.softmax(self.matmul_1(q, k.transpose(-2, -1)) * self.scale, dim=-1)
            out = self.matmul_2(attn, v)
        elif n_tokens > self.head_dim:  # no softmax: Q (K^T V), linear in the tokens
            out = self.matmul_2(q, self.matmul_1(k.transpose(-2, -1), v)) * self.scale
        else:
            out = self.matmul_2(self.matmul_1(q, k.transpose(-2, -1)), v) * self.scale
        out = out.transpose(1, 2).reshape(x.shape)
        return self.bn_proj(self.proj(self.neurons_attn(out)))


class _TokenConv(nn.Module):
    def __init__(self, d_model: int, kernel_token: int, neurons, momentum: float) -> None:
        super().__init__()
        self.neurons_in = neurons(d_model)
        self.conv = nn.Conv1d(d_model, d_model, kernel_token, groups=d_model, bias=False,
                              padding=_same_padding(kernel_token)[0])
        self.kernel_token = kernel_token
        self.bn = _TokenNorm(d_model, momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.neurons_in(x).transpose(1, 2)
        if self.kernel_token % 2 == 0:  # "same" padding with the odd sample on the right
            s = F.pad(s, (0, 1))
        return self.bn(self.conv(s).transpose(1, 2))


class _MLP(nn.Module):
    def __init__(self, d_model: int, hidden: int, neurons, momentum: float) -> None:
        super().__init__()
        self.neurons_in = neurons(d_model)
        self.fc_1 = nn.Linear(d_model, hidden, bias=False)
        self.bn_1 = _TokenNorm(hidden, momentum)
        self.neurons_hidden = neurons(hidden)
        self.fc_2 = nn.Linear(hidden, d_model, bias=False)
        self.bn_2 = _TokenNorm(d_model, momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.neurons_hidden(self.bn_1(self.fc_1(self.neurons_in(x))))
        return self.bn_2(self.fc_2(h))


class _Block(nn.Module):
    def __init__(self, d_model: int, n_heads: int, mlp_ratio: int, kernel_token: int, neurons,
                 spiking: bool, twin_attention: str, attention_threshold: float,
                 momentum: float) -> None:
        super().__init__()
        self.attention = _SelfAttention(d_model, n_heads, neurons, spiking, twin_attention,
                                        attention_threshold, momentum)
        self.token_conv = _TokenConv(d_model, kernel_token, neurons, momentum)
        self.mlp = _MLP(d_model, mlp_ratio * d_model, neurons, momentum)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(x)
        x = x + self.token_conv(x)
        return x + self.mlp(x)


class SpikingConformer(EEGModule):
    """Spiking convolutional transformer for EEG windows (seizure detection), and its twin.

    See the module docstring for the architecture, the time steps and the twin.

    Parameters
    ----------
    n_chans, n_outputs, n_times : int
        Channels, outputs (classes) and samples per window.
    sfreq : float | None
        Sampling rate (Hz); stored. Kernel and pooling sizes are in samples.
    spiking : bool
        Spiking neurons (True) or the non-spiking twin with ReLU (False).
    approximate : bool
        Approximate neurons (:class:`~bci.models.spiking.neurons.ApproxLIF`) instead of plain
        LIF (spiking only; ignored by the twin).
    n_filters_time : int
        Temporal filters of the first convolution.
    kernel_time : int
        Taps (samples) of the temporal convolution.
    pool_size : int
        Samples averaged into one token (and one neuron time step).
    d_model : int
        Token features (spatial filters).
    n_heads : int
        Attention heads; must divide ``d_model``.
    depth : int
        Transformer blocks.
    mlp_ratio : int
        Hidden width of the MLP, in multiples of ``d_model``.
    kernel_token : int
        Tokens of the depthwise token convolution of each block.
    beta : float
        Membrane decay per token step, in (0, 1).
    threshold : float
        Firing threshold of the neurons (inputs are batch-normalised).
    attention_threshold : float
        Firing threshold of the neurons after the attention product (Spikformer uses 0.5).
    surrogate : "fast_sigmoid" | "atan" | "sigmoid" | "triangle"
        Surrogate derivative of the spikes.
    slope : float
        Steepness of the surrogate.
    twin_attention : "softmax" | "linear"
        Attention of the non-spiking twin (see the module docstring).
    drop_prob : float
        Dropout before the read-out, in [0, 1).
    batch_norm_momentum : float
        BatchNorm momentum (torch convention), in [0, 1].
    input_encoding : "dense" | "delta"
        The first (temporal) convolution reads the signal (``"dense"``) or the signed spikes
        of a :class:`~bci.models.spiking.encoders.DeltaEncoder` (``"delta"``; see the module
        docstring).
    encoder_levels : int
        Thresholds per channel of the delta encoder (input maps of the temporal convolution).
    encoder_threshold : float
        Initial threshold of the delta encoder's first level, in input units per sample (> 0).
    spike_penalty : float
        Weight (>= 0) of the spike-rate penalty added to the training loss per spiking layer
        (see the module docstring); 0 adds none.

    Examples
    --------
    >>> model = SpikingConformer(2, 2, 256, sfreq=173.61)
    >>> model(torch.randn(3, 2, 256)).shape
    torch.Size([3, 2])
    >>> twin = SpikingConformer(2, 2, 256, sfreq=173.61, spiking=False)
    >>> sum(p.numel() for p in twin.parameters()) == sum(p.numel() for p in model.parameters())
    True
    """

    #: windowed decoder: the window's past samples are state (see count_operations)
    streaming = False

    def __init__(self, n_chans: int, n_outputs: int, n_times: int, *,
                 sfreq: float | None = None, spiking: bool = True, approximate: bool = True,
                 n_filters_time: int = 8, kernel_time: int = 25, pool_size: int = 16,
                 d_model: int = 32, n_heads: int = 4, depth: int = 1, mlp_ratio: int = 2,
                 kernel_token: int = 7, beta: float = 0.5, threshold: float = 1.0,
                 attention_threshold: float = 0.5, surrogate: SurrogateName = "atan",
                 slope: float = 2.0,
                 twin_attention: Literal["softmax", "linear"] = "softmax",
                 drop_prob: float = 0.25, batch_norm_momentum: float = 0.1,
                 input_encoding: Literal["dense", "delta"] = "dense", encoder_levels: int = 1,
                 encoder_threshold: float = 0.5, spike_penalty: float = 0.0) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        self.input_encoding = check_option("input_encoding", input_encoding, INPUT_ENCODINGS)
        self.encoder_levels = ensure_int(encoder_levels, "encoder_levels", minimum=1)
        self.encoder_threshold = check_positive(encoder_threshold, "encoder_threshold",
                                                unit="input units per sample")
        self.spike_penalty = check_positive(spike_penalty, "spike_penalty", allow_zero=True)
        self.spiking = check_bool(spiking, "spiking")
        self.approximate = check_bool(approximate, "approximate")
        self.n_filters_time = ensure_int(n_filters_time, "n_filters_time", minimum=1)
        self.kernel_time = ensure_int(kernel_time, "kernel_time", minimum=1)
        self.pool_size = ensure_int(pool_size, "pool_size", minimum=1)
        self.d_model = ensure_int(d_model, "d_model", minimum=1)
        self.n_heads = ensure_int(n_heads, "n_heads", minimum=1)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model={d_model} must be a multiple of n_heads={n_heads}.")
        self.depth = ensure_int(depth, "depth", minimum=1)
        self.mlp_ratio = ensure_int(mlp_ratio, "mlp_ratio", minimum=1)
        self.kernel_token = ensure_int(kernel_token, "kernel_token", minimum=1)
        self.beta = check_real(beta, "beta", low=0.0, high=1.0, low_inclusive=False,
                               high_inclusive=False, kind="decay per step", hint=DECAY_HINT)
        self.threshold = check_positive(threshold, "threshold")
        self.attention_threshold = check_positive(attention_threshold, "attention_threshold")
        self.surrogate, self.slope = check_surrogate(surrogate, slope)
        self.twin_attention = check_option("twin_attention", twin_attention, TWIN_ATTENTIONS)
        self.drop_prob = check_fraction(drop_prob, "drop_prob", kind="probability")
        self.batch_norm_momentum = check_fraction(batch_norm_momentum, "batch_norm_momentum",
                                                  allow_one=True, hint=MOMENTUM_HINT)
        self._check_n_times()

        momentum = self.batch_norm_momentum

        def neurons(n: int, threshold: float | None = None) -> _Neurons:
            return _Neurons(n, spiking=spiking, approximate=approximate, beta=self.beta,
                            threshold=self.threshold if threshold is None else threshold,
                            surrogate=self.surrogate, slope=self.slope,
                            spike_penalty=self.spike_penalty)

        n_filters = self.n_filters_time
        n_maps = 1
        self.encoder: DeltaEncoder | None = None
        if self.input_encoding == "delta":
            self.encoder = DeltaEncoder(self.n_chans, n_levels=self.encoder_levels,
                                        init_threshold=self.encoder_threshold,
                                        surrogate=self.surrogate, slope=self.slope)
            n_maps = self.encoder_levels
        # odd kernels pad inside the convolution (so that operation counts see no padding)
        left, right = _same_padding(self.kernel_time)
        self.conv_time = nn.Conv2d(n_maps, n_filters, (1, self.kernel_time), bias=False,
                                   padding=(0, left))
        self._extra_pad = right - left
        self.bn_time = nn.BatchNorm2d(n_filters, momentum=momentum)
        self.neurons_time = neurons(n_filters * self.n_chans)
        self.conv_space = nn.Conv2d(n_filters, self.d_model, (self.n_chans, 1), bias=False)
        self.bn_space = nn.BatchNorm2d(self.d_model, momentum=momentum)
        self.blocks = nn.ModuleList(
            _Block(self.d_model, self.n_heads, self.mlp_ratio, self.kernel_token, neurons,
                   spiking, self.twin_attention, self.attention_threshold, momentum)
            for _ in range(self.depth))
        self.neurons_out = neurons(self.d_model)
        self.dropout = nn.Dropout(self.drop_prob)
        self.final_layer = nn.Linear(self.d_model, self.n_outputs)

    @property
    def n_tokens(self) -> int:
        """Tokens (neuron time steps) per window: ``n_times // pool_size``."""
        return self.n_times // self.pool_size

    def _fits(self, n_times: int) -> bool:
        n_tokens = n_times // self.pool_size
        return (_taps_reach_signal(n_times, self.kernel_time, 1, _same_padding(self.kernel_time))
                and n_tokens >= 1
                and _taps_reach_signal(n_tokens, self.kernel_token, 1,
                                       _same_padding(self.kernel_token)))

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Return the residual stream after the last block, ``(batch, n_tokens, d_model)``."""
        self._check_input(x)
        batch = x.shape[0]
        if self.encoder is None:
            maps = x.unsqueeze(1)  # (B, 1, C, T)
        else:
            events = _penalise(self.encoder(x), self.spike_penalty, self.training)  # (B, T, C*K)
            maps = events.reshape(batch, x.shape[-1], self.n_chans, self.encoder_levels)
            maps = maps.permute(0, 3, 2, 1)  # (B, K, C, T)
        z = self.conv_time(F.pad(maps, (0, self._extra_pad)))
        z = self.bn_time(z)  # (B, F, C, T)
        n_tokens = self.n_tokens
        z = z[..., :n_tokens * self.pool_size]
        z = z.reshape(*z.shape[:3], n_tokens, self.pool_size).mean(-1)  # (B, F, C, N)
        z = z.permute(0, 3, 1, 2).reshape(batch, n_tokens, -1)  # neurons over the N steps
        s = self.neurons_time(z)
        s = s.reshape(batch, n_tokens, self.n_filters_time, self.n_chans).permute(0, 2, 3, 1)
        tokens = self.bn_space(self.conv_space(s))  # (B, d, 1, N)
        tokens = tokens.squeeze(2).transpose(1, 2)
        for block in self.blocks:
            tokens = block(tokens)
        return tokens

    def with_neurons(self, *, approximate: bool) -> SpikingConformer:
        """Return a copy with the same weights and the other (or the same) spiking neuron.

        E.g. weights trained with approximate neurons run with plain LIF neurons: the
        approximate neuron's saving is then measured on the same weights.

        Parameters
        ----------
        approximate : bool
            :class:`~bci.models.spiking.neurons.ApproxLIF` (True) or plain LIF (False).

        Returns
        -------
        model : SpikingConformer
            A new model in eval mode; ``self`` is not changed.

        Raises
        ------
        ValueError
            If ``self`` is the non-spiking twin (it has no spiking neurons).

        Examples
        --------
        >>> model = SpikingConformer(2, 2, 256, sfreq=173.61)
        >>> plain = model.with_neurons(approximate=False)
        >>> plain.approximate, bool(torch.equal(plain.final_layer.weight,
        ...                                     model.final_layer.weight))
        (False, True)
        """
        approximate = check_bool(approximate, "approximate")
        if not self.spiking:
            raise ValueError("with_neurons needs a spiking model; this is the non-spiking twin "
                             "(spiking=False), which has ReLU units, no spiking neurons.")
        copy = type(self)(**{**self.get_config(), "approximate": approximate})
        copy.load_state_dict(self.state_dict())
        return copy.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, n_outputs)`` of windows ``(batch, n_chans, n_times)``."""
        s = self.dropout(self.neurons_out(self.forward_tokens(x)))
        # per-token read-out then the mean over tokens: equal to reading out the spike rates,
        # but every product has a spike operand
        return self.final_layer(s).mean(1)
