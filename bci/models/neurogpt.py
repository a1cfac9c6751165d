"""Neuro-GPT: a conformer encoder of EEG chunks and a causal transformer over their embeddings.

After Cui et al., "Neuro-GPT: towards a foundation model for EEG" (arXiv 2311.03764). Written from
the paper and from reading the authors' public code (github wenhui0206/NeuroGPT, GPL-3.0) and
braindecode's BSD ``EEGConformer``; no code was copied.

Architecture (``B`` windows, ``N`` chunks of ``S`` samples, ``C`` channels, ``F`` temporal
filters, ``P`` pooled tokens per chunk, ``D = P * F`` the chunk embedding, ``W`` the GPT width)::

    x (B, C, n_times) -> N chunks (B, N, C, S), consecutive chunks overlapping by overlap_s
    encoder, per chunk (the EEG Conformer):
      temporal conv (F filters of filter_time_length samples, "valid")     (B N, F, C, S')
      absent channels zeroed, present ones rescaled by C / n_present (see below)
      spatial conv across all C electrodes (F -> F), BatchNorm, ELU
      average pooling (pool_time_length, stride pool_time_stride), dropout  (B N, F, P)
      1 x 1 projection, att_depth pre-norm self-attention blocks            (B N, P, F)
      flattened: one embedding of D = P * F features per chunk              (B, N, D)
    GPT: Linear(D -> W), LayerNorm, dropout, + learned positions, dropout,
      gpt_layers pre-norm causal blocks (GPT-2: attention, 4 W GELU MLP), final LayerNorm

**Pretraining** (``finetune=None``), causal masked chunk reconstruction as in the paper: for
each position ``i = 1 .. N-1``, a learned mask token (in the D-dimensional embedding space)
replaces chunk ``i``'s embedding, causal attention hides the chunks after it, and the GPT's
output at ``i``, projected back to D features (Linear(W -> D)), is compared (mean squared error)
with the encoder's embedding of chunk ``i`` (the target is detached, as in the authors' code).
The authors run the ``N - 1`` masked copies of each sequence one by one; here one pass computes
all of them exactly: the sequence holds the ``N`` real embeddings followed by ``N - 1`` mask
tokens, mask token ``i`` carries position ``i`` and attends to the real chunks ``0 .. i-1`` and
to itself only, and every real chunk attends causally to the real chunks before it. A token's
output depends only on what it attends to, so each mask token's output equals that of the
authors' copy ``i`` (a test compares both, to 1e-10 in float64).

**Fine-tuning** (``finetune``), the paper's three strategies:

- ``"encoder_gpt"``: encoder and GPT; a learned classification token is appended after the
  ``N`` chunks, its GPT output goes through a pooler (Linear(W, W), tanh, dropout) and the
  head (Linear(W, 256), ELU, dropout, Linear(256, 32), ELU, dropout, Linear(32, n_outputs)).
- ``"encoder"``: the encoder alone (no GPT); the ``N`` chunk embeddings, concatenated, go
  through the same head.
- ``"linear"``: a linear probe: the encoder is frozen (``requires_grad=False`` and kept in eval
  mode, so its BatchNorm statistics do not move either); one Linear(N D -> n_outputs) on the
  concatenated embeddings is trained.

A pretraining model (``finetune=None``) has the mask token and the output projection and no
classification head: its ``forward`` raises; fine-tuning models have no mask token and no output
projection. :func:`save_pretrained` writes a pretraining model's weights to a network file;
``NeuroGPT(..., pretrained=FILE)`` or :meth:`NeuroGPT.from_pretrained` build a fine-tuning model
from it (the encoder's weights, and with ``"encoder_gpt"`` the GPT's).

**Absent channels.** Recordings with different montages pretrain together on the model's
channel set; ``channel_mask`` (B, C) says which channels a recording has (absent ones are
zero-filled by the data side). The encoder zeroes the temporal-filter outputs of absent channels
(their bias alone would otherwise enter the spatial filters) and multiplies the present ones by
``C / n_present``, so the spatial convolution (a sum over electrodes) keeps its scale, as
inverted dropout does; with every channel present nothing changes. A chunk with no channel
present is refused.

Differences from the authors' code, none of which changes a parameter count: attention scores
are scaled by ``1 / sqrt(head dimension)`` (braindecode's conformer divides by ``sqrt(F)``); the
head's dropouts both use ``drop_prob`` (theirs: 0.5 and 0.3); the encoder-only head takes the
``N`` chunk embeddings for any ``N`` (theirs is written for 2 chunks); the GPT's linear layers
keep torch's default initialisation (GPT-2's N(0, 0.02) left a randomly initialised network
unable to fit 8 windows at the learning rate 1e-2 of the shared network tests).

Named configurations (:data:`NEUROGPT_CONFIGS`, :meth:`NeuroGPT.from_named_config`):
``"paper"`` (22 channels, 250 Hz, 2-s chunks overlapping by 0.2 s, 32 chunks per pretraining
sample, 6 encoder blocks of 40 features and 10 heads, GPT of 6 layers, width 1024, 16 heads, 512
positions) and ``"small"`` (22 channels, 128 Hz, 1-s chunks overlapping by 0.125 s, 8 chunks,
2 encoder blocks of 16 features, GPT of 2 layers, width 64), which pretrains on two CPU cores in
minutes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_fraction, check_option, check_positive, check_type, ensure_int
from .._logging import logger
from ._layers import _temporal_filter_bank
from .base import MOMENTUM_HINT, EEGModule

__all__ = ["FINETUNE", "NEUROGPT_CONFIGS", "NeuroGPT", "pretrained_config", "save_pretrained"]

#: Fine-tuning strategies (see :class:`NeuroGPT`); None builds a pretraining model.
FINETUNE = ("encoder_gpt", "encoder", "linear")

#: Named configurations: constructor keywords (with ``n_chans`` and ``sfreq``) plus
#: ``n_chunks``, the chunks of one pretraining sample (it sets the default ``n_times``).
NEUROGPT_CONFIGS: dict[str, dict[str, Any]] = {
    "paper": {
        "n_chans": 22, "sfreq": 250.0, "chunk_s": 2.0, "overlap_s": 0.2, "n_chunks": 32,
        "n_filters_time": 40, "filter_time_length": 25, "pool_time_length": 75,
        "pool_time_stride": 15, "att_depth": 6, "att_heads": 10, "drop_prob": 0.5,
        "gpt_width": 1024, "gpt_layers": 6, "gpt_heads": 16, "n_positions": 512,
        "gpt_drop_prob": 0.1,
    },
    "small": {
        "n_chans": 22, "sfreq": 128.0, "chunk_s": 1.0, "overlap_s": 0.125, "n_chunks": 8,
        "n_filters_time": 16, "filter_time_length": 13, "pool_time_length": 32,
        "pool_time_stride": 16, "att_depth": 2, "att_heads": 4, "drop_prob": 0.25,
        "gpt_width": 64, "gpt_layers": 2, "gpt_heads": 4, "n_positions": 64,
        "gpt_drop_prob": 0.1,
    },
}

#: Configuration keys a pretrained file and the model loading it must share.
ARCHITECTURE_KEYS = ("n_chans", "sfreq", "chunk_s", "n_filters_time", "filter_time_length",
                     "pool_time_length", "pool_time_stride", "att_depth", "att_heads",
                     "gpt_width", "gpt_layers", "gpt_heads", "n_positions")
_HEAD_HIDDEN = (256, 32)


def _samples(seconds: float, sfreq: float, name: str) -> int:
    """``seconds * sfreq`` as a whole number of samples, or ``ValueError``."""
    n = seconds * sfreq
    if abs(n - round(n)) > 1e-6:
        raise ValueError(f"{name}={seconds:g} s is not a whole number of samples at "
                         f"sfreq={sfreq:g} Hz ({n:g}); choose {name} * sfreq integral.")
    return int(round(n))


# ---------------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------------
class _SelfAttention(nn.Module):
    """Multi-head self-attention (one fused Q/K/V projection, an output projection)."""

    def __init__(self, width: int, n_heads: int, drop_prob: float) -> None:
        super().__init__()
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)
        self.n_heads = n_heads
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, width // self.n_heads
                                   ).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                             dropout_p=self.drop_prob if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(batch, length, width))


class _Block(nn.Module):
    """Pre-norm transformer block: ``x + drop(attn(LN(x)))``, ``x + drop(MLP(LN(x)))``.

    The MLP is ``width -> 4 width -> width`` with GELU (``approximate``: "none" in the encoder as
    braindecode's conformer, "tanh" in the GPT as GPT-2).
    """

    def __init__(self, width: int, n_heads: int, drop_prob: float, approximate: str) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = _SelfAttention(width, n_heads, drop_prob)
        self.ln_2 = nn.LayerNorm(width)
        self.fc = nn.Linear(width, 4 * width)
        self.fc_out = nn.Linear(4 * width, width)
        self.drop = nn.Dropout(drop_prob)
        self.approximate = approximate

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.drop(self.attn(self.ln_1(x), attn_mask))
        hidden = F.gelu(self.fc(self.ln_2(x)), approximate=self.approximate)
        return x + self.drop(self.fc_out(self.drop(hidden)))


class _ChunkEncoder(nn.Module):
    """The conformer: ``(M, C, S)`` chunks (and a ``(M, C)`` channel mask) -> ``(M, P * F)``."""

    def __init__(self, n_chans: int, n_filters: int, kernel: int, pool: int, stride: int,
                 depth: int, n_heads: int, drop_prob: float, momentum: float) -> None:
        super().__init__()
        self.n_chans = n_chans
        self.temporal_weight = nn.Parameter(torch.empty(n_filters, kernel))
        self.temporal_bias = nn.Parameter(torch.empty(n_filters))
        self.spatial = nn.Conv2d(n_filters, n_filters, (n_chans, 1))
        self.bn = nn.BatchNorm1d(n_filters, momentum=momentum)
        self.pool = nn.AvgPool1d(pool, stride)
        self.drop = nn.Dropout(drop_prob)
        self.projection = nn.Linear(n_filters, n_filters)  # braindecode's 1 x 1 convolution
        self.blocks = nn.ModuleList(_Block(n_filters, n_heads, drop_prob, "none")
                                    for _ in range(depth))
        bound = 1.0 / math.sqrt(kernel)  # torch's Conv2d(1, F, (1, K)) initialisation
        nn.init.uniform_(self.temporal_weight, -bound, bound)
        nn.init.uniform_(self.temporal_bias, -bound, bound)

    def forward(self, x: torch.Tensor, channel_mask: torch.Tensor | None = None) -> torch.Tensor:
        out = _temporal_filter_bank(x, self.temporal_weight, (0, 0),
                                    bias=self.temporal_bias)  # (M, F, C, S')
        if channel_mask is not None:
            scale = channel_mask.to(out.dtype) * (
                self.n_chans / channel_mask.sum(1, keepdim=True).to(out.dtype))
            out = out * scale[:, None, :, None]
        out = F.elu(self.bn(self.spatial(out).squeeze(2)))  # (M, F, S')
        tokens = self.projection(self.drop(self.pool(out)).transpose(1, 2))  # (M, P, F)
        for block in self.blocks:
            tokens = block(tokens)
        return tokens.flatten(1)


class _GPT(nn.Module):
    """GPT-2 body on given input embeddings: ``+ positions``, dropout, blocks, final LayerNorm."""

    def __init__(self, width: int, n_layers: int, n_heads: int, n_positions: int,
                 drop_prob: float) -> None:
        super().__init__()
        self.wpe = nn.Parameter(torch.empty(n_positions, width))
        nn.init.normal_(self.wpe, std=0.02)
        self.drop = nn.Dropout(drop_prob)
        self.blocks = nn.ModuleList(_Block(width, n_heads, drop_prob, "tanh")
                                    for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor, positions: torch.Tensor,
                attn_mask: torch.Tensor) -> torch.Tensor:
        x = self.drop(x + self.wpe[positions])
        for block in self.blocks:
            x = block(x, attn_mask)
        return self.ln_f(x)


def _head(n_in: int, n_outputs: int, drop_prob: float) -> nn.Sequential:
    hidden_1, hidden_2 = _HEAD_HIDDEN
    return nn.Sequential(nn.Linear(n_in, hidden_1), nn.ELU(), nn.Dropout(drop_prob),
                         nn.Linear(hidden_1, hidden_2), nn.ELU(), nn.Dropout(drop_prob),
                         nn.Linear(hidden_2, n_outputs))


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
class NeuroGPT(EEGModule):
    """Neuro-GPT (Cui et al.): conformer chunk encoder + causal GPT over chunk embeddings.

    See the module docstring for the architecture, the pretraining objective and the
    fine-tuning strategies.

    Parameters
    ----------
    n_chans, n_outputs, n_times : int
        Channels, outputs (classes) and samples per window of :meth:`forward`.
    sfreq : float | None
        Sampling rate (Hz); required when ``chunk_s`` is given.
    chunk_s : float | None
        Chunk length (s); the window is split into chunks of ``chunk_s * sfreq`` samples. None:
        the whole window is one chunk.
    overlap_s : float
        Overlap of consecutive chunks (s), shorter than a chunk. A window of ``n_times`` samples
        holds ``1 + (n_times - S) // (S - overlap)`` chunks; samples after the last one are
        not used.
    n_filters_time, filter_time_length : int
        Temporal filters of the encoder (also its token width ``F``) and their length
        (samples).
    pool_time_length, pool_time_stride : int
        Average pooling of the encoder (samples); ``P = (S - filter_time_length + 1 -
        pool_time_length) // pool_time_stride + 1`` tokens per chunk.
    att_depth, att_heads : int
        Self-attention blocks of the encoder and their heads (``F`` divisible by ``att_heads``).
    drop_prob : float
        Dropout of the encoder and of the classification head, in ``[0, 1)``.
    batch_norm_momentum : float
        Momentum of the encoder's BatchNorm (torch convention).
    gpt_width, gpt_layers, gpt_heads : int
        Width, blocks and heads of the causal transformer (width divisible by heads).
    n_positions : int
        Learned positions of the GPT: the most chunks a sequence may have (pretraining; plus
        one classification token with ``"encoder_gpt"``).
    gpt_drop_prob : float
        Dropout of the GPT (embedding, attention, residual) and its pooler.
    finetune : "encoder_gpt" | "encoder" | "linear" | None
        Classification path (see the module docstring); None builds a pretraining model
        (:meth:`pretraining_loss`; no classification head).
    pretrained : str | Path | None
        Network file of a pretrained NeuroGPT (:func:`save_pretrained`) whose encoder (and,
        with ``"encoder_gpt"``, GPT) weights initialise this model. Its architecture must be
        this model's (``ValueError`` naming the keys that differ). Not kept in
        :meth:`get_config` (None there): the weights are then the model's own, and a decoder
        file rebuilt from the config does not read the pretrained file again;
        :attr:`pretrained_file` records where they came from.

    Examples
    --------
    >>> model = NeuroGPT(22, 4, 1000, sfreq=250.0, chunk_s=2.0)
    >>> model.n_chunks, model.chunk_samples, model.embed_dim
    (2, 500, 432)
    """

    def __init__(self, n_chans: int, n_outputs: int, n_times: int, *,
                 sfreq: float | None = None, chunk_s: float | None = None,
                 overlap_s: float = 0.0, n_filters_time: int = 16, filter_time_length: int = 13,
                 pool_time_length: int = 32, pool_time_stride: int = 16, att_depth: int = 2,
                 att_heads: int = 4, drop_prob: float = 0.25, batch_norm_momentum: float = 0.1,
                 gpt_width: int = 64, gpt_layers: int = 2, gpt_heads: int = 4,
                 n_positions: int = 64, gpt_drop_prob: float = 0.1,
                 finetune: Literal["encoder_gpt", "encoder", "linear"] | None = "encoder_gpt",
                 pretrained: str | Path | None = None) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        self.n_filters_time = ensure_int(n_filters_time, "n_filters_time", minimum=1)
        self.filter_time_length = ensure_int(filter_time_length, "filter_time_length",
                                             minimum=1)
        self.pool_time_length = ensure_int(pool_time_length, "pool_time_length", minimum=1)
        self.pool_time_stride = ensure_int(pool_time_stride, "pool_time_stride", minimum=1)
        self.att_depth = ensure_int(att_depth, "att_depth", minimum=0)
        self.att_heads = ensure_int(att_heads, "att_heads", minimum=1)
        self.drop_prob = check_fraction(drop_prob, "drop_prob", kind="probability")
        self.batch_norm_momentum = check_fraction(batch_norm_momentum, "batch_norm_momentum",
                                                  allow_one=True, hint=MOMENTUM_HINT)
        self.gpt_width = ensure_int(gpt_width, "gpt_width", minimum=1)
        self.gpt_layers = ensure_int(gpt_layers, "gpt_layers", minimum=0)
        self.gpt_heads = ensure_int(gpt_heads, "gpt_heads", minimum=1)
        self.n_positions = ensure_int(n_positions, "n_positions", minimum=2)
        self.gpt_drop_prob = check_fraction(gpt_drop_prob, "gpt_drop_prob", kind="probability")
        if finetune is not None:
            check_option("finetune", finetune, FINETUNE)
        self.finetune = finetune
        for width, heads, what in ((self.n_filters_time, self.att_heads, "n_filters_time"),
                                   (self.gpt_width, self.gpt_heads, "gpt_width")):
            if width % heads:
                raise ValueError(f"{what}={width} must be divisible by its number of heads "
                                 f"({heads}).")
        if chunk_s is None:
            if overlap_s:
                raise ValueError("overlap_s needs chunk_s: with chunk_s=None the whole window "
                                 "is one chunk.")
            self.chunk_s, self.overlap_s = None, 0.0
            self.chunk_samples, self.overlap_samples = self.n_times, 0
        else:
            if self.sfreq is None:
                raise ValueError(f"chunk_s={chunk_s!r} needs sfreq (Hz) to be a number of "
                                 "samples; pass sfreq.")
            self.chunk_s = check_positive(chunk_s, "chunk_s", unit="s")
            self.overlap_s = check_positive(overlap_s, "overlap_s", unit="s", allow_zero=True)
            self.chunk_samples = _samples(self.chunk_s, self.sfreq, "chunk_s")
            self.overlap_samples = _samples(self.overlap_s, self.sfreq, "overlap_s")
            if self.overlap_samples >= self.chunk_samples:
                raise ValueError(f"overlap_s={self.overlap_s:g} s must be shorter than chunk_s="
                                 f"{self.chunk_s:g} s.")
        self._check_n_times()
        self.n_tokens = self._n_tokens(self.chunk_samples)
        self.embed_dim = self.n_tokens * self.n_filters_time
        self.n_chunks = 1 + (self.n_times - self.chunk_samples) // (
            self.chunk_samples - self.overlap_samples)
        n_needed = self.n_chunks + (finetune == "encoder_gpt")
        if finetune in (None, "encoder_gpt") and n_needed > self.n_positions:
            raise ValueError(f"A window of n_times={self.n_times} holds {self.n_chunks} chunks; "
                             f"with finetune={finetune!r} the GPT needs {n_needed} positions, "
                             f"but n_positions={self.n_positions}. Raise n_positions or use "
                             "shorter windows.")

        self.encoder = _ChunkEncoder(
            self.n_chans, self.n_filters_time, self.filter_time_length, self.pool_time_length,
            self.pool_time_stride, self.att_depth, self.att_heads, self.drop_prob,
            self.batch_norm_momentum)
        if finetune in (None, "encoder_gpt"):
            self.in_proj = nn.Sequential(nn.Linear(self.embed_dim, self.gpt_width),
                                         nn.LayerNorm(self.gpt_width),
                                         nn.Dropout(self.gpt_drop_prob))
            self.gpt = _GPT(self.gpt_width, self.gpt_layers, self.gpt_heads, self.n_positions,
                            self.gpt_drop_prob)
        if finetune is None:
            self.mask_token = nn.Parameter(torch.randn(self.embed_dim))
            self.out_proj = nn.Linear(self.gpt_width, self.embed_dim)
        elif finetune == "encoder_gpt":
            self.cls_token = nn.Parameter(torch.randn(self.embed_dim))
            self.pooler = nn.Sequential(nn.Linear(self.gpt_width, self.gpt_width), nn.Tanh(),
                                        nn.Dropout(self.gpt_drop_prob))
            self.head = _head(self.gpt_width, self.n_outputs, self.drop_prob)
        elif finetune == "encoder":
            self.head = _head(self.n_chunks * self.embed_dim, self.n_outputs, self.drop_prob)
        else:
            self.head = nn.Linear(self.n_chunks * self.embed_dim, self.n_outputs)
            self.encoder.requires_grad_(False)
            self.encoder.eval()  # from the start: Lightning keeps the modes it is given
        self.pretrained = None
        #: The file the pretrained weights were loaded from (None: trained from scratch).
        self.pretrained_file: str | None = None
        if pretrained is not None:
            self.load_pretrained(pretrained)

    # -- shapes --------------------------------------------------------------------------------
    def _n_tokens(self, n_samples: int) -> int:
        n_conv = n_samples - self.filter_time_length + 1
        if n_conv < self.pool_time_length:
            return 0
        return (n_conv - self.pool_time_length) // self.pool_time_stride + 1

    def _fits(self, n_times: int) -> bool:
        chunk = n_times if self.chunk_s is None else self.chunk_samples
        return n_times >= chunk and self._n_tokens(chunk) >= 1

    def _describe_samples(self, n_samples: int) -> str:
        text = super()._describe_samples(n_samples)
        if self.chunk_s is not None and n_samples == self.chunk_samples:
            text += " (one chunk)"
        return text

    def split_chunks(self, x: torch.Tensor) -> torch.Tensor:
        """Split windows ``(batch, n_chans, n_times)`` into ``(batch, n_chunks, n_chans, S)``.

        Chunks start every ``S - overlap`` samples (a view, no copy).
        """
        step = self.chunk_samples - self.overlap_samples
        chunks = x.unfold(2, self.chunk_samples, step)[:, :, :self.n_chunks]
        return chunks.transpose(1, 2)

    # -- encoder and GPT -----------------------------------------------------------------------
    def _check_chunks(self, chunks: torch.Tensor, channel_mask: torch.Tensor | None
                      ) -> torch.Tensor | None:
        check_type(chunks, torch.Tensor, "chunks")
        if not chunks.is_floating_point():
            raise TypeError(f"chunks must be floating point (float32), got {chunks.dtype}.")
        expected = f"(batch, n_chunks, n_chans={self.n_chans}, chunk_samples=" \
                   f"{self.chunk_samples})"
        if chunks.ndim != 4 or chunks.shape[2:] != (self.n_chans, self.chunk_samples):
            raise ValueError(f"chunks must have shape {expected}, got {tuple(chunks.shape)}.")
        if channel_mask is None:
            return None
        check_type(channel_mask, torch.Tensor, "channel_mask")
        if channel_mask.dtype != torch.bool or channel_mask.shape != (len(chunks), self.n_chans):
            raise ValueError(f"channel_mask must be a bool tensor (batch={len(chunks)}, "
                             f"n_chans={self.n_chans}), got {channel_mask.dtype} "
                             f"{tuple(channel_mask.shape)}.")
        empty = ~channel_mask.any(1)
        if empty.any():
            raise ValueError(f"channel_mask has no channel present in sample "
                             f"{int(empty.nonzero()[0, 0])}; drop recordings with no channel "
                             "in common with the model.")
        return channel_mask

    def embed_chunks(self, chunks: torch.Tensor, channel_mask: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """Return the encoder's embedding of every chunk.

        Parameters
        ----------
        chunks : Tensor, shape (batch, n_chunks, n_chans, chunk_samples)
            Float chunks (absent channels zero-filled).
        channel_mask : Tensor of bool, shape (batch, n_chans) | None
            True where a channel is present; None: all present.

        Returns
        -------
        embeddings : Tensor, shape (batch, n_chunks, embed_dim)
        """
        channel_mask = self._check_chunks(chunks, channel_mask)
        batch, n_chunks = chunks.shape[:2]
        flat = chunks.reshape(batch * n_chunks, self.n_chans, self.chunk_samples)
        if channel_mask is not None:
            channel_mask = channel_mask.repeat_interleave(n_chunks, 0)
        return self.encoder(flat, channel_mask).view(batch, n_chunks, self.embed_dim)

    def _gpt_inputs(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.in_proj(embeddings)

    def pretraining_loss(self, chunks: torch.Tensor, channel_mask: torch.Tensor | None = None
                         ) -> torch.Tensor:
        """Causal masked chunk reconstruction loss (mean squared error, a scalar).

        Parameters
        ----------
        chunks : Tensor, shape (batch, n_chunks, n_chans, chunk_samples)
            At least 2 and at most ``n_positions`` chunks (see the module docstring).
        channel_mask : Tensor of bool, shape (batch, n_chans) | None
            True where a channel is present; None: all present.

        Returns
        -------
        loss : Tensor, shape ()
            Mean over masked positions ``1 .. n_chunks-1``, samples and embedding features of
            the squared difference between the GPT's prediction and the (detached) encoder
            embedding of the masked chunk.
        """
        predictions, targets = self.masked_predictions(chunks, channel_mask)
        return F.mse_loss(predictions, targets)

    def masked_predictions(self, chunks: torch.Tensor,
                           channel_mask: torch.Tensor | None = None
                           ) -> tuple[torch.Tensor, torch.Tensor]:
        """GPT predictions of masked chunks 1 .. n_chunks-1 and their targets.

        Returns
        -------
        predictions, targets : Tensor, shape (batch, n_chunks - 1, embed_dim)
            ``predictions[:, i - 1]``: the output at chunk ``i`` masked, with chunks ``0 ..
            i-1`` visible; ``targets[:, i - 1]``: the encoder's embedding of chunk ``i``
            (detached).
        """
        if self.finetune is not None:
            raise RuntimeError(f"This NeuroGPT was built for fine-tuning (finetune="
                               f"{self.finetune!r}) and has no mask token; build the "
                               "pretraining model with finetune=None.")
        self._check_chunks(chunks, channel_mask)
        if not 2 <= chunks.shape[1] <= self.n_positions:
            raise ValueError(f"Pretraining needs sequences of 2 to n_positions="
                             f"{self.n_positions} chunks, got chunks of shape "
                             f"{tuple(chunks.shape)}.")
        embeddings = self.embed_chunks(chunks, channel_mask)  # (B, N, D)
        batch, n, _ = embeddings.shape
        real = self._gpt_inputs(embeddings)
        masks = self._gpt_inputs(self.mask_token.expand(batch, n - 1, self.embed_dim))
        tokens = torch.cat([real, masks], 1)
        device = tokens.device
        positions = torch.cat([torch.arange(n, device=device),
                               torch.arange(1, n, device=device)])
        # real chunk j attends to real chunks <= j; mask token i to real chunks < i and itself
        rows = torch.arange(2 * n - 1, device=device)
        query_pos = positions[:, None]
        key_is_real = rows[None, :] < n
        allowed = (key_is_real & (rows[None, :] <= query_pos) & (rows[:, None] < n)) | (
            key_is_real & (rows[None, :] < query_pos) & (rows[:, None] >= n)) | (
            rows[:, None] == rows[None, :])
        hidden = self.gpt(tokens, positions, allowed)
        predictions = self.out_proj(hidden[:, n:])
        return predictions, embeddings[:, 1:].detach()

    # -- classification ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits ``(batch, n_outputs)`` of windows ``(batch, n_chans, n_times)``."""
        self._check_input(x)
        if self.finetune is None:
            raise RuntimeError("This NeuroGPT is a pretraining model (finetune=None): it has no "
                               "classification head. Save it with save_pretrained and build a "
                               "fine-tuning model with NeuroGPT.from_pretrained(fname, "
                               "n_outputs, n_times, finetune='encoder_gpt').")
        # a channel that is zero throughout the window is absent (fine-tuning data mapped
        # onto the model's channels, bci.models.decoder.apply_channel_map): masked, as in
        # pretraining; a window with no channel at all keeps every channel
        mask = x.ne(0).any(-1)
        mask[~mask.any(1)] = True
        embeddings = self.embed_chunks(self.split_chunks(x),
                                       None if bool(mask.all()) else mask)  # (B, N, D)
        if self.finetune != "encoder_gpt":
            return self.head(embeddings.flatten(1))
        batch = len(x)
        tokens = torch.cat([embeddings, self.cls_token.expand(batch, 1, self.embed_dim)], 1)
        n = tokens.shape[1]
        positions = torch.arange(n, device=x.device)
        causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
        hidden = self.gpt(self._gpt_inputs(tokens), positions, causal)
        return self.head(self.pooler(hidden[:, -1]))

    def train(self, mode: bool = True) -> NeuroGPT:
        """Set training mode; a linear probe's frozen encoder stays in eval mode."""
        super().train(mode)
        if self.finetune == "linear":
            self.encoder.eval()
        return self

    # -- pretrained weights --------------------------------------------------------------------
    def _shared_prefixes(self) -> tuple[str, ...]:
        """State-dict prefixes a fine-tuning model takes from a pretraining model."""
        if self.finetune in (None, "encoder_gpt"):
            return ("encoder.", "in_proj.", "gpt.")
        return ("encoder.",)

    def load_pretrained(self, fname: str | Path) -> NeuroGPT:
        """Load the encoder (and GPT) weights of a pretrained NeuroGPT network file.

        Parameters
        ----------
        fname : str | Path
            File written by :func:`save_pretrained`.

        Returns
        -------
        self : NeuroGPT

        Raises
        ------
        FileNotFoundError
            No such file.
        ValueError
            A damaged, truncated or edited file, not a NeuroGPT, or a NeuroGPT of another
            architecture (the message names every key that differs).
        """
        from .decoder import load_network

        path = Path(fname)
        other = load_network(path)
        if not isinstance(other, NeuroGPT):
            raise ValueError(f"{path} holds a {type(other).__name__}, not a NeuroGPT; pretrain "
                             "a NeuroGPT and save it with save_pretrained.")
        mine, theirs = self.get_config(), other.get_config()
        differ = [f"{key} (file {theirs[key]!r}, model {mine[key]!r})"
                  for key in ARCHITECTURE_KEYS if mine[key] != theirs[key]]
        if differ:
            raise ValueError(
                f"{path} holds a NeuroGPT of another configuration: {'; '.join(differ)}. "
                "Build the model with the file's architecture (NeuroGPT.from_pretrained does), "
                "and give it windows at the file's sfreq and channels."
            )
        prefixes = self._shared_prefixes()
        state = {k: v for k, v in other.state_dict().items() if k.startswith(prefixes)}
        missing = sorted(k for k in self.state_dict() if k.startswith(prefixes)
                         and k not in state)
        if missing:
            raise ValueError(f"{path} has no GPT weights ({len(missing)} tensors missing, e.g. "
                             f"{missing[0]}): it was saved from a NeuroGPT without a GPT; "
                             "fine-tune it with finetune='encoder' or 'linear', or save the "
                             "pretraining model (finetune=None).")
        self.load_state_dict(state, strict=False)
        self.pretrained_file = str(path)
        logger.info("Loaded pretrained NeuroGPT weights (%s) from %s", ", ".join(prefixes),
                    path)
        return self

    @classmethod
    def from_pretrained(cls, fname: str | Path, n_outputs: int, n_times: int, *,
                        finetune: Literal["encoder_gpt", "encoder", "linear"] = "encoder_gpt",
                        **overrides: Any) -> NeuroGPT:
        """Build a fine-tuning model with a pretrained file's architecture and weights.

        Parameters
        ----------
        fname : str | Path
            File written by :func:`save_pretrained`.
        n_outputs, n_times : int
            Classes and samples per window of the fine-tuning task (at the file's sfreq).
        finetune : "encoder_gpt" | "encoder" | "linear"
            Fine-tuning strategy.
        **overrides
            Non-architecture keywords (``overlap_s``, ``drop_prob``, ``gpt_drop_prob``,
            ``batch_norm_momentum``).

        Returns
        -------
        model : NeuroGPT
        """
        config = pretrained_config(fname)
        bad = sorted(set(overrides) & {*ARCHITECTURE_KEYS, "pretrained"})
        if bad:
            raise ValueError(f"{', '.join(bad)} come from the pretrained file and cannot be "
                             "overridden.")
        config.update(overrides, n_outputs=n_outputs, n_times=n_times, finetune=finetune)
        n_chans = config.pop("n_chans")
        return cls(n_chans, config.pop("n_outputs"), config.pop("n_times"), **config,
                   pretrained=fname)

    @classmethod
    def from_named_config(cls, name: Literal["paper", "small"], *, n_outputs: int = 2,
                          n_times: int | None = None,
                          finetune: Literal["encoder_gpt", "encoder", "linear"] | None = None,
                          **overrides: Any) -> NeuroGPT:
        """Build a model in a named configuration (:data:`NEUROGPT_CONFIGS`).

        Parameters
        ----------
        name : "paper" | "small"
            The configuration.
        n_outputs : int
            Classes (unused by a pretraining model).
        n_times : int | None
            Samples per window; None: the configuration's ``n_chunks`` chunks.
        finetune : "encoder_gpt" | "encoder" | "linear" | None
            None (default) builds the pretraining model.
        **overrides
            Other constructor keywords.

        Returns
        -------
        model : NeuroGPT
        """
        check_option("configuration", name, NEUROGPT_CONFIGS)
        config = {**NEUROGPT_CONFIGS[name], **overrides}
        n_chunks = config.pop("n_chunks")
        chunk = _samples(config["chunk_s"], config["sfreq"], "chunk_s")
        overlap = _samples(config["overlap_s"], config["sfreq"], "overlap_s")
        if n_times is None:
            n_times = n_chunks * (chunk - overlap) + overlap
        n_chans = config.pop("n_chans")
        return cls(n_chans, n_outputs, n_times, finetune=finetune, **config)


def pretrained_config(fname: str | Path) -> dict[str, Any]:
    """Return the architecture of a pretrained NeuroGPT file (:data:`ARCHITECTURE_KEYS`).

    Parameters
    ----------
    fname : str | Path
        File written by :func:`save_pretrained`.

    Returns
    -------
    config : dict
        ``n_chans``, ``sfreq``, ``chunk_s``, ``overlap_s`` and the architecture keywords.
    """
    from .decoder import load_network

    model = load_network(fname)
    if not isinstance(model, NeuroGPT):
        raise ValueError(f"{fname} holds a {type(model).__name__}, not a NeuroGPT.")
    config = model.get_config()
    return {key: config[key] for key in (*ARCHITECTURE_KEYS, "overlap_s")}


def save_pretrained(model: NeuroGPT, fname: str | Path, *, info: Mapping | None = None
                    ) -> Path:
    """Write a (pretrained) NeuroGPT's configuration and weights to a network file.

    The network-file container of :func:`bci.models.decoder.save_network`: a zip with a JSON
    manifest (model name, ``get_config()``, checksums) and the ``state_dict`` read back with
    ``torch.load(weights_only=True)`` (no pickle); written to ``fname + ".part"`` and renamed,
    so an interrupted save never leaves a partial file under ``fname``, and a previous file
    there stays intact until the new one is complete.

    Parameters
    ----------
    model : NeuroGPT
        Usually a pretraining model (``finetune=None``); a fine-tuning model with
        ``"encoder_gpt"`` works too.
    fname : str | Path
        Destination.
    info : dict | None
        JSON-serialisable provenance (data, steps, losses...).

    Returns
    -------
    fname : Path
    """
    from .decoder import save_network

    check_type(model, NeuroGPT, "model")
    return save_network(model, fname, info=dict(info or {}))
