"""Hardware: stimulator back-ends behind :class:`bci.realtime.stimulation.Stimulator`.

- :class:`LSLMarkerStimulator` (default): a marker on an LSL stream for the stimulation
  device's own software;
- :class:`AudioToneStimulator`: a short tone or pink-noise burst on the sound card;
- :class:`SerialTriggerStimulator`: a trigger byte on a serial port / USB-TTL adapter.

Amplifiers: :mod:`~bci.hw.brainflow` reads a BrainFlow board (:class:`BrainFlowSource`) or
publishes it on LSL (:func:`acquire`, ``bci acquire``); needs ``bci[brainflow]``.

Neuromorphic hardware: :mod:`~bci.hw.nir_export` writes the spiking decoders as NIR graphs
(:func:`to_nir`, :func:`save_nir`) and reads them back (:func:`from_nir`, :func:`load_nir`);
needs ``bci[nir]``.

Edge runtimes: :func:`export_onnx` (:mod:`~bci.hw.onnx_export`) writes a network decoder as an
ONNX decoder file (float32 or static int8) that :func:`bci.load_decoder` runs with ONNX Runtime,
without torch; needs ``bci[edge]``.

:func:`make_stimulator` builds one from a command-line spec.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "lsl_marker": ["LSLMarkerStimulator"],
    "audio": ["AudioToneStimulator", "make_tone"],
    "serial_trigger": ["SerialTriggerStimulator"],
    "factory": ["make_stimulator", "parse_stimulator"],
    "brainflow": ["BrainFlowSource", "BoardPublisher", "acquire", "board_names"],
    "nir_export": ["to_nir", "from_nir", "save_nir", "load_nir", "graph_input",
                   "NIR_EXPORTABLE"],
    "onnx_export": ["export_onnx", "training_epochs"],
})
