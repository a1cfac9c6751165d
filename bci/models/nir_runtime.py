"""A NumPy simulator of NIR graphs: the reference that runs an exported spiking decoder.

:class:`NIRSimulator` executes a :class:`nir.NIRGraph` (as written by
:func:`bci.hw.nir_export.to_nir`, or read back from its HDF5 file) one time step at a time,
keeping every neuron's state between calls, in NumPy only (no torch is imported). It is what a
neuromorphic chip is expected to compute, written out plainly:

- ``nir.Linear`` ``y = W x``; ``nir.Affine`` ``y = W x + b``; ``nir.Scale`` ``y = s * x``;
- ``nir.LIF`` (forward Euler with the graph's ``dt``, metadata ``"dt"``):
  ``v <- (1 - dt / tau) v + (dt / tau) (v_leak + r I)``; a spike where ``v > v_threshold``,
  then ``v <- v_reset`` in the same step (NIR's reset). A node with metadata
  ``bci_reset="subtract"`` subtracts the threshold instead;
- ``nir.CubaLIF``: ``i <- (1 - dt / tau_syn) i + (dt / tau_syn) w_in I`` first, then the LIF
  membrane driven by ``i`` (``tau_mem``);
- ``nir.LI``: the LIF membrane without spikes; its membrane is its output.

With :func:`~bci.hw.nir_export.to_nir`'s mapping (``tau = dt / (1 - beta)``, ``r = tau / dt``)
one Euler step is exactly ``v <- beta v + I``, the dynamics of our
:class:`~bci.models.spiking.neurons.LIF`; NIR resets to ``v_reset`` at once where our
``reset="zero"`` neurons clear the membrane at the next step, which gives the same spikes and
so the same read-out.

The graph must be a chain (one edge into and out of every node, from ``"input"`` to
``"output"``), which all graphs of :func:`~bci.hw.nir_export.to_nir` are. The host-side part of
a decoder (the encoder's ``sqrt``/``log1p`` of the counts, metadata ``bci_config``) is applied
by :class:`NIRStepDecoder`, which also counts the synaptic operations actually performed (a
non-zero input times a non-zero weight, as :func:`~bci.models.spiking.cost.count_operations`
counts effective operations).
"""

from __future__ import annotations

import abc
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["NIRSimulator", "NIRStepDecoder", "read_nir_graph"]

_NODE_KINDS = ("Input", "Output", "Linear", "Affine", "Scale", "LIF", "CubaLIF", "LI")


def read_nir_graph(path: str | Path) -> Any:
    """Read a NIR HDF5 file into a :class:`nir.NIRGraph` (needs ``nir``: ``pip install nir``).

    Raises
    ------
    ImportError
        ``nir`` is not installed.
    FileNotFoundError
        No such file.
    ValueError
        Not a NIR file, or a damaged one.
    """
    try:
        import nir
    except ImportError as err:  # pragma: no cover - nir is a test dependency
        raise ImportError("Reading NIR files needs the nir package: pip install 'bci[nir]'."
                          ) from err
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No NIR file at {path}; write one with `bci export --format "
                                "nir DECODER --out DIR` or bci.hw.nir_export.save_nir.")
    try:
        return nir.read(path)
    except (OSError, KeyError) as err:
        raise ValueError(f"{path} is not a NIR (HDF5) file or is damaged ({err}).") from err


def _meta_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf8")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _meta_value(value.item())
    return value


def _chain(graph: Any) -> list[str]:
    """Return the node names from input to output, refusing graphs that are not a chain."""
    nxt: dict[str, str] = {}
    n_in: dict[str, int] = {}
    for src, dst in graph.edges:
        if src in nxt:
            raise ValueError(f"NIR node {src!r} feeds several nodes; NIRSimulator runs chains "
                             "(one edge in and out of every node), as bci's to_nir writes.")
        nxt[src] = dst
        n_in[dst] = n_in.get(dst, 0) + 1
    inputs = [n for n, node in graph.nodes.items() if type(node).__name__ == "Input"]
    if len(inputs) != 1:
        raise ValueError(f"A NIR graph needs exactly one Input node, got {len(inputs)}.")
    order = [inputs[0]]
    while order[-1] in nxt:
        order.append(nxt[order[-1]])
        if len(order) > len(graph.nodes):
            raise ValueError("The NIR graph has a cycle; NIRSimulator runs feed-forward chains.")
    if type(graph.nodes[order[-1]]).__name__ != "Output" or len(order) != len(graph.nodes):
        raise ValueError("The NIR graph is not one chain from its Input to its Output node "
                         f"(reached {order}); NIRSimulator runs chains, as bci's to_nir writes.")
    for name in order:
        kind = type(graph.nodes[name]).__name__
        if kind not in _NODE_KINDS:
            raise TypeError(f"NIR node {name!r} is a nir.{kind}, which NIRSimulator cannot run; "
                            f"it runs {', '.join(_NODE_KINDS)}.")
    return order


class _Layer:
    """One node compiled to float64 arrays; ``state`` is a dict of arrays or None."""

    def __init__(self, name: str, node: Any, dt: float) -> None:
        self.name = name
        self.kind = type(node).__name__
        self.weight = self.bias = self.scale = None
        f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
        if self.kind in ("Linear", "Affine"):
            self.weight = f64(node.weight)
            self.nonzero = (self.weight != 0).astype(np.float64)
            if self.kind == "Affine":
                self.bias = f64(node.bias)
        elif self.kind == "Scale":
            self.scale = f64(node.scale)
        elif self.kind in ("LIF", "LI", "CubaLIF"):
            tau = f64(node.tau_mem if self.kind == "CubaLIF" else node.tau)
            if np.any(~np.isfinite(tau)) or np.any(tau <= 0):
                raise ValueError(f"NIR node {name!r} has time constants that are not finite "
                                 f"and > 0 (s): {tau[:5]}.")
            self.decay = 1.0 - dt / tau
            self.gain = (dt / tau) * f64(node.r)
            self.v_leak_term = (dt / tau) * f64(node.v_leak)
            if self.kind != "LI":
                self.threshold = f64(node.v_threshold)
                self.v_reset = f64(node.v_reset)
                meta = getattr(node, "metadata", None) or {}
                self.subtract = _meta_value(meta.get("bci_reset", "zero")) == "subtract"
            if self.kind == "CubaLIF":
                tau_syn = f64(node.tau_syn)
                self.syn_decay = 1.0 - dt / tau_syn
                self.syn_gain = (dt / tau_syn) * f64(node.w_in)

    @property
    def is_synapse(self) -> bool:
        return self.weight is not None

    @property
    def is_neuron(self) -> bool:
        return self.kind in ("LIF", "LI", "CubaLIF")

    def step(self, x: np.ndarray, state: dict | None) -> tuple[np.ndarray, dict | None]:
        if self.kind in ("Input", "Output"):
            return x, None
        if self.kind in ("Linear", "Affine"):
            y = x @ self.weight.T
            return (y + self.bias if self.bias is not None else y), None
        if self.kind == "Scale":
            return x * self.scale, None
        current = x
        if state is None:
            state = {"v": np.zeros_like(x)}
            if self.kind == "CubaLIF":
                state["i"] = np.zeros_like(x)
        if self.kind == "CubaLIF":
            state["i"] = self.syn_decay * state["i"] + self.syn_gain * current
            current = state["i"]
        v = self.decay * state["v"] + self.gain * current + self.v_leak_term
        if self.kind == "LI":
            state["v"] = v
            return v.copy(), state
        spikes = (v > self.threshold).astype(np.float64)
        if self.subtract:
            v = v - self.threshold * spikes
        else:
            v = np.where(spikes > 0, self.v_reset, v)
        state["v"] = v
        return spikes, state


class NIRSimulator:
    """Run a NIR graph one time step at a time in NumPy (float64), keeping the neuron state.

    Parameters
    ----------
    graph : nir.NIRGraph
        A chain graph (see the module docstring); its time step is the metadata ``"dt"``
        (seconds).

    Attributes
    ----------
    n_inputs, n_outputs : int
        Sizes of the input and output nodes.
    dt : float
        Time step (s).
    synops : float
        Synaptic operations performed since the last :meth:`reset` (non-zero input times
        non-zero weight, every connection node).
    synops_by_node : dict of str -> float
        The same, per connection node.
    n_steps : int
        Steps run since the last :meth:`reset`.
    spikes : dict of str -> float
        Spikes emitted per spiking node since the last :meth:`reset`.

    Examples
    --------
    >>> import nir
    >>> graph = nir.NIRGraph(nodes={
    ...     "input": nir.Input(input_type={"input": np.array([1])}),
    ...     "li": nir.LI(tau=np.array([2.0]), r=np.array([2.0]), v_leak=np.array([0.0])),
    ...     "output": nir.Output(output_type={"output": np.array([1])})},
    ...     edges=[("input", "li"), ("li", "output")], metadata={"dt": 1.0})
    >>> sim = NIRSimulator(graph)
    >>> [float(sim.step(np.array([1.0]))[0]) for _ in range(3)]  # v <- 0.5 v + 1
    [1.0, 1.5, 1.75]
    """

    def __init__(self, graph: Any) -> None:
        if not hasattr(graph, "nodes") or not hasattr(graph, "edges"):
            raise TypeError(f"graph must be a nir.NIRGraph, got {type(graph).__name__}; read a "
                            "file with bci.models.nir_runtime.read_nir_graph(path).")
        self.metadata = dict(getattr(graph, "metadata", None) or {})
        if "dt" not in self.metadata:
            raise ValueError("The NIR graph has no 'dt' in its metadata (the time step in "
                             "seconds); export it with bci.hw.nir_export.to_nir.")
        self.dt = float(_meta_value(self.metadata["dt"]))
        if not np.isfinite(self.dt) or self.dt <= 0:
            raise ValueError(f"The NIR graph's dt must be a finite number > 0 (s), got {self.dt}.")
        order = _chain(graph)
        self._layers = [_Layer(name, graph.nodes[name], self.dt) for name in order]
        self.n_inputs = int(np.prod(next(iter(graph.nodes[order[0]].input_type.values()))))
        self.n_outputs = int(np.prod(next(iter(graph.nodes[order[-1]].output_type.values()))))
        self.reset()

    def reset(self) -> None:
        """Put every neuron at rest and clear the operation counters."""
        self._state: list[dict | None] = [None] * len(self._layers)
        self.synops = 0.0
        self.synops_by_node = {layer.name: 0.0 for layer in self._layers if layer.is_synapse}
        self.n_steps = 0
        self.spikes = {layer.name: 0.0 for layer in self._layers
                       if layer.kind in ("LIF", "CubaLIF")}

    def step(self, x: np.ndarray) -> np.ndarray:
        """Advance one time step.

        Parameters
        ----------
        x : array, shape (n_inputs,) or (batch, n_inputs)
            What the input node receives at this step.

        Returns
        -------
        out : ndarray, float64, shape (n_outputs,) or (batch, n_outputs)
        """
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1:] != (self.n_inputs,) or x.ndim not in (1, 2):
            raise ValueError(f"The NIR graph's input takes (n_inputs={self.n_inputs},) or "
                             f"(batch, {self.n_inputs}) per step, got {x.shape}.")
        if x.ndim == 2 and self.n_steps and self._state_batch() not in (None, x.shape[0]):
            raise ValueError("The batch size changed between steps; reset() first.")
        for k, layer in enumerate(self._layers):
            if layer.is_synapse:
                ops = float(((x != 0).astype(np.float64) @ layer.nonzero.T).sum())
                self.synops += ops
                self.synops_by_node[layer.name] += ops
            x, self._state[k] = layer.step(x, self._state[k])
            if layer.name in self.spikes:
                self.spikes[layer.name] += float(x.sum())
        self.n_steps += 1
        return x

    def _state_batch(self) -> int | None:
        for state in self._state:
            if state is not None:
                v = state["v"]
                return v.shape[0] if v.ndim == 2 else None
        return None

    def run(self, x: np.ndarray) -> np.ndarray:
        """Run ``(n_steps, n_inputs)`` from the current state; returns ``(n_steps, n_outputs)``."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(f"run expects (n_steps, n_inputs), got {x.shape}.")
        return np.stack([self.step(row) for row in x]) if len(x) else \
            np.zeros((0, self.n_outputs))


def _host_transform(name: str):
    if name == "sqrt":
        return lambda x: np.sqrt(np.clip(x, 0.0, None))
    if name == "log1p":
        return lambda x: np.log1p(np.clip(x, 0.0, None))
    if name == "none":
        return lambda x: x
    raise ValueError(f"Unknown input_transform {name!r} in the NIR graph's bci_config; "
                     "expected 'none', 'sqrt' or 'log1p'.")


class StepDecoder(abc.ABC):
    """A stateful decoder of binned counts: :meth:`step` one bin, :meth:`run` a block.

    Subclasses set ``n_chans`` and ``n_outputs`` and implement :meth:`step`, reading the bin
    through :meth:`_bin`. No torch here: the NumPy NIR runtime shares this base.
    """

    n_chans: int
    n_outputs: int

    def _bin(self, counts: np.ndarray) -> np.ndarray:
        """One bin's counts as float64 ``(n_chans,)``; another shape is a ValueError."""
        counts = np.asarray(counts, dtype=np.float64)
        if counts.shape != (self.n_chans,):
            raise ValueError(f"One bin holds {self.n_chans} counts (n_chans,), got "
                             f"{counts.shape}.")
        return counts

    @abc.abstractmethod
    def step(self, counts: np.ndarray) -> np.ndarray:
        """Decode one bin: counts ``(n_chans,)`` -> outputs ``(n_outputs,)`` (float64)."""

    def run(self, counts: np.ndarray) -> np.ndarray:
        """Decode counts ``(n_chans, n_bins)`` bin by bin, from the current state.

        Returns ``(n_outputs, n_bins)``.
        """
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim != 2 or counts.shape[0] != self.n_chans:
            raise ValueError(f"run expects counts (n_chans={self.n_chans}, n_bins), got "
                             f"{counts.shape}.")
        out = [self.step(col) for col in counts.T]
        return np.stack(out, axis=1) if out else np.zeros((self.n_outputs, 0))


class NIRStepDecoder(StepDecoder):
    """A streaming spiking decoder from its NIR graph: counts of one bin in, outputs out.

    Applies the host-side input transform of the exported model (``bci_config``'s
    ``input_transform``), then steps a :class:`NIRSimulator`. Only graphs of streaming models
    (``bci_model == "SNNStreaming"``) are stepped bin by bin; windowed ones (``SNN3D``,
    ``LinearDecoder``) re-read a window for every prediction and are refused.

    Parameters
    ----------
    graph : nir.NIRGraph | str | Path
        The graph, or a NIR file.

    Attributes
    ----------
    n_chans, n_outputs : int
        Units in, outputs out.
    sfreq : float
        Bins per second (``1 / dt``).
    """

    backend = "nir"

    def __init__(self, graph: Any) -> None:
        if isinstance(graph, (str, Path)):
            graph = read_nir_graph(graph)
        self.simulator = NIRSimulator(graph)
        meta = self.simulator.metadata
        model = _meta_value(meta.get("bci_model", ""))
        if model != "SNNStreaming":
            raise ValueError(f"NIRStepDecoder steps streaming decoders (bci_model "
                             f"'SNNStreaming'), got {model or 'a graph without bci_model'!r}; "
                             "windowed decoders re-read a window per prediction.")
        config = json.loads(_meta_value(meta.get("bci_config", "{}")))
        self._transform = _host_transform(config.get("input_transform", "none"))
        self.n_chans = self.simulator.n_inputs
        self.n_outputs = self.simulator.n_outputs
        self.sfreq = 1.0 / self.simulator.dt
        self.config = config

    def reset(self) -> None:
        """Back to rest (state and counters)."""
        self.simulator.reset()

    @property
    def synops(self) -> float:
        """Synaptic operations of the network since the last :meth:`reset`.

        The connection nodes' effective operations, except the output de-standardisation
        (node ``"output_scale"``, host arithmetic in bci's models), as
        :func:`~bci.models.spiking.cost.count_operations` counts.
        """
        return float(sum(ops for name, ops in self.simulator.synops_by_node.items()
                         if name != "output_scale"))

    @property
    def n_steps(self) -> int:
        """Bins decoded since the last :meth:`reset`."""
        return self.simulator.n_steps

    def step(self, counts: np.ndarray) -> np.ndarray:
        """Decode one bin: counts ``(n_chans,)`` -> outputs ``(n_outputs,)`` (float64)."""
        return self.simulator.step(self._transform(self._bin(counts)))

