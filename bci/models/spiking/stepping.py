"""Step-by-step decoding of a streaming iBMI decoder in torch: one bin in, one prediction out.

:class:`TorchStepDecoder` wraps a streaming decoder (``model.streaming`` is True, e.g.
:class:`~bci.models.spiking.ibmi.SNNStreaming`) and keeps its neuron state between calls of
:meth:`~TorchStepDecoder.step`, through the model's own
``forward_sequence(x, state, return_state=True)``: each call runs one bin, never the history.
Stepping a sequence bin by bin equals ``forward_sequence`` of the whole sequence (to float
rounding). It also counts the synaptic operations actually performed at every connection layer
(a non-zero input times a non-zero weight, the effective operations of
:func:`~bci.models.spiking.cost.count_operations`), from forward hooks on the ``nn.Linear``
layers, so the count follows the real spikes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..nir_runtime import StepDecoder

__all__ = ["TorchStepDecoder"]


class TorchStepDecoder(StepDecoder):
    """Run a streaming decoder one bin at a time, keeping its state.

    Parameters
    ----------
    model : nn.Module
        A streaming iBMI decoder (``streaming = True`` and ``forward_sequence(x, state,
        return_state=True)``, e.g. :class:`~bci.models.spiking.ibmi.SNNStreaming`); put in
        evaluation mode (dropout off); its weights are not changed.
    dtype : torch.dtype
        Precision of the computation (``torch.float64`` is the model's maths without float32
        rounding; the model is copied to it, the caller's model is left as is).

    Attributes
    ----------
    n_chans, n_outputs : int
        Units in, outputs out.
    sfreq : float
        Bins per second.
    synops : float
        Synaptic operations since the last :meth:`reset`.
    n_steps : int
        Bins decoded since the last :meth:`reset`.
    """

    backend = "torch"

    def __init__(self, model: nn.Module, *, dtype: torch.dtype = torch.float32) -> None:
        if not isinstance(model, nn.Module) or not getattr(model, "streaming", False):
            raise TypeError(f"TorchStepDecoder steps streaming decoders (e.g. SNNStreaming, "
                            f"model.streaming is True), got {type(model).__name__}; windowed "
                            "decoders re-read a window per prediction.")
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}.")
        import copy

        self.model = copy.deepcopy(model).to(dtype).eval()
        self.dtype = dtype
        self.n_chans = int(model.n_chans)
        self.n_outputs = int(model.n_outputs)
        self.sfreq = float(model.sfreq)
        self._linears = [m for m in self.model.modules() if isinstance(m, nn.Linear)]
        self._nonzero = [(m.weight != 0).to(dtype) for m in self._linears]
        for k, layer in enumerate(self._linears):
            layer.register_forward_hook(self._counter(k))
        self.reset()

    def _counter(self, k: int):
        def hook(module, inputs, output):
            x = inputs[0]
            self.synops += float(((x != 0).to(self.dtype) @ self._nonzero[k].T).sum())
        return hook

    def reset(self) -> None:
        """Back to rest (state and counters)."""
        self._state = None
        self.synops = 0.0
        self.n_steps = 0

    def step(self, counts: np.ndarray) -> np.ndarray:
        """Decode one bin: counts ``(n_chans,)`` -> outputs ``(n_outputs,)`` (float64)."""
        counts = self._bin(counts)
        x = torch.as_tensor(counts, dtype=self.dtype).view(1, self.n_chans, 1)
        with torch.no_grad():
            out, self._state = self.model.forward_sequence(x, self._state, return_state=True)
        self.n_steps += 1
        return out[0, :, 0].double().numpy()

