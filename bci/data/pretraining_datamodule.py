"""Pretraining samples as torch data (``ChunkDataset``, ``ChunkSampler``, a DataModule).

A map-style dataset over ``(recording, sample)`` pairs of prepared recordings
(:class:`bci.data.pretraining.PretrainingCorpus`), read from memory-mapped ``.npy`` files, so
that any number of data-loader workers (and Lightning's distributed sampler) can draw samples in
any order without loading a recording into memory. Items are dicts: ``"chunks"`` float32
``(n_chunks, n_chans_model, chunk_samples)`` and ``"channel_mask"`` bool ``(n_chans_model,)``;
the default collate stacks them into the batch format of
:meth:`bci.models.neurogpt.NeuroGPT.pretraining_loss`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch

from .._checks import check_fraction, check_option, check_positive, check_type, ensure_int
from .._logging import logger
from .datamodule import EpochSampler, _trainer_ranks, per_process_batch
from .pretraining import NEUROGPT_CHANNELS, ChunkSpec
from .pretraining_corpus import PretrainingCorpus, Recording, total_minutes

__all__ = ["OFFSETS", "ChunkDataset", "ChunkSampler", "PretrainingDataModule",
           "split_recordings"]

#: How a sample's first sample is chosen: on a fixed grid, or drawn at random (seeded).
OFFSETS = ("sequential", "random")


class ChunkDataset(torch.utils.data.Dataset):
    """Pretraining samples of prepared recordings.

    Recording ``r`` of ``n_times`` samples gives ``(n_times - span) // stride + 1`` items
    (``span = spec.sample_samples``). With ``offsets="sequential"`` item ``k`` of a recording
    starts at sample ``k * stride``; with ``"random"`` it starts at a sample drawn uniformly
    from ``[0, n_times - span]`` by a generator seeded with ``(seed, epoch, item)``, so a draw
    depends on nothing but those three numbers (not on the worker or on earlier draws).

    Parameters
    ----------
    recordings : sequence of Recording
        Prepared recordings (:meth:`PretrainingCorpus.prepare`).
    spec : ChunkSpec
        The chunk geometry they were prepared with.
    stride_s : float | None
        Seconds between the starts of consecutive items of a recording; None: one sample span
        (``spec.sample_samples / spec.sfreq``, items do not overlap).
    offsets : "sequential" | "random"
        Fixed grid or random starts (see above).
    seed : int
        Seed of the random starts.

    Notes
    -----
    ``dataset[i]`` takes an item index, or ``(i, epoch)`` as :class:`ChunkSampler` yields it.
    Memory maps are opened lazily in each process and never pickled.
    """

    def __init__(self, recordings: Sequence[Recording], spec: ChunkSpec, *,
                 stride_s: float | None = None,
                 offsets: Literal["sequential", "random"] = "sequential", seed: int = 0) -> None:
        check_type(spec, ChunkSpec, "spec")
        check_option("offsets", offsets, OFFSETS)
        self.recordings = list(recordings)
        if not self.recordings:
            raise ValueError("recordings is empty; prepare a corpus with at least one "
                             "recording long enough for one sample.")
        self.spec = spec
        span = spec.sample_samples
        if stride_s is None:
            self.stride = span
        else:
            stride_s = check_positive(stride_s, "stride_s", unit="s")
            self.stride = max(1, int(round(stride_s * spec.sfreq)))
        self.offsets = offsets
        self.seed = ensure_int(seed, "seed", minimum=0)
        counts = []
        for r in self.recordings:
            if len(r.mask) != spec.n_chans:
                raise ValueError(f"{r.path} has {len(r.mask)} channels, the spec "
                                 f"{spec.n_chans}; prepare it with the same channels.")
            if r.n_times < span:
                raise ValueError(f"{r.source} subject {r.subject} run {r.run} has {r.n_times} "
                                 f"samples, shorter than one sample ({span}).")
            counts.append((r.n_times - span) // self.stride + 1)
        self._ends = np.cumsum(counts)
        self._masks = [torch.tensor(r.mask, dtype=torch.bool) for r in self.recordings]
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:  # noqa: D105
        return int(self._ends[-1])

    def __getstate__(self) -> dict:  # noqa: D105
        state = self.__dict__.copy()
        state["_maps"] = {}  # each worker opens its own memory maps
        return state

    def locate(self, key: int | tuple[int, int]) -> tuple[int, int]:
        """Return ``(recording index, first sample)`` of an item (``i`` or ``(i, epoch)``)."""
        item, epoch = key if isinstance(key, tuple) else (key, 0)
        item = int(item)
        if not 0 <= item < len(self):
            raise IndexError(f"item {item} out of range for {len(self)} items.")
        rec = int(np.searchsorted(self._ends, item, side="right"))
        k = item - (int(self._ends[rec - 1]) if rec else 0)
        if self.offsets == "sequential":
            return rec, k * self.stride
        high = self.recordings[rec].n_times - self.spec.sample_samples
        rng = np.random.default_rng([self.seed, int(epoch), item])
        return rec, int(rng.integers(0, high + 1))

    def _signal(self, rec: int) -> np.ndarray:
        data = self._maps.get(rec)
        if data is None:
            data = np.load(self.recordings[rec].path, mmap_mode="r")
            self._maps[rec] = data
        return data

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:  # noqa: D105
        rec, offset = self.locate(key)
        chunks = self.spec.cut(self._signal(rec), offset)
        return {"chunks": torch.from_numpy(chunks), "channel_mask": self._masks[rec].clone()}


class ChunkSampler(EpochSampler):
    """Yield ``(item, epoch)`` keys of a :class:`ChunkDataset`, shuffled per epoch when asked.

    An :class:`~bci.data.datamodule.EpochSampler` (the order is a permutation seeded with
    ``(seed, epoch)``, sharded over ``num_replicas`` training processes) whose keys carry the
    epoch, so that the random sample starts change with the epoch too. Lightning calls
    :meth:`set_epoch` at each epoch (resumed ones included); the order and the starts are then
    the same in every run with the same seed, on any number of processes. A pass without
    :meth:`set_epoch` before it uses the epoch after the previous pass's (a plain loop over a
    DataLoader still sees new starts each epoch).

    Parameters
    ----------
    n_items : int
        Dataset length.
    shuffle : bool
        Shuffle the items each epoch.
    seed : int
        Seed of the permutation.
    num_replicas, rank : int
        Number of training processes and this process's global rank.
    """

    def __init__(self, n_items: int, *, shuffle: bool, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0) -> None:
        super().__init__(n_items, shuffle=shuffle, seed=seed, num_replicas=num_replicas,
                         rank=rank)
        self._set = True  # the next pass uses self.epoch

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch of the next pass (the permutation and the random starts depend on it)."""
        super().set_epoch(ensure_int(epoch, "epoch", minimum=0))
        self._set = True

    def __iter__(self) -> Iterator[tuple[int, int]]:  # noqa: D105
        if not self._set:
            self.epoch += 1
        self._set = False
        return iter([(int(i), self.epoch) for i in self._order()])


def split_recordings(recordings: Sequence[Recording], val_fraction: float, *,
                     seed: int = 0) -> tuple[list[Recording], list[Recording]]:
    """Split recordings (not samples) into training and validation sets.

    Parameters
    ----------
    recordings : sequence of Recording
    val_fraction : float
        Fraction of recordings for validation, in ``[0, 1)``; with two or more recordings and
        a fraction > 0, at least one goes to each set.
    seed : int
        Seed of the split.

    Returns
    -------
    train, val : list of Recording
        In their original order.
    """
    val_fraction = check_fraction(val_fraction, "val_fraction")
    n = len(recordings)
    if val_fraction == 0 or n < 2:
        return list(recordings), []
    n_val = min(max(1, int(round(val_fraction * n))), n - 1)
    val = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    return ([r for i, r in enumerate(recordings) if i not in val],
            [r for i, r in enumerate(recordings) if i in val])


class PretrainingDataModule(pl.LightningDataModule):
    """Continuous recordings of several datasets as batches of pretraining samples.

    :meth:`prepare_data` prepares every subject of every source into ``cache_dir`` (one subject
    in memory at a time, reused when present); :meth:`setup` splits the recordings into
    training and validation sets. Batches are dicts: ``"chunks"`` float32 ``(batch, n_chunks,
    n_chans_model, chunk_samples)`` and ``"channel_mask"`` bool ``(batch, n_chans_model)``.

    Parameters
    ----------
    sources : sequence of source
        Recording sources (:func:`bci.data.pretraining.pretraining_source`...), each with its
        subject selection (``exclude_subjects`` keeps a held-out subject out).
    cache_dir : str | os.PathLike
        Folder of the prepared signals.
    sfreq, chunk_s, overlap_s, n_chunks, channels, l_freq, h_freq, clip
        Model rate (Hz), chunk geometry (s), model channels, pass band (Hz) and clip level:
        see :class:`bci.data.pretraining.ChunkSpec` (defaults: the paper's 250 Hz, 2-s chunks
        overlapping by 0.2 s, 32 chunks, 22 TUH channels).
    stride_s : float | None
        Seconds between consecutive samples of a recording; None: one sample span.
    offsets : "sequential" | "random"
        Sample starts of the training set (validation: always sequential, epoch 0).
    val_fraction : float
        Fraction of recordings held out for validation.
    batch_size : int
        Samples per optimiser step over all training processes: under Lightning's DDP on
        ``N`` processes each takes ``batch_size / N`` (a multiple of ``N`` is required), its
        shard of the epoch's order (:class:`ChunkSampler`).
    num_workers : int
        Data-loader worker processes.
    seed : int
        Seed of the split, the shuffling and the random starts.
    drop_last : bool
        Drop a last incomplete training batch.
    """

    def __init__(self, sources: Sequence[Any], *, cache_dir: str | os.PathLike,
                 sfreq: float = 250.0, chunk_s: float = 2.0, overlap_s: float = 0.2,
                 n_chunks: int = 32, channels: Sequence[str] = NEUROGPT_CHANNELS,
                 l_freq: float = 0.5, h_freq: float = 45.0, clip: float | None = 20.0,
                 stride_s: float | None = None,
                 offsets: Literal["sequential", "random"] = "random",
                 val_fraction: float = 0.1, batch_size: int = 32, num_workers: int = 0,
                 seed: int = 0, drop_last: bool = False) -> None:
        super().__init__()
        self.spec = ChunkSpec(sfreq=sfreq, chunk_s=chunk_s, overlap_s=overlap_s,
                              n_chunks=n_chunks, channels=tuple(channels), l_freq=l_freq,
                              h_freq=h_freq, clip=clip)
        self.corpus = PretrainingCorpus(sources, self.spec, cache_dir)
        check_option("offsets", offsets, OFFSETS)
        self.offsets = offsets
        self.stride_s = stride_s
        self.val_fraction = check_fraction(val_fraction, "val_fraction")
        self.batch_size = ensure_int(batch_size, "batch_size", minimum=1)
        self.num_workers = ensure_int(num_workers, "num_workers", minimum=0,
                                      what="data-loading processes")
        self.seed = ensure_int(seed, "seed", minimum=0)
        self.drop_last = bool(drop_last)
        self.recordings: list[Recording] | None = None
        self.train_recordings: list[Recording] = []
        self.val_recordings: list[Recording] = []
        self.train_set: ChunkDataset | None = None
        self.val_set: ChunkDataset | None = None

    def prepare_data(self) -> None:
        """Prepare (filter, resample, scale, cache) every subject not yet in the cache."""
        self.corpus.prepare()

    def setup(self, stage: str | None = None) -> None:
        """List the prepared recordings and split them by recording (once)."""
        if self.recordings is not None:
            return
        self.recordings = self.corpus.prepare()
        self.train_recordings, self.val_recordings = split_recordings(
            self.recordings, self.val_fraction, seed=self.seed)
        self.train_set = ChunkDataset(self.train_recordings, self.spec, stride_s=self.stride_s,
                                      offsets=self.offsets, seed=self.seed)
        self.val_set = (ChunkDataset(self.val_recordings, self.spec, stride_s=self.stride_s)
                        if self.val_recordings else None)
        logger.info("Pretraining data: %d training samples from %d recordings, %d validation "
                    "samples from %d; minutes per dataset %s", len(self.train_set),
                    len(self.train_recordings), 0 if self.val_set is None else len(self.val_set),
                    len(self.val_recordings), self.minutes())

    def minutes(self) -> dict[str, float]:
        """Minutes of usable continuous EEG per dataset (after :meth:`setup`)."""
        self.setup()
        return total_minutes(self.recordings, self.spec.sfreq)

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        """Return shuffled training batches (order and starts seeded by ``seed`` and epoch).

        Under a Lightning trainer with several processes: this process's shard, in batches of
        ``batch_size / world_size``.
        """
        self.setup()
        world_size, rank = _trainer_ranks(self)
        sampler = ChunkSampler(len(self.train_set), shuffle=True, seed=self.seed,
                               num_replicas=world_size, rank=rank)
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=per_process_batch(self.batch_size, world_size),
            sampler=sampler,
            num_workers=self.num_workers, drop_last=self.drop_last,
            persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> torch.utils.data.DataLoader | list:
        """Return validation batches in a fixed order, or an empty list without validation."""
        self.setup()
        if self.val_set is None:
            return []
        return torch.utils.data.DataLoader(self.val_set, batch_size=self.batch_size,
                                           num_workers=self.num_workers)
