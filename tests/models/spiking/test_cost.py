"""Operation counts against hand computation and NeuroBench.

NeuroBench's binary-copy method and, where it is installed, NeuroBench's own harness.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from bci.models.spiking.cost import count_operations
from bci.models.spiking.ibmi import SNN3D, ANNDecoder, GRUDecoder, SNNStreaming
from bci.models.spiking.neurons import LIF


class _Tiny(nn.Module):
    """Linear (spike input) -> LIF -> Linear; forward_sequence over (B, C, T)."""

    sfreq = 10.0

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 2, bias=False)
        self.lif = LIF(2, beta=0.5, threshold=0.5)
        self.fc2 = nn.Linear(2, 1)
        with torch.no_grad():
            self.fc1.weight.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]))
            self.fc2.weight.copy_(torch.tensor([[1.0, 1.0]]))

    def forward_sequence(self, x):
        s, _ = self.lif(self.fc1(x.transpose(1, 2)))
        return self.fc2(s).transpose(1, 2)


def _neurobench_linear_ops(layer: nn.Linear, inputs: torch.Tensor, total: bool) -> int:
    """Count operations as NeuroBench's stateless_layer_macs does.

    A copy of the layer with binary weights (all ones for the dense count) and no bias, applied to
    the binarised input, summed.
    """
    binary = copy.deepcopy(layer)
    with torch.no_grad():
        binary.weight.copy_((layer.weight != 0).float() if not total else
                            torch.ones_like(layer.weight))
        if binary.bias is not None:
            binary.bias.zero_()
        x = (inputs != 0).float() if not total else torch.ones_like(inputs)
        return int(binary(x).sum())


def test_hand_computed_counts():
    model = _Tiny()
    x = torch.tensor([[[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]]])  # (1, C=3, T=3)
    counts = count_operations(model, x)
    # fc1 inputs per step: (1,0,1), (0,0,1), (1,1,0); nonzero weights (1,0,1), (0,0,1)
    # step 0: 2 + 1, step 1: 1 + 1, step 2: 1 + 0 -> 6 ACs (inputs are spikes)
    # fc1 currents (2, 1), (1, 1), (1, 0) -> LIF spikes: v = (2, 1) fire both;
    # v = (.5*2+1-.5, .5+1-.5) = (1.5, 1) fire both; v = (.75+1-.5, .5+0-.5) = (1.25, 0)
    # fc2 inputs (1,1), (1,1), (1,0): 2 + 2 + 1 = 5 ACs
    assert counts.effective_acs == pytest.approx(11 / 3)
    assert counts.effective_macs == 0
    assert counts.dense_ops == pytest.approx((3 * 6 + 3 * 2) / 3)
    assert counts.neuron_updates == pytest.approx(2.0)  # 2 neurons x 3 steps / 3 predictions
    assert counts.activation_sparsity == pytest.approx(1 / 6)
    assert counts.per_second()["effective_acs"] == pytest.approx(11 / 3 * 10.0)
    assert counts.state_bytes == 4 * 2


def test_counts_equal_neurobench_binary_copy_method():
    torch.manual_seed(0)
    model = ANNDecoder(6, 2, 3, sfreq=20.0).eval()
    with torch.no_grad():
        model.fc1.weight[0, :5] = 0.0  # zero weights are skipped by effective counts
    x = torch.poisson(torch.full((2, 6, 9), 0.7))
    seen = {}
    hooks = [m.register_forward_hook(lambda m, a, o, n=n: seen.setdefault(n, []).append(a[0]))
             for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    counts = count_operations(model, x)
    for h in hooks:
        h.remove()
    layers = dict(model.named_modules())
    eff = sum(_neurobench_linear_ops(layers[n], inp[0], False) for n, inp in seen.items())
    dense = sum(_neurobench_linear_ops(layers[n], inp[0], True) for n, inp in seen.items())
    assert counts.effective_macs == pytest.approx(eff / 18)
    assert counts.dense_ops == pytest.approx(dense / 18)
    assert counts.effective_acs == 0
    assert counts.state_bytes == 4 * 6 * 2  # two past bins of the window


class _Sequence(nn.Module):
    """A decoder whose forward runs ``forward_sequence``, as NeuroBench's ``TorchModel`` does."""

    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, x):
        return self.decoder.forward_sequence(x)


@pytest.mark.parametrize("make", [
    lambda: ANNDecoder(8, 2, 3, sfreq=20.0),
    lambda: SNNStreaming(8, 2, 1, sfreq=20.0, n_hidden=5, threshold=0.2),
    lambda: SNN3D(8, 2, 1, sfreq=20.0),
], ids=["ANN", "SNNStreaming", "SNN3D"])
def test_counts_equal_neurobench_harness(make):
    """Match NeuroBench's SynapticOperations: same MACs, ACs and dense operations per bin.

    NeuroBench hooks its own copy of every connection layer; it gives the same effective MACs,
    effective ACs and dense operations per bin.
    """
    pytest.importorskip("neurobench", reason="neurobench is not installed (pip install "
                        "--no-deps neurobench: its torchaudio requirement pulls a CUDA build)")
    from neurobench.benchmarks import Benchmark
    from neurobench.metrics.workload import SynapticOperations
    from neurobench.models import TorchModel
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = make().eval()
    x = torch.poisson(torch.full((3, 8, 20), 0.7))
    ours = count_operations(model, x)
    loader = DataLoader(TensorDataset(x, torch.zeros(3)), batch_size=3)
    bench = Benchmark(TorchModel(_Sequence(model)), loader, [], [], [[], [SynapticOperations]])
    theirs = bench.run(quiet=True)["SynapticOperations"]  # per sequence of 20 bins
    assert theirs["Effective_MACs"] / 20 == pytest.approx(ours.effective_macs)
    assert theirs["Effective_ACs"] / 20 == pytest.approx(ours.effective_acs)
    assert theirs["Dense"] / 20 == pytest.approx(ours.dense_ops)
    assert ours.effective_acs > 0 or isinstance(model, ANNDecoder)


def test_snn_streaming_dense_count_and_acs_in_hidden_layer():
    torch.manual_seed(0)
    model = SNNStreaming(8, 2, 1, sfreq=20.0, n_hidden=5, threshold=0.2)
    x = torch.poisson(torch.full((3, 8, 20), 2.0))
    counts = count_operations(model, x)
    assert counts.dense_ops == pytest.approx(8 * 5 + 5 * 2)
    assert counts.effective_macs > 0
    assert counts.effective_acs > 0
    assert counts.neuron_updates == pytest.approx(5 + 2)
    params = sum(p.numel() for p in model.parameters()) + 2 * 2  # + output scale/offset
    assert counts.param_bytes == 4 * params


def test_gru_counts_follow_the_cell_equations():
    torch.manual_seed(0)
    model = GRUDecoder(4, 2, 1, sfreq=20.0, n_hidden=3, input_transform="none")
    x = torch.tensor([[[1.5, 0.0], [0.0, 0.0], [2.0, 3.0], [0.0, 0.5]]])  # (1, 4, 2)
    counts = count_operations(model, x)
    # step 0: 2 nonzero inputs x 9 gates, h_prev = 0; step 1: 2 inputs x 9 + 3 x 9 recurrent;
    # plus 3 x 3 element-wise per step; read-out 3 x 2 per step (h nonzero)
    expected = (2 * 9 + 9) + (2 * 9 + 27 + 9) + 2 * 6
    assert counts.effective_macs == pytest.approx(expected / 2)
    assert counts.dense_ops == pytest.approx(4 * 9 + 3 * 9 + 9 + 3 * 2)


def test_count_errors():
    with pytest.raises(ValueError, match=r"batch, n_chans, n_bins\) of counts, got shape \(3, 2\)"):
        count_operations(_Tiny(), torch.zeros(3, 2))
    with pytest.raises(TypeError, match=r"x must be Tensor, got list .* Pass counts"):
        count_operations(_Tiny(), [[[0.0]]])
    with pytest.raises(ValueError, match=r"sfreq \(predictions per second\) is needed"):
        count_operations(nn.Identity(), torch.zeros(1, 3, 2))
    with pytest.raises(ValueError, match=r"sfreq must be a finite number > 0 \(predictions per "
                                         r"second\), got -1.0"):
        count_operations(_Tiny(), torch.zeros(1, 3, 2), sfreq=-1.0)


class _Conv(nn.Module):
    sfreq = 1.0

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 1, 2, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([[[2.0, 0.0]]]))

    def forward(self, x):
        return self.conv(x)


def test_convolution_counts():
    # windows [3, 0] and [0, 2] against weights [2, 0]: products 3*2 only -> 1 effective MAC;
    # dense: 2 windows x 2 taps
    counts = count_operations(_Conv(), torch.tensor([[[3.0, 0.0, 2.0]]]))
    assert counts.effective_macs == 1.0
    assert counts.dense_ops == 4.0


def test_as_dict_with_derived_counts():
    model = ANNDecoder(4, 2, 3, sfreq=50.0)
    counts = count_operations(model, torch.rand(2, 4, 6))
    plain, derived = counts.as_dict(), counts.as_dict(derived=True)
    assert "synaptic_operations" not in plain
    assert "per_second" not in plain
    assert list(derived) == [*plain, "synaptic_operations", "per_second"]
    assert derived["synaptic_operations"] == counts.effective_macs + counts.effective_acs
    assert derived["per_second"] == {k: getattr(counts, k) * 50.0 for k in (
        "effective_macs", "effective_acs", "dense_ops", "neuron_updates",
        "neuron_updates_skipped")}
