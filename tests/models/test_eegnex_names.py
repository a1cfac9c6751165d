"""Names of braindecode's EEGNeX tensors in ours (used by the braindecode benchmarks)."""

from __future__ import annotations

import pytest

from bci.models.eegnex import BRAINDECODE_KWARGS, EEGNeX, braindecode_parameter_name

# every tensor of braindecode 1.8.1's EEGNeX state_dict (default arguments)
BRAINDECODE_KEYS = [
    "block_1.1.weight", "block_2.0.weight", "block_3.0.parametrizations.weight.original",
    "block_4.0.weight", "block_5.0.weight", "final_layer.parametrizations.weight.original",
    "final_layer.bias",
] + [f"block_{b}.{i}.{name}" for b, i in ((1, 2), (2, 1), (3, 1), (4, 1), (5, 1))
     for name in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]


def test_every_braindecode_tensor_has_one_of_ours():
    ours = EEGNeX(22, 4, 1000, **BRAINDECODE_KWARGS).state_dict()
    names = [braindecode_parameter_name(key) for key in BRAINDECODE_KEYS]
    assert sorted(names) == sorted(ours)
    assert braindecode_parameter_name("block_3.1.running_var") == "bn_3.running_var"
    assert braindecode_parameter_name("block_3.0.parametrizations.weight.original") == \
        "conv_3.weight"


def test_unknown_name():
    with pytest.raises(ValueError, match="not a parameter of braindecode's EEGNeX"):
        braindecode_parameter_name("block_9.1.weight")
