"""Export of the spiking iBMI decoders to NIR, the Neuromorphic Intermediate Representation.

`NIR <https://neuroir.org>`_ describes a network as a graph of continuous-time nodes (weights,
neurons) that neuromorphic simulators and chips read (snnTorch, Norse, Lava, Rockpool, Sinabs,
SpiNNaker2, Xylo...). :func:`to_nir` writes :class:`~bci.models.spiking.ibmi.SNNStreaming`,
:class:`~bci.models.spiking.delays.DelaySNN`, :class:`~bci.models.spiking.ibmi.SNN3D` and
:class:`~bci.models.spiking.ibmi.LinearDecoder` as a :class:`nir.NIRGraph`; :func:`from_nir`
reads such a graph back into the same model class
(the model's config is stored in the graph metadata); :func:`save_nir` and :func:`load_nir` do
the same through NIR's HDF5 files.

Mapping (one graph step is one step of our model, ``dt`` seconds, ``1 / sfreq`` by default):

- ``nn.Linear`` -> ``nir.Linear`` (no bias) or ``nir.Affine``; the weights are copied
  (float32).
- :class:`~bci.models.spiking.neurons.LIF` (``v[t] = beta v[t-1] + I[t]``) -> ``nir.LIF``
  with ``tau = dt / (1 - beta)``, ``r = tau / dt``, ``v_leak = 0``, ``v_threshold`` our
  threshold and ``v_reset = 0``. That is the forward-Euler reading of NIR's ``tau dv/dt =
  (v_leak - v) + r I``: one Euler step of ``dt`` gives ``v <- (1 - dt / tau) v + (dt / tau) r I
  = beta v + I``. It is the mapping snnTorch's NIR export and import use (``beta = 1 - dt /
  tau``), so ``beta`` comes back exactly (to float64 rounding); note that snnTorch 1.0's
  importer integrates with a fixed ``dt = 1e-4`` s, so pass ``dt=1e-4`` to :func:`to_nir` for
  it. One decay per neuron is written (learned decays differ per neuron).
- :class:`~bci.models.spiking.neurons.CubaLIF` -> ``nir.CubaLIF`` with ``tau_syn = dt / (1 -
  alpha)``, ``w_in = tau_syn / dt`` (``i <- alpha i + I``) and the membrane as above; the
  synaptic current is updated first and drives the membrane in the same step (snnTorch's
  ``Synaptic`` order).
- the non-spiking read-out (``reset="none"``, membrane output) -> ``nir.LI``.
- :class:`~bci.models.spiking.delays.DelayedLinear` (one integer delay per synapse, the input
  layer of :class:`~bci.models.spiking.delays.DelaySNN`): ``nir.Delay`` delays every input
  channel alike (``y(t) = x(t - delay)``), so the layer becomes one branch per delay value
  ``d`` that some non-zero synapse uses: ``input -> delay_d<d>`` (``nir.Delay``, ``d * dt``
  seconds on every channel; none for ``d = 0``) ``-> fc_in_d<d>`` (``nir.Linear`` holding the
  weights of the synapses of delay ``d``, zeros elsewhere), all branches summed into
  ``lif_hidden``. Exact: ``sum_d W_d x[t - d] = DelayedLinear(x)[t]``; pruned synapses are
  zeros. :func:`from_nir` reads the branches back into one layer (integer delays, the
  pruning mask where the weight is zero).
- the output de-standardisation (``out * output_scale + output_offset``) -> an ``nir.Affine``
  with a diagonal weight, node ``"output_scale"``; :class:`SNN3D`'s per-output gain ->
  ``nir.Scale``, node ``"gain"``.

Reset. NIR's neurons reset the membrane *to* ``v_reset`` when they spike, in the same instant.
Our ``reset="zero"`` neurons keep the super-threshold membrane for the step of the spike and
start the next step from 0 (snnTorch's ``reset_delay=True``), which gives exactly the same spikes
(only the recorded membrane differs at the steps of spikes), so ``reset="zero"`` is exported as
is. Reset by subtraction (``"subtract"``, :class:`SNN3D`'s default) and no reset (``"none"``) on
a spiking layer have no NIR equivalent: :func:`to_nir` refuses them unless
``unsupported_reset="annotate"``, which writes the node with ``v_reset = 0`` plus the metadata
``{"bci_reset": "subtract"}``: :func:`from_nir` restores the reset, other NIR readers reset to
zero (different spikes).

What runs outside the graph (on the host, per step): the input compression of the encoder
(``input_transform``: ``sqrt``/``log1p`` of the counts have no NIR node), and for
:class:`SNN3D` also the ``LayerNorm`` over the whole window (its statistics need the full
window and its weights depend on the time step; its parameters travel in the graph's metadata,
``bci_host_state``). :func:`graph_input` computes these; the graph's input node receives its
output one step at a time. :class:`SNN3D` is run for ``n_times`` steps
from rest for every window and its prediction is the graph output at the last step;
:class:`SNNStreaming` runs on, one step per bin; :class:`LinearDecoder` is a stateless graph
read once per window whose input is the flattened window (time-major: ``t * n_chans + c``).

Not exportable (``TypeError`` naming the module NIR cannot express): :class:`ANNDecoder` (ReLU
and BatchNorm), :class:`GRUDecoder` (GRU), the spiking conformer (self-attention multiplies two
activations, which no NIR node does), and the deep EEG networks.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch
from torch import nn

from .._checks import check_option
from .._logging import logger
from ..models.spiking.delays import DelaySNN
from ..models.spiking.encoders import DirectEncoder
from ..models.spiking.ibmi import IBMI_MODELS, SNN3D, LinearDecoder, SNNStreaming
from ..models.spiking.neurons import LIF, CubaLIF

if TYPE_CHECKING:  # pragma: no cover
    import nir

__all__ = ["to_nir", "from_nir", "save_nir", "load_nir", "graph_input", "NIR_EXPORTABLE"]

#: Names of the models :func:`to_nir` exports.
NIR_EXPORTABLE = ("SNNStreaming", "SNN3D", "LinearDecoder", "DelaySNN")
_MODELS = {**IBMI_MODELS, "DelaySNN": DelaySNN}
#: Decoders run one graph step per bin, their state carried on.
_STREAMING = (SNNStreaming, DelaySNN)

UnsupportedReset = Literal["raise", "annotate"]

_INPUT_DOC = {
    "SNNStreaming": "per step (bin): the encoder's transform ({transform}) of the counts of the "
                    "bin, shape (n_chans,); the state runs on from bin to bin",
    "DelaySNN": "per step (bin): the encoder's transform ({transform}) of the counts of the "
                "bin, shape (n_chans,); the state (and the delay lines) run on from bin to bin",
    "SNN3D": "per window: the encoder's transform ({transform}) of the counts, then LayerNorm "
             "over the (n_times, n_chans) window (both on the host, see "
             "bci.hw.nir_export.graph_input); the graph is run from rest for the "
             "n_times steps of each window, shape (n_chans,) per step",
    "LinearDecoder": "per window: the encoder's transform ({transform}) of the counts, "
                     "flattened time-major (index t * n_chans + c), shape (n_chans * n_times,); "
                     "a stateless graph, one step per window",
}
_OUTPUT_DOC = {
    "SNNStreaming": "the prediction at every step, in the training targets' units",
    "DelaySNN": "the prediction at every step, in the training targets' units",
    "SNN3D": "the prediction of a window is the output at its last step",
    "LinearDecoder": "the prediction of the window",
}


def _import_nir():
    try:
        import nir
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError("NIR export needs the nir package: pip install 'bci[nir]' "
                          "(or pip install nir).") from err
    return nir


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------
def _check_dt(dt, model) -> float:
    if dt is None:
        return 1.0 / float(model.sfreq)
    if isinstance(dt, bool) or not isinstance(dt, numbers.Real) or not math.isfinite(dt) \
            or dt <= 0:
        raise ValueError(f"dt must be a positive time step in seconds, got {dt!r}.")
    return float(dt)


def _unsupported_reason(model: nn.Module) -> str:
    """Name the first submodule of ``model`` that NIR cannot express, for error messages."""
    for name, module in model.named_modules():
        if "attention" in type(module).__name__.lower():
            return (f"its module {name!r} ({type(module).__name__}) is self-attention, which "
                    "multiplies two activations; NIR's nodes (weighted sums, convolutions, "
                    "pooling, neurons) cannot express that")
    reasons = {nn.ReLU: "ReLU activation", nn.BatchNorm1d: "batch normalisation",
               nn.GRU: "GRU", nn.LSTM: "LSTM", nn.RNN: "RNN"}
    for name, module in model.named_modules():
        for kind, what in reasons.items():
            if isinstance(module, kind):
                return (f"its module {name!r} ({type(module).__name__}) is a {what}, which bci "
                        "cannot write as NIR nodes")
    expressible = (nn.Linear, LIF, DirectEncoder, nn.Dropout, nn.Identity, nn.Flatten,
                   nn.Conv1d, nn.Conv2d)
    for name, module in model.named_modules():
        if name and not isinstance(module, expressible) and not list(module.children()):
            return (f"its module {name!r} ({type(module).__name__}) has no NIR mapping in "
                    "bci")
    return "bci has no NIR mapping for this architecture"


def _check_exportable(model) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"to_nir exports a model ({', '.join(NIR_EXPORTABLE)}), got "
                        f"{type(model).__name__}.")
    if not isinstance(model, (*_STREAMING, SNN3D, LinearDecoder)):
        raise TypeError(
            f"Cannot export {type(model).__name__} to NIR: {_unsupported_reason(model)}. "
            f"Exportable models: {', '.join(NIR_EXPORTABLE)}."
        )
    if isinstance(model.encoder, DirectEncoder) and model.encoder.learn_gain:
        raise ValueError("to_nir expects the models' DirectEncoder without a learned gain "
                         "(learn_gain=False).")


def _decays(decay, n: int) -> np.ndarray:
    """Decays per step of a fixed or learned :class:`_Decay`, float64 ``(n,)``."""
    if decay.learn:
        with torch.no_grad():
            return torch.sigmoid(decay.logit.detach().double().cpu()).numpy().copy()
    return np.full(n, decay.value, dtype=np.float64)


def _tau(decay: np.ndarray, dt: float) -> np.ndarray:
    return dt / (1.0 - decay)


def _weights(linear: nn.Linear, nir):
    weight = linear.weight.detach().cpu().numpy().copy()
    if linear.bias is None:
        return nir.Linear(weight=weight)
    return nir.Affine(weight=weight, bias=linear.bias.detach().cpu().numpy().copy())


def _neuron_node(lif: LIF, dt: float, name: str, unsupported_reset: str, nir):
    if type(lif) not in (LIF, CubaLIF):
        raise TypeError(f"Layer {name!r} is a {type(lif).__name__}, which has no NIR neuron; "
                        "to_nir maps LIF and CubaLIF.")
    n = lif.n_neurons
    if lif.reset == "none" and lif.output == "membrane":  # a leaky integrator read-out
        tau = _tau(_decays(lif.beta, n), dt)
        return nir.LI(tau=tau, r=tau / dt, v_leak=np.zeros(n))
    metadata = {}
    if lif.reset != "zero":
        if unsupported_reset == "raise":
            raise ValueError(
                f"Layer {name!r} resets by {lif.reset!r}, which NIR's neurons cannot express "
                "(they reset to v_reset); train with reset='zero' for an exact export, or pass "
                "unsupported_reset='annotate' to write v_reset=0 plus a 'bci_reset' metadata "
                "entry that only bci's from_nir reads (other NIR tools will reset to zero)."
            )
        metadata["bci_reset"] = lif.reset
        logger.warning("NIR layer %r: reset %r written as v_reset=0 with metadata; NIR tools "
                       "other than bci will reset to zero.", name, lif.reset)
    tau_mem = _tau(_decays(lif.beta, n), dt)
    common = dict(r=tau_mem / dt, v_leak=np.zeros(n), v_threshold=np.full(n, lif.threshold),
                  v_reset=np.zeros(n), metadata=metadata)
    if isinstance(lif, CubaLIF):
        tau_syn = _tau(_decays(lif.alpha, n), dt)
        return nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, w_in=tau_syn / dt, **common)
    return nir.LIF(tau=tau_mem, **common)


def _output_scale(model, nir):
    scale = model.output_scale.detach().cpu().numpy().astype(np.float32)
    return nir.Affine(weight=np.diag(scale), bias=model.output_offset.detach().cpu().numpy()
                      .astype(np.float32).copy())


def _layers(model) -> list[tuple[str, nn.Module]]:
    """Return the chain of layers a graph holds, as ``(node name, module)``, in order."""
    if isinstance(model, SNNStreaming):
        return [("fc_in", model.fc_in), ("lif_hidden", model.lif_hidden),
                ("fc_out", model.fc_out), ("lif_out", model.lif_out)]
    if isinstance(model, DelaySNN):  # its input layer is a set of branches (_delay_branches)
        return [("lif_hidden", model.lif_hidden), ("fc_out", model.fc_out),
                ("lif_out", model.lif_out)]
    if isinstance(model, SNN3D):
        return [("fc1", model.fc1), ("lif1", model.lif1), ("fc2", model.fc2),
                ("lif2", model.lif2), ("fc3", model.fc3), ("lif_out", model.lif_out),
                ("gain", None)]
    return [("fc", model.fc)]


def _delay_branches(model: DelaySNN, dt: float, nir) -> tuple[dict, list[tuple[str, str]]]:
    """Nodes and edges from ``"input"`` to ``"lif_hidden"``: one branch per delay value."""
    layer = model.fc_in
    weight = (layer.weight * layer.weight_mask).detach().cpu().double().numpy()
    delays = layer.integer_delays().cpu().numpy()
    nodes, edges = {}, []
    for d in range(layer.max_delay + 1):
        selected = (delays == d) & (weight != 0)
        if not selected.any() and (d or np.any(weight != 0)):
            continue  # no synapse of this delay (a network of zeros keeps its d = 0 branch)
        linear = f"fc_in_d{d}"
        if d:
            nodes[f"delay_d{d}"] = nir.Delay(delay=np.full(model.n_chans, d * dt))
            edges += [("input", f"delay_d{d}"), (f"delay_d{d}", linear)]
        else:
            edges.append(("input", linear))
        nodes[linear] = nir.Linear(weight=np.where(selected, weight, 0.0).astype(np.float32))
        edges.append((linear, "lif_hidden"))
    return nodes, edges


def _read_delay_branches(model: DelaySNN, graph, dt: float, nir) -> None:
    """Set ``model.fc_in`` from the branches :func:`_delay_branches` writes."""
    layer = model.fc_in
    weight = np.zeros((model.n_hidden, model.n_chans))
    delays = np.zeros((model.n_hidden, model.n_chans))
    for name in sorted(n for n in graph.nodes if str(n).startswith("fc_in_d")):
        d = int(name[len("fc_in_d"):])
        node = _node(graph, name, (nir.Linear,), "DelaySNN")
        w = np.asarray(node.weight, dtype=np.float64)
        if w.shape != weight.shape:
            raise ValueError(f"{name}.weight has shape {w.shape} in the NIR graph; the model "
                             f"config gives {weight.shape}.")
        if d:
            lag = np.asarray(_node(graph, f"delay_d{d}", (nir.Delay,), "DelaySNN").delay)
            if lag.shape != (model.n_chans,) or not np.allclose(lag, d * dt, rtol=1e-9,
                                                                 atol=0):
                raise ValueError(f"Node 'delay_d{d}' must delay its {model.n_chans} channels "
                                 f"by {d} steps ({d * dt:g} s), got {lag.tolist()} s.")
        if np.any((w != 0) & (weight != 0)):
            raise ValueError(f"{name} gives a weight to synapses another delay branch has "
                             "too; a DelayedLinear has one delay per synapse.")
        weight += w
        delays[w != 0] = d
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(weight, dtype=layer.weight.dtype))
        layer.delay.copy_(torch.as_tensor(delays, dtype=layer.delay.dtype))
        layer.weight_mask.copy_(torch.as_tensor(weight != 0, dtype=layer.weight_mask.dtype))


def _structure(model, graph) -> tuple[list[str], set[tuple[str, str]]]:
    """Return the node names and edges :func:`to_nir` writes for ``model`` (and ``graph``)."""
    chain = [n for n, _ in _layers(model)] + ["output_scale", "output"]
    if not isinstance(model, DelaySNN):
        chain = ["input", *chain]
        return chain, set(zip(chain[:-1], chain[1:], strict=True))
    edges = set(zip(chain[:-1], chain[1:], strict=True))
    names = ["input", *chain]
    for name in (str(n) for n in graph.nodes):
        suffix = name[len("fc_in_d"):]
        if not (name.startswith("fc_in_d") and suffix.isdigit()
                and int(suffix) <= model.max_delay):
            continue
        d = int(suffix)
        names.append(name)
        edges.add((name, "lif_hidden"))
        if d:
            names.append(f"delay_d{d}")
            edges |= {("input", f"delay_d{d}"), (f"delay_d{d}", name)}
        else:
            edges.add(("input", name))
    return names, edges


def _n_inputs(model) -> int:
    return model.n_chans * model.n_times if isinstance(model, LinearDecoder) else model.n_chans


def to_nir(model: nn.Module, *, dt: float | None = None,
           unsupported_reset: UnsupportedReset = "raise") -> nir.NIRGraph:
    """Export a spiking decoder as a NIR graph.

    Parameters
    ----------
    model : SNNStreaming | DelaySNN | SNN3D | LinearDecoder
        The decoder (weights as they are; dropout is left out, as in evaluation mode).
    dt : float | None
        Time step (seconds) the continuous-time time constants are expressed for (``tau = dt
        / (1 - beta)``); ``1 / model.sfreq`` when None. snnTorch 1.0's NIR importer assumes
        ``dt = 1e-4``: pass that to run the graph there.
    unsupported_reset : "raise" | "annotate"
        What to do with spiking layers whose reset NIR cannot express (``"subtract"``,
        ``"none"``): raise ``ValueError``, or write ``v_reset = 0`` plus a ``bci_reset``
        metadata entry (see the module docstring).

    Returns
    -------
    graph : nir.NIRGraph
        Nodes ``"input"`` (shape ``(n_in,)``, no batch axis), the layers (named as the model's
        attributes), ``"output_scale"`` and ``"output"`` (``(n_outputs,)``), chained by edges
        (for :class:`DelaySNN`, its input layer as parallel ``delay_d<d>`` -> ``fc_in_d<d>``
        branches, see the module docstring).
        ``graph.metadata`` holds ``bci_model``, ``bci_config`` (JSON of ``get_config()``),
        ``bci_version``, ``dt`` (seconds), plain-text ``graph_input``/``graph_output`` and,
        for :class:`SNN3D`, ``bci_host_state`` (the host-side ``LayerNorm``'s ``weight`` and
        ``bias``, ``(n_times, n_chans)`` each).

    Raises
    ------
    TypeError
        The model is not one of :data:`NIR_EXPORTABLE`; the message names the module NIR
        cannot express.
    ValueError
        A reset NIR cannot express (see ``unsupported_reset``), or a bad ``dt``.

    Examples
    --------
    >>> from bci.models.spiking.ibmi import SNNStreaming
    >>> graph = to_nir(SNNStreaming(4, 2, sfreq=20.0, n_hidden=8, tau_s=0.1))
    >>> [type(node).__name__ for node in graph.nodes.values()]
    ['Input', 'Linear', 'LIF', 'Affine', 'LI', 'Affine', 'Output']
    >>> round(float(graph.nodes["lif_hidden"].tau[0]), 4)  # 0.05 / (1 - exp(-0.05 / 0.1))
    0.1271
    """
    nir = _import_nir()
    from .. import __version__

    _check_exportable(model)
    dt = _check_dt(dt, model)
    check_option("unsupported_reset", unsupported_reset, ("raise", "annotate"))
    nodes = {"input": nir.Input(input_type={"input": np.array([_n_inputs(model)])})}
    edges = []
    if isinstance(model, DelaySNN):
        branches, edges = _delay_branches(model, dt, nir)
        nodes.update(branches)
    chain_start = len(nodes) if isinstance(model, DelaySNN) else 0  # where the chain begins
    for name, module in _layers(model):
        if name == "gain":
            nodes[name] = nir.Scale(scale=model.gain.detach().cpu().numpy().copy())
        elif isinstance(module, nn.Linear):
            nodes[name] = _weights(module, nir)
        else:
            nodes[name] = _neuron_node(module, dt, name, unsupported_reset, nir)
    nodes["output_scale"] = _output_scale(model, nir)
    nodes["output"] = nir.Output(output_type={"output": np.array([model.n_outputs])})
    names = list(nodes)[chain_start:]
    edges += list(zip(names[:-1], names[1:], strict=True))
    name = type(model).__name__
    metadata = {
        "bci_model": name,
        "bci_config": json.dumps(model.get_config()),
        "bci_version": str(__version__),
        "dt": dt,
        "graph_input": _INPUT_DOC[name].format(transform=model.input_transform),
        "graph_output": _OUTPUT_DOC[name],
    }
    if isinstance(model, SNN3D):  # parameters of the host-side LayerNorm (float32 arrays)
        metadata["bci_host_state"] = {
            key: value.detach().cpu().numpy().copy()
            for key, value in model.norm.state_dict().items()}
    graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)
    logger.info("Exported %s to NIR: %d nodes, dt=%g s", name, len(nodes), dt)
    return graph


# ---------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------
def _metadata_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _metadata_str(value.item())
    return str(value)


def _node(graph, name: str, kinds: tuple, model_name: str):
    node = graph.nodes.get(name)
    if not isinstance(node, kinds):
        expected = " or ".join(f"nir.{k.__name__}" for k in kinds)
        got = "no such node" if node is None else f"nir.{type(node).__name__}"
        raise ValueError(f"The NIR graph of {model_name} needs node {name!r} as {expected}; "
                         f"got {got}. from_nir reads graphs written by bci's to_nir.")
    return node


def _copy(param: torch.Tensor, value: np.ndarray, what: str) -> None:
    value = np.asarray(value)
    if tuple(value.shape) != tuple(param.shape):
        raise ValueError(f"{what} has shape {tuple(value.shape)} in the NIR graph; the model "
                         f"config gives {tuple(param.shape)}.")
    with torch.no_grad():
        param.copy_(torch.tensor(np.array(value), dtype=param.dtype))


def _load_linear(linear: nn.Linear, node, name: str, nir) -> None:
    _copy(linear.weight, node.weight, f"{name}.weight")
    if linear.bias is not None:
        if not isinstance(node, nir.Affine):
            raise ValueError(f"Node {name!r} must be nir.Affine (the layer has a bias).")
        _copy(linear.bias, node.bias, f"{name}.bias")
    elif isinstance(node, nir.Affine) and np.any(np.asarray(node.bias) != 0):
        raise ValueError(f"Node {name!r} has a bias, but the layer has none.")


def _decay_from_tau(tau, dt: float, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(beta, 1 - beta)`` of NIR time constants (the inverse of ``tau = dt / (1 - beta)``)."""
    tau = np.asarray(tau, dtype=np.float64)
    if not np.all(np.isfinite(tau)) or np.any(tau <= dt):
        raise ValueError(f"{name}: time constants must be finite and > dt = {dt:g} s (a decay "
                         f"per step in (0, 1)); got range [{tau.min():g}, {tau.max():g}] s.")
    one_minus = dt / tau
    return 1.0 - one_minus, one_minus


def _set_decay(decay, tau, dt: float, name: str) -> None:
    beta, one_minus = _decay_from_tau(tau, dt, name)
    if decay.learn:
        logit = np.log(beta) - np.log(one_minus)
        _copy(decay.logit, logit, f"{name} decay")
        return
    if np.max(np.abs(beta - decay.value)) > 1e-9:
        raise ValueError(
            f"{name}: the NIR graph's time constants (decays per step in [{beta.min():.6g}, "
            f"{beta.max():.6g}]) differ from the fixed decay {decay.value:.6g} of its "
            "bci_config (learn_tau=False); edit the config's time constants to match, or set "
            "learn_tau=True there to read one time constant per neuron."
        )
    # within float64 rounding of the config's decay: keep the config's value, exactly


def _check_gain_one(r, tau, dt: float, name: str) -> None:
    if not np.allclose(np.asarray(r) * dt / np.asarray(tau), 1.0, rtol=1e-9, atol=0):
        raise ValueError(f"{name}: bci reads neurons whose input gain r * dt / tau is 1 (r = "
                         "tau / dt); this graph's differs. Fold the gain into the weights.")


def _load_neuron(lif: LIF, node, dt: float, name: str, nir) -> None:
    if lif.reset == "none" and lif.output == "membrane":
        if not isinstance(node, nir.LI):
            raise ValueError(f"Node {name!r} must be nir.LI (a non-spiking read-out), got "
                             f"nir.{type(node).__name__}.")
        _check_gain_one(node.r, node.tau, dt, name)
        if np.any(np.asarray(node.v_leak) != 0):
            raise ValueError(f"Node {name!r}: bci reads v_leak = 0 only.")
        _set_decay(lif.beta, node.tau, dt, name)
        return
    kind = nir.CubaLIF if isinstance(lif, CubaLIF) else nir.LIF
    if type(node) is not kind:
        raise ValueError(f"Node {name!r} must be nir.{kind.__name__} for this config, got "
                         f"nir.{type(node).__name__}.")
    reset = _metadata_str(node.metadata.get("bci_reset", "zero")) if node.metadata else "zero"
    if reset != lif.reset:
        raise ValueError(f"Node {name!r} resets by {reset!r}, the config says {lif.reset!r}.")
    if np.any(np.asarray(node.v_leak) != 0) or np.any(np.asarray(node.v_reset) != 0):
        raise ValueError(f"Node {name!r}: bci reads v_leak = 0 and v_reset = 0 only.")
    thresholds = np.asarray(node.v_threshold, dtype=np.float64)
    if thresholds.shape != (lif.n_neurons,) or np.ptp(thresholds) != 0:
        raise ValueError(f"Node {name!r} needs one shared threshold for its {lif.n_neurons} "
                         f"neurons, got {thresholds.shape} values in [{thresholds.min():g}, "
                         f"{thresholds.max():g}].")
    lif.threshold = float(thresholds[0])
    tau_mem = node.tau_mem if kind is nir.CubaLIF else node.tau
    _check_gain_one(node.r, tau_mem, dt, name)
    _set_decay(lif.beta, tau_mem, dt, name)
    if kind is nir.CubaLIF:
        _check_gain_one(node.w_in, node.tau_syn, dt, f"{name} (synapse)")
        _set_decay(lif.alpha, node.tau_syn, dt, f"{name} (synapse)")


def from_nir(graph: nir.NIRGraph) -> nn.Module:
    """Read a NIR graph written by :func:`to_nir` back into its decoder class.

    The model is rebuilt from the config in ``graph.metadata`` (``bci_model``,
    ``bci_config``), then every weight, time constant and threshold is read from the nodes
    (``beta = 1 - dt / tau`` with the graph's ``dt``), so edits to the parameters are honoured;
    the structure (node types, shapes, edges) must be the one :func:`to_nir` writes.

    Parameters
    ----------
    graph : nir.NIRGraph
        The graph (e.g. from ``nir.read``).

    Returns
    -------
    model : SNNStreaming | DelaySNN | SNN3D | LinearDecoder
        In evaluation mode.

    Raises
    ------
    TypeError
        ``graph`` is not a ``nir.NIRGraph``.
    ValueError
        No bci metadata, or nodes, shapes, edges or parameters this reader cannot map.
    """
    nir = _import_nir()
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"from_nir expects a nir.NIRGraph, got {type(graph).__name__}.")
    metadata = graph.metadata if isinstance(graph.metadata, Mapping) else {}
    if "bci_model" not in metadata or "bci_config" not in metadata:
        raise ValueError("This NIR graph has no bci_model/bci_config metadata: from_nir reads "
                         "graphs written by bci's to_nir (or save_nir).")
    name = _metadata_str(metadata["bci_model"])
    if name not in NIR_EXPORTABLE:
        raise ValueError(f"The graph's bci_model is {name!r}; from_nir reads "
                         f"{', '.join(NIR_EXPORTABLE)}.")
    try:
        config = json.loads(_metadata_str(metadata["bci_config"]))
    except json.JSONDecodeError as err:
        raise ValueError(f"The graph's bci_config is not valid JSON ({err}).") from err
    model = _MODELS[name].from_config(config)
    dt = float(np.asarray(metadata["dt"])) if "dt" in metadata else 1.0 / model.sfreq

    layers = _layers(model)
    expected, chain = _structure(model, graph)
    if sorted(graph.nodes) != sorted(expected):
        raise ValueError(f"The NIR graph of {name} must have the nodes {expected}, got "
                         f"{sorted(graph.nodes)}.")
    edges = {(str(a), str(b)) for a, b in graph.edges}
    if edges != chain or len(graph.edges) != len(edges):
        raise ValueError(f"The NIR graph of {name} must chain its nodes {expected} in order "
                         f"(no recurrent or skip edges); got edges {sorted(edges)}.")
    n_in = np.asarray(_node(graph, "input", (nir.Input,), name).input_type["input"]).tolist()
    if n_in != [_n_inputs(model)]:
        raise ValueError(f"The graph's input shape is {n_in}, the config gives "
                         f"[{_n_inputs(model)}].")
    if isinstance(model, DelaySNN):
        _read_delay_branches(model, graph, dt, nir)
    for node_name, module in layers:
        if node_name == "gain":
            node = _node(graph, "gain", (nir.Scale,), name)
            _copy(model.gain, node.scale, "gain")
        elif isinstance(module, nn.Linear):
            node = _node(graph, node_name, (nir.Linear, nir.Affine), name)
            _load_linear(module, node, node_name, nir)
        else:
            _load_neuron(module, graph.nodes[node_name], dt, node_name, nir)
    if isinstance(model, (*_STREAMING, SNN3D)):
        model.threshold = model.lif_hidden.threshold if isinstance(model, _STREAMING) \
            else model.lif1.threshold
        if isinstance(model, SNN3D) and model.lif2.threshold != model.lif1.threshold:
            raise ValueError("SNN3D shares one threshold between lif1 and lif2; the graph "
                             f"gives {model.lif1.threshold:g} and {model.lif2.threshold:g}.")
    if isinstance(model, SNN3D):
        host = metadata.get("bci_host_state")
        if not isinstance(host, Mapping) or set(host) != {"weight", "bias"}:
            raise ValueError("The NIR graph of SNN3D needs the host-side LayerNorm parameters "
                             "in metadata['bci_host_state'] ('weight', 'bias'); re-export it "
                             "with to_nir.")
        _copy(model.norm.weight, host["weight"], "LayerNorm weight")
        _copy(model.norm.bias, host["bias"], "LayerNorm bias")
    scale_node = _node(graph, "output_scale", (nir.Affine,), name)
    weight = np.asarray(scale_node.weight)
    if weight.shape != (model.n_outputs, model.n_outputs) or \
            np.any(weight != np.diag(np.diag(weight))):
        raise ValueError("Node 'output_scale' must be a diagonal (n_outputs, n_outputs) "
                         f"nir.Affine, got weight of shape {weight.shape}.")
    _copy(model.output_scale, np.diag(weight), "output_scale")
    _copy(model.output_offset, scale_node.bias, "output_offset")
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Files and host-side input
# ---------------------------------------------------------------------------------------------
def save_nir(model: nn.Module, path: str | os.PathLike, *, dt: float | None = None,
             unsupported_reset: UnsupportedReset = "raise") -> Path:
    """Write ``to_nir(model, ...)`` to a NIR (HDF5) file with ``nir.write``.

    Parameters
    ----------
    model : SNNStreaming | DelaySNN | SNN3D | LinearDecoder
        The decoder.
    path : str | PathLike
        Destination (conventionally ``.nir``); parent folders are created, the file is written
        atomically (a temporary file is renamed).
    dt, unsupported_reset
        As in :func:`to_nir`.

    Returns
    -------
    path : Path
    """
    nir = _import_nir()
    graph = to_nir(model, dt=dt, unsupported_reset=unsupported_reset)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    nir.write(tmp, graph)
    tmp.replace(path)
    logger.info("Wrote NIR graph of %s to %s", type(model).__name__, path)
    return path


def load_nir(path: str | os.PathLike) -> nn.Module:
    """Read a NIR file written by :func:`save_nir` back into its decoder.

    Runs ``nir.read``, then :func:`from_nir`.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a NIR file, or a graph :func:`from_nir` cannot read.
    """
    nir = _import_nir()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No NIR file at {path}; write one with bci.models.spiking."
                                "nir_export.save_nir or `bci export --format nir`.")
    try:
        graph = nir.read(path)
    except OSError as err:
        raise ValueError(f"{path} is not a NIR (HDF5) file or is damaged ({err}).") from err
    return from_nir(graph)


def graph_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Return what the exported graph's input node receives, step by step, for counts ``x``.

    The host-side part of the decoder (see the module docstring): the encoder's transform,
    and for :class:`SNN3D` the window's ``LayerNorm``; for :class:`LinearDecoder` the
    flattened window.

    Parameters
    ----------
    model : SNNStreaming | DelaySNN | SNN3D | LinearDecoder
        The exported decoder.
    x : torch.Tensor
        Counts: ``(batch, n_chans, n_bins)`` for :class:`SNNStreaming` and
        :class:`DelaySNN`, windows ``(batch,
        n_chans, n_times)`` for the others.

    Returns
    -------
    inputs : torch.Tensor
        ``(batch, n_steps, n_in)``: ``n_steps = n_bins`` (SNNStreaming), ``n_times`` (SNN3D,
        from rest per window) or 1 (LinearDecoder); ``n_in`` is the input node's size. No
        gradients.
    """
    _check_exportable(model)
    with torch.no_grad():
        if isinstance(model, _STREAMING):
            model._check_sequence(x)
            return model.encoder(x)
        model._check_input(x)
        currents = model.encoder(x)  # (B, n_times, C)
        if isinstance(model, SNN3D):
            return model.norm(currents)
        return currents.flatten(1)[:, None]

