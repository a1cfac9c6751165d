"""Decoder files: a fitted decoder plus everything a real-time loop needs to use it alone.

A decoder file is a zip archive holding ``manifest.json`` (format version, ``bci`` and
scikit-learn versions, a SHA-256 of the payload, channel names, sampling rate, window, class
names, preprocessing) and one payload:

- ``estimator.joblib``: a fitted scikit-learn estimator (feature pipelines);
- ``network.pt`` (format 2): the weights (``state_dict``) of a network trained by
  :class:`~bci.models.classifier.DeepClassifier`; the manifest's ``network`` entry holds the
  model name, its config (``model.get_config()``), the input scaling and the classifier's
  settings. It is loaded with torch alone (``torch.load(weights_only=True)``, no pickle, no
  Lightning), so the real-time loop takes networks and pipelines alike.

Loading checks the format version and the checksum, so a file from an incompatible version or a
damaged file fails with a clear error instead of predicting garbage. Format-1 files (joblib
payload only) are still read.

Like any pickle, ``estimator.joblib`` can run code when loaded: only load decoder files you trust.

Network files (:func:`save_network`, :func:`load_network`) use the same container for a trained
network alone (manifest format ``"bci-network"``, model name and config, ``network.pt``), for
networks that are not classifiers of raw windows, such as the iBMI velocity decoders; ``bci
export`` reads them.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .._checks import check_epochs_array
from .._logging import logger

#: Version of the decoder-file layout written by this ``bci``; files with a higher major
#: version cannot be read.
FORMAT_VERSION = 2
_MANIFEST = "manifest.json"
_PAYLOAD = "estimator.joblib"
_NETWORK_PAYLOAD = "network.pt"  # format >= 2
_FORMAT_NAME = "bci-decoder"
_NETWORK_FORMAT_NAME = "bci-network"  # a network alone: save_network / load_network
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
        from mne.filter import filter_data, resample

        X = self._check_windows(X)
        bands = []
        for l_freq, h_freq in self.filters or [(None, None)]:
            Xb = X
            if l_freq is not None or h_freq is not None:
                Xb = filter_data(X, self.sfreq, l_freq, h_freq, method="iir", verbose=False)
            if self.resample is not None and self.resample != self.sfreq:
                Xb = resample(Xb, up=self.resample, down=self.sfreq, axis=-1, verbose=False)
            bands.append(Xb)
        Xp = np.stack(bands, axis=-1) if len(self.filters) > 1 else bands[0]
        self._check_amplitude(Xp)
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

    def save(self, fname: str | Path) -> Path:
        """Write this decoder to ``fname`` (see :func:`save_decoder`)."""
        return save_decoder(self, fname)


def save_decoder(decoder: Decoder, fname: str | Path) -> Path:
    """Write a decoder file.

    Parameters
    ----------
    decoder : Decoder
        The fitted decoder.
    fname : str | Path
        Destination; parent folders are created. Written atomically (a temporary file is
        renamed), so an interrupted save never leaves a half-written decoder.

    Returns
    -------
    fname : Path
    """
    import joblib
    import sklearn

    fname = Path(fname)
    buffer = io.BytesIO()
    network_state = getattr(decoder.estimator, "_network_state", None)
    network = None
    if callable(network_state):  # a DeepClassifier: weights + config, no pickle
        import torch

        network, weights = network_state()
        torch.save(weights, buffer)
        payload_name = _NETWORK_PAYLOAD
    else:
        joblib.dump(decoder.estimator, buffer)
        payload_name = _PAYLOAD
    payload = buffer.getvalue()
    meta = asdict(decoder)
    meta.pop("estimator")
    manifest = {
        "format": _FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bci_version": __version__,
        "sklearn_version": sklearn.__version__,
        "payload": payload_name,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "decoder": meta,
    }
    if network is not None:
        import torch

        manifest["torch_version"] = torch.__version__
        manifest["network"] = network
    fname.parent.mkdir(parents=True, exist_ok=True)
    tmp = fname.with_name(fname.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_MANIFEST, json.dumps(manifest, indent=2))
        zf.writestr(payload_name, payload)
    tmp.replace(fname)
    logger.info("Saved decoder to %s", fname)
    return fname


def load_decoder(fname: str | Path) -> Decoder:
    """Read a decoder file written by :func:`save_decoder` or ``bci train``.

    Parameters
    ----------
    fname : str | Path
        The file.

    Returns
    -------
    decoder : Decoder

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a decoder file, damaged (checksum mismatch, truncated archive), or written in a
        newer format than this ``bci`` reads.
    """
    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"No decoder file at {fname}; train one with `bci train`.")
    try:
        with zipfile.ZipFile(fname) as zf:
            manifest = json.loads(zf.read(_MANIFEST))
            payload_name = manifest.get("payload", _PAYLOAD) if isinstance(manifest, dict) \
                else _PAYLOAD
            if payload_name not in (_PAYLOAD, _NETWORK_PAYLOAD):
                raise KeyError(f"unknown payload {payload_name!r}")
            payload = zf.read(payload_name)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, EOFError,
            zipfile.LargeZipFile) as err:
        raise ValueError(
            f"{fname} is not a bci decoder file or is damaged ({err}); re-create it with "
            "`bci train`."
        ) from err
    if isinstance(manifest, dict) and manifest.get("format") == _NETWORK_FORMAT_NAME:
        raise ValueError(f"{fname} is a network file (a trained network without a decoder's "
                         "recording conventions); read it with bci.models.decoder.load_network.")
    if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT_NAME:
        raise ValueError(f"{fname} is not a bci decoder file (no {_FORMAT_NAME!r} manifest).")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{fname} was written by bci {manifest.get('bci_version', '?')} in decoder format "
            f"{version}; this bci ({__version__}) reads format <= {FORMAT_VERSION}. Upgrade "
            "bci, or re-train the decoder with this version."
        )
    if hashlib.sha256(payload).hexdigest() != manifest.get("payload_sha256"):
        raise ValueError(
            f"{fname} is damaged: its estimator does not match the checksum in its manifest; "
            "re-create it with `bci train`."
        )
    import sklearn

    if manifest.get("sklearn_version") != sklearn.__version__:
        logger.warning("%s was fitted with scikit-learn %s, this is %s; predictions may differ.",
                       fname, manifest.get("sklearn_version"), sklearn.__version__)
    meta = manifest["decoder"]
    meta["filters"] = [tuple(band) for band in meta.get("filters", [])]
    if payload_name == _NETWORK_PAYLOAD:
        estimator = _load_network(manifest, payload)
    else:
        import joblib

        estimator = joblib.load(io.BytesIO(payload))
    return Decoder(estimator=estimator, **meta)


def _load_network(manifest: dict, payload: bytes):
    """Rebuild a fitted DeepClassifier from its weights and config (torch only, no pickle)."""
    import torch

    from .classifier import DeepClassifier

    weights = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    if manifest.get("torch_version") != torch.__version__:
        logger.info("Decoder network saved with torch %s, loading with %s",
                    manifest.get("torch_version"), torch.__version__)
    return DeepClassifier._from_network_state(manifest["network"], weights)


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
    from .spiking.ibmi import IBMI_MODELS

    return {**MODELS, **IBMI_MODELS}


def save_network(model: Any, fname: str | Path, *, info: dict | None = None) -> Path:
    """Write a trained network alone to a network file (the decoder-file container).

    For networks that are not scikit-learn classifiers on raw windows, such as the iBMI
    velocity decoders of :mod:`bci.models.spiking.ibmi` (trained by
    :func:`~bci.models.spiking.ibmi.fit_sequence_decoder`): a zip archive with
    ``manifest.json`` (format ``"bci-network"``, format version, ``bci`` and torch versions,
    the model name and its ``get_config()``, a SHA-256 of the payload, ``info``) and
    ``network.pt`` (the ``state_dict``, read back with ``torch.load(weights_only=True)``, no
    pickle). ``bci export`` reads it.

    Parameters
    ----------
    model : EEGModule
        A network of :data:`bci.models.registry.MODELS` or
        :data:`bci.models.spiking.ibmi.IBMI_MODELS`.
    fname : str | Path
        Destination; parent folders are created; written atomically.
    info : dict | None
        JSON-serialisable provenance (dataset, training, scores...).

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
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
    payload = buffer.getvalue()
    manifest = {
        "format": _NETWORK_FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bci_version": __version__,
        "torch_version": torch.__version__,
        "payload": _NETWORK_PAYLOAD,
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "network": {"model": name, "config": model.get_config()},
        "info": info,
    }
    fname = Path(fname)
    fname.parent.mkdir(parents=True, exist_ok=True)
    tmp = fname.with_name(fname.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(_MANIFEST, json.dumps(manifest, indent=2))
        zf.writestr(_NETWORK_PAYLOAD, payload)
    tmp.replace(fname)
    logger.info("Saved %s network to %s", name, fname)
    return fname


def load_network(fname: str | Path) -> Any:
    """Read the network of a network file (:func:`save_network`) or of a decoder file holding
    a network (``bci train --model``).

    Parameters
    ----------
    fname : str | Path
        The file.

    Returns
    -------
    model : EEGModule
        The network with its trained weights, in evaluation mode.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a network or decoder file, damaged (checksum), written in a newer format, or a
        decoder file whose estimator is not a network (a scikit-learn pipeline).
    """
    import torch

    fname = Path(fname)
    if not fname.is_file():
        raise FileNotFoundError(f"No network file at {fname}; write one with "
                                "bci.models.decoder.save_network or `bci train --model`.")
    try:
        with zipfile.ZipFile(fname) as zf:
            manifest = json.loads(zf.read(_MANIFEST))
            kind = manifest.get("format") if isinstance(manifest, dict) else None
            payload = zf.read(_NETWORK_PAYLOAD) if kind == _NETWORK_FORMAT_NAME else None
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, EOFError,
            zipfile.LargeZipFile) as err:
        raise ValueError(f"{fname} is not a bci network or decoder file or is damaged "
                         f"({err}).") from err
    if kind == _FORMAT_NAME:  # a decoder file: its network, if it holds one
        estimator = load_decoder(fname).estimator
        if not hasattr(estimator, "model_"):
            raise ValueError(f"{fname} holds a {type(estimator).__name__} pipeline, not a "
                             "network; only networks (bci train --model) can be read here.")
        return estimator.model_.eval()
    if kind != _NETWORK_FORMAT_NAME:
        raise ValueError(f"{fname} is not a bci network file (no {_NETWORK_FORMAT_NAME!r} "
                         "manifest).")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{fname} was written by bci {manifest.get('bci_version', '?')} in format "
            f"{version}; this bci ({__version__}) reads format <= {FORMAT_VERSION}. Upgrade bci."
        )
    if hashlib.sha256(payload).hexdigest() != manifest.get("payload_sha256"):
        raise ValueError(f"{fname} is damaged: its network does not match the checksum in its "
                         "manifest.")
    from .._checks import check_option

    network = manifest["network"]
    classes = _network_classes()
    check_option("network", network["model"], classes)
    model = classes[network["model"]].from_config(network["config"])
    weights = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    model.load_state_dict(weights, strict=True)
    return model.eval()
