"""make_multicontact_ieeg: subjects with their own electrodes and a planted regional effect."""

from __future__ import annotations

import numpy as np
import pytest

from bci.data.synthetic import (
    IEEG_BACKGROUND_RMS_V,
    IEEG_ELECTRODES,
    IEEG_EVENT_ID,
    make_multicontact_ieeg,
)


def _regions_of(epochs, regions):
    return [regions[name.rstrip("0123456789")] for name in epochs.ch_names]


def test_electrode_sets_differ_and_follow_the_ranges():
    data = make_multicontact_ieeg(n_subjects=8, n_trials=3, n_regions=(2, 3),
                                  n_contacts=(1, 3), random_state=0)
    assert data.subjects == [f"sub-{i:02d}" for i in range(1, 9)]
    assert data.regions == {k: v for k, v in IEEG_ELECTRODES.items() if k != "OFC"}
    layouts = set()
    for epochs, weight in zip(data.epochs, data.effect_weights, strict=True):
        assert set(epochs.get_channel_types()) == {"seeg"}
        assert len(epochs) == 6
        assert sorted(epochs.events[:, 2].tolist()) == [1, 1, 1, 2, 2, 2]
        assert epochs.event_id == IEEG_EVENT_ID
        assert epochs.get_data().shape[2] == 250
        regions = _regions_of(epochs, data.regions)
        assert 2 <= len(set(regions)) <= 3
        for region in set(regions):
            assert 1 <= regions.count(region) <= 3
        # every subject has a contact in an effect region, and only those carry a weight
        assert set(regions) & set(data.effect_regions)
        in_effect = np.isin(regions, data.effect_regions)
        assert np.all((weight >= 0.5) & (weight <= 1.0) | ~in_effect)
        assert np.all(weight[~in_effect] == 0)
        layouts.add(tuple(epochs.ch_names))
    assert len(layouts) > 4  # subjects have different electrode sets


def test_seeded_and_reproducible():
    a = make_multicontact_ieeg(n_subjects=2, n_trials=4, random_state=3)
    b = make_multicontact_ieeg(n_subjects=2, n_trials=4, random_state=np.random.default_rng(3))
    c = make_multicontact_ieeg(n_subjects=2, n_trials=4, random_state=4)
    for ea, eb in zip(a.epochs, b.epochs, strict=True):
        assert ea.ch_names == eb.ch_names
        np.testing.assert_array_equal(ea.get_data(), eb.get_data())
    assert not np.array_equal(a.epochs[0].get_data()[:, :1], c.epochs[0].get_data()[:, :1])


def test_planted_effect_has_its_closed_form_power():
    # task / rest variance of a contact is 1 + (snr * weight)^2 (unit-RMS background and burst)
    snr = 1.0
    data = make_multicontact_ieeg(n_subjects=3, n_trials=150, snr=snr, random_state=1)
    for epochs, weight in zip(data.epochs, data.effect_weights, strict=True):
        X = epochs.get_data()
        task = epochs.events[:, 2] == 2
        ratio = X[task].var(axis=2).mean(0) / X[~task].var(axis=2).mean(0)
        np.testing.assert_allclose(ratio, 1 + (snr * weight) ** 2, rtol=0.12)
        # the subject gain is in [0.5, 2] times the background RMS
        rms = np.sqrt(X[~task].var(axis=2).mean())
        assert 0.45 * IEEG_BACKGROUND_RMS_V < rms < 2.2 * IEEG_BACKGROUND_RMS_V


@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"effect_regions": ("cingulate",), "regions": ("hippocampus", "insula")}, ValueError,
     r"effect_regions must be a non-empty subset of regions \['hippocampus', 'insula'\]"),
    ({"regions": ("hipocampus",)}, ValueError, r"Unknown region 'hipocampus'. Did you mean "
                                               r"'hippocampus'"),
    ({"n_regions": (2, 9)}, ValueError, r"n_regions must be \(low, high\) with 1 <= low <= "
                                        r"high <= 5"),
    ({"n_contacts": (3, 1)}, ValueError, r"n_contacts must be \(low, high\) with low <= high"),
    ({"sfreq": 128.0}, ValueError, r"effect_freq \+ 2 \* effect_bw = 90 Hz must be below "
                                   r"Nyquist \(64 Hz\)"),
    ({"snr": float("nan")}, ValueError, r"snr must be a finite number > 0"),
    ({"n_trials": 0}, ValueError, r"n_trials must be an int >= 1"),
])
def test_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        make_multicontact_ieeg(**kwargs)
