"""A small causal spindle detector: 1-D convolutions and a GRU, one probability per step.

Portiloop-style (Valenchon et al. 2022): the network reads the causally band-passed and
causally normalised EEG and outputs, for every time step, the probability that a spindle is
under way. Every layer is causal (left padding only), so the output at step ``t`` uses no
sample after ``t``: run on a sliding window, the last step's probability is the online score.

:func:`fit_spindle_net` trains it on per-sample spindle labels with augmentation (random
gain, sign flip, additive noise, random crops with spindle-rich over-sampling), optionally
weighting each sample's loss (:func:`onset_weights`: the first few hundred milliseconds of
each spindle count more, so the network learns to fire early, a latency budget in training);
:func:`causal_normalise` is the causal input scaling shared by training and the online policy.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from scipy import signal as sps
from torch import nn

from .._checks import check_positive, check_random_state, ensure_int

logger = logging.getLogger(__name__)

__all__ = ["SpindleNet", "causal_normalise", "fit_spindle_net", "onset_weights", "spindle_labels",
           "window_scores"]


class _CausalConv(nn.Module):
    """Conv1d padded on the left only (output step t sees inputs <= t)."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.pad = (kernel_size - 1) * dilation
        self.conv = nn.Conv1d(n_in, n_out, kernel_size, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.pad(x, (self.pad, 0)))


class SpindleNet(nn.Module):
    """Causal convolutions + GRU: a spindle logit for every time step.

    Parameters
    ----------
    n_chans : int
        Input channels (>= 1).
    n_outputs : int
        Outputs per step (1: the spindle logit).
    n_times : int
        Samples of the window the network is run on online (>= 1; the network accepts any
        length, this is recorded for the policy).
    sfreq : float
        Sampling rate (Hz, > 0) of the input.
    n_filters : int
        Channels of each convolution.
    kernel_size : int
        Taps of each convolution (>= 1).
    n_conv : int
        Number of causal convolutions (>= 1); the i-th has dilation ``2 ** i``.
    hidden : int
        GRU units.

    Examples
    --------
    >>> net = SpindleNet(1, 1, 100, 50.0)
    >>> net(torch.zeros(2, 1, 100)).shape
    torch.Size([2, 100])
    """

    def __init__(self, n_chans: int, n_outputs: int, n_times: int, sfreq: float, *,
                 n_filters: int = 8, kernel_size: int = 5, n_conv: int = 2,
                 hidden: int = 16) -> None:
        super().__init__()
        self.n_chans = ensure_int(n_chans, "n_chans", minimum=1)
        self.n_outputs = ensure_int(n_outputs, "n_outputs", minimum=1)
        self.n_times = ensure_int(n_times, "n_times", minimum=1, what="samples")
        self.sfreq = check_positive(sfreq, "sfreq", unit="Hz")
        self.n_filters = ensure_int(n_filters, "n_filters", minimum=1)
        self.kernel_size = ensure_int(kernel_size, "kernel_size", minimum=1, what="taps")
        self.n_conv = ensure_int(n_conv, "n_conv", minimum=1)
        self.hidden = ensure_int(hidden, "hidden", minimum=1)
        layers: list[nn.Module] = []
        for i in range(self.n_conv):
            layers += [_CausalConv(self.n_chans if i == 0 else self.n_filters, self.n_filters,
                                   self.kernel_size, 2 ** i), nn.ELU()]
        self.conv = nn.Sequential(*layers)
        self.gru = nn.GRU(self.n_filters, self.hidden, batch_first=True)
        self.head = nn.Linear(self.hidden, self.n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits, shape ``(batch, n_times)`` (one output) or ``(batch, n_times, n_outputs)``."""
        h, _ = self.gru(self.conv(x).transpose(1, 2))
        out = self.head(h)
        return out[..., 0] if self.n_outputs == 1 else out


def causal_normalise(x: np.ndarray, sfreq: float, *, baseline_s: float = 60.0,
                     state: tuple[float, int] | None = None
                     ) -> tuple[np.ndarray, tuple[float, int]]:
    """Divide a signal by the square root of a causal running mean of its square.

    The mean is the plain mean of all samples so far for the first ``baseline_s``, then an
    exponential mean with that time constant: each sample is scaled by the mean up to and
    including itself, so no later sample is used, and the start is not blown up.

    Parameters
    ----------
    x : array, shape (n_times,)
        Signal (e.g. band-passed EEG); not modified.
    sfreq : float
        Sampling rate (Hz).
    baseline_s : float
        Time constant (s, > 0) of the exponential mean.
    state : tuple of (float, int) | None
        ``(mean, n_samples_seen)`` returned by the previous call; None: start afresh.

    Returns
    -------
    y : ndarray, shape (n_times,)
        ``x / sqrt(mean)``.
    state : tuple of (float, int)
        State for the next call.
    """
    x = np.asarray(x, dtype=float)
    n_warm = max(int(round(check_positive(baseline_s, "baseline_s", unit="s") * sfreq)), 1)
    alpha = 1.0 / n_warm
    mean0, count = (0.0, 0) if state is None else (float(state[0]), int(state[1]))
    sq = x ** 2
    k = min(max(n_warm - count, 0), len(x))  # samples still in the warm-up (plain mean)
    means = np.empty(len(x))
    if k:
        means[:k] = (mean0 * count + np.cumsum(sq[:k])) / (count + 1 + np.arange(k))
        mean0 = float(means[k - 1])
    if k < len(x):
        means[k:], _ = sps.lfilter([alpha], [1.0, alpha - 1.0], sq[k:],
                                   zi=[(1.0 - alpha) * mean0])
    tiny = np.finfo(float).tiny
    y = x / np.sqrt(np.maximum(means, tiny))
    return y, (float(means[-1]) if len(x) else mean0, count + len(x))


def spindle_labels(n_times: int, sfreq: float, spindles: np.ndarray) -> np.ndarray:
    """Per-sample 0/1 labels: 1 inside a spindle ``[onset, offset]`` (s)."""
    labels = np.zeros(n_times, dtype=np.float32)
    for on, off in np.asarray(spindles, float).reshape(-1, 2):
        labels[max(int(np.floor(on * sfreq)), 0):max(int(np.ceil(off * sfreq)), 0)] = 1.0
    return labels


def onset_weights(n_times: int, sfreq: float, spindles: np.ndarray, *, early_s: float = 0.3,
                  early_weight: float = 1.0) -> np.ndarray:
    """Per-sample loss weights: ``early_weight`` in the first ``early_s`` of each spindle, else 1.

    A latency budget in training: with ``early_weight > 1`` a miss at a spindle's start costs
    more than one later in it, so the network's probability rises sooner after the onset.

    Parameters
    ----------
    n_times : int
        Samples of the signal.
    sfreq : float
        Its rate (Hz).
    spindles : array, shape (n_spindles, 2)
        ``[onset, offset]`` (s).
    early_s : float
        Length (s, > 0) of the weighted start of each spindle (at most the spindle).
    early_weight : float
        Weight (> 0) of those samples.

    Returns
    -------
    weights : ndarray, shape (n_times,)
        float32.

    Examples
    --------
    >>> onset_weights(10, 10.0, np.array([[0.2, 0.8]]), early_s=0.2, early_weight=3.0).tolist()
    [1.0, 1.0, 3.0, 3.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    """
    n_times = ensure_int(n_times, "n_times", minimum=0, what="samples")
    early_s = check_positive(early_s, "early_s", unit="s")
    early_weight = check_positive(early_weight, "early_weight")
    weights = np.ones(n_times, dtype=np.float32)
    for on, off in np.asarray(spindles, float).reshape(-1, 2):
        start = max(int(np.floor(on * sfreq)), 0)
        stop = max(min(int(np.ceil(min(on + early_s, off) * sfreq)), n_times), start)
        weights[start:stop] = early_weight
    return weights


def fit_spindle_net(signals, labels, sfreq: float, *, n_times: int = 100, n_steps: int = 600,
                    batch_size: int = 32, lr: float = 3e-3, n_filters: int = 8,
                    kernel_size: int = 5, n_conv: int = 2, hidden: int = 16,
                    positive_fraction: float = 0.5, noise: float = 0.1, seed: int = 0,
                    weights=None) -> SpindleNet:
    """Train a :class:`SpindleNet` on random crops of labelled, normalised signals.

    Parameters
    ----------
    signals : list of array, shape (n_times_i,)
        Normalised input signals (:func:`causal_normalise`), all at ``sfreq``.
    labels : list of array, shape (n_times_i,)
        Per-sample 0/1 spindle labels (:func:`spindle_labels`).
    sfreq : float
        Sampling rate (Hz).
    n_times : int
        Crop length (samples): the window the network is run on online.
    n_steps, batch_size, lr : int, int, float
        Adam steps, crops a step, learning rate.
    n_filters, kernel_size, n_conv, hidden : int
        Architecture (:class:`SpindleNet`).
    positive_fraction : float
        Fraction of crops whose last sample is inside a spindle (over-sampling the rare class).
    noise : float
        Standard deviation of the white noise added to each crop (augmentation), relative to
        the normalised signal (whose RMS is about 1).
    seed : int
        Seed of the weights and the crops.
    weights : list of array, shape (n_times_i,) | None
        Per-sample loss weights (:func:`onset_weights`), one array per signal; None: all 1.

    Returns
    -------
    net : SpindleNet
        In eval mode. The loss is on the second half of each crop (the first half warms the
        GRU up, as the online window does).
    """
    rng = check_random_state(seed)
    torch.manual_seed(int(seed))
    n_times = ensure_int(n_times, "n_times", minimum=2, what="samples")
    sigs = [np.asarray(s, np.float32) for s in signals]
    labs = [np.asarray(lab, np.float32) for lab in labels]
    if not sigs or any(len(s) != len(lab) or len(s) < n_times for s, lab in zip(sigs, labs,
                                                                               strict=True)):
        raise ValueError(f"signals and labels must pair up, each at least n_times={n_times} "
                         f"samples long.")
    wts = ([np.ones(len(lab), np.float32) for lab in labs] if weights is None
           else [np.asarray(w, np.float32) for w in weights])
    if len(wts) != len(labs) or any(len(w) != len(lab) for w, lab in zip(wts, labs,
                                                                         strict=False)):
        raise ValueError("weights must hold one array per signal, as long as that signal, or "
                         "be None.")
    ends_pos = [np.flatnonzero(lab[n_times - 1:]) + n_times - 1 for lab in labs]
    lengths = np.array([len(s) for s in sigs], float)
    net = SpindleNet(1, 1, n_times, sfreq, n_filters=n_filters, kernel_size=kernel_size,
                     n_conv=n_conv, hidden=hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss(reduction="none")  # crops balanced by positive_fraction
    half = n_times // 2
    net.train()
    for _ in range(ensure_int(n_steps, "n_steps", minimum=1)):
        x = np.empty((batch_size, 1, n_times), np.float32)
        y = np.empty((batch_size, n_times), np.float32)
        w = np.empty((batch_size, n_times), np.float32)
        for b in range(batch_size):
            i = int(rng.choice(len(sigs), p=lengths / lengths.sum()))
            if rng.random() < positive_fraction and len(ends_pos[i]):
                end = int(ends_pos[i][rng.integers(len(ends_pos[i]))])
            else:
                end = int(rng.integers(n_times - 1, len(sigs[i])))
            seg = sigs[i][end - n_times + 1:end + 1]
            gain = np.exp(rng.normal(0.0, 0.2)) * (1 if rng.random() < 0.5 else -1)
            x[b, 0] = seg * gain + rng.normal(0.0, noise, n_times)
            y[b] = labs[i][end - n_times + 1:end + 1]
            w[b] = wts[i][end - n_times + 1:end + 1]
        logits = net(torch.from_numpy(x))
        wt = torch.from_numpy(w[:, half:])
        loss = (loss_fn(logits[:, half:], torch.from_numpy(y[:, half:])) * wt).sum() / wt.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    return net


@torch.no_grad()
def window_scores(net: SpindleNet, x: np.ndarray, ends: np.ndarray, *,
                  batch_size: int = 4096) -> np.ndarray:
    """Compute the last-step probability on the windows of ``x`` ending at ``ends``.

    Parameters
    ----------
    net : SpindleNet
        Run on windows of ``net.n_times`` samples (zero-padded on the left at the start).
    x : array, shape (n_times_total,)
        Normalised input signal.
    ends : array of int
        Index of each window's last sample.

    Returns
    -------
    proba : ndarray, shape (len(ends),)
        Spindle probability at each window's last sample.
    """
    n = net.n_times
    xp = np.concatenate([np.zeros(n - 1, np.float32), np.asarray(x, np.float32)])
    ends = np.asarray(ends, int)
    out = np.empty(len(ends))
    for s in range(0, len(ends), batch_size):
        idx = ends[s:s + batch_size][:, None] + np.arange(n)[None]  # padded index
        logits = net(torch.from_numpy(xp[idx][:, None]))[:, -1]
        out[s:s + batch_size] = torch.sigmoid(logits).numpy()
    return out
