"""Channel types over real (loopback) LSL: `bci play` writes them, the live loop checks them."""

from __future__ import annotations

import os

import mne
import numpy as np
import pytest

from bci.models.decoder import Decoder
from bci.realtime.player import Player, channel_meta

from ._helpers import playing

pylsl = pytest.importorskip("pylsl")

NAMES = ["MEG 0112", "MEG 0113", "MEG 0122", "MEG 0123"]
SFREQ = 200.0


def _decoder(ch_types):
    """Return an MDM decoder on 4 channels of the given types (fitted on seeded noise)."""
    from bci.pipelines.registry import get_pipeline

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, len(NAMES), 100))
    X[10:, 0] *= 3.0
    est = get_pipeline("MDM").fit(X, np.repeat([0, 1], 10))
    return Decoder(estimator=est, ch_names=list(NAMES), sfreq=SFREQ, tmin=0.0, tmax=0.5,
                   classes=["a", "b"], filters=[(1.0, 40.0)], unit_factor=1e15,
                   info={"ch_types": list(ch_types)})


def _write_fif(tmp_path, ch_type):
    info = mne.create_info(NAMES, SFREQ, ch_type)
    data = np.random.default_rng(1).standard_normal((len(NAMES), int(20 * SFREQ))) * 1e-12
    fname = tmp_path / f"{ch_type}_raw.fif"
    mne.io.RawArray(data, info, verbose=False).save(fname, verbose=False)
    return fname


def _described(name):
    """Read label, type and unit of every channel straight from the stream's XML."""
    (found,) = pylsl.resolve_byprop("name", name, minimum=1, timeout=30.0)
    inlet = pylsl.StreamInlet(found)
    try:
        info = inlet.info(timeout=30.0)
        out, ch = [], info.desc().child("channels").child("channel")
        while not ch.empty():
            out.append((ch.child_value("label"), ch.child_value("type"),
                        ch.child_value("unit")))
            ch = ch.next_sibling()
        return out
    finally:
        inlet.close_stream()


def test_channel_meta_of_meg_eeg_and_seeg():
    info = mne.create_info(["m", "g", "e", "s", "t"], 100.0,
                           ["mag", "grad", "eeg", "seeg", "stim"])
    info["chs"][4]["unit"] = mne.io.constants.FIFF.FIFF_UNIT_NONE
    assert channel_meta(info) == (["mag", "grad", "eeg", "seeg", "stim"],
                                  ["tesla", "tesla/metre", "volts", "volts", "n/a"])


def test_bci_play_mag_stream_refuses_a_grad_decoder(tmp_path):
    """`bci play` of magnetometers; a gradiometer decoder is refused, a magnetometer one runs."""
    from bci.realtime.loop import OnlineLoop
    from bci.realtime.lsl import LSLSource
    from bci.realtime.recording import read_session
    from bci.realtime.session import run_session
    from bci.realtime.stream import Stream

    fif = _write_fif(tmp_path, "mag")
    name = f"bci-types-{os.getpid()}"
    with playing(fif, name, "--loop", "--duration-s", "60", "--type", "MEG"):
        assert _described(name) == [(n, "mag", "tesla") for n in NAMES]
        source = LSLSource(name, timeout_s=30.0)
        assert source.info.ch_types == ["mag"] * 4
        with Stream(source, threaded=False) as stream:
            assert stream.ch_types == ["mag"] * 4
            with pytest.raises(ValueError, match=r"MEG 0112 \(grad in training, mag in the "
                                                 r"stream\).*trained on grad channels"):
                OnlineLoop(stream, _decoder(["grad"] * 4), step_s=0.1)
            loop = OnlineLoop(stream, _decoder(["mag"] * 4), step_s=0.1)
            assert loop.decoder is not None
        # a recorded session keeps the stream's types: read back as magnetometers
        summary = run_session(LSLSource(name, timeout_s=30.0), decoder=_decoder(["mag"] * 4),
                              record_dir=tmp_path / "session", duration_s=1.0)
        raw = read_session(tmp_path / "session")
        assert raw.get_channel_types() == ["mag"] * 4
        assert raw.n_times == summary["recording"]["samples_recorded"] > 0


def test_stream_without_types_is_not_checked():
    """An array played (no types: every channel 'MISC' here) keeps working with any decoder."""
    from bci.realtime.loop import OnlineLoop
    from bci.realtime.lsl import LSLSource
    from bci.realtime.stream import Stream

    data = np.random.default_rng(2).standard_normal((len(NAMES), int(5 * SFREQ)))
    name = f"bci-notypes-{os.getpid()}"
    with Player((data, SFREQ, NAMES), name, stype="MISC-X", loop=True):
        assert _described(name) == [(n, "MISC-X", "volts") for n in NAMES]
        source = LSLSource(name, timeout_s=30.0)
        assert source.info.ch_types is None  # 'misc-x' is no MNE type: unknown
        with Stream(source, threaded=False) as stream:
            loop = OnlineLoop(stream, _decoder(["grad"] * 4), step_s=0.1)
            assert loop.decoder is not None
