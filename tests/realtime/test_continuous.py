"""Continuous decoding in the live loop: a stateful step decoder on every bin."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bci.evaluation.ibmi_metrics import r2_neurobench
from bci.models.spiking.ibmi import SNNStreaming
from bci.models.spiking.stepping import TorchStepDecoder
from bci.realtime.continuous import ContinuousLoop
from bci.realtime.recording import Recorder, read_outputs, read_signal
from bci.realtime.sources import ArraySource
from bci.realtime.stream import Stream


def _model(n_chans: int, seed: int = 0) -> SNNStreaming:
    torch.manual_seed(seed)
    model = SNNStreaming(n_chans, 2, sfreq=20.0, n_hidden=24, tau_s=0.1).eval()
    with torch.no_grad():
        model.fc_in.weight.mul_(4.0)
    return model


class _Outlet:
    def __init__(self):
        self.rows, self.stamps = [], []

    def push_rows(self, rows, timestamp=0.0):
        self.rows.append(np.array(rows))
        self.stamps.append(timestamp)


def test_continuous_outputs_streamed_and_recorded(tmp_path):
    counts = np.random.default_rng(0).poisson(1.5, (10, 97)).astype(np.float64)
    names = [f"u{k}" for k in range(10)]
    decoder = TorchStepDecoder(_model(10))
    offline = decoder.run(counts)
    decoder.reset()  # run() resets; stepping by hand starts from the state it finds
    outlet = _Outlet()
    stream = Stream(ArraySource(counts, 20.0, names, chunk_size=7), threaded=False)
    with Recorder(tmp_path / "s", names, 20.0, unit="count",
                  info={"ch_types": "misc"}) as rec:
        loop = ContinuousLoop(stream, decoder, output_names=["vx", "vy"], outlet=outlet,
                              recorder=rec)
        with stream:
            while stream.pump():
                loop.step()
        summary = loop.summary()
        rec.write_summary(summary)
    # one output per bin, equal to the offline decode of the same bins
    np.testing.assert_allclose(loop.output_array(), offline, atol=1e-12)
    np.testing.assert_allclose(np.concatenate(outlet.rows).T, offline, atol=1e-6)
    values, times, indices, out_names = read_outputs(tmp_path / "s")
    assert out_names == ["vx", "vy"]
    assert values.shape == (2, 97)
    np.testing.assert_array_equal(indices, np.arange(97))
    np.testing.assert_allclose(values, offline, atol=1e-12)
    signal, _, _ = read_signal(tmp_path / "s")
    np.testing.assert_array_equal(signal, counts)
    # the session reader: one annotation per decoded bin, on its sample
    from bci.realtime.recording import read_session

    raw = read_session(tmp_path / "s")
    onsets = [a["onset"] for a in raw.annotations if a["description"] == "output/output"]
    np.testing.assert_allclose(onsets, np.arange(97) / 20.0)
    assert summary["n_bins"] == 97
    assert summary["stream_events"] == {}
    assert summary["synops"] == decoder.synops > 0
    assert summary["synops_per_s"] == pytest.approx(decoder.synops / (97 / 20.0))
    # the session report draws the outputs, titled with synaptic operations per second
    from bci.realtime.report import _continuous_line, make_session_report

    paths = make_session_report(tmp_path / "s", html=False)
    assert [p.name for p in paths] == ["latency.png", "timeline.png", "outputs.png"]
    line = _continuous_line(summary, 97)
    assert line.startswith(f"97 bins decoded (torch); synaptic operations "
                           f"{summary['synops_per_s']:,.0f}/s")


def test_continuous_refuses_a_mismatched_stream():
    stream = Stream(ArraySource(np.zeros((3, 10)), 20.0), threaded=False)
    with pytest.raises(ValueError, match="reads 10 channels but the stream has 3"):
        ContinuousLoop(stream, TorchStepDecoder(_model(10)))
    stream = Stream(ArraySource(np.zeros((10, 10)), 50.0), threaded=False)
    with pytest.raises(ValueError, match="play the bins at 20 Hz"):
        ContinuousLoop(stream, TorchStepDecoder(_model(10)))
    stream = Stream(ArraySource(np.zeros((10, 10)), 20.0), threaded=False)
    with pytest.raises(ValueError, match="name the decoder's 2 outputs"):
        ContinuousLoop(stream, TorchStepDecoder(_model(10)), output_names=["vx"])
    with pytest.raises(TypeError, match="lacks 'step'"):
        ContinuousLoop(stream, object())


def _decoders(model):
    """Return the backends: torch, and the NIR graph in our NumPy simulator (when nir is there)."""
    decoders = {"torch": TorchStepDecoder(model)}
    try:
        from bci.hw.nir_export import to_nir
        from bci.models.nir_runtime import NIRStepDecoder

        decoders["nir"] = NIRStepDecoder(to_nir(model))
        from bci.models.snntorch_runtime import SnnTorchStepDecoder

        decoders["snntorch"] = SnnTorchStepDecoder(to_nir(model))
    except ImportError:
        pass
    return decoders


@pytest.mark.parametrize("backend", ["torch", "nir", "snntorch"])
def test_online_r2_equals_offline_over_lsl(tmp_path, backend):
    """Staged reaching bins played over loopback LSL; online decode == offline decode."""
    from bci.data.reaching import load_center_out, make_reaching
    from bci.realtime.lsl import LSLSource, SignalOutlet
    from bci.realtime.player import Player

    try:
        data = load_center_out()
    except FileNotFoundError:
        data = make_reaching(8, 84, sfreq=20.0, random_state=0)
    n_bins = 60  # 3 s at 20 Hz
    spikes = np.concatenate(data.spikes, axis=1)[:, :n_bins]
    velocity = np.concatenate(data.velocity, axis=1)[:, :n_bins]
    model = _model(spikes.shape[0])
    decoders = _decoders(model)
    if backend not in decoders:
        pytest.skip(f"the {backend} backend needs nir, and snnTorch >= 1.0 with nirtorch for "
                    "snntorch (pip install 'bci[nir,bench]')")
    decoder = decoders[backend]
    name = f"bci-test-reaching-{backend}"
    player = Player((spikes, data.sfreq, data.ch_names), name, stype="Spikes", chunk_s=0.01,
                    wait_for_consumers_s=5.0)
    with player:
        # flat_s=0: a unit silent for a second is normal in spike counts, not a fault
        stream = Stream(LSLSource(name, timeout_s=5.0), buffer_s=10.0, flat_s=0)
        outlet = SignalOutlet(f"{name}-velocity", ["vx", "vy"], data.sfreq, stype="Velocity")
        with Recorder(tmp_path / "s", data.ch_names, data.sfreq, unit="count") as rec:
            loop = ContinuousLoop(stream, decoder, output_names=["vx", "vy"], outlet=outlet,
                                  recorder=rec)
            summary = loop.run(max_bins=n_bins, idle_timeout_s=5.0)
    assert summary["n_bins"] == n_bins, summary
    assert summary["stream_events"] == {}  # no bin lost over loopback LSL
    values, _, indices, _ = read_outputs(tmp_path / "s")
    assert values.shape == (2, n_bins)
    np.testing.assert_array_equal(indices, np.arange(n_bins))
    signal, _, _ = read_signal(tmp_path / "s")
    np.testing.assert_array_equal(signal[:, :n_bins], spikes)  # every bin, once, in order
    decoder.reset()
    offline = decoder.run(spikes)
    r2_online = r2_neurobench(velocity.T, values.T)
    r2_offline = r2_neurobench(velocity.T, offline.T)
    assert abs(r2_online - r2_offline) <= 1e-6
    assert summary["synops_per_s"] > 0
    assert summary["latency_ms"]["decode"]["p99"] >= summary["latency_ms"]["decode"]["p50"]


def test_lost_bins_are_recorded_and_counted(tmp_path):
    """A gap in the stream (bins lost in transit) is recorded and counted, never hidden."""
    from tests.realtime._helpers import FaultySource

    counts = np.random.default_rng(0).poisson(1.5, (10, 64)).astype(np.float64)
    names = [f"u{k}" for k in range(10)]
    source = FaultySource(ArraySource(counts, 20.0, names, chunk_size=8), drop={2})
    stream = Stream(source, threaded=False)
    with Recorder(tmp_path / "s", names, 20.0) as rec:
        loop = ContinuousLoop(stream, TorchStepDecoder(_model(10)), recorder=rec)
        with stream:
            while not source.exhausted:
                stream.pump()
                loop.step()
    summary = loop.summary()
    assert summary["n_bins"] == 56  # 64 bins, one chunk of 8 lost
    assert summary["stream_events"] == {"gap": 1}
    values, _, indices, _ = read_outputs(tmp_path / "s")
    assert values.shape == (2, 56)
    np.testing.assert_array_equal(indices, np.arange(56))
