"""A channel-agnostic intracranial decoder: :class:`ContactSetNet`, and the contact layout.

sEEG and ECoG patients each have their own electrodes: a network with one input weight per
channel (EEGNet's spatial filters) cannot be trained on one patient and applied to another.
:class:`ContactSetNet` treats a recording as a *set of contacts*, each labelled with a brain
region:

1. one temporal encoder, shared by every contact (two convolutions with BatchNorm, then the log
   power of each filter over the window), turns each contact's signal into an embedding, to
   which a learned embedding of the contact's region is added;
2. ``pooling="region"`` (as Du-IN's region-level embeddings) averages the contacts of each region
   into one region token; ``pooling="contact"`` (as MVPFormer's channel-set-independent
   attention) keeps one token per contact;
3. self-attention over the tokens (absent contacts and regions masked out), a masked mean over
   them and a linear classifier.

No weight belongs to a contact: the output does not change when the contacts are permuted
together with their regions, and a subject with any number of contacts in any of the trained
regions is accepted.

Contacts enter in two ways:

- :meth:`ContactSetNet.forward`, the standard ``(batch, n_chans, n_times)`` entry that
  :mod:`bci.models.training` and :class:`~bci.models.classifier.DeepClassifier` use: the
  ``n_chans`` inputs are *slots*, slot ``i`` holds a contact of region ``contact_regions[i]``,
  and a slot whose samples are all exactly 0 is an absent contact. :func:`place_contacts` puts a
  subject's contacts into the slots of a layout (:func:`slot_layout`), zero-filling the others,
  so subjects with different electrodes share one training set.
- :meth:`ContactSetNet.forward_contacts`: any number of contacts, with region indices and an
  optional mask given explicitly.

The region of each contact is explicit: :func:`contact_regions_from_names` reads it from a
``{channel or electrode name: region}`` dict. A subject none of whose contacts lies in a trained
region cannot be decoded and raises ``ValueError`` naming the subject, its regions and the
trained ones.

References
----------
Du-IN: sEEG speech decoding with region-level multi-channel embeddings and discrete-codebook
masked modelling (Zheng et al., NeurIPS 2024).
MVPFormer: an iEEG foundation model whose multi-variate parallel attention handles a different
channel set for every subject.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_fraction, check_option, check_type, ensure_int
from .base import MOMENTUM_HINT, EEGModule

__all__ = ["POOLINGS", "ContactSetNet", "contact_regions_from_names", "place_contacts",
           "slot_layout"]

logger = logging.getLogger(__name__)

#: Token kinds of :class:`ContactSetNet`: one token per region (Du-IN) or per contact (MVPFormer).
POOLINGS = ("region", "contact")
#: Region of every slot when ``contact_regions`` is None: one region, a plain set of channels.
DEFAULT_REGION = "all"
_LOG_EPS = 1e-6


def _check_regions(values, name: str) -> tuple[str, ...]:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of region names (str), got "
                        f"{type(values).__name__}.")
    out = []
    for value in values:
        check_type(value, str, f"each item of {name}")
        if not value:
            raise ValueError(f"{name} holds an empty region name; name every region.")
        out.append(value)
    return tuple(out)


class _Block(nn.Module):
    """Pre-norm self-attention and MLP over tokens ``(batch, n_tokens, emb_dim)``."""

    def __init__(self, emb_dim: int, n_heads: int, drop_prob: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(emb_dim)
        self.attn = nn.MultiheadAttention(emb_dim, n_heads, dropout=drop_prob, batch_first=True)
        self.norm2 = nn.LayerNorm(emb_dim)
        self.mlp = nn.Sequential(nn.Linear(emb_dim, 2 * emb_dim), nn.GELU(),
                                 nn.Dropout(drop_prob), nn.Linear(2 * emb_dim, emb_dim))
        self.drop = nn.Dropout(drop_prob)

    def forward(self, tokens: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        h = self.norm1(tokens)
        h, _ = self.attn(h, h, h, key_padding_mask=~present, need_weights=False)
        tokens = tokens + self.drop(h)
        return tokens + self.drop(self.mlp(self.norm2(tokens)))


class ContactSetNet(EEGModule):
    """Channel-agnostic decoder of sets of intracranial contacts labelled with brain regions.

    Parameters
    ----------
    n_chans : int
        Number of input slots of :meth:`forward` (contacts of the largest layout; absent
        contacts are all-zero slots).
    n_outputs : int
        Number of outputs (classes).
    n_times : int
        Samples per window; at least :attr:`min_n_times` (``3 * kernel_size - 2``).
    sfreq : float | None
        Sampling rate (Hz); stored. Kernel sizes are in samples.
    contact_regions : sequence of str | None
        Region of each of the ``n_chans`` slots (the layout, e.g. from :func:`slot_layout`);
        the trained regions :attr:`regions` are its distinct names in order of first
        appearance. None: every slot in one region ``"all"`` (a plain set of channels).
    pooling : "region" | "contact"
        ``"region"``: average the contacts of each region into one token (Du-IN's
        region-level embedding); ``"contact"``: one token per contact (MVPFormer's
        channel-set-independent attention).
    n_filters : int
        Temporal filters of the per-contact encoder (16).
    kernel_size : int
        Samples of each of its two temporal convolutions (15; the second is dilated by 2).
    emb_dim : int
        Token size (32); a multiple of ``n_heads``.
    n_heads : int
        Attention heads (4).
    n_layers : int
        Attention blocks (1; 0 gives a pure pooling model).
    drop_prob : float
        Dropout probability (0.25).
    batch_norm_momentum : float
        Momentum of the encoder's BatchNorm, torch convention (0.1). BatchNorm statistics are
        taken over the present contacts only.

    Attributes
    ----------
    regions : tuple of str
        Trained regions, in the order of the region embedding's rows.

    Notes
    -----
    Permuting the contacts together with their regions leaves the output unchanged (up to
    floating-point summation order), and an absent contact (all-zero slot, or ``mask`` False
    in :meth:`forward_contacts`) changes nothing: the encoder runs on the present contacts
    only, attention ignores absent tokens and the final mean is over present tokens.

    Examples
    --------
    >>> import torch
    >>> model = ContactSetNet(4, 2, 128, contact_regions=["hippocampus", "hippocampus",
    ...                                                   "amygdala", "insula"])
    >>> model.regions
    ('hippocampus', 'amygdala', 'insula')
    >>> x = torch.randn(3, 4, 128)
    >>> x[:, 3] = 0.0  # no insula contact in these windows
    >>> model.eval()(x).shape
    torch.Size([3, 2])
    """

    def __init__(
        self,
        n_chans: int,
        n_outputs: int,
        n_times: int,
        *,
        sfreq: float | None = None,
        contact_regions: Sequence[str] | None = None,
        pooling: Literal["region", "contact"] = "region",
        n_filters: int = 16,
        kernel_size: int = 15,
        emb_dim: int = 32,
        n_heads: int = 4,
        n_layers: int = 1,
        drop_prob: float = 0.25,
        batch_norm_momentum: float = 0.1,
    ) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        if contact_regions is None:
            self.contact_regions = None
            slots = (DEFAULT_REGION,) * self.n_chans
        else:
            self.contact_regions = _check_regions(contact_regions, "contact_regions")
            slots = self.contact_regions
            if len(slots) != self.n_chans:
                raise ValueError(f"contact_regions must name the region of each of the "
                                 f"n_chans={self.n_chans} slots, got {len(slots)} names.")
        self.pooling = check_option("pooling", pooling, POOLINGS)
        self.n_filters = ensure_int(n_filters, "n_filters", minimum=1)
        self.kernel_size = ensure_int(kernel_size, "kernel_size", minimum=1, what="samples")
        self.emb_dim = ensure_int(emb_dim, "emb_dim", minimum=1)
        self.n_heads = ensure_int(n_heads, "n_heads", minimum=1)
        self.n_layers = ensure_int(n_layers, "n_layers", minimum=0)
        if self.emb_dim % self.n_heads:
            raise ValueError(f"emb_dim={self.emb_dim} must be a multiple of n_heads="
                             f"{self.n_heads}.")
        self.drop_prob = check_fraction(drop_prob, "drop_prob", kind="probability")
        self.batch_norm_momentum = check_fraction(batch_norm_momentum, "batch_norm_momentum",
                                                  allow_one=True, hint=MOMENTUM_HINT)
        self._check_n_times()
        self.regions = tuple(dict.fromkeys(slots))
        self.register_buffer("slot_region_ids", torch.tensor(
            [self.regions.index(r) for r in slots], dtype=torch.long), persistent=False)

        k, n_f = self.kernel_size, self.n_filters
        self.conv1 = nn.Conv1d(1, n_f, k, bias=False)
        self.bn1 = nn.BatchNorm1d(n_f, momentum=self.batch_norm_momentum)
        self.conv2 = nn.Conv1d(n_f, n_f, k, dilation=2, bias=False)
        self.bn2 = nn.BatchNorm1d(n_f, momentum=self.batch_norm_momentum)
        self.embed = nn.Linear(n_f, self.emb_dim)
        self.region_embedding = nn.Embedding(len(self.regions), self.emb_dim)
        self.blocks = nn.ModuleList(_Block(self.emb_dim, self.n_heads, self.drop_prob)
                                    for _ in range(self.n_layers))
        self.norm = nn.LayerNorm(self.emb_dim)
        self.drop = nn.Dropout(self.drop_prob)
        self.classifier = nn.Linear(self.emb_dim, self.n_outputs)
        nn.init.normal_(self.region_embedding.weight, std=0.02)

    def _fits(self, n_times: int) -> bool:
        return n_times >= 3 * self.kernel_size - 2

    # -- the per-contact encoder ---------------------------------------------------------------
    def encode_contacts(self, signals: torch.Tensor) -> torch.Tensor:
        """Embed contacts one by one with the shared temporal encoder.

        Parameters
        ----------
        signals : torch.Tensor
            ``(n_contacts, n_times)`` float signals of present contacts (any batches flattened).

        Returns
        -------
        embeddings : torch.Tensor
            ``(n_contacts, emb_dim)``, without the region embedding.
        """
        h = F.gelu(self.bn1(self.conv1(signals[:, None, :])))
        h = self.bn2(self.conv2(h))
        power = torch.log(h.square().mean(-1) + _LOG_EPS)  # (n_contacts, n_filters)
        return F.gelu(self.embed(power))

    # -- entries -------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of windows laid out in this model's slots.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_chans, n_times)`` float32; slot ``i`` holds a contact of region
            ``contact_regions[i]``, and a slot whose samples are all exactly 0 is absent
            (unless every slot of the window is 0: a flat window, whose slots all count).

        Returns
        -------
        logits : torch.Tensor
            ``(batch, n_outputs)``, no softmax.
        """
        self._check_input(x)
        present = (x != 0).any(-1)
        # a window that is zero everywhere is a flat recording, not a subject without contacts
        # (place_contacts refuses those): all its slots count as present
        present = present | ~present.any(1, keepdim=True)
        return self.forward_contacts(x, self.slot_region_ids, present)

    def forward_contacts(self, x: torch.Tensor, region_ids: torch.Tensor,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of windows with any number of contacts.

        Parameters
        ----------
        x : torch.Tensor
            ``(batch, n_contacts, n_times)`` float signals; ``n_contacts`` is free.
        region_ids : torch.Tensor
            ``(n_contacts,)`` or ``(batch, n_contacts)`` integer index of each contact's region
            in :attr:`regions`; -1 marks a contact outside the trained regions (ignored).
        mask : torch.Tensor | None
            ``(batch, n_contacts)`` bool, True for present contacts; None: all present.

        Returns
        -------
        logits : torch.Tensor
            ``(batch, n_outputs)``, no softmax.

        Raises
        ------
        ValueError
            Wrong shapes, region indices out of range, or a window with no present contact in
            a trained region.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x must be a floating-point torch.Tensor (batch, n_contacts, "
                            f"n_times), got {getattr(x, 'dtype', type(x).__name__)}.")
        if x.ndim != 3 or x.shape[2] != self.n_times:
            raise ValueError(f"x must have shape (batch, n_contacts, n_times={self.n_times}), "
                             f"got {tuple(x.shape)}.")
        batch, n_contacts, _ = x.shape
        region_ids = torch.as_tensor(region_ids, device=x.device)
        if region_ids.dtype.is_floating_point or region_ids.dtype == torch.bool:
            raise TypeError(f"region_ids must be integers, got {region_ids.dtype}.")
        if region_ids.ndim == 1:
            region_ids = region_ids.expand(batch, -1)
        if tuple(region_ids.shape) != (batch, n_contacts):
            raise ValueError(f"region_ids must have shape (n_contacts={n_contacts},) or (batch="
                             f"{batch}, n_contacts={n_contacts}), got "
                             f"{tuple(region_ids.shape)}.")
        n_regions = len(self.regions)
        if ((region_ids < -1) | (region_ids >= n_regions)).any():
            raise ValueError(f"region_ids must lie in [-1, {n_regions - 1}] (indices into the "
                             f"trained regions {list(self.regions)}, -1: none), got values "
                             f"from {int(region_ids.min())} to {int(region_ids.max())}.")
        present = region_ids >= 0
        if mask is not None:
            mask = torch.as_tensor(mask, device=x.device)
            if mask.dtype != torch.bool or tuple(mask.shape) != (batch, n_contacts):
                raise ValueError(f"mask must be a bool tensor of shape (batch={batch}, "
                                 f"n_contacts={n_contacts}), got {mask.dtype} "
                                 f"{tuple(mask.shape)}.")
            present = present & mask
        empty = ~present.any(1)
        if empty.any():
            raise ValueError(
                f"Window {int(empty.nonzero()[0, 0])} of the batch has no contact in a trained "
                f"region (trained: {list(self.regions)}); the model cannot decode it. Map the "
                "subject's contacts to trained regions (contact_regions_from_names) or train "
                "on subjects with contacts in its regions."
            )
        emb = x.new_zeros(batch, n_contacts, self.emb_dim)
        emb[present] = self.encode_contacts(x[present])
        ids = region_ids.clamp(min=0)
        tokens = emb + self.region_embedding(ids)
        if self.pooling == "region":
            onehot = F.one_hot(ids, n_regions).to(x.dtype) * present[..., None].to(x.dtype)
            counts = onehot.sum(1)  # (batch, n_regions)
            tokens = torch.einsum("bcr,bcd->brd", onehot, tokens) / counts.clamp(min=1)[..., None]
            present = counts > 0
        for block in self.blocks:
            tokens = block(tokens, present)
        weights = present.to(x.dtype)[..., None]
        pooled = (tokens * weights).sum(1) / weights.sum(1)
        return self.classifier(self.drop(self.norm(pooled)))


# ---------------------------------------------------------------------------------------------
# contact layout
# ---------------------------------------------------------------------------------------------
def _electrode(ch_name: str) -> str:
    """Electrode (shaft) name of an sEEG contact: the name less its trailing contact number."""
    return re.sub(r"[\s_-]*\d+$", "", ch_name)


def contact_regions_from_names(ch_names: Sequence[str], regions: Mapping[str, str]
                               ) -> list[str | None]:
    """Region of each contact, from a ``{channel or electrode name: region}`` dict.

    A channel's region is ``regions[ch_name]`` when the dict names the channel, else
    ``regions[electrode]`` where the electrode (shaft) is the channel name less its trailing
    contact number (``"LAH3"`` -> ``"LAH"``, ``"TP-12"`` -> ``"TP"``, ``"B'4"`` -> ``"B'"``),
    else None (a contact
    outside every labelled region, e.g. white matter).

    Parameters
    ----------
    ch_names : sequence of str
        Contact names of one subject.
    regions : mapping of str to str
        Channel or electrode name -> region name.

    Returns
    -------
    contact_regions : list of str | None
        One entry per channel.

    Examples
    --------
    >>> contact_regions_from_names(["LAH1", "LAH2", "X1"], {"LAH": "hippocampus"})
    ['hippocampus', 'hippocampus', None]
    """
    ch_names = _check_regions(ch_names, "ch_names")
    check_type(regions, Mapping, "regions", hint="Pass {channel or electrode name: region}.")
    for key, value in regions.items():
        check_type(key, str, "each key of regions")
        check_type(value, str, f"regions[{key!r}]")
    return [regions.get(name, regions.get(_electrode(name))) for name in ch_names]


def slot_layout(subject_regions: Sequence[Sequence[str | None]]) -> tuple[str, ...]:
    """Slots that hold the contacts of every given subject: ``contact_regions`` of a model.

    Parameters
    ----------
    subject_regions : sequence of sequences of str | None
        Region of each contact, one sequence per subject (None: no region, not given a slot).

    Returns
    -------
    contact_regions : tuple of str
        For each region (in order of first appearance), as many slots as the most contacts
        any subject has in it.

    Examples
    --------
    >>> slot_layout([["hc", "hc", "amy"], ["amy", "amy", None]])
    ('hc', 'hc', 'amy', 'amy')
    """
    most: dict[str, int] = {}
    for regions in subject_regions:
        counts: dict[str, int] = {}
        for region in regions:
            if region is not None:
                check_type(region, str, "each region")
                counts[region] = counts.get(region, 0) + 1
        for region, count in counts.items():
            most[region] = max(most.get(region, 0), count)
    if not most:
        raise ValueError("No contact of any subject has a region; label the contacts first "
                         "(contact_regions_from_names).")
    return tuple(r for r, count in most.items() for _ in range(count))


def place_contacts(X, contact_regions: Sequence[str | None], layout: Sequence[str], *,
                   subject: str = "subject") -> np.ndarray:
    """Put one subject's contacts into the slots of a layout; absent slots are all zero.

    Parameters
    ----------
    X : array, shape (n_epochs, n_contacts, n_times)
        The subject's epochs; not modified.
    contact_regions : sequence of str | None
        Region of each contact (:func:`contact_regions_from_names`); None or a region
        outside ``layout``: the contact is left out (logged).
    layout : sequence of str
        Region of each slot (a model's ``contact_regions``, :func:`slot_layout`).
    subject : str
        Name used in the messages.

    Returns
    -------
    slots : ndarray of float32, shape (n_epochs, len(layout), n_times)
        Contacts in the slots of their region, in their order; the other slots are 0.

    Raises
    ------
    ValueError
        No contact of the subject lies in a region of ``layout`` (the subject cannot be
        decoded), or a region has more contacts than slots.
    """
    X = np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"X of {subject} must be 3-D (n_epochs, n_contacts, n_times), got "
                         f"shape {X.shape}.")
    layout = _check_regions(layout, "layout")
    contact_regions = list(contact_regions)
    if len(contact_regions) != X.shape[1]:
        raise ValueError(f"contact_regions of {subject} has {len(contact_regions)} entries for "
                         f"{X.shape[1]} contacts; give one region (or None) per contact.")
    trained = list(dict.fromkeys(layout))
    own = sorted({r for r in contact_regions if r is not None})
    if not set(own) & set(trained):
        raise ValueError(
            f"{subject} has no contact in a trained region: its regions are {own or 'none'}, "
            f"the model was trained on {trained}. Check the contact -> region mapping "
            "(contact_regions_from_names), or train a model whose subjects cover its regions."
        )
    free = {r: [i for i, s in enumerate(layout) if s == r] for r in trained}
    out = np.zeros((X.shape[0], len(layout), X.shape[2]), dtype=np.float32)
    dropped, filled = [], []
    for c, region in enumerate(contact_regions):
        if region not in free:
            dropped.append(c)
            continue
        if not free[region]:
            n_have = sum(r == region for r in contact_regions)
            raise ValueError(
                f"{subject} has {n_have} contacts in region {region!r}, the layout has "
                f"{layout.count(region)} slots for it. Build the layout with slot_layout over "
                "every subject (the model's weights do not depend on the number of slots), or "
                "use ContactSetNet.forward_contacts."
            )
        filled.append(free[region].pop(0))
        out[:, filled[-1]] = X[:, c]
    if dropped:
        logger.info("%s: %d contact(s) outside the trained regions left out (indices %s)",
                    subject, len(dropped), dropped)
    if filled and (~np.any(out[:, filled] != 0, axis=2)).any():
        logger.warning("%s: some placed contacts are all zero in some epochs; they count as "
                       "absent contacts.", subject)
    return out
