"""Stimulator back-ends: serial/TTL over virtual ports, audio waveforms, the factory."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
import pytest

from bci.hw.audio import AudioToneStimulator, make_tone
from bci.hw.factory import make_stimulator
from bci.realtime.events import StimEvent
from bci.realtime.stimulation import Stimulator

serial = pytest.importorskip("serial")


def _event(code: int) -> StimEvent:
    return StimEvent(index=0, code=code, t_trigger=0.0)


def test_serial_trigger_bytes_on_loopback_port():
    from bci.hw.serial_trigger import SerialTriggerStimulator

    stim = SerialTriggerStimulator("loop://")
    assert isinstance(stim, Stimulator)
    for code in (1, 7, 255):
        stim.trigger(_event(code))
    assert stim._port.read(16) == bytes([1, 7, 255])
    assert stim.n_sent == 3
    with pytest.raises(ValueError, match=r"one byte \(0-255\), got 256"):
        stim.trigger(_event(256))
    stim.close()
    with pytest.raises(RuntimeError, match="is closed"):
        stim.trigger(_event(1))


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_serial_trigger_through_a_virtual_serial_pair_with_reset():
    import pty

    from bci.hw.serial_trigger import SerialTriggerStimulator

    controller, device = pty.openpty()
    os.set_blocking(controller, False)
    stim = SerialTriggerStimulator(os.ttyname(device), baudrate=9600, reset_after_s=0.02)
    try:
        stim.trigger(_event(42))
        received = b""
        deadline = time.monotonic() + 2.0
        while len(received) < 2 and time.monotonic() < deadline:
            try:
                received += os.read(controller, 16)
            except BlockingIOError:
                time.sleep(0.005)
        assert received == bytes([42, 0])  # the trigger, then the reset 20 ms later
    finally:
        stim.close()
        os.close(controller)
        os.close(device)


def test_serial_bad_port_error():
    from bci.hw.serial_trigger import SerialTriggerStimulator

    with pytest.raises(RuntimeError, match="Cannot open serial port '/dev/nonexistent-bci'"):
        SerialTriggerStimulator("/dev/nonexistent-bci")


def test_tone_waveforms():
    tone = make_tone(freq=1000.0, duration_s=0.05, sfreq=44100.0, volume=0.5, ramp_s=0.005)
    assert tone.dtype == np.float32
    assert tone.size == 2205
    assert np.abs(tone).max() == pytest.approx(0.5, rel=1e-3)
    assert abs(tone[0]) < 1e-6
    assert abs(tone[-1]) < 1e-3
    spectrum = np.abs(np.fft.rfft(tone))
    assert np.fft.rfftfreq(tone.size, 1 / 44100.0)[np.argmax(spectrum)] == pytest.approx(
        1000.0, abs=25.0)
    pink = make_tone(kind="pink", duration_s=1.0, ramp_s=0.0)
    p = np.abs(np.fft.rfft(pink)) ** 2
    f = np.fft.rfftfreq(pink.size, 1 / 44100.0)
    low, high = p[(f > 100) & (f < 200)].mean(), p[(f > 1000) & (f < 2000)].mean()
    assert 5 < low / high < 20  # 1/f: a decade costs ~10x power
    with pytest.raises(ValueError, match=r"volume must be a finite number in \(0, 1\]"):
        make_tone(volume=2.0)


def test_audio_stimulator_plays_through_injected_backend():
    played = []
    stim = AudioToneStimulator(freq=500.0, duration_s=0.02, play=lambda w, sf: played.append(
        (w, sf)))
    stim.trigger(_event(1))
    stim.trigger(_event(1))
    assert stim.n_played == 2
    assert played[0][1] == 44100.0
    np.testing.assert_array_equal(played[0][0], stim.wave)


def test_audio_without_sounddevice_explains_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    with pytest.raises(ImportError, match="pip install sounddevice"):
        AudioToneStimulator()


def test_factory_specs():
    assert make_stimulator("none") is None
    assert make_stimulator(None) is None
    stim = make_stimulator("serial:loop://,baudrate=9600,reset_after_s=0.01")
    assert stim.port == "loop://"
    assert stim.reset_after_s == 0.01
    stim.close()
    with pytest.raises(ValueError, match="Unknown stimulator 'seral'. Did you mean 'serial'"):
        make_stimulator("seral:loop://")
    with pytest.raises(ValueError, match="needs a port"):
        make_stimulator("serial:")


def test_stimulator_is_an_abstract_base_class():
    class Incomplete(Stimulator):
        def close(self):
            pass

    with pytest.raises(TypeError, match="abstract method 'trigger'|abstract methods? .*trigger"):
        Incomplete()
    with pytest.raises(TypeError, match="abstract"):
        Stimulator()

    class Complete(Stimulator):
        def trigger(self, event):
            self.last = event

    stim = Complete()
    with stim as same:  # open() and close() default to nothing
        same.trigger(_event(3))
    assert stim.last.code == 3
    assert stim.has_consumers is None  # cannot know: delivery is reported as unknown


def test_factory_parses_without_opening_anything():
    from bci.hw.factory import parse_stimulator

    assert parse_stimulator("lsl") == ("lsl", {})
    assert parse_stimulator("lsl:13") == ("lsl", {"name": "13"})  # a name stays text
    assert parse_stimulator("lsl:name='my stim',wait_for_consumers_s=5") == (
        "lsl", {"name": "my stim", "wait_for_consumers_s": 5})
    assert parse_stimulator("serial:/dev/ttyUSB0,baudrate=9600") == (
        "serial", {"port": "/dev/ttyUSB0", "baudrate": 9600})  # the port is not opened
    assert parse_stimulator("audio:freq=500,kind=pink") == ("audio", {"freq": 500,
                                                                     "kind": "pink"})
    with pytest.raises(ValueError, match=r"Bad audio stimulator parameters in 'audio:frq=5'"
                                         r": unknown \['frq'\]; accepted: freq, duration_s"):
        parse_stimulator("audio:frq=5")
    with pytest.raises(ValueError, match=r"KEY=VALUE after the name, got \['a', 'b'\]"):
        parse_stimulator("lsl:a,b")
    with pytest.raises(ValueError, match=r"linger_s must be a finite number >= 0 \(s\), "
                                         r"got nan"):
        parse_stimulator("lsl:x,linger_s=nan")
    with pytest.raises(ValueError, match=r"volume must be a finite number in \(0, 1\]"):
        parse_stimulator("audio:volume=inf")


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"baudrate": 0}, ValueError, r"baudrate must be an int >= 1 \(baud\), got 0"),
    ({"baudrate": 9600.5}, TypeError, r"baudrate must be an int \(baud\)"),
    ({"reset_after_s": float("nan")}, ValueError, r"reset_after_s must be a finite number > 0"),
    ({"reset_after_s": 0.0}, ValueError, r"reset_after_s must be a finite number > 0"),
    ({"write_timeout_s": float("inf")}, ValueError, r"write_timeout_s must be a finite number"),
    ({"write_timeout_s": -1.0}, ValueError, r"write_timeout_s must be a finite number > 0"),
    ({"reset_code": 256}, ValueError, r"one byte \(0-255\), got 256"),
])
def test_serial_parameters_checked_before_opening(kwargs, exc, match):
    from bci.hw.serial_trigger import SerialTriggerStimulator

    with pytest.raises(exc, match=match):
        SerialTriggerStimulator("loop://", **kwargs)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, -0.05])
@pytest.mark.parametrize("param", ["duration_s", "freq", "sfreq"])
def test_tone_refuses_nan_inf_zero_and_negative(param, value):
    with pytest.raises(ValueError, match=rf"{param} must be a finite number > 0"):
        make_tone(**{param: value})
