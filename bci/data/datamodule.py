"""Epochs and targets for Lightning: :class:`EEGDataModule` and :func:`split_train_val`.

The data side of :mod:`bci.models.training`: arrays (or MNE epochs, or a MOABB dataset) become
shuffled, seeded torch data loaders, with a stratified validation split or a separate
validation set; the task ``"sequence_regression"`` adds a mask of the real time steps of
zero-padded trials.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch

from .._checks import check_bool, check_fraction, check_option, ensure_int
from .._logging import logger

__all__ = ["TASKS", "EEGDataModule", "EpochSampler", "per_process_batch", "split_train_val"]

#: What a network learns: class indices, one vector per epoch, or a vector per time step.
TASKS = ("classification", "regression", "sequence_regression")


# ---------------------------------------------------------------------------------------------
class EpochSampler(torch.utils.data.DistributedSampler):
    """Shuffle per ``(seed, epoch)`` and give each training process its share of the items.

    The order of an epoch is the permutation drawn by ``numpy.random.default_rng([seed,
    epoch])`` (the identity without ``shuffle``): it depends on nothing but those two numbers,
    so a run resumed at an epoch sees the order of the uninterrupted run. With ``num_replicas``
    processes the order is padded by repeating its first items to a multiple of
    ``num_replicas`` (as :class:`torch.utils.data.DistributedSampler` does) and process
    ``rank`` takes every ``num_replicas``-th item from position ``rank``: with a per-process
    batch of ``B / num_replicas``, the union of the processes' batches at step ``k`` is the
    1-process batch ``k`` of size ``B`` (the last one may differ by the padding).

    Being a :class:`~torch.utils.data.DistributedSampler`, Lightning leaves it in place (no
    automatic replacement) and calls :meth:`set_epoch` at every epoch, resumed ones included.

    Parameters
    ----------
    n_items : int
        Dataset length.
    shuffle : bool
        Draw a new order every epoch.
    seed : int
        Seed of the orders; every process must use the same.
    num_replicas, rank : int
        Number of training processes and this process's global rank.
    """

    def __init__(self, n_items: int, *, shuffle: bool = True, seed: int = 0,
                 num_replicas: int = 1, rank: int = 0) -> None:
        n_items = ensure_int(n_items, "n_items", minimum=0)
        num_replicas = ensure_int(num_replicas, "num_replicas", minimum=1)
        rank = ensure_int(rank, "rank", minimum=0)
        if rank >= num_replicas:
            raise ValueError(f"rank must be < num_replicas={num_replicas}, got {rank}.")
        super().__init__(range(n_items), num_replicas=num_replicas, rank=rank,
                         shuffle=bool(shuffle), seed=ensure_int(seed, "seed", minimum=0))
        self.n_items = n_items

    def _order(self) -> np.ndarray:
        """Item indices of this process for the current epoch."""
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.n_items)
                 if self.shuffle else np.arange(self.n_items))
        if self.total_size > len(order) and len(order):
            order = np.resize(order, self.total_size)  # repeats the first items
        return order[self.rank:self.total_size:self.num_replicas]

    def __iter__(self):  # noqa: D105
        return iter(self._order().tolist())


def per_process_batch(batch_size: int, world_size: int) -> int:
    """Return the per-process batch that makes a global batch of ``batch_size``.

    Parameters
    ----------
    batch_size : int
        Samples per optimiser step over all processes (the 1-process batch).
    world_size : int
        Number of training processes (devices x nodes).

    Returns
    -------
    int
        ``batch_size // world_size``.

    Raises
    ------
    ValueError
        ``batch_size`` is not a multiple of ``world_size``.
    """
    if batch_size % world_size:
        raise ValueError(f"batch_size={batch_size} is the global batch (all processes "
                         f"together) and must be a multiple of the {world_size} training "
                         f"processes (devices x nodes); choose a batch size of "
                         f"{max(1, batch_size // world_size) * world_size} or "
                         f"{(batch_size // world_size + 1) * world_size}.")
    return batch_size // world_size


def _trainer_ranks(module: pl.LightningDataModule) -> tuple[int, int]:
    """``(world_size, global_rank)`` of the trainer a data module is attached to (1, 0 if none)."""
    trainer = getattr(module, "trainer", None)
    if trainer is None:
        return 1, 0
    return int(trainer.world_size), int(trainer.global_rank)


def split_train_val(y: np.ndarray, val_fraction: float, *, stratify: bool,
                    random_state: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Return the indices of a (stratified) random split into training and validation sets.

    Parameters
    ----------
    y : array, shape (n_epochs,) or (n_epochs, n_outputs)
        Targets; class labels when ``stratify``.
    val_fraction : float
        Fraction of epochs for validation, in ``[0, 1)``; 0 gives an empty validation set.
    stratify : bool
        Keep the class proportions in both sets (classification). Falls back to a plain
        shuffled split when a class has fewer than 2 epochs.
    random_state : int | None
        Seed of the split.

    Returns
    -------
    train_idx, val_idx : ndarray of int
        Sorted indices into ``y``; every class keeps at least one training epoch.
    """
    n = len(y)
    val_fraction = check_fraction(val_fraction, "val_fraction")
    if val_fraction == 0 or n < 2:
        return np.arange(n), np.array([], dtype=int)
    n_val = max(1, int(round(val_fraction * n)))
    rng = np.random.default_rng(random_state)
    if stratify:
        classes, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2:
            n_val = min(max(n_val, len(classes)), n - len(classes))
            # the per-class share of the validation set, by largest remainder
            share = counts / n * n_val
            take = np.floor(share).astype(int)
            for i in np.argsort(-(share - take))[: n_val - take.sum()]:
                take[i] += 1
            take = np.clip(take, 1 if n_val >= len(classes) else 0, counts - 1)
            val = [rng.permutation(np.flatnonzero(y == c))[:k]
                   for c, k in zip(classes, take, strict=True)]
            val_idx = np.sort(np.concatenate(val))
            return np.setdiff1d(np.arange(n), val_idx), val_idx
    perm = rng.permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class EEGDataModule(pl.LightningDataModule):
    """Epochs and targets as a :class:`lightning.pytorch.LightningDataModule`.

    Parameters
    ----------
    X : array, shape (n_epochs, n_chans, n_times)
        Epochs, already scaled as the network expects (float32 tensors are made from them);
        for ``"sequence_regression"``, trials zero-padded to a common ``n_times``.
    y : array, shape (n_epochs,), (n_epochs, n_outputs) or (n_epochs, n_outputs, n_times)
        Class indices ``0 .. n_classes - 1`` (classification), real targets (regression) or
        real targets at every time step (sequence regression).
    X_val, y_val : array | None
        An explicit validation set; when None, ``val_fraction`` of ``X`` is held out. For
        sequence regression its ``n_times`` (padding) may differ from that of ``X``.
    mask, mask_val : array of bool, shape (n_epochs, n_times) | None
        Sequence regression only: True on the real time steps of each padded trial of ``X``
        (``X_val``); None: every step is real. Every trial needs at least one real step.
    val_fraction : float
        Fraction of ``X`` held out for validation (stratified for classification) when no
        ``X_val`` is given; 0 trains on everything without validation.
    batch_size : int
        Epochs per training batch, over all training processes: under Lightning's DDP on
        ``N`` processes (devices x nodes) each process takes ``batch_size / N`` epochs a step
        (it must be a multiple of ``N``), so that the optimiser sees the batch of one process.
    task : "classification" | "regression" | "sequence_regression"
        How ``y`` is read: integer classes, float targets per epoch, or float targets per time
        step; batches are ``(x, y)``, and ``(x, y, mask)`` for sequence regression.
    drop_last : bool
        Drop the last training batch when it is smaller than ``batch_size`` (e.g. so that
        BatchNorm never trains on a batch of one).
    random_state : int | None
        Seed of the validation split and of the training order (:class:`EpochSampler`: a
        permutation drawn from ``(random_state, epoch)``, so the global torch RNG is neither
        used nor changed, and several processes shard one order). None draws a seed; several
        training processes need an explicit one (they must agree on the split and order).
    num_workers : int
        Worker processes of the data loaders (0: load in the main process, best for arrays
        held in memory).

    Attributes
    ----------
    train_idx, val_idx : ndarray of int
        Indices of ``X`` used for training and for validation (after :meth:`setup`).
    """

    def __init__(self, X, y, *, X_val=None, y_val=None, val_fraction: float = 0.2,
                 batch_size: int = 32,
                 task: Literal["classification", "regression", "sequence_regression"]
                 = "classification", random_state: int | None = None,
                 num_workers: int = 0, mask=None, mask_val=None,
                 drop_last: bool = False) -> None:
        super().__init__()
        check_option("task", task, TASKS)
        self.X = _as_epochs(X, "X")
        self.y = _as_targets(y, task, self.X.shape, "y")
        if (X_val is None) != (y_val is None):
            raise ValueError("Give both X_val and y_val, or neither (then val_fraction of X is "
                             "held out).")
        self.X_val = None if X_val is None else _as_epochs(X_val, "X_val")
        self.y_val = None if y_val is None else _as_targets(y_val, task, self.X_val.shape,
                                                             "y_val")
        sequence = task == "sequence_regression"
        if self.X_val is not None:
            # padded trials: only the channels must match, not the padded length
            compared = slice(1, 2) if sequence else slice(1, None)
            if self.X_val.shape[compared] != self.X.shape[compared]:
                what = "n_chans" if sequence else "(n_chans, n_times)"
                raise ValueError(f"X_val epochs have shape {self.X_val.shape[1:]}, X epochs "
                                 f"{self.X.shape[1:]}; they must match {what}.")
            if sequence and self.y_val.shape[1] != self.y.shape[1]:
                raise ValueError(f"y_val has {self.y_val.shape[1]} outputs, y "
                                 f"{self.y.shape[1]}; they must match (n_outputs).")
        if not sequence and (mask is not None or mask_val is not None):
            raise ValueError(f"mask and mask_val are for task='sequence_regression', got "
                             f"task={task!r}.")
        if mask_val is not None and self.X_val is None:
            raise ValueError("mask_val masks X_val; give X_val and y_val with it.")
        self.mask = _as_mask(mask, self.X.shape, "mask") if sequence else None
        self.mask_val = (_as_mask(mask_val, self.X_val.shape, "mask_val")
                         if sequence and self.X_val is not None else None)
        self.val_fraction = check_fraction(val_fraction, "val_fraction")
        self.batch_size = ensure_int(batch_size, "batch_size", minimum=1)
        self.drop_last = check_bool(drop_last, "drop_last")
        self.task = task
        self.random_state = random_state
        self.num_workers = ensure_int(num_workers, "num_workers", minimum=0,
                                      what="data-loading processes")
        self.train_idx: np.ndarray | None = None
        self.val_idx: np.ndarray | None = None
        self._seed: int | None = None

    @classmethod
    def from_epochs(cls, epochs, y=None, *, label_key: str = "label", **kwargs: Any
                    ) -> tuple[EEGDataModule, np.ndarray]:
        """Build from :class:`mne.Epochs` (MOABB's epochs carry their class in metadata).

        Parameters
        ----------
        epochs : mne.Epochs
            Epochs; their data (volts for EEG) is used as is.
        y : array | None
            Targets; when None, the class names in ``epochs.metadata[label_key]`` (MOABB) or
            else the event names of ``epochs.events``.
        label_key : str
            Metadata column holding class names.
        **kwargs
            Other :class:`EEGDataModule` arguments.

        Returns
        -------
        datamodule : EEGDataModule
        classes : ndarray
            Class names, in the order of the class indices (classification), or an empty array
            (regression with explicit ``y``).
        """
        X = epochs.get_data(copy=True)
        if y is None:
            if epochs.metadata is not None and label_key in epochs.metadata:
                labels = epochs.metadata[label_key].to_numpy()
            else:
                names = {v: k for k, v in epochs.event_id.items()}
                labels = np.array([names[e] for e in epochs.events[:, 2]])
            classes, y = np.unique(labels, return_inverse=True)
        else:
            classes = np.array([])
        return cls(X, y, **kwargs), classes

    @classmethod
    def from_moabb(cls, dataset, paradigm, subjects: Sequence[int] | None = None, *,
                   paradigm_params: dict | None = None, **kwargs: Any
                   ) -> tuple[EEGDataModule, np.ndarray]:
        """Build from a MOABB dataset and paradigm (arrays as ``paradigm.get_data`` returns).

        Parameters
        ----------
        dataset, paradigm : str | MOABB object
            As :func:`bci.data.loaders.load_data` takes them.
        subjects : sequence of int | None
            Subjects to load; all when None.
        paradigm_params : dict | None
            Constructor arguments of a paradigm given by name.
        **kwargs
            Other :class:`EEGDataModule` arguments.

        Returns
        -------
        datamodule : EEGDataModule
        classes : ndarray of str
            Class names, in the order of the class indices.
        """
        from .loaders import load_data

        X, labels, _ = load_data(dataset, paradigm, subjects, paradigm_params=paradigm_params)
        classes, y = np.unique(labels, return_inverse=True)
        return cls(X, y, **kwargs), classes

    def setup(self, stage: str | None = None) -> None:
        """Split the epochs into training and validation sets (once; later calls keep the split)."""
        if self.train_idx is not None:
            return
        if self.X_val is not None:
            self.train_idx, self.val_idx = np.arange(len(self.X)), np.array([], dtype=int)
        else:
            self.train_idx, self.val_idx = split_train_val(
                self.y, self.val_fraction, stratify=self.task == "classification",
                random_state=self.random_state)
        logger.debug("EEGDataModule: %d training and %d validation epochs", len(self.train_idx),
                     self.n_val)

    @property
    def n_val(self) -> int:
        """Number of validation epochs (0: no validation)."""
        if self.X_val is not None:
            return len(self.X_val)
        return 0 if self.val_idx is None else len(self.val_idx)

    def _dataset(self, X, y, mask=None) -> torch.utils.data.TensorDataset:
        tensors = [torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y)]
        if mask is not None:
            tensors.append(torch.as_tensor(mask))
        return torch.utils.data.TensorDataset(*tensors)

    def _subset(self, idx: np.ndarray) -> torch.utils.data.TensorDataset:
        return self._dataset(self.X[idx], self.y[idx],
                             None if self.mask is None else self.mask[idx])

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        """Return the shuffled loader of the training epochs (seeded by ``random_state``).

        Under a Lightning trainer with several processes, the loader of this process: its
        shard of the epoch's order (:class:`EpochSampler`) in batches of ``batch_size /
        world_size``.
        """
        self.setup()
        world_size, rank = _trainer_ranks(self)
        if self.random_state is None and world_size > 1:
            raise ValueError(f"Training on {world_size} processes needs a random_state (seed): "
                             "every process must draw the same validation split and order.")
        if self._seed is None:
            self._seed = (int(self.random_state) if self.random_state is not None else
                          int(np.random.SeedSequence().generate_state(1)[0]))
        sampler = EpochSampler(len(self.train_idx), shuffle=True, seed=self._seed,
                               num_replicas=world_size, rank=rank)
        return torch.utils.data.DataLoader(
            self._subset(self.train_idx), batch_size=per_process_batch(self.batch_size,
                                                                       world_size),
            sampler=sampler, num_workers=self.num_workers, drop_last=self.drop_last)

    def val_dataloader(self) -> torch.utils.data.DataLoader | list:
        """Return the loader of the validation epochs, or an empty list without validation."""
        self.setup()
        if self.n_val == 0:
            return []
        dataset = (self._dataset(self.X_val, self.y_val, self.mask_val)
                   if self.X_val is not None else self._subset(self.val_idx))
        return torch.utils.data.DataLoader(dataset, batch_size=max(self.batch_size, 256),
                                           num_workers=self.num_workers)


def _as_epochs(X, name: str) -> np.ndarray:
    arr = np.asarray(X)
    if arr.ndim != 3:
        raise ValueError(f"{name} must be 3-D (n_epochs, n_chans, n_times), got shape "
                         f"{arr.shape}.")
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf; drop or interpolate bad epochs first.")
    return arr.astype(np.float32, copy=False)


def _as_targets(y, task: str, x_shape: tuple[int, ...], name: str) -> np.ndarray:
    arr = np.asarray(y)
    n = x_shape[0]
    if len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} targets for {n} epochs.")
    if task == "sequence_regression":
        if arr.ndim != 3 or arr.shape[2] != x_shape[2]:
            raise ValueError(f"{name} must be (n_epochs, n_outputs, n_times={x_shape[2]}) for "
                             f"sequence regression (a target at every time step), got shape "
                             f"{arr.shape}.")
        if not np.issubdtype(arr.dtype, np.number):
            raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}.")
        return arr.astype(np.float32, copy=False)
    if task == "classification":
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or (arr < 0).any():
            raise ValueError(f"{name} must hold class indices 0 .. n_classes - 1 for "
                             "classification (encode names with sklearn's LabelEncoder).")
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be numeric for regression, got dtype {arr.dtype}.")
    return arr.astype(np.float32).reshape(n, -1)


def _as_mask(mask, x_shape: tuple[int, ...], name: str) -> np.ndarray:
    n, n_times = x_shape[0], x_shape[2]
    if mask is None:
        return np.ones((n, n_times), dtype=bool)
    arr = np.asarray(mask)
    if arr.dtype != bool:
        raise TypeError(f"{name} must be boolean (True on real time steps), got dtype "
                        f"{arr.dtype}.")
    if arr.shape != (n, n_times):
        raise ValueError(f"{name} must be (n_epochs={n}, n_times={n_times}), got shape "
                         f"{arr.shape}.")
    empty = np.flatnonzero(~arr.any(axis=1))
    if empty.size:
        raise ValueError(f"{name} has no real time step in trials {empty[:5].tolist()}; drop "
                         "empty trials first.")
    return arr
