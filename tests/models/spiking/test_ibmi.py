"""iBMI velocity decoders: contract, consistency, planted tuning, training loop.

Streaming = windowed consistency; a planted tuning is decoded.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.data.reaching import make_reaching, make_windows
from bci.evaluation.ibmi_metrics import r2_neurobench
from bci.models.spiking.ibmi import (
    IBMI_MODELS,
    SNN3D,
    GRUDecoder,
    LinearDecoder,
    SNNStreaming,
    fit_ridge,
    fit_sequence_decoder,
    predict_sequences,
)

N_TIMES = {"SNNStreaming": 1, "SNN3D": 4, "ANNDecoder": 4, "GRUDecoder": 1, "LinearDecoder": 3}


@pytest.fixture(scope="module")
def sim():
    return make_reaching(48, 16, sfreq=20.0, trial_s=1.6, random_state=0)


def _build(name, seed=0, n_chans=16, **kwargs):
    torch.manual_seed(seed)
    return IBMI_MODELS[name](n_chans, 2, N_TIMES[name], sfreq=20.0, **kwargs)


@pytest.mark.parametrize("name", sorted(IBMI_MODELS))
def test_contract_shapes_config_and_seed(name):
    model = _build(name).eval()
    x = torch.poisson(torch.full((3, 16, N_TIMES[name]), 0.8))
    assert model(x).shape == (3, 2)
    seq = torch.poisson(torch.full((2, 16, 11), 0.8))
    assert model.forward_sequence(seq).shape == (2, 2, 11)
    clone = type(model).from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    torch.testing.assert_close(_build(name).eval()(x), model(x))  # same seed, same output
    with pytest.raises(ValueError, match="n_chans=16"):
        model.forward_sequence(torch.zeros(1, 15, 5))


@pytest.mark.parametrize("name", sorted(IBMI_MODELS))
def test_sequence_prediction_is_causal_and_matches_windows(name, sim):
    model = _build(name).eval()
    X = torch.as_tensor(np.stack(sim.spikes[:2]), dtype=torch.float32)
    with torch.no_grad():
        seq = model.forward_sequence(X)
        # causality: changing the future leaves the past unchanged
        X2 = X.clone()
        X2[..., 20:] = 5.0
        torch.testing.assert_close(model.forward_sequence(X2)[..., :20], seq[..., :20])
        if not model.streaming:  # windowed: bin k is the window ending at k
            windows, _, groups = make_windows(sim.subset([0, 1]), model.n_times)
            out = model(torch.as_tensor(windows))
            torch.testing.assert_close(out[groups == 0].T, seq[0], rtol=1e-5, atol=1e-5)
        else:  # streaming: forward on a window starts from rest at its first bin
            nine = type(model).from_config({**model.get_config(), "n_times": 9}).eval()
            nine.load_state_dict(model.state_dict())
            torch.testing.assert_close(nine(X[..., :9]), seq[..., 8])


@pytest.mark.parametrize("cls", [SNNStreaming, GRUDecoder])
def test_streaming_chunk_by_chunk_equals_whole_sequence(cls):
    torch.manual_seed(0)
    model = cls(16, 2, 1, sfreq=20.0).eval()
    x = torch.poisson(torch.full((2, 16, 30), 1.0))
    with torch.no_grad():
        whole = model.forward_sequence(x)
        a, state = model.forward_sequence(x[..., :12], return_state=True)
        b = model.forward_sequence(x[..., 12:], state)
    torch.testing.assert_close(torch.cat([a, b], -1), whole)


@pytest.mark.parametrize("name", ["SNNStreaming", "SNN3D"])
def test_gradients_reach_the_first_layer(name):
    model = _build(name, dropout=0.0).train()
    x = torch.poisson(torch.full((4, 16, 12), 1.5))
    model.forward_sequence(x).pow(2).sum().backward()
    first = model.fc_in if name == "SNNStreaming" else model.fc1
    assert first.weight.grad is not None
    assert first.weight.grad.abs().sum() > 0


def test_ridge_decodes_the_planted_tuning(sim):
    train, test = sim.subset(range(36)), sim.subset(range(36, 48))
    model = fit_ridge(LinearDecoder(16, 2, 3, sfreq=20.0, input_transform="none"), train,
                      alpha=1.0)
    r2 = r2_neurobench(test.velocity, predict_sequences(model, test))
    assert r2 > 0.7
    # ridge with alpha -> 0 is ordinary least squares (numpy lstsq on the same design)
    ols = fit_ridge(LinearDecoder(16, 2, 1, sfreq=20.0, input_transform="none"), train,
                    alpha=0.0)
    X, y, _ = make_windows(train, 1)
    design = np.c_[X[:, :, 0], np.ones(len(X))]
    coef = np.linalg.lstsq(design, y, rcond=None)[0]
    np.testing.assert_allclose(ols(torch.as_tensor(X)).detach().numpy(), design @ coef,
                               rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(("name", "bar"), [("SNNStreaming", 0.5), ("SNN3D", 0.6)])
def test_spiking_decoders_learn_the_planted_tuning(name, bar, sim):
    train, val = sim.subset(range(32)), sim.subset(range(32, 40))
    test = sim.subset(range(40, 48))
    model = _build(name, n_hidden=24) if name == "SNNStreaming" else _build(name)
    result = fit_sequence_decoder(model, train, val=val, max_epochs=12, lr=1e-2,
                                  random_state=0)
    assert result.val_loss[result.best_epoch] == min(result.val_loss)
    r2 = r2_neurobench(test.velocity, predict_sequences(model, test))
    assert r2 > bar
    # outputs come back in cm/s: the fitted scale is the training velocity sd
    sd = np.concatenate(train.velocity, axis=1).std(axis=1)
    np.testing.assert_allclose(model.output_scale.numpy(), sd, rtol=1e-5)


def test_fitting_errors(sim):
    with pytest.raises(TypeError, match="fit_ridge"):
        fit_sequence_decoder(LinearDecoder(16, 2, 3, sfreq=20.0), sim)
    with pytest.raises(TypeError, match="LinearDecoder"):
        fit_ridge(SNNStreaming(16, sfreq=20.0), sim)
    with pytest.raises(ValueError, match="needs sfreq"):
        SNNStreaming(16)
    with pytest.raises(ValueError, match="Did you mean 'zero'"):
        SNNStreaming(16, sfreq=20.0, reset="zer")
    with pytest.raises(TypeError, match=r"learn_tau must be True or False, got int \(1\)"):
        SNNStreaming(16, sfreq=20.0, learn_tau=1)
    with pytest.raises(ValueError, match=r"tau_s must be a finite number > 0 \(seconds\), got 0.0"):
        SNN3D(16, sfreq=20.0, tau_s=0.0)
    with pytest.raises(TypeError, match=r"n_hidden must be an int, got float"):
        GRUDecoder(16, sfreq=20.0, n_hidden=8.0)
    with pytest.raises(ValueError, match=r"alpha must be a finite number >= 0, got -1.0. It is the "
                                         r"ridge penalty"):
        fit_ridge(LinearDecoder(16, 2, 3, sfreq=20.0), sim, alpha=-1.0)
    with pytest.raises(TypeError, match=r"random_state must be an int, got float .* Pass an int "
                                        r"seed, a numpy.random.Generator or None"):
        fit_sequence_decoder(GRUDecoder(16, sfreq=20.0), sim, max_epochs=1, random_state=0.5)
    with pytest.raises(TypeError, match=r"max_epochs must be an int, got float"):
        fit_sequence_decoder(GRUDecoder(16, sfreq=20.0), sim, max_epochs=1.0)


def test_snn_streaming_variants_cuba_and_learnable_time_constants():
    torch.manual_seed(0)
    model = SNNStreaming(16, 2, 1, sfreq=20.0, neuron="cuba", learn_tau=True, dropout=0.0)
    x = torch.poisson(torch.full((2, 16, 15), 2.0))
    model.forward_sequence(x).pow(2).sum().backward()
    assert model.lif_hidden.alpha.logit.grad is not None
    assert model.lif_out.beta.logit.grad.abs().sum() > 0
    # time constants in seconds become decays per bin: tau 0.1 s at 20 Hz -> exp(-0.5)
    assert model.lif_hidden.beta(torch.float64)[0].item() == pytest.approx(np.exp(-0.5))
    assert SNNStreaming.from_config(model.get_config()).neuron == "cuba"


@pytest.mark.parametrize("name", ["GRUDecoder", "SNN3D"])
def test_fit_trains_through_decoder_module_with_early_stopping(name, sim, monkeypatch):
    """Fit with DecoderModule, stop early, restore the best epoch, seeded.

    fit_sequence_decoder trains masked whole trials for streaming decoders and windows for windowed
    ones.
    """
    from bci.models.training import DecoderModule

    steps = []
    step = DecoderModule._step

    def spy(self, batch, stage):
        steps.append((stage, len(batch), self.hparams.task))
        return step(self, batch, stage)

    monkeypatch.setattr(DecoderModule, "_step", spy)
    train, val = sim.subset(range(32)), sim.subset(range(32, 40))
    patience, max_epochs = 2, 40

    def fit(random_state):
        model = _build(name)
        result = fit_sequence_decoder(model, train, val=val, max_epochs=max_epochs, lr=3e-2,
                                      patience=patience, random_state=random_state)
        return model, result

    model, result = fit(0)
    streaming = model.streaming
    task = "sequence_regression" if streaming else "regression"
    assert {s[0] for s in steps} == {"train", "val"}
    assert {(s[1], s[2]) for s in steps} == {(3 if streaming else 2, task)}  # (x, y[, mask])
    n_epochs = len(result.train_loss)
    assert len(result.history) == len(result.val_loss) == n_epochs
    assert {"train_r2", "val_r2", "lr"} <= set(result.history[-1])
    assert all(row["lr"] == pytest.approx(3e-2) for row in result.history)  # constant lr
    # early stopping: patience epochs after the best one, before max_epochs
    assert result.best_epoch == int(np.argmin(result.val_loss))
    assert n_epochs == result.best_epoch + patience + 1 < max_epochs
    # the kept weights are the best epoch's: their masked MSE on standardised validation
    # targets (numpy, over every real bin) is the minimum of the history
    mean = model.output_offset.numpy()[:, None]
    sd = model.output_scale.numpy()[:, None]
    err = [((p - v) / sd) ** 2
           for p, v in zip(predict_sequences(model, val), val.velocity, strict=True)]
    loss = np.concatenate(err, axis=1).mean()
    assert loss == pytest.approx(min(result.val_loss), rel=1e-4)
    np.testing.assert_allclose(mean[:, 0], np.concatenate(train.velocity, 1).mean(1), rtol=1e-5)
    # seeded: the same seeds give the same run, another shuffling seed another one
    state = torch.get_rng_state()
    again, result_again = fit(0)
    assert torch.equal(state, torch.get_rng_state())  # caller's RNG untouched by training
    assert result_again.train_loss == result.train_loss
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)
    assert fit(1)[1].train_loss[:3] != result.train_loss[:3]


def test_fit_without_validation_and_a_last_batch_of_one(sim, monkeypatch):
    """Without validation: max_epochs, last epoch kept.

    A last training batch of one window is dropped (ANNDecoder's BatchNorm cannot train on it), the
    other batches are kept.
    """
    from bci.models.training import DecoderModule

    sizes = []
    step = DecoderModule._step

    def spy(self, batch, stage):
        sizes.append(len(batch[0]))
        return step(self, batch, stage)

    monkeypatch.setattr(DecoderModule, "_step", spy)
    train = sim.subset(range(8))
    n_windows = len(make_windows(train, 4)[0])
    batch_size = (n_windows - 1) // 3  # three full batches and one window left over
    assert n_windows == 3 * batch_size + 1
    result = fit_sequence_decoder(_build("ANNDecoder"), train, max_epochs=3, patience=1,
                                  batch_size=batch_size, random_state=0)
    assert sizes == [batch_size] * 9
    assert result.val_loss == []
    assert result.best_epoch == 2
    assert len(result.train_loss) == 3
    assert result.train_loss[-1] < result.train_loss[0]
