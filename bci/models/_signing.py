"""Signed decoder files: a lab key (HMAC-SHA256) or an Ed25519 key pair.

Private helpers of :mod:`bci.models.decoder`. A signature covers the file's digest (its
canonical manifest and its payload), so changing either, or signing with another key, fails
verification. The key, not the file, decides the algorithm: a file that claims another algorithm
than the key given is refused (an HMAC "signature" made with a lab's *public* Ed25519 key would
otherwise verify).

- ``hmac-sha256`` (standard library): one secret lab key signs and verifies; whoever can verify
  can also sign. The key is at least 32 bytes (RFC 2104: shorter than the hash output is
  discouraged), from a key file (``generate_key``) or the environment variable
  ``BCI_DECODER_KEY``.
- ``ed25519`` (the ``cryptography`` package, ``pip install 'bci[sign]'``): the lab signs with its
  private key (PEM, PKCS #8) and publishes the public key (PEM); holders of the public key verify
  but cannot sign.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any, Literal

from .._logging import logger

#: Environment variable holding the lab's HMAC key (used when no key is passed).
ENV_KEY = "BCI_DECODER_KEY"
#: Shortest HMAC key accepted (bytes): the SHA-256 output length (RFC 2104).
MIN_HMAC_KEY_BYTES = 32
HMAC_SHA256 = "hmac-sha256"
ED25519 = "ed25519"
_MAX_KEY_FILE_BYTES = 2**16
_PEM = b"-----BEGIN"
_SIGN_EXTRA = "pip install 'bci[sign]'  (or: pip install cryptography)"


def _cryptography():
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError as err:
        raise ImportError(f"Ed25519 keys need the cryptography package: {_SIGN_EXTRA}") from err
    return serialization, ed25519


class Key:
    """A signing or verifying key; its material never appears in its repr or in messages.

    Parameters
    ----------
    algorithm : "hmac-sha256" | "ed25519"
        What the key signs with.
    source : str
        Where it came from, for messages (``"BCI_DECODER_KEY"``, ``"key file lab.key"``...).
    secret : bytes | None
        The HMAC key.
    private, public : cryptography Ed25519 keys | None
        The Ed25519 key pair (``private`` None for a verify-only key).
    """

    def __init__(self, algorithm: str, source: str, *, secret: bytes | None = None,
                 private: Any = None, public: Any = None):
        self.algorithm = algorithm
        self.source = source
        self._secret = secret
        self._private = private
        self._public = public
        if algorithm == HMAC_SHA256:
            self.key_id = hashlib.sha256(b"bci-key-id\0" + secret).hexdigest()[:16]
        else:
            serialization, _ = _cryptography()
            raw = public.public_bytes(serialization.Encoding.Raw,
                                      serialization.PublicFormat.Raw)
            self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"<{self.algorithm} key {self.key_id} from {self.source}>"

    @property
    def can_sign(self) -> bool:
        """True for an HMAC key or an Ed25519 private key."""
        return self.algorithm == HMAC_SHA256 or self._private is not None

    def sign(self, digest: str) -> dict:
        """Make the ``signature`` manifest entry for a file digest (hex SHA-256)."""
        message = _message(digest)
        if self.algorithm == HMAC_SHA256:
            value = hmac.new(self._secret, message, hashlib.sha256).hexdigest()
        elif self._private is None:
            raise ValueError(f"The key from {self.source} is an Ed25519 public key: it verifies "
                             "signatures but cannot sign; sign with the private key.")
        else:
            value = self._private.sign(message).hex()
        return {"algorithm": self.algorithm, "key_id": self.key_id, "value": value}

    def verify(self, digest: str, signature: str) -> bool:
        """Whether ``signature`` (hex) signs ``digest`` under this key."""
        message = _message(digest)
        try:
            value = bytes.fromhex(signature)
        except ValueError:
            return False
        if self.algorithm == HMAC_SHA256:
            expected = hmac.new(self._secret, message, hashlib.sha256).digest()
            return hmac.compare_digest(expected, value)
        from cryptography.exceptions import InvalidSignature

        try:
            self._public.verify(value, message)
        except InvalidSignature:
            return False
        return True


def _message(digest: str) -> bytes:
    return b"bci-signature-v1\0" + digest.encode("ascii")


def _hmac_key(secret: bytes, source: str) -> Key:
    if len(secret) < MIN_HMAC_KEY_BYTES:
        raise ValueError(
            f"The HMAC key from {source} has {len(secret)} bytes; a lab key needs at least "
            f"{MIN_HMAC_KEY_BYTES} random bytes. Make one with "
            "bci.models.decoder.generate_key(path)."
        )
    return Key(HMAC_SHA256, source, secret=secret)


def _pem_key(data: bytes, source: str) -> Key:
    serialization, ed25519 = _cryptography()
    if b"PRIVATE KEY" in data.split(b"\n", 1)[0]:
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as err:
            raise ValueError(f"The key from {source} is not a readable unencrypted PEM "
                             f"private key ({type(err).__name__}).") from None
        if not isinstance(private, ed25519.Ed25519PrivateKey):
            raise ValueError(f"The key from {source} is a {type(private).__name__}; bci signs "
                             "with Ed25519 keys (generate_key(path, algorithm='ed25519')).")
        return Key(ED25519, source, private=private, public=private.public_key())
    try:
        public = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise ValueError(f"The key from {source} is not a readable PEM public key "
                         f"({type(err).__name__}).") from None
    if not isinstance(public, ed25519.Ed25519PublicKey):
        raise ValueError(f"The key from {source} is a {type(public).__name__}; bci verifies "
                         "Ed25519 signatures.")
    return Key(ED25519, source, public=public)


def _from_bytes(data: bytes, source: str, *, strip: bool) -> Key:
    if data.lstrip().startswith(_PEM):
        return _pem_key(data.strip(), source)
    return _hmac_key(data.strip() if strip else data, source)


def resolve_key(key: Any) -> Key | None:
    """Find the key to sign or verify with: ``key``, else ``BCI_DECODER_KEY``, else None.

    Parameters
    ----------
    key : bytes | str | Path | Key | cryptography Ed25519 key | None
        ``bytes``: the key itself (an HMAC secret, or a PEM Ed25519 key); ``str`` or ``Path``:
        the path of a key file (surrounding whitespace of an HMAC key file is ignored);
        None: the environment variable ``BCI_DECODER_KEY`` (an HMAC secret) if set.

    Returns
    -------
    key : Key | None
    """
    if key is None:
        value = os.environ.get(ENV_KEY)
        if not value:
            return None
        return _from_bytes(value.encode("utf-8"), ENV_KEY, strip=True)
    if isinstance(key, Key):
        return key
    if isinstance(key, (bytes, bytearray)):
        return _from_bytes(bytes(key), "the key bytes given", strip=False)
    if isinstance(key, (str, os.PathLike)):
        path = Path(key)
        if not path.is_file():
            # a str may be a secret passed by mistake: never echo it
            shown = str(path) if isinstance(key, os.PathLike) else "the str given"
            raise FileNotFoundError(
                f"No key file at {shown}. A str or Path key is the path of a key file (make one "
                "with bci.models.decoder.generate_key); pass the key itself as bytes."
            )
        if path.stat().st_size > _MAX_KEY_FILE_BYTES:
            raise ValueError(f"{path} is not a key file (over {_MAX_KEY_FILE_BYTES} bytes).")
        return _from_bytes(path.read_bytes(), f"key file {path.name}", strip=True)
    try:
        _, ed25519 = _cryptography()
    except ImportError:
        ed25519 = None
    if ed25519 is not None and isinstance(key, ed25519.Ed25519PrivateKey):
        return Key(ED25519, "the Ed25519 private key given", private=key,
                   public=key.public_key())
    if ed25519 is not None and isinstance(key, ed25519.Ed25519PublicKey):
        return Key(ED25519, "the Ed25519 public key given", public=key)
    raise TypeError(f"key must be bytes (the key), a str or Path (a key file), an Ed25519 key "
                    f"or None; got {type(key).__name__}.")


def generate_key(fname: str | Path, *,
                 algorithm: Literal["hmac-sha256", "ed25519"] = HMAC_SHA256) -> Path:
    """Write a new random signing key for decoder files.

    Parameters
    ----------
    fname : str | Path
        Key file to create (never overwritten; readable by its owner only).
    algorithm : "hmac-sha256" | "ed25519"
        ``"hmac-sha256"``: a lab key of 32 random bytes written as 64 hex digits; the same file
        signs and verifies (keep it secret; ``BCI_DECODER_KEY`` may hold its content instead).
        ``"ed25519"``: a private key (PEM) in ``fname`` that signs, and its public key in
        ``fname`` + ``".pub"`` that verifies and can be shared (needs ``bci[sign]``).

    Returns
    -------
    fname : Path
        The key that signs.

    Examples
    --------
    >>> import tempfile
    >>> from bci.models.decoder import generate_key
    >>> path = generate_key(tempfile.mkdtemp() + "/lab.key")
    >>> len(path.read_text().strip())
    64
    """
    from .._checks import check_option

    check_option("algorithm", algorithm, [HMAC_SHA256, ED25519])
    fname = Path(fname)
    if algorithm == HMAC_SHA256:
        _write_new(fname, (secrets.token_hex(32) + "\n").encode("ascii"))
    else:
        serialization, ed25519 = _cryptography()
        private = ed25519.Ed25519PrivateKey.generate()
        public = fname.with_name(fname.name + ".pub")
        if public.exists():
            raise FileExistsError(f"{public} exists; choose another key name.")
        _write_new(fname, private.private_bytes(serialization.Encoding.PEM,
                                                serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        _write_new(public, private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
            mode=0o644)
    logger.info("Wrote a new %s key to %s", algorithm, fname)
    return fname


def _write_new(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; bci never overwrites a key file.") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
