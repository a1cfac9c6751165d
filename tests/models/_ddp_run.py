"""Trainings of the multi-process (DDP) test, on 1 process or as a script on several.

Imported, :func:`pretrain_run` and :func:`train_run` train in this process (the 1-process
reference). Run as a script, ``python tests/models/_ddp_run.py OUT_DIR N``, it trains the same
with ``devices=N, strategy="ddp"`` on CPU (gloo): Lightning starts the other processes by
running this script again, and rank 0 writes ``OUT_DIR/ddp.json`` (histories) and
``OUT_DIR/weights.pt``. The pretraining is stopped after its second epoch (a checkpoint) and
resumed to the fourth, in the same processes; a 1-process run's checkpoint in
``OUT_DIR/ckpt1``, when there is one, is resumed too.

No dropout, and NeuroGPT's one BatchNorm replaced by the identity (on CPU each process would
normalise its own half batch: torch's SyncBatchNorm is GPU only), so that the averaged
gradient of 2 processes is the 1-process gradient up to the order of float additions.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import lightning.pytorch as pl
import mne
import numpy as np
import torch
from torch import nn

from bci.data.datamodule import EEGDataModule
from bci.data.pretraining_corpus import RawRecordings
from bci.data.pretraining_datamodule import PretrainingDataModule
from bci.models.neurogpt import NeuroGPT
from bci.models.pretraining import pretrain_model
from bci.models.training import global_rank, train_model

ROOT = Path(__file__).resolve().parents[2]
CHANNELS = ("C3", "Cz", "C4", "Pz")
SFREQ, N_CHUNKS = 64.0, 4
#: global batches: 8 pretraining samples (3 recordings x 8 samples: 3 steps an epoch) and
#: 8 training epochs (30 of them: 4 steps an epoch)
BATCH = 8
PRETRAIN_EPOCHS, STOP_AFTER, TRAIN_EPOCHS = 4, 2, 3


def loopback_env() -> dict[str, str]:
    """Return the environment of a DDP launch on this machine, on 127.0.0.1 only.

    ``MASTER_ADDR=127.0.0.1`` and a free port of it, gloo's connections on the loopback
    interface, no rank variables inherited, and the repository on ``PYTHONPATH``.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if sys.platform.startswith("linux"):
        env["GLOO_SOCKET_IFNAME"] = "lo"
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "SLURM_PROCID"):
        env.pop(key, None)
    return env


def _load(subject: int) -> list:
    rng = np.random.default_rng(subject)
    t = np.arange(int(32 * SFREQ)) / SFREQ  # 32 s: 8 samples of 4 chunks of 1 s
    amp = rng.uniform(0.5, 2.0, (len(CHANNELS), 1))
    x = amp * np.sin(2 * np.pi * 6 * t + rng.uniform(0, 6, (len(CHANNELS), 1))) \
        + 0.3 * rng.standard_normal((len(CHANNELS), len(t)))
    info = mne.create_info(list(CHANNELS), SFREQ, "eeg")
    return [mne.io.RawArray(x * 1e-5, info, verbose=False)]


def pretraining_data(cache_dir: Path) -> PretrainingDataModule:
    """Return three synthetic recordings, 8 samples each, in global batches of 8."""
    source = RawRecordings("DDPSynth", [1, 2, 3], _load)
    return PretrainingDataModule([source], cache_dir=cache_dir, sfreq=SFREQ, chunk_s=1.0,
                                 overlap_s=0.0, n_chunks=N_CHUNKS, channels=CHANNELS,
                                 l_freq=1.0, h_freq=20.0, offsets="random", val_fraction=0.0,
                                 batch_size=BATCH, seed=0)


def tiny_neurogpt() -> NeuroGPT:
    """Return a small pretraining NeuroGPT without dropout or BatchNorm (seeded weights)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = NeuroGPT(len(CHANNELS), 2, N_CHUNKS * int(SFREQ), sfreq=SFREQ, chunk_s=1.0,
                         n_filters_time=8, filter_time_length=9, pool_time_length=16,
                         pool_time_stride=8, att_depth=1, att_heads=2, gpt_width=16,
                         gpt_layers=1, gpt_heads=2, n_positions=8, drop_prob=0.0,
                         gpt_drop_prob=0.0, finetune=None)
    model.encoder.bn = nn.Identity()
    return model


class _StopAfter(pl.Callback):
    """Stop training at the end of epoch ``epoch - 1`` (after its checkpoint): a killed job."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 >= self.epoch:
            trainer.should_stop = True


def pretrain_run(cache_dir: Path, checkpoint_dir: Path, *, devices: int = 1,
                 strategy: str = "auto", stop_after: int | None = None,
                 resume: bool = False) -> tuple[list[dict], NeuroGPT, int]:
    """Pretrain the tiny NeuroGPT to PRETRAIN_EPOCHS epochs (or stop after ``stop_after``)."""
    result = pretrain_model(
        tiny_neurogpt(), pretraining_data(cache_dir), max_epochs=PRETRAIN_EPOCHS, lr=3e-3,
        seed=0, checkpoint_dir=checkpoint_dir, ckpt_path="last" if resume else None,
        devices=devices, strategy=strategy, progress_bar=False, n_threads=1,
        logger_kind="none", callbacks=[_StopAfter(stop_after)] if stop_after else ())
    return result.history, result.model, result.n_steps


class TinyNet(nn.Module):
    """Conv1d -> ReLU -> time mean -> Linear: no dropout, no BatchNorm."""

    n_outputs = 2

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(len(CHANNELS), 6, 9)
        self.head = nn.Linear(6, self.n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.head(torch.relu(self.conv(x)).mean(-1))


def training_data() -> EEGDataModule:
    """Return 40 epochs (a 6 Hz rhythm in class 1), 10 for validation; global batches of 8."""
    rng = np.random.default_rng(1)
    y = np.arange(40) % 2
    t = np.arange(64) / SFREQ
    X = rng.standard_normal((40, len(CHANNELS), 64)) \
        + y[:, None, None] * np.sin(2 * np.pi * 6 * t)
    return EEGDataModule(X, y, val_fraction=0.25, batch_size=BATCH, random_state=0)


def train_run(*, devices: int = 1, strategy: str = "auto") -> tuple[list[dict], nn.Module]:
    """Train TinyNet TRAIN_EPOCHS epochs on :func:`training_data`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TinyNet()
    result = train_model(model, training_data(), max_epochs=TRAIN_EPOCHS, patience=None,
                         lr=1e-2, seed=0, devices=devices, strategy=strategy, n_threads=1,
                         logger_kind="none")
    return result.history, result.model


def main(out_dir: Path, devices: int) -> None:
    """Train everything on ``devices`` DDP processes; rank 0 writes the results."""
    first, _, stopped_steps = pretrain_run(out_dir / "cache", out_dir / "ckpt", devices=devices,
                                           strategy="ddp", stop_after=STOP_AFTER)
    resumed, model, n_steps = pretrain_run(out_dir / "cache", out_dir / "ckpt",
                                           devices=devices, strategy="ddp", resume=True)
    # a 1-process run's checkpoint (written by the test before this script), resumed here
    from_one = (pretrain_run(out_dir / "cache", out_dir / "ckpt1", devices=devices,
                             strategy="ddp", resume=True)[0]
                if (out_dir / "ckpt1" / "last.ckpt").is_file() else None)
    train_history, net = train_run(devices=devices, strategy="ddp")
    if global_rank(devices) == 0:
        torch.save({"pretrain": model.state_dict(), "train": net.state_dict()},
                   out_dir / "weights.pt")
        (out_dir / "ddp.json").write_text(json.dumps({
            "pretrain_first": first, "pretrain_resumed": resumed,
            "stopped_steps": stopped_steps, "n_steps": n_steps, "train": train_history,
            "pretrain_resumed_from_one": from_one,
            "world_size": int(torch.distributed.get_world_size())}))


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
