"""Epochs as a Lightning DataModule (bci.data.datamodule): splits, batches, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.data.datamodule import EEGDataModule, split_train_val
from tests._helpers import padded_trials

N_CHANS, N_TIMES = 4, 128


def _planted(n_epochs=40, seed=0):
    """Class 1 carries a sine on channel 0 (amplitude 1 in unit-variance noise)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_epochs, N_CHANS, N_TIMES)).astype(np.float32)
    y = np.arange(n_epochs) % 2
    X[y == 1, 0] += np.sin(2 * np.pi * 10 * np.arange(N_TIMES) / 128.0)
    return X, y


def test_stratified_split_keeps_proportions_and_is_seeded():
    y = np.array([0] * 30 + [1] * 10)
    train, val = split_train_val(y, 0.2, stratify=True, random_state=1)
    assert len(val) == 8
    assert np.bincount(y[val]).tolist() == [6, 2]
    assert np.intersect1d(train, val).size == 0
    assert len(train) + len(val) == 40
    again = split_train_val(y, 0.2, stratify=True, random_state=1)
    assert np.array_equal(again[1], val)
    assert not np.array_equal(split_train_val(y, 0.2, stratify=True, random_state=2)[1], val)
    # every class keeps training epochs, even with a large fraction
    train, val = split_train_val(np.array([0, 0, 1, 1, 1]), 0.8, stratify=True, random_state=0)
    assert set(np.array([0, 0, 1, 1, 1])[train]) == {0, 1}
    assert len(split_train_val(y, 0.0, stratify=True, random_state=0)[1]) == 0


def test_datamodule_errors():
    X, y = _planted(10)
    with pytest.raises(ValueError, match="must be 3-D"):
        EEGDataModule(X[0], y)
    with pytest.raises(ValueError, match="class indices"):
        EEGDataModule(X, y.astype(float))
    with pytest.raises(ValueError, match="Give both X_val and y_val"):
        EEGDataModule(X, y, X_val=X)
    with pytest.raises(ValueError, match="val_fraction must be a fraction"):
        EEGDataModule(X, y, val_fraction=1.5)
    with pytest.raises(ValueError, match="Unknown task"):
        EEGDataModule(X, y, task="segmentation")
    with pytest.raises(ValueError, match=r"val_fraction must be a fraction in \[0, 1\), got nan"):
        EEGDataModule(X, y, val_fraction=float("nan"))
    with pytest.raises(ValueError, match=r"batch_size must be an int >= 1, got 0"):
        EEGDataModule(X, y, batch_size=0)
    with pytest.raises(TypeError, match=r"batch_size must be an int, got float"):
        EEGDataModule(X, y, batch_size=8.0)
    with pytest.raises(TypeError, match=r"drop_last must be True or False, got int \(1\)"):
        EEGDataModule(X, y, drop_last=1)
    with pytest.raises(ValueError, match=r"num_workers must be an int >= 0 \(data-loading "
                                         r"processes\), got -1"):
        EEGDataModule(X, y, num_workers=-1)
    with pytest.raises(TypeError, match=r"task must be a string, one of classification, "
                                        r"regression, sequence_regression; got NoneType"):
        EEGDataModule(X, y, task=None)


def test_sequence_datamodule_batches_and_errors():
    X, y, mask = padded_trials(9, 0)
    data = EEGDataModule(X, y, mask=mask, task="sequence_regression", val_fraction=0.0,
                         batch_size=4, drop_last=True, random_state=0)
    batches = list(data.train_dataloader())
    assert [len(b[0]) for b in batches] == [4, 4]
    assert all(len(b) == 3 for b in batches)
    assert batches[0][2].dtype == torch.bool
    split = EEGDataModule(X, y, mask=mask, task="sequence_regression", val_fraction=0.3,
                          random_state=0)
    split.setup()
    xv, yv, mv = next(iter(split.val_dataloader()))
    assert len(xv) == split.n_val == 3
    assert torch.equal(mv, torch.from_numpy(mask[split.val_idx]))
    with pytest.raises(ValueError, match=r"\(n_epochs, n_outputs, n_times=30\)"):
        EEGDataModule(X, y[..., :20], task="sequence_regression")
    empty = mask.copy()
    empty[3] = False
    with pytest.raises(ValueError, match=r"no real time step in trials \[3\]"):
        EEGDataModule(X, y, mask=empty, task="sequence_regression")
    with pytest.raises(ValueError, match="mask and mask_val are for task='sequence_regression'"):
        EEGDataModule(X[:, :, :4], y[:, 0, 0], mask=mask, task="regression")
    with pytest.raises(ValueError, match="must match n_chans"):
        EEGDataModule(X, y, X_val=X[:, :1], y_val=y, task="sequence_regression")


def test_from_epochs_and_from_moabb_give_the_arrays_and_class_names():
    import mne

    from bci.data import SyntheticMotorImagery, load_data, make_motor_imagery

    raw = make_motor_imagery(6, random_state=0)
    events, event_id = mne.events_from_annotations(raw, verbose=False)
    epochs = mne.Epochs(raw, events, event_id, tmin=0.0, tmax=1.0, baseline=None,
                        preload=True, verbose=False)
    data, classes = EEGDataModule.from_epochs(epochs, batch_size=4)
    names = {v: k for k, v in event_id.items()}
    np.testing.assert_array_equal(classes[data.y], [names[e] for e in epochs.events[:, 2]])
    np.testing.assert_allclose(data.X, epochs.get_data().astype(np.float32))
    regression, none = EEGDataModule.from_epochs(epochs, np.ones((len(epochs), 1)),
                                                 task="regression")
    assert none.size == 0
    assert regression.y.shape == (len(epochs), 1)

    dataset = SyntheticMotorImagery(n_subjects=1, n_trials=10, n_runs=1, random_state=0)
    data, classes = EEGDataModule.from_moabb(dataset, "LeftRightImagery", [1], batch_size=4)
    X, labels, _ = load_data(dataset, "LeftRightImagery", [1])
    np.testing.assert_allclose(data.X, X.astype(np.float32))
    np.testing.assert_array_equal(classes[data.y], labels)
    assert list(classes) == ["left_hand", "right_hand"]
