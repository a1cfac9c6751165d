"""NumPy decoder files: loaded without scikit-learn or pyRiemann, no code run, bad files refused."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import bci
from bci.models.decoder import Decoder, load_decoder
from bci.models.numpy_runtime import (
    RUNTIME_VERSION,
    NumpyPipeline,
    covariances,
    read_arrays,
    save_numpy_decoder,
    write_arrays,
)
from tests._helpers import cut_windows, rewrite_decoder_file


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Return a TS+LR decoder (8 channels, 128 Hz) fitted on synthetic MI, its file, its export."""
    from bci.data import make_motor_imagery
    from bci.hw.numpy_export import export_numpy

    train = make_motor_imagery(25, n_chans=8, sfreq=128.0, random_state=0)
    decoder = Decoder(estimator=bci.get_pipeline("TS+LR"), ch_names=train.ch_names,
                      sfreq=128.0, tmin=0.5, tmax=2.5, classes=["left_hand", "right_hand"],
                      filters=[(8.0, 30.0)], unit_factor=1e6, info={"pipeline": "TS+LR"})
    X, y = cut_windows(train, decoder.tmin, decoder.n_times)
    Xp = decoder.preprocess(X)
    decoder.estimator.fit(Xp, (y == "right_hand").astype(int))
    decoder.train_amplitude = list(np.median(np.abs(Xp), axis=(0, 2)))
    folder = tmp_path_factory.mktemp("np")
    skops_path = decoder.save(folder / "ts_lr.bci")
    path = export_numpy(decoder, folder / "ts_lr-numpy.bci")
    return decoder, skops_path, path


@pytest.mark.parametrize("estimator", ["oas", "lwf", "scm", "cov"])
def test_covariances_equal_pyriemann(estimator):
    from pyriemann.estimation import Covariances

    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 7, 40)) * np.arange(1, 8)[:, None] + 3.0  # not centred
    np.testing.assert_allclose(covariances(X, estimator),
                               Covariances(estimator).transform(X), rtol=1e-12, atol=0)


def test_loading_imports_neither_sklearn_nor_pyriemann(exported):
    """Load, predict_proba and a live loop in a fresh process: neither is imported.

    Nothing is unpickled either: pickle's loaders raise in that process.
    """
    decoder, _, path = exported
    X = np.random.default_rng(1).standard_normal((2, decoder.n_chans, decoder.n_times)) * 2e-5
    code = (
        "import pickle, sys\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError('unpickling')\n"
        "pickle.load = pickle.loads = pickle.Unpickler = refuse\n"
        "import numpy as np, bci\n"
        f"d = bci.load_decoder({str(path)!r})\n"
        f"X = np.asarray({X.tolist()!r})\n"
        "p = d.predict_proba(X)\n"
        "print(repr(p.tolist()))\n"
        # the live path too: the CLI module, a stream of a replay, the online loop
        "import bci.cli\n"
        "from bci.data import make_motor_imagery\n"
        "from bci.realtime.loop import OnlineLoop\n"
        "from bci.realtime.sources import raw_source\n"
        "from bci.realtime.stream import Stream\n"
        "rec = make_motor_imagery(2, n_chans=8, sfreq=128.0, random_state=1)\n"
        "loop = OnlineLoop(Stream(raw_source(rec, chunk_size=16), threaded=False), d,"
        " step_s=0.5, catch_up=True)\n"
        "loop.run()\n"
        "print(','.join(sorted(m for m in ('sklearn', 'pyriemann', 'skops', 'torch', 'moabb')"
        " if m in sys.modules)))\n"
        "print(type(d.estimator).__name__)\n"
        "print(len(loop.decisions))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[1] == ""  # nothing of the list, not even the pickle module
    assert out[2] == "NumpyPipeline"
    assert int(out[3]) >= 10  # the loop decided on every step of the replay
    np.testing.assert_allclose(np.array(eval(out[0])), decoder.predict_proba(X), rtol=0,
                               atol=1e-9)


def test_live_loop_decodes_a_replay_exactly_as_the_sklearn_decoder(exported):
    from bci.data import make_motor_imagery
    from bci.realtime.loop import OnlineLoop
    from bci.realtime.sources import raw_source
    from bci.realtime.stream import Stream

    decoder, _, path = exported
    recording = make_motor_imagery(4, n_chans=8, sfreq=128.0, random_state=1)
    runs = {}
    for name, dec in (("sklearn", decoder), ("numpy", load_decoder(path))):
        loop = OnlineLoop(Stream(raw_source(recording, chunk_size=16), threaded=False), dec,
                          step_s=0.5, catch_up=True)
        loop.run()
        runs[name] = loop.decisions
    assert len(runs["numpy"]) == len(runs["sklearn"]) >= 20
    np.testing.assert_allclose([d.proba for d in runs["numpy"]],
                               [d.proba for d in runs["sklearn"]], rtol=0, atol=1e-9)
    assert [d.label for d in runs["numpy"]] == [d.label for d in runs["sklearn"]]


def test_channels_and_rate_refused_exactly_like_a_decoder_file(exported):
    from bci.realtime.loop import check_decoder

    decoder, skops_path, path = exported
    skops_decoder, numpy_decoder = load_decoder(skops_path), load_decoder(path)
    names = list(decoder.ch_names)
    for ch_names, sfreq, match in [(names[:-2], 128.0, "lacks 2 of the decoder's 8 channels"),
                                   (names, 256.0, "trained at 128 Hz but the stream runs at "
                                                  "256 Hz")]:
        messages = []
        for dec in (skops_decoder, numpy_decoder):
            with pytest.raises(ValueError, match=match) as info:
                check_decoder(dec, ch_names, sfreq)
            messages.append(str(info.value))
        assert messages[0] == messages[1]
    rows = check_decoder(numpy_decoder, names[::-1], 128.0)
    np.testing.assert_array_equal(rows, np.arange(8)[::-1])
    X = np.zeros((1, 8, numpy_decoder.n_times + 1))
    with pytest.raises(ValueError, match="257"):
        numpy_decoder.predict_proba(X)
    with pytest.raises(ValueError, match="Microvolts given to a decoder that takes volts"):
        numpy_decoder.predict_proba(
            np.random.default_rng(0).standard_normal((1, 8, numpy_decoder.n_times)) * 20)


def _edit_runtime(fn):
    def edit(manifest):
        fn(manifest["numpy_runtime"])
    return edit


def test_newer_format_and_runtime_versions_are_refused(exported, tmp_path):
    _, _, path = exported

    def newer_format(manifest):
        manifest["format_version"] = 4

    out = rewrite_decoder_file(path, tmp_path / "f.bci", newer_format, rehash=True)
    with pytest.raises(ValueError, match="in format 4; this bci .* reads format <= 3. Upgrade"):
        load_decoder(out)
    out = rewrite_decoder_file(path, tmp_path / "r.bci",
                               _edit_runtime(lambda r: r.update(version=RUNTIME_VERSION + 1)),
                               rehash=True)
    with pytest.raises(ValueError, match=f"needs NumPy runtime version {RUNTIME_VERSION + 1}; "
                                         f"this bci reads version <= {RUNTIME_VERSION}"):
        load_decoder(out)

    def unknown_step(runtime):
        runtime["model"]["steps"].insert(1, {"step": "riemannian_whitening"})

    out = rewrite_decoder_file(path, tmp_path / "u.bci", _edit_runtime(unknown_step),
                               rehash=True)
    with pytest.raises(ValueError, match="unknown step 'riemannian_whitening'; this runtime "
                                         "computes filterbank, delay_embedding"):
        load_decoder(out)


def test_truncated_and_edited_files_are_refused(exported, tmp_path):
    _, _, path = exported
    data = path.read_bytes()
    for n_bytes in (len(data) // 2, len(data) - 30, 100):
        cut = tmp_path / f"cut{n_bytes}.bci"
        cut.write_bytes(data[:n_bytes])
        with pytest.raises(ValueError, match="not a bci decoder file or is damaged|damaged"):
            load_decoder(cut)
    # an array edited without recomputing the checksums
    out = rewrite_decoder_file(path, tmp_path / "e.bci", payload_edit=lambda b: b[:-8] + b"\0" * 8)
    with pytest.raises(ValueError, match="does not match the checksum"):
        load_decoder(out)


def _replace_array(name, value):
    """Payload edit: replace one array (its .npy member) by ``value``."""
    def edit(payload):
        with zipfile.ZipFile(io.BytesIO(payload)) as zf:
            arrays = {i.filename[:-4]: np.load(io.BytesIO(zf.read(i)), allow_pickle=False)
                      for i in zf.infolist()}
        arrays[name] = value
        return write_arrays(arrays)[0]
    return edit


def test_tampered_array_shapes_are_refused(exported, tmp_path):
    decoder, _, path = exported
    reference = decoder.estimator.named_steps["tangentspace"].reference_
    smaller = reference[:7, :7]
    # the array changed, the manifest's declaration not (checksums recomputed, as anyone can)
    out = rewrite_decoder_file(path, tmp_path / "a.bci",
                               payload_edit=_replace_array("s2.reference", smaller), rehash=True)
    with pytest.raises(ValueError, match=r"array 's2.reference' has shape \(7, 7\) and dtype "
                                         r"float64, but the manifest declares \(8, 8\)"):
        load_decoder(out)

    # both changed consistently: the step sees that the array does not fit its input
    def declare(runtime):
        runtime["arrays"]["s2.reference"]["shape"] = [7, 7]

    out = rewrite_decoder_file(path, tmp_path / "b.bci", _edit_runtime(declare),
                               payload_edit=_replace_array("s2.reference", smaller), rehash=True)
    with pytest.raises(ValueError, match=r"step 1 \(tangent_space\): array 's2.reference' "
                                         r"\(reference\) has shape \(7, 7\), expected \(8, 8\)"):
        load_decoder(out)

    # a reference that is not SPD (a sign flipped) is refused before any window
    out = rewrite_decoder_file(path, tmp_path / "c.bci",
                               payload_edit=_replace_array("s2.reference", -reference),
                               rehash=True)
    with pytest.raises(ValueError, match="is not symmetric positive definite"):
        load_decoder(out)


def test_object_arrays_and_extra_members_are_refused(exported, tmp_path):
    _, _, path = exported

    def pickled(payload):  # an object array (a pickle) in place of the coefficients
        buffer = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(payload)) as src, \
                zipfile.ZipFile(buffer, "w") as dst:
            for info in src.infolist():
                if info.filename == "s3.coef.npy":
                    member = io.BytesIO()
                    np.lib.format.write_array(member, np.array([print], dtype=object),
                                              allow_pickle=True)
                    dst.writestr(info.filename, member.getvalue())
                else:
                    dst.writestr(info, src.read(info))
        return buffer.getvalue()

    out = rewrite_decoder_file(path, tmp_path / "p.bci", payload_edit=pickled, rehash=True)
    with pytest.raises(ValueError, match=r"array 's3.coef' is object"):
        load_decoder(out)
    out = rewrite_decoder_file(path, tmp_path / "x.bci",
                               payload_edit=_replace_array("extra", np.zeros(3)), rehash=True)
    with pytest.raises(ValueError, match=r"arrays.npz holds .*extra.npy.*, its manifest "
                                         "declares"):
        load_decoder(out)


def test_signed_export_verifies(exported, tmp_path):
    from bci.hw.numpy_export import export_numpy
    from bci.models.decoder import generate_key

    decoder, _, _ = exported
    key = generate_key(tmp_path / "lab.key")
    path = export_numpy(decoder, tmp_path / "signed.bci", key=key)
    assert isinstance(load_decoder(path, key=key).estimator, NumpyPipeline)
    other = generate_key(tmp_path / "other.key")
    with pytest.raises(ValueError, match="fails signature verification"):
        load_decoder(path, key=other)


def test_arrays_round_trip_read_only():
    arrays = {"a": np.arange(6.0).reshape(2, 3), "n": np.array([3, 4])}
    payload, declared = write_arrays(arrays)
    assert declared == {"a": {"shape": [2, 3], "dtype": "float64"},
                        "n": {"shape": [2], "dtype": "int64"}}
    back = read_arrays(payload, declared, "f")
    np.testing.assert_array_equal(back["a"], arrays["a"])
    assert back["n"].dtype == np.int64
    assert not back["a"].flags.writeable  # views of the file's bytes: nothing mutates them
    with pytest.raises(TypeError, match="float64 and int64 arrays only"):
        write_arrays({"s": np.array(["x"])})
    with pytest.raises(ValueError, match="NaN or inf"):
        read_arrays(*write_arrays({"a": np.array([np.nan])}), "f")
    json.dumps(declared)  # manifest material


def test_runtime_checks_its_input(exported):
    _, _, path = exported
    est = load_decoder(path).estimator
    assert repr(est) == ("NumpyPipeline(covariances -> tangent_space -> linear, "
                         "classes=[0, 1])")
    with pytest.raises(ValueError, match=r"n_chans=8; got shape \(2, 7, 100\)"):
        est.predict_proba(np.ones((2, 7, 100)))
    with pytest.raises(ValueError, match="need >= 2 time samples"):
        est.predict_proba(np.ones((2, 8, 1)))
    one = est.predict_proba(np.random.default_rng(0).standard_normal((8, 100)))
    assert one.shape == (1, 2)
    with pytest.raises(ValueError, match="model type must be 'pipeline' or 'calibrated'"):
        NumpyPipeline({"version": 1, "input": {"n_chans": 8, "n_bands": None},
                       "model": {"type": "forest"}}, {})


def test_resaving_a_numpy_decoder_keeps_it_a_numpy_file(exported, tmp_path):
    _, _, path = exported
    loaded = load_decoder(path)
    again = loaded.save(tmp_path / "again.bci")
    with zipfile.ZipFile(path) as za, zipfile.ZipFile(again) as zb:
        assert zb.namelist() == ["manifest.json", "arrays.npz"]
        assert za.read("arrays.npz") == zb.read("arrays.npz")
        assert json.loads(za.read("manifest.json")) == json.loads(zb.read("manifest.json"))
    plain = Decoder(estimator=object(), ch_names=["a"], sfreq=1.0, tmin=0.0, tmax=1.0,
                    classes=["x", "y"])
    with pytest.raises(TypeError, match="writes decoders of a NumpyPipeline"):
        save_numpy_decoder(plain, tmp_path / "x.bci")


@pytest.mark.parametrize("edit", [
    lambda r: r["model"]["steps"][0].update(step=["covariances"]),
    lambda r: r["model"]["steps"][0].update(estimator={"oas": 1}),
    lambda r: r["model"]["steps"][1].update(arrays={"reference": ["s2.reference"]}),
    lambda r: r["model"]["steps"][2].update(classes=[[0], [1]]),
    lambda r: r["model"]["steps"][2].update(classes=[0, 0]),
    lambda r: r["model"]["steps"][2].update(proba="argmax"),
    lambda r: r["model"]["steps"].reverse(),
    lambda r: r["model"]["steps"].pop(),
    lambda r: r["model"].update(steps={}),
    lambda r: r.update(model=[]),
    lambda r: r.update(input={"n_chans": True, "n_bands": None}),
    lambda r: r.update(input={"n_chans": 9, "n_bands": None}),
    lambda r: r.update(version="1"),
    lambda r: r.update(arrays=[]),
    lambda r: r["arrays"]["s2.reference"].update(dtype="object"),
    lambda r: r["arrays"]["s2.reference"].update(shape=[-8, -8]),
    lambda r: r.pop("model"),
])
def test_crafted_runtime_entries_are_value_errors(exported, tmp_path, edit):
    """Whatever the manifest's runtime entry says, loading fails with a ValueError."""
    _, _, path = exported
    out = rewrite_decoder_file(path, tmp_path / "c.bci", _edit_runtime(edit), rehash=True)
    with pytest.raises(ValueError, match=r"c\.bci"):
        load_decoder(out)


def test_docstring_example_runs():
    import doctest

    from bci.models import numpy_runtime

    result = doctest.testmod(numpy_runtime)
    assert result.attempted >= 4
    assert result.failed == 0
