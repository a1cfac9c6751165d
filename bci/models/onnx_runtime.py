"""Run an exported network decoder with ONNX Runtime, without torch.

``bci export --format onnx DECODER.bci`` (:func:`bci.hw.onnx_export.export_onnx`) writes an
*ONNX decoder file*: the decoder-file container (:mod:`bci.models.decoder`: a zip with
``manifest.json``, checksums, an optional signature) whose payload is ``model.onnx``, the
network's graph, and whose manifest holds the decoder's recording conventions (channels, rate,
window, band-pass, resampling, ``unit_factor``, classes, training amplitudes) plus an ``onnx``
entry: the network's name, opset, input and output names, input shape, the input scaling of
:class:`~bci.models.classifier.DeepClassifier` (its per-channel statistics), and the int8
quantisation, if any.

:func:`bci.load_decoder` reads such a file into an ordinary
:class:`~bci.models.decoder.Decoder` whose estimator is an :class:`OnnxClassifier`. The
preprocessing (MNE's IIR band-pass and resampling, NumPy/SciPy), the amplitude check, the
channel and rate checks of the live loop (:func:`bci.realtime.loop.check_decoder`) are those of
any decoder file, and the network runs in an ONNX Runtime session: nothing here imports torch.
ONNX Runtime is the optional extra ``bci[edge]`` (``pip install "bci[edge]"``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_epochs_array, ensure_int
from .._logging import logger
from .classifier import SCALINGS, scale_epochs

__all__ = ["OnnxClassifier", "require_onnxruntime"]

#: The pip line that installs the edge runtimes.
EDGE_INSTALL = 'pip install "bci[edge]"  (onnx, onnxruntime, onnxscript)'
#: Epochs per ONNX Runtime call in :meth:`OnnxClassifier.predict_proba` (bounds memory).
BATCH_SIZE = 256


def require_onnxruntime():
    """Import and return :mod:`onnxruntime`; ``ImportError`` with the pip line if missing."""
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError(f"Running an ONNX decoder file needs onnxruntime: {EDGE_INSTALL}."
                          ) from err
    return onnxruntime


class OnnxClassifier:
    """The network of an ONNX decoder file, run by ONNX Runtime (no torch).

    It takes what :class:`~bci.models.classifier.DeepClassifier` takes (epochs in the unit of
    the training epochs, after the decoder's band-pass) and gives the same probabilities: the
    input scaling in NumPy (:func:`~bci.models.classifier.scale_epochs`, float32), the graph in
    an ONNX Runtime session, a softmax over the logits.

    Parameters
    ----------
    model : bytes
        The serialised ONNX model (``model.onnx``).
    network : dict
        The manifest's ``onnx`` entry (see the module docstring); checked against the graph.
    n_threads : int
        ONNX Runtime intra-op threads (1: the edge case, and what the live loop wants on a busy
        machine).
    what : str
        How messages name the file.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The classifier's labels (the decoder maps them to its class names).
    n_features_in_ : int
        Channels of the input.
    n_times_ : int
        Samples per epoch of the input (after any resampling).
    model : str
        The network's name (``"EEGNeX"``...).
    scaling : str
        The input scaling (see :class:`~bci.models.classifier.DeepClassifier`).
    opset : int
        The ONNX opset of the graph.
    quantization : dict | None
        How the graph was quantised (``None``: float32).

    Raises
    ------
    ValueError
        A malformed ``onnx`` entry, a graph ONNX Runtime cannot load, or a graph whose inputs or
        outputs are not those the manifest describes (one float input ``(batch, n_chans,
        n_times)``, one output ``(batch, n_classes)``).
    ImportError
        onnxruntime is not installed (the message gives the pip line).
    """

    def __init__(self, model: bytes, network: dict, *, n_threads: int = 1,
                 what: str = "the ONNX decoder") -> None:
        self.what = what
        self._model = bytes(model)
        self._network = _check_network_entry(network, what)
        self.model = self._network["model"]
        self.classes_ = np.asarray(self._network["classes"])
        self.n_features_in_ = self._network["n_chans"]
        self.n_times_ = self._network["n_times"]
        self.scaling = self._network["scaling"]
        self.scale_mean_ = _array_or_none(self._network["scale_mean"])
        self.scale_std_ = _array_or_none(self._network["scale_std"])
        self.opset = self._network["opset"]
        self.quantization = self._network.get("quantization")
        self.n_threads = ensure_int(n_threads, "n_threads", minimum=1, what="threads")
        self._session = self._make_session()

    def _make_session(self):
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.n_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only
        try:
            session = ort.InferenceSession(self._model, options,
                                           providers=["CPUExecutionProvider"])
        except (RuntimeError, ValueError, *_ort_errors()) as err:
            raise ValueError(f"{self.what}: ONNX Runtime cannot load its graph ({err}); the file "
                             "is damaged or was exported for a newer runtime: re-export it."
                             ) from err
        self._check_graph(session)
        return session

    def _check_graph(self, session) -> None:
        """Refuse a graph whose inputs/outputs are not those of the manifest."""
        net = self._network
        inputs, outputs = session.get_inputs(), session.get_outputs()
        expected_in = f"one float input {net['input']!r} of shape (batch, {net['n_chans']}, " \
                      f"{net['n_times']})"
        shape = list(inputs[0].shape) if len(inputs) == 1 else None
        if (len(inputs) != 1 or inputs[0].name != net["input"]
                or inputs[0].type != "tensor(float)" or len(shape) != 3
                or shape[1:] != [net["n_chans"], net["n_times"]]
                or isinstance(shape[0], int) and shape[0] != 1):
            got = ", ".join(f"{i.name!r} {i.type} {_shape_text(i.shape)}" for i in inputs)
            raise ValueError(
                f"{self.what}: its ONNX graph takes {got or 'no input'}, but its manifest "
                f"describes {expected_in} (the decoder's {len(self.classes_)} classes, "
                f"{net['n_chans']} channels x {net['n_times']} samples). The graph and the "
                "manifest do not belong together: re-export the decoder with `bci export "
                "--format onnx`.")
        if isinstance(shape[0], int):  # a graph fixed to batch 1: predict one at a time
            logger.info("%s: the ONNX graph has a fixed batch of 1.", self.what)
        out_shape = list(outputs[0].shape) if len(outputs) == 1 else None
        if len(outputs) != 1 or len(out_shape) != 2 or out_shape[1] != len(self.classes_):
            got = ", ".join(f"{o.name!r} {_shape_text(o.shape)}" for o in outputs)
            raise ValueError(
                f"{self.what}: its ONNX graph gives {got or 'no output'}, but its manifest "
                f"describes one output (batch, {len(self.classes_)}) of logits; re-export the "
                "decoder with `bci export --format onnx`.")
        self._input, self._output = inputs[0].name, outputs[0].name
        self._fixed_batch = isinstance(shape[0], int)

    def set_threads(self, n_threads: int) -> OnnxClassifier:
        """Use ``n_threads`` ONNX Runtime intra-op threads from now on; returns self."""
        self.n_threads = ensure_int(n_threads, "n_threads", minimum=1, what="threads")
        self._session = self._make_session()
        return self

    def logits(self, X) -> np.ndarray:
        """Return the network's logits for epochs ``X`` ``(n_epochs, n_chans, n_times)``.

        Returns
        -------
        logits : ndarray of float32, shape (n_epochs, n_classes)
        """
        X = check_epochs_array(X, n_chans=self.n_features_in_, n_times=self.n_times_)
        Xs = scale_epochs(X, self.scaling, self.scale_mean_, self.scale_std_)
        step = 1 if self._fixed_batch else BATCH_SIZE
        out = [self._session.run([self._output], {self._input: Xs[i:i + step]})[0]
               for i in range(0, len(Xs), step)]
        return np.concatenate(out) if out else np.empty((0, len(self.classes_)), np.float32)

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (softmax of the logits), as ``DeepClassifier.predict_proba``.

        Parameters
        ----------
        X : array, shape (n_epochs, n_chans, n_times)
            Epochs in the unit of the training epochs.

        Returns
        -------
        proba : ndarray, shape (n_epochs, n_classes)
            Columns follow :attr:`classes_`.
        """
        z = self.logits(X).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """Most probable label of each epoch (from :attr:`classes_`)."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __getstate__(self):
        """Refuse to be pickled or saved: the ONNX decoder file is this decoder's file."""
        raise TypeError(
            f"An ONNX decoder ({self.model}, from {self.what}) is not re-saved or pickled: its "
            "ONNX decoder file is the file to copy or share; export again from the original "
            "decoder file with `bci export --format onnx`.")

    def __repr__(self) -> str:
        """Name the network, precision, opset, input shape and classes."""
        kind = "int8 (QDQ)" if self.quantization else "float32"
        return (f"OnnxClassifier({self.model}, {kind}, opset {self.opset}, "
                f"{self.n_features_in_} x {self.n_times_}, {len(self.classes_)} classes)")


def _ort_errors() -> tuple[type[BaseException], ...]:
    """ONNX Runtime's exception types (pybind11 classes deriving from Exception directly)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "EngineError",
             "RuntimeException", "InvalidProtobuf", "ModelLoaded", "NotImplemented",
             "InvalidGraph", "EPFail")
    return tuple(getattr(state, n) for n in names if isinstance(getattr(state, n, None), type))


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _array_or_none(values) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=float)


def _is_int(value) -> bool:
    return type(value) is int


def _check_network_entry(network: Any, what: str) -> dict:
    """Check the manifest's ``onnx`` entry (``ValueError`` naming what is malformed)."""
    problem = None
    if not isinstance(network, dict):
        problem = "no 'onnx' entry"
    elif not all(isinstance(network.get(k), str) for k in ("model", "input", "output")):
        problem = "model, input and output must be str"
    elif not all(_is_int(network.get(k)) and network[k] >= 1
                 for k in ("opset", "n_chans", "n_times")):
        problem = "opset, n_chans and n_times must be integers >= 1"
    elif not (isinstance(network.get("classes"), list) and len(network["classes"]) >= 2
              and all(isinstance(c, (str, int)) and not isinstance(c, bool)
                      for c in network["classes"])):
        problem = "classes must be a list of >= 2 labels"
    elif network.get("scaling") not in SCALINGS:
        problem = f"scaling must be one of {', '.join(SCALINGS)}"
    elif not (network.get("quantization") is None or isinstance(network["quantization"], dict)):
        problem = "quantization must be an object or null"
    else:
        n_chans = network["n_chans"]
        for key in ("scale_mean", "scale_std"):
            values = network.get(key)
            needed = network["scaling"] == "channel"
            if values is None and not needed:
                continue
            if not (isinstance(values, list) and len(values) == n_chans
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                            and math.isfinite(v) for v in values)):
                problem = (f"{key} must be {n_chans} finite numbers"
                           + (" (scaling 'channel')" if needed else " or null"))
                break
            if key == "scale_std" and min(values) <= 0:
                problem = "scale_std must be > 0"
    if problem:
        raise ValueError(f"{what} is not a valid ONNX decoder file: its manifest's onnx entry "
                         f"is malformed ({problem}).")
    return network


def onnx_estimator(manifest: dict, payload: bytes, fname: Path) -> OnnxClassifier:
    """Build the estimator of an ONNX decoder file (:func:`bci.load_decoder` calls this).

    Parameters
    ----------
    manifest : dict
        The verified manifest (:func:`bci.models._decoder_io.read_file`).
    payload : bytes
        Its ``model.onnx``.
    fname : Path
        The file, for messages.

    Returns
    -------
    estimator : OnnxClassifier
        One intra-op thread.

    Raises
    ------
    ValueError
        A malformed ``onnx`` entry, or a graph that does not match it or the decoder's channels.
    ImportError
        onnxruntime is missing.
    """
    clf = OnnxClassifier(payload, manifest.get("onnx"), what=str(fname))
    n_chans = len(manifest["decoder"]["ch_names"])
    if clf.n_features_in_ != n_chans:
        raise ValueError(f"{fname}: its ONNX graph takes {clf.n_features_in_} channels but the "
                         f"decoder lists {n_chans}; re-export the decoder.")
    if manifest.get("onnxruntime_version"):
        ort = require_onnxruntime()
        if manifest["onnxruntime_version"] != ort.__version__:
            logger.info("%s was exported and checked with onnxruntime %s; running %s.", fname,
                        manifest["onnxruntime_version"], ort.__version__)
    return clf
