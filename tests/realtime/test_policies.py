"""Oscillation trigger and causal phase estimation."""

from __future__ import annotations

import numpy as np
import pytest

from bci.realtime.events import Decision
from bci.realtime.policies import OscillationTrigger, ThresholdPolicy, estimate_phase


@pytest.mark.parametrize("phase_deg", [0, 45, 90, 180, 270])
def test_estimate_phase_of_a_noisy_sine(phase_deg):
    sfreq, f = 250.0, 1.0
    rng = np.random.default_rng(phase_deg)
    t = np.arange(-int(2 * sfreq), 1) / sfreq  # last sample at t = 0
    x = 2.0 * np.cos(2 * np.pi * f * t + np.deg2rad(phase_deg)) + 0.2 * rng.standard_normal(
        t.size)
    phase, amp = estimate_phase(x, sfreq, f)
    err = np.angle(np.exp(1j * (phase - np.deg2rad(phase_deg))))
    assert abs(np.rad2deg(err)) < 5
    assert amp == pytest.approx(2.0, rel=0.05)


def test_phase_target_schedules_the_next_trough():
    sfreq, f = 100.0, 1.0
    trig = OscillationTrigger(0, freq=f, threshold=0.5, relative=False, rms_s=1.0,
                              min_duration_s=0.0, target_phase=180, max_delay_s=1.0)
    trig.bind(classes=None, ch_names=["x"], sfreq=sfreq)
    t_end = 10.3
    t = t_end + (np.arange(200) - 199) / sfreq
    window = np.cos(2 * np.pi * f * t)[None]  # peaks at integer seconds
    request = trig.update(Decision(0, t[0], t_end, 200, window=window))
    assert request is not None
    assert request.at == pytest.approx(10.5, abs=0.01)


def test_trigger_fires_once_per_event_after_min_duration():
    trig = OscillationTrigger(0, threshold=2.0, off_ratio=0.75, min_duration_s=0.1,
                              refractory_s=0.3, relative=False)
    trig.bind(classes=None, ch_names=["x"], sfreq=100.0)
    scores = [1, 2.5, 2.5, 2.5, 1.8, 2.5, 1.0, 1.0, 2.2, 2.2, 2.2, 2.2]
    fired = [trig.decide(s, 0.05 * i) is not None for i, s in enumerate(scores)]
    # fires 0.1 s after crossing (i=3); 1.8 is above threshold*off_ratio, so the event goes
    # on; after dropping to 1.0 a new event fires 0.1 s after it starts (i=10)
    assert fired == [False, False, False, True, False, False, False, False, False, False,
                     True, False]
    with pytest.raises(ValueError, match=r"freq must be a finite number > 0 \(Hz\), got -1"):
        OscillationTrigger(0, freq=-1)


def test_parse_policy_specs():
    from bci.realtime.session import parse_policy

    pol = parse_policy("threshold:target=left_hand,on=0.9,off=0.4,refractory_s=3")
    assert isinstance(pol, ThresholdPolicy)
    assert (pol.target, pol.on, pol.off, pol.refractory_s) == ("left_hand", 0.9, 0.4, 3)
    trig = parse_policy("oscillation:channel=C3,freq=13.5,threshold=2.5,target_phase=180")
    assert isinstance(trig, OscillationTrigger)
    assert trig.channel == "C3"
    assert trig.target_phase == 180
    assert parse_policy("none") is None
    with pytest.raises(ValueError, match="Unknown policy 'treshold'. Did you mean 'threshold'"):
        parse_policy("treshold:target=a")
    with pytest.raises(ValueError, match="needs target=<class name>"):
        parse_policy("threshold:on=0.8")
    with pytest.raises(ValueError, match="Bad oscillation policy parameters"):
        parse_policy("oscillation:frequency=12")


KALUNGA_CLASSES = ["13", "17", "21", "rest"]


def _decision(proba):
    return Decision(0, 0.0, 1.0, 0, proba=np.asarray(proba, float))


@pytest.mark.parametrize(("target", "column"), [("13", 0), ("21", 2), ("rest", 3), (3, 3),
                                                (0, 0)])
def test_threshold_target_is_a_class_name_matched_as_text(target, column):
    pol = ThresholdPolicy(target, on=0.5, off=0.5)
    pol.bind(classes=KALUNGA_CLASSES, ch_names=["Oz"], sfreq=256.0)
    proba = np.full(4, 0.1)
    proba[column] = 0.7
    decision = _decision(proba)
    assert pol.update(decision) is not None
    assert decision.score == pytest.approx(0.7)


@pytest.mark.parametrize(("target", "match"), [
    ("-1", r"target class '-1' is not one of the decoder classes \['13', '17', '21', 'rest'\]"),
    ("15", r"'15' is not one of the decoder classes \['13', '17', '21', 'rest'\]"),
    (-1, r"index -1 is out of range for the 4 decoder classes"),
    (4, r"index 4 is out of range for the 4 decoder classes .*from 0 to 3"),
])
def test_unknown_or_out_of_range_target_is_refused_at_bind(target, match):
    # before: target=-1 silently meant the last class, target=13 raised IndexError mid-session
    pol = ThresholdPolicy(target)
    with pytest.raises(ValueError, match=match):
        pol.bind(classes=KALUNGA_CLASSES, ch_names=["Oz"], sfreq=256.0)


def test_threshold_policy_needs_a_decoder_at_bind():
    with pytest.raises(ValueError, match="the session has no decoder classes; the threshold "
                                         "policy needs a decoder's probabilities"):
        ThresholdPolicy("left").bind(classes=None, ch_names=["C3"], sfreq=128.0)


def test_integer_like_classes_are_matched_as_text():
    pol = ThresholdPolicy("13")
    pol.bind(classes=[13, 17], ch_names=["Oz"], sfreq=256.0)  # a decoder with int classes
    assert pol.update(_decision([0.9, 0.1])) is not None


def test_oscillation_channel_checked_at_bind():
    trig = OscillationTrigger("Cz", freq=13.5)
    with pytest.raises(ValueError, match=r"channel 'Cz' is not one of the stream channels "
                                         r"\['C3', 'C4'\]"):
        trig.bind(classes=None, ch_names=["C3", "C4"], sfreq=100.0)
    with pytest.raises(ValueError, match=r"channel index 2 is out of range for the 2 stream"):
        OscillationTrigger(2).bind(classes=None, ch_names=["C3", "C4"], sfreq=100.0)
    with pytest.raises(ValueError, match=r"freq=60 Hz must be below the stream's Nyquist "
                                         r"frequency \(50 Hz at 100 Hz\)"):
        OscillationTrigger("C3", freq=60.0).bind(classes=None, ch_names=["C3"], sfreq=100.0)


BAD_NUMBERS = [float("nan"), float("inf"), float("-inf"), 0.0, -1.0]


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize(("param", "zero_ok"), [
    ("refractory_s", True), ("on", True), ("off", True)])
def test_threshold_policy_refuses_non_finite_and_out_of_range(param, zero_ok, value):
    kwargs = {"on": 0.9, "off": 0.0, param: value}
    if zero_ok and value == 0.0:
        assert getattr(ThresholdPolicy("a", **kwargs), param) == 0.0
        return
    with pytest.raises(ValueError, match=rf"{param} must be a .*got {value}"):
        ThresholdPolicy("a", **kwargs)


@pytest.mark.parametrize("value", [0, -1])
def test_threshold_policy_counts(value):
    with pytest.raises(ValueError, match=rf"n_consecutive must be an int >= 1 \(decisions\), "
                                         rf"got {value}"):
        ThresholdPolicy("a", n_consecutive=value)
    with pytest.raises(TypeError, match=r"n_consecutive must be an int \(decisions\), got "
                                        r"float \(nan\)"):
        ThresholdPolicy("a", n_consecutive=float("nan"))


@pytest.mark.parametrize("value", BAD_NUMBERS)
@pytest.mark.parametrize(("param", "zero_ok"), [
    ("freq", False), ("threshold", False), ("rms_s", False), ("min_duration_s", True),
    ("off_ratio", False), ("refractory_s", True), ("baseline_s", False),
    ("max_delay_s", True), ("target_phase", True)])
def test_oscillation_trigger_refuses_non_finite_and_out_of_range(param, zero_ok, value):
    if param == "threshold" and value == float("inf"):
        assert OscillationTrigger(0, threshold=value).threshold == float("inf")  # scores only
        return
    if (zero_ok and value == 0.0) or (param == "target_phase" and np.isfinite(value)):
        assert getattr(OscillationTrigger(0, **{param: value}), param) == value
        return
    with pytest.raises(ValueError, match=rf"{param} must be a .*got {value}"):
        OscillationTrigger(0, **{param: value})


def test_parse_policy_keeps_names_as_text():
    from bci.realtime.session import parse_policy

    assert parse_policy("threshold:target=13").target == "13"
    assert parse_policy("threshold:target='13',on=0.7").target == "13"
    assert parse_policy('threshold:target="left hand"').target == "left hand"
    assert parse_policy("threshold:target=-1").target == "-1"
    assert parse_policy("oscillation:channel=1").channel == "1"
    with pytest.raises(ValueError, match=r"Bad threshold policy parameters in "
                                         r"'threshold:target=a,onn=0.5': unknown \['onn'\]; "
                                         r"accepted: target, on, off"):
        parse_policy("threshold:target=a,onn=0.5")
    with pytest.raises(ValueError, match="must look like KEY=VALUE|look like KEY=VALUE"):
        parse_policy("threshold:target=a,0.5")
    with pytest.raises(ValueError, match="The 'none' policy takes no parameters"):
        parse_policy("none:target=a")
    with pytest.raises(TypeError, match=r"on must be a probability, got str \('high'\)"):
        parse_policy("threshold:target=a,on=high")
