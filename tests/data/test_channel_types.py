"""Channel types: per-type scaling, decoder files record the types, the live loop checks them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mne_bids")

from bci.data.bids import BIDSDataset  # noqa: E402
from bci.data.channel_types import (  # noqa: E402
    SCALINGS,
    UNITS,
    check_stream_types,
    unit_factor_for,
)

from ._bids_files import ELEKTA, elekta_events, write_elekta  # noqa: E402


def test_unit_factor_per_type_family():
    assert unit_factor_for(["eeg"]) == 1e6
    assert unit_factor_for(["seeg", "ecog", "dbs"]) == 1e6
    assert unit_factor_for(["mag"]) == 1e15
    assert unit_factor_for(["grad"]) == 1e13
    assert unit_factor_for(["mag", "grad"]) == 1e13
    assert SCALINGS["mag"] / SCALINGS["grad"] == 100.0  # fT vs fT/cm: 1 cm = 1e-2 m
    assert UNITS["grad"] == "fT/cm"
    with pytest.raises(ValueError, match=r"mix volts \(seeg\) and tesla \(grad\)"):
        unit_factor_for(["seeg", "grad"])
    with pytest.raises(ValueError, match="Did you mean 'mag'"):
        unit_factor_for(["mags"])


def test_check_stream_types_names_the_channels():
    check_stream_types(["grad", "mag"], ["grad", "mag"], ["A", "B"])
    with pytest.raises(ValueError, match=r"1 of 2 channels: A \(grad in training, mag in the "
                                         r"stream\).*trained on grad, mag channels"):
        check_stream_types(["grad", "mag"], ["mag", "mag"], ["A", "B"])


@pytest.fixture(scope="module")
def grad_decoder(tmp_path_factory):
    if not ELEKTA.is_file():
        pytest.skip(f"staged MEG file absent: {ELEKTA}")
    from moabb.paradigms import MotorImagery

    from bci.pipelines.train import train_decoder

    root = tmp_path_factory.mktemp("meg_bids")
    write_elekta(root)
    ds = BIDSDataset(root, event_id={"code1": "one", "code2": "two"}, ch_types="grad",
                     interval=(0.0, 0.5))
    return train_decoder(ds, MotorImagery(events=["one", "two"], n_classes=2, fmin=1, fmax=40),
                         "MDM", [1])


def test_decoder_file_records_channel_types(grad_decoder, tmp_path):
    from bci.models.decoder import load_decoder, save_decoder

    assert grad_decoder.info["ch_types"] == ["grad", "grad"]
    assert grad_decoder.unit_factor == 1e13
    path = save_decoder(grad_decoder, tmp_path / "grad.bci")
    loaded = load_decoder(path)
    assert loaded.info["ch_types"] == ["grad", "grad"]
    # the training amplitude is in fT/cm: the same order as EEG in µV, not 1e-12
    assert 0.1 < np.median(loaded.train_amplitude) < 1e4


def test_old_decoder_files_without_types_still_load(grad_decoder, tmp_path):
    from bci.models.decoder import load_decoder, save_decoder

    old = grad_decoder.__class__(**{**vars(grad_decoder),
                                    "info": {k: v for k, v in grad_decoder.info.items()
                                             if k != "ch_types"}})
    loaded = load_decoder(save_decoder(old, tmp_path / "old.bci"))
    assert "ch_types" not in loaded.info
    assert loaded.ch_names == grad_decoder.ch_names


def test_malformed_channel_types_refused():
    from bci.models._decoder_io import decoder_meta

    manifest = {"decoder": {"ch_names": ["A", "B"], "sfreq": 100.0, "tmin": 0.0, "tmax": 1.0,
                            "classes": ["a", "b"], "info": {"ch_types": ["grad"]}}}
    known = {"ch_names", "sfreq", "tmin", "tmax", "classes", "info"}
    with pytest.raises(ValueError, match="info.ch_types must list one channel type"):
        decoder_meta(manifest, "x.bci", known=known,
                     required={"ch_names", "sfreq", "tmin", "tmax", "classes"})


def test_live_loop_refuses_grad_decoder_on_mag_stream(grad_decoder):
    from bci.realtime.loop import OnlineLoop
    from bci.realtime.sources import ArraySource
    from bci.realtime.stream import Stream

    raw, _ = elekta_events()
    data = raw.get_data(picks=grad_decoder.ch_names)[:, :5000]
    mags = Stream(ArraySource(data, 1000.0, grad_decoder.ch_names, ch_types=["mag", "mag"]),
                  threaded=False)
    with pytest.raises(ValueError, match=r"MEG2643 \(grad in training, mag in the stream\)"):
        OnlineLoop(mags, grad_decoder)
    grads = Stream(ArraySource(data, 1000.0, grad_decoder.ch_names, ch_types=["grad", "grad"]),
                   threaded=False)
    loop = OnlineLoop(grads, grad_decoder)  # same types: accepted
    assert loop.ch_names == grad_decoder.ch_names
    unknown = Stream(ArraySource(data, 1000.0, grad_decoder.ch_names), threaded=False)
    assert unknown.ch_types is None
    OnlineLoop(unknown, grad_decoder)  # types unknown (LSL): not checked
