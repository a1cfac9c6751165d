"""Signed decoder and network files: HMAC-SHA256 lab keys and Ed25519 key pairs; the CLI flags."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import zipfile
from functools import partial

import numpy as np
import pytest

from bci.cli import main
from bci.models.decoder import (
    Decoder,
    generate_key,
    load_decoder,
    load_network,
    save_decoder,
    save_network,
)
from tests._helpers import rewrite_decoder_file


@pytest.fixture(autouse=True)
def _no_lab_key(monkeypatch):
    monkeypatch.delenv("BCI_DECODER_KEY", raising=False)


@pytest.fixture(scope="module")
def decoder():
    from bci.pipelines import get_pipeline

    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 2, 16))
    y = np.arange(30) % 2
    X[y == 1, 0] *= 3.0  # class 1: more power on C3
    est = get_pipeline("MDM").fit(X, y)
    return Decoder(estimator=est, ch_names=["C3", "C4"], sfreq=4.0, tmin=0.0, tmax=3.75,
                   classes=["left", "right"]), X


#: copy a file with an edit and *correct* checksums: only a signature can tell
_edited = partial(rewrite_decoder_file, rehash=True)


def _manifest(path):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("manifest.json"))


def test_generate_key(tmp_path):
    key = generate_key(tmp_path / "keys" / "lab.key")
    text = key.read_text()
    assert len(text.strip()) == 64
    int(text, 16)  # 32 random bytes as hex
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert generate_key(tmp_path / "other.key").read_text() != text
    with pytest.raises(FileExistsError, match="never overwrites a key file"):
        generate_key(key)
    with pytest.raises(ValueError, match="Unknown algorithm 'rsa'"):
        generate_key(tmp_path / "x.key", algorithm="rsa")


def test_hmac_signed_file_verifies(decoder, tmp_path):
    dec, X = decoder
    key = generate_key(tmp_path / "lab.key")
    path = save_decoder(dec, tmp_path / "signed.bci", key=key)
    signature = _manifest(path)["signature"]
    assert signature["algorithm"] == "hmac-sha256"
    assert len(signature["value"]) == 64
    # the signature is HMAC-SHA256 over the file digest, with the key file's bytes
    expected = hmac.new(key.read_text().strip().encode(), b"bci-signature-v1\0"
                        + _manifest(path)["sha256"].encode(), hashlib.sha256).hexdigest()
    assert signature["value"] == expected
    for k in (key, str(key), key.read_bytes().strip()):
        loaded = load_decoder(path, key=k)
        np.testing.assert_array_equal(loaded.predict_proba(X), dec.predict_proba(X))
    assert load_decoder(path).classes == dec.classes  # no key: loads, signature unchecked
    assert dec.save(tmp_path / "method.bci", key=key).is_file()  # Decoder.save signs too
    assert load_decoder(tmp_path / "method.bci", key=key).classes == dec.classes


@pytest.mark.parametrize("edit", ["payload", "classes", "unit_factor", "signature"])
def test_tampered_signed_file_fails(decoder, tmp_path, edit):
    dec, _ = decoder
    key = generate_key(tmp_path / "lab.key")
    path = save_decoder(dec, tmp_path / "signed.bci", key=key)
    edits = {
        "payload": {"payload_edit": lambda b: b.replace(b"schema.json", b"schema.jsoN", 1)},
        "classes": {"manifest_edit": lambda m: m["decoder"].update(classes=["right", "left"])},
        "unit_factor": {"manifest_edit": lambda m: m["decoder"].update(unit_factor=1e6)},
        "signature": {"manifest_edit": lambda m: m["signature"].update(
            value=m["signature"]["value"][::-1])},
    }
    tampered = _edited(path, tmp_path / "tampered.bci", **edits[edit])
    with pytest.raises(ValueError, match="fails signature verification with the key from key "
                                         "file lab.key.*changed after it was signed"):
        load_decoder(tampered, key=key)


def test_wrong_key_fails(decoder, tmp_path):
    dec, _ = decoder
    key = generate_key(tmp_path / "lab.key")
    other = generate_key(tmp_path / "other.key")
    path = save_decoder(dec, tmp_path / "signed.bci", key=key)
    file_id = _manifest(path)["signature"]["key_id"]
    with pytest.raises(ValueError, match=rf"fails signature verification.*the file names key id "
                                         rf"{file_id}\).*signed with another key"):
        load_decoder(path, key=other)


def test_unsigned_files_and_require_signature(decoder, tmp_path):
    dec, _ = decoder
    key = generate_key(tmp_path / "lab.key")
    path = save_decoder(dec, tmp_path / "unsigned.bci")
    assert "signature" not in _manifest(path)
    with pytest.raises(ValueError, match="is not signed, and a signature is required.*"
                                         "--sign-key FILE.*require_signature=False"):
        load_decoder(path, key=key)
    with pytest.raises(ValueError, match="require_signature=True needs a key"):
        load_decoder(path, require_signature=True)
    with pytest.raises(TypeError, match="require_signature must be"):
        load_decoder(path, require_signature="yes")
    assert load_decoder(path, key=key, require_signature=False).classes == dec.classes
    signed = save_decoder(dec, tmp_path / "signed.bci", key=key)
    assert load_decoder(signed, key=key, require_signature=True).classes == dec.classes


def test_lab_key_from_the_environment(decoder, tmp_path, monkeypatch):
    dec, _ = decoder
    secret = "f" * 64
    monkeypatch.setenv("BCI_DECODER_KEY", secret)
    path = save_decoder(dec, tmp_path / "env.bci")  # signed by the environment's key
    assert _manifest(path)["signature"]["algorithm"] == "hmac-sha256"
    assert load_decoder(path).classes == dec.classes
    assert load_decoder(path, key=secret.encode()).classes == dec.classes
    unsigned = tmp_path / "unsigned.bci"
    monkeypatch.delenv("BCI_DECODER_KEY")
    save_decoder(dec, unsigned)
    monkeypatch.setenv("BCI_DECODER_KEY", secret)
    with pytest.raises(ValueError, match="is not signed.*a key was given through "
                                         "BCI_DECODER_KEY"):
        load_decoder(unsigned)
    monkeypatch.setenv("BCI_DECODER_KEY", "g" * 64)
    with pytest.raises(ValueError, match="fails signature verification with the key from "
                                         "BCI_DECODER_KEY"):
        load_decoder(path)
    monkeypatch.setenv("BCI_DECODER_KEY", "short")
    with pytest.raises(ValueError, match="The HMAC key from BCI_DECODER_KEY has 5 bytes; a lab "
                                         "key needs at least 32"):
        save_decoder(dec, tmp_path / "x.bci")


def test_key_argument_errors(decoder, tmp_path):
    dec, _ = decoder
    with pytest.raises(ValueError, match="has 5 bytes; a lab key needs at least 32 random"):
        save_decoder(dec, tmp_path / "x.bci", key=b"short")
    secret_typed_as_str = "s3cr3t-" * 8
    with pytest.raises(FileNotFoundError, match="No key file at the str given") as err:
        save_decoder(dec, tmp_path / "x.bci", key=secret_typed_as_str)
    assert secret_typed_as_str not in str(err.value)  # never echo what may be a secret
    with pytest.raises(FileNotFoundError, match="No key file at .*missing.key"):
        save_decoder(dec, tmp_path / "x.bci", key=tmp_path / "missing.key")
    with pytest.raises(TypeError, match="key must be bytes"):
        save_decoder(dec, tmp_path / "x.bci", key=42)
    assert not (tmp_path / "x.bci").exists()


def test_ed25519_signed_files(decoder, tmp_path):
    pytest.importorskip("cryptography")
    dec, X = decoder
    private = generate_key(tmp_path / "lab.key", algorithm="ed25519")
    public = tmp_path / "lab.key.pub"
    assert private.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    path = save_decoder(dec, tmp_path / "signed.bci", key=private)
    signature = _manifest(path)["signature"]
    assert signature["algorithm"] == "ed25519"
    assert len(bytes.fromhex(signature["value"])) == 64
    loaded = load_decoder(path, key=public)  # the public key verifies
    np.testing.assert_array_equal(loaded.predict_proba(X), dec.predict_proba(X))
    assert load_decoder(path, key=private).classes == dec.classes  # so does the private one
    with pytest.raises(ValueError, match="is an Ed25519 public key: it verifies signatures but "
                                         "cannot sign"):
        save_decoder(dec, tmp_path / "x.bci", key=public)
    tampered = _edited(path, tmp_path / "tampered.bci",
                     lambda m: m["decoder"].update(classes=["right", "left"]))
    with pytest.raises(ValueError, match="fails signature verification"):
        load_decoder(tampered, key=public)
    other = generate_key(tmp_path / "other.key", algorithm="ed25519")
    with pytest.raises(ValueError, match="fails signature verification"):
        load_decoder(path, key=tmp_path / "other.key.pub")
    with pytest.raises(ValueError, match="is signed with ed25519, but the key from key file "
                                         "lab.hmac is a hmac-sha256 key"):
        load_decoder(path, key=generate_key(tmp_path / "lab.hmac"))
    assert other.is_file()


def test_the_file_cannot_choose_the_algorithm(decoder, tmp_path):
    """HMAC "signed" with the lab's public Ed25519 key (which anyone has): refused."""
    pytest.importorskip("cryptography")
    dec, _ = decoder
    generate_key(tmp_path / "lab.key", algorithm="ed25519")
    public = tmp_path / "lab.key.pub"
    path = save_decoder(dec, tmp_path / "signed.bci", key=tmp_path / "lab.key")
    forged = _edited(path, tmp_path / "forged.bci",
                   lambda m: m["decoder"].update(classes=["right", "left"]))
    manifest = _manifest(forged)
    value = hmac.new(public.read_bytes().strip(),
                     b"bci-signature-v1\0" + manifest["sha256"].encode(), hashlib.sha256)
    manifest["signature"] = {"algorithm": "hmac-sha256", "value": value.hexdigest()}
    with zipfile.ZipFile(forged) as zf:
        payload = zf.read("estimator.skops")
    with zipfile.ZipFile(forged, "w") as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr("estimator.skops", payload)
    with pytest.raises(ValueError, match="is signed with hmac-sha256, but the key from key file "
                                         "lab.key.pub is a ed25519 key"):
        load_decoder(forged, key=public)


def test_signed_network_files(tmp_path):
    import torch

    from bci.models.spiking.ibmi import SNNStreaming

    model = SNNStreaming(4, 2, sfreq=20.0, n_hidden=8).eval()
    key = generate_key(tmp_path / "lab.key")
    path = save_network(model, tmp_path / "snn.bci", key=key)
    back = load_network(path, key=key)
    assert torch.equal(back.fc_in.weight, model.fc_in.weight)
    with pytest.raises(ValueError, match="fails signature verification"):
        load_network(path, key=generate_key(tmp_path / "other.key"))
    with pytest.raises(ValueError, match="is not signed"):
        load_network(save_network(model, tmp_path / "unsigned.bci"), key=key)


def test_format_2_files_cannot_be_signed(decoder, tmp_path):
    dec, _ = decoder
    key = generate_key(tmp_path / "lab.key")
    path = save_decoder(dec, tmp_path / "v3.bci", key=key)
    old = _edited(path, tmp_path / "v2.bci", lambda m: m.update(format_version=2))
    with pytest.raises(ValueError, match="refused: a bci-decoder file of format 2 holds "
                                         "estimator.joblib or network.pt"):
        load_decoder(old, key=key)


# ---------------------------------------------------------------------------------------------
# CLI: bci train --sign-key, bci stream --decoder-key
# ---------------------------------------------------------------------------------------------
def test_cli_train_signs_and_stream_verifies(tmp_path, capsys):
    key = generate_key(tmp_path / "lab.key")
    out = tmp_path / "mdm.bci"
    assert main(["train", "--dataset", "SyntheticMotorImagery", "--pipeline", "MDM",
                 "--subjects", "1", "--out", str(out), "--sign-key", str(key)]) == 0
    assert "Saved MDM decoder" in capsys.readouterr().out
    assert _manifest(out)["signature"]["algorithm"] == "hmac-sha256"
    assert load_decoder(out, key=key).info["pipeline"] == "MDM"

    other = generate_key(tmp_path / "other.key")
    source = f"bci-no-such-stream-{os.getpid()}"
    stream = ["stream", "--source", source, "--stimulator", "none", "--timeout", "0.2",
              "--decoder", str(out)]
    assert main([*stream, "--decoder-key", str(other)]) == 2
    err = capsys.readouterr().err
    assert "bci stream: error:" in err
    assert "fails signature verification" in err
    assert "No LSL stream" not in err  # refused before looking for the source
    assert main([*stream, "--decoder-key", str(key)]) == 2  # verified; then no such source
    err = capsys.readouterr().err
    assert f"No LSL stream with name={source!r}" in err
    assert "signature" not in err
    unsigned = tmp_path / "unsigned.bci"
    save_decoder(load_decoder(out), unsigned)
    assert main(["stream", "--source", source, "--decoder", str(unsigned), "--decoder-key",
                 str(key), "--timeout", "0.2"]) == 2
    assert "is not signed, and a signature is required" in capsys.readouterr().err
    assert main(["stream", "--source", source, "--decoder-key", str(key)]) == 2
    assert "--decoder-key verifies a --decoder file" in capsys.readouterr().err
