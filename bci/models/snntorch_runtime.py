"""A streaming spiking decoder's NIR graph run by snnTorch's NIR importer, one bin at a time.

:class:`SnnTorchStepDecoder` hands the graph of a :class:`~bci.models.spiking.ibmi.SNNStreaming`
(as :func:`bci.hw.nir_export.to_nir` writes it) to snnTorch's ``import_from_nir`` (snnTorch >=
1.0 on nirtorch, ``pip install 'bci[bench]'``) and steps the imported module, whose neurons keep
their state between calls. Two adaptations, both exact:

- snnTorch 1.0's importer integrates with a fixed ``dt = 1e-4`` s, so every time constant of
  the graph is rescaled by ``1e-4 / dt`` (``r = tau / dt`` is unchanged): the decays per step
  ``1 - dt / tau`` are the same;
- it has no mapping for ``nir.LI``: the leaky-integrator read-out becomes a ``nir.LIF`` with an
  infinite threshold (the same membrane, never a spike), whose membrane is read after each step,
  and the output de-standardisation (node ``"output_scale"``) is applied to it on the host.

Synaptic operations are counted from the imported ``nn.Linear`` layers' actual inputs, as
:class:`~bci.models.spiking.stepping.TorchStepDecoder` counts them.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from .nir_runtime import StepDecoder, _host_transform, _meta_value, read_nir_graph

__all__ = ["SnnTorchStepDecoder", "SNNTORCH_DT"]

#: The time step (s) snnTorch 1.0's NIR importer integrates with.
SNNTORCH_DT = 1e-4


def _import_snntorch():
    try:
        import nirtorch  # noqa: F401
        from snntorch.import_nir import import_from_nir
    except ImportError as err:
        raise ImportError("The snnTorch backend needs snnTorch >= 1.0 and nirtorch: pip install "
                          "'bci[bench]'.") from err
    return import_from_nir


class SnnTorchStepDecoder(StepDecoder):
    """Step a streaming SNN's NIR graph with snnTorch's importer, one bin at a time.

    Parameters
    ----------
    graph : nir.NIRGraph | str | Path
        Graph of an ``SNNStreaming`` (``bci_model`` metadata), or its NIR file.

    Attributes
    ----------
    n_chans, n_outputs : int
        Units in, outputs out.
    sfreq : float
        Bins per second (``1 / dt`` of the graph).
    synops : float
        Synaptic operations since the last :meth:`reset`.
    n_steps : int
        Bins decoded since the last :meth:`reset`.
    """

    backend = "snntorch"

    def __init__(self, graph: Any) -> None:
        import nir

        self._import = _import_snntorch()
        if isinstance(graph, (str, Path)):
            graph = read_nir_graph(graph)
        meta = dict(getattr(graph, "metadata", None) or {})
        model = _meta_value(meta.get("bci_model", ""))
        if model != "SNNStreaming":
            raise ValueError(f"SnnTorchStepDecoder steps streaming decoders (bci_model "
                             f"'SNNStreaming'), got {model or 'a graph without bci_model'!r}.")
        dt = float(_meta_value(meta["dt"]))
        scale = SNNTORCH_DT / dt
        nodes = {}
        for name in ("input", "fc_in", "lif_hidden", "fc_out", "lif_out"):
            node = graph.nodes[name]
            if isinstance(node, nir.LI):
                node = nir.LIF(tau=node.tau * scale, r=node.r, v_leak=node.v_leak,
                               v_threshold=np.full(node.tau.shape, np.inf),
                               v_reset=np.zeros(node.tau.shape))
            elif isinstance(node, nir.CubaLIF):
                node = nir.CubaLIF(tau_syn=node.tau_syn * scale, tau_mem=node.tau_mem * scale,
                                   r=node.r, v_leak=node.v_leak, v_threshold=node.v_threshold,
                                   v_reset=node.v_reset, w_in=node.w_in)
            elif isinstance(node, nir.LIF):
                node = nir.LIF(tau=node.tau * scale, r=node.r, v_leak=node.v_leak,
                               v_threshold=node.v_threshold, v_reset=node.v_reset)
            nodes[name] = node
        n_out = graph.nodes["fc_out"].weight.shape[0]
        nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
        chain = list(nodes)
        self._graph = nir.NIRGraph(nodes=nodes, edges=list(zip(chain[:-1], chain[1:],
                                                               strict=True)))
        out = graph.nodes["output_scale"]
        self._out_weight = np.asarray(out.weight, dtype=np.float64)
        self._out_bias = np.asarray(out.bias, dtype=np.float64)
        config = json.loads(_meta_value(meta.get("bci_config", "{}")))
        self._transform = _host_transform(config.get("input_transform", "none"))
        self.n_chans = int(graph.nodes["fc_in"].weight.shape[1])
        self.n_outputs = int(self._out_weight.shape[0])
        self.sfreq = 1.0 / dt
        self.reset()

    def reset(self) -> None:
        """Back to rest: a fresh import of the graph (neuron states at zero), counters cleared."""
        import torch
        from torch import nn

        with contextlib.redirect_stdout(io.StringIO()):  # the importer prints its progress
            self.module = self._import(self._graph)
        self.synops = 0.0
        self.n_steps = 0
        for layer in self.module.modules():
            if isinstance(layer, nn.Linear):
                nonzero = (layer.weight != 0).to(torch.float32)

                def hook(module, inputs, output, nonzero=nonzero):
                    self.synops += float(((inputs[0] != 0).to(torch.float32) @ nonzero.T).sum())

                layer.register_forward_hook(hook)
        self._readout = self._find_readout()

    def _find_readout(self):
        for name, sub in self.module.named_modules():
            if name.split(".")[-1] == "lif_out":
                return sub
        raise RuntimeError("snnTorch's import has no 'lif_out' module to read the membrane "
                           "from; this snnTorch/nirtorch version names modules differently.")

    def step(self, counts: np.ndarray) -> np.ndarray:
        """Decode one bin: counts ``(n_chans,)`` -> outputs ``(n_outputs,)`` (float64)."""
        import torch

        counts = self._bin(counts)
        x = torch.as_tensor(self._transform(counts), dtype=torch.float32)[None]
        with torch.no_grad():
            self.module(x)
        self.n_steps += 1
        membrane = self._readout.mem.detach().double().numpy().reshape(-1)
        return membrane @ self._out_weight.T + self._out_bias

