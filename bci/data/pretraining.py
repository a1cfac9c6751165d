"""Channel mapping, signal preparation and chunking for self-supervised EEG pretraining.

The data side of Neuro-GPT (:class:`bci.models.neurogpt.NeuroGPT`). A pretraining sample is
``n_chunks`` chunks of ``chunk_s`` seconds cut from one continuous recording, consecutive chunks
overlapping by ``overlap_s`` (paper: 32 chunks of 2 s at 250 Hz overlapping by 0.2 s, i.e.
chunk ``k`` starts ``k * 450`` samples after the sample's start and one sample spans 14,450
samples, 57.8 s). Batches are dicts with ``"chunks"``, float32 ``(batch, n_chunks,
n_chans_model, chunk_samples)``, and ``"channel_mask"``, bool ``(batch, n_chans_model)``
(False: the recording lacks the channel; its rows are zeros).

**Channels.** The model's channel set is the paper's: the 22 channels of the Temple University
Hospital (TUH) EEG corpus's 10-20 montage that Neuro-GPT pretrains on, in the order of the
authors' public code (``reorder_channels`` in ``src/batcher/base.py`` of wenhui0206/NeuroGPT):
:data:`NEUROGPT_CHANNELS`. ``T1``/``T2`` are TUH's anterior temporal electrodes (not 10-10
sites); the old temporal names ``T3``/``T4``/``T5``/``T6`` are ``T7``/``T8``/``P7``/``P8`` in
the 10-10 system, and :func:`map_channels` matches either. A recording's channel is matched by
name only (case-insensitive, after removing an ``"EEG "`` prefix, trailing dots and a reference
suffix such as ``"-REF"``/``"-LE"``); a model channel no recording channel matches is *absent*:
its rows are zeros and its mask entry False. No signal is interpolated or invented (the authors
map BCI IV 2a onto the TUH montage with a fixed 22 x 22 matrix; here an absent channel stays
absent, so Kalunga2016's 8 occipital electrodes give O1, Oz and O2 and nothing frontal).

**Signal.** Every recording goes through the same steps (:func:`prepare_raw`): its EEG channels
(``info["bads"]`` excluded) are mapped; the present ones are band-pass filtered between
``l_freq`` and ``h_freq`` (default 0.5-45 Hz: below both mains frequencies, 50 Hz in Europe and
60 Hz in the US, and below the Nyquist frequency of every rate used, so every dataset keeps the
same band whatever its original rate) with MNE's default zero-phase FIR filter (firwin, Hamming
window, automatic transition bands and length), then resampled to ``sfreq`` with
:meth:`mne.io.Raw.resample` (FFT method, MNE's default). Volts are then scaled per recording and
channel to a robust z-score, ``(x - median) / (IQR / 1.349)`` (the IQR of a Gaussian is 1.349
standard deviations, so clean EEG gets unit variance while artefacts do not set the scale), and
clipped to ``+-clip`` (default 20). The authors z-score each channel of each recording (mean and
standard deviation); the public code reads TUH already preprocessed, so its filter is not known
from the code. A flat channel (zero IQR) is treated as absent.

Fine-tuning data meant for a pretrained model should see the same channels and band:
:meth:`ChannelMapping.apply` maps epochs ``(n_epochs, n_chans, n_times)`` too.

**Recordings** come from the sources of :mod:`bci.data.pretraining_corpus`, prepared once into
a cache of float32 files one subject at a time
(:class:`~bci.data.pretraining_corpus.PretrainingCorpus`), and are read as samples by
:mod:`bci.data.pretraining_datamodule` (``ChunkDataset``, ``PretrainingDataModule``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .._checks import check_positive, check_type, ensure_int
from .._logging import logger

__all__ = ["CHANNEL_ALIASES", "NEUROGPT_CHANNELS", "ChannelMapping", "ChunkSpec",
           "RecordingTooShortError", "map_channels", "prepare_raw", "robust_scale"]

#: The model's channels: the paper's 22-channel TUH 10-20 montage, in the authors' order.
NEUROGPT_CHANNELS: tuple[str, ...] = (
    "Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T1", "T3", "C3", "Cz", "C4", "T4", "T2", "T5",
    "P3", "Pz", "P4", "T6", "O1", "Oz", "O2",
)

#: 10-10 names of the old 10-20 temporal sites (same electrode positions).
CHANNEL_ALIASES: dict[str, str] = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}

_REFERENCE_SUFFIX = re.compile(r"-(REF|LE|AR|AVG|A1|A2|M1|M2)$", re.IGNORECASE)


def _canonical(name: str) -> str:
    """Upper-case 10-20 key of a channel name (``"EEG T7-REF"`` -> ``"T3"``)."""
    key = name.strip()
    if key.upper().startswith("EEG "):
        key = key[4:].strip()
    key = _REFERENCE_SUFFIX.sub("", key).rstrip(".").strip().upper()
    return CHANNEL_ALIASES.get(key, key)


# --------------------------------------------------------------------------------------------
# channel mapping
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ChannelMapping:
    """How one recording's channels map onto the model's channel set.

    Attributes
    ----------
    channels : tuple of str
        The model's channels, in model order.
    ch_names : tuple of str
        The recording's EEG channels, in recording order.
    picks : ndarray of int, shape (n_chans_model,)
        For each model channel, the index of its recording channel in ``ch_names``, or -1
        when absent.
    """

    channels: tuple[str, ...]
    ch_names: tuple[str, ...]
    picks: np.ndarray = field(repr=False)

    @property
    def mask(self) -> np.ndarray:
        """Bool ``(n_chans_model,)``: True where the recording has the model channel."""
        return self.picks >= 0

    @property
    def present(self) -> dict[str, str]:
        """Model channel -> the recording channel that fills it."""
        return {c: self.ch_names[p] for c, p in zip(self.channels, self.picks, strict=True)
                if p >= 0}

    @property
    def absent(self) -> tuple[str, ...]:
        """Model channels the recording lacks (zero rows, mask False)."""
        return tuple(c for c, p in zip(self.channels, self.picks, strict=True) if p < 0)

    @property
    def dropped(self) -> tuple[str, ...]:
        """Recording channels that fill no model channel (not used)."""
        used = set(self.picks[self.picks >= 0].tolist())
        return tuple(n for i, n in enumerate(self.ch_names) if i not in used)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """Return ``data`` on the model's channels (e.g. fine-tuning epochs).

        Parameters
        ----------
        data : ndarray, shape (..., n_recording_chans, n_times)
            A recording ``(n_chans, n_times)`` or epochs ``(n_epochs, n_chans, n_times)``, in
            the order of ``ch_names``; not modified.

        Returns
        -------
        out : ndarray, shape (..., n_chans_model, n_times)
            Absent channels are zeros.
        """
        data = np.asarray(data)
        if data.ndim < 2 or data.shape[-2] != len(self.ch_names):
            raise ValueError(f"data must be (..., n_chans={len(self.ch_names)}, n_times), got "
                             f"shape {data.shape}.")
        out = np.zeros((*data.shape[:-2], len(self.channels), data.shape[-1]), dtype=data.dtype)
        out[..., self.mask, :] = data[..., self.picks[self.mask], :]
        return out


def _check_channels(channels: Sequence[str]) -> tuple[str, ...]:
    if isinstance(channels, str) or not isinstance(channels, Sequence) or not channels:
        raise TypeError(f"channels must be a non-empty sequence of channel names, e.g. "
                        f"NEUROGPT_CHANNELS, got {channels!r}.")
    channels = tuple(channels)
    for c in channels:
        check_type(c, str, "a channel name")
    keys = [_canonical(c) for c in channels]
    dup = sorted({c for c, k in zip(channels, keys, strict=True) if keys.count(k) > 1})
    if dup:
        raise ValueError(f"The model's channels name the same electrode twice: {dup} (T3/T7, "
                         "T4/T8, T5/P7 and T6/P8 are one electrode each); list each once.")
    return channels


def map_channels(ch_names: Sequence[str], channels: Sequence[str] = NEUROGPT_CHANNELS
                 ) -> ChannelMapping:
    """Map a recording's channel names onto the model's channel set.

    Names match case-insensitively, after removing an ``"EEG "`` prefix, trailing dots (EDF
    names such as ``"C3.."``) and a reference suffix (``"-REF"``, ``"-LE"``, ``"-AR"``...);
    ``T3``/``T7``, ``T4``/``T8``, ``T5``/``P7`` and ``T6``/``P8`` are the same electrode. When
    two recording channels match one model channel, the first is used and the other dropped.

    Parameters
    ----------
    ch_names : sequence of str
        The recording's EEG channel names.
    channels : sequence of str
        The model's channels (default: :data:`NEUROGPT_CHANNELS`).

    Returns
    -------
    mapping : ChannelMapping

    Raises
    ------
    ValueError
        No recording channel is among the model's channels (the message names both sets).

    Examples
    --------
    >>> m = map_channels(["Oz", "O1", "O2", "PO3", "POz", "PO7", "PO8", "PO4"])
    >>> sorted(m.present), m.dropped
    (['O1', 'O2', 'Oz'], ('PO3', 'POz', 'PO7', 'PO8', 'PO4'))
    """
    channels = _check_channels(channels)
    if isinstance(ch_names, str) or not isinstance(ch_names, Sequence):
        raise TypeError(f"ch_names must be a sequence of channel names, got {ch_names!r}.")
    ch_names = tuple(str(c) for c in ch_names)
    keys = [_canonical(c) for c in ch_names]
    picks = np.full(len(channels), -1, dtype=int)
    for i, c in enumerate(channels):
        key = _canonical(c)
        if key in keys:
            picks[i] = keys.index(key)
    if not (picks >= 0).any():
        raise ValueError(
            f"No channel of the recording {list(ch_names)} is among the model's channels "
            f"{list(channels)}: nothing to pretrain on. Use a recording with at least one of "
            "them, or give the model a channel set that includes the recording's channels.")
    return ChannelMapping(channels, ch_names, picks)


# --------------------------------------------------------------------------------------------
# geometry and preprocessing
# --------------------------------------------------------------------------------------------
def _n_samples(seconds: float, sfreq: float, name: str) -> int:
    n = seconds * sfreq
    if abs(n - round(n)) > 1e-6:
        raise ValueError(f"{name} * sfreq must be a whole number of samples, got {seconds} s * "
                         f"{sfreq} Hz = {n:g}; choose {name} as a multiple of 1/sfreq.")
    return int(round(n))


@dataclass(frozen=True)
class ChunkSpec:
    """Rate, chunk geometry, channels and filter of pretraining samples.

    Parameters
    ----------
    sfreq : float
        Model sampling rate (Hz); every recording is resampled to it.
    chunk_s : float
        Chunk length (s); ``chunk_s * sfreq`` must be whole.
    overlap_s : float
        Overlap of consecutive chunks (s), ``0 <= overlap_s < chunk_s``.
    n_chunks : int
        Chunks per sample.
    channels : tuple of str
        The model's channels.
    l_freq, h_freq : float
        Pass band of the filter (Hz), ``0 < l_freq < h_freq < sfreq / 2``.
    clip : float | None
        Robust z-scores are clipped to ``+-clip``; None: no clipping.
    """

    sfreq: float = 250.0
    chunk_s: float = 2.0
    overlap_s: float = 0.2
    n_chunks: int = 32
    channels: tuple[str, ...] = NEUROGPT_CHANNELS
    l_freq: float = 0.5
    h_freq: float = 45.0
    clip: float | None = 20.0

    def __post_init__(self) -> None:  # noqa: D105
        sfreq = check_positive(self.sfreq, "sfreq", unit="Hz")
        chunk_s = check_positive(self.chunk_s, "chunk_s", unit="s")
        overlap_s = check_positive(self.overlap_s, "overlap_s", unit="s", allow_zero=True)
        if overlap_s >= chunk_s:
            raise ValueError(f"overlap_s must be smaller than chunk_s={chunk_s} (s), got "
                             f"{overlap_s}.")
        object.__setattr__(self, "sfreq", sfreq)
        object.__setattr__(self, "chunk_s", chunk_s)
        object.__setattr__(self, "overlap_s", overlap_s)
        object.__setattr__(self, "n_chunks", ensure_int(self.n_chunks, "n_chunks", minimum=1))
        object.__setattr__(self, "channels", _check_channels(self.channels))
        _n_samples(chunk_s, sfreq, "chunk_s")
        _n_samples(overlap_s, sfreq, "overlap_s")
        l_freq = check_positive(self.l_freq, "l_freq", unit="Hz")
        h_freq = check_positive(self.h_freq, "h_freq", unit="Hz")
        if not l_freq < h_freq < sfreq / 2:
            raise ValueError(f"The pass band must satisfy 0 < l_freq < h_freq < sfreq / 2 = "
                             f"{sfreq / 2:g} Hz, got l_freq={l_freq:g}, h_freq={h_freq:g}.")
        object.__setattr__(self, "l_freq", l_freq)
        object.__setattr__(self, "h_freq", h_freq)
        if self.clip is not None:
            object.__setattr__(self, "clip", check_positive(self.clip, "clip",
                                                            unit="robust z-score"))

    @property
    def chunk_samples(self) -> int:
        """Samples per chunk."""
        return _n_samples(self.chunk_s, self.sfreq, "chunk_s")

    @property
    def step_samples(self) -> int:
        """Samples from one chunk's start to the next's (chunk minus overlap)."""
        return self.chunk_samples - _n_samples(self.overlap_s, self.sfreq, "overlap_s")

    @property
    def sample_samples(self) -> int:
        """Samples one pretraining sample spans: ``chunk + (n_chunks - 1) * step``."""
        return self.chunk_samples + (self.n_chunks - 1) * self.step_samples

    @property
    def n_chans(self) -> int:
        """Number of model channels."""
        return len(self.channels)

    def chunk_starts(self, offset: int = 0) -> np.ndarray:
        """First sample of each chunk of the sample starting at ``offset``, ``(n_chunks,)``."""
        return offset + self.step_samples * np.arange(self.n_chunks)

    def cut(self, data: np.ndarray, offset: int) -> np.ndarray:
        """Chunks ``(n_chunks, n_chans, chunk_samples)`` of ``data`` ``(n_chans, n_times)``.

        The sample starts at sample ``offset``; a copy, as float32.
        """
        n_times = data.shape[-1]
        if not 0 <= offset <= n_times - self.sample_samples:
            raise ValueError(f"offset must be in [0, {n_times - self.sample_samples}] for a "
                             f"recording of {n_times} samples, got {offset}.")
        idx = self.chunk_starts(offset)[:, None] + np.arange(self.chunk_samples)
        return np.ascontiguousarray(np.asarray(data[:, idx]).transpose(1, 0, 2),
                                    dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain parameters (JSON-serialisable)."""
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    def key(self) -> str:
        """Short hash of the parameters that change prepared signals (cache folder name)."""
        d = self.to_dict()
        for k in ("chunk_s", "overlap_s", "n_chunks"):  # chunking happens on reading
            d.pop(k)
        text = json.dumps(d, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def robust_scale(data: np.ndarray, clip: float | None = 20.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-row robust z-score ``(x - median) / (IQR / 1.349)``, clipped to ``+-clip``.

    Parameters
    ----------
    data : ndarray, shape (n_chans, n_times)
        Signals (any unit); not modified.
    clip : float | None
        Clip level; None: none.

    Returns
    -------
    scaled : ndarray of float32, shape (n_chans, n_times)
        Zero rows where a channel is flat (zero IQR).
    ok : ndarray of bool, shape (n_chans,)
        False for flat channels.
    """
    med = np.median(data, axis=1, keepdims=True)
    q75, q25 = np.percentile(data, [75, 25], axis=1, keepdims=True)
    scale = (q75 - q25) / 1.349
    ok = (scale[:, 0] > 0) & np.isfinite(scale[:, 0])
    out = np.zeros(data.shape, dtype=np.float32)
    out[ok] = (data[ok] - med[ok]) / scale[ok]
    if clip is not None:
        np.clip(out, -clip, clip, out=out)
    return out, ok


class RecordingTooShortError(ValueError):
    """A recording too short to be filtered or to give one pretraining sample."""


def prepare_raw(raw, spec: ChunkSpec) -> tuple[np.ndarray, np.ndarray, ChannelMapping]:
    """Map, filter, resample and scale one continuous recording (see the module docstring).

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording (volts); not modified (a copy of its mapped channels is processed).
    spec : ChunkSpec
        Channels, rate, pass band and clip level.

    Returns
    -------
    data : ndarray of float32, shape (n_chans_model, n_times)
        Robust z-scores at ``spec.sfreq``; zero rows for absent channels.
    mask : ndarray of bool, shape (n_chans_model,)
        True where the recording has the channel (and it is not flat).
    mapping : ChannelMapping
        The channel mapping of the recording's EEG channels.

    Raises
    ------
    ValueError
        No channel in common with the model, a rate too low for ``h_freq``, or NaN/inf in the
        signal; :class:`RecordingTooShortError` (a ``ValueError``) for a recording shorter than
        the band-pass filter (``6.6 s`` with ``l_freq=0.5``).
    """
    import mne

    check_type(raw, mne.io.BaseRaw, "raw")
    check_type(spec, ChunkSpec, "spec")
    eeg = mne.pick_types(raw.info, eeg=True, exclude="bads")
    mapping = map_channels([raw.ch_names[i] for i in eeg], spec.channels)
    if spec.h_freq >= raw.info["sfreq"] / 2:
        raise ValueError(f"A recording at {raw.info['sfreq']:g} Hz cannot be band-limited to "
                         f"h_freq={spec.h_freq:g} Hz (its Nyquist frequency is "
                         f"{raw.info['sfreq'] / 2:g} Hz); lower h_freq below it for every "
                         "dataset.")
    n_filter = len(mne.filter.create_filter(None, raw.info["sfreq"], spec.l_freq, spec.h_freq,
                                            verbose=False))
    if raw.n_times < n_filter:
        raise RecordingTooShortError(
            f"{raw.n_times / raw.info['sfreq']:g} s, shorter than the "
            f"{n_filter / raw.info['sfreq']:g}-s band-pass filter ({spec.l_freq:g}-"
            f"{spec.h_freq:g} Hz)")
    used = mapping.picks[mapping.mask]
    sub = raw.copy().pick([mapping.ch_names[i] for i in used]).load_data(verbose=False)
    sub.filter(spec.l_freq, spec.h_freq, picks="all", verbose=False)
    if sub.info["sfreq"] != spec.sfreq:
        sub.resample(spec.sfreq, verbose=False)
    data = sub.get_data()
    if not np.isfinite(data).all():
        raise ValueError("The recording holds NaN or inf samples after filtering; drop or "
                         "repair them before pretraining.")
    scaled, ok = robust_scale(data, spec.clip)
    out = np.zeros((spec.n_chans, data.shape[1]), dtype=np.float32)
    rows = np.flatnonzero(mapping.mask)
    out[rows[ok]] = scaled[ok]
    mask = np.zeros(spec.n_chans, dtype=bool)
    mask[rows[ok]] = True
    if not ok.all():
        logger.warning("Flat channels treated as absent: %s",
                       [spec.channels[r] for r in rows[~ok]])
    return out, mask, mapping
