"""ONNX decoder files: export, float32 parity with torch, int8, torch-free runtime, bad input."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import zipfile

import mne
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bci.cli import main  # noqa: E402
from bci.hw.onnx_export import (  # noqa: E402
    INT8_DEFAULT_CALIBRATION,
    INT8_DEFAULT_KEEP_FLOAT,
    MIN_CALIBRATION_WINDOWS,
    OPSET,
    export_onnx,
)
from bci.models.classifier import DeepClassifier  # noqa: E402
from bci.models.decoder import Decoder, load_decoder  # noqa: E402
from bci.models.onnx_runtime import OnnxClassifier  # noqa: E402
from bci.realtime.loop import check_decoder  # noqa: E402
from bci.realtime.session import replay_offline  # noqa: E402
from tests._helpers import rewrite_decoder_file  # noqa: E402
from tests.realtime._helpers import playing  # noqa: E402

SFREQ, TMIN, TMAX = 128.0, 0.5, 2.5
CLASSES = ["left_hand", "right_hand"]


def _cue_windows(raw, n_times: int):
    events, event_id = mne.events_from_annotations(raw, verbose=False)
    names = {v: k for k, v in event_id.items()}
    data = raw.get_data()
    start = int(round(TMIN * raw.info["sfreq"]))
    X = np.stack([data[:, o + start:o + start + n_times] for o, _, _ in events])
    return X, np.array([names[c] for _, _, c in events])


@pytest.fixture(scope="module")
def recordings():
    from bci.data import make_motor_imagery

    train = make_motor_imagery(25, n_chans=8, sfreq=SFREQ, random_state=0)
    test = make_motor_imagery(8, n_chans=8, sfreq=SFREQ, random_state=1)
    return train, test


def _network_decoder(train, model: str, *, max_epochs: int = 4, **model_params) -> Decoder:
    decoder = Decoder(estimator=None, ch_names=train.ch_names, sfreq=SFREQ, tmin=TMIN,
                      tmax=TMAX, classes=CLASSES, filters=[(8.0, 30.0)], unit_factor=1e6,
                      info={"pipeline": model})
    X, y = _cue_windows(train, decoder.n_times)
    Xp = decoder.preprocess(X)
    decoder.train_amplitude = np.median(np.abs(Xp), axis=(0, 2)).tolist()
    decoder.estimator = DeepClassifier(model, model_params=model_params or None, sfreq=SFREQ,
                                       max_epochs=max_epochs, batch_size=16, seed=0).fit(
        Xp, (y == "right_hand").astype(int))
    return decoder


@pytest.fixture(scope="module")
def eegnet(recordings, tmp_path_factory):
    """Return a trained EEGNet decoder, its decoder file, its float32 and int8 ONNX files."""
    train, _ = recordings
    decoder = _network_decoder(train, "EEGNet", max_epochs=15)
    folder = tmp_path_factory.mktemp("onnx")
    X, _ = _cue_windows(train, decoder.n_times)
    calibration = decoder.preprocess(X)
    return {
        "decoder": decoder,
        "file": decoder.save(folder / "eegnet.bci"),
        "fp32": export_onnx(decoder, folder / "eegnet-onnx.bci"),
        "int8": export_onnx(decoder, folder / "eegnet-int8.bci", int8=True,
                            calibration=calibration),
        "calibration": calibration,
    }


# ------------------------------------------------------------------------------ float32 parity
@pytest.mark.parametrize(("model", "params"), [
    ("EEGNeX", {}), ("EEGNet", {}), ("ShallowConvNet", {}),
    ("SpikingConformer", {"spiking": False}),
])
def test_float32_probabilities_equal_torch(recordings, tmp_path, model, params):
    train, test = recordings
    decoder = _network_decoder(train, model, max_epochs=1, **params)
    path = export_onnx(decoder, tmp_path / "net-onnx.bci")
    onnx_decoder = load_decoder(path)
    assert isinstance(onnx_decoder.estimator, OnnxClassifier)
    assert onnx_decoder.estimator.opset == OPSET
    X, _ = _cue_windows(test, decoder.n_times)
    ref = decoder.predict_proba(X)
    got = onnx_decoder.predict_proba(X)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(onnx_decoder.predict(X), decoder.predict(X))
    # random input at the network's door (scaled units), batch 1 and a batch of 7
    rng = np.random.default_rng(3)
    for n in (1, 7):
        Z = rng.standard_normal((n, 8, decoder.estimator.n_times_)) * 20
        np.testing.assert_allclose(onnx_decoder.estimator.predict_proba(Z),
                                   decoder.estimator.predict_proba(Z), rtol=0, atol=1e-5)
    # the manifest is the decoder's, field for field
    for field in dataclasses.fields(Decoder):
        if field.name != "estimator":
            assert getattr(onnx_decoder, field.name) == getattr(decoder, field.name), field.name


def test_spiking_conformer_exports_in_float32_only(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((24, 2, 64)), np.tile([0, 1], 12)
    clf = DeepClassifier("SpikingConformer", max_epochs=1, batch_size=8,
                         model_params={"pool_size": 8, "depth": 1, "d_model": 16}).fit(X, y)
    decoder = Decoder(clf, ["a", "b"], 64.0, 0.0, 63 / 64, ["x", "y"])
    back = load_decoder(export_onnx(decoder, tmp_path / "snn-onnx.bci"))
    np.testing.assert_allclose(back.predict_proba(X), decoder.predict_proba(X), atol=1e-5)
    with pytest.raises(ValueError, match=r"int8 quantisation of SpikingConformer is refused: "
                                         r"its module '.*neurons' \(ApproxLIF\)"):
        export_onnx(decoder, tmp_path / "snn-int8.bci", int8=True, calibration=X)


def test_graph_input_has_a_dynamic_batch_axis(eegnet):
    clf = load_decoder(eegnet["fp32"]).estimator
    (inp,) = clf._session.get_inputs()
    assert inp.name == "x"
    assert isinstance(inp.shape[0], str)  # symbolic: any batch
    assert inp.shape[1:] == [8, eegnet["decoder"].n_times]
    assert clf.logits(np.zeros((3, 8, clf.n_times_))).shape == (3, 2)


# ------------------------------------------------------------------------- torch-free runtime
def test_onnx_decoder_loads_and_predicts_without_torch(eegnet, recordings, tmp_path):
    _, test = recordings
    X, _ = _cue_windows(test, eegnet["decoder"].n_times)
    np.save(tmp_path / "x.npy", X)
    code = (
        "import sys, numpy as np, bci\n"
        "import bci.cli, bci.hw.factory, bci.realtime.lsl, bci.realtime.session\n"  # bci stream
        f"d = bci.load_decoder({str(eegnet['fp32'])!r})\n"
        f"p = d.predict_proba(np.load({str(tmp_path / 'x.npy')!r}))\n"
        f"np.save({str(tmp_path / 'p.npy')!r}, p)\n"
        "from bci.data import make_motor_imagery\n"
        "raw = make_motor_imagery(3, n_chans=8, sfreq=128.0, random_state=2)\n"
        "decisions, _ = bci.realtime.session.replay_offline(\n"
        "    raw.get_data(), 128.0, raw.ch_names, decoder=d, step_s=1.0)\n"
        "print(len(decisions), all(x.label in d.classes for x in decisions))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    first, modules = out.stdout.strip().splitlines()
    n_decisions, labelled = first.split()
    assert int(n_decisions) > 10  # the live loop ran the ONNX decoder (step 1 s)
    assert labelled == "True"
    assert modules == "[]"
    np.testing.assert_allclose(np.load(tmp_path / "p.npy"),
                               eegnet["decoder"].predict_proba(X), rtol=0, atol=1e-5)


def test_live_loop_decides_like_the_torch_decoder(eegnet, recordings):
    _, test = recordings
    signal = test.get_data()
    onnx_decoder = load_decoder(eegnet["fp32"])
    ref, _ = replay_offline(signal, SFREQ, test.ch_names, decoder=eegnet["decoder"],
                            step_s=0.5)
    got, summary = replay_offline(signal, SFREQ, test.ch_names, decoder=onnx_decoder,
                                  step_s=0.5)
    assert len(got) == len(ref) == summary["decisions"] > 20
    assert [d.label for d in got] == [d.label for d in ref]
    np.testing.assert_allclose([d.proba for d in got], [d.proba for d in ref], atol=1e-5)


@pytest.mark.parametrize(("ch_names", "sfreq"), [
    (["Fz", "C3"], SFREQ),  # channels missing
    (None, 256.0),  # another rate
])
def test_mismatching_stream_refused_like_a_decoder_file(eegnet, ch_names, sfreq):
    torch_decoder = load_decoder(eegnet["file"])
    onnx_decoder = load_decoder(eegnet["fp32"])
    names = ch_names or list(torch_decoder.ch_names)
    with pytest.raises(ValueError, match="stream") as torch_err:
        check_decoder(torch_decoder, names, sfreq)
    with pytest.raises(ValueError, match="stream") as onnx_err:
        check_decoder(onnx_decoder, names, sfreq)
    assert str(onnx_err.value) == str(torch_err.value)
    # and a window of another length or in microvolts is refused as well
    with pytest.raises(ValueError, match="expected n_times=257"):
        onnx_decoder.predict_proba(np.zeros((1, 8, 100)))
    with pytest.raises(ValueError, match="Microvolts given to a decoder that takes volts"):
        onnx_decoder.predict_proba(_raw_like(onnx_decoder) * 1e6)


def _raw_like(decoder):
    rng = np.random.default_rng(0)
    return rng.standard_normal((1, decoder.n_chans, decoder.n_times)) * 1e-5


# ------------------------------------------------------------------------------------- int8
def test_int8_agrees_with_float32_and_is_smaller(eegnet, recordings):
    _, test = recordings
    X, y = _cue_windows(test, eegnet["decoder"].n_times)
    fp32, int8 = load_decoder(eegnet["fp32"]), load_decoder(eegnet["int8"])
    quant = int8.estimator.quantization
    assert quant["format"] == "QDQ"
    assert quant["n_windows"] == len(eegnet["calibration"]) == 50
    assert 0.9 <= quant["agreement_with_float32"] <= 1.0
    assert np.mean(int8.predict(X) == fp32.predict(X)) >= 0.85
    assert np.abs(int8.predict_proba(X) - fp32.predict_proba(X)).max() < 0.2
    assert eegnet["int8"].stat().st_size < eegnet["fp32"].stat().st_size
    with zipfile.ZipFile(eegnet["int8"]) as zf:
        ops = zf.read("model.onnx")
    assert b"QuantizeLinear" in ops
    assert b"DequantizeLinear" in ops


def _int8_graph(path):
    """Return the ONNX graph of an exported decoder file."""
    import onnx

    with zipfile.ZipFile(path) as zf:
        return onnx.load_from_string(zf.read("model.onnx")).graph


def _fed_by_dequantize(graph, node, k: int = 0) -> bool:
    """Whether the node's input ``k`` comes out of a DequantizeLinear (it was quantised)."""
    producers = {out: n.op_type for n in graph.node for out in n.output}
    return producers.get(node.input[k]) == "DequantizeLinear"


def test_int8_keeps_named_nodes_in_float32(eegnet, recordings, tmp_path):
    decoder, calibration = eegnet["decoder"], eegnet["calibration"]
    path = export_onnx(decoder, tmp_path / "keep.bci", int8=True, calibration=calibration,
                       int8_calibration="entropy", int8_keep_float=["first"])
    quant = load_decoder(path).estimator.quantization
    assert quant["calibration"] == "entropy"
    graph = _int8_graph(path)
    convs = [n for n in graph.node if n.op_type == "Conv"]
    # the first weighted node (EEGNet's temporal convolution) reads float32 activations; the
    # next ones run quantised, as in the default export where every Conv is quantised
    # (and the reshapes before it): the scaled EEG and its weights enter it unquantised
    assert quant["float32_nodes"][-1] == convs[0].name
    assert not _fed_by_dequantize(graph, convs[0])
    assert not _fed_by_dequantize(graph, convs[0], 1)
    assert all(_fed_by_dequantize(graph, c) and _fed_by_dequantize(graph, c, 1)
               for c in convs[1:])
    # min/max with no node kept (the former default, still selectable): every Conv quantised
    full = export_onnx(decoder, tmp_path / "full.bci", int8=True, calibration=calibration,
                       int8_calibration="minmax", int8_keep_float=[])
    full_graph = _int8_graph(full)
    assert all(_fed_by_dequantize(full_graph, c) and _fed_by_dequantize(full_graph, c, 1)
               for c in full_graph.node if c.op_type == "Conv")
    full_quant = load_decoder(full).estimator.quantization
    assert full_quant["calibration"] == "minmax"
    assert full_quant["keep_float"] == full_quant["float32_nodes"] == []
    _, test = recordings
    X, _ = _cue_windows(test, decoder.n_times)
    fp32 = load_decoder(eegnet["fp32"])
    assert np.mean(load_decoder(path).predict(X) == fp32.predict(X)) >= 0.85


def test_int8_default_is_percentile_with_the_first_node_in_float32(eegnet):
    # the default of export_onnx(int8=True): percentile ranges, the temporal convolution (and
    # the reshapes before it) in float32, recorded in the manifest
    assert INT8_DEFAULT_CALIBRATION == "percentile"
    assert INT8_DEFAULT_KEEP_FLOAT == ("first",)
    quant = load_decoder(eegnet["int8"]).estimator.quantization
    assert quant["calibration"] == "percentile"
    assert quant["keep_float"] == ["first"]
    graph = _int8_graph(eegnet["int8"])
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert len(convs) == 3  # EEGNet's conv_temporal, conv_separable_depth, _point
    assert quant["float32_nodes"][-1] == convs[0].name
    assert not _fed_by_dequantize(graph, convs[0])
    assert all(_fed_by_dequantize(graph, c) for c in convs[1:])


def test_int8_options_are_checked(eegnet, tmp_path):
    decoder, calibration = eegnet["decoder"], eegnet["calibration"]
    with pytest.raises(ValueError, match=r"int8_keep_float names node 'conv9', which the graph "
                                         r"does not hold; give 'first', 'last' or node names, e.g. "
                                         r"its weighted nodes node_Conv_"):
        export_onnx(decoder, tmp_path / "x.bci", int8=True, calibration=calibration,
                    int8_keep_float=["conv9"])
    with pytest.raises(ValueError, match=r"Unknown int8_calibration 'max'\. Did you mean "
                                         r"'minmax'\? Available: entropy, minmax, percentile"):
        export_onnx(decoder, tmp_path / "x.bci", int8=True, calibration=calibration,
                    int8_calibration="max")
    with pytest.raises(TypeError, match="int8_keep_float"):
        export_onnx(decoder, tmp_path / "x.bci", int8=True, calibration=calibration,
                    int8_keep_float=3)
    assert not (tmp_path / "x.bci").exists()


def test_int8_needs_enough_calibration_windows(eegnet, tmp_path):
    decoder, calibration = eegnet["decoder"], eegnet["calibration"]
    n = MIN_CALIBRATION_WINDOWS - 1
    with pytest.raises(ValueError, match=rf"calibration holds {n} windows; static int8 "
                                         rf"quantisation needs >= {MIN_CALIBRATION_WINDOWS}"):
        export_onnx(decoder, tmp_path / "x.bci", int8=True, calibration=calibration[:n])
    with pytest.raises(ValueError, match="int8 needs calibration windows"):
        export_onnx(decoder, tmp_path / "x.bci", int8=True)
    with pytest.raises(ValueError, match="calibration has 7 channels, expected n_chans=8"):
        export_onnx(decoder, tmp_path / "x.bci", int8=True, calibration=calibration[:, :7])
    bad = calibration.copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite values"):
        export_onnx(decoder, tmp_path / "x.bci", int8=True, calibration=bad)
    assert not (tmp_path / "x.bci").exists()


# ------------------------------------------------------------------------------ what is refused
class _Eigenvalues(nn.Module):
    def forward(self, x):
        return torch.linalg.eigh(x @ x.transpose(1, 2))[0]


class _CovNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 8, 5)
        self.spectrum = _Eigenvalues()
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.spectrum(self.conv(x)))


def test_module_onnx_cannot_express_is_named(eegnet, tmp_path):
    decoder = eegnet["decoder"]
    clf = DeepClassifier("EEGNet").set_params(**decoder.estimator.get_params())
    for key, value in vars(decoder.estimator).items():
        if key.endswith("_"):
            setattr(clf, key, value)
    clf.model_ = _CovNet().eval()
    hacked = dataclasses.replace(decoder, estimator=clf)
    with pytest.raises(ValueError, match=r"_CovNet cannot be exported to ONNX \(opset 18\): its "
                                         r"module 'spectrum' \(_Eigenvalues\) uses an operation "
                                         r"ONNX cannot express .*eigh"):
        export_onnx(hacked, tmp_path / "x.bci")
    assert not (tmp_path / "x.bci").exists()


def test_pipeline_decoders_are_not_networks(eegnet, tmp_path):
    import bci

    decoder = dataclasses.replace(eegnet["decoder"], estimator=bci.get_pipeline("TS+LR"))
    with pytest.raises(TypeError, match=r"exports network decoders .* holds a Pipeline"):
        export_onnx(decoder, tmp_path / "x.bci")
    with pytest.raises(TypeError, match="decoder must be"):
        export_onnx(str(eegnet["file"]), tmp_path / "x.bci")


def test_onnx_decoders_are_not_resaved_or_reexported(eegnet, tmp_path):
    import pickle

    onnx_decoder = load_decoder(eegnet["fp32"])
    with pytest.raises(TypeError, match="is not re-saved or pickled: its ONNX decoder file is "):
        onnx_decoder.save(tmp_path / "again.bci")
    with pytest.raises(TypeError, match="is not re-saved or pickled"):
        pickle.dumps(onnx_decoder)
    assert not (tmp_path / "again.bci").exists()
    with pytest.raises(TypeError, match=r"already an ONNX decoder \(OnnxClassifier\(EEGNet, "
                                        r"float32, opset 18, 8 x 257, 2 classes\)\)"):
        export_onnx(onnx_decoder, tmp_path / "again.bci")
    from bci.models.decoder import load_network

    with pytest.raises(ValueError, match=r"is an ONNX decoder file \(bci export --format onnx\)"):
        load_network(eegnet["fp32"])


# ---------------------------------------------------------------------------------- bad files
def test_signed_export_is_verified(eegnet, tmp_path):
    key = b"k" * 32
    path = export_onnx(eegnet["decoder"], tmp_path / "signed.bci", key=key)
    assert isinstance(load_decoder(path, key=key).estimator, OnnxClassifier)
    with pytest.raises(ValueError, match="fails signature verification"):
        load_decoder(path, key=b"x" * 32)
    with pytest.raises(ValueError, match="is not signed, and a signature is required"):
        load_decoder(eegnet["fp32"], key=key)


def test_newer_format_is_refused(eegnet, tmp_path):
    def newer(manifest):
        manifest["format_version"] = 99

    path = rewrite_decoder_file(eegnet["fp32"], tmp_path / "new.bci", newer, rehash=True)
    with pytest.raises(ValueError, match=r"in format 99; this bci \(.*\) reads format <= 3. "
                                         "Upgrade bci"):
        load_decoder(path)


def test_truncated_file_is_refused(eegnet, tmp_path):
    data = eegnet["fp32"].read_bytes()
    for n in (len(data) // 2, len(data) - 30):
        path = tmp_path / f"cut{n}.bci"
        path.write_bytes(data[:n])
        with pytest.raises(ValueError, match="damaged|not a bci decoder file"):
            load_decoder(path)


def test_edited_manifest_is_refused(eegnet, tmp_path):
    def fewer_classes(manifest):
        manifest["decoder"]["classes"] = ["left_hand", "rest"]

    path = rewrite_decoder_file(eegnet["fp32"], tmp_path / "edit.bci", fewer_classes)
    with pytest.raises(ValueError, match="was edited after it was saved"):
        load_decoder(path)


def _other_shape_graph() -> bytes:
    """Return a graph of another input shape: an EEGNet for 4 channels x 200 samples."""
    from bci.hw.onnx_export import _export_network
    from bci.models.registry import get_model

    return _export_network(get_model("EEGNet", 4, 2, 200).eval(), 4, 200, OPSET)


def test_graph_with_other_input_shape_is_refused(eegnet, tmp_path):
    path = rewrite_decoder_file(eegnet["fp32"], tmp_path / "swap.bci",
                                payload_edit=lambda _: _other_shape_graph(), rehash=True)
    with pytest.raises(ValueError, match=r"its ONNX graph takes 'x' tensor\(float\) "
                                         r"\(batch, 4, 200\), but its manifest describes one "
                                         r"float input 'x' of shape \(batch, 8, 257\)"):
        load_decoder(path)

    def two_outputs(manifest):  # a manifest that claims 3 classes for a 2-class graph
        manifest["onnx"]["classes"] = [0, 1, 2]

    path = rewrite_decoder_file(eegnet["fp32"], tmp_path / "cls.bci", two_outputs, rehash=True)
    with pytest.raises(ValueError, match=r"gives 'logits' \(batch, 2\), but its manifest "
                                         r"describes one output \(batch, 3\)"):
        load_decoder(path)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda m: m.pop("onnx"), "no 'onnx' entry"),
    (lambda m: m["onnx"].update(scaling="robust"), "scaling must be one of channel"),
    (lambda m: m["onnx"].update(scale_std=[1.0] * 7), "scale_std must be 8 finite numbers"),
    (lambda m: m["onnx"].update(n_times=-3), "opset, n_chans and n_times must be integers >= 1"),
    (lambda m: m["onnx"].update(opset="18"), "opset, n_chans and n_times must be integers"),
])
def test_malformed_onnx_entry_is_refused(eegnet, tmp_path, edit, match):
    path = rewrite_decoder_file(eegnet["fp32"], tmp_path / "bad.bci", edit, rehash=True)
    with pytest.raises(ValueError, match=rf"not a valid ONNX decoder file: .*\({match}"):
        load_decoder(path)


def test_damaged_graph_is_refused(eegnet, tmp_path):
    path = rewrite_decoder_file(eegnet["fp32"], tmp_path / "junk.bci",
                                payload_edit=lambda b: b[: len(b) // 3], rehash=True)
    with pytest.raises(ValueError, match="ONNX Runtime cannot load its graph"):
        load_decoder(path)


def test_missing_onnxruntime_names_the_extra(eegnet, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r'needs onnxruntime: pip install "bci\[edge\]"'):
        load_decoder(eegnet["fp32"])


def test_missing_onnxscript_names_the_extra(eegnet, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ImportError, match=r'needs onnxscript: pip install "bci\[edge\]"'):
        export_onnx(eegnet["decoder"], "never.bci")


def test_edge_packages_are_imported_only_when_used():
    code = ("import sys, bci.hw.onnx_export, bci.models.decoder, bci.cli; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'onnxscript') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------- CLI
def test_cli_export_float32_and_int8(eegnet, tmp_path, capsys):
    source = eegnet["file"]
    assert main(["export", "--format", "onnx", str(source), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    fp32 = tmp_path / "eegnet-onnx.bci"
    assert f"Exported EEGNet to {fp32}" in out
    assert "ONNX opset 18, input (batch, 8, 257), float32" in out
    # raw windows in volts, as the stream gives them: preprocessed by the decoder
    train, _ = _cue_windows_for(eegnet)
    np.save(tmp_path / "calib.npy", train)
    assert main(["export", "--format", "onnx", str(source), "--out", str(tmp_path), "--int8",
                 "--calibration", str(tmp_path / "calib.npy")]) == 0
    out = capsys.readouterr().out
    # a plain --int8 records the default: percentile ranges, the temporal convolution (the
    # first weighted node) kept in float32
    kept = load_decoder(tmp_path / "eegnet-onnx-int8.bci").estimator.quantization
    assert kept["n_windows"] == 50
    assert kept["calibration"] == "percentile"
    assert kept["keep_float"] == ["first"]
    assert kept["float32_nodes"][-1] == next(
        n.name for n in _int8_graph(tmp_path / "eegnet-onnx-int8.bci").node
        if n.op_type == "Conv")
    assert (f"int8 QDQ calibrated on 50 windows (percentile; "
            f"{', '.join(kept['float32_nodes'])} kept in float32; argmax agrees") in out
    # the README's command for the former default: min/max ranges, every node int8
    assert main(["export", "--format", "onnx", str(source), "--out", str(tmp_path / "k.bci"),
                 "--int8", "--calibration", str(tmp_path / "calib.npy"),
                 "--int8-calibration", "minmax", "--int8-keep-float", "none"]) == 0
    out = capsys.readouterr().out
    full = load_decoder(tmp_path / "k.bci").estimator.quantization
    assert full["calibration"] == "minmax"
    assert full["keep_float"] == full["float32_nodes"] == []
    assert "int8 QDQ calibrated on 50 windows (minmax; argmax agrees" in out
    assert main(["export", "--format", "onnx", str(source), "--out", str(tmp_path / "n.bci"),
                 "--int8", "--calibration", str(tmp_path / "calib.npy"),
                 "--int8-keep-float", "none,first"]) == 2
    assert ("bci export: error: --int8-keep-float none,first: 'none' (every node int8) cannot "
            "be combined with nodes") in capsys.readouterr().err
    assert not (tmp_path / "n.bci").exists()
    np.testing.assert_allclose(load_decoder(fp32).predict_proba(train),
                               eegnet["decoder"].predict_proba(train), atol=1e-5)
    # the exported file is what `bci stream --decoder` loads
    from bci.cli import _build_parser, _stream_decoder

    args = _build_parser().parse_args(["stream", "--source", "x", "--decoder", str(fp32)])
    assert isinstance(_stream_decoder(args).estimator, OnnxClassifier)


def _cue_windows_for(eegnet):
    from bci.data import make_motor_imagery

    train = make_motor_imagery(25, n_chans=8, sfreq=SFREQ, random_state=0)
    return _cue_windows(train, eegnet["decoder"].n_times)


def test_cli_export_errors(eegnet, tmp_path, capsys):
    source = str(eegnet["file"])
    np.save(tmp_path / "few.npy", _cue_windows_for(eegnet)[0][:5])
    assert main(["export", "--format", "onnx", source, "--out", str(tmp_path), "--int8",
                 "--calibration", str(tmp_path / "few.npy")]) == 2
    assert "calibration holds 5 windows" in capsys.readouterr().err
    assert main(["export", "--format", "onnx", source, "--out", str(tmp_path),
                 "--calibration", str(tmp_path / "few.npy")]) == 2
    assert "add --int8" in capsys.readouterr().err
    assert main(["export", "--format", "onnx", source, "--out", str(tmp_path),
                 "--int8-keep-float", "first"]) == 2
    assert "--int8-* options configure an int8 export; add --int8" in capsys.readouterr().err
    # the manifest of the written file is JSON with the decoder's conventions
    assert main(["export", "--format", "onnx", source, "--out", str(tmp_path / "a.bci")]) == 0
    with zipfile.ZipFile(tmp_path / "a.bci") as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["format"] == "bci-onnx-decoder"
    assert manifest["decoder"]["ch_names"] == eegnet["decoder"].ch_names
    assert manifest["onnx"]["parity_max_abs_diff"] <= 1e-5


def test_bci_stream_runs_the_onnx_decoder_over_lsl(eegnet, recordings, tmp_path, capsys):
    """`bci stream --decoder X-onnx-int8.bci` on a loopback LSL stream played by `bci play`."""
    import os

    pytest.importorskip("pylsl")
    _, test = recordings
    fif = tmp_path / "mi_raw.fif"
    test.save(fif, verbose=False)
    name = f"bci-onnx-{os.getpid()}"
    record = tmp_path / "session"
    with playing(fif, name, "--duration-s", "30"):
        code = main(["stream", "--source", name, "--decoder", str(eegnet["int8"]),
                     "--policy", "none", "--stimulator", "none", "--record", str(record),
                     "--duration-s", "3.5", "--step-s", "0.1", "--timeout-s", "20"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary = json.loads((record / "summary.json").read_text())
    assert summary["samples_lost"] == 0
    assert 5 <= summary["decisions"] <= 36  # 3.5 s at 0.1 s steps (+ what queued at start)
    assert summary["faults"] == {} or not any(summary["faults"].values())
    assert "Stopped: duration reached" in out
