"""Synthetic recordings and datasets: determinism, montage, the planted effects, MOABB contract."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from scipy.signal import periodogram, welch

from bci.data import SyntheticMotorImagery, SyntheticSSVEP, make_motor_imagery, make_ssvep
from bci.data.synthetic import BACKGROUND_RMS_V, MAX_N_CHANS

MI_ALL = ("left_hand", "right_hand", "feet", "rest")
KALUNGA_CHANNELS = {"Oz", "O1", "O2", "POz", "PO3", "PO4", "PO7", "PO8"}


def _segments(raw, tmin: float, tmax: float):
    """Per-trial arrays (n_trials, n_chans, n_times) cut at [tmin, tmax) s from each onset."""
    sfreq = raw.info["sfreq"]
    start, stop = int(round(tmin * sfreq)), int(round(tmax * sfreq))
    data = raw.get_data()
    onsets = np.round(raw.annotations.onset * sfreq).astype(int)
    X = np.stack([data[:, o + start:o + stop] for o in onsets])
    return X, np.asarray(raw.annotations.description)


def _band_log_power(X, sfreq, fmin, fmax):
    """Mean log power in [fmin, fmax] Hz per trial and channel, (n_trials, n_chans)."""
    f, pxx = welch(X, fs=sfreq, nperseg=int(sfreq), axis=-1)
    band = (f >= fmin) & (f <= fmax)
    return np.log(pxx[..., band].mean(-1))


# --------------------------------------------------------------------------------------------
# generators
# --------------------------------------------------------------------------------------------
def test_generators_are_deterministic():
    a = make_motor_imagery(4, random_state=7)
    b = make_motor_imagery(4, random_state=np.random.default_rng(7))
    c = make_motor_imagery(4, random_state=8)
    np.testing.assert_array_equal(a.get_data(), b.get_data())
    np.testing.assert_array_equal(a.annotations.onset, b.annotations.onset)
    assert list(a.annotations.description) == list(b.annotations.description)
    assert a.n_times != c.n_times or not np.allclose(a.get_data(), c.get_data())
    s1, s2 = make_ssvep(2, random_state=1), make_ssvep(2, random_state=1)
    np.testing.assert_array_equal(s1.get_data(), s2.get_data())
    s3 = make_ssvep(2, random_state=2)
    assert s1.n_times != s3.n_times or not np.allclose(s1.get_data(), s3.get_data())


def test_motor_imagery_recording_layout():
    raw = make_motor_imagery(6, classes=MI_ALL, n_chans=16, random_state=0)
    assert raw.info["sfreq"] == 128.0
    assert len(raw.ch_names) == 16
    assert {"C3", "Cz", "C4"} <= set(raw.ch_names)
    assert set(raw.get_channel_types()) == {"eeg"}
    # montage: MNE's 10-05 positions (compared through distances, which survive the
    # transform to head coordinates)
    pos = raw.get_montage().get_positions()["ch_pos"]
    ref = mne.channels.make_standard_montage(
        "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages()
        else "standard_1005").get_positions()["ch_pos"]
    got = np.array([pos[c] for c in raw.ch_names])
    want = np.array([ref[c] for c in raw.ch_names])
    np.testing.assert_allclose(np.linalg.norm(got[:, None] - got[None], axis=-1),
                               np.linalg.norm(want[:, None] - want[None], axis=-1), atol=1e-9)
    # volts, 10 uV background plus rhythms: tens of microvolts
    rms = raw.get_data().std(axis=1)
    assert np.all((rms > 9e-6) & (rms < 30e-6))
    # balanced, shuffled classes; cue, 4 s imagery, 2-3 s rest
    desc = np.asarray(raw.annotations.description)
    assert {c: int((desc == c).sum()) for c in MI_ALL} == dict.fromkeys(MI_ALL, 6)
    assert len(set(desc[:4])) > 1 or len(set(desc[4:8])) > 1
    np.testing.assert_array_equal(raw.annotations.duration, 4.0)
    gaps = np.diff(raw.annotations.onset)
    assert gaps.min() >= 6.0 - 1e-9
    assert gaps.max() <= 7.0 + 1e-9
    assert raw.annotations.onset[0] >= 2.0
    assert raw.times[-1] >= raw.annotations.onset[-1] + 6.0
    # full-rank, realistically conditioned channel covariance
    cov = np.cov(raw.get_data())
    assert np.linalg.matrix_rank(cov) == 16
    assert np.linalg.cond(cov) < 1e4
    # channel choice: C3, Cz, C4 first, then left/right pairs; montage order; unique names
    assert make_motor_imagery(1, n_chans=3, random_state=0).ch_names == ["C3", "Cz", "C4"]
    assert make_motor_imagery(1, random_state=0).ch_names == [
        "FC3", "FCz", "FC4", "C3", "Cz", "C4", "CP3", "CP4"]
    big = make_motor_imagery(1, n_chans=MAX_N_CHANS, random_state=0, iti_s=(1, 1))
    assert len(set(big.ch_names)) == MAX_N_CHANS


def test_snr_is_rhythm_rms_over_background_rms():
    """Same seed, snr 0 vs 0.8: the difference is the rhythm, 0.8 x 10 uV RMS at C3 at rest."""
    kwargs = dict(n_trials=10, classes=("rest",), random_state=3)
    with_rhythm = make_motor_imagery(snr=0.8, **kwargs)
    background = make_motor_imagery(snr=0.0, **kwargs)
    c3 = with_rhythm.ch_names.index("C3")
    rhythm = with_rhythm.get_data()[c3] - background.get_data()[c3]
    # the midline source adds 0.7 * exp(-d(C3, Cz)^2 / 2 (3.5 cm)^2) ~ 0.12 in quadrature
    assert rhythm.std() == pytest.approx(0.8 * BACKGROUND_RMS_V, rel=0.03)
    np.testing.assert_allclose(background.get_data().std(axis=1), BACKGROUND_RMS_V, rtol=0.05)
    # the rhythm is narrowband at mu (and beta): its power peaks near 11 Hz
    f, pxx = welch(rhythm, fs=128.0, nperseg=512)
    assert 10.0 <= f[np.argmax(pxx)] <= 12.0


def test_erd_is_contralateral():
    # expected at the source electrode: log((7 * 0.65^2 + 1) / 8) = -0.7 (mu-band rhythm power
    # about 7 x background, amplitude x 0.65 during imagery)
    raw = make_motor_imagery(30, classes=MI_ALL, random_state=0)
    X, y = _segments(raw, 0.75, 4.0)
    mu = _band_log_power(X, raw.info["sfreq"], 9.0, 13.0)
    c3, cz, c4 = (raw.ch_names.index(c) for c in ("C3", "Cz", "C4"))

    def diff(ch, a, b):  # mean log-power of class a minus class b at channel ch
        return mu[y == a, ch].mean() - mu[y == b, ch].mean()

    # left hand: right hemisphere (C4) desynchronises; right hand: left hemisphere (C3)
    assert diff(c4, "left_hand", "right_hand") < -0.4
    assert diff(c3, "right_hand", "left_hand") < -0.4
    assert diff(c4, "left_hand", "rest") < -0.4
    assert diff(c3, "right_hand", "rest") < -0.4
    assert diff(cz, "feet", "rest") < -0.25
    # ipsilateral hemisphere unchanged against rest
    assert abs(diff(c3, "left_hand", "rest")) < 0.25
    assert abs(diff(c4, "right_hand", "rest")) < 0.25
    # before the cue there is no difference
    X0, y0 = _segments(raw, -2.0, 0.0)
    pre = _band_log_power(X0, raw.info["sfreq"], 9.0, 13.0)
    assert abs(pre[y0 == "left_hand", c4].mean() - pre[y0 == "right_hand", c4].mean()) < 0.2
    # no desynchronisation asked, none found
    flat = make_motor_imagery(30, classes=MI_ALL, erd_depth=0.0, random_state=0)
    Xf, yf = _segments(flat, 0.75, 4.0)
    muf = _band_log_power(Xf, flat.info["sfreq"], 9.0, 13.0)
    assert abs(muf[yf == "left_hand", c4].mean() - muf[yf == "right_hand", c4].mean()) < 0.2


def test_ssvep_recording_layout():
    raw = make_ssvep(3, random_state=0)
    assert set(raw.ch_names) == KALUNGA_CHANNELS
    assert raw.info["sfreq"] == 256.0
    assert raw.get_montage() is not None
    desc = np.asarray(raw.annotations.description)
    assert {c: int((desc == c).sum()) for c in ("13", "17", "21", "rest")} == dict.fromkeys(
        ("13", "17", "21", "rest"), 3)
    np.testing.assert_array_equal(raw.annotations.duration, 5.0)
    assert make_ssvep(1, n_chans=1, random_state=0).ch_names == ["Oz"]
    no_rest = make_ssvep(1, freqs=(7.5, 12), include_rest=False, random_state=0)
    assert sorted(set(no_rest.annotations.description)) == ["12", "7.5"]


def test_ssvep_peaks_at_stimulus_frequency_over_occipital():
    raw = make_ssvep(4, random_state=0)
    X, y = _segments(raw, 1.0, 5.0)  # 4 s: 0.25 Hz bins
    f, pxx = periodogram(X, fs=raw.info["sfreq"], axis=-1)
    oz = raw.ch_names.index("Oz")
    rest = pxx[y == "rest"].mean(0)  # (n_chans, n_freqs)
    for label in ("13", "17", "21"):
        stim = pxx[y == label].mean(0)
        ratio = stim / rest
        k, k2 = np.argmin(np.abs(f - float(label))), np.argmin(np.abs(f - 2 * float(label)))
        assert ratio[oz, k] > 10
        assert ratio[oz, k2] > 3
        # at Oz, among the stimulation frequencies, the response is at this class's one
        others = [np.argmin(np.abs(f - float(o))) for o in ("13", "17", "21") if o != label]
        assert all(ratio[oz, k] > 5 * ratio[oz, j] for j in others)
        # spatially it peaks over the occipital midline
        assert np.argmax(stim[:, k] - rest[:, k]) == oz


# --------------------------------------------------------------------------------------------
# MOABB datasets
# --------------------------------------------------------------------------------------------
def test_dataset_contract():
    mi, ssvep = SyntheticMotorImagery(), SyntheticSSVEP()
    assert (mi.code, mi.paradigm, mi.interval) == ("SyntheticMotorImagery", "imagery", [0, 4.0])
    assert mi.event_id == {"left_hand": 1, "right_hand": 2}
    assert mi.subject_list == [1, 2]
    assert (ssvep.code, ssvep.paradigm, ssvep.interval) == ("SyntheticSSVEP", "ssvep", [1, 5.0])
    # frequencies first (SSVEP(n_classes=3) takes the first three), codes = frequencies
    assert ssvep.event_id == {"13": 13, "17": 17, "21": 21, "rest": 1}
    assert SyntheticSSVEP(freqs=(7.5, 12)).event_id == {"7.5": 1, "12": 2, "rest": 3}
    assert mi.data_path(1) == []
    assert ssvep.data_path(2) == []
    with pytest.raises(ValueError, match="subject must be one of"):
        mi.data_path(3)
    four = SyntheticMotorImagery(classes=MI_ALL)
    assert four.event_id == {"left_hand": 1, "right_hand": 2, "feet": 3, "rest": 4}
    # subjects differ a little, like people
    p1, p2 = mi.subject_params(1), mi.subject_params(2)
    assert p1 != p2
    assert 9.5 <= p1["mu_freq"] <= 12.5
    assert 0.85 <= p1["snr"] <= 1.15


def test_left_right_and_motor_imagery_paradigms():
    from moabb.paradigms import LeftRightImagery, MotorImagery

    dataset = SyntheticMotorImagery(n_trials=4, classes=MI_ALL)
    X, y, meta = LeftRightImagery().get_data(dataset)
    # 2 subjects x 1 session x 2 runs x 4 trials x 2 classes; 4 s at 128 Hz, both ends kept
    assert X.shape == (32, 8, 513)
    assert {c: int((y == c).sum()) for c in set(y)} == {"left_hand": 16, "right_hand": 16}
    assert set(meta.subject) == {1, 2}
    assert set(meta.session) == {"0"}
    assert set(meta.run) == {"0", "1"}
    assert 3 < X.std() < 30  # MOABB returns microvolts
    X4, y4, _ = MotorImagery(n_classes=4).get_data(dataset, subjects=[2])
    assert X4.shape == (32, 8, 513)
    assert {c: int((y4 == c).sum()) for c in set(y4)} == dict.fromkeys(MI_ALL, 8)


def test_ssvep_paradigms():
    from moabb.paradigms import SSVEP, FilterBankSSVEP

    dataset = SyntheticSSVEP(n_subjects=1, n_runs=1, n_trials=3)
    X, y, meta = SSVEP(n_classes=3).get_data(dataset)
    assert X.shape == (9, 8, 1025)
    assert sorted(set(y)) == ["13", "17", "21"]
    Xf, yf, _ = FilterBankSSVEP(n_classes=4).get_data(dataset)
    assert Xf.shape == (12, 8, 1025, 3)
    assert {c: int((yf == c).sum()) for c in set(yf)} == dict.fromkeys(
        ("13", "17", "21", "rest"), 3)


@pytest.mark.parametrize("cls", [SyntheticMotorImagery, SyntheticSSVEP])
def test_subject_loaded_alone_equals_subject_loaded_with_others(cls):
    kwargs = dict(n_subjects=3, n_runs=2, n_trials=2)
    together = cls(**kwargs).get_data([3, 1, 2])
    alone = cls(**kwargs).get_data([2])
    selected = cls(**kwargs, subjects=[2]).get_data()
    for other in (alone, selected):
        for run in ("0", "1"):
            a, b = together[2]["0"][run], other[2]["0"][run]
            np.testing.assert_array_equal(a.get_data(), b.get_data())
            np.testing.assert_array_equal(a.annotations.onset, b.annotations.onset)
    assert not np.array_equal(together[1]["0"]["0"].get_data()[:, :500],
                              together[2]["0"]["0"].get_data()[:, :500])
    reseeded = cls(**kwargs, random_state=0).get_data([2])
    assert not np.array_equal(reseeded[2]["0"]["0"].get_data()[:, :500],
                              alone[2]["0"]["0"].get_data()[:, :500])


# --------------------------------------------------------------------------------------------
# decoding finds the planted effect
# --------------------------------------------------------------------------------------------
def _cv_score(pipeline, X, y, scoring):
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    return cross_val_score(pipeline, X, y, cv=cv, scoring=scoring).mean()


def test_tangent_space_decodes_left_right():
    from moabb.paradigms import LeftRightImagery
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(Covariances("oas"), TangentSpace(), LogisticRegression())
    X, y, _ = LeftRightImagery().get_data(SyntheticMotorImagery(), subjects=[1])
    assert X.shape[0] == 100
    assert _cv_score(pipe, X, y, "roc_auc") > 0.9
    # without the planted rhythm there is nothing to find
    X0, y0, _ = LeftRightImagery().get_data(SyntheticMotorImagery(snr=0.0), subjects=[1])
    assert _cv_score(pipe, X0, y0, "roc_auc") < 0.75


def test_filter_bank_ssvep_pipeline_decodes():
    from moabb.paradigms import FilterBankSSVEP
    from moabb.pipelines import ExtendedSSVEPSignal
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    X, y, _ = FilterBankSSVEP(n_classes=4).get_data(SyntheticSSVEP(), subjects=[1])
    assert X.shape == (80, 8, 1025, 3)
    pipe = make_pipeline(ExtendedSSVEPSignal(), Covariances("lwf"), TangentSpace(),
                         LogisticRegression())
    assert _cv_score(pipe, X, y, "accuracy") > 0.7  # chance: 0.25


# MOABB 1.7.2 writes its results with an h5py call that h5py deprecates
@pytest.mark.filterwarnings("ignore:Creating a dataset without passing data or dtype")
def test_moabb_cca_finds_the_frequencies_in_an_evaluation(tmp_path):
    """MOABB label-encodes classes; its CCA then needs event codes that are the frequencies."""
    from moabb.evaluations import WithinSessionEvaluation
    from moabb.paradigms import SSVEP
    from moabb.pipelines.classification import SSVEP_CCA

    evaluation = WithinSessionEvaluation(paradigm=SSVEP(n_classes=3),
                                         datasets=[SyntheticSSVEP(n_subjects=1)],
                                         overwrite=True, hdf5_path=str(tmp_path),
                                         random_state=0)
    results = evaluation.process({"CCA": SSVEP_CCA(n_harmonics=2)})
    assert len(results) == 1
    assert results.score.iloc[0] > 0.8


# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(n_trials=0), r"n_trials must be an int >= 1 \(trials per class\), got 0"),
    (dict(classes=("left_hand", "tongue")), r"Unknown class 'tongue'"),
    (dict(classes=("left_hnd",)), r"Did you mean 'left_hand'"),
    (dict(classes=()), r"classes must name at least one class"),
    (dict(classes=("feet", "feet")), r"classes must be unique"),
    (dict(snr=-1.0), r"snr must be a finite number >= 0 \(rhythm RMS / background RMS\), "
                     r"got -1.0"),
    (dict(snr=float("nan")), r"snr must be a finite number >= 0 .* got nan"),
    (dict(n_chans=2), r"n_chans must be between 3 .* got 2"),
    (dict(n_chans=MAX_N_CHANS + 1), rf"n_chans must be between 3 .*got {MAX_N_CHANS + 1}"),
    (dict(sfreq=40.0), r"sfreq must be above .* Hz"),
    (dict(erd_depth=1.5), r"erd_depth must be a fraction in \[0, 1\], got 1.5. It is the "
                          r"fraction of the rhythm amplitude removed during imagery"),
    (dict(iti_s=(3.0, 2.0)), r"iti_s must be \(min, max\) seconds"),
    (dict(iti_s=(0.0, 2.0)), r"iti_s\[0\] \(min\) must be a finite number > 0 \(seconds\)"),
    (dict(imagery_s=float("inf")), r"imagery_s must be a finite number > 0 \(seconds\), got "
                                   r"inf"),
    (dict(random_state=-1), r"random_state must be a non-negative int"),
])
def test_motor_imagery_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_motor_imagery(**kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    (dict(n_trials=0), r"n_trials must be an int >= 1"),
    (dict(snr=-0.1), r"snr must be a finite number >= 0"),
    (dict(n_chans=MAX_N_CHANS + 1), r"n_chans must be between 1 .* got"),
    (dict(freqs=(13.0, 13.0)), r"freqs must be distinct"),
    (dict(freqs=(13.0, -5.0)), r"freqs\[1\] must be a finite number > 0 \(Hz\), got -5.0"),
    (dict(freqs=(70.0,)), r"2nd harmonic .* below Nyquist"),
])
def test_ssvep_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_ssvep(**kwargs)


def test_dataset_bad_arguments():
    with pytest.raises(ValueError, match=r"n_subjects must be an int >= 1 \(number of "
                                         r"subjects\), got 0"):
        SyntheticMotorImagery(n_subjects=0)
    with pytest.raises(ValueError, match=r"Unknown class 'tongue'"):
        SyntheticMotorImagery(classes=("tongue",))
    with pytest.raises(ValueError, match=r"snr must be a finite number >= 0"):
        SyntheticSSVEP(snr=-1)
    with pytest.raises(ValueError, match=r"n_chans must be between 1 .* got 100"):
        SyntheticSSVEP(n_chans=100)
    with pytest.raises(TypeError, match=r"random_state must be an int \(seed\), got Generator"
                                        r".* A dataset derives one seed per subject"):
        SyntheticMotorImagery(random_state=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"random_state must be an int >= 0 \(seed\), got -3"):
        SyntheticSSVEP(random_state=-3)
    with pytest.raises(TypeError, match=r"classes must be a sequence of class names"):
        make_motor_imagery(classes="left_hand")


@pytest.mark.parametrize(("call", "match"), [
    (lambda: make_motor_imagery(n_trials=2.0), r"n_trials must be an int \(trials per class\), "
                                               r"got float \(2.0\)"),
    (lambda: make_motor_imagery(n_chans=True), r"n_chans must be an int \(number of EEG "
                                               r"channels\), got bool"),
    (lambda: make_motor_imagery(sfreq="128"), r"sfreq must be a number \(Hz\), got str"),
    (lambda: make_motor_imagery(classes=("left_hand", 3)), r"each class name must be str, got "
                                                           r"int \(3\)"),
    (lambda: make_motor_imagery(iti_s=2.0), r"iti_s must be a \(min, max\) pair of durations"),
    (lambda: make_motor_imagery(iti_s=(None, 2.0)), r"iti_s\[0\] \(min\) must be a number"),
    (lambda: make_motor_imagery(random_state=1.5), r"random_state must be None, an int seed"),
    (lambda: make_ssvep(include_rest=1), r"include_rest must be True or False, got int \(1\)"),
    (lambda: SyntheticSSVEP(n_runs=1.0), r"n_runs must be an int \(runs per session\)"),
])
def test_bad_argument_types(call, match):
    with pytest.raises(TypeError, match=match):
        call()
