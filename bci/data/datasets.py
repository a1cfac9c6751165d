"""Synthetic MOABB datasets: :class:`SyntheticMotorImagery` and :class:`SyntheticSSVEP`.

They are :class:`moabb.datasets.base.BaseDataset` subclasses (as MOABB's own ``FakeDataset``),
so MOABB paradigms (``LeftRightImagery``, ``MotorImagery``, ``SSVEP``, ``FilterBankSSVEP``) and
evaluations accept them. Nothing is downloaded or written: every run is simulated in memory by
:mod:`bci.data.synthetic` when it is loaded.

Each run is simulated from a seed derived from ``(random_state, subject, session, run)`` with
:class:`numpy.random.SeedSequence`, so a subject loaded alone is identical to the same subject
loaded with others, in any order. Subjects differ a little, like people do: each has its own
rhythm frequencies (or response phases), effect strength and signal-to-noise ratio, drawn from
``(random_state, subject)``; each session has its own overall gain (electrode impedances).

MOABB keys cached evaluation results on ``dataset.code``, which is the class name whatever the
parameters: after changing a parameter, evaluate with ``overwrite=True`` (or another
``hdf5_path``) so that MOABB does not return results computed on the earlier data.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from moabb.datasets.base import BaseDataset

from .._checks import ensure_int
from . import synthetic as _syn

logger = logging.getLogger(__name__)

# SeedSequence spawn keys: (kind, subject[, session[, run]]), kinds kept apart.
_SUBJECT_KEY, _SESSION_KEY, _RUN_KEY = 0, 1, 2


def _seed_entropy(random_state) -> int:
    """Entropy of the dataset's seed tree: the int seed, or fresh entropy for None."""
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    return ensure_int(random_state, "random_state", minimum=0, what="seed",
                      hint="A dataset derives one seed per subject, session and run from it; "
                           "None draws a fresh one.")


def _ssvep_event_id(freqs: Sequence[float], include_rest: bool) -> dict[str, int]:
    """Event codes: the frequencies themselves when all are whole numbers of Hz, else 1, 2...

    MOABB's evaluations label-encode the classes and its ``SSVEP_CCA`` / ``SSVEP_eCCA`` then read
    the stimulation frequencies from the epochs' event codes (MOABB names epochs' events by
    their codes), so codes equal to the frequencies let them find the right ones. ``"rest"`` takes
    the smallest positive code left (1 for the default frequencies).
    """
    if all(float(f).is_integer() for f in freqs):
        codes = [int(f) for f in freqs]
    else:
        codes = list(range(1, len(freqs) + 1))
    event_id = {_syn._freq_label(f): code for f, code in zip(freqs, codes, strict=True)}
    if include_rest:
        event_id["rest"] = min(set(range(1, len(codes) + 2)) - set(codes))
    return event_id


class _SyntheticDataset(BaseDataset):
    """Shared seeding, sessions/runs layout and ``data_path`` of the synthetic datasets."""

    def __init__(self, *, n_subjects, n_sessions, n_runs, events, code, interval, paradigm,
                 random_state, subjects, sessions):
        n_subjects = ensure_int(n_subjects, "n_subjects", minimum=1, what="number of subjects")
        n_sessions = ensure_int(n_sessions, "n_sessions", minimum=1, what="sessions per subject")
        self.n_runs = ensure_int(n_runs, "n_runs", minimum=1, what="runs per session")
        self.n_subjects = n_subjects
        self.random_state = random_state
        self._entropy = _seed_entropy(random_state)
        super().__init__(
            subjects=list(range(1, n_subjects + 1)),
            sessions_per_subject=n_sessions,
            events=events,
            code=code,
            interval=interval,
            paradigm=paradigm,
            doi=None,
            selected_subjects=subjects,
            selected_sessions=sessions,
        )

    def _rng(self, *key: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence(self._entropy, spawn_key=key))

    def _subject_rng(self, subject: int) -> np.random.Generator:
        return self._rng(_SUBJECT_KEY, int(subject))

    def _session_gain(self, subject: int, session: int) -> float:
        """Overall amplitude factor of a session, uniform in [0.85, 1.15]."""
        return float(self._rng(_SESSION_KEY, int(subject), session).uniform(0.85, 1.15))

    def _simulate_run(self, subject: int, session: int, run: int, rng: np.random.Generator):
        raise NotImplementedError

    def _get_single_subject_data(self, subject):
        if subject not in self.all_subjects:
            raise ValueError(
                f"subject must be one of {self.all_subjects} ({self.code}), got {subject!r}."
            )
        data = {}
        for session in range(self.n_sessions):
            gain = self._session_gain(subject, session)
            runs = {}
            for run in range(self.n_runs):
                logger.debug("Simulating %s subject %s session %d run %d", self.code, subject,
                             session, run)
                raw = self._simulate_run(subject, session, run,
                                         self._rng(_RUN_KEY, int(subject), session, run))
                raw.apply_function(lambda x, g=gain: x * g, picks="eeg", channel_wise=False,
                                   verbose=False)
                runs[str(run)] = raw
            data[str(session)] = runs
        return data

    def data_path(self, subject, path=None, force_update=False, update_path=None,
                  verbose=None) -> list:
        """No files: the data are simulated in memory when loaded.

        Parameters
        ----------
        subject : int
            Subject number (checked).
        path, force_update, update_path, verbose
            Ignored; MOABB's ``data_path`` signature.

        Returns
        -------
        paths : list
            An empty list (nothing to download, nothing on disk).
        """
        if subject not in self.all_subjects:
            raise ValueError(
                f"subject must be one of {self.all_subjects} ({self.code}), got {subject!r}."
            )
        return []


class SyntheticMotorImagery(_SyntheticDataset):
    """Simulated motor-imagery dataset with a planted lateralised ERD (MOABB dataset).

    Every run is a :func:`bci.data.make_motor_imagery` recording: spatially correlated 1/f
    background, mu and beta rhythms at C3, C4 and Cz, and during imagery a drop of the rhythm
    contralateral to the imagined hand (C4 for ``left_hand``, C3 for ``right_hand``, Cz for
    ``feet``, none for ``rest``). Cue at 0 s, imagery 0-4 s (``interval = [0, 4]``), rest 2-3 s.

    Subjects differ (drawn from ``(random_state, subject)``): mu frequency uniform in
    [9.5, 12.5] Hz, beta in [19, 25] Hz, ``snr`` and ``erd_depth`` each times a factor uniform
    in [0.85, 1.15]. Each session has an overall gain uniform in [0.85, 1.15].

    Parameters
    ----------
    n_subjects : int
        Number of subjects (numbered from 1).
    n_sessions : int
        Sessions per subject (named ``"0"``, ``"1"``...).
    n_runs : int
        Runs per session (named ``"0"``, ``"1"``...).
    n_trials : int
        Trials per class in each run; a session has ``n_runs * n_trials`` trials per class.
    classes : sequence of str
        Classes among ``"left_hand"``, ``"right_hand"``, ``"feet"``, ``"rest"``; event codes
        1, 2, 3, 4 respectively.
    n_chans : int
        EEG channels (3 to 84), chosen as in :func:`bci.data.make_motor_imagery`: FC3, FCz, FC4,
        C3, Cz, C4, CP3, CP4 by default.
    sfreq : float
        Sampling frequency (Hz).
    snr : float
        Typical amplitude signal-to-noise ratio of the rhythms (see
        :func:`bci.data.make_motor_imagery`); each subject's is within 15 % of it.
    erd_depth : float
        Typical fraction of the rhythm amplitude removed during imagery, in [0, 1]; each
        subject's is within 15 % of it.
    random_state : int | None
        Seed of the whole dataset; ``None`` draws a fresh one (fixed for this instance).
    subjects : sequence of int | None
        Load only these subjects (MOABB's ``selected_subjects``); all when None.
    sessions : sequence of int | str | None
        Load only these sessions (MOABB's ``selected_sessions``); all when None.

    Notes
    -----
    The defaults (2 subjects, 1 session of 2 runs of 25 trials per class, 8 channels at 128 Hz,
    ``snr=1``, ``erd_depth=0.35``) are sized for a quick benchmark: MOABB's within-session
    evaluation of CSP+LDA, TS+LR, TS+SVM, MDM, FgMDM and augmented-covariance + TS + SVM (with
    a 36-candidate grid) scores ROC-AUCs from 0.97 (CSP+LDA) to 1.0 in about 75 s of CPU time
    (single-threaded BLAS). The augmented-covariance grid dominates and grows fast with the
    channel count: 12 channels cost about 1.6 times as much, 16 channels 2.6 times.

    Examples
    --------
    >>> from moabb.paradigms import LeftRightImagery
    >>> dataset = SyntheticMotorImagery(n_trials=5)
    >>> X, y, meta = LeftRightImagery().get_data(dataset, subjects=[1])
    >>> X.shape
    (20, 8, 513)
    """

    def __init__(self, n_subjects: int = 2, n_sessions: int = 1, n_runs: int = 2,
                 n_trials: int = 25, classes: Sequence[str] = ("left_hand", "right_hand"),
                 n_chans: int = 8, sfreq: float = 128.0, snr: float = 1.0,
                 erd_depth: float = 0.35, random_state: int | None = 42, *,
                 subjects: Sequence[int] | None = None,
                 sessions: Sequence[int | str] | None = None):
        args = _syn._check_mi_args(n_trials, classes, n_chans, sfreq, snr, 11.0, 25.0,
                                   erd_depth, 4.0, (2.0, 3.0))
        self.n_trials, self.classes, self.n_chans, self.sfreq, self.snr = args[:5]
        self.erd_depth = args[7]
        self.imagery_s = 4.0
        self.iti_s = (2.0, 3.0)
        super().__init__(
            n_subjects=n_subjects, n_sessions=n_sessions, n_runs=n_runs,
            events={c: _syn.MI_EVENT_ID[c] for c in self.classes},
            code="SyntheticMotorImagery", interval=[0, self.imagery_s], paradigm="imagery",
            random_state=random_state, subjects=subjects, sessions=sessions,
        )

    def subject_params(self, subject: int) -> dict[str, float]:
        """Return the planted-effect parameters of one subject.

        Parameters
        ----------
        subject : int
            Subject number.

        Returns
        -------
        params : dict
            ``mu_freq`` and ``beta_freq`` (Hz), ``snr`` and ``erd_depth`` (see
            :func:`bci.data.make_motor_imagery`).
        """
        rng = self._subject_rng(subject)
        mu_freq, beta_freq, snr_f, erd_f = rng.uniform([9.5, 19.0, 0.85, 0.85],
                                                       [12.5, 25.0, 1.15, 1.15])
        return {"mu_freq": float(mu_freq), "beta_freq": float(beta_freq),
                "snr": self.snr * float(snr_f),
                "erd_depth": min(self.erd_depth * float(erd_f), 1.0)}

    def _simulate_run(self, subject, session, run, rng):
        p = self.subject_params(subject)
        return _syn._simulate_motor_imagery(
            self.n_trials, self.classes, self.n_chans, self.sfreq, p["snr"], p["mu_freq"],
            p["beta_freq"], p["erd_depth"], self.imagery_s, self.iti_s, rng)


class SyntheticSSVEP(_SyntheticDataset):
    """Simulated SSVEP dataset, laid out like Kalunga2016, with a planted response (MOABB dataset).

    Every run is a :func:`bci.data.make_ssvep` recording: 8 occipito-parietal channels, spatially
    correlated 1/f background with occipital alpha, and during each stimulation trial a response
    at the stimulation frequency and its 2nd harmonic, peaking at Oz. Events ``"13"``, ``"17"``,
    ``"21"`` and ``"rest"``, frequencies first so that MOABB's ``SSVEP(n_classes=3)`` takes the
    three frequencies. Stimulation 0-5 s after onset; ``interval = [1, 5]`` skips the onset
    transient.

    Event codes are the frequencies (13, 17, 21; ``"rest"`` is 1) when all are whole numbers of
    Hz, else 1, 2... (``"rest"`` last). Within a MOABB evaluation, ``SSVEP_CCA`` and
    ``SSVEP_eCCA`` see label-encoded classes and read the frequencies from the event codes:
    Kalunga2016-style codes (13 Hz is 2, 17 Hz is 4...) would make them use 2, 4... Hz.

    Subjects differ (drawn from ``(random_state, subject)``): their response phases per
    frequency, and ``snr`` times a factor uniform in [0.85, 1.15]. Each session has an overall
    gain uniform in [0.85, 1.15].

    Parameters
    ----------
    n_subjects : int
        Number of subjects (numbered from 1).
    n_sessions : int
        Sessions per subject.
    n_runs : int
        Runs per session.
    n_trials : int
        Trials per class in each run.
    freqs : sequence of float
        Stimulation frequencies (Hz); event names are their ``"%g"`` strings.
    include_rest : bool
        Add the ``"rest"`` class (no stimulation).
    n_chans : int
        EEG channels (1 to 84), chosen as in :func:`bci.data.make_ssvep`.
    sfreq : float
        Sampling frequency (Hz).
    snr : float
        Typical amplitude signal-to-noise ratio of the response (see :func:`bci.data.make_ssvep`).
    random_state : int | None
        Seed of the whole dataset; ``None`` draws a fresh one (fixed for this instance).
    subjects : sequence of int | None
        Load only these subjects; all when None.
    sessions : sequence of int | str | None
        Load only these sessions; all when None.

    Examples
    --------
    >>> from moabb.paradigms import SSVEP
    >>> dataset = SyntheticSSVEP(n_trials=2)
    >>> X, y, meta = SSVEP(n_classes=3).get_data(dataset, subjects=[1])
    >>> X.shape
    (12, 8, 1025)
    """

    def __init__(self, n_subjects: int = 2, n_sessions: int = 1, n_runs: int = 2,
                 n_trials: int = 10, freqs: Sequence[float] = (13.0, 17.0, 21.0),
                 include_rest: bool = True, n_chans: int = 8, sfreq: float = 256.0,
                 snr: float = 0.3, random_state: int | None = 42, *,
                 subjects: Sequence[int] | None = None,
                 sessions: Sequence[int | str] | None = None):
        args = _syn._check_ssvep_args(n_trials, freqs, include_rest, n_chans, sfreq, snr, 5.0,
                                      (1.0, 2.0))
        (self.n_trials, self.freqs, self.include_rest, self.n_chans, self.sfreq,
         self.snr) = args[:6]
        self.trial_s = 5.0
        self.iti_s = (1.0, 2.0)
        super().__init__(
            n_subjects=n_subjects, n_sessions=n_sessions, n_runs=n_runs,
            events=_ssvep_event_id(self.freqs, self.include_rest),
            code="SyntheticSSVEP", interval=[1, self.trial_s], paradigm="ssvep",
            random_state=random_state, subjects=subjects, sessions=sessions,
        )

    def subject_params(self, subject: int) -> dict:
        """Return the planted-effect parameters of one subject.

        Parameters
        ----------
        subject : int
            Subject number.

        Returns
        -------
        params : dict
            ``phases``: array (n_freqs, 2), response phases (rad) of the fundamental and the
            harmonic at stimulus onset; ``snr`` (see :func:`bci.data.make_ssvep`).
        """
        rng = self._subject_rng(subject)
        snr_f = rng.uniform(0.85, 1.15)
        phases = rng.uniform(0, 2 * np.pi, size=(len(self.freqs), 2))
        return {"phases": phases, "snr": self.snr * float(snr_f)}

    def _simulate_run(self, subject, session, run, rng):
        p = self.subject_params(subject)
        return _syn._simulate_ssvep(
            self.n_trials, self.freqs, self.include_rest, self.n_chans, self.sfreq, p["snr"],
            self.trial_s, self.iti_s, rng, phases=p["phases"])
