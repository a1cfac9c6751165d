"""Batched inference of a trained classification network (torch only, no Lightning)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .._checks import check_type, ensure_int
from ._threads import torch_threads

__all__ = ["predict_proba"]


def predict_proba(model: nn.Module, X, *, batch_size: int = 256,
                  n_threads: int | None = None) -> np.ndarray:
    """Class probabilities of a network, computed in batches without gradients.

    The network is put in eval mode (dropout off, BatchNorm running statistics) and its logits
    go through a softmax over the classes.

    Parameters
    ----------
    model : torch.nn.Module
        A decoder whose ``forward`` maps ``(batch, n_chans, n_times)`` float32 to logits
        ``(batch, n_outputs)``.
    X : array, shape (n_epochs, n_chans, n_times)
        Epochs (or windows) in the unit the network was trained on; converted to float32.
    batch_size : int
        Epochs per forward pass (>= 1); bounds the memory (results differ only by float32
        rounding between batch sizes).
    n_threads : int | None
        Torch CPU threads during the passes (restored afterwards); None keeps the current
        count.

    Returns
    -------
    proba : ndarray, shape (n_epochs, n_outputs)
        Softmax probabilities (float32); each row sums to 1.

    Examples
    --------
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> predict_proba(net, np.zeros((3, 2, 2)), batch_size=2).shape
    (3, 2)
    """
    check_type(model, nn.Module, "model")
    batch_size = ensure_int(batch_size, "batch_size", minimum=1, what="epochs")
    X = torch.as_tensor(np.asarray(X), dtype=torch.float32)
    if X.ndim != 3 or len(X) == 0:
        raise ValueError("X must be epochs of shape (n_epochs, n_chans, n_times) with at least "
                         f"one epoch, got shape {tuple(X.shape)}.")
    model.eval()
    out = []
    with torch.no_grad(), torch_threads(n_threads):
        for start in range(0, len(X), batch_size):
            out.append(torch.softmax(model(X[start:start + batch_size]), 1))
    return torch.cat(out).numpy()
