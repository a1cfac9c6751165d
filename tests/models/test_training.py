"""Lightning training of the decoders (bci.models.training), on small synthetic arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.data.datamodule import EEGDataModule
from bci.models.registry import get_model
from bci.models.training import (
    DecoderModule,
    plot_training_curves,
    recalibrate_batch_norm_stats,
    torch_threads,
    train_model,
)
from tests._helpers import padded_trials

N_CHANS, N_TIMES, SFREQ = 4, 128, 128.0


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: these tiny networks only lose to OpenMP synchronisation on 2 cores."""
    with torch_threads(1):
        yield


def _planted(n_epochs=40, seed=0):
    """Class 1 carries a 10 Hz sine on channel 0 (amplitude 1 in unit-variance noise)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_epochs, N_CHANS, N_TIMES)).astype(np.float32)
    y = np.arange(n_epochs) % 2
    t = np.arange(N_TIMES) / SFREQ
    X[y == 1, 0] += np.sin(2 * np.pi * 10 * t)
    return X, y


def _net(seed=0, name="EEGNet", n_outputs=2):
    torch.manual_seed(seed)
    return get_model(name, N_CHANS, n_outputs, N_TIMES, sfreq=SFREQ)


def test_tiny_batch_overfits():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((8, N_CHANS, N_TIMES)).astype(np.float32)
    y = np.array([0, 1] * 4)  # random noise, arbitrary labels: only memorisation fits them
    data = EEGDataModule(X, y, val_fraction=0.0, batch_size=8, random_state=0)
    result = train_model(_net(0, "ShallowConvNet"), data, max_epochs=60, lr=1e-2,
                         weight_decay=0.0, seed=0)
    first, last = result.history[0], result.history[-1]
    assert result.n_epochs == 60
    assert result.best_epoch is None
    assert last["train_loss"] < 0.1 * first["train_loss"]
    with torch.no_grad():
        pred = result.model(torch.from_numpy(X)).argmax(1).numpy()
    assert np.array_equal(pred, y)


def test_recalibrated_batch_norm_holds_training_statistics():
    """Check that recalibrated BatchNorm statistics are those of the training epochs.

    After recalibration, each BatchNorm's running statistics are those of the training epochs under
    the final weights, so eval mode matches train mode on the full set.
    """
    X, y = _planted(24)
    net = _net(1, "EEGNeX")
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms
    assert all(m.momentum == 0.01 for m in norms)
    stale = net.eval()(torch.from_numpy(X)).detach()
    recalibrate_batch_norm_stats(net, X, batch_size=len(X))  # one batch: exact statistics
    assert not net.training
    assert all(m.momentum == 0.01 for m in norms)
    with torch.no_grad():
        recal = net(torch.from_numpy(X))
        for m in net.modules():  # train mode without dropout: the batch statistics
            m.train(not isinstance(m, torch.nn.Dropout))
        batch = net(torch.from_numpy(X))
    net.eval()
    torch.testing.assert_close(recal, batch, rtol=1e-2, atol=2e-3)  # running_var is unbiased
    assert not torch.allclose(stale, batch, atol=1e-2)
    assert recalibrate_batch_norm_stats(_net(0, "ShallowConvNet"), X[:1]) is not None
    data = EEGDataModule(X, y, val_fraction=0.0, batch_size=8, random_state=0)
    off = train_model(_net(1), data, max_epochs=2, seed=0, recalibrate_batch_norm=False)
    on = train_model(_net(1), data, max_epochs=2, seed=0)
    bn_off = [m.running_var for m in off.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    bn_on = [m.running_var for m in on.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert not all(torch.allclose(a, b) for a, b in zip(bn_off, bn_on, strict=True))


def test_seed_reproducibility_and_global_rng_untouched():
    X, y = _planted(32)

    def fit(seed):
        data, net = EEGDataModule(X, y, batch_size=8, random_state=seed), _net(0)
        state = torch.get_rng_state()
        result = train_model(net, data, max_epochs=4, seed=seed)
        assert torch.equal(state, torch.get_rng_state())  # fork_rng: caller's RNG intact
        with torch.no_grad():
            return result, result.model(torch.from_numpy(X)).numpy()

    (r1, out1), (r2, out2) = fit(7), fit(7)
    assert [row["train_loss"] for row in r1.history] == [row["train_loss"] for row in r2.history]
    np.testing.assert_array_equal(out1, out2)
    _, out3 = fit(8)
    assert not np.allclose(out1, out3)


def test_early_stopping_restores_best_epoch(tmp_path):
    X, y = _planted(40)
    data = EEGDataModule(X, y, batch_size=8, random_state=0)
    patience, max_epochs = 3, 40
    # no BatchNorm recalibration: the restored running statistics are the best epoch's too
    result = train_model(_net(1), data, max_epochs=max_epochs, patience=patience, lr=3e-2,
                         scheduler="plateau", seed=0, log_dir=tmp_path,
                         recalibrate_batch_norm=False)
    val_losses = [row["val_loss"] for row in result.history]
    assert result.best_epoch == int(np.argmin(val_losses))
    assert result.n_epochs == min(max_epochs, result.best_epoch + patience + 1)
    # the returned weights are the best epoch's: their validation loss is the minimum
    Xv, yv = torch.from_numpy(X[data.val_idx]), torch.from_numpy(y[data.val_idx])
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(result.model(Xv), yv).item()
    assert loss == pytest.approx(min(val_losses), rel=1e-5)
    assert not result.model.training
    # the CSV logger wrote the same epochs offline
    import csv

    with open(tmp_path / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    logged = [float(r["val_loss"]) for r in rows if r.get("val_loss")]
    np.testing.assert_allclose(logged, val_losses, rtol=1e-6)


def test_planted_signal_is_learned_and_regression_runs():
    X, y = _planted(64)
    data = EEGDataModule(X[:48], y[:48], X_val=X[48:], y_val=y[48:], batch_size=16,
                         random_state=0)
    result = train_model(_net(2), data, max_epochs=25, patience=None, lr=1e-2, seed=0)
    assert result.history[-1]["val_acc"] >= 0.9
    # regression: the target is the 10 Hz amplitude (0 or 1)
    data = EEGDataModule(X[:48], y[:48].astype(float), X_val=X[48:],
                         y_val=y[48:].astype(float), batch_size=16, task="regression",
                         random_state=0)
    result = train_model(_net(2, n_outputs=1), data, max_epochs=25, patience=None, lr=1e-2,
                         seed=0)
    assert "val_r2" in result.history[-1]
    assert result.history[-1]["val_loss"] < 0.5 * result.history[0]["val_loss"]


def test_torch_threads_restores():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match=r"n_threads must be an int >= 1 \(CPU threads\), got 0"), \
            torch_threads(0):
        pass
    with pytest.raises(TypeError, match=r"n_threads must be an int \(CPU threads\), got float"), \
            torch_threads(2.0):
        pass
    assert torch.get_num_threads() == before


class _Pointwise(torch.nn.Module):
    """A 1x1 convolution over time: a prediction at every time step from that step alone."""

    n_outputs = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 1, 1)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)[..., -1]


def test_sequence_regression_masks_padding_and_learns_the_map():
    X, y, mask = padded_trials(24, 0)
    Xv, yv, mask_v = padded_trials(8, 1)
    data = EEGDataModule(X, y, mask=mask, X_val=Xv[:, :, :25], y_val=yv[..., :25],
                         mask_val=mask_v[:, :25], task="sequence_regression", batch_size=6,
                         random_state=0)
    torch.manual_seed(0)
    result = train_model(_Pointwise(), data, max_epochs=40, patience=None, lr=0.1,
                         weight_decay=0.0, scheduler="none", seed=0)
    conv = result.model.conv
    np.testing.assert_allclose(conv.weight.detach().numpy().ravel(), [2.0, -1.0], atol=0.02)
    assert conv.bias.item() == pytest.approx(0.5, abs=0.02)
    assert result.history[-1]["val_r2"] > 0.99
    assert "train_r2" in result.history[-1]
    # the logged validation loss is the MSE over the real steps (numpy, restored weights)
    with torch.no_grad():
        out = result.model.forward_sequence(torch.from_numpy(Xv[:, :, :25])).numpy()
    ref = ((out - yv[..., :25])[:, 0][mask_v[:, :25]] ** 2).mean()
    best = min(row["val_loss"] for row in result.history)
    assert best == pytest.approx(ref, rel=1e-4)
    # the module's loss ignores the padding: changing padded targets leaves it unchanged
    module = DecoderModule(_Pointwise(), task="sequence_regression")
    xt, yt, mt = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(mask)
    out = module(xt)
    loss = module._loss(out, yt, mt)
    torch.testing.assert_close(module._loss(out, torch.where(mt[:, None], yt, -yt), mt), loss)
    expected = ((out - yt)[:, 0][mt] ** 2).mean()
    torch.testing.assert_close(loss, expected)


def test_decoder_module_errors():
    with pytest.raises(ValueError, match="Unknown scheduler 'cosin'. Did you mean 'cosine'"):
        DecoderModule(_net(), scheduler="cosin")
    with pytest.raises(TypeError, match="forward_sequence"):
        DecoderModule(_net(), task="sequence_regression")
    with pytest.raises(TypeError, match=r"model must be Module, got str \('EEGNet'\)\. Pass a "
                                        r"torch.nn.Module"):
        DecoderModule("EEGNet")
    with pytest.raises(ValueError, match=r"lr must be a finite number > 0, got 0.0\. It is the "
                                         r"peak learning rate"):
        DecoderModule(_net(), lr=0.0)
    with pytest.raises(ValueError, match=r"weight_decay must be a finite number >= 0, got nan"):
        DecoderModule(_net(), weight_decay=float("nan"))
    with pytest.raises(TypeError, match=r"lr must be a number, got str"):
        DecoderModule(_net(), lr="1e-3")
    X, y = _planted(10)
    with pytest.raises(TypeError, match=r"datamodule must be EEGDataModule, got tuple .* Wrap the "
                                        r"epochs in bci.data.datamodule.EEGDataModule"):
        train_model(_net(), (X, y))


def test_plot_training_curves_draws_every_history():
    import matplotlib
    import matplotlib.pyplot as plt

    backend, figures = matplotlib.get_backend(), plt.get_fignums()
    histories = {
        "a": [{"epoch": 0, "train_loss": 0.9, "val_loss": 0.8, "train_acc": 0.5},
              {"epoch": 1, "train_loss": 0.6, "train_acc": 0.7}],  # no validation row
        "b": [{"epoch": 0, "train_loss": 0.7, "val_loss": 0.75}],
    }
    fig = plot_training_curves(histories, ylabel="cross-entropy")
    assert plt.get_fignums() == figures
    assert matplotlib.get_backend() == backend
    (ax,) = fig.axes
    lines = {line.get_label(): line for line in ax.lines}
    assert list(lines) == ["a train", "a val", "b train", "b val"]
    np.testing.assert_array_equal(lines["a train"].get_xdata(), [0, 1])
    np.testing.assert_array_equal(lines["a train"].get_ydata(), [0.9, 0.6])
    np.testing.assert_array_equal(lines["a val"].get_ydata(), [0.8, np.nan])
    assert lines["a val"].get_linestyle() == "--"
    assert lines["a train"].get_color() == lines["a val"].get_color() != lines["b val"].get_color()
    assert ax.get_ylabel() == "cross-entropy"
    acc = plot_training_curves(histories, metric="acc")
    np.testing.assert_array_equal(acc.axes[0].lines[0].get_ydata(), [0.5, 0.7])
    assert acc.axes[0].get_ylabel() == "acc"
    with pytest.raises(TypeError, match="histories must be"):
        plot_training_curves([histories["a"]])
