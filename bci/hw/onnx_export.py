"""Export network decoders to ONNX (float32 or static int8) for ONNX Runtime on edge devices.

:func:`export_onnx` turns a decoder file holding a network (``bci train --model EEGNeX``...;
EEGNeX, EEGNet, ShallowConvNet, the SpikingConformer and its non-spiking twin) into an *ONNX
decoder file*: the same container as a decoder file (manifest with channels, rate, window,
band-pass, resampling, ``unit_factor``, classes, training amplitudes; checksums; an optional
signature) holding the network's ONNX graph instead of torch weights. :func:`bci.load_decoder`
reads it into a :class:`~bci.models.decoder.Decoder` that runs the graph with ONNX Runtime
(:class:`~bci.models.onnx_runtime.OnnxClassifier`) and never imports torch, so ``bci stream
--decoder FILE`` runs it as it runs any decoder file.

How the graph is made:

- ``torch.onnx.export(..., dynamo=True)`` (the ``torch.export``-based exporter; it needs
  ``onnxscript``) at opset :data:`OPSET` (18: supported by ONNX Runtime >= 1.14 and by its
  quantisation tools), with a dynamic batch axis: input ``x`` ``(batch, n_chans, n_times)``
  float32, output the logits ``(batch, n_classes)``. The input scaling of
  :class:`~bci.models.classifier.DeepClassifier` (per-channel statistics) and the softmax stay
  outside the graph, in NumPy, so the float32 graph computes exactly the network.
- every export is checked: ONNX Runtime's probabilities must equal torch's to
  :data:`PARITY_ATOL` on random windows, or the export is refused.
- a network with a module ONNX cannot express is refused with a ``ValueError`` naming the
  module (its path in the network and its type), found by exporting its sub-modules one by one.
- ``int8=True``: static quantisation with ONNX Runtime (:func:`onnxruntime.quantization.
  quantize_static`): QDQ format, int8 weights per output channel, uint8 activations, ranges
  calibrated on training windows, at least :data:`MIN_CALIBRATION_WINDOWS` of them; by
  default (:data:`INT8_DEFAULT_CALIBRATION`, :data:`INT8_DEFAULT_KEEP_FLOAT`) percentile
  ranges with the first weighted node (the temporal convolution) kept in float32, the variant
  that changed the fewest decisions of torch's on real data (README, "int8 options compared");
  ``int8_calibration="minmax", int8_keep_float=()`` quantises every node with min/max ranges.
  Spiking networks are refused (8-bit activations move membrane potentials across the firing
  threshold).

ONNX, ONNX Runtime and onnxscript are the optional extra ``bci[edge]``.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._checks import (
    check_bool,
    check_epochs_array,
    check_option,
    check_type,
    did_you_mean,
    ensure_int,
)
from .._logging import logger
from ..models._decoder_io import (
    FORMAT_VERSION,
    ONNX_FORMAT_NAME,
    ONNX_PAYLOAD,
    signer_for,
    write_file,
)
from ..models.decoder import Decoder
from ..models.onnx_runtime import EDGE_INSTALL, OnnxClassifier

__all__ = ["INT8_CALIBRATIONS", "MIN_CALIBRATION_WINDOWS", "OPSET", "export_onnx",
           "training_epochs"]

#: ONNX opset of the exported graphs.
OPSET = 18
#: Largest difference of probabilities between torch and ONNX Runtime (float32) accepted when
#: exporting (float32 rounding gives ~1e-7).
PARITY_ATOL = 1e-5
#: Fewest calibration windows a static int8 quantisation accepts: min/max ranges from fewer
#: windows miss the amplitudes of the next ones.
MIN_CALIBRATION_WINDOWS = 16
#: Windows of the parity check made at export.
_N_PARITY = 8


def _require_edge():
    """Import onnx, onnxruntime and onnxscript; ``ImportError`` with the pip line if missing."""
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401 - torch.onnx.export(dynamo=True) needs it
    except ImportError as err:
        raise ImportError(f"Exporting to ONNX needs {err.name}: {EDGE_INSTALL}.") from err
    return onnx, onnxruntime


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's chatter (missing torchvision ops, a torch FutureWarning)."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export")]
    levels = [lg.level for lg in loggers]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels, strict=True):
                lg.setLevel(level)


class _QuantizerNoise(logging.Filter):
    """Drop onnxruntime.quantization's per-channel notes about BatchNorm vectors (root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is out-of-range for weight" not in record.getMessage()


def _graph_bytes(module, example, opset: int) -> bytes:
    """ONNX bytes of ``module`` on ``example`` args, batch axis dynamic (may raise)."""
    import torch

    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} for _ in example)
    with _quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(module, tuple(example), dynamo=True, opset_version=opset,
                                    dynamic_shapes=dynamic, verbose=False,
                                    input_names=["x"] if len(example) == 1 else None,
                                    output_names=["logits"] if len(example) == 1 else None)
    return program.model_proto.SerializeToString()


def _culprit(model, example, opset: int) -> tuple[str, str, str]:
    """Find the deepest sub-module that does not export: (path, type name, error)."""
    import torch

    inputs: dict[str, tuple] = {}

    def recorder(name: str):
        def hook(module, args, output) -> None:  # returns None: the output is unchanged
            inputs.setdefault(name, args)

        return hook

    hooks = [module.register_forward_hook(recorder(name))
             for name, module in model.named_modules() if name]
    try:
        with torch.no_grad():
            model(*example)
    finally:
        for hook in hooks:
            hook.remove()
    path, module, message = "", model, ""
    while True:
        for name, child in module.named_children():
            full = f"{path}.{name}" if path else name
            args = inputs.get(full)
            if not args or not all(isinstance(a, torch.Tensor) and a.ndim >= 1 for a in args):
                continue
            try:
                _graph_bytes(child, args, opset)
            except torch.onnx.OnnxExporterError as err:
                path, module, message = full, child, _first_line(err)
                break
        else:
            return path, type(module).__name__, message


def _first_line(err: BaseException) -> str:
    """Return the most telling line of an exporter error (the op without ONNX function)."""
    text = str(err)
    for line in text.splitlines():
        if "No ONNX function" in line or "DispatchError" in line or "Unsupported" in line:
            return line.strip()[:300]
    return text.strip().splitlines()[0][:300] if text.strip() else type(err).__name__


def _export_network(model, n_chans: int, n_times: int, opset: int) -> bytes:
    """Export a network to ONNX bytes; a module ONNX cannot express raises ``ValueError``."""
    import torch

    gen = torch.Generator().manual_seed(0)
    example = (torch.randn(2, n_chans, n_times, generator=gen),)  # batch 2: stays dynamic
    try:
        return _graph_bytes(model, example, opset)
    except torch.onnx.OnnxExporterError as err:
        path, kind, message = _culprit(model, example, opset)
        where = f"its module {path!r} ({kind})" if path else f"its own forward ({kind})"
        raise ValueError(
            f"{type(model).__name__} cannot be exported to ONNX (opset {opset}): {where} uses "
            f"an operation ONNX cannot express ({message or _first_line(err)}). Keep this "
            "decoder on torch (bci stream runs the decoder file), or replace that module."
        ) from err


def _check_parity(model, clf: OnnxClassifier, scaled: np.ndarray) -> float:
    """Largest |torch - ONNX Runtime| probability on scaled windows; refuse above tolerance."""
    import torch

    with torch.no_grad():
        ref = torch.softmax(model(torch.as_tensor(scaled, dtype=torch.float32)), 1).numpy()
    z = clf._session.run([clf._output], {clf._input: scaled.astype(np.float32)})[0]
    z = z.astype(np.float64) - z.max(axis=1, keepdims=True)
    got = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    diff = float(np.max(np.abs(got - ref)))
    if not diff <= PARITY_ATOL:
        raise RuntimeError(
            f"The exported {type(model).__name__} does not compute what torch computes: "
            f"probabilities differ by up to {diff:.3g} (> {PARITY_ATOL:g}) on random windows. "
            "This is a defect of the exporter for this network: please report it; the decoder "
            "file still runs with torch.")
    return diff


#: Calibration methods of ONNX Runtime's static quantisation (``int8_calibration``).
INT8_CALIBRATIONS = ("minmax", "entropy", "percentile")
#: Default calibration method of ``export_onnx(int8=True)`` and ``bci export --int8``.
INT8_DEFAULT_CALIBRATION = "percentile"
#: Default nodes left in float32 by ``export_onnx(int8=True)`` and ``bci export --int8``.
INT8_DEFAULT_KEEP_FLOAT = ("first",)
#: Weighted node kinds: ``int8_keep_float``'s "first" keeps the first of them (the temporal
#: convolution of the EEG networks) and every node before it in float32, so that the scaled
#: EEG enters it unquantised; "last" the last one (the classifier) and every node after it.
_WEIGHTED_OPS = ("Conv", "Gemm", "MatMul", "ConvTranspose")


def _resolve_keep_float(model_path: Path, keep_float: tuple[str, ...]) -> list[str]:
    """Node names of ``keep_float`` ("first", "last" or node names) in the graph at the path."""
    import onnx

    nodes = list(onnx.load(str(model_path)).graph.node)  # topologically sorted
    weighted = [k for k, n in enumerate(nodes) if n.op_type in _WEIGHTED_OPS]
    names = {n.name for n in nodes}
    resolved: list[str] = []
    for entry in keep_float:
        if entry in ("first", "last"):
            if not weighted:
                raise ValueError(f"int8_keep_float={entry!r}: the graph has no weighted node "
                                 f"({', '.join(_WEIGHTED_OPS)}).")
            span = nodes[:weighted[0] + 1] if entry == "first" else nodes[weighted[-1]:]
            resolved += [n.name for n in span]
        elif entry in names:
            resolved.append(entry)
        else:
            raise ValueError(
                f"int8_keep_float names node {entry!r}, which the graph does not hold; give "
                f"'first', 'last' or node names, e.g. its weighted nodes "
                f"{', '.join(nodes[k].name for k in weighted)}."
                f"{did_you_mean(entry, sorted(names))}")
    return list(dict.fromkeys(resolved))


def _quantize(model_bytes: bytes, calibration: np.ndarray, input_name: str, *,
              method: str = "minmax", keep_float: tuple[str, ...] = ()
              ) -> tuple[bytes, list[str]]:
    """Quantise statically to QDQ int8 (per-channel int8 weights, uint8 activations).

    Returns the int8 graph and the names of the nodes left in float32.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Windows(CalibrationDataReader):
        def __init__(self) -> None:
            self._left = iter(range(len(calibration)))

        def get_next(self):
            i = next(self._left, None)
            return None if i is None else {input_name: calibration[i:i + 1]}

    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    root = logging.getLogger()
    noise = _QuantizerNoise()
    with tempfile.TemporaryDirectory(prefix="bci-onnx-") as tmp:
        src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(model_bytes)
        root.addFilter(noise)
        try:
            quant_pre_process(str(src), str(pre))
            excluded = _resolve_keep_float(pre, keep_float)
            quantize_static(str(pre), str(out), _Windows(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            per_channel=True, calibrate_method=calibrate,
                            nodes_to_exclude=excluded)
        finally:
            root.removeFilter(noise)
        return out.read_bytes(), excluded


def _spiking_module(model) -> str | None:
    """Path and type of the first spiking-neuron module of a network, or None."""
    from ..models.spiking.neurons import LIF

    for name, module in model.named_modules():
        if isinstance(module, LIF):
            return f"{name!r} ({type(module).__name__})"
    return None


def export_onnx(decoder: Decoder, fname: str | Path, *, int8: bool = False,
                calibration: Any = None, int8_calibration: str = INT8_DEFAULT_CALIBRATION,
                int8_keep_float: Any = INT8_DEFAULT_KEEP_FLOAT, opset: int = OPSET,
                key: Any = None) -> Path:
    """Write an ONNX decoder file (float32, or static int8 with ``int8=True``).

    Parameters
    ----------
    decoder : Decoder
        A decoder holding a network (``bci train --model``; its estimator a fitted
        :class:`~bci.models.classifier.DeepClassifier`).
    fname : str | Path
        Destination (e.g. ``decoder-onnx.bci``); parent folders are created; written
        atomically.
    int8 : bool
        Quantise the graph (QDQ, per-channel int8 weights, uint8 activations) with ranges
        calibrated on ``calibration``.
    calibration : array, shape (n_windows, n_chans, n_times) | None
        With ``int8``: training windows as the decoder's estimator takes them (after the
        decoder's band-pass and resampling, in volts x ``unit_factor``: what
        :func:`training_epochs` loads, or ``decoder.preprocess(raw_windows)``); at least
        :data:`MIN_CALIBRATION_WINDOWS`.
    int8_calibration : {"minmax", "entropy", "percentile"}
        How ONNX Runtime sets the activation ranges from the calibration windows: their
        minimum and maximum, the range minimising the KL divergence of the histogram
        (entropy), or the 99.999th percentile of absolute values (percentile, the default:
        :data:`INT8_DEFAULT_CALIBRATION`).
    int8_keep_float : sequence of str
        Nodes left in float32 (ONNX Runtime's ``nodes_to_exclude``): ``"first"`` (the first
        weighted node, the temporal convolution that reads the scaled EEG, and the reshapes
        before it: the EEG enters it unquantised), ``"last"`` (the last weighted node, the
        classifier, and what follows it) or node names of the graph. Empty: every node int8.
        Default ``("first",)`` (:data:`INT8_DEFAULT_KEEP_FLOAT`); with
        ``int8_calibration="minmax"`` and ``()``, the full int8 graph of min/max ranges.
    opset : int
        ONNX opset (default :data:`OPSET`).
    key : bytes | str | Path | None
        Sign the file (see :func:`bci.models.decoder.save_decoder`).

    Returns
    -------
    fname : Path

    Raises
    ------
    TypeError
        Not a :class:`Decoder`, or its estimator is not a network (scikit-learn pipelines have
        another export).
    ValueError
        A module ONNX cannot express (named), a filter-bank decoder, ``calibration`` missing,
        malformed or with fewer than :data:`MIN_CALIBRATION_WINDOWS` windows, or int8 for a
        spiking network.
    RuntimeError
        ONNX Runtime's float32 probabilities differ from torch's by more than
        :data:`PARITY_ATOL` (an exporter defect).
    ImportError
        onnx, onnxruntime or onnxscript is missing (``pip install "bci[edge]"``).
    """
    check_type(decoder, Decoder, "decoder")
    int8 = check_bool(int8, "int8")
    opset = ensure_int(opset, "opset", minimum=13, what="ONNX opset")
    int8_calibration = check_option("int8_calibration", int8_calibration, INT8_CALIBRATIONS)
    if isinstance(int8_keep_float, str):
        int8_keep_float = [int8_keep_float]
    int8_keep_float = tuple(check_type(n, str, "each int8_keep_float entry")
                            for n in check_type(int8_keep_float, (list, tuple),
                                                "int8_keep_float"))
    clf = decoder.estimator
    if isinstance(clf, OnnxClassifier):
        raise TypeError(f"This decoder is already an ONNX decoder ({clf!r}); export the "
                        "original decoder file (bci train --model ...).")
    if not callable(getattr(clf, "_network_state", None)):
        raise TypeError(
            f"export_onnx exports network decoders (`bci train --model EEGNeX` ...); this "
            f"decoder holds a {type(clf).__name__}. A scikit-learn pipeline has its own "
            "portable export (`bci export --format numpy`).")
    if len(decoder.filters) > 1:
        raise ValueError("export_onnx exports single-band network decoders; this decoder has "
                         f"a filter bank of {len(decoder.filters)} bands.")
    onnx, ort = _require_edge()
    import torch
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(clf, "model_")
    model = clf.model_.eval()
    n_chans, n_times = int(clf.n_features_in_), int(clf.n_times_)
    if int8:
        spiking = _spiking_module(model)
        if spiking:
            raise ValueError(
                f"int8 quantisation of {type(model).__name__} is refused: its module {spiking} "
                "fires when a membrane potential crosses a threshold, and 8-bit activations "
                "move potentials across it. Export it in float32 (without --int8).")
        if calibration is None:
            raise ValueError(
                "int8 needs calibration windows (the training windows, as the decoder's "
                f"estimator takes them: shape (n_windows, {n_chans}, {n_times})); pass "
                "calibration=training_epochs(decoder), or `bci export --int8 --calibration "
                "FILE.npy`.")
        calibration = check_epochs_array(calibration, name="calibration", n_chans=n_chans,
                                         n_times=n_times)
        if len(calibration) < MIN_CALIBRATION_WINDOWS:
            raise ValueError(
                f"calibration holds {len(calibration)} windows; static int8 quantisation needs "
                f">= {MIN_CALIBRATION_WINDOWS} (ranges fitted on fewer miss the amplitudes of "
                "the next windows). Give more training windows (more subjects or runs).")
    graph = _export_network(model, n_chans, n_times, opset)
    name = type(model).__name__
    network = {
        "model": name, "opset": opset, "input": "x", "output": "logits",
        "n_chans": n_chans, "n_times": n_times, "classes": clf.classes_.tolist(),
        "scaling": clf.scaling, "scale_mean": _list_or_none(clf.scale_mean_),
        "scale_std": _list_or_none(clf.scale_std_), "quantization": None,
    }
    fp32 = OnnxClassifier(graph, network, what=f"the exported {name}")
    gen = np.random.default_rng(0)
    parity = _check_parity(model, fp32, gen.standard_normal((_N_PARITY, n_chans, n_times)))
    network["parity_max_abs_diff"] = parity
    payload = graph
    if int8:
        from ..models.classifier import scale_epochs

        scaled = scale_epochs(calibration, clf.scaling, clf.scale_mean_, clf.scale_std_)
        payload, kept = _quantize(graph, scaled, "x", method=int8_calibration,
                                  keep_float=int8_keep_float)
        quantization = {"format": "QDQ", "weights": "int8 per channel", "activations": "uint8",
                        "calibration": int8_calibration, "n_windows": int(len(calibration)),
                        "keep_float": list(int8_keep_float), "float32_nodes": kept}
        q = OnnxClassifier(payload, {**network, "quantization": quantization},
                           what=f"the int8 {name}")
        agree = np.mean(q.predict(calibration) == fp32.predict(calibration))
        quantization["agreement_with_float32"] = round(float(agree), 4)
        network["quantization"] = quantization
    import sklearn

    manifest = {
        "format": ONNX_FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bci_version": __version__,
        "sklearn_version": sklearn.__version__,
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": ort.__version__,
        "payload": ONNX_PAYLOAD,
        "decoder": _decoder_entry(decoder),
        "onnx": network,
    }
    fname = Path(fname)
    write_file(fname, manifest, ONNX_PAYLOAD, payload, signer_for(key))
    logger.info("Exported %s to %s (ONNX opset %d, %s, %d bytes)", name, fname, opset,
                "int8 QDQ" if int8 else "float32", len(payload))
    return fname


def _list_or_none(values) -> list[float] | None:
    return None if values is None else [float(v) for v in values]


def _decoder_entry(decoder: Decoder) -> dict:
    """Return the decoder's conventions, as a decoder file's manifest holds them."""
    from dataclasses import asdict

    meta = asdict(decoder)
    meta.pop("estimator")
    return meta


def _dataset_name(name: Any) -> Any:
    """Return the dataset class name for a code ``bci train`` records (PhysionetMotorImagery)."""
    from ..data.loaders import _moabb_datasets, list_datasets

    if not isinstance(name, str) or name in list_datasets():
        return name
    for cls_name, cls in _moabb_datasets().items():
        if cls_name[:5].lower() == name[:5].lower():
            try:
                if cls().code == name:
                    return cls_name
            except (TypeError, ValueError):  # a class that needs arguments is not it
                continue
    return name


def training_epochs(decoder: Decoder, *, dataset: Any = None, subjects: Any = None,
                    dataset_params: dict | None = None) -> np.ndarray:
    """Load a decoder's training windows, as its estimator takes them (for int8 calibration).

    The dataset, paradigm and subjects recorded in ``decoder.info`` by ``bci train`` (or those
    given) are loaded through the same MOABB paradigm, with the decoder's band-pass, window and
    resampling, in volts x ``unit_factor``.

    Parameters
    ----------
    decoder : Decoder
        A decoder trained by ``bci train`` (its ``info`` names dataset, paradigm, subjects).
    dataset : str | None
        Another dataset (default: the decoder's).
    subjects : sequence of int | None
        Subjects (default: the decoder's training subjects).
    dataset_params : dict | None
        Dataset parameters (e.g. ``{"feet_runs": []}`` for PhysionetMI).

    Returns
    -------
    X : ndarray, shape (n_windows, n_chans, n_times)

    Raises
    ------
    ValueError
        The decoder's info does not name a dataset or paradigm, or the loaded windows do not
        match the decoder (channels, samples).
    FileNotFoundError
        The dataset's files are missing (the message says where they are expected).
    """
    import inspect

    from ..data.loaders import get_dataset, get_paradigm, load_band_epochs, skip_unused_runs

    check_type(decoder, Decoder, "decoder")
    info = decoder.info or {}
    dataset = dataset if dataset is not None else info.get("dataset")
    paradigm_name = info.get("paradigm")
    if dataset is None or paradigm_name is None:
        raise ValueError("The decoder's info names no training dataset or paradigm (it was not "
                         "made by `bci train`); give the calibration windows yourself "
                         "(`bci export --calibration FILE.npy`).")
    dataset = get_dataset(_dataset_name(dataset), **(dataset_params or {}))
    offset = float(dataset.interval[0])
    params: dict[str, Any] = {"tmin": decoder.tmin - offset, "tmax": decoder.tmax - offset,
                              "resample": decoder.resample}
    accepted = inspect.signature(get_paradigm(paradigm_name).__class__.__init__).parameters
    if decoder.filters and "fmin" in accepted:
        params["fmin"], params["fmax"] = decoder.filters[0]
    if "n_classes" in accepted:
        params["n_classes"] = len(decoder.classes)
    paradigm = get_paradigm(paradigm_name, **params)
    subjects = list(subjects if subjects is not None else info.get("subjects") or [])
    epochs = load_band_epochs(skip_unused_runs(dataset, paradigm), paradigm,
                              subjects or None)[0]
    X = epochs.get_data(copy=True) * dataset.unit_factor
    n_times = int(decoder.estimator.n_times_)
    if list(epochs.ch_names) != list(decoder.ch_names) or X.shape[2] != n_times:
        raise ValueError(
            f"The windows loaded from {dataset.code} ({X.shape[1]} channels x {X.shape[2]} "
            f"samples) do not match the decoder ({decoder.n_chans} channels x {n_times}); "
            "give the calibration windows yourself (`bci export --calibration FILE.npy`).")
    logger.info("Loaded %d calibration windows from %s, subjects %s", len(X), dataset.code,
                subjects)
    return X
