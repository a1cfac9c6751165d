"""Fine-tuning from a `bci pretrain` file: channel mapping, scaling, decoder file, live replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.cli import main
from bci.data.pretraining import NEUROGPT_CHANNELS
from bci.models.decoder import apply_channel_map, load_decoder, network_info
from bci.models.neurogpt import NeuroGPT, save_pretrained
from bci.models.training import torch_threads
from bci.pipelines.pretrain import pretrain
from bci.realtime.session import replay_offline

FAST = ["--max-epochs", "1", "--batch-size", "8", "--threads", "1", "--seed", "0"]


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """Return a small file pretrained 1 epoch on synthetic 8-channel SSVEP recordings."""
    folder = tmp_path_factory.mktemp("pre")
    with torch_threads(1):
        return pretrain("SyntheticSSVEP", folder / "pre.bci",
                        dataset_params={"SyntheticSSVEP": {"n_trials": 1}}, max_epochs=1,
                        batch_size=8, seed=0, progress_bar=False)


def _replay(decoder, seconds: float = 6.0):
    rng = np.random.default_rng(0)
    n = int(seconds * decoder.sfreq)
    signal = rng.normal(0, 10e-6, (decoder.n_chans, n))  # volts, EEG-like amplitude
    window_s = decoder.n_times / decoder.sfreq
    return replay_offline(signal, decoder.sfreq, decoder.ch_names, decoder=decoder,
                          window_s=window_s, step_s=0.5, buffer_s=2 * seconds), signal


def test_eight_channel_ssvep_fine_tunes_on_the_mapped_channels_and_replays(pretrained,
                                                                          tmp_path):
    out = tmp_path / "ft.bci"
    assert main(["train", "--dataset", "SyntheticSSVEP", "--paradigm", "SSVEP",
                 "--dataset-param", "n_trials=4", "--subjects", "1", "--model", "NeuroGPT",
                 "--pretrained", str(pretrained), "--finetune", "encoder", *FAST,
                 "--out", str(out)]) == 0
    decoder = load_decoder(out)
    assert decoder.n_chans == 8
    cmap = decoder.channel_map
    assert cmap["channels"] == list(NEUROGPT_CHANNELS)
    # Kalunga-like montage: only O1, Oz, O2 reach the model, from the decoder's channels
    present = {c: decoder.ch_names[p] for c, p in zip(cmap["channels"], cmap["picks"],
                                                       strict=True) if p >= 0}
    assert present == {"O1": "O1", "Oz": "Oz", "O2": "O2"}
    assert cmap["clip"] == network_info(pretrained)["preprocessing"]["clip"] == 20.0
    # the pretraining band, as the paradigm's filter and the live preprocessing's
    assert decoder.filters == [(0.5, 45.0)]
    assert decoder.resample == 128.0
    # the network sees 22 channels, absent ones zero; the encoder is the pretrained one's size
    network = decoder.estimator.model_
    assert network.n_chans == 22
    assert network.finetune == "encoder"
    windows = np.random.default_rng(1).normal(0, 10e-6, (3, 8, decoder.n_times))
    mapped = apply_channel_map(_filtered(decoder, windows), cmap)
    assert mapped.shape == (3, 22, network.n_times)  # 1023 samples at 256 Hz -> 512 at 128
    absent = [i for i, p in enumerate(cmap["picks"]) if p < 0]
    assert not mapped[:, absent].any()
    np.testing.assert_array_equal(decoder.preprocess(windows), mapped)
    # bci stream's loop (offline replay) runs it: one decision per 0.5-s step
    (decisions, summary), signal = _replay(decoder)
    assert len(decisions) == summary["decisions"] > 0
    last = decisions[-1]
    window = signal[:, last.stop_index - decoder.n_times:last.stop_index]
    np.testing.assert_allclose(last.proba, decoder.predict_proba(window[None])[0],
                               rtol=1e-5, atol=1e-6)


def _filtered(decoder, windows):
    """Return the decoder's preprocessing up to (not including) the channel map."""
    saved, decoder.channel_map = decoder.channel_map, None
    try:
        return decoder.preprocess(windows)
    finally:
        decoder.channel_map = saved


def test_sixty_four_channel_imagery_fine_tunes_through_the_mapping(pretrained, tmp_path):
    from bci.pipelines.train import train_decoder

    decoder = train_decoder("SyntheticMotorImagery", "LeftRightImagery", "NeuroGPT-linear",
                            subjects=[1], pretrained=pretrained,
                            dataset_params={"n_chans": 64, "n_trials": 6}, random_state=0)
    cmap = decoder.channel_map
    assert decoder.n_chans == 64
    present = {c for c, p in zip(cmap["channels"], cmap["picks"], strict=True) if p >= 0}
    # every 10-20 site of the 22 the synthetic 64-channel montage has; never T1/T2 (TUH only)
    assert {"C3", "Cz", "C4", "Fz", "Pz"} <= present
    assert not {"T1", "T2"} & present
    # robust scaling on the training epochs: each present channel's median is 0
    X = apply_channel_map(np.zeros((1, 64, 4)), cmap)
    pick = cmap["picks"][cmap["channels"].index("Cz")]
    center = cmap["center"][cmap["channels"].index("Cz")]
    scale = cmap["scale"][cmap["channels"].index("Cz")]
    assert scale > 0
    np.testing.assert_allclose(X[0, cmap["channels"].index("Cz")], -center / scale, rtol=1e-6)
    assert pick == decoder.ch_names.index("Cz")
    path = decoder.save(tmp_path / "mi.bci")
    (decisions, _), _ = _replay(load_decoder(path))
    assert decisions
    assert all(np.isfinite(d.proba).all() for d in decisions)


def test_fine_tuning_refuses_a_montage_with_no_channel_in_common(tmp_path, capsys):
    # a file pretrained on two frontal channels; SyntheticSSVEP has occipital ones only
    model = NeuroGPT(2, 2, 7 * 112 + 128, sfreq=128.0, chunk_s=1.0, overlap_s=0.125,
                     finetune=None)
    path = save_pretrained(model, tmp_path / "frontal.bci",
                           info={"preprocessing": {"channels": ["Fp1", "Fp2"], "l_freq": 0.5,
                                                   "h_freq": 45.0, "clip": 20.0,
                                                   "sfreq": 128.0}})
    assert main(["train", "--dataset", "SyntheticSSVEP", "--paradigm", "SSVEP",
                 "--dataset-param", "n_trials=2", "--subjects", "1", "--model", "NeuroGPT",
                 "--pretrained", str(path), *FAST, "--out", str(tmp_path / "x.bci")]) == 2
    err = capsys.readouterr().err
    assert "bci train: error: No channel of the recording" in err
    assert "['Fp1', 'Fp2']" in err
    assert not (tmp_path / "x.bci").exists()


def test_network_masks_channels_that_are_zero_throughout():
    torch.manual_seed(0)
    model = NeuroGPT(4, 2, 128, sfreq=64.0, chunk_s=1.0, finetune="encoder").eval()
    x = torch.randn(2, 4, 128)
    x[:, 3] = 0.0
    mask = torch.tensor([[True, True, True, False]] * 2)
    expected = model.head(model.embed_chunks(model.split_chunks(x), mask).flatten(1))
    torch.testing.assert_close(model(x), expected)
    # all present: no mask (the same as before masking existed)
    y = torch.randn(2, 4, 128)
    torch.testing.assert_close(model(y), model.head(model.embed_chunks(
        model.split_chunks(y)).flatten(1)))


def test_a_file_without_recorded_preprocessing_and_other_channels_is_refused(tmp_path,
                                                                             capsys):
    # a 22-channel NeuroGPT saved directly (no bci pretrain preprocessing) for 8-channel data
    model = NeuroGPT.from_named_config("small", finetune=None)
    path = save_pretrained(model, tmp_path / "bare.bci")
    assert main(["train", "--dataset", "SyntheticSSVEP", "--paradigm", "SSVEP",
                 "--dataset-param", "n_trials=2", "--subjects", "1", "--model", "NeuroGPT",
                 "--pretrained", str(path), *FAST, "--out", str(tmp_path / "x.bci")]) == 2
    err = capsys.readouterr().err
    assert "records no pretraining preprocessing" in err
    assert "another configuration: n_chans (file 22, model 8)" in err
    assert not (tmp_path / "x.bci").exists()
