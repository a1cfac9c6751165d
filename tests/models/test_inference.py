"""Batched class probabilities of a network."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bci.models.inference import predict_proba


def _linear(n_chans=2, n_times=3):
    net = nn.Sequential(nn.Flatten(), nn.Linear(n_chans * n_times, 2, bias=False))
    with torch.no_grad():
        net[1].weight.copy_(torch.tensor([[1.0] * 6, [-1.0] * 6]))
    return net


def test_softmax_of_known_logits():
    X = np.stack([np.full((2, 3), v) for v in (0.0, 0.5, -1.0)])  # logits +-6v
    proba = predict_proba(_linear(), X)
    expected = 1 / (1 + np.exp(-12 * np.array([0.0, 0.5, -1.0])))
    assert proba.dtype == np.float32
    np.testing.assert_allclose(proba[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)


def test_batch_size_changes_nothing_and_eval_mode_is_used():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(8, 3))
    net.train()
    X = np.random.default_rng(0).standard_normal((10, 2, 4))
    one = predict_proba(net, X, batch_size=1)
    assert not net.training
    # the batch size bounds memory; the result changes only by float32 rounding
    np.testing.assert_allclose(one, predict_proba(net, X, batch_size=256), rtol=1e-6)
    np.testing.assert_array_equal(predict_proba(net, X, batch_size=3),
                                  predict_proba(net, X.astype(np.float32), batch_size=3))


def test_threads_are_restored():
    before = torch.get_num_threads()
    predict_proba(_linear(), np.zeros((1, 2, 3)), n_threads=1)
    assert torch.get_num_threads() == before


def test_errors():
    with pytest.raises(ValueError, match=r"\(n_epochs, n_chans, n_times\).*got shape \(0, 2, 3\)"):
        predict_proba(_linear(), np.zeros((0, 2, 3)))
    with pytest.raises(ValueError, match=r"got shape \(2, 3\)"):
        predict_proba(_linear(), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="batch_size"):
        predict_proba(_linear(), np.zeros((1, 2, 3)), batch_size=0)
    with pytest.raises(TypeError, match="model"):
        predict_proba(lambda x: x, np.zeros((1, 2, 3)))
