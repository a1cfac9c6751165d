"""Lightning training of any :mod:`bci.models` decoder: :class:`DecoderModule`,
:class:`EEGDataModule` and :func:`train_model`.

One :class:`DecoderModule` trains every network (``(batch, n_chans, n_times)`` -> logits or
regression outputs) with AdamW, a cosine or plateau learning-rate schedule and gradient clipping;
:func:`train_model` adds early stopping on a validation split and restores the weights of the best
validation epoch. The task ``"sequence_regression"`` trains networks that predict at every time
step (``forward_sequence``: ``(batch, n_chans, n_times)`` -> ``(batch, n_outputs, n_times)``,
e.g. the streaming iBMI velocity decoders of :mod:`bci.models.spiking.ibmi`) on zero-padded
trials of different lengths, with a loss masked to the real time steps. Devices and
distribution are Lightning's own: ``accelerator``, ``devices``, ``strategy`` and ``num_nodes``
go to :class:`lightning.pytorch.Trainer` unchanged (CPU by default).

Reproducibility without global state: with ``seed`` set, :func:`train_model` runs inside
:func:`torch.random.fork_rng` seeded with it (weight initialisation is the caller's, see
:class:`~bci.models.classifier.DeepClassifier`), and the data loaders shuffle with their own
:class:`torch.Generator`; the caller's random state is restored afterwards.

Examples
--------
>>> import numpy as np
>>> from bci.models.registry import get_model
>>> rng = np.random.default_rng(0)
>>> X, y = rng.standard_normal((16, 4, 128)).astype("float32"), np.arange(16) % 2
>>> data = EEGDataModule(X, y, batch_size=8, val_fraction=0.25, random_state=0)
>>> result = train_model(get_model("EEGNet", 4, 2, 128), data, max_epochs=2, seed=0)
>>> len(result.history)
2
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_option
from .._logging import logger
from ._threads import torch_threads
from .augmentation import EpochAugmentation, make_augmentation

__all__ = ["DecoderModule", "EEGDataModule", "TrainingResult", "recalibrate_batch_norm_stats",
           "torch_threads", "train_model"]

TASKS = ("classification", "regression", "sequence_regression")
SCHEDULERS = ("cosine", "plateau", "none")
LOGGERS = ("csv", "tensorboard", "none")


def _check_fraction(value: Any, name: str, *, allow_zero: bool = True) -> float:
    low_ok = (lambda v: v >= 0) if allow_zero else (lambda v: v > 0)
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not low_ok(value)
            or not value < 1):
        bound = "[0, 1)" if allow_zero else "(0, 1)"
        raise ValueError(f"{name} must be a fraction in {bound}, got {value!r}.")
    return float(value)


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def split_train_val(y: np.ndarray, val_fraction: float, *, stratify: bool,
                    random_state: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a (stratified) random split into training and validation sets.

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
    val_fraction = _check_fraction(val_fraction, "val_fraction")
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
            val = [rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(classes, take)]
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
        Epochs per training batch.
    task : "classification" | "regression" | "sequence_regression"
        How ``y`` is read: integer classes, float targets per epoch, or float targets per time
        step; batches are ``(x, y)``, and ``(x, y, mask)`` for sequence regression.
    drop_last : bool
        Drop the last training batch when it is smaller than ``batch_size`` (e.g. so that
        BatchNorm never trains on a batch of one).
    random_state : int | None
        Seed of the validation split and of the training loader's shuffling (its own
        :class:`torch.Generator`, so the global torch RNG is neither used nor changed).
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
        self.val_fraction = _check_fraction(val_fraction, "val_fraction")
        self.batch_size = _check_positive_int(batch_size, "batch_size")
        if not isinstance(drop_last, bool):
            raise TypeError(f"drop_last must be True or False, got {drop_last!r}.")
        self.drop_last = drop_last
        self.task = task
        self.random_state = random_state
        self.num_workers = int(num_workers)
        self.train_idx: np.ndarray | None = None
        self.val_idx: np.ndarray | None = None

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
        from ..data.loaders import load_data

        X, labels, _ = load_data(dataset, paradigm, subjects, paradigm_params=paradigm_params)
        classes, y = np.unique(labels, return_inverse=True)
        return cls(X, y, **kwargs), classes

    def setup(self, stage: str | None = None) -> None:
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
        self.setup()
        generator = torch.Generator()
        generator.manual_seed(0 if self.random_state is None else int(self.random_state))
        if self.random_state is None:
            generator.seed()
        return torch.utils.data.DataLoader(
            self._subset(self.train_idx), batch_size=self.batch_size, shuffle=True,
            generator=generator, num_workers=self.num_workers, drop_last=self.drop_last)

    def val_dataloader(self) -> torch.utils.data.DataLoader | list:
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


# ---------------------------------------------------------------------------------------------
# The LightningModule
# ---------------------------------------------------------------------------------------------
class DecoderModule(pl.LightningModule):
    """Train any decoder ``nn.Module`` (``(batch, n_chans, n_times)`` -> ``(batch, n_outputs)``).

    Parameters
    ----------
    model : torch.nn.Module
        The network (e.g. from :func:`bci.models.registry.get_model`); trained in place.
    task : "classification" | "regression" | "sequence_regression"
        Cross-entropy on logits and accuracy; mean squared error (targets
        ``(batch, n_outputs)``) and R²; or, for networks with a ``forward_sequence(x)`` that
        predicts at every time step (``(batch, n_chans, n_times)`` -> ``(batch, n_outputs,
        n_times)``), the mean squared error over the real time steps of padded trials (batches
        ``(x, y, mask)``: targets ``(batch, n_outputs, n_times)``, mask ``(batch, n_times)``
        True on real steps; mean over real steps and outputs) and R² over the real steps.
    lr : float
        Peak learning rate of AdamW.
    weight_decay : float
        AdamW's decoupled weight decay.
    scheduler : "cosine" | "plateau" | "none"
        ``"cosine"``: cosine annealing from ``lr`` to ``lr * min_lr_ratio`` over the trainer's
        ``max_epochs``; ``"plateau"``: halve the learning rate after ``plateau_patience`` epochs
        without improvement of the validation loss (the training loss without validation).
    plateau_patience : int
        Epochs of the plateau schedule.
    min_lr_ratio : float
        Final learning rate of the cosine schedule, as a fraction of ``lr``.
    label_smoothing : float
        Label smoothing of the cross-entropy, in ``[0, 1)``.
    monitor : str
        Logged metric the plateau schedule watches (``"train_loss"`` without validation data).
    augmentation : dict | EpochAugmentation | None
        Random transforms of the training batches (see
        :class:`~bci.models.augmentation.EpochAugmentation`; a dict gives its keywords).

    Notes
    -----
    Every stage runs through :meth:`_step`; it logs ``{stage}_loss`` and ``{stage}_acc``
    (classification) or ``{stage}_r2`` (regression) per epoch, with one torchmetrics object per
    stage. Epoch values are means weighted by the samples of each batch (for sequence
    regression: by its real time steps, so that the epoch loss is the mean over all real steps).
    """

    def __init__(self, model: nn.Module, *,
                 task: Literal["classification", "regression", "sequence_regression"]
                 = "classification", lr: float = 1e-3, weight_decay: float = 1e-2,
                 scheduler: Literal["cosine", "plateau", "none"] = "cosine",
                 plateau_patience: int = 10, min_lr_ratio: float = 1e-2,
                 label_smoothing: float = 0.0, monitor: str = "val_loss",
                 augmentation: dict | EpochAugmentation | None = None) -> None:
        super().__init__()
        import torchmetrics

        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        check_option("task", task, TASKS)
        check_option("scheduler", scheduler, SCHEDULERS)
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive learning rate, got {lr!r}.")
        if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}.")
        _check_fraction(label_smoothing, "label_smoothing")
        _check_fraction(min_lr_ratio, "min_lr_ratio")
        if task == "sequence_regression":
            if not callable(getattr(model, "forward_sequence", None)):
                raise TypeError(f"task='sequence_regression' needs a model with a "
                                f"forward_sequence(x) method ((batch, n_chans, n_times) -> "
                                f"(batch, n_outputs, n_times)); {type(model).__name__} has "
                                "none.")
            if augmentation is not None:
                raise ValueError("augmentation transforms epochs with one target each; it is "
                                 "not available for task='sequence_regression'.")
        self.save_hyperparameters(ignore=["model", "augmentation"])
        self.model = model
        self.augmentation = make_augmentation(augmentation)
        n_outputs = getattr(model, "n_outputs", None)
        if task == "classification":
            if n_outputs is None:
                raise ValueError("model must have an n_outputs attribute (the number of classes).")
            make = (lambda: torchmetrics.classification.MulticlassAccuracy(
                n_outputs, average="micro")) if n_outputs > 1 else (
                lambda: torchmetrics.classification.BinaryAccuracy())
            self.metric_name = "acc"
        else:
            make = lambda: torchmetrics.R2Score(multioutput="uniform_average")  # noqa: E731
            self.metric_name = "r2"
        # keys "train_", "val_", "test_": ModuleDict forbids some plain names ("train")
        self.metrics = nn.ModuleDict({f"{s}_": make() for s in ("train", "val", "test")})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The network's output: ``model(x)``, or ``model.forward_sequence(x)`` for sequence
        regression."""
        if self.hparams.task == "sequence_regression":
            return self.model.forward_sequence(x)
        return self.model(x)

    def _loss(self, out: torch.Tensor, y: torch.Tensor,
              mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.hparams.task == "classification":
            return F.cross_entropy(out, y, label_smoothing=self.hparams.label_smoothing)
        if self.hparams.task == "sequence_regression":
            return _masked_mse(out, y, mask)
        return F.mse_loss(out, y.reshape(out.shape))

    def _step(self, batch, stage: str) -> torch.Tensor:
        task = self.hparams.task
        if task == "sequence_regression":
            x, y, mask = batch
        else:
            (x, y), mask = batch, None
        if stage == "train" and self.augmentation is not None:
            x, y = self.augmentation(x, y)
        out = self(x)
        loss = self._loss(out, y, mask)
        metric = self.metrics[f"{stage}_"]
        n_samples = len(x)
        if task == "classification":
            metric.update(out.argmax(1) if out.shape[1] > 1 else out[:, 0] > 0, y)
        elif task == "sequence_regression":
            n_samples = int(mask.sum())
            if n_samples > 1:  # R² over the real time steps, (n_steps, n_outputs)
                metric.update(out.detach().transpose(1, 2)[mask], y.transpose(1, 2)[mask])
        elif len(y) > 1:
            metric.update(out, y.reshape(out.shape))
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=n_samples)
        self.log(f"{stage}_{self.metric_name}", metric, on_step=False, on_epoch=True,
                 prog_bar=stage != "train", batch_size=n_samples)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Class probabilities (classification) or outputs (regression; every time step for
        sequence regression)."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        out = self(x)
        return out.softmax(1) if self.hparams.task == "classification" else out

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return optimizer
        if hp.scheduler == "cosine":
            n_epochs = max(1, int(self.trainer.max_epochs or 1))
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=n_epochs, eta_min=hp.lr * hp.min_lr_ratio)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=hp.plateau_patience)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": sched, "interval": "epoch",
                                 "monitor": hp.monitor}}


def _masked_mse(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the real time steps and the outputs: ``out``, ``y``
    ``(batch, n_outputs, n_times)``, ``mask`` ``(batch, n_times)`` True on real steps."""
    if out.shape != y.shape or mask.shape != (out.shape[0], out.shape[2]):
        raise ValueError(f"sequence regression expects outputs and targets (batch, n_outputs, "
                         f"n_times) and a mask (batch, n_times); got outputs "
                         f"{tuple(out.shape)}, targets {tuple(y.shape)}, mask "
                         f"{tuple(mask.shape)}.")
    return ((out - y) ** 2).mean(1)[mask].mean()


# ---------------------------------------------------------------------------------------------
# Callbacks and the training function
# ---------------------------------------------------------------------------------------------
class _BestWeights(pl.Callback):
    """Keep (in memory) the weights of the epoch with the lowest ``monitor``; restore them at
    the end of training."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.best: float = math.inf
        self.best_epoch: int | None = None
        self.state: dict | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self._consider(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.monitor.startswith("train"):
            self._consider(trainer, pl_module)

    def _consider(self, trainer, pl_module) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        if value < self.best:
            self.best, self.best_epoch = value, int(trainer.current_epoch)
            self.state = copy.deepcopy(pl_module.model.state_dict())

    def on_fit_end(self, trainer, pl_module) -> None:
        if self.state is not None:
            pl_module.model.load_state_dict(self.state)


class _History(pl.Callback):
    """Per-epoch metrics (losses, scores, learning rate) kept in memory."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        row: dict[str, float] = {"epoch": int(trainer.current_epoch)}
        for key, value in trainer.callback_metrics.items():
            if key.startswith(("train_", "val_")):
                row[key] = float(value)
        if trainer.optimizers:
            row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        self.rows.append(row)


@dataclass
class TrainingResult:
    """What :func:`train_model` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The trained network with the best validation epoch's weights, in eval mode, on CPU.
    history : list of dict
        One row per epoch: ``epoch``, ``train_loss``, ``train_acc`` (or ``train_r2``),
        ``val_loss``, ``val_acc`` (when there is validation data) and ``lr``.
    best_epoch : int | None
        Epoch (0-based) whose weights were restored; None without validation data.
    n_epochs : int
        Epochs trained (fewer than ``max_epochs`` after early stopping).
    log_dir : Path | None
        Folder of the CSV/TensorBoard logs, when a logger was used.
    """

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    n_epochs: int = 0
    log_dir: Path | None = None


@contextlib.contextmanager
def _quiet_lightning(quiet: bool) -> Iterator[None]:
    """Silence Lightning's per-Trainer banners ("GPU available: ...") and its hints for small
    in-memory datasets while ``quiet``; restores the logger level afterwards."""
    lightning_logger = logging.getLogger("lightning.pytorch")
    level = lightning_logger.level
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=r".*Total length of .* across ranks is zero.*")
        # lightning 2.6 with torch >= 2.10 (lightning's own call, nothing we can change)
        warnings.filterwarnings("ignore", message=r".*LeafSpec.*is deprecated.*")
        if quiet:
            lightning_logger.setLevel(max(level, logging.WARNING))
        try:
            yield
        finally:
            lightning_logger.setLevel(level)


def recalibrate_batch_norm_stats(model: nn.Module, X, *, batch_size: int = 64) -> nn.Module:
    """Set the running statistics of a network's BatchNorm layers to those of ``X``.

    Each BatchNorm layer's ``running_mean``/``running_var`` become the average, over batches of
    ``X`` in order, of the batch statistics the layer sees in training mode (torch's
    cumulative average, ``momentum=None``), with the network's current weights. Dropout is
    off during the pass; no weight changes. Networks without BatchNorm are returned as is.

    Parameters
    ----------
    model : torch.nn.Module
        The network (left in eval mode).
    X : array | Tensor, shape (n_epochs, n_chans, n_times)
        Scaled training epochs, as the network was trained on.
    batch_size : int
        Batch size of the pass (the training batch size reproduces the training statistics).

    Returns
    -------
    model : torch.nn.Module
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    if not norms or len(X) < 2:  # one epoch has no batch statistics: keep the running ones
        return model.eval()
    batch_size = max(_check_positive_int(batch_size, "batch_size"), 2)
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    momenta = [m.momentum for m in norms]
    model.train()  # batch statistics everywhere, but no dropout
    for m in model.modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    try:
        with torch.no_grad():
            for start in range(0, len(X), batch_size):
                batch = X[start:start + batch_size]
                if len(batch) > 1:  # a batch of one has no variance
                    model(batch)
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.eval()
    return model


def train_model(model: nn.Module, datamodule: EEGDataModule, *, max_epochs: int = 100,
                patience: int | None = 20, lr: float = 1e-3, weight_decay: float = 1e-2,
                scheduler: Literal["cosine", "plateau", "none"] = "cosine",
                gradient_clip_val: float | None = 1.0, label_smoothing: float = 0.0,
                seed: int | None = None, accelerator: str = "cpu", devices: int | str = 1,
                strategy: str = "auto", num_nodes: int = 1, precision: str | None = None,
                log_dir: str | Path | None = None,
                logger_kind: Literal["csv", "tensorboard", "none"] = "csv",
                progress_bar: bool = False, n_threads: int | None = None,
                recalibrate_batch_norm: bool = True,
                augmentation: dict | EpochAugmentation | None = None) -> TrainingResult:
    """Train a decoder with Lightning; early stopping and best-epoch restore on validation loss.

    Parameters
    ----------
    model : torch.nn.Module
        The network, trained in place.
    datamodule : EEGDataModule
        Training (and validation) data; its ``task`` sets the loss (see
        :class:`DecoderModule`).
    max_epochs : int
        Upper bound of training epochs (also the length of the cosine schedule).
    patience : int | None
        Stop after this many epochs without a lower validation loss; None trains
        ``max_epochs``. Ignored without validation data.
    lr, weight_decay, scheduler, label_smoothing
        See :class:`DecoderModule`.
    gradient_clip_val : float | None
        Clip the gradient norm to this value (None: no clipping).
    seed : int | None
        Seed of torch's RNG while training (dropout) inside :func:`torch.random.fork_rng`;
        the caller's RNG state is unchanged afterwards.
    accelerator, devices, strategy, num_nodes, precision
        Passed to :class:`lightning.pytorch.Trainer` (e.g. ``accelerator="gpu", devices=4,
        strategy="ddp"``). CPU by default.
    log_dir : str | Path | None
        Folder for Lightning's logger (``metrics.csv`` or TensorBoard events); no files
        are written when None.
    logger_kind : "csv" | "tensorboard" | "none"
        Which Lightning logger writes to ``log_dir`` (both work offline; TensorBoard needs the
        ``tensorboard`` package).
    progress_bar : bool
        Show Lightning's progress bar and banners.
    n_threads : int | None
        CPU threads of torch while training (restored afterwards); None keeps torch's setting.
        On a machine whose cores are busy with other work, 1 is often several times faster
        than oversubscribed OpenMP threads.
    recalibrate_batch_norm : bool
        After training (and the best-epoch restore), replace the running mean and variance of
        every BatchNorm layer by the exact statistics of the final weights over the training
        epochs (see :func:`recalibrate_batch_norm_stats`; not done for sequence regression,
        whose padded time steps would enter the statistics). With Keras' BatchNorm momentum (0.99,
        torch 0.01, the default of EEGNeX and EEGNet) and the few optimiser steps of small EEG
        data sets, the running statistics are otherwise far from the batch statistics the
        network was trained with, and the network predicts near chance in eval mode.
    augmentation : dict | EpochAugmentation | None
        Random transforms of the training batches (:class:`DecoderModule`); None: off.

    Returns
    -------
    result : TrainingResult
    """
    if not isinstance(datamodule, EEGDataModule):
        raise TypeError(f"datamodule must be an EEGDataModule, got {type(datamodule).__name__}.")
    max_epochs = _check_positive_int(max_epochs, "max_epochs")
    if patience is not None:
        patience = _check_positive_int(patience, "patience")
    check_option("logger_kind", logger_kind, LOGGERS)
    datamodule.setup("fit")
    has_val = datamodule.n_val > 0
    monitor = "val_loss" if has_val else "train_loss"
    module = DecoderModule(model, task=datamodule.task, lr=lr, weight_decay=weight_decay,
                           scheduler=scheduler, label_smoothing=label_smoothing, monitor=monitor,
                           augmentation=augmentation)
    best = _BestWeights(monitor) if has_val else None
    history = _History()
    callbacks: list[pl.Callback] = [history]
    if best is not None:
        callbacks.append(best)
        if patience is not None:
            callbacks.append(pl.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                                        mode="min"))
    train_logger: Any = False
    if log_dir is not None and logger_kind != "none":
        loggers = {"csv": pl.loggers.CSVLogger, "tensorboard": pl.loggers.TensorBoardLogger}
        train_logger = loggers[logger_kind](save_dir=str(log_dir), name="", version="")
    trainer_kwargs: dict[str, Any] = dict(
        max_epochs=max_epochs, accelerator=accelerator, devices=devices, strategy=strategy,
        num_nodes=num_nodes, gradient_clip_val=gradient_clip_val, callbacks=callbacks,
        logger=train_logger, enable_checkpointing=False, enable_progress_bar=progress_bar,
        enable_model_summary=progress_bar, num_sanity_val_steps=0, log_every_n_steps=1,
        default_root_dir=str(log_dir) if log_dir is not None else None,
        limit_val_batches=None if has_val else 0,
    )
    if precision is not None:
        trainer_kwargs["precision"] = precision
    with _quiet_lightning(not progress_bar), torch.random.fork_rng(devices=[]), \
            torch_threads(n_threads):
        if seed is not None:
            torch.manual_seed(int(seed))
        trainer = pl.Trainer(**trainer_kwargs)
        trainer.fit(module, datamodule=datamodule)
    model = module.model.cpu().eval()
    if recalibrate_batch_norm and datamodule.task != "sequence_regression":
        with torch_threads(n_threads):
            recalibrate_batch_norm_stats(model, datamodule.X[datamodule.train_idx],
                                         batch_size=datamodule.batch_size)
    n_epochs = len(history.rows)
    logger.info("Trained %s for %d epochs (best %s %.4g at epoch %s)", type(model).__name__,
                n_epochs, monitor, best.best if best else float("nan"),
                best.best_epoch if best else None)
    return TrainingResult(model=model, history=history.rows,
                          best_epoch=best.best_epoch if best else None, n_epochs=n_epochs,
                          log_dir=Path(log_dir) if train_logger else None)
