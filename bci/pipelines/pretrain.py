"""Self-supervised Neuro-GPT pretraining on continuous recordings: ``bci pretrain``.

:func:`pretrain` wires the pieces together: recording sources
(:func:`bci.data.pretraining_corpus.pretraining_source`, or any source object such as
:class:`~bci.data.pretraining_corpus.RawRecordings`) -> :class:`~bci.data.pretraining_datamodule.
PretrainingDataModule` (channel mapping onto the model's 22 channels, 0.5-45 Hz band-pass,
resampling, robust z-score, chunking) -> a pretraining :class:`~bci.models.neurogpt.NeuroGPT`
(``finetune=None``) in a named configuration -> :func:`bci.models.pretraining.pretrain_model`
(Lightning: checkpoints, resume, progress bar, accelerator/devices/strategy, seeded) ->
:func:`~bci.models.neurogpt.save_pretrained`. The pretrained file's ``info`` records the
preprocessing (``info["preprocessing"]``: channels, band, clip, rate), so that fine-tuning
(:func:`bci.pipelines.train.train_decoder` with ``pretrained=``) maps and scales its epochs the
same way.

A run's settings are written to ``checkpoint_dir / "pretrain.json"``; ``resume=True`` refuses
to continue a run with other settings, and a new run refuses a folder that already holds
another run's checkpoints (it would overwrite them).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._checks import check_bool, check_fraction, check_option, check_type, ensure_int
from .._logging import logger

__all__ = ["pretrain"]

#: File in the checkpoint folder that records the settings of the run.
RUN_FILE = "pretrain.json"
#: File in the checkpoint folder with one row of losses per finished epoch (over resumes).
HISTORY_FILE = "history.json"


class _HistoryFile:
    """Per-epoch losses of a run, kept in a JSON file so that they survive a resume."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows: list[dict[str, float]] = (json.loads(path.read_text())
                                             if path.is_file() else [])

    def add(self, row: dict[str, float]) -> None:
        self.rows = [r for r in self.rows if r["epoch"] < row["epoch"]] + [row]
        tmp = self.path.with_name(self.path.name + ".part")
        tmp.write_text(json.dumps(self.rows, indent=1))
        tmp.replace(self.path)

    def callback(self):
        import lightning.pytorch as pl

        outer = self

        class _Callback(pl.Callback):
            def on_train_epoch_end(self, trainer, pl_module) -> None:
                if not trainer.is_global_zero:
                    return
                row: dict[str, float] = {"epoch": int(trainer.current_epoch)}
                row.update({k: float(v) for k, v in trainer.callback_metrics.items()
                            if k.startswith(("train_", "val_"))})
                outer.add(row)

        return _Callback()


def _sources(datasets: Any, subjects, exclude_subjects, dataset_params) -> list[Any]:
    from ..data.pretraining_corpus import pretraining_source

    if isinstance(datasets, str) or hasattr(datasets, "load_subject"):
        datasets = [datasets]
    datasets = list(datasets)
    if not datasets:
        raise ValueError("pretrain needs at least one dataset, e.g. ['Kalunga2016'].")
    out = []
    for item in datasets:
        if isinstance(item, str):
            out.append(pretraining_source(item, subjects=subjects,
                                          exclude_subjects=exclude_subjects,
                                          dataset_params=(dataset_params or {}).get(item)))
        elif hasattr(item, "load_subject"):
            out.append(item)
        else:
            raise TypeError(f"datasets must hold dataset names or recording sources (objects "
                            f"with load_subject), got {type(item).__name__}.")
    return out


def _describe(source: Any) -> dict[str, Any]:
    return {"name": str(getattr(source, "name", type(source).__name__)),
            "subjects": [int(s) for s in getattr(source, "subjects", [])]}


def pretrain(datasets: str | Any | Sequence[str | Any], out: str | Path, *,
             subjects: Sequence[int] | None = None,
             exclude_subjects: Sequence[int] | None = None,
             dataset_params: dict[str, dict] | None = None,
             config: str = "small", max_epochs: int = 10, batch_size: int = 16,
             lr: float = 1e-4, val_fraction: float = 0.0, offsets: str = "random",
             cache_dir: str | Path | None = None, checkpoint_dir: str | Path | None = None,
             resume: bool = False, accelerator: str = "cpu", devices: int | str = 1,
             strategy: str = "auto", num_nodes: int = 1, num_workers: int = 0,
             seed: int = 0, progress_bar: bool = True, n_threads: int | None = None,
             callbacks: Sequence[Any] = ()) -> Path:
    """Pretrain Neuro-GPT self-supervised on continuous recordings; write the weights file.

    Parameters
    ----------
    datasets : str | source | sequence of str or source
        Dataset names (``"Kalunga2016"``, ``"PhysionetMI"`` (every stored run), any MOABB or
        synthetic dataset name) or recording sources (objects with ``name``, ``subjects`` and
        ``load_subject``, e.g. :class:`~bci.data.pretraining_corpus.RawRecordings`).
    out : str | Path
        The pretrained-weights file to write (:func:`~bci.models.neurogpt.save_pretrained`),
        the file ``bci train --model NeuroGPT --pretrained`` takes.
    subjects, exclude_subjects : sequence of int | None
        Subject selection applied to every dataset given by name (all when None); an excluded
        subject is never prepared, and runs identical to one of its runs are left out.
    dataset_params : dict | None
        Per dataset name, the parameters of :func:`~bci.data.pretraining_corpus.
        pretraining_source` (``{"SyntheticSSVEP": {"n_trials": 4}}``).
    config : "small" | "paper"
        Named configuration (:data:`bci.models.neurogpt.NEUROGPT_CONFIGS`): the model and the
        chunk geometry (rate, chunk length, overlap, chunks per sample).
    max_epochs : int
        Training epochs (passes over the training samples).
    batch_size : int
        Samples per optimiser step, over all processes (each of ``N`` DDP processes takes
        ``batch_size / N``; a multiple of ``N`` is required).
    lr : float
        AdamW learning rate (cosine schedule).
    val_fraction : float
        Fraction of recordings held out to log ``val_loss`` (0: none).
    offsets : "random" | "sequential"
        Starts of the training samples within each recording (seeded per epoch).
    cache_dir : str | Path | None
        Folder of the prepared signals; None: ``<out stem>_cache`` beside ``out``.
    checkpoint_dir : str | Path | None
        Folder of the Lightning checkpoints (``last.ckpt`` each epoch, written atomically);
        None: ``<out stem>_checkpoints`` beside ``out``.
    resume : bool
        Continue the run of ``checkpoint_dir`` from ``last.ckpt`` (to ``max_epochs`` in all).
    accelerator, devices, strategy, num_nodes
        Lightning's (``accelerator="gpu", devices=8, strategy="ddp"``; on CPU ``devices=N,
        strategy="ddp"`` runs ``N`` processes over gloo). Every process runs this function
        (Lightning starts the others of a node by running the same command; torchrun or
        ``srun`` start them all); rank 0 prepares the recordings, writes the checkpoints, the
        history and ``out``, the others return ``out`` without writing. Across nodes,
        ``cache_dir`` and ``checkpoint_dir`` must be on a shared file system.
    num_workers : int
        Data-loader processes.
    seed : int
        Seed of the weights, the recording split, the batch order, the sample starts and the
        dropout masks; a resumed run reproduces the uninterrupted one.
    progress_bar : bool
        Show Lightning's progress bar.
    n_threads : int | None
        Torch CPU threads.
    callbacks : sequence of lightning.pytorch.Callback
        Extra Lightning callbacks (tests interrupt a run with one).

    Returns
    -------
    path : Path
        ``out``.

    Raises
    ------
    FileNotFoundError
        ``resume`` without a checkpoint in ``checkpoint_dir``; a dataset's files missing.
    FileExistsError
        A new run (``resume=False``) into a checkpoint folder that holds another run's
        checkpoints.
    ValueError
        A montage with no channel in common with the model, a truncated or damaged
        checkpoint, a resumed run with other settings, or a bad parameter.
    """
    from ..data.pretraining_datamodule import PretrainingDataModule
    from ..models.neurogpt import NEUROGPT_CONFIGS, NeuroGPT, save_pretrained
    from ..models.pretraining import pretrain_model
    from ..models.training import global_rank

    check_option("config", config, NEUROGPT_CONFIGS)
    max_epochs = ensure_int(max_epochs, "max_epochs", minimum=1)
    batch_size = ensure_int(batch_size, "batch_size", minimum=1)
    seed = ensure_int(seed, "seed", minimum=0)
    resume = check_bool(resume, "resume")
    check_type(out, (str, Path), "out")
    val_fraction = check_fraction(val_fraction, "val_fraction", allow_zero=True) \
        if val_fraction else 0.0
    out = Path(out)
    cache_dir = Path(cache_dir) if cache_dir is not None else \
        out.with_name(out.stem + "_cache")
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else \
        out.with_name(out.stem + "_checkpoints")
    sources = _sources(datasets, subjects, exclude_subjects, dataset_params)
    settings = {"config": config, "sources": [_describe(s) for s in sources],
                "batch_size": batch_size, "lr": float(lr), "val_fraction": val_fraction,
                "offsets": offsets, "seed": seed}
    # with several processes (DDP), every process runs this function: only rank 0 writes the
    # run's settings, prepares the recordings before training and writes the weights file
    rank = global_rank(devices)
    _check_run(checkpoint_dir, settings, resume, write=rank == 0)

    geometry = NEUROGPT_CONFIGS[config]
    data = PretrainingDataModule(
        sources, cache_dir=cache_dir, sfreq=geometry["sfreq"], chunk_s=geometry["chunk_s"],
        overlap_s=geometry["overlap_s"], n_chunks=geometry["n_chunks"],
        offsets=offsets, val_fraction=val_fraction, batch_size=batch_size,
        num_workers=num_workers, seed=seed)
    if rank == 0:  # the others set up inside training, after rank 0 has prepared the cache
        data.setup()
        if not len(data.train_set):
            raise ValueError(f"No pretraining sample: every recording of {settings['sources']} "
                             f"is shorter than one sample ("
                             f"{data.spec.sample_samples / data.spec.sfreq:g} s); add longer "
                             "recordings or use a smaller configuration.")
        logger.info("Pretraining NeuroGPT (%s) on %d training samples: minutes %s", config,
                    len(data.train_set), data.minutes())
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the initial weights
        model = NeuroGPT.from_named_config(config, finetune=None)
    history = _HistoryFile(checkpoint_dir / HISTORY_FILE)
    logs = checkpoint_dir / "logs"
    attempt = len(list(logs.glob("attempt*"))) if logs.is_dir() else 0
    # the data module makes each process's loader (its shard, batch_size / processes)
    result = pretrain_model(
        model, data, max_epochs=max_epochs, lr=lr, seed=seed, checkpoint_dir=checkpoint_dir,
        ckpt_path=_last_checkpoint(checkpoint_dir) if resume else None,
        accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=num_nodes,
        progress_bar=progress_bar, n_threads=n_threads, log_dir=logs / f"attempt{attempt}",
        callbacks=[history.callback(), *callbacks])
    if global_rank(devices) != 0:
        return out
    info = {"configuration": config, "preprocessing": data.spec.to_dict(),
            "sources": settings["sources"], "minutes": data.minutes(),
            "n_train_samples": len(data.train_set), "n_steps": result.n_steps,
            "n_epochs": len(history.rows), "seed": seed, "history": history.rows}
    path = save_pretrained(result.model, out, info=info)
    logger.info("Saved the pretrained NeuroGPT to %s", path)
    return path


def _last_checkpoint(checkpoint_dir: Path) -> Path:
    last = checkpoint_dir / "last.ckpt"
    if not last.is_file():
        raise FileNotFoundError(f"Nothing to resume: no {last}. Run without --resume "
                                "(resume=False) to start, or give the --checkpoint-dir of the "
                                "run to continue.")
    return last


def _check_run(checkpoint_dir: Path, settings: dict[str, Any], resume: bool, *,
               write: bool = True) -> None:
    """Refuse to resume another run, or to overwrite a run's checkpoints; record the settings.

    ``write=False`` (a process other than rank 0) checks without writing.
    """
    run_file = checkpoint_dir / RUN_FILE
    has_checkpoints = any(checkpoint_dir.glob("*.ckpt")) if checkpoint_dir.is_dir() else False
    if resume:
        if run_file.is_file():
            previous = json.loads(run_file.read_text())
            differ = [f"{k} (checkpoint {previous.get(k)!r}, now {v!r})"
                      for k, v in settings.items() if previous.get(k) != v]
            if differ:
                raise ValueError(f"Cannot resume the run in {checkpoint_dir} with other "
                                 f"settings: {'; '.join(differ)}. Resume with the same "
                                 "settings, or start a new run in another --checkpoint-dir.")
        return
    if has_checkpoints:
        raise FileExistsError(f"{checkpoint_dir} holds the checkpoints of an earlier run; pass "
                              "--resume (resume=True) to continue it, or choose another "
                              "--checkpoint-dir (starting afresh would overwrite them).")
    if not write:
        return
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    (checkpoint_dir / HISTORY_FILE).unlink(missing_ok=True)
    tmp = run_file.with_name(RUN_FILE + ".part")
    tmp.write_text(json.dumps(settings, indent=1))
    tmp.replace(run_file)
