"""How a decoder or network file is laid out, written, and read back safely.

Private helpers of :mod:`bci.models.decoder`, which holds the public concept (the
:class:`~bci.models.decoder.Decoder`, ``save_decoder``/``load_decoder``,
``save_network``/``load_network``) and re-exports :data:`FORMAT_VERSION` and
:data:`TRUSTED_TYPES`. This module never imports it: what it needs of the decoder (the names of
its fields) is passed as arguments. What lives here:

- the layout: :data:`FORMAT_VERSION`, the member names, and :data:`PAYLOADS`, the payloads each
  (format, version) may hold, which alone decides the loader;
- writing: :func:`write_file` adds the checksums and the signature (:func:`signer_for`) and
  writes the zip atomically;
- reading: :func:`read_file` opens a :class:`Container`, checks the manifest's format, version
  and payload, the checksums (:func:`file_digest`) and the signature
  (:func:`verify_signature`); :func:`decoder_meta` checks a manifest's decoder entry;
- payloads: skops pipelines (:func:`load_pipeline`), format-1/2 pickles only with trust
  (:func:`load_pickle`), network weights with torch alone (:func:`torch_weights`).

Everything here reads untrusted bytes, so each step is bounded before it runs:

- the zip directory (member count, size of the central directory) is read from the archive's
  end record before :class:`zipfile.ZipFile` parses it;
- each member's declared size and compression ratio are checked before it is decompressed, and
  it is read with a bounded reader (:mod:`zipfile` stops at the declared size, then checks the
  CRC), so a member whose declared size lies fails instead of filling memory;
- a scikit-learn pipeline is a skops payload (:mod:`skops.io`), read only when every type it
  names is trusted (:data:`TRUSTED_TYPES` plus skops' defaults) and after its own zip directory
  and array headers were checked; a pickle is read only by :func:`load_pickle`, with
  ``trust=True``.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .. import __version__
from .._logging import logger
from ._signing import ENV_KEY, Key, resolve_key

#: Fully qualified names of the types, beyond skops' defaults (scikit-learn estimators, numpy
#: arrays and scalars, Python containers), that a decoder file may hold: bci's transformers,
#: and the pyRiemann, MOABB and scikit-learn parts of the registered pipelines (grid searches
#: keep their splitter and scorer; calibrated classifiers their calibrators).
TRUSTED_TYPES: tuple[str, ...] = (
    # bci
    "bci.features.validation.CheckEpochs",
    "bci.features.augmented.AugmentedCovariance",
    "bci.features.rank.SubspaceProjection",
    "bci.data.alignment.EuclideanAlignment",
    # pyRiemann
    "pyriemann.estimation.Covariances",
    "pyriemann.spatialfilters.CSP",
    "pyriemann.tangentspace.TangentSpace",
    "pyriemann.tangentspace.FGDA",
    "pyriemann.classification.MDM",
    "pyriemann.classification.FgMDM",
    # MOABB (filter-bank SSVEP pipelines)
    "moabb.pipelines.features.ExtendedSSVEPSignal",
    # scikit-learn parts that are not estimators (GridSearchCV's cv, scorer_ and metric;
    # CalibratedClassifierCV's calibrators)
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.metrics._scorer._Scorer",
    "sklearn.metrics._scorer._PassthroughScorer",
    "sklearn.metrics._ranking.roc_auc_score",
    "sklearn.metrics._classification.accuracy_score",
    "sklearn.metrics._classification.balanced_accuracy_score",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
)

# ---------------------------------------------------------------------------------------------
# The layout of a file: format, members, and the payloads each (format, version) may hold
# ---------------------------------------------------------------------------------------------
#: Version of the decoder-file layout written by this ``bci`` (3: skops payloads, a digest of
#: manifest and payload, optional signatures); files with a higher version cannot be read.
FORMAT_VERSION = 3
MANIFEST = "manifest.json"
JOBLIB_PAYLOAD = "estimator.joblib"  # formats 1-2: a pickle, read only with trust=True
SKOPS_PAYLOAD = "estimator.skops"  # format >= 3
NETWORK_PAYLOAD = "network.pt"  # format >= 2
FORMAT_NAME = "bci-decoder"
NETWORK_FORMAT_NAME = "bci-network"  # a network alone: save_network / load_network
# an exported network (`bci export --format onnx`): an ONNX graph run by ONNX Runtime, no torch
ONNX_PAYLOAD = "model.onnx"
ONNX_FORMAT_NAME = "bci-onnx-decoder"
#: The payloads each (format, version) may hold: what decides the loader.
PAYLOADS: dict[tuple[str, int], tuple[str, ...]] = {
    (FORMAT_NAME, 1): (JOBLIB_PAYLOAD,),
    (FORMAT_NAME, 2): (JOBLIB_PAYLOAD, NETWORK_PAYLOAD),
    (FORMAT_NAME, 3): (SKOPS_PAYLOAD, NETWORK_PAYLOAD),
    (NETWORK_FORMAT_NAME, 2): (NETWORK_PAYLOAD,),
    (NETWORK_FORMAT_NAME, 3): (NETWORK_PAYLOAD,),
    (ONNX_FORMAT_NAME, 3): (ONNX_PAYLOAD,),
}
_ALL_PAYLOADS = (JOBLIB_PAYLOAD, SKOPS_PAYLOAD, NETWORK_PAYLOAD, ONNX_PAYLOAD)

#: NumPy decoder files (`bci export --format numpy`, :mod:`bci.models.numpy_runtime`): format-3
#: decoder files whose payload is the fitted arrays (``.npy`` members), evaluated by NumPy alone.
NUMPY_PAYLOAD = "arrays.npz"
PAYLOADS[(FORMAT_NAME, 3)] += (NUMPY_PAYLOAD,)
_ALL_PAYLOADS += (NUMPY_PAYLOAD,)

# ---------------------------------------------------------------------------------------------
# The container: bounded zip reading
# ---------------------------------------------------------------------------------------------
#: Limits of a decoder or network file, checked from the zip directory before anything is
#: decompressed: members, declared bytes of the manifest and of the payload, and the
#: compression ratio of a member over ``_RATIO_CHECK_BYTES`` (deflate cannot exceed ~1030:1;
#: float arrays compress about 1.1:1, JSON about 5:1; a file of zeros is a zip bomb).
MAX_MEMBERS = 4
MAX_MANIFEST_BYTES = 16 * 2**20
MAX_PAYLOAD_BYTES = 2**30
MAX_RATIO = 100.0
_RATIO_CHECK_BYTES = 2**20
_MAX_DIRECTORY_BYTES = 2**16  # central directory of the outer archive (a few members)
# skops payloads: one .npy member per array, stored uncompressed
_MAX_SKOPS_MEMBERS = 100_000
_MAX_SKOPS_DIRECTORY_BYTES = 32 * 2**20

_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:.1f} MiB"


def _zip_directory(f, what: str, label: str) -> tuple[int, int]:
    """Member count and central-directory size (bytes) from a zip's end record, unparsed.

    ``f`` is a seekable binary file; :class:`zipfile.ZipFile` reads exactly this many bytes of
    directory, so bounding them bounds what it parses. Raises ``ValueError`` when there is no
    end record (not a zip archive).
    """
    f.seek(0, io.SEEK_END)
    size = f.tell()
    tail_start = max(0, size - (22 + 2**16))  # the end record and a comment of <= 64 KiB
    f.seek(tail_start)
    tail = f.read()
    pos = tail.rfind(_EOCD)  # the last one, as zipfile takes it
    if pos < 0 or len(tail) - pos < 22:
        raise ValueError(f"{what} is not a {label} or is damaged (no zip end-of-directory "
                         "record).")
    n_entries, cd_size = struct.unpack("<6xHI6x", tail[pos + 4:pos + 22])
    if n_entries == 0xFFFF or cd_size == 0xFFFFFFFF:  # ZIP64: the real numbers are elsewhere
        loc = pos - 20
        if loc < 0 or tail[loc:loc + 4] != _EOCD64_LOCATOR:
            raise ValueError(f"{what} is damaged: a ZIP64 end record without its locator.")
        (eocd64_offset,) = struct.unpack("<Q", tail[loc + 8:loc + 16])
        if eocd64_offset > size - 56:
            raise ValueError(f"{what} is damaged: its ZIP64 end record lies past the file.")
        f.seek(eocd64_offset)
        record = f.read(56)
        if record[:4] != _EOCD64:
            raise ValueError(f"{what} is damaged: no ZIP64 end record where its locator points.")
        n_entries, cd_size = struct.unpack("<QQ", record[32:48])
    f.seek(0)
    return n_entries, cd_size


def _check_directory(f, what: str, *, label: str, max_members: int,
                     max_directory_bytes: int) -> None:
    n_entries, cd_size = _zip_directory(f, what, label)
    if n_entries > max_members or cd_size > max_directory_bytes:
        raise ValueError(
            f"{what} is refused before extraction: its zip directory lists {n_entries} "
            f"members in {cd_size} bytes; at most {max_members} members in "
            f"{max_directory_bytes} bytes are expected. It is not a {label}, or it was "
            "crafted to exhaust memory."
        )


def _check_member(info: zipfile.ZipInfo, what: str, limit: int) -> None:
    """Refuse a member whose declared size or compression ratio is out of bounds."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise ValueError(f"{what}: member {name!r} is encrypted; bci files never are.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ValueError(f"{what}: member {name!r} uses compression method "
                         f"{info.compress_type}; bci files are stored or deflated.")
    if info.file_size > limit:
        raise ValueError(
            f"{what} is refused before extraction: member {name!r} declares "
            f"{_mib(info.file_size)} uncompressed, over the limit of {_mib(limit)}."
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > _RATIO_CHECK_BYTES and ratio > MAX_RATIO:
        raise ValueError(
            f"{what} is refused before extraction: member {name!r} declares "
            f"{_mib(info.file_size)} compressed into {_mib(info.compress_size)} (ratio "
            f"{ratio:.0f}:1, over {MAX_RATIO:.0f}:1): a zip bomb or a damaged file."
        )


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> bytes:
    """Read one checked member, never more than its declared size (+1 byte to detect lies)."""
    chunks, left = [], info.file_size + 1
    with zf.open(info) as member:
        while left > 0:
            chunk = member.read(min(left, 2**20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    data = b"".join(chunks)
    if len(data) != info.file_size:
        raise ValueError(f"{what} is damaged: member {info.filename!r} holds {len(data)} bytes, "
                         f"its directory says {info.file_size}.")
    return data


class Container:
    """A decoder or network file opened for reading, its zip directory checked.

    Members are read with :meth:`read`, bounded by their declared size. A context manager.

    Parameters
    ----------
    fname : path
        The file.
    manifest_name : str
        Name of the manifest member.
    payload_names : iterable of str
        Names a payload may have; any other member is refused.
    what : str
        How error messages name the file.
    label : str
        What the file should be, for messages (``"bci decoder file"``).
    """

    def __init__(self, fname, manifest_name: str, payload_names: Iterable[str], what: str,
                 label: str):
        self.what, self.label = what, label
        allowed = {manifest_name, *payload_names}
        self._file = open(fname, "rb")  # noqa: SIM115 - closed by close()
        self._zip = None
        try:
            _check_directory(self._file, what, label=label, max_members=MAX_MEMBERS,
                             max_directory_bytes=_MAX_DIRECTORY_BYTES)
            try:
                self._zip = zipfile.ZipFile(self._file)
            except (zipfile.BadZipFile, EOFError, OSError) as err:
                raise ValueError(f"{what} is not a {label} or is damaged ({err}).") from err
            self.members: dict[str, zipfile.ZipInfo] = {}
            for info in self._zip.infolist():
                if info.filename in self.members or info.filename not in allowed:
                    twice = " twice" if info.filename in self.members else ""
                    raise ValueError(
                        f"{what} holds an unexpected member {info.filename!r}{twice}; a "
                        f"{label} holds {manifest_name} and one of "
                        + ", ".join(sorted(allowed - {manifest_name})) + "."
                    )
                limit = MAX_MANIFEST_BYTES if info.filename == manifest_name \
                    else MAX_PAYLOAD_BYTES
                _check_member(info, what, limit)
                self.members[info.filename] = info
        except BaseException:
            self.close()
            raise

    def read(self, name: str) -> bytes:
        """Bytes of member ``name`` (``ValueError`` if absent or damaged)."""
        if name not in self.members:
            raise ValueError(f"{self.what} is not a {self.label} or is damaged: it has no "
                             f"{name}.")
        try:
            return _read_member(self._zip, self.members[name], self.what)
        except (zipfile.BadZipFile, EOFError, OSError) as err:
            raise ValueError(f"{self.what} is damaged ({err}); re-create it.") from err

    def close(self) -> None:
        """Close the archive and the file."""
        if self._zip is not None:
            self._zip.close()
        self._file.close()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_manifest(data: bytes, what: str, label: str) -> dict:
    """JSON object of a manifest; ``ValueError`` for anything else (deep nesting included)."""
    try:
        manifest = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{what} is not a {label} or is damaged: its manifest is not "
                         f"valid JSON ({type(err).__name__}).") from err
    if not isinstance(manifest, dict):
        raise ValueError(f"{what} is not a {label}: its manifest is not a JSON object.")
    return manifest


# ---------------------------------------------------------------------------------------------
# The digest of a file: canonical manifest + payload
# ---------------------------------------------------------------------------------------------
#: Manifest entries outside the digest: the digest itself and the signature made over it.
UNHASHED_FIELDS = ("sha256", "signature")


def canonical_manifest(manifest: dict) -> bytes:
    """Serialise the manifest without :data:`UNHASHED_FIELDS` as canonical JSON bytes.

    Sorted keys, no whitespace, ASCII: the same bytes whatever the file's own layout, so
    reading a manifest back and serialising it again gives what was hashed (Python floats
    round-trip through JSON exactly).
    """
    body = {k: v for k, v in manifest.items() if k not in UNHASHED_FIELDS}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def file_digest(manifest: dict, payload: bytes) -> str:
    """Hash a file: SHA-256 (hex) of a tag, the canonical manifest and the payload.

    Canonical JSON holds no raw NUL byte, so the NUL separators make the split unambiguous:
    no edit of the manifest can be offset by one of the payload. A signature signs this digest.
    """
    digest = hashlib.sha256(b"bci-file-v3\0")
    digest.update(canonical_manifest(manifest))
    digest.update(b"\0")
    digest.update(payload)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# Writing a file: checksums, signature, atomic write
# ---------------------------------------------------------------------------------------------
def signer_for(key: Any) -> Key | None:
    """Resolve the key that signs a file being saved.

    Parameters
    ----------
    key : bytes | str | Path | None
        As ``save_decoder``'s ``key`` (None: the lab key in ``BCI_DECODER_KEY``, if set).

    Returns
    -------
    signer : Key | None
        None when the file is left unsigned.

    Raises
    ------
    ValueError
        An Ed25519 public key, which verifies but cannot sign.
    """
    signer = resolve_key(key)
    if signer is not None and not signer.can_sign:
        raise ValueError(f"The key from {signer.source} is an Ed25519 public key: it verifies "
                         "signatures but cannot sign; sign with the private key.")
    return signer


def write_file(fname: Path, manifest: dict, payload_name: str, payload: bytes,
               signer: Key | None) -> None:
    """Add checksums (and a signature) to ``manifest``; write the archive atomically.

    Parameters
    ----------
    fname : Path
        Destination; parent folders are created. A temporary file (``fname`` + ``.part``) is
        written, then renamed.
    manifest : dict
        The manifest, without checksums; ``payload_sha256``, ``sha256`` and (with a signer)
        ``signature`` are added in place.
    payload_name : str
        Name of the payload member (one of :data:`PAYLOADS`).
    payload : bytes
        The payload.
    signer : Key | None
        Signs the file's digest (:func:`signer_for`); None leaves it unsigned.

    Raises
    ------
    TypeError
        The manifest is not JSON-serialisable.
    """
    manifest["payload_sha256"] = hashlib.sha256(payload).hexdigest()
    try:
        json.dumps(manifest)
    except TypeError as err:
        raise TypeError(f"The decoder's conventions and info must be JSON-serialisable "
                        f"({err}).") from None
    manifest["sha256"] = file_digest(manifest, payload)
    if signer is not None:
        manifest["signature"] = signer.sign(manifest["sha256"])
    fname.parent.mkdir(parents=True, exist_ok=True)
    tmp = fname.with_name(fname.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(MANIFEST, json.dumps(manifest, indent=2))
        zf.writestr(payload_name, payload)
    tmp.replace(fname)


# ---------------------------------------------------------------------------------------------
# Reading a file: format, version, payload, checksums, signature
# ---------------------------------------------------------------------------------------------
def read_file(fname: Path, kind: str, key: Any, require_signature: bool | None
              ) -> tuple[dict, str, bytes]:
    """Manifest, payload name and payload of a decoder or network file, checked and verified.

    The payload is chosen by the file's (format, version) in :data:`PAYLOADS`, read only after
    the zip directory passed its bounds, and returned only after its checksum (format 3: of the
    manifest too) and signature are verified.

    Parameters
    ----------
    fname : Path
        The file (it exists).
    kind : str
        The format the caller expects (:data:`FORMAT_NAME` or :data:`NETWORK_FORMAT_NAME`); the
        other one is accepted too (the caller says what to do with it). It names the file in
        messages.
    key : bytes | str | Path | None
        Verify the signature with this key (None: the lab key in ``BCI_DECODER_KEY``, if set).
    require_signature : bool | None
        Refuse unsigned files (see :func:`verify_signature`).

    Returns
    -------
    manifest : dict
    payload_name : str
    payload : bytes

    Raises
    ------
    ValueError
        Not a bci file, damaged, edited, refused, of a newer format, or a bad signature.
    """
    from .._checks import check_bool

    if require_signature is not None:
        require_signature = check_bool(require_signature, "require_signature")
    verifier = resolve_key(key)
    label = "decoder" if kind == FORMAT_NAME else "network or decoder"
    with Container(fname, MANIFEST, _ALL_PAYLOADS, str(fname), f"bci {label} file") as archive:
        manifest = parse_manifest(archive.read(MANIFEST), str(fname), archive.label)
        fmt, version = manifest.get("format"), manifest.get("format_version")
        if fmt not in (FORMAT_NAME, NETWORK_FORMAT_NAME, ONNX_FORMAT_NAME):
            raise ValueError(f"{fname} is not a bci {label} file (no {kind!r} manifest).")
        if type(version) is not int or version < 1:
            raise ValueError(f"{fname} is not a bci {label} file or is damaged: format_version "
                             f"must be a positive integer, got {version!r}.")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{fname} was written by bci {manifest.get('bci_version', '?')} in format "
                f"{version}; this bci ({__version__}) reads format <= {FORMAT_VERSION}. Upgrade "
                "bci, or re-train the decoder with this version."
            )
        allowed = PAYLOADS.get((fmt, version))
        if allowed is None:
            raise ValueError(f"{fname} is not a bci {label} file: {fmt} files have no format "
                             f"{version}.")
        payload_name = manifest.get("payload", JOBLIB_PAYLOAD if version == 1 else None)
        if payload_name not in allowed:
            raise ValueError(
                f"{fname} is refused: a {fmt} file of format {version} holds "
                + " or ".join(allowed) + f", but its manifest names {payload_name!r} (an "
                "edited or crafted file)."
            )
        extra = sorted(set(archive.members) - {MANIFEST, payload_name})
        if extra:
            raise ValueError(f"{fname} is refused: it holds {', '.join(extra)} beside its "
                             f"{payload_name}.")
        payload = archive.read(payload_name)
    if hashlib.sha256(payload).hexdigest() != manifest.get("payload_sha256"):
        raise ValueError(f"{fname} is damaged: its payload ({payload_name}) does not match the "
                         "checksum in its manifest; re-create it.")
    if version >= 3:
        digest = file_digest(manifest, payload)
        if digest != manifest.get("sha256"):
            raise ValueError(
                f"{fname} was edited after it was saved: its manifest (classes, channels, "
                "unit_factor, filters, window...) does not match its checksum. Do not use it; "
                "re-create it, or get the original file."
            )
    else:
        digest = None
        logger.warning("%s is a format-%d file: only its payload is checksummed, not its "
                       "manifest (classes, channels, unit_factor); re-save it to protect them.",
                       fname, version)
    verify_signature(fname, manifest, digest, verifier, require_signature)
    return manifest, payload_name, payload


def verify_signature(fname: Path, manifest: dict, digest: str | None, key: Key | None,
                     require: bool | None) -> None:
    """Check the signature of a file against ``key`` (see ``load_decoder``).

    Parameters
    ----------
    fname : Path
        The file, for messages.
    manifest : dict
        Its manifest; its ``signature`` entry, if any, is checked.
    digest : str | None
        The file's verified digest (:func:`file_digest`); None for format-1/2 files, which carry
        no signature.
    key : Key | None
        The verifying key; None logs that a signed file was not verified.
    require : bool | None
        Refuse unsigned files; None: required when a key is given.

    Raises
    ------
    ValueError
        A required signature missing (or no key to verify it with), a malformed signature, a
        key of another algorithm, or a signature that does not verify.
    """
    if require is None:
        require = key is not None
    signature = manifest.get("signature") if digest is not None else None
    if require and key is None:
        raise ValueError(f"require_signature=True needs a key to verify {fname} with: pass "
                         f"key=<key file> or set {ENV_KEY}.")
    if signature is None:
        if require:
            raise ValueError(
                f"{fname} is not signed, and a signature is required (a key was given"
                f"{' through ' + ENV_KEY if key.source == ENV_KEY else ''}). Sign it where it "
                "was made (save_decoder(..., key=...), `bci train --sign-key FILE`), or pass "
                "require_signature=False to accept unsigned files."
            )
        return
    if not (isinstance(signature, dict)
            and all(isinstance(signature.get(k), str) for k in ("algorithm", "value"))):
        raise ValueError(f"{fname} is damaged: its signature entry is malformed.")
    if key is None:
        logger.info("%s is signed (%s); its signature was not verified (no key given).",
                    fname, signature["algorithm"])
        return
    if signature["algorithm"] != key.algorithm:
        raise ValueError(f"{fname} is signed with {signature['algorithm']}, but the key from "
                         f"{key.source} is a {key.algorithm} key; verify it with the key it "
                         "was signed with.")
    if not key.verify(digest, signature["value"]):
        raise ValueError(
            f"{fname} fails signature verification with the key from {key.source} (key id "
            f"{key.key_id}; the file names key id {signature.get('key_id', '?')}): it was "
            "changed after it was signed, or signed with another key. Do not use it."
        )
    logger.info("%s: signature verified (%s, key id %s).", fname, key.algorithm, key.key_id)


# ---------------------------------------------------------------------------------------------
# Manifest fields and loading options
# ---------------------------------------------------------------------------------------------
def decoder_meta(manifest: dict, fname: Path, *, known: set[str], required: set[str]) -> dict:
    """Check and return the decoder's conventions in a manifest.

    Parameters
    ----------
    manifest : dict
        A verified manifest (:func:`read_file`).
    fname : Path
        The file, for messages.
    known : set of str
        The entries a ``decoder`` entry may hold (the Decoder's fields but its estimator).
    required : set of str
        The entries it must hold.

    Returns
    -------
    meta : dict
        The ``decoder`` entry, its ``filters`` as tuples: the Decoder's arguments but its
        estimator.

    Raises
    ------
    ValueError
        A network file, or a missing or malformed ``decoder`` entry.
    """
    if manifest.get("format") == NETWORK_FORMAT_NAME:
        raise ValueError(f"{fname} is a network file (a trained network without a decoder's "
                         "recording conventions); read it with bci.models.decoder.load_network.")
    meta = manifest.get("decoder")
    problem = None
    if not isinstance(meta, dict):
        problem = "no 'decoder' entry"
    elif set(meta) - known or required - set(meta):
        problem = (f"unknown entries {sorted(set(meta) - known)}, missing "
                   f"{sorted(required - set(meta))}")
    else:
        meta = dict(meta)
        lists_of_str = all(isinstance(meta[k], list) and all(isinstance(c, str) for c in meta[k])
                           for k in ("ch_names", "classes"))
        numbers = [meta[k] for k in ("sfreq", "tmin", "tmax")] + [meta.get("unit_factor", 1.0)]
        finite = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                     for v in numbers)
        bands = meta.get("filters", [])
        if not lists_of_str:
            problem = "ch_names and classes must be lists of str"
        elif not finite or meta["sfreq"] <= 0 or meta.get("unit_factor", 1.0) <= 0:
            problem = "sfreq, tmin, tmax and unit_factor must be finite (sfreq, unit_factor > 0)"
        elif not (isinstance(bands, list) and all(isinstance(b, list) and len(b) == 2
                                                   for b in bands)):
            problem = "filters must be a list of [low, high] bands"
        elif not isinstance(meta.get("info", {}), dict):
            problem = "info must be an object"
        elif not _valid_ch_types(meta.get("info", {}).get("ch_types"), len(meta["ch_names"])):
            problem = "info.ch_types must list one channel type (str) a channel"
        else:
            meta["filters"] = [tuple(band) for band in bands]
    if problem:
        raise ValueError(f"{fname} is not a valid decoder file: its manifest's decoder entry is "
                         f"malformed ({problem}).")
    return meta


def _valid_ch_types(ch_types: Any, n_chans: int) -> bool:
    """Whether ``info["ch_types"]`` is absent (files before bci recorded it) or one str a channel.

    Decoders trained since the channel types were recorded (``bci.pipelines.train``) keep the
    MNE type of each channel (``eeg``, ``mag``, ``grad``, ``seeg``, ``ecog``...) in their
    ``info``; the live loop refuses a stream whose channels are of other types.
    """
    if ch_types is None:
        return True
    return (isinstance(ch_types, list) and len(ch_types) == n_chans
            and all(isinstance(t, str) and t for t in ch_types))


def check_trusted_types(trusted_types: Any) -> tuple[str, ...]:
    """``load_decoder``'s ``trusted_types`` as a tuple (``TypeError`` unless names as str)."""
    if isinstance(trusted_types, str) or not isinstance(trusted_types, (list, tuple, set)) \
            or not all(isinstance(t, str) for t in trusted_types):
        raise TypeError("trusted_types must be a sequence of fully qualified type names "
                        f"(str), e.g. ['mypackage.MyTransformer']; got {trusted_types!r}.")
    return tuple(trusted_types)


# ---------------------------------------------------------------------------------------------
# skops payloads
# ---------------------------------------------------------------------------------------------
def dump_pipeline(estimator: Any) -> bytes:
    """Serialise a fitted scikit-learn estimator as a skops payload (no pickle)."""
    import skops.io as sio

    return sio.dumps(estimator)


def untrusted_types(payload: bytes, what: str) -> list[str]:
    """Type names in a skops payload that neither skops nor :data:`TRUSTED_TYPES` trust."""
    import skops.io as sio

    check_skops_payload(payload, what)
    try:
        names = sio.get_untrusted_types(data=payload)
    except (KeyError, TypeError, ValueError, AttributeError, zipfile.BadZipFile,
            json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{what} is damaged: its skops payload cannot be read "
                         f"({type(err).__name__}: {err}).") from err
    return sorted(set(names) - set(TRUSTED_TYPES))


def load_pipeline(payload: bytes, what: str, *, trusted_types: Iterable[str] = ()) -> Any:
    """Rebuild an estimator from a skops payload, trusting only known types.

    ``ValueError`` naming the untrusted types (and how to proceed) when the payload names a
    type outside skops' defaults, :data:`TRUSTED_TYPES` and ``trusted_types``.
    """
    import skops.io as sio

    extra = set(trusted_types)
    refused = [t for t in untrusted_types(payload, what) if t not in extra]
    if refused:
        raise ValueError(
            f"{what} holds types that bci does not trust, so it was not loaded: "
            f"{', '.join(refused)}. Loading a type can run its code. If you know where the "
            "file comes from and trust these types, pass them explicitly: "
            f"load_decoder(path, trusted_types={refused!r}); otherwise re-train the decoder "
            "with `bci train` and a registered pipeline."
        )
    names = sio.get_untrusted_types(data=payload)
    try:
        return sio.loads(payload, trusted=names)
    except (KeyError, TypeError, ValueError, AttributeError, ImportError, zipfile.BadZipFile,
            json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{what} could not be rebuilt from its skops payload "
                         f"({type(err).__name__}: {err}); it may come from an incompatible "
                         "skops or scikit-learn version: re-create it.") from err


def check_skops_payload(payload: bytes, what: str) -> None:
    """Bound a skops payload before skops opens it.

    A skops payload written by bci is a zip of ``schema.json`` and one ``.npy`` file per array,
    stored uncompressed: so the declared sizes cannot exceed the payload, and each array's
    header (shape and dtype) must account exactly for its bytes (numpy allocates from the
    header before it reads). Anything else is refused.
    """
    buffer = io.BytesIO(payload)
    _check_directory(buffer, what, label="skops payload", max_members=_MAX_SKOPS_MEMBERS,
                     max_directory_bytes=_MAX_SKOPS_DIRECTORY_BYTES)
    try:
        with zipfile.ZipFile(buffer) as zf:
            infos = zf.infolist()
            if sum(i.file_size for i in infos) > len(payload):
                raise ValueError(f"{what} is refused: its skops payload declares more bytes "
                                 "than it holds.")
            for info in infos:
                name = info.filename
                if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1 \
                        or info.file_size != info.compress_size:
                    raise ValueError(f"{what} is refused: member {name!r} of its skops payload "
                                     "is compressed or encrypted; bci stores them as they are.")
                if name == "schema.json":
                    continue
                if not name.endswith(".npy") or "/" in name:
                    raise ValueError(f"{what} is refused: its skops payload holds {name!r}; "
                                     "bci payloads hold only schema.json and .npy arrays.")
                shape, dtype, header = _npy_header(zf, info, what)
                if dtype.hasobject:
                    raise ValueError(f"{what} is refused: array {name!r} of its skops payload "
                                     "holds Python objects (a pickle).")
                n_bytes = math.prod(shape) * dtype.itemsize
                if n_bytes != info.file_size - header:
                    raise ValueError(f"{what} is refused: array {name!r} of its skops payload "
                                     f"declares shape {shape} of {dtype} ({n_bytes} bytes) "
                                     f"in {info.file_size} bytes.")
    except (zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{what} is damaged: its skops payload is not a valid archive "
                         f"({err}).") from err


def _npy_header(zf: zipfile.ZipFile, info: zipfile.ZipInfo, what: str) -> tuple:
    """Shape, dtype and header length (bytes) of a ``.npy`` member, from its header alone."""
    import numpy as np

    with zf.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(member)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as err:
            raise ValueError(f"{what} is refused: array {info.filename!r} of its skops payload "
                             f"has no valid .npy header ({err}).") from err
        return shape, dtype, member.tell()


# ---------------------------------------------------------------------------------------------
# Pickles (formats 1-2, only with trust) and network weights (torch alone)
# ---------------------------------------------------------------------------------------------
def load_pickle(payload: bytes, fname: Path, version: int, trust: bool) -> Any:
    """Unpickle the joblib payload of a format-1/2 file, only with ``trust=True`` (warns).

    The warning is attributed to the caller of ``load_decoder`` (which calls this directly).
    """
    if not trust:
        raise ValueError(
            f"{fname} is a decoder file of format {version}, whose estimator is a pickle: "
            "loading it can run any code, so bci does not load it by default. If you made the "
            "file yourself or trust where it comes from, load it once with "
            "bci.load_decoder(path, trust=True) and re-save it with decoder.save(new_path) "
            "(format 3, no pickle); otherwise re-train it with `bci train`."
        )
    message = (f"Loading {fname} with trust=True: its estimator is a pickle (decoder format "
               f"{version}), which can run any code while it loads. Re-save it with "
               "decoder.save(new_path) to get a format-3 file that loads without trust.")
    logger.warning(message)
    warnings.warn(message, UserWarning, stacklevel=3)
    import joblib

    return joblib.load(io.BytesIO(payload))


def torch_weights(payload: bytes, fname: Path) -> dict:
    """``torch.load(weights_only=True)``: tensors and containers only, never a pickle's code."""
    import pickle

    import torch

    try:
        return torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        raise ValueError(f"{fname} is refused: its network.pt is not plain weights "
                         f"({type(err).__name__}).") from err
