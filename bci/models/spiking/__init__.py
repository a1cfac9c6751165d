"""Spiking building blocks and the spiking decoders.

- :mod:`~bci.models.spiking.surrogate`: Heaviside spikes with surrogate gradients;
- :mod:`~bci.models.spiking.neurons`: multi-step :class:`LIF` and current-based
  :class:`CubaLIF` neurons (reset variants, fixed or learnable time constants), and the
  approximate :class:`ApproxLIF` that skips updates of resting neurons;
- :mod:`~bci.models.spiking.encoders`: continuous signals to input currents or spikes;
- :mod:`~bci.models.spiking.ibmi`: velocity decoders for intracortical BMI (two SNN topologies,
  an ANN, a GRU and a linear decoder) and their training loop;
- :mod:`~bci.models.spiking.conformer`: the Spiking Conformer (convolutional front end, spiking
  self-attention blocks, approximate neurons) and its non-spiking twin, for seizure detection;
- :mod:`~bci.models.spiking.delays`: learnable synaptic delays (DCLS-style
  :class:`DelayedLinear`) and the streaming :class:`DelaySNN` velocity decoder;
- :mod:`~bci.models.spiking.output_filter`: Bessel filtering of decoder outputs (causal and
  block-bidirectional);
- :mod:`~bci.models.spiking.cost`: NeuroBench-style operation and memory accounting.

Export to neuromorphic hardware (NIR) lives in :mod:`bci.hw.nir_export`.

Written on plain torch (no SNN library at run time); snnTorch is used in the tests as a
reference for the neuron dynamics. Attributes are imported on first use.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "surrogate": ["spike", "surrogate_derivative", "surrogate_proxy"],
    "neurons": ["LIF", "ApproxLIF", "CubaLIF", "decay_from_tau"],
    "encoders": ["DeltaEncoder", "DirectEncoder", "ThresholdEncoder"],
    "ibmi": ["SNNStreaming", "SNN3D", "ANNDecoder", "GRUDecoder", "LinearDecoder",
             "IBMI_MODELS", "fit_sequence_decoder", "fit_ridge", "predict_sequences"],
    "output_filter": ["BesselFilter"],
    "cost": ["OperationCounts", "count_operations"],
    "delays": ["DelayedLinear", "DelaySNN"],
    "conformer": ["SpikingConformer", "MatMul"],
})
