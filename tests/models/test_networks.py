"""Shared contract of every registered network, parameter counts, shared layers.

Every network of bci.models.registry.MODELS; parameter counts against braindecode.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bci.models._layers import _avg_pool_same, _same_padding, _temporal_filter_bank
from bci.models._threads import torch_threads
from bci.models.base import (
    EEGModule,
)
from bci.models.eegnex import (
    _BRAINDECODE_BN,
    _BRAINDECODE_KEYS,
    BRAINDECODE_KWARGS,
    EEGNeX,
    load_braindecode_state_dict,
)
from bci.models.registry import MODELS, get_model
from bci.models.shallow import ShallowConvNet
from bci.models.shallow import load_braindecode_state_dict as load_shallow_state_dict

# Parameter counts of braindecode 1.8.1 (torch 2.13.0) for the same configurations, measured with
#   sum(p.numel() for p in braindecode.models.<Model>(n_chans=C, n_outputs=O, n_times=T)
#       .parameters())
# with every architecture argument at braindecode's default; <Model> is EEGNeX, EEGNet and
# ShallowFBCSPNet. Our EEGNeX is compared in its braindecode-compatible configuration
# (BRAINDECODE_KWARGS), the other two with their defaults.
# Note: braindecode's EEGNeX has 55,940 parameters for 22 channels, 4 classes and *500* samples
# (the configuration of braindecode's model summary table); for 1,000 samples it has 56,452 (its
# classifier sees 8 x 31 instead of 8 x 15 features).
BRAINDECODE_COUNTS = {
    "EEGNeX": {(22, 4, 1000): 56452, (22, 4, 500): 55940, (22, 4, 512): 55972,
               (3, 2, 256): 54370, (64, 2, 384): 58338},
    "EEGNet": {(22, 4, 1000): 3444, (22, 4, 500): 2420, (22, 4, 512): 2484,
               (3, 2, 256): 1410, (64, 2, 384): 2514},
    "ShallowConvNet": {(22, 4, 1000): 46084, (22, 4, 500): 40644, (22, 4, 512): 40804,
                       (3, 2, 256): 6802, (64, 2, 384): 105122},
}
# Architecture keywords under which our model computes braindecode's function.
BRAINDECODE_COMPATIBLE = {"EEGNeX": BRAINDECODE_KWARGS, "EEGNet": {}, "ShallowConvNet": {}}

# Registered models with no braindecode counterpart (our own architectures): they run every
# shared behavioural test below, but not the parameter-count comparisons with braindecode.
NOT_IN_BRAINDECODE = {"SpikingConformer", "NeuroGPT", "ContactSetNet"}
IN_BRAINDECODE = [name for name in MODELS if name not in NOT_IN_BRAINDECODE]

# Small configuration for the fast behavioural tests: (n_chans, n_outputs, n_times).
SMALL = (4, 3, 128)


@pytest.fixture(autouse=True)
def _one_thread_for_unrolled_networks(request):
    """Run spiking networks on one torch thread.

    They unroll their neurons into many tiny ops, which oversubscribed OpenMP threads on a busy
    machine slow down many times over (SpikingConformer's overfitting test: about 2 s on 1 thread,
    30 s on 2 busy cores).
    """
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    with torch_threads(1 if params.get("name") in NOT_IN_BRAINDECODE else None):
        yield


def _build(name: str, seed: int = 0, **kwargs) -> EEGModule:
    torch.manual_seed(seed)
    n_chans, n_outputs, n_times = SMALL
    return get_model(name, n_chans, n_outputs, n_times, sfreq=128.0, **kwargs)


def _batch(batch: int = 5, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    n_chans, _, n_times = SMALL
    return torch.randn(batch, n_chans, n_times, generator=gen)


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_registered_model_has_reference_counts():
    missing = set(IN_BRAINDECODE) - set(BRAINDECODE_COUNTS)
    assert not missing, f"add braindecode's reference parameter counts for {sorted(missing)}"
    assert set(IN_BRAINDECODE) <= set(BRAINDECODE_COMPATIBLE)
    assert all(issubclass(cls, EEGModule) for cls in MODELS.values())


@pytest.mark.parametrize("name", list(MODELS))
def test_output_shape_and_logits(name):
    model = _build(name).eval()
    with torch.no_grad():
        out = model(_batch())
        single = model(_batch(batch=1))
    assert out.shape == (5, SMALL[1])
    assert single.shape == (1, SMALL[1])
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # logits, not (log-)probabilities
    assert not torch.allclose(out.sum(1), torch.ones(5))
    assert not torch.allclose(out.exp().sum(1), torch.ones(5))
    # one window at a time gives the same logits as the batch (eval mode)
    with torch.no_grad():
        first = model(_batch()[:1])
    torch.testing.assert_close(first, out[:1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", list(MODELS))
def test_seed_reproducibility(name):
    x = _batch()
    outs = []
    for _ in range(2):
        model = _build(name, seed=3).train()
        torch.manual_seed(4)  # dropout masks
        outs.append(model(x))
    assert torch.equal(outs[0], outs[1])
    other = _build(name, seed=5).train()
    torch.manual_seed(4)
    assert not torch.allclose(other(x), outs[0])


@pytest.mark.parametrize("name", list(MODELS))
def test_gradients_reach_first_layer(name):
    model = _build(name).train()
    first_name, first = next(iter(model.named_parameters()))
    loss = F.cross_entropy(model(_batch()), torch.tensor([0, 1, 2, 0, 1]))
    loss.backward()
    assert first.grad is not None
    assert torch.isfinite(first.grad).all()
    assert first.grad.abs().sum() > 0, f"no gradient reaches {first_name}"
    for param_name, param in model.named_parameters():
        assert param.grad is not None, f"{param_name} receives no gradient"


@pytest.mark.parametrize("name", list(MODELS))
def test_overfits_tiny_batch(name):
    # 8 random windows, 2 classes, no dropout; accuracy in train mode (batch statistics)
    torch.manual_seed(0)
    model = get_model(name, SMALL[0], 2, SMALL[2], drop_prob=0.0).train()
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(8, SMALL[0], SMALL[2], generator=gen)
    y = torch.tensor([0, 1] * 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    n_steps = 0
    while n_steps < 300:
        opt.zero_grad()
        out = model(x)
        loss = F.cross_entropy(out, y)
        if (out.argmax(1) == y).all() and loss.item() < 0.1:
            break
        loss.backward()
        opt.step()
        n_steps += 1
    accuracy = (out.argmax(1) == y).float().mean().item()
    assert accuracy == 1.0, f"{name}: train accuracy {accuracy} after {n_steps} steps"
    assert loss.item() < 0.1
    # the deployed (eval-mode) network predicts the same once BatchNorm's running statistics are
    # those of the training batch
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average: one pass gives the batch statistics
    with torch.no_grad():
        model(x)
        model.eval()
        assert (model(x).argmax(1) == y).all()


@pytest.mark.parametrize("name", list(MODELS))
def test_get_config_round_trip(name):
    model = _build(name).eval()
    config = model.get_config()
    assert config["n_chans"] == SMALL[0]
    assert config["sfreq"] == 128.0
    config = json.loads(json.dumps(config))  # JSON-serialisable, as in a checkpoint
    for rebuilt in (type(model).from_config(config), get_model(name, **config)):
        assert type(rebuilt) is type(model)
        assert rebuilt.get_config() == model.get_config()
        rebuilt.load_state_dict(model.state_dict())
        rebuilt.eval()
        x = _batch()
        with torch.no_grad():
            assert torch.equal(rebuilt(x), model(x))
    with pytest.raises(ValueError, match="Unknown .* argument 'n_chan'.*Did you mean 'n_chans'"):
        type(model).from_config({**config, "n_chan": 3})


@pytest.mark.parametrize("name", list(MODELS))
def test_too_short_input(name):
    cls = MODELS[name]
    min_n_times = cls(SMALL[0], 2, 4096).min_n_times
    assert 1 < min_n_times <= 128
    model = cls(SMALL[0], 2, min_n_times)  # the minimum itself works
    assert model(torch.zeros(2, SMALL[0], min_n_times)).shape == (2, 2)
    short = min_n_times - 1
    with pytest.raises(ValueError, match=rf"n_times={short} is too short for {name}; it needs "
                                         rf">= {min_n_times} samples \(0\.\d+ s at sfreq=128"):
        cls(SMALL[0], 2, short, sfreq=128.0)
    with pytest.raises(ValueError, match=rf"{name} expects input of shape \(batch, n_chans=4, "
                                         rf"n_times={min_n_times}\), got \(2, 4, {short}\)"):
        model(torch.zeros(2, SMALL[0], short))
    with pytest.raises(ValueError, match=r"expects input of shape .* got \(4, 128\)"):
        _build(name)(torch.zeros(SMALL[0], SMALL[2]))
    with pytest.raises(ValueError, match=r"n_chans=4, .* got \(2, 5, 128\)"):
        _build(name)(torch.zeros(2, 5, SMALL[2]))
    with pytest.raises(TypeError, match=rf"{name} expects floating-point input \(float32\), "
                                        "got torch.int64"):
        _build(name)(torch.zeros(2, SMALL[0], SMALL[2], dtype=torch.long))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"n_chans": 0}, ValueError, r"n_chans must be an int >= 1 \(EEG channels\), got 0"),
    ({"n_outputs": 2.0}, TypeError, r"n_outputs must be an int \(outputs\), got float \(2.0\)"),
    ({"n_times": True}, TypeError, r"n_times must be an int \(samples per window\), got bool"),
    ({"sfreq": -250.0}, ValueError, r"sfreq must be a finite number > 0 \(Hz\), got -250.0"),
    ({"sfreq": float("nan")}, ValueError, r"sfreq must be a finite number > 0 \(Hz\), got nan"),
    ({"sfreq": "250"}, TypeError, r"sfreq must be a number \(Hz\), got str"),
    ({"drop_prob": 1.5}, ValueError, r"drop_prob must be a probability in \[0, 1\), got 1.5"),
    ({"drop_prob": None}, TypeError, r"drop_prob must be a probability, got NoneType"),
    ({"batch_norm_momentum": 2}, ValueError,
     r"batch_norm_momentum must be a fraction in \[0, 1\], got 2.0. It is the weight of the new "
     r"batch \(torch convention\); Keras' momentum m is 1 - m here"),
])
def test_invalid_arguments(name, kwargs, exc, match):
    args = {"n_chans": 4, "n_outputs": 2, "n_times": 256, **kwargs}
    with pytest.raises(exc, match=match):
        MODELS[name](args.pop("n_chans"), args.pop("n_outputs"), args.pop("n_times"), **args)


@pytest.mark.parametrize("name", IN_BRAINDECODE)
@pytest.mark.parametrize("config", list(BRAINDECODE_COUNTS["EEGNeX"]))
def test_parameter_count_matches_braindecode(name, config):
    model = get_model(name, *config, **BRAINDECODE_COMPATIBLE[name])
    assert _n_params(model) == BRAINDECODE_COUNTS[name][config]


def _import_braindecode_models():
    """Braindecode's model module, or skip: braindecode is a benchmark extra, not a dependency."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecation chatter of braindecode/mne at import
        pytest.importorskip("braindecode", reason="braindecode is not installed (optional "
                            "'bench' extra); the recorded counts above are checked instead")
        import braindecode.models as bd_models
    return bd_models


# braindecode's own deprecation notices and torch's note on its even-kernel 'same' padding
_ignore_braindecode_warnings = pytest.mark.filterwarnings(
    "ignore::DeprecationWarning", "ignore::FutureWarning", "ignore::UserWarning")
_BRAINDECODE_NAMES = {"EEGNeX": "EEGNeX", "EEGNet": "EEGNet", "ShallowConvNet": "ShallowFBCSPNet"}


@_ignore_braindecode_warnings
@pytest.mark.parametrize("name", IN_BRAINDECODE)
def test_parameter_count_matches_braindecode_live(name):
    bd_models = _import_braindecode_models()
    cls = getattr(bd_models, _BRAINDECODE_NAMES[name])
    for config, recorded in BRAINDECODE_COUNTS[name].items():
        n_chans, n_outputs, n_times = config
        theirs = cls(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times)
        assert _n_params(theirs) == recorded, (name, config)
        assert _n_params(get_model(name, *config, **BRAINDECODE_COMPATIBLE[name])) == recorded


def _randomize_batch_norms(model: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                for tensor, low, high in ((module.weight, 0.5, 1.5), (module.bias, -0.3, 0.3),
                                          (module.running_mean, -0.3, 0.3),
                                          (module.running_var, 0.5, 1.5)):
                    tensor.copy_(low + (high - low) * torch.rand(tensor.shape, generator=gen,
                                                                 dtype=tensor.dtype))


@_ignore_braindecode_warnings
@pytest.mark.parametrize("n_times", [500, 256])
def test_eegnex_matches_braindecode_live(n_times):
    # braindecode's weights loaded into ours: same logits (eval and train mode) and the same
    # gradient for every parameter, in float64 so that only a difference of function shows
    bd_models = _import_braindecode_models()
    torch.manual_seed(0)
    theirs = bd_models.EEGNeX(n_chans=5, n_outputs=3, n_times=n_times, drop_prob=0.0).double()
    _randomize_batch_norms(theirs, seed=1)
    ours = EEGNeX(5, 3, n_times, **BRAINDECODE_KWARGS, drop_prob=0.0).double()
    load_braindecode_state_dict(ours, theirs.state_dict())
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(6, 5, n_times, generator=gen, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=1e-10, atol=1e-12)
    out_o, out_t = ours.train()(x), theirs.train()(x)
    torch.testing.assert_close(out_o, out_t, rtol=1e-10, atol=1e-12)
    F.cross_entropy(out_o, y).backward()
    F.cross_entropy(out_t, y).backward()
    ours_params = dict(ours.named_parameters())
    scale = max(p.grad.abs().max().item() for p in theirs.parameters())
    for key, param in theirs.named_parameters():
        ours_key = _BRAINDECODE_KEYS.get(key)
        if ours_key is None:
            prefix, item = key.rsplit(".", 1)
            ours_key = f"{_BRAINDECODE_BN[prefix]}.{item}"
        grad = ours_params[ours_key].grad
        torch.testing.assert_close(grad, param.grad.reshape(grad.shape), rtol=1e-9,
                                   atol=1e-12 * scale, msg=key)
    # running statistics updated identically by the training-mode pass
    for key, value in theirs.state_dict().items():
        if "running" in key:
            prefix, item = key.rsplit(".", 1)
            torch.testing.assert_close(ours.state_dict()[f"{_BRAINDECODE_BN[prefix]}.{item}"],
                                       value, rtol=1e-12, atol=1e-12)


@_ignore_braindecode_warnings
def test_shallow_matches_braindecode_live():
    bd_models = _import_braindecode_models()
    torch.manual_seed(0)
    theirs = bd_models.ShallowFBCSPNet(n_chans=5, n_outputs=3, n_times=300).double().eval()
    _randomize_batch_norms(theirs, seed=1)
    ours = ShallowConvNet(5, 3, 300).double().eval()
    load_shallow_state_dict(ours, theirs.state_dict())
    x = torch.randn(4, 5, 300, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-10, atol=1e-12)


def test_eegnex_authors_code_parameter_count():
    # The authors' EEGNeX_8_32 (Keras) for 22 channels, 4 classes, 1,000 samples, with
    # BatchNorm per feature map (see bci.models.eegnex for the BatchNorm-axis quirk of their code):
    # conv 1x64 (1->8): 512 + BN 16; conv 1x64 (8->32): 16,384 + BN 64;
    # depthwise 22x1 (32 x 2): 1,408 + BN 128; dilated conv 1x16 (64->32): 32,768 + BN 64;
    # dilated conv 1x16 (32->8): 4,096 + BN 16; two 'same' poolings by 4: 1000 -> 250 -> 63;
    # dense (8 * 63 -> 4): 2,016 + 4.  Total 57,476 (BN running statistics are buffers).
    model = EEGNeX(22, 4, 1000)
    assert _n_params(model) == 512 + 16 + 16384 + 64 + 1408 + 128 + 32768 + 64 + 4096 + 16 \
        + 8 * 63 * 4 + 4 == 57476
    assert model.final_layer.in_features == 8 * 63


def test_get_model_errors():
    with pytest.raises(ValueError, match="Unknown model 'EEGnex'. Did you mean 'EEGNeX'?"):
        get_model("EEGnex", 4, 2, 256)
    with pytest.raises(TypeError, match="EEGNeX has no architecture keyword 'filter1'. Did you "
                                        "mean 'filter_1'?"):
        get_model("EEGNeX", 4, 2, 256, filter1=4)
    with pytest.raises(ValueError, match="Unknown pool_padding 'valid'"):
        EEGNeX(4, 2, 256, pool_padding="valid")


@pytest.mark.parametrize("name", ["EEGNeX", "EEGNet"])
def test_max_norm_constraint_is_applied(name):
    # spatial filters and classifier rows above their max-norm are projected onto it, so scaling
    # them up further changes nothing
    model = _build(name).eval()
    x = _batch()
    spatial = model.conv_3 if name == "EEGNeX" else model.conv_spatial
    with torch.no_grad():
        spatial.weight.mul_(50.0)
        model.final_layer.weight.mul_(50.0)
        before = model(x)
        spatial.weight.mul_(3.0)
        model.final_layer.weight.mul_(3.0)
        after = model(x)
    torch.testing.assert_close(before, after, rtol=1e-5, atol=1e-6)


def test_eegnex_braindecode_state_dict_round_trip():
    # braindecode's keys and shapes, built from our weights with the inverse mapping
    model = EEGNeX(*SMALL, **BRAINDECODE_KWARGS).eval()
    shapes = {"conv_1.weight": (8, 1, 1, 64), "conv_2.weight": (32, 8, 1, 64),
              "conv_3.weight": (64, 1, SMALL[0], 1), "conv_4.weight": (32, 64, 1, 16),
              "conv_5.weight": (8, 32, 1, 16)}
    ours = model.state_dict()
    theirs = {key: ours[value].reshape(shapes.get(value, ours[value].shape))
              for key, value in _BRAINDECODE_KEYS.items()}
    for key, value in _BRAINDECODE_BN.items():
        for item in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            theirs[f"{key}.{item}"] = ours[f"{value}.{item}"]
    other = load_braindecode_state_dict(EEGNeX(*SMALL, **BRAINDECODE_KWARGS), theirs).eval()
    x = _batch()
    with torch.no_grad():
        assert torch.equal(other(x), model(x))
    with pytest.raises(ValueError, match="not a braindecode EEGNeX state_dict"):
        load_braindecode_state_dict(other, ours)
    with pytest.raises(ValueError, match="does not fit final_layer.weight"):
        load_braindecode_state_dict(EEGNeX(SMALL[0], SMALL[1], 256, **BRAINDECODE_KWARGS), theirs)


@pytest.mark.parametrize(("n_times", "kernel"), [(128, 64), (300, 64), (22, 30), (24, 5),
                                               (30, 2), (30, 1)])
@pytest.mark.parametrize("training", [True, False])
def test_eegnex_fused_blocks_match_layer_by_layer(n_times, kernel, training):
    # without the ELU between blocks 1 and 2, they run as one composed filter bank: same outputs,
    # gradients and BatchNorm running statistics as the layer-by-layer computation (float64),
    # including windows shorter than the kernel (the edge corrections overlap)
    kwargs = {**BRAINDECODE_KWARGS, "kernel_block_1_2": kernel}
    if kernel != 64:
        kwargs.update(kernel_block_4=2, kernel_block_5=2, dilation_block_4=1, dilation_block_5=1)
    torch.manual_seed(0)
    fused = EEGNeX(3, 2, n_times, **kwargs).double()
    with torch.no_grad():
        for bn in (fused.bn_1, fused.bn_2):
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.normal_()
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
    plain = EEGNeX(3, 2, n_times, **kwargs).double()
    plain.load_state_dict(fused.state_dict())
    fused.train(training)
    plain.train(training)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, n_times, generator=gen, dtype=torch.float64) + 0.5
    out_fused = fused._blocks_1_2(x, fuse=True)
    out_plain = plain._blocks_1_2(x, fuse=False)
    torch.testing.assert_close(out_fused, out_plain, rtol=1e-10, atol=1e-10)
    weights = torch.randn(out_plain.shape, generator=gen, dtype=torch.float64)
    (out_fused * weights).sum().backward()
    (out_plain * weights).sum().backward()
    plain_params = dict(plain.named_parameters())
    for name, param in fused.named_parameters():
        if name.startswith(("conv_1", "bn_1", "conv_2", "bn_2")):
            torch.testing.assert_close(param.grad, plain_params[name].grad, rtol=1e-9,
                                       atol=1e-9, msg=name)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        torch.testing.assert_close(getattr(fused.bn_1, name), getattr(plain.bn_1, name),
                                   rtol=1e-12, atol=1e-12)
    with pytest.raises(RuntimeError, match="only be fused without activation_block_1"):
        EEGNeX(3, 2, 256)._blocks_1_2(torch.zeros(1, 3, 256), fuse=True)


def _keras_same_avg_pool(x: np.ndarray, size: int) -> np.ndarray:
    """TensorFlow's AveragePooling1D(size, padding='same') on the last axis (reference)."""
    n_times = x.shape[-1]
    n_out = -(-n_times // size)
    pad_total = max((n_out - 1) * size + size - n_times, 0)
    left = pad_total // 2
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(left, pad_total - left)],
                    constant_values=np.nan)
    windows = padded.reshape(*x.shape[:-1], n_out, size)
    return np.nanmean(windows, axis=-1)


@pytest.mark.parametrize("size", [2, 3, 4, 8])
def test_avg_pool_same_matches_keras(size):
    gen = torch.Generator().manual_seed(0)
    for n_times in range(1, 3 * size + 2):
        x = torch.randn(2, 3, n_times, generator=gen, dtype=torch.float64)
        np.testing.assert_allclose(_avg_pool_same(x, size).numpy(),
                                   _keras_same_avg_pool(x.numpy(), size), rtol=1e-12)


def test_temporal_filter_bank_matches_conv2d_and_gradcheck():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 20, generator=gen, dtype=torch.float64, requires_grad=True)
    w = torch.randn(4, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    pad = _same_padding(6)
    assert pad == (2, 3)
    for channels_last in (False, True):
        out = _temporal_filter_bank(x, w, pad, channels_last)
        ref = F.conv2d(F.pad(x, pad)[:, None], w[:, None, None], padding=0)
        assert out.shape == (2, 4, 3, 20)
        assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        bias = torch.randn(4, generator=gen, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(
            lambda x_, w_, b_, cl=channels_last: _temporal_filter_bank(x_, w_, pad, cl, b_),
            (x, w, bias), fast_mode=True)
