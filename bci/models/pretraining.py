"""Self-supervised pretraining with Lightning: :func:`pretrain_model`.

The task ``"pretrain"`` of :class:`~bci.models.training.DecoderModule` trains networks with a
``pretraining_loss(chunks, channel_mask)`` (:class:`~bci.models.neurogpt.NeuroGPT`'s masked
chunk reconstruction) on batches of chunks; :func:`pretrain_model` runs it with step-based
checkpoints written atomically, resumption (refusing a damaged checkpoint or a schedule of
another length), per-step seeding (a resumed run equals the uninterrupted one) and Lightning's
accelerators, devices and DDP on several processes and nodes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch
from torch import nn

from .._checks import check_option, ensure_int
from .._logging import logger
from ._threads import torch_threads
from .training import (
    LOGGERS,
    DecoderModule,
    _History,
    _quiet_lightning,
    _rank_seed,
    _trainer_kwargs,
)

__all__ = ["PretrainingResult", "pretrain_model"]


@dataclass
class PretrainingResult:
    """What :func:`pretrain_model` returns.

    Attributes
    ----------
    model : torch.nn.Module
        The pretrained network, in eval mode, on CPU.
    history : list of dict
        One row per epoch: ``epoch``, ``train_loss``, ``val_loss`` (with validation data),
        ``lr``.
    n_steps : int
        Optimiser steps done in total (including those before a resumed checkpoint).
    last_checkpoint : Path | None
        ``checkpoint_dir / "last.ckpt"`` when checkpoints were written.
    log_dir : Path | None
        Folder of the CSV/TensorBoard logs, when a logger was used.
    """

    model: nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    n_steps: int = 0
    last_checkpoint: Path | None = None
    log_dir: Path | None = None


class _StepSeed(pl.Callback):
    """Seed torch's RNG before every training step from ``(seed, global_step)``.

    Dropout masks then depend on the step only (and on the rank, with several processes), so a
    run resumed from a checkpoint draws the same masks as the uninterrupted run (Lightning's
    checkpoints do not hold RNG states). It runs inside :func:`pretrain_model`'s
    :func:`torch.random.fork_rng`.
    """

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        keys = (trainer.global_step,) if trainer.world_size == 1 else (
            trainer.global_step, trainer.global_rank)  # each process its own masks
        torch.manual_seed(_rank_seed(self.seed, *keys))


class _ExtendCosine(pl.Callback):
    """After a resume, stretch a restored cosine schedule over this run's length.

    Lightning restores the scheduler's state, ``T_max`` included, so a run resumed to more
    epochs (or steps) would keep the first run's schedule, whose learning rate rises again
    after its end. Here ``T_max`` becomes ``t_max`` and the learning rate is set to the value
    of the new cosine at the current step, ``eta_min + (lr - eta_min) (1 + cos(pi t /
    t_max)) / 2``; the torch scheduler continues that curve exactly from there.
    """

    def __init__(self, t_max: int) -> None:
        self.t_max = t_max

    def on_train_start(self, trainer, pl_module) -> None:
        for config in trainer.lr_scheduler_configs:
            sched = config.scheduler
            if not isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) \
                    or sched.T_max == self.t_max:
                continue
            old, t = sched.T_max, sched.last_epoch
            sched.T_max = self.t_max
            factor = (1 + math.cos(math.pi * min(t, self.t_max) / self.t_max)) / 2
            for group, base in zip(sched.optimizer.param_groups, sched.base_lrs, strict=True):
                group["lr"] = sched.eta_min + (base - sched.eta_min) * factor
            sched._last_lr = [group["lr"] for group in sched.optimizer.param_groups]
            logger.info("Resumed cosine schedule stretched from %d to %d %ss (at %d)", old,
                        self.t_max, config.interval, t)


def _atomic_checkpoint_io():
    """Return a Lightning ``CheckpointIO`` that writes each checkpoint atomically in place.

    Lightning's own writer (``_atomic_save``) stages the file in the system's temporary folder
    and moves it into place; when that folder is on another file system than the checkpoints
    (a local ``/tmp`` and a shared checkpoint disk), the move is a copy into the destination,
    which truncates the previous checkpoint first. Here the checkpoint is written to
    ``<name>.part`` beside its destination, flushed to disk, then renamed over it
    (:func:`os.replace`, atomic on one file system): an interruption leaves the previous
    checkpoint intact, and the partial file is removed.
    """
    import os

    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    class _AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                            storage_options: Any = None) -> None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part")
            try:
                with open(tmp, "wb") as f:
                    torch.save(checkpoint, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise

    return _AtomicCheckpointIO()


def _check_checkpoint(path: Path) -> None:
    """Refuse a missing, truncated or damaged Lightning checkpoint with a clear error.

    A checkpoint is a zip archive (``torch.save``); every member's CRC is checked.
    """
    import zipfile

    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}; give the path of a .ckpt written by "
                                "pretrain_model(checkpoint_dir=...), or ckpt_path='last'.")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"Checkpoint {path} is truncated or damaged ({err}); resume from an "
                         "earlier checkpoint or start again.") from err
    if bad is not None:
        raise ValueError(f"Checkpoint {path} is damaged (member {bad} fails its CRC); resume "
                         "from an earlier checkpoint or start again.")


def pretrain_model(model: nn.Module, data: Any, *, val_data: Any = None,
                   max_steps: int | None = None, max_epochs: int | None = 10,
                   lr: float = 1e-4, weight_decay: float = 0.1,
                   scheduler: Literal["cosine", "plateau", "none"] = "cosine",
                   gradient_clip_val: float | None = 1.0, seed: int | None = None,
                   checkpoint_dir: str | Path | None = None,
                   every_n_steps: int | None = None, ckpt_path: str | Path | None = None,
                   accelerator: str = "cpu", devices: int | str = 1, strategy: str = "auto",
                   num_nodes: int = 1, precision: str | None = None,
                   sync_batchnorm: bool = False, log_dir: str | Path | None = None,
                   logger_kind: Literal["csv", "tensorboard", "none"] = "csv",
                   progress_bar: bool = True, n_threads: int | None = None,
                   callbacks: Sequence[pl.Callback] = ()) -> PretrainingResult:
    """Pretrain a self-supervised network (``task="pretrain"`` of :class:`DecoderModule`).

    Parameters
    ----------
    model : torch.nn.Module
        A network with ``pretraining_loss(chunks, channel_mask)``, e.g.
        ``NeuroGPT.from_named_config("small")``; trained in place.
    data : torch.utils.data.DataLoader | lightning.pytorch.LightningDataModule
        Training batches (see :class:`DecoderModule`, task ``"pretrain"``), or a data module
        with ``train_dataloader`` (and ``val_dataloader``, whose batches are validated when
        there are any). With several processes, prefer a data module such as
        :class:`~bci.data.pretraining_datamodule.PretrainingDataModule`: it makes each
        process's loader once the processes exist (its shard, ``batch_size / N`` samples a
        step); a DataLoader's batch size is per process, and Lightning shards its sampler.
    val_data : DataLoader | None
        Validation batches (with a DataLoader ``data``); ``val_loss`` is logged per epoch.
    max_steps, max_epochs : int | None
        Stop after this many optimiser steps or epochs (the first reached; None: no bound,
        but one of them must be set). The cosine schedule runs over ``max_steps`` when set.
    lr, weight_decay, scheduler
        AdamW and its schedule (see :class:`DecoderModule`); the defaults are the authors'
        Neuro-GPT settings (1e-4, 0.1).
    gradient_clip_val : float | None
        Gradient-norm clipping.
    seed : int | None
        Seed of torch's RNG (dropout), drawn afresh before every step from ``(seed, step)``
        (``(seed, step, rank)`` with several processes) inside :func:`torch.random.fork_rng`,
        so that a resumed run equals the uninterrupted one; the caller's RNG state is
        unchanged afterwards. The batch order is the data loader's.
    checkpoint_dir : str | Path | None
        Write Lightning checkpoints there (:class:`~lightning.pytorch.callbacks.ModelCheckpoint`:
        ``last.ckpt`` and the latest ``step=<n>.ckpt``), at the end of every epoch or every
        ``every_n_steps`` steps. Each checkpoint is written to ``<name>.part`` beside its
        destination and renamed over it when complete (Lightning's own writer can truncate
        the previous checkpoint when the system's temporary folder is on another disk), and
        Lightning removes the previous ``step=`` file only after the new one is saved, so an
        interruption never leaves a damaged or missing ``last.ckpt``. None: no checkpoints.
    every_n_steps : int | None
        Checkpoint every this many steps instead of every epoch.
    ckpt_path : str | Path | None
        Resume from this checkpoint (model, optimiser, schedule, step and epoch counters);
        ``"last"``: ``checkpoint_dir / "last.ckpt"`` if it exists (else start afresh), so a
        job can be restarted with the same call. Training bounded by ``max_epochs`` (not
        ``max_steps``) and resumed from an end-of-epoch checkpoint (the default) reproduces
        the uninterrupted run exactly when the batch order depends on the epoch only (no
        shuffling, or a sampler with ``set_epoch``); a test kills and resumes a run. With
        ``max_steps`` or ``every_n_steps``, Lightning resumes mid-epoch, and a data loader
        without ``state_dict``/``load_state_dict`` restarts its epoch (Lightning warns).
        Resumed with a larger (or smaller) ``max_epochs``/``max_steps`` than the checkpoint's
        run, the cosine schedule is stretched over the new length from the current step on:
        the learning rate becomes the new cosine's value there (the first run's steps keep
        the schedule they had, so the weights differ from an uninterrupted run of the new
        length).
    accelerator, devices, strategy, num_nodes, precision, sync_batchnorm
        Passed to :class:`lightning.pytorch.Trainer` (e.g. ``accelerator="gpu", devices=8,
        strategy="ddp", num_nodes=2``). CPU by default (DDP on CPU: the gloo backend). Every
        process runs this function; only rank 0 writes checkpoints and logs, and a resumed
        run may use another number of processes with the same global batch. BatchNorm layers
        use each process's batch statistics unless ``sync_batchnorm`` (GPU only).
    log_dir, logger_kind
        Lightning logger (see :func:`train_model`).
    progress_bar : bool
        Show Lightning's progress bar.
    n_threads : int | None
        Torch CPU threads while training (restored afterwards).
    callbacks : sequence of lightning.pytorch.Callback
        Extra Lightning callbacks, run after this function's own.

    Returns
    -------
    result : PretrainingResult

    Raises
    ------
    FileNotFoundError
        ``ckpt_path`` names a file that does not exist.
    ValueError
        A truncated or damaged checkpoint, or no stopping bound.
    """
    if max_steps is not None:
        max_steps = ensure_int(max_steps, "max_steps", minimum=1)
    if max_epochs is not None:
        max_epochs = ensure_int(max_epochs, "max_epochs", minimum=1)
    if max_steps is None and max_epochs is None:
        raise ValueError("pretrain_model needs max_steps or max_epochs (or both).")
    if every_n_steps is not None:
        every_n_steps = ensure_int(every_n_steps, "every_n_steps", minimum=1)
    check_option("logger_kind", logger_kind, LOGGERS)
    extra_callbacks = list(callbacks)
    model.train()  # Lightning keeps the modes it is given
    is_module = isinstance(data, pl.LightningDataModule)
    # a data module's validation set is known once it is set up (in every process)
    has_val = val_data is not None or (is_module and bool(getattr(data, "val_fraction", 0)))
    module = DecoderModule(model, task="pretrain", lr=lr, weight_decay=weight_decay,
                           scheduler=scheduler,
                           monitor="val_loss" if has_val else "train_loss")
    history = _History()
    callbacks: list[pl.Callback] = [history]
    if seed is not None:
        callbacks.append(_StepSeed(int(seed)))
    if scheduler == "cosine":
        callbacks.append(_ExtendCosine(max_steps if max_steps is not None else max_epochs))
    checkpoint = None
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        checkpoint = pl.callbacks.ModelCheckpoint(
            dirpath=str(checkpoint_dir), filename="{step}", save_last=True, save_top_k=1,
            every_n_train_steps=every_n_steps, every_n_epochs=None if every_n_steps else 1,
            save_on_train_epoch_end=True)
        callbacks.append(checkpoint)
    callbacks.extend(extra_callbacks)
    resume = None
    if ckpt_path is not None:
        if str(ckpt_path) == "last":
            if checkpoint_dir is None:
                raise ValueError("ckpt_path='last' needs checkpoint_dir.")
            last = checkpoint_dir / "last.ckpt"
            resume = last if last.is_file() else None
            if resume is None:
                logger.info("No %s yet: pretraining from the start", last)
        else:
            resume = Path(ckpt_path)
        if resume is not None:
            _check_checkpoint(resume)
    trainer_kwargs = _trainer_kwargs(
        max_steps=-1 if max_steps is None else max_steps,
        max_epochs=-1 if max_epochs is None else max_epochs,
        accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=num_nodes,
        gradient_clip_val=gradient_clip_val, callbacks=callbacks, log_dir=log_dir,
        logger_kind=logger_kind, progress_bar=progress_bar, has_val=has_val,
        sync_batchnorm=sync_batchnorm, precision=precision,
        enable_checkpointing=checkpoint is not None,
        default_root_dir=str(log_dir or checkpoint_dir or Path.cwd()),
        plugins=[_atomic_checkpoint_io()] if checkpoint is not None else None)
    with _quiet_lightning(not progress_bar), torch.random.fork_rng(devices=[]), \
            torch_threads(n_threads):
        if seed is not None:
            torch.manual_seed(int(seed))
        trainer = pl.Trainer(**trainer_kwargs)
        fit_kwargs: dict[str, Any] = {"ckpt_path": None if resume is None else str(resume)}
        # resuming into the folder of the checkpoints is the point: no "not empty" warning
        warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is "
                                                  r"not empty.*")
        if is_module:
            trainer.fit(module, datamodule=data, **fit_kwargs)
        else:
            trainer.fit(module, train_dataloaders=data, val_dataloaders=val_data,
                        **fit_kwargs)
    model = module.model.cpu().eval()
    last = checkpoint_dir / "last.ckpt" if checkpoint is not None else None
    logger.info("Pretrained %s for %d steps", type(model).__name__, trainer.global_step)
    return PretrainingResult(model=model, history=history.rows,
                             n_steps=int(trainer.global_step),
                             last_checkpoint=last if last is not None and last.is_file()
                             else None,
                             log_dir=Path(log_dir) if trainer_kwargs["logger"] else None)
