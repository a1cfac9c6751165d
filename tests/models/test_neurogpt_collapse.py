"""NeuroGPT's objective does not collapse: pretrained embeddings keep variance and class structure.

The target of the masked chunk reconstruction is the model's own embedding, so a constant
embedding would make the loss zero. After pretraining the small configuration on synthetic
recordings with a planted class effect (10 Hz power on 4 of 22 channels), the embeddings must
keep their variance across chunks and a linear probe on them (frozen) must still separate the
classes; the same check fails on a collapsed (constant) encoder.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, TensorDataset

from bci.models.neurogpt import NeuroGPT
from bci.models.training import pretrain_model, torch_threads

SFREQ, N_CHANS, CHUNK, N_CHUNKS = 128.0, 22, 128, 4
#: Floors of the check: total embedding variance across chunks relative to the untrained
#: encoder's, and held-out probe accuracy (chance: 0.5).
VARIANCE_FLOOR, PROBE_FLOOR = 0.5, 0.7


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


def _recordings(n: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` recordings of 4 one-second chunks; class 1 has a 10 Hz rhythm on channels 0-3."""
    gen = torch.Generator().manual_seed(seed)
    y = np.arange(n) % 2
    t = torch.arange(N_CHUNKS * CHUNK) / SFREQ
    x = torch.randn(n, N_CHANS, len(t), generator=gen)
    x = x + 0.5 * torch.roll(x, 1, -1)  # some temporal correlation
    phase = 2 * np.pi * torch.rand(n, 1, generator=gen)
    amplitude = torch.as_tensor(2.0 * y, dtype=torch.float32)[:, None]
    x[:, :4] += (amplitude * torch.sin(2 * np.pi * 10 * t + phase))[:, None]
    return x.unfold(2, CHUNK, CHUNK).transpose(1, 2).contiguous(), y


def _check(model: NeuroGPT, train, test) -> tuple[float, float]:
    """Total variance of the chunk embeddings, and a held-out linear probe's accuracy."""
    model.eval()
    feats = []
    with torch.no_grad():
        for chunks, _ in (train, test):
            feats.append(model.embed_chunks(chunks).reshape(-1, model.embed_dim).numpy())
    labels = [np.repeat(y, N_CHUNKS) for _, y in (train, test)]
    variance = float(feats[0].var(0).sum())
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    probe.fit(feats[0], labels[0])
    return variance, float(probe.score(feats[1], labels[1]))


def test_pretraining_keeps_embedding_variance_and_class_structure():
    train, test = _recordings(64, seed=1), _recordings(64, seed=2)
    torch.manual_seed(0)
    model = NeuroGPT.from_named_config("small")
    variance_0, _ = _check(model, train, test)
    loader = DataLoader(TensorDataset(train[0]), batch_size=16, shuffle=False)
    result = pretrain_model(model, loader, max_steps=40, max_epochs=None, lr=1e-3, seed=0,
                            progress_bar=False)
    losses = [row["train_loss"] for row in result.history]
    assert losses[-1] < 0.5 * losses[0]  # it did learn to predict the masked chunks
    variance, accuracy = _check(result.model, train, test)
    # measured: loss 0.692 -> 0.271, variance 0.518 -> 1.980, probe accuracy 0.852
    assert variance > VARIANCE_FLOOR * variance_0
    assert accuracy >= PROBE_FLOOR

    # the same check on a collapsed encoder (spatial filters at zero: every chunk embeds to the
    # same vector) fails: no variance, and the probe is at chance exactly
    collapsed = copy.deepcopy(result.model)
    with torch.no_grad():
        collapsed.encoder.spatial.weight.zero_()
        collapsed.encoder.spatial.bias.zero_()
    variance_c, accuracy_c = _check(collapsed, train, test)
    assert variance_c < 1e-6 * variance_0  # float32 rounding only
    assert variance_c < VARIANCE_FLOOR * variance_0
    assert accuracy_c == 0.5
    # ... and a collapsed model reaches a reconstruction loss no trained one beats: zero
    with torch.no_grad():
        collapsed.out_proj.weight.zero_()
        target = collapsed.embed_chunks(train[0][:2])[0, 0]
        collapsed.out_proj.bias.copy_(target)
        assert collapsed.pretraining_loss(train[0][:8]).item() < 1e-10
