"""Self-supervised pretraining through DecoderModule (task="pretrain") and pretrain_model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from bci.models.neurogpt import NeuroGPT
from bci.models.pretraining import pretrain_model
from bci.models.training import DecoderModule, _chunk_batch, torch_threads

N_CHANS, CHUNK, N_CHUNKS = 4, 64, 4


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


class _Chunks(Dataset):
    """Synthetic recordings in the agreed batch format: ``{"chunks", "channel_mask"}``.

    Each item is ``N_CHUNKS`` consecutive 1-s chunks (64 Hz) of one recording: a 6 Hz rhythm of
    recording-specific amplitude and phase in noise, so later chunks are predictable from
    earlier ones. Every third recording lacks channel 3 (zero-filled, masked). ``crash_at``
    raises on that item index (a killed job).
    """

    def __init__(self, n: int = 8, seed: int = 0, crash_at: int | None = None) -> None:
        gen = torch.Generator().manual_seed(seed)
        t = torch.arange(N_CHUNKS * CHUNK) / 64.0
        amp = 0.5 + 2 * torch.rand(n, N_CHANS, 1, generator=gen)
        phase = 2 * np.pi * torch.rand(n, 1, 1, generator=gen)
        x = amp * torch.sin(2 * np.pi * 6 * t + phase) \
            + 0.3 * torch.randn(n, N_CHANS, len(t), generator=gen)
        self.mask = torch.ones(n, N_CHANS, dtype=torch.bool)
        self.mask[::3, 3] = False
        x[::3, 3] = 0.0
        self.chunks = x.unfold(2, CHUNK, CHUNK).transpose(1, 2).contiguous().float()
        self.crash_at = crash_at
        self.n_items = 0

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, i: int) -> dict:
        if self.crash_at is not None and self.n_items == self.crash_at:
            raise RuntimeError("killed")
        self.n_items += 1
        return {"chunks": self.chunks[i], "channel_mask": self.mask[i]}


def _model(seed: int = 0) -> NeuroGPT:
    torch.manual_seed(seed)
    return NeuroGPT(N_CHANS, 2, N_CHUNKS * CHUNK, sfreq=64.0, chunk_s=1.0, n_filters_time=8,
                    filter_time_length=9, pool_time_length=16, pool_time_stride=8, att_depth=1,
                    att_heads=2, gpt_width=16, gpt_layers=1, gpt_heads=2, n_positions=8,
                    drop_prob=0.1, finetune=None)


def _loader(**kwargs) -> DataLoader:
    return DataLoader(_Chunks(**kwargs), batch_size=4, shuffle=False)


def test_pretraining_loss_decreases_and_rng_is_untouched():
    model = _model()
    state = torch.get_rng_state()
    result = pretrain_model(model, _loader(), val_data=_loader(seed=1), max_steps=40,
                            max_epochs=None, lr=3e-3, seed=0, progress_bar=False)
    assert torch.equal(state, torch.get_rng_state())
    assert result.n_steps == 40
    assert len(result.history) == 20  # 2 batches an epoch
    first, last = result.history[0], result.history[-1]
    assert last["train_loss"] < 0.3 * first["train_loss"]
    assert last["val_loss"] < 0.5 * first["val_loss"]
    assert result.last_checkpoint is None
    assert not result.model.training
    # the cosine schedule runs over the steps: the last step's learning rate is the floor
    assert last["lr"] == pytest.approx(3e-3 * 1e-2, rel=1e-6)


def test_pretrain_task_needs_a_pretraining_loss():
    with pytest.raises(TypeError, match="task='pretrain' needs a model with a "
                                        "pretraining_loss"):
        DecoderModule(torch.nn.Linear(2, 2), task="pretrain")
    with pytest.raises(ValueError, match="Unknown task 'pretraining'"):
        DecoderModule(_model(), task="pretraining")
    module = DecoderModule(_model(), task="pretrain")
    batch = next(iter(_loader()))
    # the three batch forms
    chunks, mask = batch["chunks"], batch["channel_mask"]
    assert _chunk_batch(batch) == (chunks, mask)
    assert _chunk_batch((chunks, mask)) == (chunks, mask)
    assert _chunk_batch(chunks) == (chunks, None)
    assert _chunk_batch({"chunks": chunks}) == (chunks, None)
    with pytest.raises(ValueError, match="needs a 'chunks' entry, got keys"):
        _chunk_batch({"x": chunks})
    with pytest.raises(ValueError, match=r"is \(chunks, channel_mask\), got 3 items"):
        _chunk_batch((chunks, mask, mask))
    module.eval()
    with torch.no_grad():
        embeddings = module.predict_step(batch, 0)
        masked = module.model.pretraining_loss(chunks, mask)
        unmasked = module.model.pretraining_loss(chunks)
    assert embeddings.shape == (4, N_CHUNKS, module.model.embed_dim)
    torch.testing.assert_close(embeddings, module.model.embed_chunks(chunks, mask))
    assert not torch.equal(masked, unmasked)  # recordings 0 and 3 lack channel 3


def test_kill_and_resume_gives_the_uninterrupted_weights(tmp_path):
    # uninterrupted: 4 epochs of 2 batches (8 steps), checkpoints at every epoch end
    full = pretrain_model(_model(), _loader(), max_steps=None, max_epochs=4, lr=3e-3, seed=5,
                          checkpoint_dir=tmp_path / "full", progress_bar=False)
    assert full.last_checkpoint == tmp_path / "full" / "last.ckpt"
    # killed in epoch 3 (the 19th item; 8 items an epoch), after the epoch-2 checkpoint
    with pytest.raises(RuntimeError, match="killed"):
        pretrain_model(_model(), _loader(crash_at=18), max_steps=None, max_epochs=4, lr=3e-3,
                       seed=5,
                       checkpoint_dir=tmp_path / "run", progress_bar=False)
    last = tmp_path / "run" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 4
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt", "step=4.ckpt"]
    # resumed with the same call into a freshly initialised (differently seeded) model
    resumed = pretrain_model(_model(seed=99), _loader(), max_steps=None, max_epochs=4,
                             lr=3e-3, seed=5,
                             checkpoint_dir=tmp_path / "run", ckpt_path="last",
                             progress_bar=False)
    assert resumed.n_steps == 8
    ref = full.model.state_dict()
    for key, value in resumed.model.state_dict().items():
        assert torch.equal(value, ref[key]), key
    # the previous step file is removed once the new one is complete
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt", "step=8.ckpt"]
    # without the per-step seeding, dropout after the resume differs: the test can fail
    other = pretrain_model(_model(), _loader(), max_steps=None, max_epochs=4, lr=3e-3, seed=6,
                           progress_bar=False)
    assert not torch.equal(other.model.encoder.temporal_weight,
                           full.model.encoder.temporal_weight)


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    folder = tmp_path / "ckpt"
    pretrain_model(_model(), _loader(), max_steps=2, seed=0, checkpoint_dir=folder,
                   progress_bar=False)
    last = folder / "last.ckpt"
    before = last.read_bytes()
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        # half the checkpoint reaches the disk, then the disk is full
        import io

        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        pretrain_model(_model(), _loader(), max_steps=4, seed=0, checkpoint_dir=folder,
                       ckpt_path="last", progress_bar=False)
    monkeypatch.undo()
    assert last.read_bytes() == before  # the previous good checkpoint, untouched
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "step=2.ckpt"]
    assert torch.load(last, weights_only=False)["global_step"] == 2


def test_damaged_or_missing_checkpoint(tmp_path):
    folder = tmp_path / "ckpt"
    pretrain_model(_model(), _loader(), max_steps=2, seed=0, checkpoint_dir=folder,
                   progress_bar=False)
    data = (folder / "last.ckpt").read_bytes()
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"Checkpoint .*truncated.ckpt is truncated or damaged"):
        pretrain_model(_model(), _loader(), max_steps=4, ckpt_path=truncated,
                       progress_bar=False)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    damaged = tmp_path / "damaged.ckpt"
    damaged.write_bytes(bytes(flipped))
    with pytest.raises(ValueError, match=r"damaged.ckpt is (truncated or )?damaged"):
        pretrain_model(_model(), _loader(), max_steps=4, ckpt_path=damaged,
                       progress_bar=False)
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        pretrain_model(_model(), _loader(), max_steps=4, ckpt_path=tmp_path / "none.ckpt",
                       progress_bar=False)
    # "last" with no checkpoint yet starts afresh
    result = pretrain_model(_model(), _loader(), max_steps=1, checkpoint_dir=tmp_path / "new",
                            ckpt_path="last", progress_bar=False)
    assert result.n_steps == 1
    with pytest.raises(ValueError, match="needs max_steps or max_epochs"):
        pretrain_model(_model(), _loader(), max_steps=None, max_epochs=None)


def test_resuming_to_more_epochs_stretches_the_cosine_schedule(tmp_path):
    import math

    folder = tmp_path / "ckpt"
    first = pretrain_model(_model(), _loader(), max_steps=None, max_epochs=2, lr=3e-3, seed=0,
                           checkpoint_dir=folder, progress_bar=False)
    # the 2-epoch schedule ends at its floor, lr * 0.01 (DecoderModule's min_lr_ratio)
    assert first.history[-1]["lr"] == pytest.approx(3e-5)
    resumed = pretrain_model(_model(), _loader(), max_steps=None, max_epochs=4, lr=3e-3,
                             seed=0, checkpoint_dir=folder, ckpt_path="last",
                             progress_bar=False)
    assert [row["epoch"] for row in resumed.history] == [2, 3]
    # epochs 2 and 3 follow the 4-epoch cosine (kept at 3e-5 or risen back to 3e-3 before)
    cosine = [3e-5 + (3e-3 - 3e-5) * (1 + math.cos(math.pi * t / 4)) / 2 for t in (3, 4)]
    assert [row["lr"] for row in resumed.history] == pytest.approx(cosine, rel=1e-9)
    assert resumed.n_steps == 8
