"""Training-batch augmentation: each transform does what it says, only while training."""

import numpy as np
import pytest
import torch

from bci.models.augmentation import EpochAugmentation, make_augmentation


def _batch(n=6, n_chans=3, n_times=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, n_chans, n_times, generator=g), torch.tensor([0, 1, 2] * (n // 3))


def test_off_is_identity():
    x, y = _batch()
    xa, ya = EpochAugmentation()(x, y)
    assert torch.equal(xa, x)
    assert torch.equal(ya, y)


def test_time_shift_is_circular_and_bounded():
    x, y = _batch()
    torch.manual_seed(0)
    xa, _ = EpochAugmentation(time_shift=0.1)(x, y)  # up to 4 samples
    for i in range(len(x)):
        matches = [s for s in range(-4, 5) if torch.equal(xa[i], torch.roll(x[i], s, dims=-1))]
        assert matches, f"trial {i} is not a circular shift of at most 4 samples"
    assert not torch.equal(xa, x)


def test_scale_noise_and_dropout():
    x, y = _batch(n=300)
    torch.manual_seed(1)
    gains = (EpochAugmentation(scale=0.2)(x, y)[0] / x)[:, 0, 0]
    assert gains.min() >= 0.8 - 1e-6
    assert gains.max() <= 1.2 + 1e-6
    assert gains.std() > 0.05
    noisy, _ = EpochAugmentation(noise=0.5)(x, y)
    ratio = ((noisy - x).std() / x.std()).item()
    assert 0.45 < ratio < 0.55
    dropped, _ = EpochAugmentation(channel_dropout=0.5)(x, y)
    zero = (dropped.abs().sum(-1) == 0).float().mean().item()
    assert 0.4 < zero < 0.6
    kept = dropped.abs().sum(-1) > 0
    assert torch.equal(dropped[kept], x[kept])


def test_recombine_takes_segments_from_the_same_class():
    x, y = _batch(n=9, n_times=30)
    torch.manual_seed(2)
    xa, _ = EpochAugmentation(recombine=3)(x, y)
    for i in range(len(x)):
        for start in (0, 10, 20):
            segment = xa[i, :, start:start + 10]
            donors = [j for j in range(len(x)) if torch.equal(segment, x[j, :, start:start + 10])]
            assert donors
            assert all(y[j] == y[i] for j in donors)
    with pytest.raises(ValueError, match="class labels"):
        EpochAugmentation(recombine=2)(x, torch.randn(9))


def test_seeded_and_validated():
    x, y = _batch()
    aug = EpochAugmentation(time_shift=0.2, noise=0.1, recombine=2)
    torch.manual_seed(5)
    a = aug(x, y)[0]
    torch.manual_seed(5)
    assert torch.equal(a, aug(x, y)[0])
    for bad, exc, match in [
        ({"time_shift": 0.5}, ValueError,
         r"time_shift must be a fraction of the window in \[0, 0.5\), got 0.5"),
        ({"scale": -0.1}, ValueError, r"scale must be a fraction in \[0, 1\), got -0.1"),
        ({"noise": float("nan")}, ValueError, r"noise must be a finite number >= 0 \(relative to "
                                              r"each trial's standard deviation\), got nan"),
        ({"recombine": 1.5}, TypeError, r"recombine must be an int \(segments\), got float"),
        ({"recombine": -1}, ValueError, r"recombine must be an int >= 0 \(segments\), got -1"),
        ({"channel_dropout": 1.0}, ValueError,
         r"channel_dropout must be a probability in \[0, 1\), got 1.0"),
        ({"scale": "0.1"}, TypeError, r"scale must be a fraction, got str"),
    ]:
        with pytest.raises(exc, match=match):
            EpochAugmentation(**bad)
    with pytest.raises(TypeError, match="augmentation must be"):
        make_augmentation("shift")
    assert make_augmentation(None) is None
    assert make_augmentation({"noise": 0.1}).noise == 0.1


def test_deep_classifier_trains_with_augmentation_only_on_training_batches():
    from bci.models.classifier import DeepClassifier
    from bci.models.training import DecoderModule

    rng = np.random.default_rng(0)
    X = rng.standard_normal((24, 4, 128)).astype(np.float32)
    y = np.array(["a", "b"] * 12)
    X[y == "a", 0] += 2.0  # separable: class a has an offset on channel 0
    params = dict(max_epochs=3, batch_size=8, seed=0,
                  augmentation={"time_shift": 0.1, "scale": 0.1, "recombine": 2})
    first = DeepClassifier("EEGNet", **params).fit(X, y).predict_proba(X)
    again = DeepClassifier("EEGNet", **params).fit(X, y).predict_proba(X)
    plain = DeepClassifier("EEGNet", **{**params, "augmentation": None}).fit(X, y)
    np.testing.assert_array_equal(first, again)  # seeded augmentation is reproducible
    assert not np.allclose(first, plain.predict_proba(X))

    calls = []

    class Spy(EpochAugmentation):
        def forward(self, x, y):
            calls.append(len(x))
            return super().forward(x, y)

    module = DecoderModule(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 2)),
                           task="regression", augmentation=Spy(noise=0.1))
    batch = (torch.randn(4, 2, 4), torch.randn(4, 2))
    for stage in ("val", "test"):
        with pytest.warns(UserWarning, match="self.log"):  # no Trainer attached here
            module._step(batch, stage)
    assert calls == []
    with pytest.warns(UserWarning, match="self.log"):
        module._step(batch, "train")
    assert calls == [4]
