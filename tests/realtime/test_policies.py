"""Oscillation trigger and causal phase estimation."""

from __future__ import annotations

import numpy as np
import pytest

from bci.realtime.events import Decision
from bci.realtime.policies import OscillationTrigger, estimate_phase


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
    with pytest.raises(ValueError, match="must be positive"):
        OscillationTrigger(0, freq=-1)


def test_parse_policy_specs():
    from bci.realtime.policies import ThresholdPolicy
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
