"""Decoder and network files run no code when loaded, and zip bombs are refused early.

Each malicious file here is first shown to be live (loading its payload the unsafe way creates
a file), then shown to be refused by bci's loaders without creating anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import time
import tracemalloc
import zipfile
import zlib

import joblib
import numpy as np
import pytest
import torch

from bci.models._decoder_io import file_digest
from bci.models.decoder import Decoder, load_decoder, load_network, save_decoder, save_network

_MANIFEST_V2 = {"format": "bci-decoder", "format_version": 2,
                "decoder": {"ch_names": ["C3", "C4"], "sfreq": 128.0, "tmin": 0.0, "tmax": 1.0,
                            "classes": ["left", "right"]}}


class _CreatesFile:
    """Unpickling this calls ``open(path, "w")``: a stand-in for any code a pickle can run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _evil_joblib(target) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(_CreatesFile(target), buffer)
    return buffer.getvalue()


def _write(path, manifest: dict, name: str, payload: bytes, *, digest: bool = False):
    """Write a decoder-file container with correct checksums (as an attacker can)."""
    manifest = {**manifest, "payload": name,
                "payload_sha256": hashlib.sha256(payload).hexdigest()}
    if digest:
        manifest["sha256"] = file_digest(manifest, payload)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", json.dumps(manifest))
        zf.writestr(name, payload)
    return path


def test_the_evil_pickle_is_live(tmp_path):
    """Control: unpickling the payload the old way (joblib.load) does create the file."""
    target = tmp_path / "pwned-control"
    joblib.load(io.BytesIO(_evil_joblib(target))).close()  # the file object the pickle opened
    assert target.exists()


def test_a_pickle_payload_is_refused_without_trust(tmp_path):
    target = tmp_path / "pwned"
    path = _write(tmp_path / "evil.bci", _MANIFEST_V2, "estimator.joblib", _evil_joblib(target))
    with pytest.raises(ValueError, match="whose estimator is a pickle: loading it can run any "
                                         r"code.*trust=True\) and re-save it"):
        load_decoder(path)
    with pytest.raises(ValueError, match="holds a scikit-learn pipeline.*not a network"):
        load_network(path)
    assert not target.exists()


def test_a_network_manifest_never_leads_to_unpickling(tmp_path):
    """Network files and format-3 files never unpickle, even with trust=True.

    A network file, or a format-3 decoder file, switched to a joblib payload is refused even
    with trust=True; a format-2 decoder file holding a network, switched to a joblib payload,
    is refused without trust.
    """
    target = tmp_path / "pwned"
    evil = _evil_joblib(target)
    network = {"format": "bci-network", "format_version": 2,
               "network": {"model": "SNNStreaming", "config": {}}}
    for version in (2, 3):
        path = _write(tmp_path / f"net{version}.bci", {**network, "format_version": version},
                      "estimator.joblib", evil, digest=version == 3)
        with pytest.raises(ValueError, match=f"a bci-network file of format {version} holds "
                                             r"network.pt, but its manifest names "
                                             r"'estimator.joblib'"):
            load_network(path)
        with pytest.raises(ValueError, match="holds network.pt, but its manifest names"):
            load_decoder(path, trust=True)
    v3 = _write(tmp_path / "v3.bci", {**_MANIFEST_V2, "format_version": 3},
                "estimator.joblib", evil, digest=True)
    with pytest.raises(ValueError, match="format 3 holds estimator.skops or network.pt"):
        load_decoder(v3, trust=True)
    switched = _write(tmp_path / "switched.bci",
                      {**_MANIFEST_V2, "torch_version": torch.__version__,
                       "network": {"model": "ShallowConvNet"}}, "estimator.joblib", evil)
    with pytest.raises(ValueError, match="whose estimator is a pickle"):
        load_decoder(switched)
    with pytest.raises(ValueError, match="holds a scikit-learn pipeline"):
        load_network(switched)
    assert not target.exists()


def test_a_pickle_inside_network_weights_is_refused(tmp_path):
    """network.pt is read with torch.load(weights_only=True): a pickled object is refused."""
    target = tmp_path / "pwned"
    buffer = io.BytesIO()
    torch.save({"weight": _CreatesFile(target)}, buffer)
    manifest = {"format": "bci-network", "format_version": 3,
                "network": {"model": "SNNStreaming",
                            "config": {"n_chans": 4, "n_outputs": 2, "sfreq": 20.0}}}
    path = _write(tmp_path / "net.bci", manifest, "network.pt", buffer.getvalue(), digest=True)
    with pytest.raises(ValueError, match="its network.pt is not plain weights"):
        load_network(path)
    assert not target.exists()


def _evil_skops(target) -> bytes:
    """Craft a skops payload whose loading calls ``builtins.open(target, "w")``."""
    import skops.io as sio

    args = json.loads(zipfile.ZipFile(io.BytesIO(sio.dumps((str(target), "w"))))
                      .read("schema.json"))
    schema = {"__class__": "open", "__module__": "builtins",
              "__loader__": "ConstructorFromReduceNode",
              "content": {k: v for k, v in args.items()
                          if k not in ("protocol", "_skops_version")},
              "__id__": 1, "protocol": args["protocol"],
              "_skops_version": args["_skops_version"]}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("schema.json", json.dumps(schema))
    return buffer.getvalue()


def test_a_crafted_skops_payload_is_refused(tmp_path):
    import skops.io as sio

    control = tmp_path / "pwned-control"  # live: trusting its type runs it
    sio.loads(_evil_skops(control), trusted=["builtins.open"]).close()
    assert control.exists()

    target = tmp_path / "pwned"
    path = _write(tmp_path / "evil.bci", {**_MANIFEST_V2, "format_version": 3},
                  "estimator.skops", _evil_skops(target), digest=True)
    with pytest.raises(ValueError, match=r"holds types that bci does not trust, so it was not "
                                         r"loaded: builtins.open\. Loading a type can run its "
                                         r"code.*trusted_types=\['builtins.open'\]"):
        load_decoder(path)
    assert not target.exists()


def _stored_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _npy(shape, data: bytes) -> bytes:
    """Make a .npy file whose header declares ``shape`` (float64), followed by ``data``."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False,
                                                  "shape": shape})
    return buffer.getvalue() + data


def test_skops_payload_bounds(tmp_path):
    """Inside a skops payload: no compressed member, no stray file, no lying array header."""
    schema = json.dumps({"__class__": "int", "__module__": "builtins",
                         "__loader__": "JsonNode", "content": "1", "is_json": True,
                         "__id__": 1, "protocol": 2, "_skops_version": "0.16.0"}).encode()
    cases = {
        "compressed": ({"1.npy": _npy((4,), bytes(32))}, zipfile.ZIP_DEFLATED,
                       "member '1.npy' of its skops payload is compressed or encrypted"),
        "stray": ({"stray.pkl": b"\x80\x04."}, zipfile.ZIP_STORED,
                  "holds 'stray.pkl'; bci payloads hold only schema.json and .npy arrays"),
        "short": ({"2.npy": _npy((4,), bytes(24))}, zipfile.ZIP_STORED,
                  r"array '2.npy' of its skops payload declares shape \(4,\) of float64 "
                  r"\(32 bytes\)"),
        "huge": ({"3.npy": _npy((10**12,), bytes(32))}, zipfile.ZIP_STORED,
                 r"declares shape \(1000000000000,\) of float64 \(8000000000000 bytes\)"),
        "garbage": ({"4.npy": b"not an array at all"}, zipfile.ZIP_STORED,
                    "array '4.npy' of its skops payload has no valid .npy header"),
    }
    for name, (members, method, message) in cases.items():
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            zf.writestr("schema.json", schema)
            for member, data in members.items():
                zf.writestr(member, data, compress_type=method)
        path = _write(tmp_path / f"{name}.bci", {**_MANIFEST_V2, "format_version": 3},
                      "estimator.skops", buffer.getvalue(), digest=True)
        with pytest.raises(ValueError, match=message):
            load_decoder(path)


# ---------------------------------------------------------------------------------------------
# zip bombs
# ---------------------------------------------------------------------------------------------
def _raw_zip(members: list[tuple[str, int, bytes, int, int]]) -> bytes:
    """Write a zip from raw members ``(name, method, compressed data, crc32, declared size)``.

    Written by hand so the directory can declare anything (as an attacker's can).
    """
    out, central = bytearray(), bytearray()
    for name, method, data, crc, size in members:
        encoded = name.encode()
        offset = len(out)
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, method, 0, 0x21, crc,
                           len(data), size, len(encoded), 0) + encoded + data
        central += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, method, 0,
                               0x21, crc, len(data), size, len(encoded), 0, 0, 0, 0, 0,
                               offset) + encoded
    cd_offset = len(out)
    out += central + struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(members),
                                 len(members), len(central), cd_offset, 0)
    return bytes(out)


def _zeros_deflated(n_mib: int) -> tuple[bytes, int]:
    """Deflate ``n_mib`` MiB of zeros (one independent 1-MiB block, repeated); data and CRC-32."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(2**20)) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(n_mib):
        crc = zlib.crc32(bytes(2**20), crc)
    return block * n_mib + compressor.flush(), crc


@pytest.fixture(scope="module")
def zeros_768():
    return _zeros_deflated(768)


def _manifest_member() -> tuple[str, int, bytes, int, int]:
    data = json.dumps({**_MANIFEST_V2, "payload": "estimator.joblib"}).encode()
    return ("manifest.json", 0, data, zlib.crc32(data), len(data))


def _bounded(call, match: str) -> tuple[float, int]:
    """Run ``call``, which must raise ValueError matching ``match``; seconds and peak bytes."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ValueError, match=match):
            call()
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return elapsed, peak


def test_a_zip_bomb_is_refused_before_extraction(tmp_path, zeros_768):
    """About 780 KB holding 768 MiB of zeros (the issue's bomb): refused in milliseconds.

    Before: 1.6 GB of memory and 4.8-7.7 s before the checksum error.
    """
    data, crc = zeros_768
    assert 700_000 < len(data) < 800_000
    assert len(zlib.decompressobj(-15).decompress(data[:200_000], 3 * 2**20)) == 3 * 2**20
    path = tmp_path / "bomb.bci"
    path.write_bytes(_raw_zip([_manifest_member(),
                               ("estimator.joblib", 8, data, crc, 768 * 2**20)]))
    for load in (load_decoder, load_network):
        elapsed, peak = _bounded(lambda load=load: load(path),
                                 r"is refused before extraction: member 'estimator.joblib' "
                                 r"declares 768.0 MiB compressed into 0.8 MiB \(ratio 1011:1, "
                                 r"over 100:1\): a zip bomb")
        assert elapsed < 0.25
        assert peak < 2 * 2**20  # bytes traced while loading (the bomb would take 768 MiB)


def test_a_bomb_whose_directory_lies_is_read_bounded(tmp_path, zeros_768):
    """Declared sizes can lie: a member declared 1,000 bytes is read up to 1,001 bytes only."""
    data, crc = zeros_768
    path = tmp_path / "liar.bci"
    path.write_bytes(_raw_zip([_manifest_member(), ("estimator.joblib", 8, data, crc, 1000)]))
    elapsed, peak = _bounded(lambda: load_decoder(path), "is damaged.*CRC")
    assert elapsed < 0.25
    assert peak < 2 * 2**20


def test_archives_with_many_or_unexpected_members_are_refused(tmp_path):
    empty = ("x", 0, b"", 0, 0)
    many = tmp_path / "many.bci"
    many.write_bytes(_raw_zip([_manifest_member()]
                              + [(f"{i}.bin", *empty[1:]) for i in range(20_000)]))
    elapsed, peak = _bounded(lambda: load_decoder(many),
                             "refused before extraction: its zip directory lists 20001 members")
    assert elapsed < 0.25
    assert peak < 2 * 2**20
    stray = tmp_path / "stray.bci"
    stray.write_bytes(_raw_zip([_manifest_member(), ("run_me.py", 0, b"", 0, 0)]))
    with pytest.raises(ValueError, match="holds an unexpected member 'run_me.py'"):
        load_decoder(stray)
    twice = tmp_path / "twice.bci"
    twice.write_bytes(_raw_zip([_manifest_member(), _manifest_member()]))
    with pytest.raises(ValueError, match="unexpected member 'manifest.json' twice"):
        load_decoder(twice)
    nested = tmp_path / "nested.bci"
    nested.write_bytes(_raw_zip([("manifest.json", 0, b"[" * 100_000, zlib.crc32(b"[" * 100_000),
                                  100_000)]))
    with pytest.raises(ValueError, match="its manifest is not valid JSON"):
        load_decoder(nested)


def test_a_legitimate_large_file_is_not_mistaken_for_a_bomb(tmp_path):
    """A decoder with 4.6 MiB of arrays, half of them zeros, loads (ratio about 2:1)."""
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(0).standard_normal((3, 200_000))
    X[:, ::2] = 0.0
    scaler = StandardScaler().fit(X)
    decoder = Decoder(estimator=scaler, ch_names=["a"], sfreq=1.0, tmin=0.0, tmax=0.0,
                      classes=["x", "y"])
    path = save_decoder(decoder, tmp_path / "large.bci")
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("estimator.skops")
        assert info.file_size > 4.5 * 2**20
        assert 1.5 < info.file_size / info.compress_size < 100
    loaded = load_decoder(path)
    np.testing.assert_array_equal(loaded.estimator.scale_, scaler.scale_)


def test_network_files_still_load_for_export(tmp_path):
    """`bci export` reads network files by load_network: unchanged (format 3 now)."""
    from bci.models.spiking.ibmi import SNNStreaming

    torch.manual_seed(0)
    model = SNNStreaming(4, 2, sfreq=20.0, n_hidden=8).eval()
    path = save_network(model, tmp_path / "snn.bci")
    with zipfile.ZipFile(path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["format_version"] == 3
        assert manifest["sha256"] == file_digest(manifest, zf.read("network.pt"))
    back = load_network(path)
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)
    # a format-2 network file (bci 0.1) still loads
    with zipfile.ZipFile(path) as zf:
        payload = zf.read("network.pt")
    old = {k: v for k, v in manifest.items() if k not in ("sha256", "payload", "payload_sha256")}
    old["format_version"] = 2
    v2 = _write(tmp_path / "v2.bci", old, "network.pt", payload)
    back = load_network(v2)
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value)
