"""Decoder files: a fitted decoder plus everything a real-time loop needs to use it alone.

A decoder file is a zip archive holding ``manifest.json`` (format version, ``bci``,
scikit-learn and skops versions, channel names, sampling rate, window, class names,
preprocessing, checksums, an optional signature) and one payload:

- ``estimator.skops`` (format 3): a fitted scikit-learn pipeline in skops' secure format
  (:mod:`skops.io`): plain data and the names of the types to rebuild, no pickle. Loading rebuilds
  only types it trusts: skops' defaults (scikit-learn estimators, numpy) and
  :data:`TRUSTED_TYPES` (bci's transformers and the pyRiemann, MOABB and scikit-learn parts of
  the registered pipelines); any other type is refused by name before anything is built.
- ``network.pt`` (format >= 2): the weights (``state_dict``) of a network trained by
  :class:`~bci.models.classifier.DeepClassifier`; the manifest's ``network`` entry holds the
  model name, its config (``model.get_config()``), the input scaling and the classifier's
  settings. It is loaded with torch alone (``torch.load(weights_only=True)``, no pickle, no
  Lightning), so the real-time loop takes networks and pipelines alike.
- ``arrays.npz`` (format 3, ``bci export --format numpy``): the fitted arrays of a covariance
  pipeline (``.npy`` members, numbers only) and, in the manifest's ``numpy_runtime`` entry, its
  steps; :mod:`bci.models.numpy_runtime` evaluates them with NumPy alone (no scikit-learn, no
  pyRiemann) and saving such a decoder writes a NumPy decoder file again.
- ``estimator.joblib`` (formats 1 and 2, no longer written): a pickle, which can run any code
  while it loads. It is read only with ``load_decoder(path, trust=True)``, which warns; re-save
  such a decoder to convert it to format 3.

The payload a file may hold is decided by its format and version, never by the manifest alone: a
network file, or a format-3 file, never leads to unpickling.

Integrity and authenticity:

- the archive's zip directory is checked before anything is decompressed (member names and
  count, declared sizes, compression ratios), and members are read with bounded readers, so a
  zip bomb is refused in milliseconds;
- ``sha256`` (format 3) is the SHA-256 of the canonical manifest (sorted-key JSON without
  ``sha256`` and ``signature``) and the payload: editing the classes, the channel order,
  ``unit_factor`` or any other entry is detected, as is a damaged payload. Format-1/2 files only
  checksum their payload;
- a checksum detects accidents, not attackers (anyone can recompute it). Labs that share
  decoders sign them: ``save_decoder(..., key=...)`` adds a ``signature`` over the same digest,
  with a lab key (HMAC-SHA256, a secret shared by those who sign and verify; also from the
  environment variable ``BCI_DECODER_KEY``) or an Ed25519 private key (``bci[sign]``; whoever
  holds the public key verifies but cannot sign). ``load_decoder(..., key=...)`` verifies it and,
  by default when a key is given, refuses unsigned files. :func:`generate_key` makes keys.

Loading checks the format version too, so a file from an incompatible version or a damaged file
fails with a clear ``ValueError`` instead of predicting garbage.

Network files (:func:`save_network`, :func:`load_network`) use the same container for a trained
network alone (manifest format ``"bci-network"``, model name and config, ``network.pt``), for
networks that are not classifiers of raw windows, such as the iBMI velocity decoders; ``bci
export`` reads them.

This module holds the decoder itself and the functions that save and load it. How a file is
laid out, written and read back safely (the payloads each format may hold, the bounded zip
reading, checksums, signature verification, skops, pickle and torch payloads, the checks of
the manifest's fields) lives in the private module :mod:`bci.models._decoder_io`, which never
imports this one; :data:`FORMAT_VERSION` and :data:`TRUSTED_TYPES` are defined there and
re-exported here. Keys and signatures are in :mod:`bci.models._signing`.
"""

from __future__ import annotations

import io
import json
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._checks import check_epochs_array
from .._logging import logger
from ._decoder_io import (
    FORMAT_NAME,
    FORMAT_VERSION,
    NETWORK_FORMAT_NAME,
    NETWORK_PAYLOAD,
    ONNX_PAYLOAD,
    SKOPS_PAYLOAD,
    TRUSTED_TYPES,
    check_trusted_types,
    decoder_meta,
    dump_pipeline,
    load_pickle,
    load_pipeline,
    read_file,
    signer_for,
    torch_weights,
    untrusted_types,
    write_file,
)
from ._signing import generate_key

__all__ = ["FORMAT_VERSION", "TRUSTED_TYPES", "Decoder", "apply_channel_map", "generate_key",
           "load_decoder", "load_network", "network_info", "save_decoder", "save_network"]

#: Windows whose amplitude (:meth:`Decoder.amplitude_ratio`) is this many times above or below
#: the training range are refused: that is a unit mistake (1e3 mV, 1e6 µV), not EEG.
AMPLITUDE_REFUSE = 100.0
#: Beyond this ratio a warning is logged (artefacts, a loose electrode, another amplifier).
AMPLITUDE_WARN = 10.0
#: Seconds between two amplitude warnings of one decoder (real-time loops call it ~10 x per s).
AMPLITUDE_WARN_EVERY_S = 10.0


@dataclass
class Decoder:
    """A fitted decoder with the recording conventions it was trained under.

    Parameters
    ----------
    estimator : sklearn estimator
        Fitted; takes preprocessed epochs ``(n_epochs, n_chans, n_times)`` (filter-bank
        decoders: ``(n_epochs, n_chans, n_times, n_bands)``).
    ch_names : list of str
        Channels, in the order the estimator expects.
    sfreq : float
        Sampling rate (Hz) of the raw windows given to :meth:`predict`.
    tmin, tmax : float
        Window start and end (s) relative to the cue, as in training; a window holds
        ``n_times = round((tmax - tmin) * sfreq) + 1`` samples.
    classes : list of str
        Class names, in the order of :meth:`predict_proba`'s columns.
    filters : list of (float | None, float | None)
        Band-pass filter(s) (Hz) applied to raw windows: MNE's 4th-order Butterworth IIR,
        zero-phase, as MOABB's paradigms apply. Several bands make a filter bank.
    resample : float | None
        Sampling rate (Hz) the windows are resampled to after filtering, if any.
    unit_factor : float
        Raw windows in volts are multiplied by this before the estimator (MOABB trains on
        ``volts * dataset.unit_factor``, i.e. µV for EEG).
    info : dict
        Provenance: dataset, paradigm, pipeline, subjects, versions, creation time.
    train_amplitude : list of float | None
        Median absolute amplitude of each channel over the preprocessed training epochs, in the
        estimator's unit (volts x ``unit_factor``, after the band-pass; filter banks: over all
        bands). :meth:`preprocess` compares windows with it and refuses those that are
        :data:`AMPLITUDE_REFUSE` times larger or smaller (a unit mistake: µV given for V, raw
        counts...), and warns (at most every :data:`AMPLITUDE_WARN_EVERY_S` seconds) beyond
        :data:`AMPLITUDE_WARN`. None (files written before bci recorded it): not checked.
    channel_map : dict | None
        Decoders fine-tuned from a pretrained NeuroGPT (:func:`bci.pipelines.train.
        train_decoder` with ``pretrained=``): how the windows reach the network's channels,
        applied last by :meth:`preprocess` (:func:`apply_channel_map`): ``channels`` (the
        model's channel names), ``picks`` (per model channel, the index of its channel in
        :attr:`ch_names`, -1 when absent: a row of zeros, which the network masks),
        ``center``/``scale`` (per model channel, the robust statistics of the training
        epochs: median and IQR / 1.349, fixed, so that a live window is scaled exactly as the
        training epochs) and ``clip``. None: windows go to the estimator as they are.
    """

    estimator: Any
    ch_names: list[str]
    sfreq: float
    tmin: float
    tmax: float
    classes: list[str]
    filters: list[tuple[float | None, float | None]] = field(default_factory=list)
    resample: float | None = None
    unit_factor: float = 1.0
    info: dict = field(default_factory=dict)
    train_amplitude: list[float] | None = None
    channel_map: dict | None = None

    @property
    def n_chans(self) -> int:
        """Number of channels a window must have."""
        return len(self.ch_names)

    @property
    def n_times(self) -> int:
        """Number of samples (at :attr:`sfreq`) a raw window must have."""
        return int(round((self.tmax - self.tmin) * self.sfreq)) + 1

    def preprocess(self, X) -> np.ndarray:
        """Filter and resample raw windows as the training epochs were.

        Each band of :attr:`filters` is applied to the window with MNE's IIR filter (4th-order
        Butterworth, zero-phase), the filter MOABB's paradigms apply to the continuous
        recording; filter banks stack the bands on a last axis, as MOABB's filter-bank arrays.
        The filtered windows are then checked against :attr:`train_amplitude`.

        Parameters
        ----------
        X : array, shape (n_epochs, n_chans, n_times) or (n_chans, n_times)
            Raw windows in volts (floating point) at :attr:`sfreq`, channels in
            :attr:`ch_names` order. Not modified.

        Returns
        -------
        Xp : ndarray, shape (n_epochs, n_chans, n_times_out[, n_bands])
            What the estimator takes (a last axis of bands for filter-bank decoders).

        Raises
        ------
        TypeError
            Integer or boolean windows (raw ADC counts?): convert them to volts first.
        ValueError
            Wrong shape, no window, NaN/inf samples, or amplitudes :data:`AMPLITUDE_REFUSE`
            times off the training range (the message names the likely unit mistake).
        """
        from mne.filter import create_filter, resample

        X = self._check_windows(X)
        bands = []
        # mne.filter.filter_data designs and checks the same filter on every call (~8 ms of
        # a ~10-ms window at 8 channels): design each band once per decoder, then filter as
        # filter_data does (_sosfiltfilt_like_mne; bit-identical, tested)
        designs = self.__dict__.setdefault("_iir_designs", {})
        for l_freq, h_freq in self.filters or [(None, None)]:
            Xb = X
            if l_freq is not None or h_freq is not None:
                key = (self.sfreq, l_freq, h_freq)
                if key not in designs:
                    from scipy.signal import sosfilt_zi

                    iir = create_filter(None, self.sfreq, l_freq, h_freq, method="iir",
                                        verbose=False)
                    designs[key] = (iir["sos"], iir["padlen"], sosfilt_zi(iir["sos"]))
                Xb = _sosfiltfilt_like_mne(X, *designs[key])
            if self.resample is not None and self.resample != self.sfreq:
                Xb = resample(Xb, up=self.resample, down=self.sfreq, axis=-1, verbose=False)
            bands.append(Xb)
        Xp = np.stack(bands, axis=-1) if len(self.filters) > 1 else bands[0]
        self._check_amplitude(Xp)
        if self.channel_map is not None:
            Xp = apply_channel_map(Xp, self.channel_map)
        return Xp

    def _check_windows(self, X) -> np.ndarray:
        """Type, shape, finiteness; returns the windows times :attr:`unit_factor`."""
        arr = X if isinstance(X, np.ndarray) else np.asarray(X)
        if arr.dtype.kind in "iub":
            raise TypeError(
                f"The windows are {arr.dtype} numbers, but the decoder takes floating-point "
                f"volts (raw ADC counts? multiply them by the amplifier's resolution in V, "
                f"e.g. X * 0.5e-6 for 0.5 µV per count, as float).")
        if arr.ndim in (2, 3) and arr.shape[0] == 0:
            raise ValueError(
                f"X holds no window (shape {arr.shape}); give at least one window "
                f"(n_windows, n_chans={self.n_chans}, n_times={self.n_times}).")
        return check_epochs_array(arr, n_chans=self.n_chans, n_times=self.n_times) \
            * self.unit_factor

    def amplitude_ratio(self, X) -> np.ndarray:
        """How far each window's amplitude is from the training range.

        Parameters
        ----------
        X : array, shape (n_epochs, n_chans, n_times[, n_bands])
            Preprocessed windows (:meth:`preprocess`'s output, in the estimator's unit).

        Returns
        -------
        ratio : ndarray, shape (n_epochs,)
            Per window, the median over channels of (median absolute amplitude of the
            channel) / (its :attr:`train_amplitude`): about 1 for data like the training
            epochs, about 1e6 for microvolts given as volts. NaN without ``train_amplitude``.
        """
        X = np.asarray(X)
        if not self.train_amplitude:
            return np.full(len(X), np.nan)
        ref = np.asarray(self.train_amplitude, dtype=float)
        per_chan = np.median(np.abs(X).reshape(X.shape[0], X.shape[1], -1), axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.median(per_chan / ref, axis=1)

    def _check_amplitude(self, Xp: np.ndarray) -> None:
        if not self.train_amplitude:
            logger.debug("Decoder without training amplitudes (written before bci recorded "
                         "them): amplitude check skipped.")
            return
        if len(self.train_amplitude) != self.n_chans:
            raise ValueError(f"train_amplitude has {len(self.train_amplitude)} values for "
                             f"{self.n_chans} channels; the decoder file is inconsistent.")
        ratio = self.amplitude_ratio(Xp)
        worst = int(np.argmax(np.abs(np.log10(np.where(ratio > 0, ratio, 1e-300)))))
        r = float(ratio[worst])
        if not (1.0 / AMPLITUDE_REFUSE < r < AMPLITUDE_REFUSE):
            raise ValueError(
                f"Window {worst}'s amplitudes are {_times(r)} the decoder's training range "
                f"(median absolute amplitude per channel after its band-pass). "
                f"{_unit_hint(r, self.unit_factor)} The decoder takes volts (x "
                f"{self.unit_factor:g} for its estimator); refusing to decode this.")
        if not (1.0 / AMPLITUDE_WARN < r < AMPLITUDE_WARN):
            now = time.monotonic()
            last = self.__dict__.get("_amplitude_warned_at")
            if last is None or now - last >= AMPLITUDE_WARN_EVERY_S:
                self.__dict__["_amplitude_warned_at"] = now
                logger.warning(
                    "Window amplitudes are %s the decoder's training range: check the unit "
                    "(volts expected), the reference and the electrodes; predictions may be "
                    "meaningless (repeats silenced for %g s).", _times(r),
                    AMPLITUDE_WARN_EVERY_S)

    def predict(self, X) -> np.ndarray:
        """Class names predicted for raw windows (see :meth:`preprocess` for ``X``).

        Returns
        -------
        y : ndarray of str, shape (n_epochs,)
        """
        idx = self.estimator.predict(self.preprocess(X))
        return np.asarray(self.classes)[np.asarray(idx, dtype=int)]

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities for raw windows; columns follow :attr:`classes`.

        Decoders of classifiers without probabilities (SVMs) trained by ``bci train`` hold a
        calibrated copy (``info["calibration"]``, :func:`bci.pipelines.train.calibrate`).

        Returns
        -------
        proba : ndarray, shape (n_epochs, n_classes)
        """
        if not hasattr(self.estimator, "predict_proba"):
            raise RuntimeError(
                f"The decoder's estimator ({type(self.estimator).__name__}) has no "
                "predict_proba; use predict, or re-train it with `bci train` (which calibrates "
                "SVM probabilities), or train a pipeline with probabilities (TS+LR...)."
            )
        return self.estimator.predict_proba(self.preprocess(X))

    def pick_channels(self, data, ch_names: Sequence[str]) -> np.ndarray:
        """Reorder ``data`` (``(..., n_stream_chans, n_times)``) from ``ch_names`` to ours.

        Raises ``ValueError`` naming the missing channels when the stream lacks some.
        """
        ch_names = list(ch_names)
        missing = [c for c in self.ch_names if c not in ch_names]
        if missing:
            raise ValueError(
                f"The data lacks {len(missing)} of the decoder's channels: {missing[:10]}; "
                "the decoder was trained on " + ", ".join(self.ch_names) + "."
            )
        return np.take(np.asarray(data), [ch_names.index(c) for c in self.ch_names], axis=-2)

    def save(self, fname: str | Path, *, key: Any = None) -> Path:
        """Write this decoder to ``fname``, signed by ``key`` if any (:func:`save_decoder`)."""
        return save_decoder(self, fname, key=key)


def apply_channel_map(X: np.ndarray, channel_map: dict) -> np.ndarray:
    """Put epochs on a pretrained network's channels, robustly scaled (see ``Decoder``).

    Parameters
    ----------
    X : ndarray, shape (n_epochs, n_chans, n_times)
        Filtered epochs on the decoder's channels (:attr:`Decoder.ch_names`). Not modified.
    channel_map : dict
        :attr:`Decoder.channel_map`.

    Returns
    -------
    Xm : ndarray, shape (n_epochs, n_model_chans, n_times), float32
        ``clip((x - center) / scale)`` on present channels, zeros on absent ones.
    """
    picks = np.asarray(channel_map["picks"], dtype=int)
    center = np.asarray(channel_map["center"], dtype=float)[:, None]
    scale = np.asarray(channel_map["scale"], dtype=float)[:, None]
    X = np.asarray(X)
    if X.ndim != 3 or (picks >= X.shape[1]).any():
        raise ValueError(f"apply_channel_map needs epochs (n_epochs, n_chans > "
                         f"{int(picks.max())}, n_times), got shape {X.shape}.")
    present = picks >= 0
    out = np.zeros((X.shape[0], len(picks), X.shape[-1]), dtype=np.float32)
    mapped = (X[:, picks[present]] - center[present]) / scale[present]
    clip = channel_map.get("clip")
    if clip is not None:
        mapped = np.clip(mapped, -clip, clip)
    out[:, present] = mapped
    return out


def save_decoder(decoder: Decoder, fname: str | Path, *, key: Any = None) -> Path:
    """Write a decoder file (format 3), signed when a key is given.

    Parameters
    ----------
    decoder : Decoder
        The fitted decoder. A scikit-learn estimator is stored with skops (no pickle); a
        :class:`~bci.models.classifier.DeepClassifier` as its network's weights.
    fname : str | Path
        Destination; parent folders are created. Written atomically (a temporary file is
        renamed), so an interrupted save never leaves a half-written decoder.
    key : bytes | str | Path | None
        Sign the file: ``bytes`` is the key itself (an HMAC lab key of >= 32 bytes, or a PEM
        Ed25519 private key), a ``str`` or ``Path`` the path of a key file
        (:func:`generate_key`). When None, the lab key in the environment variable
        ``BCI_DECODER_KEY`` signs, if it is set; otherwise the file is unsigned.

    Returns
    -------
    fname : Path

    Warns
    -----
    UserWarning
        The estimator holds types outside skops' defaults and :data:`TRUSTED_TYPES`: loading
        the file will need ``load_decoder(path, trusted_types=[...])``.
    """
    from .numpy_runtime import NumpyPipeline, save_numpy_decoder

    if isinstance(decoder.estimator, NumpyPipeline):  # from a NumPy decoder file: stays one
        return save_numpy_decoder(decoder, fname, key=key)
    import sklearn

    signer = signer_for(key)
    fname = Path(fname)
    network_state = getattr(decoder.estimator, "_network_state", None)
    network = None
    if callable(network_state):  # a DeepClassifier: weights + config, no pickle
        import torch

        network, weights = network_state()
        buffer = io.BytesIO()
        torch.save(weights, buffer)
        payload, payload_name = buffer.getvalue(), NETWORK_PAYLOAD
    else:
        import skops

        payload, payload_name = dump_pipeline(decoder.estimator), SKOPS_PAYLOAD
        extra = untrusted_types(payload, str(fname))
        if extra:
            message = (f"{fname}: the estimator holds types that bci does not trust by default "
                       f"({', '.join(extra)}); loading the file will need "
                       f"load_decoder(path, trusted_types={extra!r}).")
            logger.warning(message)
            warnings.warn(message, UserWarning, stacklevel=2)
    meta = asdict(decoder)
    meta.pop("estimator")
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bci_version": __version__,
        "sklearn_version": sklearn.__version__,
        "payload": payload_name,
        "decoder": meta,
    }
    if network is not None:
        import torch

        manifest["torch_version"] = torch.__version__
        manifest["network"] = network
    else:
        manifest["skops_version"] = skops.__version__
    write_file(fname, manifest, payload_name, payload, signer)
    logger.info("Saved decoder to %s%s", fname, " (signed)" if signer else "")
    return fname

def load_decoder(fname: str | Path, *, key: Any = None, require_signature: bool | None = None,
                 trust: bool = False, trusted_types: Sequence[str] = ()) -> Decoder:
    """Read a decoder file written by :func:`save_decoder` or ``bci train``.

    Nothing in the file runs while it loads: a scikit-learn pipeline is rebuilt from its skops
    payload only if every type it names is trusted; a network from its weights by torch alone.

    Parameters
    ----------
    fname : str | Path
        The file.
    key : bytes | str | Path | None
        Verify the file's signature with this key: ``bytes`` is the key itself (the HMAC lab
        key, or a PEM Ed25519 public or private key), a ``str`` or ``Path`` the path of a key
        file. When None, the lab key in ``BCI_DECODER_KEY`` if set.
    require_signature : bool | None
        Refuse files that are not signed by ``key``. None (default): required when a key is
        given or set in ``BCI_DECODER_KEY``; False accepts unsigned files (signed ones are still
        verified when a key is given).
    trust : bool
        Read the pickle of a format-1/2 pipeline file (``estimator.joblib``), which can run any
        code while it loads: only for a file you made or got from someone you trust. Warns.
        Re-save the decoder to convert it (format 3 loads without trust).
    trusted_types : sequence of str
        Fully qualified type names to trust in a skops payload, beyond skops' defaults and
        :data:`TRUSTED_TYPES` (a refused file names them).

    Returns
    -------
    decoder : Decoder

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a decoder file, damaged or edited (checksum mismatch, truncated archive), refused
        before extraction (a zip bomb: too many or too large members), a pickle without
        ``trust=True``, untrusted types, a missing or wrong signature, or written in a newer
        format than this ``bci`` reads.

    Warns
    -----
    UserWarning
        With ``trust=True`` on a file holding a pickle (also logged).
    """
    from .._checks import check_bool

    trust = check_bool(trust, "trust")
    trusted_types = check_trusted_types(trusted_types)
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"No decoder file at {fname}; train one with `bci train`.")
    manifest, payload_name, payload = read_file(fname, FORMAT_NAME, key, require_signature)
    meta = decoder_meta(manifest, fname, known=_DECODER_FIELDS, required=_REQUIRED_FIELDS)
    from ._decoder_io import NUMPY_PAYLOAD

    if payload_name == NUMPY_PAYLOAD:  # `bci export --format numpy`: NumPy only, no sklearn
        from .numpy_runtime import numpy_estimator

        return Decoder(estimator=numpy_estimator(manifest, payload, fname), **meta)
    import sklearn

    if manifest.get("sklearn_version") != sklearn.__version__:
        logger.warning("%s was fitted with scikit-learn %s, this is %s; predictions may differ.",
                       fname, manifest.get("sklearn_version"), sklearn.__version__)
    if payload_name == ONNX_PAYLOAD:  # `bci export --format onnx`: ONNX Runtime, no torch
        from .onnx_runtime import onnx_estimator

        estimator = onnx_estimator(manifest, payload, fname)
    elif payload_name == NETWORK_PAYLOAD:
        estimator = _load_network(manifest, payload, fname)
    elif payload_name == SKOPS_PAYLOAD:
        estimator = load_pipeline(payload, str(fname), trusted_types=trusted_types)
    else:
        estimator = load_pickle(payload, fname, manifest["format_version"], trust)
    return Decoder(estimator=estimator, **meta)


_DECODER_FIELDS = {f.name for f in fields(Decoder)} - {"estimator"}
_REQUIRED_FIELDS = {"ch_names", "sfreq", "tmin", "tmax", "classes"}


def _load_network(manifest: dict, payload: bytes, fname: Path):
    """Rebuild a fitted DeepClassifier from its weights and config (torch only, no pickle)."""
    import torch

    from .classifier import DeepClassifier

    weights = torch_weights(payload, fname)
    if manifest.get("torch_version") != torch.__version__:
        logger.info("Decoder network saved with torch %s, loading with %s",
                    manifest.get("torch_version"), torch.__version__)
    try:
        return DeepClassifier._from_network_state(manifest["network"], weights)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{fname} is not a valid decoder file: its network entry is "
                         f"malformed ({type(err).__name__}: {err}).") from err


def _sosfiltfilt_like_mne(X: np.ndarray, sos: np.ndarray, padlen: int,
                          zi: np.ndarray) -> np.ndarray:
    """Filter the last axis (zero-phase SOS) exactly as MNE's ``filter_data(method="iir")``.

    MNE pads each row with its "reflect_limited" mirror (``2 x[0] - x[padlen:0:-1]``, and
    likewise at the end), runs ``scipy.signal.sosfiltfilt`` without its own padding, and cuts
    the padding off. This does the same, with ``sosfiltfilt``'s two ``sosfilt`` passes written
    out so that the filter's design and initial state ``zi`` (``sosfilt_zi(sos)``) are computed
    once per decoder, not per window.
    """
    from scipy.signal import sosfilt

    x = np.asarray(X, dtype=np.float64).reshape(-1, X.shape[-1])
    pad = min(int(padlen), x.shape[-1] - 1)
    if pad > 0:
        x = np.concatenate([2 * x[:, :1] - x[:, pad:0:-1], x,
                            2 * x[:, -1:] - x[:, -2:-pad - 2:-1]], axis=-1)
    zi = zi.reshape(len(sos), 1, 2)
    y, _ = sosfilt(sos, x, axis=-1, zi=zi * x[:, :1])
    y, _ = sosfilt(sos, y[:, ::-1], axis=-1, zi=zi * y[:, -1:])
    y = y[:, ::-1]
    if pad > 0:
        y = y[:, pad:y.shape[-1] - pad]
    return np.ascontiguousarray(y).reshape(X.shape)


def _times(ratio: float) -> str:
    if ratio == 0:
        return "0 x (a flat signal)"
    return f"~{ratio:.3g} x"


def _unit_hint(ratio: float, unit_factor: float) -> str:
    """Name the unit mistake a ratio of amplitudes most likely comes from."""
    if ratio == 0:
        return "Is the amplifier connected, and the channel selection right?"
    exponent = int(np.round(np.log10(ratio) / 3.0)) * 3
    hints = {
        3: "Millivolts given to a decoder that takes volts? Divide by 1e3.",
        6: "Microvolts given to a decoder that takes volts? Divide by 1e6.",
        9: "Nanovolts given to a decoder that takes volts? Divide by 1e9.",
        -3: "Volts divided by 1e3 (scaled twice?)? Multiply by 1e3.",
        -6: "Volts divided by 1e6 (microvolt conversion applied twice?)? Multiply by 1e6.",
    }
    return hints.get(exponent, f"A scale error of about 1e{exponent}? Give volts.")


def _float_or_none(value) -> float | None:
    return None if value is None else float(value)


# ---------------------------------------------------------------------------------------------
# Network files: a trained network alone (e.g. an iBMI velocity decoder)
# ---------------------------------------------------------------------------------------------
def _network_classes() -> dict:
    """Name -> class of the networks a network file can hold (registry + iBMI decoders)."""
    from .registry import MODELS
    from .spiking.delays import DelaySNN
    from .spiking.ibmi import IBMI_MODELS

    return {**MODELS, **IBMI_MODELS, "DelaySNN": DelaySNN}


def save_network(model: Any, fname: str | Path, *, info: dict | None = None,
                 key: Any = None) -> Path:
    """Write a trained network alone to a network file (the decoder-file container).

    For networks that are not scikit-learn classifiers on raw windows, such as the iBMI
    velocity decoders of :mod:`bci.models.spiking.ibmi` (trained by
    :func:`~bci.models.spiking.ibmi.fit_sequence_decoder`): a zip archive with
    ``manifest.json`` (format ``"bci-network"``, format version, ``bci`` and torch versions,
    the model name and its ``get_config()``, checksums, ``info``, an optional signature) and
    ``network.pt`` (the ``state_dict``, read back with ``torch.load(weights_only=True)``, no
    pickle). ``bci export`` reads it.

    Parameters
    ----------
    model : EEGModule
        A network of :data:`bci.models.registry.MODELS` or
        :data:`bci.models.spiking.ibmi.IBMI_MODELS`, or a
        :class:`~bci.models.spiking.delays.DelaySNN`.
    fname : str | Path
        Destination; parent folders are created; written atomically.
    info : dict | None
        JSON-serialisable provenance (dataset, training, scores...).
    key : bytes | str | Path | None
        Sign the file (see :func:`save_decoder`).

    Returns
    -------
    fname : Path

    Examples
    --------
    >>> import tempfile, torch
    >>> from bci.models.spiking.ibmi import SNNStreaming
    >>> model = SNNStreaming(4, 2, sfreq=20.0, n_hidden=8)
    >>> path = save_network(model, tempfile.mkdtemp() + "/snn.bci")
    >>> back = load_network(path)
    >>> torch.equal(back.fc_in.weight, model.fc_in.weight)
    True
    """
    import torch

    classes = _network_classes()
    name = type(model).__name__
    if classes.get(name) is not type(model):
        raise TypeError(f"save_network saves the networks {', '.join(classes)}; got {name}.")
    info = dict(info or {})
    try:
        json.dumps(info)
    except TypeError as err:
        raise TypeError(f"info must be JSON-serialisable ({err}).") from None
    signer = signer_for(key)
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    manifest = {
        "format": NETWORK_FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bci_version": __version__,
        "torch_version": torch.__version__,
        "payload": NETWORK_PAYLOAD,
        "network": {"model": name, "config": model.get_config()},
        "info": info,
    }
    fname = Path(fname)
    write_file(fname, manifest, NETWORK_PAYLOAD, buffer.getvalue(), signer)
    logger.info("Saved %s network to %s", name, fname)
    return fname


def load_network(fname: str | Path, *, key: Any = None,
                 require_signature: bool | None = None) -> Any:
    """Read the network of a network file, or of a decoder file holding a network.

    Network files are written by :func:`save_network`, decoder files holding a network by
    ``bci train --model``.

    Parameters
    ----------
    fname : str | Path
        The file.
    key, require_signature
        Verify the file's signature (see :func:`load_decoder`).

    Returns
    -------
    model : EEGModule
        The network with its trained weights, in evaluation mode.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a network or decoder file, damaged or edited (checksum), refused (see
        :func:`load_decoder`), written in a newer format, or a decoder file whose estimator is
        not a network (a scikit-learn pipeline, which is then not loaded at all).
    """
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"No network file at {fname}; write one with "
                                "bci.models.decoder.save_network or `bci train --model`.")
    manifest, payload_name, payload = read_file(fname, NETWORK_FORMAT_NAME, key,
                                                 require_signature)
    if payload_name == ONNX_PAYLOAD:
        raise ValueError(f"{fname} is an ONNX decoder file (bci export --format onnx); export "
                         "the original network or decoder file instead.")
    if payload_name != NETWORK_PAYLOAD:
        raise ValueError(f"{fname} holds a scikit-learn pipeline ({payload_name}), not a "
                         "network; only networks (bci train --model) can be read here.")
    if manifest["format"] == FORMAT_NAME:  # a decoder file holding a network
        return _load_network(manifest, payload, fname).model_.eval()
    from .._checks import check_option

    network = manifest.get("network")
    if not (isinstance(network, dict) and isinstance(network.get("model"), str)
            and isinstance(network.get("config"), dict)):
        raise ValueError(f"{fname} is not a valid network file: its network entry is malformed.")
    classes = _network_classes()
    check_option("network", network["model"], classes)
    model = classes[network["model"]].from_config(network["config"])
    model.load_state_dict(torch_weights(payload, fname), strict=True)
    return model.eval()


def network_info(fname: str | Path, *, key: Any = None,
                 require_signature: bool | None = None) -> dict:
    """Return the ``info`` a network file was saved with (:func:`save_network`).

    Parameters
    ----------
    fname : str | Path
        A network file.
    key, require_signature
        Verify the file's signature (see :func:`load_decoder`).

    Returns
    -------
    info : dict
        A copy of the file's ``info`` (e.g. a pretrained NeuroGPT's ``preprocessing``).

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a network file, damaged or edited.
    """
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"No network file at {fname}; write one with "
                                "bci.models.decoder.save_network or `bci pretrain`.")
    manifest, _, _ = read_file(fname, NETWORK_FORMAT_NAME, key, require_signature)
    return json.loads(json.dumps(manifest.get("info") or {}))
