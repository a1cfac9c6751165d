"""Run a Riemannian decoder with NumPy alone: no scikit-learn, no pyRiemann, no pickle.

``bci export --format numpy DECODER.bci`` (:func:`bci.hw.numpy_export.export_numpy`) writes a
*NumPy decoder file*: the decoder-file container of :mod:`bci.models.decoder` (a zip with
``manifest.json``, checksums, an optional signature) whose payload, ``arrays.npz``, holds the
fitted arrays (``.npy`` members, stored, numbers only) and whose manifest holds the decoder's
recording conventions (channels, rate, window, band-pass or filter bank, resampling,
``unit_factor``, classes, training amplitudes) plus a ``numpy_runtime`` entry: the runtime
version and the pipeline as a list of named steps, with the name, shape and dtype of every array
a step uses.

:func:`bci.load_decoder` reads such a file into an ordinary
:class:`~bci.models.decoder.Decoder` whose estimator is a :class:`NumpyPipeline`. Loading runs
no code from the file: the manifest is JSON, each array is read from its ``.npy`` header (shape,
dtype) and bytes with :func:`numpy.frombuffer`, after the header was checked against the
manifest; only numeric dtypes are accepted. The preprocessing (MNE's IIR band-pass), the
amplitude check and the live loop's channel and rate checks are those of any decoder file.

What the runtime computes (the formulas of scikit-learn 1.9 and pyRiemann 0.12, which the tests
check to 1e-9 on real and synthetic data):

``filterbank``
    MOABB's ``ExtendedSSVEPSignal``: ``(n, n_chans, n_times, n_bands)`` ->
    ``(n, n_bands * n_chans, n_times)``, band-major.
``delay_embedding``
    bci's ``AugmentedCovariance`` embedding (:func:`bci.features.augmented.delay_embedding`):
    ``order`` copies of the epoch, block ``p`` delayed by ``p * lag`` samples.
``projection``
    bci's ``SubspaceProjection`` (rank-deficient MEG, :mod:`bci.features.rank`): the fitted
    ``(rank, n_chans)`` filters applied to each epoch, ``(n, n_chans, n_times)`` ->
    ``(n, rank, n_times)``.
``covariances``
    pyRiemann's ``Covariances``: ``"oas"`` and ``"lwf"`` (scikit-learn's OAS and Ledoit-Wolf
    shrinkage, data centred per channel, biased empirical covariance), ``"scm"`` (biased
    sample covariance) and ``"cov"`` (:func:`numpy.cov`, unbiased).
``csp``
    pyRiemann's ``CSP``: ``log(diag(W C W^T))`` (or the filtered matrices when ``log=False``).
``tangent_space``
    pyRiemann's ``TangentSpace(metric="riemann")``: ``upper(logm(P^-1/2 C P^-1/2))`` at the fitted
    reference ``P``, off-diagonal terms weighted by sqrt(2).
``fgda``
    pyRiemann's ``FGDA``: tangent vector, projected on the span of the LDA weights ``A``, mapped
    back to the manifold (``P^1/2 expm(unupper(t A^T (A A^T)^+ A)) P^1/2``; the factors are
    stored, not the square projection: ``(n_classes - 1) x 2080`` numbers instead of
    ``2080 x 2080`` at 64 channels).
``mdm``
    pyRiemann's ``MDM(metric="riemann")``: squared Riemannian distances ``sum(log(lambda)^2)``
    over the generalised eigenvalues of (C, class mean), probabilities ``softmax(-d^2)``.
``linear``
    scikit-learn's ``LogisticRegression`` and ``LinearDiscriminantAnalysis``: ``X coef^T +
    intercept``, probabilities by the logistic function (two classes) or a softmax.
``svc``
    scikit-learn's ``SVC`` (linear, RBF, polynomial or sigmoid kernel): libsvm's one-vs-one
    decision values, ``decision_function_shape="ovr"`` aggregation; with ``probability=True``
    libsvm's Platt scaling and pairwise coupling.
``calibrated``
    scikit-learn's ``CalibratedClassifierCV(method="sigmoid")`` (how ``bci train`` gives SVMs
    probabilities): per member, Platt's sigmoid ``1 / (1 + exp(a d + b))`` of each decision
    value, normalised, averaged over members.

Steps are evaluated in float64, vectorised over epochs; symmetric matrix functions use
:func:`numpy.linalg.eigh`, like pyRiemann.
"""

from __future__ import annotations

import io
import math
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._numpy_steps import STEPS, Calibrated, Chain, FileFormatError, covariances

__all__ = ["RUNTIME_VERSION", "STEPS", "NumpyPipeline", "covariances", "read_arrays",
           "save_numpy_decoder", "write_arrays"]

#: Version of the ``numpy_runtime`` manifest entry written by this ``bci``; files with a higher
#: version cannot be read (their steps may compute something this runtime does not know).
RUNTIME_VERSION = 1
#: Most arrays and array bytes (declared in the manifest, checked before reading).
MAX_ARRAYS = 1000
#: The dtypes an array of a NumPy decoder file may have.
DTYPES = ("float64", "int64")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member dates: the same decoder gives the same bytes


class NumpyPipeline:
    """A fitted covariance pipeline evaluated with NumPy alone (see the module docstring).

    Built from the ``numpy_runtime`` entry of a NumPy decoder file and its arrays; every array
    shape is checked against the steps before anything runs. It has the estimator interface the
    :class:`~bci.models.decoder.Decoder` uses: :meth:`predict_proba`, :meth:`predict`,
    :attr:`classes_`.

    Parameters
    ----------
    spec : dict
        The ``numpy_runtime`` entry: ``version``, ``input`` (``{"n_chans": int, "n_bands": int
        | None}``) and ``model`` (``{"type": "pipeline", "steps": [...]}`` or ``{"type":
        "calibrated", "classes": [...], "members": [...]}``).
    arrays : dict of str to ndarray
        The arrays the steps name (:func:`read_arrays`).
    what : str
        How messages name the file.

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The estimator's labels, in the order of :meth:`predict_proba`'s columns.
    n_chans : int
        Channels of the input.
    n_bands : int | None
        Bands of filter-bank input ``(n_epochs, n_chans, n_times, n_bands)``; None for
        ``(n_epochs, n_chans, n_times)``.
    steps : list of str
        The names of the steps (of the first member, for a calibrated model).
    spec, arrays : dict
        What it was built from (written back by :func:`save_numpy_decoder`).

    Raises
    ------
    ValueError
        A newer runtime version, an unknown step, a step whose arrays do not fit its input
        (the message names the step and the array).

    Examples
    --------
    Two-channel epochs, sample covariance, minimum distance to two class means:

    >>> import numpy as np
    >>> spec = {"version": 1, "input": {"n_chans": 2, "n_bands": None}, "model": {
    ...     "type": "pipeline", "steps": [
    ...         {"step": "covariances", "estimator": "scm"},
    ...         {"step": "mdm", "classes": [0, 1], "arrays": {"covmeans": "means"}}]}}
    >>> clf = NumpyPipeline(spec, {"means": np.stack([np.eye(2), 4 * np.eye(2)])})
    >>> X = np.array([[[1.0, -1.0, 1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]])  # covariance: I
    >>> clf.predict(X), clf.predict_proba(X).round(3)
    (array([0]), array([[0.979, 0.021]]))
    """

    def __init__(self, spec: Mapping, arrays: Mapping[str, np.ndarray], what: str = "the file"):
        if not isinstance(spec, Mapping):
            raise FileFormatError(f"{what} is not a valid NumPy decoder file: no numpy_runtime "
                                  "entry.")
        version = spec.get("version")
        if type(version) is not int or version < 1:
            raise FileFormatError(f"{what}: numpy_runtime version must be a positive integer, "
                                  f"got {version!r}.")
        if version > RUNTIME_VERSION:
            raise FileFormatError(
                f"{what} needs NumPy runtime version {version}; this bci reads version <= "
                f"{RUNTIME_VERSION}. Upgrade bci, or export the decoder again with this one.")
        inp, model = spec.get("input"), spec.get("model")
        if not (isinstance(inp, dict) and isinstance(inp.get("n_chans"), int)
                and inp["n_chans"] >= 1 and (inp.get("n_bands") is None or (
                    isinstance(inp["n_bands"], int) and inp["n_bands"] >= 1))
                and isinstance(model, dict)):
            raise FileFormatError(f"{what}: numpy_runtime needs input {{n_chans, n_bands}} and "
                                  "a model.")
        self.n_chans, self.n_bands = inp["n_chans"], inp.get("n_bands")
        shape_in = (self.n_chans, 2) if self.n_bands is None else (self.n_chans, 2,
                                                                     self.n_bands)
        self.arrays = dict(arrays)
        self.spec = dict(spec)
        kind = model.get("type")
        if kind == "pipeline":
            self._model = Chain(model.get("steps"), self.arrays, shape_in, what)
            first = self._model
        elif kind == "calibrated":
            self._model = Calibrated(model, self.arrays, shape_in, what)
            first = self._model.members[0][0]
        else:
            raise FileFormatError(f"{what}: model type must be 'pipeline' or 'calibrated', got "
                                  f"{kind!r}.")
        self.steps = [step.name for step in first.steps]
        self.classes_ = self._model.classes_
        used = _used_arrays(model)
        unused = sorted(set(self.arrays) - used)
        if unused:
            raise FileFormatError(f"{what} holds arrays no step uses: {unused[:5]} (a damaged "
                                  "or edited file).")

    def _check(self, X) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        ndim = 3 if self.n_bands is None else 4
        if X.ndim == ndim - 1:
            X = X[None]
        if X.ndim != ndim or X.shape[1] != self.n_chans or (
                self.n_bands is not None and X.shape[3] != self.n_bands):
            want = ("(n_epochs, n_chans, n_times)" if self.n_bands is None
                    else "(n_epochs, n_chans, n_times, n_bands)")
            raise ValueError(f"X must be {want} with n_chans={self.n_chans}"
                             + ("" if self.n_bands is None else f", n_bands={self.n_bands}")
                             + f"; got shape {X.shape}.")
        if X.shape[2] < 2:
            raise ValueError(f"Epochs need >= 2 time samples for a covariance; got {X.shape}.")
        return X

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array, shape (n_epochs, n_chans, n_times[, n_bands])
            Preprocessed epochs in the unit of the training epochs (what the scikit-learn
            pipeline took).

        Returns
        -------
        proba : ndarray, shape (n_epochs, n_classes)
            Columns follow :attr:`classes_`.
        """
        return self._model.predict_proba(self._check(X))

    def predict(self, X) -> np.ndarray:
        """Predicted labels (:attr:`classes_` values), as the scikit-learn pipeline's.

        Parameters
        ----------
        X : array, shape (n_epochs, n_chans, n_times[, n_bands])
            Preprocessed epochs.

        Returns
        -------
        y : ndarray, shape (n_epochs,)
        """
        return self._model.predict(self._check(X))

    def __repr__(self) -> str:
        """Show the steps and classes."""
        return f"NumpyPipeline({' -> '.join(self.steps)}, classes={self.classes_.tolist()})"


def _used_arrays(model: dict) -> set[str]:
    used = set()
    members = model.get("members", []) if model.get("type") == "calibrated" else [model]
    for member in members:
        used |= set(member.get("arrays", {}).values())
        for step in member.get("steps", []):
            used |= set(step.get("arrays", {}).values())
    return used


# ---------------------------------------------------------------------------------------------
# The payload: an uncompressed zip of .npy arrays (numpy's .npz layout), read without pickle
# ---------------------------------------------------------------------------------------------
def write_arrays(arrays: Mapping[str, np.ndarray]) -> tuple[bytes, dict]:
    """Serialise arrays as an ``.npz`` payload (stored ``.npy`` members, no pickle).

    Parameters
    ----------
    arrays : dict of str to ndarray
        Float64 or int64 arrays (converted to C order, little-endian).

    Returns
    -------
    payload : bytes
        The archive; the same arrays always give the same bytes.
    declared : dict
        ``{name: {"shape": [...], "dtype": "float64"}}`` for the manifest.
    """
    buffer, declared = io.BytesIO(), {}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(arrays):
            arr = np.asarray(arrays[name])
            if arr.dtype.kind == "f":
                arr = arr.astype("<f8")
            elif arr.dtype.kind in "iu":
                arr = arr.astype("<i8")
            else:
                raise TypeError(f"Array {name!r} is {arr.dtype}; NumPy decoder files hold "
                                "float64 and int64 arrays only.")
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE), member.getvalue())
            declared[name] = {"shape": list(arr.shape), "dtype": arr.dtype.name}
    return buffer.getvalue(), declared


def read_arrays(payload: bytes, declared: Any, what: str) -> dict[str, np.ndarray]:
    """Read an ``.npz`` payload, checking every array against the manifest; no pickle.

    Each member must be a stored ``.npy`` file named in ``declared``, with the declared shape and
    dtype (float64 or int64, C order) in its header and exactly the bytes those imply; arrays are
    views of the payload (:func:`numpy.frombuffer`, read-only) and must be finite.

    Parameters
    ----------
    payload : bytes
        The ``arrays.npz`` member (its checksum already verified).
    declared : dict
        The manifest's ``arrays`` entry of the ``numpy_runtime`` (name -> shape and dtype).
    what : str
        How messages name the file.

    Returns
    -------
    arrays : dict of str to ndarray

    Raises
    ------
    ValueError
        A member that is not declared, or declared and missing; another shape or dtype than
        declared; a header that does not account for the member's bytes; non-finite values.
    """
    if not (isinstance(declared, dict) and len(declared) <= MAX_ARRAYS and all(
            isinstance(v, dict) and isinstance(v.get("shape"), list)
            and all(isinstance(n, int) and n >= 0 for n in v["shape"])
            and v.get("dtype") in DTYPES for v in declared.values())):
        raise FileFormatError(f"{what}: the numpy_runtime arrays entry must map <= {MAX_ARRAYS} "
                              f"names to a shape (list of int) and a dtype in {DTYPES}.")
    try:
        zf = zipfile.ZipFile(io.BytesIO(payload))
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise FileFormatError(f"{what} is damaged: its arrays.npz is not an archive "
                              f"({err}).") from err
    arrays = {}
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ARRAYS:
            raise FileFormatError(f"{what} holds {len(infos)} arrays, more than {MAX_ARRAYS}.")
        names = [i.filename for i in infos]
        found = {n[:-4] for n in names if n.endswith(".npy")}
        if len(found) != len(names) or found != set(declared):
            raise FileFormatError(
                f"{what}: its arrays.npz holds {sorted(names)[:8]}, its manifest declares "
                f"{sorted(f'{n}.npy' for n in declared)[:8]} (a damaged or edited file).")
        for info in infos:
            name = info.filename[:-4]
            if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 \
                    or info.file_size != info.compress_size or info.file_size > len(payload):
                raise FileFormatError(f"{what}: array {name!r} is compressed or encrypted; "
                                      "NumPy decoder files store arrays as they are.")
            with zf.open(info) as member:
                data = member.read(info.file_size + 1)
            arrays[name] = _parse_npy(data, name, declared[name], what)
    return arrays


def _parse_npy(data: bytes, name: str, declared: dict, what: str) -> np.ndarray:
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f"unsupported .npy version {version}")
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        shape, fortran, dtype = read_header(stream)
    except ValueError as err:
        raise FileFormatError(f"{what}: array {name!r} has no valid .npy header "
                              f"({err}).") from err
    if dtype.hasobject or dtype.name not in DTYPES or dtype.byteorder == ">" or fortran:
        raise FileFormatError(f"{what}: array {name!r} is {dtype} (fortran order: {fortran}); "
                              f"NumPy decoder files hold little-endian {' or '.join(DTYPES)}, "
                              "C order.")
    if list(shape) != declared["shape"] or dtype.name != declared["dtype"]:
        raise FileFormatError(
            f"{what}: array {name!r} has shape {tuple(shape)} and dtype {dtype.name}, but the "
            f"manifest declares {tuple(declared['shape'])} and {declared['dtype']} (a damaged "
            "or edited file).")
    offset = stream.tell()
    n_bytes = math.prod(shape) * dtype.itemsize
    if len(data) - offset != n_bytes:
        raise FileFormatError(f"{what}: array {name!r} declares {n_bytes} bytes of data and "
                              f"holds {len(data) - offset}.")
    arr = np.frombuffer(data, dtype=dtype, offset=offset, count=math.prod(shape)).reshape(shape)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise FileFormatError(f"{what}: array {name!r} holds NaN or inf values.")
    return arr


def numpy_estimator(manifest: dict, payload: bytes, fname: str | Path) -> NumpyPipeline:
    """Build the :class:`NumpyPipeline` of a verified NumPy decoder file (``load_decoder``).

    Parameters
    ----------
    manifest : dict
        The file's manifest (checksums and signature verified).
    payload : bytes
        Its ``arrays.npz``.
    fname : str | Path
        The file, for messages.

    Returns
    -------
    estimator : NumpyPipeline
    """
    what = str(fname)
    spec = manifest.get("numpy_runtime")
    if not isinstance(spec, dict):
        raise FileFormatError(f"{what} is not a valid NumPy decoder file: its manifest has no "
                              "numpy_runtime entry.")
    arrays = read_arrays(payload, spec.get("arrays"), what)
    return NumpyPipeline({k: v for k, v in spec.items() if k != "arrays"}, arrays, what)


def save_numpy_decoder(decoder: Any, fname: str | Path, *, key: Any = None) -> Path:
    """Write a decoder whose estimator is a :class:`NumpyPipeline` as a NumPy decoder file.

    ``bci export --format numpy`` (:func:`bci.hw.numpy_export.export_numpy`) converts a
    scikit-learn pipeline and calls this; ``decoder.save(path)`` of a decoder loaded from a NumPy
    decoder file calls it too, so such a decoder stays a NumPy decoder file.

    Parameters
    ----------
    decoder : Decoder
        Its ``estimator`` a :class:`NumpyPipeline`.
    fname : str | Path
        Destination; parent folders are created; written atomically.
    key : bytes | str | Path | None
        Sign the file (see :func:`bci.models.decoder.save_decoder`).

    Returns
    -------
    fname : Path
    """
    from dataclasses import fields

    from .. import __version__
    from ._decoder_io import FORMAT_NAME, FORMAT_VERSION, NUMPY_PAYLOAD, signer_for, write_file

    runtime = decoder.estimator
    if not isinstance(runtime, NumpyPipeline):
        raise TypeError(f"save_numpy_decoder writes decoders of a NumpyPipeline, got "
                        f"{type(runtime).__name__}; convert it with bci export --format numpy.")
    payload, declared = write_arrays(runtime.arrays)
    meta = {f.name: getattr(decoder, f.name) for f in fields(decoder) if f.name != "estimator"}
    meta["filters"] = [list(band) for band in decoder.filters]
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "bci_version": __version__,
        "payload": NUMPY_PAYLOAD,
        "decoder": meta,
        "numpy_runtime": {**runtime.spec, "arrays": declared},
    }
    fname = Path(fname)
    write_file(fname, manifest, NUMPY_PAYLOAD, payload, signer_for(key))
    return fname
