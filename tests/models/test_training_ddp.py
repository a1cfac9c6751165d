"""Training on several processes (Lightning DDP, gloo on CPU) equals training on one.

The 2-process runs start ``tests/models/_ddp_run.py`` as a script on 127.0.0.1 (Lightning
starts the second process by running it again); the 1-process references run in this
process. With the same global batch and no dropout or BatchNorm, the averaged gradient of two
half batches is the gradient of the whole batch up to the order of float32 additions. Measured
(12 pretraining steps, 12 training steps): epoch losses within 1.2e-7 relative (float32's
resolution); weights within 8e-5 absolute after pretraining (4e-8 after training): AdamW
divides each parameter's step by the running RMS of its gradient, so on parameters whose
gradient is near zero the rounding noise becomes a visible fraction of the learning rate
(3e-3). The tolerances are about 15 and 6 times those figures.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from bci.data.datamodule import EEGDataModule, EpochSampler, per_process_batch
from bci.data.pretraining_datamodule import ChunkSampler
from tests.models import _ddp_run

ROOT = _ddp_run.ROOT
#: Relative tolerance of the losses (measured 1.2e-7) and absolute one of the weights (8e-5).
LOSS_RTOL, WEIGHT_ATOL = 2e-6, 5e-4


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """Run the DDP script on 2 processes; return (its results, its weights, its folder)."""
    out = tmp_path_factory.mktemp("ddp")
    # a 1-process run stopped after 2 epochs, for the 2 processes to resume
    _ddp_run.pretrain_run(out / "cache", out / "ckpt1", stop_after=_ddp_run.STOP_AFTER)
    proc = subprocess.run([sys.executable, str(ROOT / "tests/models/_ddp_run.py"), str(out),
                           "2"], env=_ddp_run.loopback_env(), capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return (json.loads((out / "ddp.json").read_text()),
            torch.load(out / "weights.pt", weights_only=True), out)


def _close(a: list[dict], b: list[dict], key: str) -> None:
    assert [r["epoch"] for r in a] == [r["epoch"] for r in b]
    np.testing.assert_allclose([r[key] for r in a], [r[key] for r in b], rtol=LOSS_RTOL,
                               atol=0)


def test_two_process_pretraining_and_its_resume_follow_the_one_process_curve(two_processes,
                                                                            tmp_path):
    ddp, weights, out = two_processes
    assert ddp["world_size"] == 2
    history, model, n_steps = _ddp_run.pretrain_run(tmp_path / "cache", tmp_path / "ckpt")
    # 24 samples in global batches of 8: 3 steps an epoch on 1 and on 2 processes
    assert n_steps == ddp["n_steps"] == 3 * _ddp_run.PRETRAIN_EPOCHS
    assert ddp["stopped_steps"] == 3 * _ddp_run.STOP_AFTER
    # the stopped run's epochs, then the resumed run's continue the 1-process curve
    _close(ddp["pretrain_first"] + ddp["pretrain_resumed"], history, "train_loss")
    _close(ddp["pretrain_first"] + ddp["pretrain_resumed"], history, "lr")
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]  # it learns
    # a 1-process checkpoint resumed on 2 processes continues the curve too
    _close(history[:_ddp_run.STOP_AFTER] + ddp["pretrain_resumed_from_one"], history,
           "train_loss")
    for key, value in model.state_dict().items():
        torch.testing.assert_close(weights["pretrain"][key], value, rtol=0, atol=WEIGHT_ATOL,
                                   msg=key)
    # only rank 0 wrote checkpoints: the last one and the latest step's
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["last.ckpt", "step=12.ckpt"]


def test_two_process_network_training_follows_the_one_process_curve(two_processes):
    ddp, weights, _ = two_processes
    history, net = _ddp_run.train_run()
    for key in ("train_loss", "val_loss", "lr"):
        _close(ddp["train"], history, key)
    # accuracies are counts over the whole sets: exactly equal
    assert [r["train_acc"] for r in ddp["train"]] == [r["train_acc"] for r in history]
    assert [r["val_acc"] for r in ddp["train"]] == [r["val_acc"] for r in history]
    for key, value in net.state_dict().items():
        torch.testing.assert_close(weights["train"][key], value, rtol=0, atol=WEIGHT_ATOL,
                                   msg=key)


def test_epoch_sampler_shards_make_the_one_process_batches():
    n, batch = 30, 8
    one = list(EpochSampler(n, seed=4))
    assert sorted(one) == list(range(n))
    shards = [list(EpochSampler(n, seed=4, num_replicas=2, rank=r)) for r in (0, 1)]
    assert [len(s) for s in shards] == [15, 15]
    half = per_process_batch(batch, 2)
    for step in range(4):  # the union of the two half batches is the 1-process batch
        union = shards[0][step * half:(step + 1) * half] + shards[1][step * half:
                                                                     (step + 1) * half]
        assert sorted(union) == sorted(one[step * batch:(step + 1) * batch])
    # the order depends on (seed, epoch) only
    sampler = EpochSampler(n, seed=4)
    sampler.set_epoch(3)
    again = EpochSampler(n, seed=4)
    again.set_epoch(3)
    assert list(sampler) == list(again) != one
    # 3 processes over 10 items: padded with the first items of the order to 12
    shards = [list(EpochSampler(10, seed=1, num_replicas=3, rank=r)) for r in range(3)]
    order = list(EpochSampler(10, seed=1))
    assert [i for step in zip(*shards, strict=True) for i in step] == order + order[:2]


def test_chunk_sampler_keys_carry_the_epoch_on_every_shard():
    sampler = ChunkSampler(6, shuffle=False, num_replicas=2, rank=1)
    sampler.set_epoch(5)
    assert list(sampler) == [(1, 5), (3, 5), (5, 5)]
    assert list(sampler) == [(1, 6), (3, 6), (5, 6)]  # no set_epoch: the next epoch


def test_global_batch_and_seed_errors():
    with pytest.raises(ValueError, match=r"batch_size=10 is the global batch .* multiple of "
                                         r"the 4 training processes .* 8 or 12"):
        per_process_batch(10, 4)
    with pytest.raises(ValueError, match="rank must be < num_replicas=2, got 2"):
        EpochSampler(4, num_replicas=2, rank=2)

    class _Trainer:
        world_size, global_rank = 2, 0

    data = EEGDataModule(np.zeros((8, 2, 16)), np.arange(8) % 2, batch_size=4)
    data.trainer = _Trainer()
    with pytest.raises(ValueError, match="2 processes needs a random_state"):
        data.train_dataloader()
    data = EEGDataModule(np.zeros((8, 2, 16)), np.arange(8) % 2, batch_size=4,
                         random_state=0, val_fraction=0)
    data.trainer = _Trainer()
    loader = data.train_dataloader()
    assert loader.batch_size == 2
    assert len(loader.sampler) == 4


def test_global_rank_before_the_processes_exist(monkeypatch):
    from bci.models.training import global_rank

    for key in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(key, raising=False)
    assert global_rank(2) == 0
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("NODE_RANK", "1")
    assert global_rank(4) == 5  # Lightning's launcher: node 1, local process 1
    monkeypatch.setenv("RANK", "3")
    assert global_rank(4) == 3  # torchrun
    for key in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("SLURM_PROCID", "7")
    assert global_rank(1) == 7  # srun
