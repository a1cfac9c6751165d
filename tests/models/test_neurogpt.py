"""NeuroGPT (bci.models.neurogpt): parameter counts, the masked objective, channels, files."""

from __future__ import annotations

import copy
import zipfile

import pytest
import torch
import torch.nn.functional as F

from bci.models._threads import torch_threads
from bci.models.neurogpt import NEUROGPT_CONFIGS, NeuroGPT, pretrained_config, save_pretrained
from bci.models.registry import get_model


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: these small transformers only lose to OpenMP on 2 busy cores."""
    with torch_threads(1):
        yield


def _n_params(model: torch.nn.Module, trainable: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def _tiny(finetune=None, seed=0, **kwargs) -> NeuroGPT:
    """4 channels, 64-sample chunks overlapping by 16 at 64 Hz, 4 chunks: fast."""
    torch.manual_seed(seed)
    args = dict(sfreq=64.0, chunk_s=1.0, overlap_s=0.25, n_filters_time=8,
                filter_time_length=9, pool_time_length=16, pool_time_stride=8, att_depth=1,
                att_heads=2, gpt_width=16, gpt_layers=2, gpt_heads=2, n_positions=8,
                finetune=finetune)
    args.update(kwargs)
    return NeuroGPT(4, 3, 4 * 48 + 16, **args)


def _chunks(batch=3, n_chunks=4, seed=1, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n_chunks, 4, 64, generator=gen, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Parameter counts
# ---------------------------------------------------------------------------------------------
def _encoder_count(C, F_, K, depth):
    block = 2 * 2 * F_ + (3 * F_ * F_ + 3 * F_) + (F_ * F_ + F_) + (4 * F_ * F_ + 4 * F_) \
        + (4 * F_ * F_ + F_)
    # temporal conv, spatial conv, BatchNorm, 1 x 1 projection, blocks
    return F_ * K + F_ + F_ * F_ * C + F_ + 2 * F_ + F_ * F_ + F_ + depth * block


def _gpt_count(W, layers, positions):
    block = 2 * 2 * W + (3 * W * W + 3 * W) + (W * W + W) + (4 * W * W + 4 * W) + (4 * W * W + W)
    return positions * W + layers * block + 2 * W


def test_paper_configuration_parameter_count():
    # Built on the meta device: shapes only, no memory, no initialisation cost.
    with torch.device("meta"):
        model = NeuroGPT.from_named_config("paper")
    assert (model.n_chans, model.chunk_samples, model.overlap_samples) == (22, 500, 50)
    assert (model.n_chunks, model.n_times) == (32, 32 * 450 + 50)
    # 500 - 25 + 1 = 476 samples, pooled by 75 every 15: 27 tokens of 40 features
    assert (model.n_tokens, model.embed_dim) == (27, 1080)
    encoder = _encoder_count(22, 40, 25, 6)
    assert encoder == 156_320
    assert _n_params(model.encoder) == encoder
    gpt = _gpt_count(1024, 6, 512)
    assert gpt == 76_103_680
    in_proj = 1080 * 1024 + 1024 + 2 * 1024  # Linear + LayerNorm
    out_proj = 1024 * 1080 + 1080
    mask_token = 1080
    expected = encoder + in_proj + gpt + out_proj + mask_token
    assert _n_params(model) == expected == 78_477_072
    # The authors' pretraining model (their code, this configuration) has 79,528,776
    # parameters, the "79.5 M" of the paper: ours plus three it never uses in pretraining, a
    # classification token (1080), GPT-2's token embedding of its 1-word vocabulary (1024) and
    # the pooler it builds for fine-tuning (Linear(1024, 1024): 1,049,600).
    assert expected + 1080 + 1024 + 1024 * 1024 + 1024 == 79_528_776


def test_paper_fine_tuning_parameter_counts():
    # the paper's fine-tuning: 4-s trials of BCI IV 2a (1,000 samples) as 2 chunks, 4 classes
    head = 1024 * 256 + 256 + 256 * 32 + 32 + 32 * 4 + 4
    counts = {}
    for finetune in ("encoder_gpt", "encoder", "linear"):
        with torch.device("meta"):
            model = NeuroGPT.from_named_config("paper", n_outputs=4, n_times=1000,
                                               finetune=finetune, overlap_s=0.0)
        assert model.n_chunks == 2
        counts[finetune] = (_n_params(model), _n_params(model, trainable=True))
    encoder = 156_320
    gpt_part = 1080 * 1024 + 3 * 1024 + _gpt_count(1024, 6, 512)
    assert counts["encoder_gpt"] == (encoder + gpt_part + 1080 + 1024 * 1024 + 1024 + head,) * 2
    encoder_head = 2 * 1080 * 256 + 256 + 256 * 32 + 32 + 32 * 4 + 4
    assert counts["encoder"] == (encoder + encoder_head,) * 2
    assert counts["linear"] == (encoder + 2 * 1080 * 4 + 4, 2 * 1080 * 4 + 4)


def test_small_configuration():
    model = NeuroGPT.from_named_config("small")
    assert (model.chunk_samples, model.overlap_samples, model.n_chunks) == (128, 16, 8)
    assert model.n_times == 8 * 112 + 16
    assert (model.n_tokens, model.embed_dim) == (6, 96)
    expected = _encoder_count(22, 16, 13, 2) + (96 * 64 + 64 + 128) + _gpt_count(64, 2, 64) \
        + (64 * 96 + 96) + 96
    assert _n_params(model) == expected == 129_600
    assert set(NEUROGPT_CONFIGS) == {"paper", "small"}
    with pytest.raises(ValueError, match="Unknown configuration 'smal'. Did you mean 'small'"):
        NeuroGPT.from_named_config("smal")


# ---------------------------------------------------------------------------------------------
# Chunks and the masked objective
# ---------------------------------------------------------------------------------------------
def test_split_chunks_exact_samples():
    model = _tiny(finetune="encoder")
    assert (model.chunk_samples, model.overlap_samples, model.n_chunks) == (64, 16, 4)
    # every channel carries the sample index: chunk k starts at 48 k
    x = torch.arange(model.n_times, dtype=torch.float32).expand(2, 4, -1)
    chunks = model.split_chunks(x)
    assert chunks.shape == (2, 4, 4, 64)
    for k in range(4):
        assert torch.equal(chunks[1, k, 2], torch.arange(48 * k, 48 * k + 64,
                                                         dtype=torch.float32))
    # samples after the last whole chunk are not used
    longer = NeuroGPT(4, 3, model.n_times + 47, **{k: v for k, v in model.get_config().items()
                                                   if k not in ("n_chans", "n_outputs",
                                                                "n_times")})
    assert longer.n_chunks == 4


def _naive_masked_predictions(model: NeuroGPT, chunks: torch.Tensor) -> torch.Tensor:
    """Run the authors' procedure: one copy of the sequence per masked position i (1 .. N-1).

    Copy i holds the real chunks 0 .. i-1, the mask token at i and nothing after (causal
    attention over i + 1 tokens); its output at i is the prediction.
    """
    embeddings = model.embed_chunks(chunks)
    batch, n, dim = embeddings.shape
    out = []
    for i in range(1, n):
        seq = torch.cat([embeddings[:, :i], model.mask_token.expand(batch, 1, dim)], 1)
        causal = torch.ones(i + 1, i + 1, dtype=torch.bool).tril()
        hidden = model.gpt(model.in_proj(seq), torch.arange(i + 1), causal)
        out.append(model.out_proj(hidden[:, -1]))
    return torch.stack(out, 1)


def test_one_pass_objective_equals_one_copy_per_masked_chunk():
    model = _tiny().double().eval()
    chunks = _chunks(dtype=torch.float64)
    predictions, targets = model.masked_predictions(chunks)
    assert predictions.shape == targets.shape == (3, 3, model.embed_dim)
    with torch.no_grad():
        reference = _naive_masked_predictions(model, chunks)
        torch.testing.assert_close(predictions, reference, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(targets, model.embed_chunks(chunks)[:, 1:], rtol=0, atol=0)
    assert not targets.requires_grad  # the target is detached (the authors' code)
    loss = model.pretraining_loss(chunks)
    torch.testing.assert_close(loss, ((predictions - targets) ** 2).mean())


def test_prediction_sees_only_earlier_chunks():
    model = _tiny().eval()
    chunks = _chunks()
    with torch.no_grad():
        before, _ = model.masked_predictions(chunks)
        for k in range(3):
            changed = chunks.clone()
            changed[:, k] += 3.0
            after, _ = model.masked_predictions(changed)
            # prediction of chunk i (row i - 1) uses chunks < i: unchanged for i <= k
            torch.testing.assert_close(after[:, :k], before[:, :k], rtol=0, atol=0)
            assert (after[:, k:] - before[:, k:]).abs().amax(-1).min() > 1e-4


def test_pretraining_gradients_reach_every_parameter():
    model = _tiny().train()
    model.pretraining_loss(_chunks()).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert param.grad.abs().sum() > 0, name


# ---------------------------------------------------------------------------------------------
# Absent channels
# ---------------------------------------------------------------------------------------------
def test_absent_channels_are_ignored_and_present_ones_rescaled():
    model = _tiny().double().eval()
    chunks = _chunks(batch=2, dtype=torch.float64)
    mask = torch.tensor([[True, False, True, False], [True, True, True, True]])
    with torch.no_grad():
        embedded = model.embed_chunks(chunks, mask)
        # the data of absent channels does not matter
        noisy = chunks.clone()
        noisy[0, :, 1] = 100.0
        torch.testing.assert_close(model.embed_chunks(noisy, mask), embedded, rtol=0, atol=0)
        # all present: the same as no mask
        torch.testing.assert_close(embedded[1:], model.embed_chunks(chunks[1:]), rtol=0,
                                   atol=0)
        # closed form: spatial weights of absent channels zeroed, present ones times C / n
        other = copy.deepcopy(model)
        other.encoder.spatial.weight[:, :, [1, 3]] = 0.0
        other.encoder.spatial.weight[:, :, [0, 2]] *= 4 / 2
        torch.testing.assert_close(other.embed_chunks(chunks[:1]), embedded[:1], rtol=1e-12,
                                   atol=1e-12)


@pytest.mark.parametrize(("mask", "exc", "match"), [
    (torch.ones(3, 4, dtype=torch.int64), ValueError, r"channel_mask must be a bool tensor "
                                                     r"\(batch=3, n_chans=4\), got torch.int64"),
    (torch.ones(3, 5, dtype=torch.bool), ValueError, r"got torch.bool \(3, 5\)"),
    (torch.tensor([[True] * 4, [False] * 4, [True] * 4]), ValueError,
     "no channel present in sample 1"),
    ([[True] * 4] * 3, TypeError, "channel_mask must be"),
])
def test_bad_channel_mask(mask, exc, match):
    with pytest.raises(exc, match=match):
        _tiny().pretraining_loss(_chunks(), mask)


def test_bad_chunks():
    model = _tiny()
    with pytest.raises(ValueError, match=r"chunks must have shape \(batch, n_chunks, n_chans=4, "
                                         r"chunk_samples=64\), got \(3, 4, 4, 63\)"):
        model.pretraining_loss(torch.zeros(3, 4, 4, 63))
    with pytest.raises(TypeError, match="chunks must be a Tensor|chunks must be .*Tensor"):
        model.pretraining_loss([[0.0]])
    with pytest.raises(TypeError, match="chunks must be floating point"):
        model.pretraining_loss(torch.zeros(3, 4, 4, 64, dtype=torch.long))
    with pytest.raises(ValueError, match="sequences of 2 to n_positions=8 chunks, got chunks "
                                         r"of shape \(3, 1, 4, 64\)"):
        model.pretraining_loss(torch.zeros(3, 1, 4, 64))
    with pytest.raises(ValueError, match=r"2 to n_positions=8 chunks, got .*\(3, 9, 4, 64\)"):
        model.pretraining_loss(torch.zeros(3, 9, 4, 64))


# ---------------------------------------------------------------------------------------------
# Construction errors
# ---------------------------------------------------------------------------------------------
def test_window_shorter_than_one_chunk():
    with pytest.raises(ValueError, match=r"n_times=400 is too short for NeuroGPT; it needs >= "
                                         r"500 samples \(2 s at sfreq=250 Hz\) \(one chunk\)"):
        NeuroGPT(22, 4, 400, sfreq=250.0, chunk_s=2.0)
    assert NeuroGPT(22, 4, 500, sfreq=250.0, chunk_s=2.0).n_chunks == 1


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"chunk_s": 1.0}, r"chunk_s=1.0 needs sfreq \(Hz\)"),
    ({"sfreq": 100.0, "chunk_s": 1.005}, r"chunk_s=1.005 s is not a whole number of samples "
                                         r"at sfreq=100 Hz"),
    ({"sfreq": 100.0, "chunk_s": 1.0, "overlap_s": 1.0}, "overlap_s=1 s must be shorter than "
                                                         "chunk_s=1 s"),
    ({"overlap_s": 0.5}, "overlap_s needs chunk_s"),
    ({"sfreq": 100.0, "chunk_s": 0.5, "n_positions": 4},
     r"holds 6 chunks; with finetune='encoder_gpt' the GPT needs 7 positions, but "
     "n_positions=4"),
    ({"gpt_width": 30, "gpt_heads": 4}, r"gpt_width=30 must be divisible by its number of "
                                        r"heads \(4\)"),
    ({"finetune": "gpt"}, "Unknown finetune 'gpt'"),
])
def test_invalid_configuration(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NeuroGPT(4, 2, 300, **kwargs)


def test_pretraining_and_fine_tuning_models_refuse_the_other_use():
    with pytest.raises(RuntimeError, match="pretraining model .* NeuroGPT.from_pretrained"):
        _tiny()(torch.zeros(2, 4, 208))
    with pytest.raises(RuntimeError, match="built for fine-tuning .* finetune=None"):
        _tiny(finetune="encoder").pretraining_loss(_chunks())


# ---------------------------------------------------------------------------------------------
# Fine-tuning strategies and pretrained files
# ---------------------------------------------------------------------------------------------
def test_linear_probe_trains_only_its_head():
    model = _tiny(finetune="linear")
    assert not model.encoder.training  # frozen encoder: BatchNorm statistics stay put
    model.train()
    assert not model.encoder.training
    assert model.head.training
    frozen = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x = torch.randn(6, 4, 208, generator=torch.Generator().manual_seed(0))
    F.cross_entropy(model(x), torch.tensor([0, 1, 2] * 2)).backward()
    opt.step()
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, frozen[key]), key
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["head.weight",
                                                                          "head.bias"]


def test_save_and_fine_tune_from_pretrained(tmp_path):
    pre = _tiny(seed=3)
    with torch.no_grad():
        pre.encoder.bn.running_mean.uniform_()  # buffers travel too
    path = save_pretrained(pre, tmp_path / "pre.bci", info={"steps": 0})
    config = pretrained_config(path)
    assert (config["chunk_s"], config["n_chans"], config["gpt_width"]) == (1.0, 4, 16)
    for finetune in ("encoder_gpt", "encoder", "linear"):
        model = NeuroGPT.from_pretrained(path, 2, 160, finetune=finetune)
        assert model.pretrained_file == str(path)
        assert model.get_config()["pretrained"] is None  # the weights are now the model's
        mine, theirs = model.state_dict(), pre.state_dict()
        shared = [k for k in mine if k.startswith(("encoder.", "in_proj.", "gpt."))]
        assert shared
        for key in shared:
            assert torch.equal(mine[key], theirs[key]), key
        assert any(k.startswith("gpt.") for k in shared) == (finetune == "encoder_gpt")
        assert model(torch.zeros(2, 4, 160)).shape == (2, 2)
    # the constructor route (what DeepClassifier's model_params use)
    del config["n_chans"]
    via_registry = get_model("NeuroGPT", 4, 2, 160, **config, pretrained=str(path))
    assert torch.equal(via_registry.encoder.temporal_weight, pre.encoder.temporal_weight)


def test_pretrained_file_of_another_configuration(tmp_path):
    path = save_pretrained(_tiny(), tmp_path / "pre.bci")
    config = pretrained_config(path)
    assert config.pop("n_chans") == 4
    with pytest.raises(ValueError, match=r"another configuration: n_filters_time \(file 8, "
                                         r"model 4\); gpt_width \(file 16, model 32\)"):
        NeuroGPT(4, 2, 208, **{**config, "gpt_width": 32, "n_filters_time": 4}, pretrained=path)
    with pytest.raises(ValueError, match=r"n_chans \(file 4, model 8\); sfreq \(file 64.0, "
                                         r"model 128.0\); chunk_s \(file 1.0, model 0.5\)"):
        NeuroGPT(8, 2, 208, **{**config, "sfreq": 128.0, "chunk_s": 0.5}, pretrained=path)
    with pytest.raises(ValueError, match="gpt_width come from the pretrained file"):
        NeuroGPT.from_pretrained(path, 2, 208, gpt_width=32)
    # an encoder-only model has no GPT to give
    encoder_only = save_pretrained(_tiny(finetune="encoder"), tmp_path / "enc.bci")
    with pytest.raises(ValueError, match=r"has no GPT weights \(\d+ tensors missing, e.g. "
                                         r"gpt\.blocks"):
        NeuroGPT.from_pretrained(encoder_only, 2, 208, finetune="encoder_gpt")
    assert NeuroGPT.from_pretrained(encoder_only, 2, 208, finetune="encoder").n_chunks == 4


def test_damaged_pretrained_files(tmp_path):
    path = save_pretrained(_tiny(), tmp_path / "pre.bci")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.bci"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated.bci"):
        NeuroGPT.from_pretrained(truncated, 2, 208)
    # one flipped byte in the weights: refused by the checksum
    damaged = tmp_path / "damaged.bci"
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(damaged, "w") as zout:
        for item in zin.infolist():
            payload = zin.read(item)
            if item.filename == "network.pt":
                payload = payload[:-100] + bytes([payload[-100] ^ 1]) + payload[-99:]
            zout.writestr(item, payload)
    with pytest.raises(ValueError, match="damaged.bci is damaged: its payload"):
        NeuroGPT.from_pretrained(damaged, 2, 208)
    with pytest.raises(FileNotFoundError, match="No network file at"):
        NeuroGPT.from_pretrained(tmp_path / "missing.bci", 2, 208)
    other = tmp_path / "eegnet.bci"
    from bci.models.decoder import save_network

    save_network(get_model("EEGNet", 4, 2, 128), other)
    with pytest.raises(ValueError, match="holds a EEGNet, not a NeuroGPT"):
        NeuroGPT.from_pretrained(other, 2, 208)
