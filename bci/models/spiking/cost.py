"""Operation and memory accounting of decoders, following NeuroBench's definitions.

What is counted (NeuroBench ``neurobench/metrics``, read in its public code):

- **synaptic operations** of every connection layer (``nn.Linear``, ``nn.Conv1d``/``2d``,
  ``nn.GRU``, :class:`~bci.models.spiking.delays.DelayedLinear`: one weight per synapse, applied
  to the input its delay selects): a weight times an input. *Effective* operations skip zero
  weights and zero inputs (``(input != 0) @ (weight != 0)^T``, summed); *dense* operations count
  them all. A layer whose input holds only 0, 1 and -1 (spikes) performs accumulates
  (**effective ACs**), any other input multiply-accumulates (**effective MACs**); biases are not
  counted. For a GRU the input and recurrent products of each step are counted the same way,
  plus ``3 * n_hidden`` element-wise products per step (the reset-gate and update-gate
  multiplications, as in NeuroBench's ``gru_cell_macs``);
- **attention products** (:class:`~bci.models.spiking.conformer.MatMul`, ``a @ b``): every
  product of a non-zero ``a`` entry with a non-zero ``b`` entry is an effective operation, an
  accumulate when either operand holds only 0/1/-1 (a spike selects which values are added:
  spike x spike and integer x spike products of spiking attention), a multiply-accumulate
  otherwise; dense counts every product;
- **neuron updates**: state variables updated per step (a LIF membrane: 1 per neuron per step,
  a current-based LIF: 2, a GRU unit: 1); the updates an
  :class:`~bci.models.spiking.neurons.ApproxLIF` skips (resting neuron, non-positive input) are
  not performed: they are left out of ``neuron_updates`` and counted in
  ``neuron_updates_skipped``;
- **activation sparsity**: the fraction of zeros among the outputs of spiking neurons (spikes),
  ReLUs and GRU hidden states (read-out membranes are not activations);
- **memory**: parameter (and buffer) bytes, NeuroBench's footprint; and the state kept per
  inference: neuron states plus, for windowed decoders, the past bins of the input window.

Counts are reported per prediction (NeuroBench divides by the number of samples; one
prediction per bin) and per second of signal (times the prediction rate ``sfreq``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import check_bool, check_positive, check_type
from .conformer import MatMul
from .delays import DelayedLinear
from .neurons import LIF, ApproxLIF, CubaLIF

__all__ = ["OperationCounts", "count_operations"]

_CONNECTIONS = (nn.Linear, nn.Conv1d, nn.Conv2d)


@dataclass
class OperationCounts:
    """Operations and memory of a decoder, per prediction.

    Attributes
    ----------
    effective_macs, effective_acs : float
        Multiply-accumulates (non-binary inputs) and accumulates (spike inputs) with a non-zero
        weight and a non-zero input, per prediction.
    dense_ops : float
        All synaptic operations, zeros included, per prediction.
    neuron_updates : float
        Neuron state-variable updates performed per prediction (skipped ones excluded).
    activation_sparsity : float
        Fraction of zero activations (nan when the model has no activation layer).
    param_bytes : int
        Parameters and buffers (bytes).
    state_bytes : int
        State kept per inference (bytes): neuron states plus buffered input bins.
    sfreq : float
        Predictions per second (Hz).
    n_predictions : int
        Predictions the counts were averaged over.
    neuron_updates_skipped : float
        Updates skipped by approximate neurons per prediction (0 without them);
        ``neuron_updates + neuron_updates_skipped`` is what plain neurons would perform.
    synaptic_operations_by_layer : dict
        Effective synaptic operations (ACs + MACs) per prediction of each connection layer,
        GRU and attention product, by its qualified module name (``model.named_modules()``);
        the values sum to :attr:`synaptic_operations`.
    """

    effective_macs: float
    effective_acs: float
    dense_ops: float
    neuron_updates: float
    activation_sparsity: float
    param_bytes: int
    state_bytes: int
    sfreq: float
    n_predictions: int
    neuron_updates_skipped: float = 0.0
    synaptic_operations_by_layer: dict = field(default_factory=dict)

    @property
    def synaptic_operations(self) -> float:
        """Effective synaptic operations per prediction: ``effective_macs + effective_acs``."""
        return self.effective_macs + self.effective_acs

    def per_second(self) -> dict[str, float]:
        """Operation rates per second of signal: ``{name: count * sfreq}``."""
        return {name: getattr(self, name) * self.sfreq
                for name in ("effective_macs", "effective_acs", "dense_ops", "neuron_updates",
                             "neuron_updates_skipped")}

    def as_dict(self, *, derived: bool = False) -> dict:
        """All fields as a plain dict (JSON-serialisable).

        Parameters
        ----------
        derived : bool
            Also ``"synaptic_operations"`` (:attr:`synaptic_operations`) and ``"per_second"``
            (:meth:`per_second`), after the fields.

        Returns
        -------
        counts : dict
        """
        out = asdict(self)
        if check_bool(derived, "derived"):
            out["synaptic_operations"] = self.synaptic_operations
            out["per_second"] = self.per_second()
        return out


def _is_spiking(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


def _matmul_ops(inputs: torch.Tensor, weight: torch.Tensor) -> tuple[float, float]:
    """Effective and dense products of ``inputs (..., in) @ weight (out, in)^T``."""
    nz_in = (inputs != 0).reshape(-1, inputs.shape[-1]).double()
    nz_w = (weight != 0).double()
    effective = float((nz_in @ nz_w.T).sum())
    dense = float(nz_in.shape[0] * weight.numel())
    return effective, dense


class _Counter:
    def __init__(self) -> None:
        self.macs = self.acs = self.dense = self.updates = self.skipped = 0.0
        self.zeros = self.activations = 0
        self.state_values = 0
        self.seen_states: set[int] = set()
        self.names: dict[int, str] = {}
        self.by_layer: dict[str, float] = {}

    def _record(self, module: nn.Module, effective: float) -> None:
        name = self.names.get(id(module), type(module).__name__)
        self.by_layer[name] = self.by_layer.get(name, 0.0) + effective

    def activation(self, out: torch.Tensor) -> None:
        self.zeros += int((out == 0).sum())
        self.activations += out.numel()

    def synapses(self, inputs: torch.Tensor, effective: float, dense: float) -> None:
        if _is_spiking(inputs):
            self.acs += effective
        else:
            self.macs += effective
        self.dense += dense

    # hooks -----------------------------------------------------------------------------------
    def linear(self, module: nn.Module, args, output) -> None:
        x = args[0]
        if isinstance(module, nn.Linear):
            eff, dense = _matmul_ops(x, module.weight)
        else:  # convolution: a binary copy applied to the binarised input counts the products
            conv = F.conv1d if isinstance(module, nn.Conv1d) else F.conv2d
            geometry = dict(stride=module.stride, padding=module.padding,
                            dilation=module.dilation, groups=module.groups)
            weight = (module.weight != 0).to(x.dtype)
            binary = conv((x != 0).to(x.dtype), weight, None, **geometry)
            ones = conv(torch.ones_like(x), torch.ones_like(weight), None, **geometry)
            eff, dense = float(binary.sum()), float(ones.sum())
        self.synapses(x, eff, dense)
        self._record(module, eff)

    def delayed(self, module: DelayedLinear, args, output) -> None:
        x = args[0]  # (B, T, in); args[1]: the inputs of the max_delay steps before
        padded = module.padded(x, args[1] if len(args) > 1 else None)
        hard = (module.kernel().detach() != 0).to(x.dtype)  # one tap per non-zero weight
        eff = float(F.conv1d((padded != 0).to(x.dtype), hard).sum())
        dense = float(x.shape[0] * x.shape[1] * module.weight.numel())
        self.synapses(x, eff, dense)
        self._record(module, eff)
        if id(module) not in self.seen_states:  # the delay line: the last max_delay inputs
            self.seen_states.add(id(module))
            self.state_values += module.max_delay * module.in_features

    def gru(self, module: nn.GRU, args, output) -> None:
        x, h = args[0], output[0]  # (B, T, C), (B, T, H)
        if not module.batch_first:
            x, h = x.transpose(0, 1), h.transpose(0, 1)
        if module.num_layers != 1 or module.bidirectional:
            raise ValueError("count_operations supports single-layer, unidirectional GRUs.")
        h_prev = torch.cat([torch.zeros_like(h[:, :1]), h[:, :-1]], dim=1)
        n_steps = x.shape[0] * x.shape[1]
        eff_ih, dense_ih = _matmul_ops(x, module.weight_ih_l0)
        eff_hh, dense_hh = _matmul_ops(h_prev, module.weight_hh_l0)
        elementwise = 3.0 * module.hidden_size * n_steps
        self.synapses(x, eff_ih, dense_ih)
        self.macs += eff_hh + elementwise
        self.dense += dense_hh + elementwise
        self._record(module, eff_ih + eff_hh + elementwise)
        self.updates += float(module.hidden_size * n_steps)
        self.activation(h)
        if id(module) not in self.seen_states:
            self.seen_states.add(id(module))
            self.state_values += module.hidden_size

    def matmul(self, module: nn.Module, args, output) -> None:
        a, b = args[0], args[1]
        nz_a, nz_b = (a != 0).double(), (b != 0).double()
        effective = float(torch.matmul(nz_a, nz_b).sum())
        dense = float(output.numel() * a.shape[-1])
        if _is_spiking(a) or _is_spiking(b):
            self.acs += effective
        else:
            self.macs += effective
        self.dense += dense
        self._record(module, effective)

    def lif(self, module: LIF, args, output) -> None:
        out = output[0]
        n_vars = 2 if isinstance(module, CubaLIF) else 1
        skipped = 0.0
        if isinstance(module, ApproxLIF):
            state = args[1] if len(args) > 1 else None
            skipped = float(module.skip_mask(args[0], state).sum())
        self.updates += float(n_vars * out.numel()) - skipped
        self.skipped += skipped
        if module.output == "spikes":
            self.activation(out)
        if id(module) not in self.seen_states:
            self.seen_states.add(id(module))
            self.state_values += n_vars * module.n_neurons

    def relu(self, module: nn.Module, args, output) -> None:
        self.activation(output)


def count_operations(model: nn.Module, x: torch.Tensor | None = None, *,
                     sfreq: float | None = None) -> OperationCounts:
    """Count a decoder's operations on ``x`` (NeuroBench's definitions, module docstring).

    Parameters
    ----------
    model : nn.Module
        A decoder of :mod:`bci.models.spiking.ibmi` (anything with ``forward_sequence``, run on
        ``x``) or any network taking ``x`` in ``forward``.
    x : torch.Tensor
        Input counts ``(batch, n_chans, n_bins)``: every bin gives one prediction with
        ``forward_sequence``, one per window with ``forward``.
    sfreq : float | None
        Predictions per second; the model's ``sfreq`` when None. For a windowed classifier
        (e.g. :class:`~bci.models.spiking.conformer.SpikingConformer`) pass the window rate,
        ``1 / step_s``, not the sampling rate.

    Returns
    -------
    counts : OperationCounts
        Averaged per prediction.

    Examples
    --------
    >>> from bci.models.spiking.ibmi import LinearDecoder
    >>> model = LinearDecoder(3, 2, 2, sfreq=20.0)
    >>> counts = count_operations(model, torch.full((1, 3, 5), 4.0))  # 4 spikes in every bin
    >>> counts.dense_ops, counts.effective_macs, counts.effective_acs  # 6 inputs x 2 outputs
    (12.0, 10.8, 0.0)

    The first window is half zero padding (6 + 4 x 12 products over 5 predictions). Binary
    inputs (0/1 counts) are accumulates, as in NeuroBench.
    """
    check_type(x, torch.Tensor, "x", hint="Pass counts (batch, n_chans, n_bins) as a tensor.")
    if x.ndim != 3:
        raise ValueError(f"x must be a torch.Tensor (batch, n_chans, n_bins) of counts, got shape "
                         f"{tuple(x.shape)}.")
    sfreq = getattr(model, "sfreq", None) if sfreq is None else sfreq
    if sfreq is None:
        raise ValueError("sfreq (predictions per second) is needed: pass sfreq=.")
    sfreq = check_positive(sfreq, "sfreq", unit="predictions per second")
    counter = _Counter()
    counter.names = {id(module): name or type(module).__name__
                     for name, module in model.named_modules()}
    handles = []
    for module in model.modules():
        if isinstance(module, _CONNECTIONS):
            handles.append(module.register_forward_hook(counter.linear))
        elif isinstance(module, nn.GRU):
            handles.append(module.register_forward_hook(counter.gru))
        elif isinstance(module, DelayedLinear):
            handles.append(module.register_forward_hook(counter.delayed))
        elif isinstance(module, LIF):
            handles.append(module.register_forward_hook(counter.lif))
        elif isinstance(module, MatMul):
            handles.append(module.register_forward_hook(counter.matmul))
        elif isinstance(module, nn.ReLU):
            handles.append(module.register_forward_hook(counter.relu))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if hasattr(model, "forward_sequence"):
                out = model.forward_sequence(x)
                n_predictions = out.shape[0] * out.shape[-1]
            else:
                out = model(x)
                n_predictions = out.shape[0]
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    n_times = int(getattr(model, "n_times", 1))
    buffered = 0 if getattr(model, "streaming", True) else x.shape[1] * (n_times - 1)
    param_bytes = sum(t.numel() * t.element_size()
                      for t in list(model.parameters()) + list(model.buffers()))
    sparsity = (counter.zeros / counter.activations if counter.activations
                else float("nan"))
    return OperationCounts(
        effective_macs=counter.macs / n_predictions, effective_acs=counter.acs / n_predictions,
        dense_ops=counter.dense / n_predictions, neuron_updates=counter.updates / n_predictions,
        activation_sparsity=sparsity, param_bytes=int(param_bytes),
        state_bytes=int(4 * (counter.state_values + buffered)), sfreq=float(sfreq),
        n_predictions=int(n_predictions),
        neuron_updates_skipped=counter.skipped / n_predictions,
        synaptic_operations_by_layer={name: ops / n_predictions
                                      for name, ops in counter.by_layer.items()})
