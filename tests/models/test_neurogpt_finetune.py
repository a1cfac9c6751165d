"""Fine-tuning NeuroGPT from a pretrained file: registered pipelines, train_decoder, bci train."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.cli import main
from bci.models.classifier import DeepClassifier
from bci.models.decoder import load_decoder
from bci.models.neurogpt import NeuroGPT, save_pretrained
from bci.models.training import recalibrate_batch_norm_stats, torch_threads
from bci.pipelines.registry import get_pipeline, neurogpt_pipeline
from bci.pipelines.train import train_decoder

# SyntheticMotorImagery: 8 channels at 128 Hz, LeftRightImagery epochs of 0-4 s (513 samples)
ARCH = dict(n_filters_time=8, filter_time_length=9, pool_time_length=16, pool_time_stride=8,
            att_depth=1, att_heads=2, gpt_width=16, gpt_layers=1, gpt_heads=2, n_positions=16)


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture
def pretrained_64hz(tmp_path):
    """Save a 'pretrained' 8-channel NeuroGPT at 64 Hz, 1-s chunks (random weights and stats)."""
    torch.manual_seed(0)
    model = NeuroGPT(8, 2, 256, sfreq=64.0, chunk_s=1.0, finetune=None, **ARCH)
    with torch.no_grad():
        model.encoder.bn.running_mean.uniform_(-0.5, 0.5)
        model.encoder.bn.running_var.uniform_(0.5, 2.0)
    return model, save_pretrained(model, tmp_path / "pre.bci")


def test_registered_neurogpt_pipelines():
    for name, finetune in [("NeuroGPT", "encoder_gpt"), ("NeuroGPT-encoder", "encoder"),
                           ("NeuroGPT-linear", "linear")]:
        est = get_pipeline(name)
        assert isinstance(est, DeepClassifier)
        assert est.model == "NeuroGPT"
        assert est.model_params == {"finetune": finetune}
    # from scratch on epochs without a sampling rate: the window is one chunk
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 4, 128)), np.arange(16) % 2
    clf = get_pipeline("NeuroGPT-encoder").set_params(max_epochs=1, batch_size=8).fit(X, y)
    assert clf.model_.n_chunks == 1
    assert clf.predict_proba(X).shape == (16, 2)


def test_linear_probe_recalibration_keeps_the_frozen_encoder(pretrained_64hz):
    _, path = pretrained_64hz
    model = NeuroGPT.from_pretrained(path, 2, 256, finetune="linear")
    before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    recalibrate_batch_norm_stats(model, torch.randn(8, 8, 256))
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_bci_train_fine_tunes_a_linear_probe_from_a_pretrained_file(pretrained_64hz, tmp_path,
                                                                     capsys):
    pre, path = pretrained_64hz
    out = tmp_path / "probe.bci"
    assert main(["train", "--dataset", "SyntheticMotorImagery", "--model", "NeuroGPT",
                 "--pretrained", str(path), "--finetune", "linear", "--subjects", "1",
                 "--max-epochs", "2", "--threads", "1", "--out", str(out)]) == 0
    assert "Saved NeuroGPT decoder" in capsys.readouterr().out
    decoder = load_decoder(out)
    # epochs resampled from 128 Hz to the file's 64 Hz: 513 samples become 256, 4 chunks
    assert decoder.resample == 64.0
    assert decoder.info["pretrained"] == str(path)
    network = decoder.estimator.model_
    assert network.get_config()["finetune"] == "linear"
    assert network.get_config()["pretrained"] is None  # the decoder file holds the weights
    assert (network.n_times, network.n_chunks) == (256, 4)
    # the frozen encoder is the pretrained one, bit for bit (weights and BatchNorm statistics)
    theirs = pre.encoder.state_dict()
    for key, value in network.encoder.state_dict().items():
        assert torch.equal(value, theirs[key]), key
    windows = 1e-6 * np.random.default_rng(0).standard_normal((2, 8, decoder.n_times))
    proba = decoder.predict_proba(windows)
    assert proba.shape == (2, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)


def test_train_decoder_fine_tunes_encoder_and_gpt(pretrained_64hz):
    pre, path = pretrained_64hz
    short = neurogpt_pipeline(max_epochs=2, n_threads=1)  # a DeepClassifier("NeuroGPT")
    decoder = train_decoder("SyntheticMotorImagery", "LeftRightImagery", short, [1],
                            pretrained=path, random_state=0)
    assert decoder.estimator.n_epochs_ == 2
    network = decoder.estimator.model_
    assert network.finetune == "encoder_gpt"
    assert network.get_config()["gpt_width"] == 16
    # fine-tuned: the weights moved away from the pretrained ones (all are trained)
    assert not torch.equal(network.gpt.wpe, pre.gpt.wpe)
    assert not torch.equal(network.encoder.temporal_weight, pre.encoder.temporal_weight)


def test_fine_tuning_errors(pretrained_64hz, tmp_path, capsys):
    _, path = pretrained_64hz
    base = ["train", "--dataset", "SyntheticMotorImagery", "--subjects", "1", "--max-epochs",
            "1", "--out", str(tmp_path / "x.bci")]
    assert main([*base, "--model", "EEGNet", "--pretrained", str(path)]) == 2
    assert "pretrained and finetune are for NeuroGPT pipelines" in capsys.readouterr().err
    assert main([*base, "--model", "NeuroGPT", "--pretrained", str(path), "--paradigm-param",
                 "resample=100"]) == 2
    assert "takes epochs at 64 Hz, but the paradigm resamples to 100 Hz" in \
        capsys.readouterr().err
    # a file pretrained on 4 channels for the 8-channel dataset
    four = save_pretrained(NeuroGPT(4, 2, 256, sfreq=64.0, chunk_s=1.0, finetune=None, **ARCH),
                           tmp_path / "four.bci")
    assert main([*base, "--model", "NeuroGPT", "--pretrained", str(four)]) == 2
    assert "another configuration: n_chans (file 4, model 8)" in capsys.readouterr().err
    truncated = tmp_path / "truncated.bci"
    truncated.write_bytes(path.read_bytes()[:1000])
    assert main([*base, "--model", "NeuroGPT", "--pretrained", str(truncated)]) == 2
    assert "truncated.bci" in capsys.readouterr().err
    # a window shorter than one chunk: 0-0.5 s resampled to 64 Hz is 32 samples, a chunk 64
    assert main([*base, "--model", "NeuroGPT", "--pretrained", str(path), "--paradigm-param",
                 "tmax=0.5"]) == 2
    assert "n_times=32 is too short for NeuroGPT; it needs >= 64 samples (1 s at sfreq=64 Hz) " \
           "(one chunk)" in capsys.readouterr().err
    with pytest.raises(ValueError, match="needs max_steps|pretrained and finetune"):
        train_decoder("SyntheticMotorImagery", "LeftRightImagery", "MDM", [1], finetune="linear")
    assert neurogpt_pipeline("linear", pretrained=path).sfreq == 64.0


def test_readme_flow_small_configuration(tmp_path, monkeypatch, capsys):
    """The README's example: pretrain the small configuration on 8 channels, then bci train."""
    from torch.utils.data import DataLoader

    from bci.models.training import pretrain_model

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = NeuroGPT.from_named_config("small", n_chans=8)
    gen = torch.Generator().manual_seed(1)
    items = [{"chunks": torch.randn(8, 8, 128, generator=gen),
              "channel_mask": torch.tensor([True] * 7 + [False])} for _ in range(8)]
    loader = DataLoader(items, batch_size=4)
    result = pretrain_model(model, loader, max_epochs=2, seed=0, checkpoint_dir="ckpt",
                            ckpt_path="last", progress_bar=False)
    assert result.n_steps == 4
    assert result.last_checkpoint.resolve() == tmp_path / "ckpt" / "last.ckpt"
    save_pretrained(result.model, "pre.bci")
    assert main(["train", "--dataset", "SyntheticMotorImagery", "--subjects", "1", "--model",
                 "NeuroGPT", "--pretrained", "pre.bci", "--finetune", "encoder",
                 "--out", "s1_neurogpt.bci", "--max-epochs", "1"]) == 0
    decoder = load_decoder(tmp_path / "s1_neurogpt.bci")
    network = decoder.estimator.model_
    assert (network.finetune, network.n_chunks, network.chunk_samples) == ("encoder", 4, 128)
    assert decoder.resample == 128.0
