"""SpindleNetTrigger: online scores equal the batch ones, fires within budget, phase target."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.signal import butter, hilbert, sosfilt, sosfiltfilt

from bci.models.spindle_net import SpindleNet, causal_normalise, fit_spindle_net, spindle_labels
from bci.realtime.events import Decision
from bci.realtime.policies import estimate_phase
from bci.realtime.processing import CausalFilter, ProcessingChain
from bci.realtime.session import replay_offline
from bci.realtime.spindle import (
    SpindleNetTrigger,
    causal_phase,
    decimation_factor,
    offline_net_scores,
)
from tests.models.test_spindle_net import planted_spindles

SFREQ, NET_SFREQ = 100.0, 50.0


def chain() -> ProcessingChain:
    return ProcessingChain([CausalFilter(SFREQ, 11.0, 16.0, order=3)])


@pytest.fixture(scope="module")
def trained_net() -> SpindleNet:
    torch.set_num_threads(1)
    signals, labels = [], []
    for seed in (1, 2):
        x, events = planted_spindles(seed, sfreq=SFREQ)
        y, _ = causal_normalise(chain().apply(x[np.newaxis])[0][::2], NET_SFREQ)
        signals.append(y)
        labels.append(spindle_labels(len(y), NET_SFREQ, events))
    return fit_spindle_net(signals, labels, NET_SFREQ, n_times=50, n_steps=150, seed=0)


def test_online_scores_equal_batch_scores():
    torch.manual_seed(0)
    net = SpindleNet(1, 1, 40, NET_SFREQ).eval()
    x, _ = planted_spindles(3, duration_s=20.0, sfreq=SFREQ)
    decisions, _ = replay_offline(x[np.newaxis], SFREQ, ["EEG"], window_s=0.5, step_s=0.05,
                                  processing=chain(), policy=SpindleNetTrigger(
                                      net, "EEG", threshold=np.inf), chunk_size=7, buffer_s=5.0)
    stops = np.array([d.stop_index for d in decisions])
    online = np.array([d.score for d in decisions])
    assert len(decisions) == int((20.0 - 0.5) / 0.05) + 1
    batch = offline_net_scores(net, chain().apply(x[np.newaxis])[0], SFREQ, stops)
    np.testing.assert_allclose(online, batch, atol=1e-5)


def test_fires_within_budget(trained_net):
    x, events = planted_spindles(7, duration_s=60.0, sfreq=SFREQ)
    trigger = SpindleNetTrigger(trained_net, "EEG", threshold=0.7, refractory_s=1.0)
    decisions, _ = replay_offline(x[np.newaxis], SFREQ, ["EEG"], window_s=0.5, step_s=0.05,
                                  processing=chain(), policy=trigger, buffer_s=5.0,
                                  chunk_size=20)
    fired = trigger.replay([d.t_end for d in decisions], [d.score for d in decisions])
    fired, events = fired[fired >= 5.0], events[events[:, 0] >= 5.0]  # after the warm-up
    near = [fired[(fired >= on - 0.25) & (fired <= off + 0.25)] - on for on, off in events]
    delays = [d[0] for d in near if len(d)]
    assert len(delays) >= 0.9 * len(events)  # recall (1.0 measured)
    assert np.median(delays) <= 0.4  # onset to stimulus (s): within budget (0.33 measured)
    inside = sum(np.any((events[:, 0] - 0.25 <= s) & (s <= events[:, 1] + 0.25)) for s in fired)
    assert inside >= 0.75 * len(fired)  # precision (0.83 measured)


def test_phase_estimate_on_sinusoid_and_scheduled_phase():
    freq, target = 13.5, 180.0
    t = np.arange(int(3 * SFREQ)) / SFREQ
    x = np.cos(2 * np.pi * freq * t + 0.7)
    truth = np.angle(hilbert(sosfiltfilt(butter(3, [11, 16], "bandpass", fs=SFREQ,
                                                output="sos"), x)))
    errors = []
    for i in range(60, 250, 7):
        phase, amp = estimate_phase(x[i - 14:i + 1], SFREQ, freq)
        errors.append(np.angle(np.exp(1j * (truth[i] - phase))))
        assert abs(amp - 1.0) < 0.05
    assert np.max(np.abs(np.rad2deg(errors))) < 5.0  # degrees, against the offline Hilbert
    torch.manual_seed(0)
    trigger = SpindleNetTrigger(SpindleNet(1, 1, 10, NET_SFREQ), "EEG", threshold=1e-9,
                                freq=freq, target_phase=target, max_delay_s=0.1)
    trigger.bind(classes=None, ch_names=["EEG"], sfreq=SFREQ)
    request = trigger.update(Decision(index=0, t_start=t[50], t_end=t[149], stop_index=150,
                                      window=x[np.newaxis, 50:150]))
    assert request is not None
    assert 0 <= request.at - t[149] <= 1 / freq
    j = int(round(request.at * SFREQ))
    assert abs(np.rad2deg(np.angle(np.exp(1j * (truth[j] - np.pi))))) < 0.5 / SFREQ * freq * 360


def test_errors():
    with pytest.raises(ValueError, match="integer multiple"):
        decimation_factor(100.0, 30.0)
    with pytest.raises(TypeError, match="net"):
        SpindleNetTrigger("not a net")
    trigger = SpindleNetTrigger(SpindleNet(1, 1, 10, 30.0), "EEG")
    with pytest.raises(ValueError, match="integer multiple"):
        trigger.bind(classes=None, ch_names=["EEG"], sfreq=SFREQ)


@pytest.mark.parametrize("freq", [11.5, 12.25, 14.0, 15.75])
def test_causal_phase_finds_the_frequency_and_undoes_the_filter_lag(freq):
    sfreq, phi0 = 200.0, 0.4
    t = np.arange(int(4 * sfreq)) / sfreq
    x = np.cos(2 * np.pi * freq * t + phi0)
    sos = butter(3, [11.0, 16.0], "bandpass", fs=sfreq, output="sos")
    y = sosfilt(sos, x)  # causal: lags by the filter's phase response at freq
    n = int(0.3 * sfreq)
    for i in (400, 533, 799):
        truth = np.mod(2 * np.pi * freq * t[i] + phi0, 2 * np.pi)
        phase, f = causal_phase(y[i - n + 1:i + 1], sfreq, (11.0, 16.0), sos=sos)
        assert f == freq  # on the 0.25-Hz grid
        assert abs(np.rad2deg(np.angle(np.exp(1j * (phase - truth))))) < 2.0
        # a fixed 13.5 Hz, uncompensated, is far off away from the band centre
        fixed, _ = estimate_phase(y[i - 29:i + 1], sfreq, 13.5)
        if abs(freq - 13.5) > 1.0:
            assert abs(np.rad2deg(np.angle(np.exp(1j * (fixed - truth))))) > 20.0
    with pytest.raises(ValueError, match="band must be"):
        causal_phase(y[:60], sfreq, (16.0, 11.0))


def test_trigger_with_freq_band_schedules_the_true_peak():
    sfreq, freq = 200.0, 12.0
    t = np.arange(int(3 * sfreq)) / sfreq
    x = np.cos(2 * np.pi * freq * t + 1.1)
    sos = butter(3, [11.0, 16.0], "bandpass", fs=sfreq, output="sos")
    y = sosfilt(sos, x)
    torch.manual_seed(0)
    trigger = SpindleNetTrigger(SpindleNet(1, 1, 10, NET_SFREQ), "EEG", threshold=1e-9,
                                target_phase=0.0, max_delay_s=0.1, freq_band=(11.0, 16.0),
                                phase_sos=sos)
    trigger.bind(classes=None, ch_names=["EEG"], sfreq=sfreq)
    stop = 500
    request = trigger.update(Decision(index=0, t_start=t[stop - 100], t_end=t[stop - 1],
                                      stop_index=stop, window=y[np.newaxis, stop - 100:stop]))
    assert request is not None
    assert "12.00 Hz" in request.reason
    assert 0 <= request.at - t[stop - 1] <= 1 / freq
    true_phase = np.angle(np.exp(1j * (2 * np.pi * freq * request.at + 1.1)))
    assert abs(np.rad2deg(true_phase)) < 3.0  # at the unfiltered signal's peak
    with pytest.raises(ValueError, match="freq_band must be"):
        SpindleNetTrigger(SpindleNet(1, 1, 10, NET_SFREQ), freq_band=(16.0, 11.0))
