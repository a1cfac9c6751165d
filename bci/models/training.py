"""Lightning training of any :mod:`bci.models` decoder.

:class:`DecoderModule` and :func:`train_model`; the data side is
:class:`bci.data.datamodule.EEGDataModule`.

One :class:`DecoderModule` trains every network (``(batch, n_chans, n_times)`` -> logits or
regression outputs) with AdamW, a cosine or plateau learning-rate schedule and gradient clipping;
:func:`train_model` adds early stopping on a validation split and restores the weights of the best
validation epoch. The task ``"sequence_regression"`` trains networks that predict at every time
step (``forward_sequence``: ``(batch, n_chans, n_times)`` -> ``(batch, n_outputs, n_times)``,
e.g. the streaming iBMI velocity decoders of :mod:`bci.models.spiking.ibmi`) on zero-padded
trials of different lengths, with a loss masked to the real time steps. Devices and
distribution are Lightning's own: ``accelerator``, ``devices``, ``strategy`` and ``num_nodes``
go to :class:`lightning.pytorch.Trainer` unchanged (CPU by default).

The task ``"pretrain"`` trains self-supervised networks with a ``pretraining_loss(chunks,
channel_mask)`` (:class:`~bci.models.neurogpt.NeuroGPT`'s masked chunk reconstruction) on
batches of chunks; :func:`bci.models.pretraining.pretrain_model` (also importable from here)
runs it with step-based checkpoints and resumption.

Reproducibility without global state: with ``seed`` set, :func:`train_model` runs inside
:func:`torch.random.fork_rng` seeded with it (weight initialisation is the caller's, see
:class:`~bci.models.classifier.DeepClassifier`), and the data loaders shuffle with their own
:class:`torch.Generator`; the caller's random state is restored afterwards.

Examples
--------
>>> import numpy as np
>>> from bci.data.datamodule import EEGDataModule
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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_fraction, check_option, check_positive, check_type, ensure_int
from .._logging import logger
from ..data.datamodule import TASKS, EEGDataModule
from ._threads import torch_threads
from .augmentation import EpochAugmentation, make_augmentation

# PretrainingResult and pretrain_model (bci.models.pretraining) are importable from here too
__all__ = ["DecoderModule", "TrainingResult", "global_rank", "plot_training_curves",
           "recalibrate_batch_norm_stats", "torch_threads", "train_model"]

SCHEDULERS = ("cosine", "plateau", "none")
#: Tasks of :class:`DecoderModule`: the supervised tasks of the data module, and
#: ``"pretrain"`` (a self-supervised ``pretraining_loss``).
MODULE_TASKS = (*TASKS, "pretrain")
LOGGERS = ("csv", "tensorboard", "none")


# ---------------------------------------------------------------------------------------------
# The LightningModule
# ---------------------------------------------------------------------------------------------
class DecoderModule(pl.LightningModule):
    """Train any decoder ``nn.Module`` (``(batch, n_chans, n_times)`` -> ``(batch, n_outputs)``).

    Parameters
    ----------
    model : torch.nn.Module
        The network (e.g. from :func:`bci.models.registry.get_model`); trained in place.
    task : "classification" | "regression" | "sequence_regression" | "pretrain"
        Cross-entropy on logits and accuracy; mean squared error (targets
        ``(batch, n_outputs)``) and R²; or, for networks with a ``forward_sequence(x)`` that
        predicts at every time step (``(batch, n_chans, n_times)`` -> ``(batch, n_outputs,
        n_times)``), the mean squared error over the real time steps of padded trials (batches
        ``(x, y, mask)``: targets ``(batch, n_outputs, n_times)``, mask ``(batch, n_times)``
        True on real steps; mean over real steps and outputs) and R² over the real steps; or,
        for self-supervised networks with a ``pretraining_loss(chunks, channel_mask)``, that
        loss (batches: a dict with ``"chunks"`` ``(batch, n_chunks, n_chans, chunk_samples)``
        float32 and ``"channel_mask"`` ``(batch, n_chans)`` bool, or a tuple ``(chunks,
        channel_mask)``, or the chunks alone; logs ``{stage}_loss`` only). With ``"pretrain"``
        the cosine schedule runs over the trainer's ``max_steps`` (per step) when it is set.
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
    regression: by its real time steps, so that the epoch loss is the mean over all real steps);
    with several training processes (DDP), the mean of the processes' epoch values.
    """

    def __init__(self, model: nn.Module, *,
                 task: Literal["classification", "regression", "sequence_regression",
                               "pretrain"] = "classification",
                 lr: float = 1e-3, weight_decay: float = 1e-2,
                 scheduler: Literal["cosine", "plateau", "none"] = "cosine",
                 plateau_patience: int = 10, min_lr_ratio: float = 1e-2,
                 label_smoothing: float = 0.0, monitor: str = "val_loss",
                 augmentation: dict | EpochAugmentation | None = None) -> None:
        super().__init__()
        import torchmetrics

        check_type(model, nn.Module, "model",
                   hint="Pass a torch.nn.Module, e.g. from bci.models.registry.get_model.")
        check_option("task", task, MODULE_TASKS)
        check_option("scheduler", scheduler, SCHEDULERS)
        check_positive(lr, "lr", hint="It is the peak learning rate of AdamW.")
        check_positive(weight_decay, "weight_decay", allow_zero=True)
        check_fraction(label_smoothing, "label_smoothing")
        check_fraction(min_lr_ratio, "min_lr_ratio")
        if task == "sequence_regression":
            if not callable(getattr(model, "forward_sequence", None)):
                raise TypeError(f"task='sequence_regression' needs a model with a "
                                f"forward_sequence(x) method ((batch, n_chans, n_times) -> "
                                f"(batch, n_outputs, n_times)); {type(model).__name__} has "
                                "none.")
            if augmentation is not None:
                raise ValueError("augmentation transforms epochs with one target each; it is "
                                 "not available for task='sequence_regression'.")
        if task == "pretrain":
            if not callable(getattr(model, "pretraining_loss", None)):
                raise TypeError(f"task='pretrain' needs a model with a pretraining_loss(chunks, "
                                f"channel_mask) method; {type(model).__name__} has none (build "
                                "NeuroGPT with finetune=None).")
            if augmentation is not None:
                raise ValueError("augmentation transforms labelled epochs; it is not available "
                                 "for task='pretrain'.")
        self.save_hyperparameters(ignore=["model", "augmentation"])
        self.model = model
        self.augmentation = make_augmentation(augmentation)
        n_outputs = getattr(model, "n_outputs", None)
        if task == "pretrain":
            self.metric_name = None
            self.metrics = nn.ModuleDict()
            return
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
        """Return the network's output.

        ``model(x)``, or ``model.forward_sequence(x)`` for sequence regression.
        """
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

    def _pretrain_step(self, batch, stage: str) -> torch.Tensor:
        chunks, channel_mask = _chunk_batch(batch)
        loss = self.model.pretraining_loss(chunks, channel_mask)
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=len(chunks), sync_dist=True)
        return loss

    def _step(self, batch, stage: str) -> torch.Tensor:
        task = self.hparams.task
        if task == "pretrain":
            return self._pretrain_step(batch, stage)
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
                 batch_size=n_samples, sync_dist=True)
        self.log(f"{stage}_{self.metric_name}", metric, on_step=False, on_epoch=True,
                 prog_bar=stage != "train", batch_size=n_samples)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Return the training loss of one batch (logs loss and metric)."""
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Return the validation loss of one batch (logs loss and metric)."""
        return self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Return the test loss of one batch (logs loss and metric)."""
        return self._step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        """Return class probabilities (classification) or outputs (regression).

        For sequence regression, the outputs at every time step; for pretraining, the chunk
        embeddings (``model.embed_chunks``).
        """
        if self.hparams.task == "pretrain":
            chunks, channel_mask = _chunk_batch(batch)
            return self.model.embed_chunks(chunks, channel_mask)
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        out = self(x)
        return out.softmax(1) if self.hparams.task == "classification" else out

    def configure_optimizers(self):
        """Return AdamW and the learning-rate schedule chosen by ``scheduler``."""
        hp = self.hparams
        optimizer = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return optimizer
        if hp.scheduler == "cosine" and hp.task == "pretrain" and self.trainer.max_steps > 0:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=int(self.trainer.max_steps), eta_min=hp.lr * hp.min_lr_ratio)
            return {"optimizer": optimizer,
                    "lr_scheduler": {"scheduler": sched, "interval": "step"}}
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


def _chunk_batch(batch) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(chunks, channel_mask)`` of a pretraining batch (dict, tuple or chunks alone)."""
    if isinstance(batch, Mapping):
        if "chunks" not in batch:
            raise ValueError(f"A pretraining batch dict needs a 'chunks' entry, got keys "
                             f"{sorted(batch)}.")
        return batch["chunks"], batch.get("channel_mask")
    if isinstance(batch, (list, tuple)):
        if not 1 <= len(batch) <= 2:
            raise ValueError(f"A pretraining batch is (chunks, channel_mask), got {len(batch)} "
                             "items.")
        return batch[0], (batch[1] if len(batch) == 2 else None)
    return batch, None


def _masked_mse(out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Return the mean squared error over the real time steps and the outputs.

    ``out``, ``y`` ``(batch, n_outputs, n_times)``, ``mask`` ``(batch, n_times)`` True on real
    steps.
    """
    if out.shape != y.shape or mask.shape != (out.shape[0], out.shape[2]):
        raise ValueError(f"sequence regression expects outputs and targets (batch, n_outputs, "
                         f"n_times) and a mask (batch, n_times); got outputs "
                         f"{tuple(out.shape)}, targets {tuple(y.shape)}, mask "
                         f"{tuple(mask.shape)}.")
    return ((out - y) ** 2).mean(1)[mask].mean()


# ---------------------------------------------------------------------------------------------
# Callbacks and the training function
# ---------------------------------------------------------------------------------------------
def global_rank(devices: int | str = 1) -> int:
    """Return this process's global rank in a distributed training (0 when alone).

    After Lightning has set up its processes, the rank of :mod:`torch.distributed`; before
    (for work that only one process must do, such as writing a run's settings), the rank the
    launcher gave this process: ``RANK`` (torchrun), else ``NODE_RANK * devices +
    LOCAL_RANK`` (Lightning's own launcher, which starts the other processes of a node with
    ``LOCAL_RANK``), else ``SLURM_PROCID`` (``srun``).

    Parameters
    ----------
    devices : int | str
        Processes per node, as given to the trainer (a non-integer counts as 1).

    Returns
    -------
    int
    """
    import os

    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return int(torch.distributed.get_rank())
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"])
    if "LOCAL_RANK" in env or "NODE_RANK" in env:
        per_node = devices if isinstance(devices, int) else 1
        return int(env.get("NODE_RANK", 0)) * per_node + int(env.get("LOCAL_RANK", 0))
    return int(env.get("SLURM_PROCID", 0))


def _rank_seed(seed: int, *keys: int) -> int:
    """Return a torch seed drawn from ``(seed, *keys)`` (numpy's SeedSequence)."""
    state = np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


class _RankSeed(pl.Callback):
    """Seed torch's RNG with ``(seed, rank)`` in every process of a distributed training.

    The processes then draw different dropout masks (one process keeps the caller's seeding,
    so a 1-process run is unchanged). The weights are the same on every process: DDP
    broadcasts those of rank 0.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.world_size > 1:
            torch.manual_seed(_rank_seed(self.seed, trainer.global_rank))


class _BestWeights(pl.Callback):
    """Keep (in memory) the weights of the epoch with the lowest ``monitor``.

    They are restored at the end of training.
    """

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


def _trainer_kwargs(*, log_dir: str | Path | None, logger_kind: str, progress_bar: bool,
                    has_val: bool, sync_batchnorm: bool, precision: Any,
                    **kwargs: Any) -> dict[str, Any]:
    """Return the ``pl.Trainer`` keywords that network training and pretraining share.

    The logger (``"csv"``/``"tensorboard"`` under ``log_dir``, or none), the banners and bar
    with ``progress_bar``, no sanity check, a log line per step, validation only when there is
    a validation split, and ``precision`` only when given; ``kwargs`` are passed through.
    """
    train_logger: Any = False
    if log_dir is not None and logger_kind != "none":
        loggers = {"csv": pl.loggers.CSVLogger, "tensorboard": pl.loggers.TensorBoardLogger}
        train_logger = loggers[logger_kind](save_dir=str(log_dir), name="", version="")
    settings: dict[str, Any] = dict(
        logger=train_logger, enable_progress_bar=progress_bar, enable_model_summary=progress_bar,
        num_sanity_val_steps=0, log_every_n_steps=1, limit_val_batches=None if has_val else 0,
        sync_batchnorm=bool(sync_batchnorm), **kwargs)
    if precision is not None:
        settings["precision"] = precision
    return settings


@contextlib.contextmanager
def _quiet_lightning(quiet: bool) -> Iterator[None]:
    """Silence Lightning's per-Trainer banners and small-dataset hints while ``quiet``.

    Banners such as "GPU available: ..."; the logger level is restored afterwards.
    """
    lightning_logger = logging.getLogger("lightning.pytorch")
    level = lightning_logger.level
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
        warnings.filterwarnings("ignore", message=r".*Total length of .* across ranks is zero.*")
        # frozen parts (a linear probe's encoder) are in eval mode on purpose
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode at the start "
                                                  r"of training.*")
        # pretraining without validation batches (validation_step exists for those with them)
        warnings.filterwarnings("ignore", message=r".*validation_step. but have no "
                                                  r".val_dataloader.*")
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
    off during the pass; no weight changes. Networks without BatchNorm are returned as is;
    frozen BatchNorm layers (``requires_grad=False``, e.g. a linear probe's pretrained
    encoder) keep their statistics.

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
    # frozen BatchNorm layers (a linear probe's pretrained encoder) keep their statistics
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats and (m.weight is None or m.weight.requires_grad)]
    if not norms or len(X) < 2:  # one epoch has no batch statistics: keep the running ones
        return model.eval()
    batch_size = max(ensure_int(batch_size, "batch_size", minimum=1), 2)
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
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    return model


def train_model(model: nn.Module, datamodule: EEGDataModule, *, max_epochs: int = 100,
                patience: int | None = 20, lr: float = 1e-3, weight_decay: float = 1e-2,
                scheduler: Literal["cosine", "plateau", "none"] = "cosine",
                gradient_clip_val: float | None = 1.0, label_smoothing: float = 0.0,
                seed: int | None = None, accelerator: str = "cpu", devices: int | str = 1,
                strategy: str = "auto", num_nodes: int = 1, precision: str | None = None,
                sync_batchnorm: bool = False, log_dir: str | Path | None = None,
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
        the caller's RNG state is unchanged afterwards. With several processes, each seeds
        its RNG with ``(seed, rank)``.
    accelerator, devices, strategy, num_nodes, precision, sync_batchnorm
        Passed to :class:`lightning.pytorch.Trainer` (e.g. ``accelerator="gpu", devices=4,
        strategy="ddp"``). CPU by default. With DDP on ``N`` processes (devices x nodes;
        Lightning launches the other processes of a node by running the same command again,
        or takes those started by torchrun or SLURM's ``srun``), each trains on its shard of
        every epoch with ``datamodule.batch_size / N`` epochs a step, so the averaged gradient
        is that of the 1-process batch; only rank 0 writes logs. BatchNorm layers use the
        statistics of the process's batch unless ``sync_batchnorm`` (torch's SyncBatchNorm,
        GPU only).
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
    check_type(datamodule, EEGDataModule, "datamodule",
               hint="Wrap the epochs in bci.data.datamodule.EEGDataModule(X, y).")
    max_epochs = ensure_int(max_epochs, "max_epochs", minimum=1)
    if patience is not None:
        patience = ensure_int(patience, "patience", minimum=1)
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
    if seed is not None:
        callbacks.append(_RankSeed(int(seed)))
    if best is not None:
        callbacks.append(best)
        if patience is not None:
            callbacks.append(pl.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                                        mode="min"))
    trainer_kwargs = _trainer_kwargs(
        max_epochs=max_epochs, accelerator=accelerator, devices=devices, strategy=strategy,
        num_nodes=num_nodes, gradient_clip_val=gradient_clip_val, callbacks=callbacks,
        log_dir=log_dir, logger_kind=logger_kind, progress_bar=progress_bar, has_val=has_val,
        sync_batchnorm=sync_batchnorm, precision=precision, enable_checkpointing=False,
        default_root_dir=str(log_dir) if log_dir is not None else None)
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
                          log_dir=Path(log_dir) if trainer_kwargs["logger"] else None)


def plot_training_curves(histories: Mapping[str, Sequence[Mapping[str, float]]], *,
                         metric: str = "loss", ylabel: str | None = None):
    """Plot training (solid) and validation (dashed) curves of one or more trainings.

    Parameters
    ----------
    histories : mapping of str to list of dict
        ``{name: TrainingResult.history}`` (:func:`train_model`): rows with ``epoch``,
        ``train_<metric>`` and, with validation data, ``val_<metric>``; a missing value is a
        gap.
    metric : str
        What to plot, e.g. ``"loss"`` or ``"acc"``.
    ylabel : str | None
        Label of the y axis; ``metric`` when None.

    Returns
    -------
    fig : matplotlib.figure.Figure
        One axis, two lines per training (labels ``"<name> train"``, ``"<name> val"``).
        Made without pyplot, so no backend is chosen or changed; save it with
        ``fig.savefig(path)``.

    Examples
    --------
    >>> rows = [{"epoch": 0, "train_loss": 0.7, "val_loss": 0.6},
    ...         {"epoch": 1, "train_loss": 0.5, "val_loss": 0.55}]
    >>> fig = plot_training_curves({"net": rows})
    >>> [line.get_label() for line in fig.axes[0].lines]
    ['net train', 'net val']
    """
    from matplotlib.figure import Figure

    check_type(histories, Mapping, "histories")
    check_type(metric, str, "metric")
    fig = Figure(figsize=(6, 3.5), layout="tight")
    ax = fig.subplots()
    for k, (name, rows) in enumerate(histories.items()):
        epochs = [row["epoch"] for row in rows]
        for stage, style in (("train", "-"), ("val", "--")):
            ax.plot(epochs, [row.get(f"{stage}_{metric}", np.nan) for row in rows], ls=style,
                    color=f"C{k % 10}", label=f"{name} {stage}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric if ylabel is None else ylabel)
    if histories:
        ax.legend(loc="best", fontsize=8)
    return fig


def __getattr__(name: str) -> Any:
    """Import :mod:`bci.models.pretraining`'s names from here too (it builds on this module)."""
    if name in ("PretrainingResult", "pretrain_model"):
        from . import pretraining

        return getattr(pretraining, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
