"""Pseudo-online evaluation: planted onsets, equality with the offline score, speed, bad input."""

from __future__ import annotations

import time

import numpy as np
import pytest

from bci.realtime.events import Decision
from bci.realtime.pseudo_online import (
    ConfidencePolicy,
    benchmark,
    find_cues,
    pseudo_online,
    replay_rest,
    replay_trials,
)

SFREQ = 100.0


class FractionDecoder:
    """A transparent decoder: p(class "on") is the fraction of window samples where ch0 > 0.5.

    The rest goes to "off" (90 %) and "idle" (10 %), so no class is certain before the effect.
    """

    def __init__(self, window_s: float, sfreq: float = SFREQ):
        self.sfreq = sfreq
        self.tmin, self.tmax = 0.0, window_s
        self.n_times = int(round(window_s * sfreq)) + 1
        self.ch_names = ["C0", "C1"]
        self.classes = ["off", "on", "idle"]

    def predict_proba(self, X):
        frac = np.mean(X[:, 0] > 0.5, axis=-1)
        return np.column_stack([0.9 * (1 - frac), frac, 0.1 * (1 - frac)])


def _step_signal(cues, onset_s, effect_s, n_samples):
    """Channel 0 is 1 from ``cue + onset_s`` for ``effect_s`` after each cue, else 0."""
    signal = np.zeros((2, n_samples))
    for cue in cues:
        a = cue + int(round(onset_s * SFREQ))
        signal[0, a:a + int(round(effect_s * SFREQ))] = 1.0
    signal[1] = np.arange(n_samples)  # a sample counter, never read by the decoder
    return signal


@pytest.mark.parametrize(("onset_s", "window_s", "step_s"),
                         [(0.5, 1.0, 0.1), (1.23, 0.5, 0.2), (0.0, 2.0, 0.25)])
def test_planted_onset_gives_the_decision_latency(onset_s, window_s, step_s):
    """Confident (p = 1) only once the window lies wholly in the effect: onset + window."""
    cues = [300, 1300, 2300]
    signal = _step_signal(cues, onset_s, 5.5, 3200)  # lasts past the horizon (5 s)
    decoder = FractionDecoder(window_s)
    rep = replay_trials(decoder, signal, SFREQ, ["C0", "C1"], cues, step_s=step_s,
                        horizon_s=5.0, policy=ConfidencePolicy(1.0))
    # the window's first sample must be at or after the onset: the window ends at
    # onset + (n_times - 1) / sfreq; the first grid point at or after it decides
    need = onset_s + (decoder.n_times - 1) / SFREQ
    expected = np.ceil(need / step_s - 1e-9) * step_s
    for acts in rep.activations:
        (t, cls), *_ = acts
        assert cls == 1
        assert t == pytest.approx(expected, abs=0.5 / SFREQ)
        assert abs(t - (onset_s + window_s)) <= step_s  # the tolerance
    # the grid and the probabilities: the fraction of the window inside the effect
    np.testing.assert_allclose(rep.times_s, np.arange(len(rep.times_s)) * step_s)
    frac = np.clip((rep.times_s - onset_s) * SFREQ + 1, 0, decoder.n_times) / decoder.n_times
    np.testing.assert_allclose(rep.proba[0, :, 1], frac, atol=1e-12)


def test_windows_are_cue_aligned_to_the_sample():
    """The window ending at t = k * step is exactly the samples ending k * step after the cue."""
    seen = []

    class Spy(FractionDecoder):
        def predict_proba(self, X):
            seen.append(X[0, 1].copy())
            return super().predict_proba(X)

    signal = _step_signal([], 0.0, 0.0, 1000)
    decoder = Spy(0.5)
    replay_trials(decoder, signal, SFREQ, ["C0", "C1"], [400], step_s=0.3, horizon_s=1.0)
    ends = [int(w[-1]) for w in seen]
    assert ends == [400, 430, 460, 490]
    assert all(len(w) == 51 and w[0] == w[-1] - 50 for w in seen)
    # a cue 20 samples into the recording: the first whole window ends one step after it
    seen.clear()
    rep = replay_trials(decoder, signal, SFREQ, ["C0", "C1"], [20], step_s=0.3, horizon_s=1.0)
    assert [int(w[-1]) for w in seen] == [50, 80, 110]
    assert np.isnan(rep.proba[0, 0]).all()
    assert np.isfinite(rep.proba[0, 1:]).all()


def test_rest_false_activations_counted():
    # rest with the effect planted twice in one period: two activations (re-armed between)
    signal = np.zeros((2, 2000))
    signal[0, 200:400] = 1.0
    signal[0, 800:1000] = 1.0
    n, observed_s, signal_s = replay_rest(FractionDecoder(1.0), signal, SFREQ, ["C0", "C1"],
                                          [(0, 1500)], step_s=0.1, policy=ConfidencePolicy(1.0))
    assert n == 2
    assert signal_s == pytest.approx(15.0)
    # windows end from 1.0 s (sample 100) to 14.99 s every 0.1 s: 140 windows
    assert observed_s == pytest.approx(14.0)


def test_confidence_policy_hysteresis_and_runs():
    policy = ConfidencePolicy(0.8, n_consecutive=2)
    policy.bind(classes=["a", "b"], ch_names=["C0"], sfreq=100.0)

    def step(t, p_b):
        return policy.update(Decision(0, t - 1, t, 0, proba=np.array([1 - p_b, p_b])))

    fired = [step(t, p) for t, p in [(0, 0.9), (1, 0.9), (2, 0.9), (3, 0.5), (4, 0.85),
                                      (5, 0.85), (6, 0.1), (7, 0.1)]]
    codes = [None if f is None else f.code for f in fired]
    # two in a row fire; holding high does not fire again; after falling, two more fire;
    # then class a reaches 0.9 twice: fires class 0
    assert codes == [None, 1, None, None, None, 1, None, 0]


def test_step_longer_than_window_is_refused():
    with pytest.raises(ValueError, match=r"step_s=2 s is longer than the window \(1.01 s"):
        replay_trials(FractionDecoder(1.0), np.zeros((2, 500)), SFREQ, ["C0", "C1"], [200],
                      step_s=2.0)


def test_find_cues_refuses_epochs():
    import mne

    epochs = mne.EpochsArray(np.zeros((2, 1, 10)), mne.create_info(1, 100.0, "eeg"),
                             verbose=False)
    with pytest.raises(TypeError, match="replays continuous recordings.*mne.io.Raw runs"):
        find_cues(epochs, {"a": 1}, 0.0, 1.0)


def _synthetic(**kw):
    from bci.data.datasets import SyntheticMotorImagery

    return SyntheticMotorImagery(n_subjects=1, n_trials=kw.pop("n_trials", 8), **kw)


def test_offline_scores_equal_moabb_and_window_equal_epoch_equals_offline():
    """Same folds and fits as MOABB's evaluation; one window = the epoch decides as offline.

    Without a band-pass (MOABB's ``fmin=None, fmax=None``) the window that ends at the epoch's
    end holds exactly the epoch's samples, so the decision at that deadline is the offline
    prediction: pseudo-online accuracy equals offline accuracy, fold by fold.
    """
    from moabb.paradigms import LeftRightImagery

    import bci

    paradigm = LeftRightImagery(fmin=None, fmax=None)
    res = pseudo_online(_synthetic(), paradigm, ["MDM", "TS+LR"], step_s=4.0, progress=False)
    folds = res.folds
    assert len(folds) == 10  # 5 folds x 2 pipelines
    np.testing.assert_array_equal(folds["online_accuracy"], folds["offline_accuracy"])
    assert folds["n_trials"].sum() == 2 * 32  # every trial tested once per pipeline
    assert set(res.curves["time_s"]) == {0.0, 4.0}
    offline = bci.evaluation.benchmark(_synthetic(), paradigm, ["MDM", "TS+LR"],
                                       progress=False)
    mine = res.results.set_index("pipeline")["score"]
    theirs = offline.set_index("pipeline")["score"]
    for name in ("MDM", "TS+LR"):  # MOABB stores its scores as float32
        assert mine[name] == pytest.approx(theirs[name], abs=1e-7)
    assert (res.results["evaluation"] == "pseudo-online").all()


def test_benchmark_entry_point_and_columns(tmp_path):
    import bci
    from bci.evaluation.online import ONLINE_COLUMNS

    assert bci.benchmark is benchmark
    results = bci.benchmark(_synthetic(n_trials=6), "LeftRightImagery", ["MDM"],
                            evaluation="pseudo-online", step_s=0.5, out=tmp_path,
                            progress=False)
    assert list(results.columns[:11]) == ["score", "time", "samples", "subject", "session",
                                          "pipeline", "dataset", "evaluation", "paradigm",
                                          "channels", "n_sessions"]
    assert set(ONLINE_COLUMNS) <= set(results.columns)
    row = results.iloc[0]
    assert row.n_trials == 24
    assert row.window_s == 4.0
    assert row.deadline_s == 4.0
    # planted ERD: the decision at the epoch end is right far above chance
    assert row.online_accuracy >= 0.8
    assert 0.0 <= row.median_decision_s <= 4.0
    for name in ("results.csv", "folds.csv", "trials.csv", "curves.csv", "summary.csv",
                 "accuracy_vs_time.png"):
        assert (tmp_path / name).is_file()
    with pytest.raises(ValueError, match="bci.benchmark"):
        bci.evaluation.benchmark(_synthetic(), evaluation="pseudo-online")
    with pytest.raises(ValueError, match="drop the Dask client"):
        bci.benchmark(_synthetic(), evaluation="pseudo-online", client=object())


def test_window_longer_than_the_trial_is_refused():
    with pytest.raises(ValueError, match=r"longer than SyntheticMotorImagery's trial \(4 s"):
        pseudo_online(_synthetic(), "LeftRightImagery", ["MDM"],
                      paradigm_params={"tmax": 5.0}, progress=False)


def test_step_longer_than_the_epoch_is_refused():
    with pytest.raises(ValueError, match=r"step_s=5 s is longer than the window \(4 s"):
        pseudo_online(_synthetic(), "LeftRightImagery", ["MDM"], step_s=5.0, progress=False)


def test_epochs_input_pipeline_ssvep_cca_scores_as_moabb():
    """SSVEP_CCA, which fits on MNE epochs, runs pseudo-online wrapped in EpochsInput.

    Its offline score of the same folds is MOABB's (which gives it the epochs themselves).
    """
    import bci
    from bci.data.datasets import SyntheticSSVEP

    def data():
        return SyntheticSSVEP(n_subjects=1, n_trials=4)

    res = pseudo_online(data(), "SSVEP", ["SSVEP_CCA"], paradigm_params={"n_classes": 3},
                        step_s=0.5, progress=False)
    row = res.results.iloc[0]
    assert row.paradigm == "SSVEP"
    assert row.n_trials == 24  # 4 trials a class, 3 classes, 2 runs; each tested once
    assert row.online_accuracy >= 0.9  # planted SSVEP: CCA finds it (chance 1/3)
    assert np.isfinite(row.false_activations_per_min)
    offline = bci.evaluation.benchmark(data(), "SSVEP", ["SSVEP_CCA"],
                                       paradigm_params={"n_classes": 3}, progress=False)
    assert row.score == pytest.approx(float(offline["score"].iloc[0]), abs=1e-7)


def test_epochs_input_names_events_by_class():
    """EpochsInput gives the wrapped estimator MNE epochs whose event names are the classes."""
    from sklearn.base import BaseEstimator, ClassifierMixin, clone

    from bci.realtime.pseudo_online import EpochsInput

    class Spy(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.event_id_, self.n_epochs_, self.sfreq_ = X.event_id, len(X), X.info["sfreq"]
            self.codes_ = X.events[:, 2].copy()
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.zeros(len(X), int)

    X = np.random.default_rng(0).standard_normal((6, 2, 50))
    y = np.array([0, 1, 2, 0, 1, 2])
    est = clone(EpochsInput(Spy(), sfreq=100.0, class_names=["13", "17", "21"])).fit(X, y)
    assert est.estimator_.event_id_ == {"13": 1, "17": 2, "21": 3}
    np.testing.assert_array_equal(est.estimator_.codes_, y + 1)
    assert est.estimator_.sfreq_ == 100.0
    np.testing.assert_array_equal(est.classes_, [0, 1, 2])
    assert est.score(X, y) == pytest.approx(2 / 6)
    with pytest.raises(RuntimeError, match="set_params\\(sfreq=...\\)"):
        EpochsInput(Spy()).fit(X, y)
    with pytest.raises(ValueError, match="one label an epoch"):
        EpochsInput(Spy(), sfreq=100.0).fit(X, y[:3])


def test_every_registered_pipeline_is_accepted():
    """Every registered pipeline builds for pseudo-online, on its paradigm (no refusal)."""
    from bci.data.loaders import get_paradigm
    from bci.pipelines.registry import list_pipelines
    from bci.realtime.pseudo_online import EpochsInput, _groups

    for family, paradigm in (("imagery", "LeftRightImagery"), ("ssvep", "SSVEP"),
                             ("any", "LeftRightImagery"), ("any", "SSVEP")):
        names = list_pipelines(family)
        groups = _groups(names, get_paradigm(paradigm), 42)
        built = {name: est for _, named in groups for name, est in named.items()}
        assert sorted(built) == sorted(names)
        if family == "ssvep":  # the one that fits on MNE epochs
            assert isinstance(built["SSVEP_CCA"], EpochsInput)
            assert sum(isinstance(e, EpochsInput) for e in built.values()) == 1


def test_pipeline_params_set_on_a_clone():
    from bci.data.loaders import get_paradigm
    from bci.pipelines import get_pipeline
    from bci.realtime.pseudo_online import _groups

    ((_, named),) = _groups(["EEGNet", "MDM"], get_paradigm("LeftRightImagery"), 42,
                            {"EEGNet": {"max_epochs": 3}})
    assert named["EEGNet"].max_epochs == 3
    mine = get_pipeline("EEGNet")
    ((_, named),) = _groups({"net": mine}, get_paradigm("LeftRightImagery"), 42,
                            {"net": {"max_epochs": 2}})
    assert named["net"].max_epochs == 2
    assert mine.max_epochs == 60  # the caller's estimator is not changed
    with pytest.raises(ValueError, match=r"pipeline_params names \['TS\+LR'\]"):
        _groups(["MDM"], get_paradigm("LeftRightImagery"), 42, {"TS+LR": {}})
    with pytest.raises(TypeError, match="pipeline_params"):
        _groups(["MDM"], get_paradigm("LeftRightImagery"), 42, [("MDM", {})])


def test_late_deadlines_are_refused():
    with pytest.raises(ValueError, match="after horizon_s"):
        pseudo_online(_synthetic(), "LeftRightImagery", ["MDM"], deadline_s=3.0,
                      horizon_s=2.0, progress=False)


def test_ssvep_filter_bank_with_rest_false_activations():
    """SSVEP (filter-bank MDM): rest trials are no-control periods when rest is no class."""
    from bci.data.datasets import SyntheticSSVEP

    res = pseudo_online(SyntheticSSVEP(n_subjects=1, n_trials=4), "SSVEP", ["SSVEP_MDM"],
                        paradigm_params={"n_classes": 3}, step_s=0.5, progress=False)
    row = res.results.iloc[0]
    assert row.paradigm == "FilterBankSSVEP"
    assert row.rest_min > 0
    assert np.isfinite(row.false_activations_per_min)
    assert row.online_accuracy > 0.6  # chance 1/3


def test_replay_speed_8_channels():
    """Replay is much faster than real time (8 channels at 128 Hz, MDM with its band-pass).

    Measured (2 shared cores, load average 4-8): 1.5-2.0 ms of CPU per window, 50-65x real
    time at ``step_s=0.1`` (2.7-5.1 ms of wall time, 20-37x, under that load). The bounds are
    conservative for loaded CI machines.
    """
    from threadpoolctl import threadpool_limits

    import bci

    dataset = _synthetic(n_trials=5)
    decoder = bci.train_decoder(dataset, "LeftRightImagery", "MDM", subjects=[1])
    raw = dataset.get_data([1])[1]["0"]["0"]
    cues = np.arange(640, raw.n_times - 800, 768)[:6]
    with threadpool_limits(1):
        rep = replay_trials(decoder, raw.get_data(picks=decoder.ch_names), raw.info["sfreq"],
                            decoder.ch_names, cues, step_s=0.1, horizon_s=5.0,
                            policy=ConfidencePolicy(0.8))
    assert rep.n_windows == 6 * 51
    assert rep.n_windows * 0.1 / rep.cpu_s > 20.0
    assert rep.n_windows * 0.1 / rep.wall_s > 5.0


def test_network_decoder_quick():
    from bci.pipelines import get_pipeline

    net = get_pipeline("EEGNet").set_params(max_epochs=1)
    res = pseudo_online(_synthetic(n_trials=5), "LeftRightImagery", {"EEGNet": net},
                        step_s=1.0, n_folds=2, progress=False)
    assert len(res.folds) == 2
    assert res.folds["n_trials"].sum() == 20
    assert res.trials["deadline_correct"].isin([0.0, 1.0]).all()


def test_cross_session_folds():
    res = pseudo_online(_synthetic(n_trials=4, n_sessions=2), "LeftRightImagery", ["MDM"],
                        split="cross-session", step_s=1.0, progress=False)
    assert sorted(res.results["session"]) == ["0", "1"]
    assert (res.results["n_trials"] == 16).all()


def test_replay_is_deterministic():
    runs = [pseudo_online(_synthetic(n_trials=4), "LeftRightImagery", ["MDM"], step_s=0.5,
                          n_folds=2, progress=False).curves for _ in range(2)]
    np.testing.assert_array_equal(runs[0]["accuracy"], runs[1]["accuracy"])


def test_duration_measurement_sanity():
    t0 = time.perf_counter()
    rep = replay_trials(FractionDecoder(1.0), np.zeros((2, 3000)), SFREQ, ["C0", "C1"],
                        [500, 1500], step_s=0.1, horizon_s=3.0)
    assert rep.signal_s == pytest.approx(2 * (1.0 + 3.0 + 0.02), abs=0.011)
    assert 0 < rep.wall_s <= time.perf_counter() - t0


@pytest.mark.parametrize(("shape", "band", "sfreq"), [
    ((1, 8, 513), (8.0, 32.0), 128.0),
    ((3, 4, 40), (8.0, 32.0), 128.0),  # shorter than MNE's padding
    ((2, 3, 300), (12.5, 13.5), 256.0),  # a filter-bank band: padding >> window
    ((1, 2, 1000), (None, 30.0), 160.0),
    ((1, 2, 1000), (1.0, None), 160.0),
])
def test_decoder_filters_windows_as_mne_bit_for_bit(shape, band, sfreq):
    """The decoder's cached filter design (what makes replay fast) changes no bit."""
    from mne.filter import filter_data

    from bci.models.decoder import Decoder

    X = np.random.default_rng(0).standard_normal(shape) * 1e-5
    decoder = Decoder(estimator=None, ch_names=[f"C{i}" for i in range(shape[1])],
                      sfreq=sfreq, tmin=0.0, tmax=(shape[2] - 1) / sfreq, classes=["a", "b"],
                      filters=[band])
    expected = filter_data(X, sfreq, *band, method="iir", verbose=False)
    for _ in range(2):  # designed once, reused
        np.testing.assert_array_equal(decoder.preprocess(X), expected)
    assert len(decoder.__dict__["_iir_designs"]) == 1


def test_cli_benchmark_pseudo_online(tmp_path, capsys):
    import pandas as pd

    from bci.cli import main

    out = tmp_path / "po"
    assert main(["benchmark", "--evaluation", "pseudo-online", "--pipelines", "MDM",
                 "--dataset-param", "n_subjects=1", "--dataset-param", "n_trials=5",
                 "--step-s", "0.5", "--deadline-s", "3", "--threshold", "0.7",
                 "--n-consecutive", "2",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "online@dl" in printed
    assert "accuracy_vs_time.png" in printed
    results = pd.read_csv(out / "results.csv")
    assert results["evaluation"].tolist() == ["pseudo-online"]
    assert results["deadline_s"].tolist() == [3.0]
    assert results["threshold"].tolist() == [0.7]
    curves = pd.read_csv(out / "curves.csv")
    assert curves["time_s"].max() == 3.0
    # bad values are refused by argparse, with the unit
    with pytest.raises(SystemExit) as exc:
        main(["benchmark", "--evaluation", "pseudo-online", "--step-s", "nan"])
    assert exc.value.code == 2
    assert "argument --step-s: the value must be a finite number > 0 (s), got nan" in \
        capsys.readouterr().err


def _onset_dataset(onset_s: float, window_s: float):
    """Return a MOABB dataset of :func:`bci.data.make_onset_trials` runs (epoch: the effect)."""
    from moabb.datasets.base import BaseDataset

    from bci.data.synthetic import make_onset_trials

    class OnsetTrials(BaseDataset):
        def __init__(self):
            super().__init__(subjects=[1], sessions_per_subject=1,
                             events={"left_hand": 1, "right_hand": 2}, code="OnsetTrials",
                             interval=[onset_s, onset_s + window_s], paradigm="imagery")

        def _get_single_subject_data(self, subject):
            return {"0": {str(run): make_onset_trials(10, onset_s=onset_s, effect_s=3.0,
                                                      random_state=run)
                          for run in range(2)}}

        def data_path(self, subject, path=None, force_update=False, update_path=None,
                      verbose=None):
            return []

    return OnsetTrials()


def test_planted_onset_with_a_fitted_pipeline():
    """MDM fitted on the effect: chance before the onset, right once the window holds it."""
    onset_s, window_s, step_s = 1.0, 1.0, 0.1
    res = pseudo_online(_onset_dataset(onset_s, window_s), "LeftRightImagery", ["MDM"],
                        step_s=step_s, horizon_s=3.5, progress=False)
    curve = res.curves.groupby("time_s")["accuracy"].mean()
    before = curve[curve.index <= onset_s + 1e-9]  # windows that end before the effect
    assert before.mean() == pytest.approx(0.5, abs=0.2)
    after = curve[curve.index >= onset_s + window_s - 1e-9]  # windows wholly in the effect
    assert after.min() >= 0.95
    assert res.results["online_accuracy"].iloc[0] >= 0.95  # deadline: the epoch's end, 2 s
    # the first correct confident decision comes after the onset, by onset + window + step
    # (some trials get a lucky confident guess on the noise before the onset: MDM's
    # probabilities are sharp, a property of the decoder, counted as such)
    first = res.trials["first_correct_s"].dropna()
    assert len(first) >= 0.9 * len(res.trials)
    assert onset_s < first.median() <= onset_s + window_s + step_s
    assert (first <= onset_s).mean() <= 0.5


def test_cues_undo_moabbs_annotation_shift():
    """MOABB starts a trial's annotation at its epoch (interval[0] after the cue)."""
    from moabb.paradigms import SSVEP

    from bci.data.datasets import SyntheticSSVEP

    dataset = SyntheticSSVEP(n_subjects=1, n_trials=2)
    assert dataset.interval[0] == 1
    raw = dataset.get_data([1])[1]["0"]["0"]
    event_id = SSVEP(n_classes=3).used_events(dataset)
    cues, names = find_cues(raw, event_id, 1.0, 5.0, interval_start_s=1.0)
    ann = raw.annotations
    keep = [d in event_id for d in ann.description]
    expected = np.round((ann.onset[keep] - 1.0) * raw.info["sfreq"]).astype(int)
    np.testing.assert_array_equal(cues, expected)
    np.testing.assert_array_equal(names, np.asarray(ann.description)[keep])


def test_a_dataset_whose_runs_change_between_loads_is_refused():
    """Epochs and the replayed run must come from the same recording, or nothing is scored."""
    from bci.data.synthetic import make_onset_trials

    dataset = _onset_dataset(0.5, 1.0)
    calls = []

    def fresh(subject):  # a new recording at every load
        calls.append(subject)
        return {"0": {"0": make_onset_trials(5 + len(calls), onset_s=0.5,
                                             random_state=len(calls))}}

    dataset._get_single_subject_data = fresh
    with pytest.raises(RuntimeError, match="do not match the .* events of the continuous run"):
        pseudo_online(dataset, "LeftRightImagery", ["MDM"], progress=False)


def test_make_onset_trials_plants_the_step_at_the_onset():
    from bci.data.synthetic import BACKGROUND_RMS_V, make_onset_trials

    raw = make_onset_trials(3, onset_s=0.75, effect_s=2.0, snr=3.0, random_state=1)
    data, sfreq = raw.get_data(), raw.info["sfreq"]
    assert len(raw.annotations) == 6
    for onset, label in zip(raw.annotations.onset, raw.annotations.description, strict=True):
        row = ["left_hand", "right_hand"].index(label)
        start = int(round(onset * sfreq)) + int(round(0.75 * sfreq))
        after = data[row, start:start + int(2.0 * sfreq)]
        before = data[row, start - int(0.75 * sfreq):start]
        other = data[1 - row, start:start + int(2.0 * sfreq)]
        # sine RMS = snr x background RMS, on the class channel only, from the onset on
        assert np.sqrt(np.mean(after ** 2)) / BACKGROUND_RMS_V == pytest.approx(
            np.sqrt(1 + 3.0 ** 2), rel=0.15)
        assert np.sqrt(np.mean(before ** 2)) / BACKGROUND_RMS_V == pytest.approx(1.0, rel=0.25)
        assert np.sqrt(np.mean(other ** 2)) / BACKGROUND_RMS_V == pytest.approx(1.0, rel=0.25)
    with pytest.raises(ValueError, match="below Nyquist"):
        make_onset_trials(freq=64.0, sfreq=128.0)
    with pytest.raises(ValueError, match="2 to 4 distinct names"):
        make_onset_trials(classes=["a", "a"])


def test_cross_subject_folds():
    from bci.data.datasets import SyntheticMotorImagery

    res = pseudo_online(SyntheticMotorImagery(n_subjects=2, n_trials=4), "LeftRightImagery",
                        ["MDM"], split="cross-subject", step_s=1.0, progress=False)
    # leave one subject out: one row per test subject, each trial tested once
    assert sorted(res.results["subject"]) == [1, 2]
    assert (res.results["n_trials"] == 16).all()
    assert (res.results["samples"] == 16).all()  # trained on the other subject's 16 epochs
    with pytest.raises(ValueError, match="cross-subject evaluation needs at least 2 subjects"):
        pseudo_online(_synthetic(), "LeftRightImagery", ["MDM"], split="cross-subject",
                      progress=False)
