"""Label-preserving data augmentation of training batches for the deep decoders.

:class:`EpochAugmentation` transforms each training batch inside
:class:`~bci.models.training.DecoderModule` (never validation, test or prediction batches), on
the batch's device with torch's random generator, so a seeded training run stays reproducible.
The transforms are the usual ones for small EEG data sets (see Lotte 2015 for segment
recombination, Rommel et al. 2022 for a review):

- ``time_shift``: circular shift of every trial by a random number of samples;
- ``scale``: multiply every trial by a random gain;
- ``noise``: add white Gaussian noise;
- ``channel_dropout``: zero random channels;
- ``recombine``: segment recombination: cut the window into segments and take each segment from
  a random trial of the same class in the batch (classification only).
"""

from __future__ import annotations

import torch
from torch import nn

from .._checks import check_fraction, check_positive, check_real, ensure_int

__all__ = ["EpochAugmentation", "make_augmentation"]


class EpochAugmentation(nn.Module):
    """Random label-preserving transforms of a batch ``(batch, n_chans, n_times)``.

    Parameters
    ----------
    time_shift : float
        Largest circular shift, as a fraction of the window (``0.1``: up to ±10 % of
        ``n_times``, uniform over integers). Circular: what leaves one end enters the other.
    scale : float
        Gains are uniform in ``[1 - scale, 1 + scale]``, one per trial.
    noise : float
        Standard deviation of added white noise, relative to each trial's standard deviation.
    channel_dropout : float
        Probability that a channel of a trial is set to zero.
    recombine : int
        Number of segments of segment recombination (0 or 1: off). Each segment of each trial
        comes from a random trial of the same class in the batch (possibly itself).

    Examples
    --------
    >>> aug = EpochAugmentation(time_shift=0.1, noise=0.05)
    >>> x, y = torch.randn(8, 4, 100), torch.arange(8) % 2
    >>> xa, ya = aug(x, y)
    >>> xa.shape, bool((ya == y).all())
    (torch.Size([8, 4, 100]), True)
    """

    def __init__(self, *, time_shift: float = 0.0, scale: float = 0.0, noise: float = 0.0,
                 channel_dropout: float = 0.0, recombine: int = 0) -> None:
        super().__init__()
        self.time_shift = check_real(time_shift, "time_shift", low=0.0, high=0.5,
                                     high_inclusive=False, kind="fraction of the window")
        self.scale = check_fraction(scale, "scale")
        self.noise = check_positive(noise, "noise", allow_zero=True,
                                    unit="relative to each trial's standard deviation")
        self.channel_dropout = check_fraction(channel_dropout, "channel_dropout",
                                              kind="probability")
        self.recombine = ensure_int(recombine, "recombine", minimum=0, what="segments")

    def extra_repr(self) -> str:
        """Return the transform settings, for ``repr``."""
        return (f"time_shift={self.time_shift}, scale={self.scale}, noise={self.noise}, "
                f"channel_dropout={self.channel_dropout}, recombine={self.recombine}")

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the augmented batch and its (unchanged) targets."""
        if x.ndim != 3:
            raise ValueError(f"Expected a batch (batch, n_chans, n_times), got shape "
                             f"{tuple(x.shape)}.")
        n, n_chans, n_times = x.shape
        if self.recombine > 1:
            x = self._recombine(x, y)
        if self.time_shift > 0:
            max_shift = int(self.time_shift * n_times)
            if max_shift > 0:
                shifts = torch.randint(-max_shift, max_shift + 1, (n, 1, 1), device=x.device)
                index = (torch.arange(n_times, device=x.device) - shifts) % n_times
                x = x.gather(2, index.expand(n, n_chans, n_times))
        if self.scale > 0:
            gains = 1 + self.scale * (2 * torch.rand(n, 1, 1, device=x.device, dtype=x.dtype) - 1)
            x = x * gains
        if self.noise > 0:
            std = x.std(dim=(1, 2), keepdim=True)
            x = x + self.noise * std * torch.randn_like(x)
        if self.channel_dropout > 0:
            keep = torch.rand(n, n_chans, 1, device=x.device) >= self.channel_dropout
            x = x * keep.to(x.dtype)
        return x, y

    def _recombine(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if y.ndim != 1 or y.is_floating_point():
            raise ValueError("recombine needs class labels (classification); set recombine=0 "
                             "for regression.")
        n, _, n_times = x.shape
        bounds = torch.linspace(0, n_times, self.recombine + 1).round().long().tolist()
        out = torch.empty_like(x)
        for start, stop in zip(bounds[:-1], bounds[1:], strict=True):
            # for every trial, a random donor among the trials of its class
            scores = torch.rand(n, n, device=x.device).masked_fill(y[None, :] != y[:, None], -1)
            donors = scores.argmax(1)
            out[:, :, start:stop] = x[donors, :, start:stop]
        return out


def make_augmentation(spec: EpochAugmentation | dict | None) -> EpochAugmentation | None:
    """Return an :class:`EpochAugmentation` from keywords (``dict``), an instance, or None (off)."""
    if spec is None or isinstance(spec, EpochAugmentation):
        return spec
    if isinstance(spec, dict):
        return EpochAugmentation(**spec)
    raise TypeError(f"augmentation must be a dict of EpochAugmentation keywords, an "
                    f"EpochAugmentation or None, got {type(spec).__name__}.")
