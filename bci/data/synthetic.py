"""Synthetic EEG recordings with a planted, known effect, returned as MNE ``Raw``.

Two generators, each giving a continuous recording with a 10-10 montage, data in volts and one
annotation per trial (description = class name, onset = cue, duration = task period), the form
that :func:`mne.events_from_annotations` and MOABB's paradigms read:

- :func:`make_motor_imagery`: event-related desynchronisation (ERD) of mu and beta rhythms over
  the sensorimotor cortex contralateral to the imagined hand (C4 for ``"left_hand"``, C3 for
  ``"right_hand"``, Cz for ``"feet"``, none for ``"rest"``);
- :func:`make_ssvep`: a steady-state visual evoked response at the stimulation frequency and its
  second harmonic, peaking over the occipital channels.

Both sit on the same background: spatially correlated 1/f ("pink") noise of 10 µV RMS on every
channel, whose channel covariance is a smooth function of the distance between electrodes and is
full rank. The MOABB datasets built on these generators are in :mod:`bci.data.datasets`.

All randomness comes from the ``random_state`` argument (an ``int`` seed or a
:class:`numpy.random.Generator`); global random generators are never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._checks import (
    check_bool,
    check_fraction,
    check_option,
    check_positive,
    check_random_state,
    check_type,
    ensure_int,
)

logger = logging.getLogger(__name__)

#: RMS amplitude of the background noise on every channel (volts).
BACKGROUND_RMS_V = 10e-6

#: Classes of :func:`make_motor_imagery`, and the electrode whose rhythm desynchronises.
MI_CLASSES: dict[str, str | None] = {
    "left_hand": "C4",
    "right_hand": "C3",
    "feet": "Cz",
    "rest": None,
}

#: Event codes of the motor-imagery classes (those of BNCI2014_001 for the hands and feet).
MI_EVENT_ID: dict[str, int] = {"left_hand": 1, "right_hand": 2, "feet": 3, "rest": 4}

# Montage: MNE >= 1.13 renamed "standard_1005" to "colin27_1005" (same positions).
_MONTAGE_NAMES = ("colin27_1005", "standard_1005")
# 10-10 names of the 10-05 montage, less aliases (T3/T4/T5/T6) and reference sites.
_NOT_10_10 = {"T3", "T4", "T5", "T6", "M1", "M2", "A1", "A2", "O9", "O10"}
_10_10 = (
    "Fp1", "Fpz", "Fp2", "AF9", "AF7", "AF5", "AF3", "AF1", "AFz", "AF2", "AF4", "AF6", "AF8",
    "AF10", "F9", "F7", "F5", "F3", "F1", "Fz", "F2", "F4", "F6", "F8", "F10", "FT9", "FT7",
    "FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "FT8", "FT10", "T9", "T7", "C5", "C3", "C1",
    "Cz", "C2", "C4", "C6", "T8", "T10", "TP9", "TP7", "CP5", "CP3", "CP1", "CPz", "CP2", "CP4",
    "CP6", "TP8", "TP10", "P9", "P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "P10",
    "PO9", "PO7", "PO5", "PO3", "PO1", "POz", "PO2", "PO4", "PO6", "PO8", "PO10", "O1", "Oz",
    "O2", "Iz",
)
#: Number of electrode positions the generators can use (10-10 system).
MAX_N_CHANS = len(_10_10)

# Channels taken first, in this order (the 22 of BNCI2014_001, pairs kept together so that 8,
# 12, 16, 18, 20 and 22 channels are left/right symmetric); then the nearest 10-10 sites to Cz.
_MI_PRIORITY = (
    "C3", "Cz", "C4", "FC3", "FC4", "CP3", "CP4", "FCz", "C1", "C2", "FC1", "FC2", "CP1", "CP2",
    "C5", "C6", "CPz", "Fz", "P1", "P2", "Pz", "POz",
)
# The 8 channels of Kalunga2016, then the nearest remaining 10-10 sites to Oz.
_SSVEP_PRIORITY = ("Oz", "O1", "O2", "POz", "PO3", "PO4", "PO7", "PO8")

# Background: channel correlation exp(-d^2 / 2 L^2) (L in m), plus a nugget making it full rank.
_CORR_LENGTH_M = 0.05
_NUGGET = 0.05
_KNEE_HZ = 1.0  # background spectrum is flat below, 1/f above
# Motor imagery: spatial spread of a rhythm source (m), rhythm bandwidths (Hz, Gaussian s.d.),
# beta/mu amplitude ratio, relative strength of the midline (feet) source.
_MI_SPREAD_M = 0.035
_MU_BW_HZ = 0.75
_BETA_BW_HZ = 1.5
_BETA_RATIO = 0.5
_FEET_WEIGHT = 0.7
_ERD_LATENCY_S = 0.25
_ERD_RISE_S = 0.5
_ERD_TRIAL_SPREAD = 0.4  # trial ERD depth is erd_depth * U(1 - spread, 1 + spread), clipped
# SSVEP: spatial spread (m), harmonic/fundamental ratio, latency/rise (s), jitters, alpha.
_SSVEP_SPREAD_M = 0.05
_HARMONIC_RATIO = 0.5
_SSVEP_LATENCY_S = 0.1
_SSVEP_RISE_S = 0.3
_SSVEP_PHASE_JITTER_RAD = 0.2
_SSVEP_AMP_JITTER = 0.2  # log-normal s.d. of the trial amplitude
_ALPHA_HZ = 10.0
_ALPHA_RATIO = 0.5  # alpha RMS at Oz / background RMS


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def _check_range_s(name: str, value) -> tuple[float, float]:
    """Check a ``(min, max)`` pair of durations in seconds, ``0 < min <= max``."""
    try:
        low, high = value
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must be a (min, max) pair of durations in seconds, got {value!r}."
        ) from None
    low = check_positive(low, f"{name}[0] (min)", unit="seconds")
    high = check_positive(high, f"{name}[1] (max)", unit="seconds")
    if low > high:
        raise ValueError(
            f"{name} must be (min, max) seconds with 0 < min <= max, got {value!r}."
        )
    return low, high


def _check_n_chans(n_chans, minimum: int, needs: str) -> int:
    n_chans = ensure_int(n_chans, "n_chans", what="number of EEG channels")
    if not minimum <= n_chans <= MAX_N_CHANS:
        raise ValueError(
            f"n_chans must be between {minimum} ({needs}) and {MAX_N_CHANS} (the 10-10 "
            f"positions available), got {n_chans}."
        )
    return n_chans


def _check_mi_classes(classes) -> tuple[str, ...]:
    """Validate motor-imagery class names (unique, known, at least one)."""
    if isinstance(classes, str):
        raise TypeError(
            f"classes must be a sequence of class names such as ('left_hand', 'right_hand'), "
            f"got the string {classes!r}."
        )
    classes = tuple(classes)
    if not classes:
        raise ValueError(
            f"classes must name at least one class among {sorted(MI_CLASSES)}, got ()."
        )
    for name in classes:
        check_type(name, str, "each class name")
        check_option("class", name, MI_CLASSES)
    if len(set(classes)) != len(classes):
        raise ValueError(f"classes must be unique, got {classes}.")
    return classes


def _check_ssvep_freqs(freqs, sfreq: float) -> tuple[float, ...]:
    """Validate stimulation frequencies (Hz): positive, distinct labels, harmonic < Nyquist."""
    try:
        freqs = tuple(float(f) for f in np.atleast_1d(freqs))
    except (TypeError, ValueError):
        raise TypeError(f"freqs must be a sequence of frequencies in Hz, got {freqs!r}.") from None
    if not freqs:
        raise ValueError("freqs must hold at least one stimulation frequency (Hz), got ().")
    for i, f in enumerate(freqs):
        check_positive(f, f"freqs[{i}]", unit="Hz")
    labels = [_freq_label(f) for f in freqs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"freqs must be distinct, got {freqs}.")
    if 2 * max(freqs) >= sfreq / 2:
        raise ValueError(
            f"the 2nd harmonic of every stimulation frequency must be below Nyquist: "
            f"2 x {max(freqs):g} Hz >= sfreq / 2 = {sfreq / 2:g} Hz; raise sfreq above "
            f"{4 * max(freqs):g} Hz or lower freqs."
        )
    return freqs


def _freq_label(freq: float) -> str:
    """Event name of a stimulation frequency, as MOABB's SSVEP datasets write it ("13", "7.5")."""
    return f"{float(freq):g}"


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------
def _montage():
    import mne

    builtin = mne.channels.get_builtin_montages()
    name = next(n for n in _MONTAGE_NAMES if n in builtin)
    return mne.channels.make_standard_montage(name)


def _pick_channels(n_chans: int, priority: Sequence[str], anchor: str, montage) -> list[str]:
    """``n_chans`` 10-10 names: ``priority`` first, then nearest to ``anchor``; montage order."""
    pos = montage.get_positions()["ch_pos"]
    chosen = list(priority[:n_chans])
    if n_chans > len(chosen):
        rest = [c for c in _10_10 if c not in chosen]
        rest.sort(key=lambda c: (round(float(np.linalg.norm(pos[c] - pos[anchor])), 6), c))
        chosen += rest[: n_chans - len(chosen)]
    order = {name: i for i, name in enumerate(montage.ch_names)}
    return sorted(chosen, key=order.__getitem__)


def _positions(montage, ch_names: Sequence[str]) -> np.ndarray:
    pos = montage.get_positions()["ch_pos"]
    return np.array([pos[c] for c in ch_names], dtype=float)


def _spatial_mixing(pos: np.ndarray) -> np.ndarray:
    """Symmetric square root of the background channel correlation matrix, (n_chans, n_chans)."""
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1)
    corr = (1 - _NUGGET) * np.exp(-d2 / (2 * _CORR_LENGTH_M**2)) + _NUGGET * np.eye(len(pos))
    w, v = np.linalg.eigh(corr)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def _pattern(pos: np.ndarray, center: np.ndarray, spread_m: float) -> np.ndarray:
    """Gaussian spatial fall-off around ``center`` (1 at the center), shape (n_chans,)."""
    d2 = ((pos - center) ** 2).sum(-1)
    return np.exp(-d2 / (2 * spread_m**2))


def _shaped_noise(rng: np.random.Generator, n_signals: int, n_times: int, sfreq: float,
                  amplitude) -> np.ndarray:
    """Gaussian noise with spectral amplitude ``amplitude(freqs)``, unit RMS rows.

    Returns shape (n_signals, n_times), zero mean and unit standard deviation per row.
    """
    spec = np.fft.rfft(rng.standard_normal((n_signals, n_times)), axis=-1)
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    gain = amplitude(freqs)
    gain[0] = 0.0
    x = np.fft.irfft(spec * gain, n=n_times, axis=-1)
    x -= x.mean(axis=-1, keepdims=True)
    return x / x.std(axis=-1, keepdims=True)


def _pink_noise(rng, n_signals, n_times, sfreq):
    """1/f power spectrum above ``_KNEE_HZ``, flat below; unit RMS rows (n_signals, n_times)."""
    return _shaped_noise(rng, n_signals, n_times, sfreq,
                         lambda f: 1.0 / np.sqrt(np.maximum(f, _KNEE_HZ)))


def _narrowband_noise(rng, n_signals, n_times, sfreq, freq_hz, bw_hz):
    """Gaussian-shaped spectral peak at ``freq_hz`` (s.d. ``bw_hz``); unit RMS rows."""
    return _shaped_noise(rng, n_signals, n_times, sfreq,
                         lambda f: np.exp(-((f - freq_hz) ** 2) / (4 * bw_hz**2)))


def _background(rng, pos, n_times, sfreq) -> np.ndarray:
    """Spatially correlated pink noise, ``BACKGROUND_RMS_V`` per channel; (n_chans, n_times) V."""
    sources = _pink_noise(rng, len(pos), n_times, sfreq)
    return BACKGROUND_RMS_V * (_spatial_mixing(pos) @ sources)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, a raised cosine in between."""
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


def _trial_onsets(rng, n_total: int, task_s: float, iti_s: tuple[float, float]
                  ) -> tuple[np.ndarray, float]:
    """Cue times (s) of ``n_total`` trials and the recording duration (s).

    A rest drawn uniformly from ``iti_s`` precedes every cue and follows the last trial.
    """
    rests = rng.uniform(iti_s[0], iti_s[1], size=n_total + 1)
    onsets = np.cumsum(rests[:-1]) + task_s * np.arange(n_total)
    duration = float(rests.sum() + task_s * n_total)
    return onsets, duration


def _annotations(onsets_s, duration_s: float, labels):
    import mne

    return mne.Annotations(onset=np.asarray(onsets_s, float),
                           duration=np.full(len(onsets_s), duration_s),
                           description=list(labels))


def _raw(data: np.ndarray, ch_names: list[str], sfreq: float, montage, annotations,
         description: str):
    import mne

    info = mne.create_info(ch_names, sfreq, ch_types="eeg")
    info["description"] = description
    raw = mne.io.RawArray(data, info, verbose=False)
    raw.set_montage(montage, verbose=False)
    raw.set_annotations(annotations)
    return raw


@dataclass(frozen=True)
class _Schedule:
    onsets_s: np.ndarray  # (n_total,) cue times
    labels: np.ndarray  # (n_total,) class names
    n_times: int


def _schedule(rng, classes, n_trials, task_s, iti_s, sfreq) -> _Schedule:
    labels = rng.permutation(np.repeat(np.asarray(classes, dtype=object), n_trials))
    onsets, duration = _trial_onsets(rng, len(labels), task_s, iti_s)
    onsets = np.round(onsets * sfreq) / sfreq  # cues on samples
    return _Schedule(onsets, labels, int(np.ceil(duration * sfreq)) + 1)


# --------------------------------------------------------------------------------------------
# motor imagery
# --------------------------------------------------------------------------------------------
def _simulate_motor_imagery(n_trials, classes, n_chans, sfreq, snr, mu_freq, beta_freq,
                            erd_depth, imagery_s, iti_s, rng):
    montage = _montage()
    ch_names = _pick_channels(n_chans, _MI_PRIORITY, "Cz", montage)
    pos = _positions(montage, ch_names)
    sched = _schedule(rng, classes, n_trials, imagery_s, iti_s, sfreq)
    n_times = sched.n_times
    times = np.arange(n_times) / sfreq

    data = _background(rng, pos, n_times, sfreq)

    sources = ("C3", "C4", "Cz")
    weights = (1.0, 1.0, _FEET_WEIGHT)
    mu = _narrowband_noise(rng, len(sources), n_times, sfreq, mu_freq, _MU_BW_HZ)
    beta = _narrowband_noise(rng, len(sources), n_times, sfreq, beta_freq, _BETA_BW_HZ)
    rhythm = mu + _BETA_RATIO * beta
    rhythm /= rhythm.std(axis=-1, keepdims=True)

    # Trial ERD depth varies (attention, strategy): erd_depth * U(1 - s, 1 + s), within [0, 1].
    depths = np.clip(erd_depth * rng.uniform(1 - _ERD_TRIAL_SPREAD, 1 + _ERD_TRIAL_SPREAD,
                                             size=len(sched.labels)), 0.0, 1.0)
    gains = np.ones((len(sources), n_times))
    span = int(np.ceil((imagery_s + _ERD_RISE_S + _ERD_LATENCY_S) * sfreq)) + 2
    for onset, label, depth in zip(sched.onsets_s, sched.labels, depths, strict=True):
        target = MI_CLASSES[label]
        if target is None:
            continue
        start = int(round(onset * sfreq))
        sl = slice(start, min(start + span, n_times))
        t = times[sl] - onset
        window = (_smoothstep((t - _ERD_LATENCY_S) / _ERD_RISE_S)
                  - _smoothstep((t - imagery_s) / _ERD_RISE_S))
        gains[sources.index(target), sl] -= depth * window

    mont_pos = montage.get_positions()["ch_pos"]
    amplitude = snr * BACKGROUND_RMS_V
    for k, (name, weight) in enumerate(zip(sources, weights, strict=True)):
        pattern = _pattern(pos, mont_pos[name], _MI_SPREAD_M)
        data += np.outer(weight * amplitude * pattern, gains[k] * rhythm[k])

    description = (
        f"bci synthetic motor imagery: mu {mu_freq:.2f} Hz and beta {beta_freq:.2f} Hz rhythms "
        f"at C3, C4 and Cz desynchronise by {erd_depth:.2f} (amplitude) during imagery "
        f"(left_hand: C4, right_hand: C3, feet: Cz, rest: none); snr={snr:g}, "
        f"background {BACKGROUND_RMS_V * 1e6:g} uV RMS 1/f."
    )
    annotations = _annotations(sched.onsets_s, imagery_s, sched.labels)
    logger.debug("Simulated motor imagery: %d trials, %d channels, %.1f s at %g Hz",
                 len(sched.labels), n_chans, n_times / sfreq, sfreq)
    return _raw(data, ch_names, sfreq, montage, annotations, description)


def _check_mi_args(n_trials, classes, n_chans, sfreq, snr, mu_freq, beta_freq, erd_depth,
                   imagery_s, iti_s):
    n_trials = ensure_int(n_trials, "n_trials", minimum=1, what="trials per class")
    classes = _check_mi_classes(classes)
    n_chans = _check_n_chans(n_chans, 3, "C3, Cz and C4 are always included")
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    snr = check_positive(snr, "snr", allow_zero=True, unit="rhythm RMS / background RMS")
    mu_freq = check_positive(mu_freq, "mu_freq", unit="Hz")
    beta_freq = check_positive(beta_freq, "beta_freq", unit="Hz")
    top = max(mu_freq, beta_freq) + 3 * _BETA_BW_HZ
    if sfreq / 2 <= top:
        raise ValueError(
            f"sfreq must be above {2 * top:g} Hz so that the rhythms (up to {top:g} Hz) are "
            f"below Nyquist, got sfreq={sfreq:g} Hz; raise sfreq or lower beta_freq."
        )
    erd_depth = check_fraction(erd_depth, "erd_depth", allow_one=True,
                               hint="It is the fraction of the rhythm amplitude removed during "
                                    "imagery.")
    imagery_s = check_positive(imagery_s, "imagery_s", unit="seconds")
    iti_s = _check_range_s("iti_s", iti_s)
    return (n_trials, classes, n_chans, sfreq, snr, mu_freq, beta_freq, erd_depth, imagery_s,
            iti_s)


def make_motor_imagery(n_trials: int = 50, *,
                       classes: Sequence[str] = ("left_hand", "right_hand"),
                       n_chans: int = 8, sfreq: float = 128.0, snr: float = 1.0,
                       mu_freq: float = 11.0, beta_freq: float = 22.0, erd_depth: float = 0.35,
                       imagery_s: float = 4.0, iti_s: tuple[float, float] = (2.0, 3.0),
                       random_state: int | np.random.Generator | None = None):
    """Simulate a motor-imagery recording with a planted event-related desynchronisation.

    The recording is the sum of

    - a background of spatially correlated 1/f noise, 10 µV RMS on every channel (flat spectrum
      below 1 Hz, 1/f power above; channel correlation ``0.95 exp(-d² / (2 (5 cm)²))`` plus 0.05
      on the diagonal, ``d`` the distance between electrodes, so the covariance is full rank);
    - three sensorimotor rhythm sources, at C3 (left hand area), C4 (right hand area) and Cz
      (feet area, 0.7 times weaker), each seen on the scalp with a Gaussian fall-off of 3.5 cm.
      A source's rhythm is a mu component (narrowband noise around ``mu_freq``, s.d. 0.75 Hz)
      plus a beta component at half its amplitude (around ``beta_freq``, s.d. 1.5 Hz).

    The planted effect: during imagery the rhythm amplitude of the contralateral source drops by
    ``erd_depth`` (times a per-trial factor uniform in [0.6, 1.4], clipped to [0, 1]), from 0.25 s
    after the cue (0.5 s raised-cosine ramp) to ``imagery_s`` (0.5 s ramp back):

    ============== =====================
    class          desynchronised source
    ============== =====================
    ``left_hand``  C4 (right hemisphere)
    ``right_hand`` C3 (left hemisphere)
    ``feet``       Cz
    ``rest``       none
    ============== =====================

    Parameters
    ----------
    n_trials : int
        Trials per class (classes are balanced, in shuffled order).
    classes : sequence of str
        Classes among ``"left_hand"``, ``"right_hand"``, ``"feet"``, ``"rest"``.
    n_chans : int
        Number of EEG channels, 3 to 84. C3, Cz and C4 come first, then (in this order) FC3,
        FC4, CP3, CP4, FCz (the default 8), C1, C2, FC1, FC2 (12), CP1, CP2, C5, C6 (16), CPz,
        Fz, P1, P2, Pz, POz (the 22 channels of BNCI2014_001), then the nearest 10-10 sites to
        Cz. Channels are ordered as in the 10-05 montage (front to back, left to right).
    sfreq : float
        Sampling frequency (Hz). Must exceed ``2 * (max(mu_freq, beta_freq) + 4.5)``.
    snr : float
        Amplitude signal-to-noise ratio: the RMS of a hand-area rhythm (mu + beta) at its own
        electrode (C3 or C4) outside imagery, divided by the RMS of the background (10 µV), both
        broadband. ``snr=1`` gives a 10 µV RMS rhythm; as the rhythm is narrowband, its power
        ratio to the background within 8-13 Hz is higher (about 7 at ``snr=1``).
        ``snr=0`` leaves pure background (no effect to find).
    mu_freq, beta_freq : float
        Centre frequencies of the mu and beta rhythms (Hz).
    erd_depth : float
        Mean fraction of the rhythm amplitude removed during imagery, in [0, 1]. The default
        0.35 is a 58 % power decrease at the source (0.5 would halve the amplitude, a 75 %
        power decrease).
    imagery_s : float
        Duration of the imagery period after each cue (seconds); the annotation duration.
    iti_s : (float, float)
        Rest before each cue (and after the last trial), uniform in this range (seconds).
    random_state : int | numpy.random.Generator | None
        Seed or generator; the same seed gives the same recording.

    Returns
    -------
    raw : mne.io.RawArray
        ``n_chans`` EEG channels in volts, shape ``(n_chans, n_times)`` with
        ``n_times`` about ``sfreq * n_trials * len(classes) * (imagery_s + mean(iti_s))``;
        montage set (10-05 positions), one annotation per trial (description = class name,
        onset = cue, duration = ``imagery_s``), ``raw.info["description"]`` states the effect.

    Examples
    --------
    >>> import mne
    >>> raw = make_motor_imagery(n_trials=5, random_state=0)
    >>> raw.ch_names
    ['FC3', 'FCz', 'FC4', 'C3', 'Cz', 'C4', 'CP3', 'CP4']
    >>> raw.info["sfreq"]
    128.0
    >>> events, event_id = mne.events_from_annotations(raw, verbose=False)
    >>> sorted(event_id), len(events)
    (['left_hand', 'right_hand'], 10)
    """
    args = _check_mi_args(n_trials, classes, n_chans, sfreq, snr, mu_freq, beta_freq,
                          erd_depth, imagery_s, iti_s)
    rng = check_random_state(random_state)
    return _simulate_motor_imagery(*args, rng=rng)


# --------------------------------------------------------------------------------------------
# SSVEP
# --------------------------------------------------------------------------------------------
def _simulate_ssvep(n_trials, freqs, include_rest, n_chans, sfreq, snr, trial_s, iti_s, rng,
                    phases=None):
    """``phases``: (n_freqs, 2) response phases (rad) of fundamental and harmonic, or None."""
    montage = _montage()
    ch_names = _pick_channels(n_chans, _SSVEP_PRIORITY, "Oz", montage)
    pos = _positions(montage, ch_names)
    labels = [_freq_label(f) for f in freqs] + (["rest"] if include_rest else [])
    if phases is None:
        phases = rng.uniform(0, 2 * np.pi, size=(len(freqs), 2))
    sched = _schedule(rng, labels, n_trials, trial_s, iti_s, sfreq)
    n_times = sched.n_times
    times = np.arange(n_times) / sfreq

    data = _background(rng, pos, n_times, sfreq)
    oz = montage.get_positions()["ch_pos"]["Oz"]
    pattern = _pattern(pos, oz, _SSVEP_SPREAD_M)
    alpha = _narrowband_noise(rng, 1, n_times, sfreq, _ALPHA_HZ, _MU_BW_HZ)[0]
    data += np.outer(_ALPHA_RATIO * BACKGROUND_RMS_V * pattern, alpha)

    response = np.zeros(n_times)
    norm = np.sqrt((1 + _HARMONIC_RATIO**2) / 2)  # RMS of the unit two-sine sum
    span = int(np.ceil((trial_s + _SSVEP_RISE_S) * sfreq)) + 2
    jitters = rng.normal(0.0, _SSVEP_PHASE_JITTER_RAD, size=len(sched.labels))
    amps = np.exp(rng.normal(0.0, _SSVEP_AMP_JITTER, size=len(sched.labels)))
    for onset, label, jit, amp in zip(sched.onsets_s, sched.labels, jitters, amps, strict=True):
        if label == "rest":
            continue
        k = labels.index(label)
        f = freqs[k]
        start = int(round(onset * sfreq))
        sl = slice(start, min(start + span, n_times))
        t = times[sl] - onset
        env = (_smoothstep((t - _SSVEP_LATENCY_S) / _SSVEP_RISE_S)
               - _smoothstep((t - trial_s) / _SSVEP_RISE_S))
        wave = (np.sin(2 * np.pi * f * t + phases[k, 0] + jit)
                + _HARMONIC_RATIO * np.sin(2 * np.pi * 2 * f * t + phases[k, 1] + 2 * jit))
        response[sl] += amp * env * wave / norm
    data += np.outer(snr * BACKGROUND_RMS_V * pattern, response)

    description = (
        f"bci synthetic SSVEP: steady-state response at {', '.join(labels[:len(freqs)])} Hz "
        f"(+ 2nd harmonic at half amplitude) peaking at Oz; snr={snr:g}, background "
        f"{BACKGROUND_RMS_V * 1e6:g} uV RMS 1/f with occipital alpha."
    )
    annotations = _annotations(sched.onsets_s, trial_s, sched.labels)
    logger.debug("Simulated SSVEP: %d trials, %d channels, %.1f s at %g Hz",
                 len(sched.labels), n_chans, n_times / sfreq, sfreq)
    return _raw(data, ch_names, sfreq, montage, annotations, description)


def _check_ssvep_args(n_trials, freqs, include_rest, n_chans, sfreq, snr, trial_s, iti_s):
    n_trials = ensure_int(n_trials, "n_trials", minimum=1, what="trials per class")
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    freqs = _check_ssvep_freqs(freqs, sfreq)
    include_rest = check_bool(include_rest, "include_rest")
    n_chans = _check_n_chans(n_chans, 1, "Oz is always included")
    snr = check_positive(snr, "snr", allow_zero=True, unit="response RMS / background RMS")
    trial_s = check_positive(trial_s, "trial_s", unit="seconds")
    iti_s = _check_range_s("iti_s", iti_s)
    return n_trials, freqs, include_rest, n_chans, sfreq, snr, trial_s, iti_s


def make_ssvep(n_trials: int = 10, *, freqs: Sequence[float] = (13.0, 17.0, 21.0),
               include_rest: bool = True, n_chans: int = 8, sfreq: float = 256.0,
               snr: float = 0.3, trial_s: float = 5.0, iti_s: tuple[float, float] = (1.0, 2.0),
               random_state: int | np.random.Generator | None = None):
    """Simulate an SSVEP recording (like Kalunga2016) with a planted steady-state response.

    The recording is the background of :func:`make_motor_imagery` (spatially correlated 1/f
    noise, 10 µV RMS per channel) plus an occipital alpha rhythm (around 10 Hz, 5 µV RMS at Oz)
    and, during each stimulation trial, the steady-state response: a sine at the stimulation
    frequency plus its 2nd harmonic at half the amplitude, phase-locked to the stimulus onset
    (one phase per frequency, +/- 0.2 rad from trial to trial), starting 0.1 s after onset with a
    0.3 s ramp, with a trial amplitude varying log-normally (s.d. 0.2). Its scalp pattern is a
    Gaussian fall-off of 5 cm around Oz. ``"rest"`` trials have no response.

    Parameters
    ----------
    n_trials : int
        Trials per class (balanced, shuffled).
    freqs : sequence of float
        Stimulation frequencies (Hz); the event names are their ``"%g"`` strings (``"13"``).
        Their 2nd harmonics must lie below Nyquist.
    include_rest : bool
        Add a ``"rest"`` class without stimulation.
    n_chans : int
        Number of EEG channels, 1 to 84: Oz, O1, O2, POz, PO3, PO4, PO7, PO8 (the channels of
        Kalunga2016) first, then the nearest 10-10 sites to Oz; ordered as in the 10-05 montage.
    sfreq : float
        Sampling frequency (Hz).
    snr : float
        Amplitude signal-to-noise ratio: the RMS of the steady-state response (fundamental and
        harmonic together, during stimulation) at Oz divided by the RMS of the background
        (10 µV), both broadband. A sine's power sits in one frequency bin, so the default 0.3
        (a 3 µV RMS response) stands well above the background in a 4 s spectrum. ``snr=0``
        gives no response.
    trial_s : float
        Stimulation duration (seconds); the annotation duration.
    iti_s : (float, float)
        Rest before each onset (and after the last trial), uniform in this range (seconds).
    random_state : int | numpy.random.Generator | None
        Seed or generator; the same seed gives the same recording.

    Returns
    -------
    raw : mne.io.RawArray
        ``n_chans`` EEG channels in volts, shape ``(n_chans, n_times)``; montage set, one
        annotation per trial (description ``"13"``... or ``"rest"``, onset = stimulus onset,
        duration = ``trial_s``).

    Examples
    --------
    >>> raw = make_ssvep(n_trials=2, random_state=0)
    >>> raw.ch_names
    ['PO7', 'PO3', 'POz', 'PO4', 'PO8', 'O1', 'Oz', 'O2']
    >>> sorted(set(raw.annotations.description))
    ['13', '17', '21', 'rest']
    """
    args = _check_ssvep_args(n_trials, freqs, include_rest, n_chans, sfreq, snr, trial_s, iti_s)
    rng = check_random_state(random_state)
    return _simulate_ssvep(*args, rng=rng)


# --------------------------------------------------------------------------------------------
# continuous recordings (self-supervised pretraining)
# --------------------------------------------------------------------------------------------
#: The 8 channels of Kalunga2016 (its order), a montage for :func:`make_continuous_eeg`.
KALUNGA_CHANNELS = ("Oz", "O1", "O2", "PO3", "POz", "PO7", "PO8", "PO4")


def make_continuous_eeg(duration_s: float = 120.0, *,
                        ch_names: Sequence[str] = KALUNGA_CHANNELS, sfreq: float = 256.0,
                        alpha_hz: float = 10.0, alpha_rms_v: float = 10e-6,
                        random_state: int | np.random.Generator | None = None):
    """Simulate a continuous, unlabelled recording on any montage, with a planted rhythm.

    The background of the other generators (spatially correlated 1/f noise, 10 µV RMS a channel)
    plus the planted effect: a sine at ``alpha_hz`` of ``alpha_rms_v`` RMS at Oz, falling off
    with a Gaussian of 5 cm around Oz (so occipital channels carry it, frontal ones hardly).
    Recordings with different ``ch_names`` stand for datasets with different montages.

    Parameters
    ----------
    duration_s : float
        Duration (s).
    ch_names : sequence of str
        EEG channel names of the 10-05 montage (``"T3"`` and ``"T7"`` both exist there).
    sfreq : float
        Sampling frequency (Hz), above ``2 * alpha_hz``.
    alpha_hz : float
        Frequency of the planted sine (Hz).
    alpha_rms_v : float
        Its RMS at Oz (volts); 0 for background alone.
    random_state : int | numpy.random.Generator | None
        Seed or generator; the same seed gives the same recording.

    Returns
    -------
    raw : mne.io.RawArray
        EEG in volts, shape ``(len(ch_names), round(duration_s * sfreq))``, montage set.

    Examples
    --------
    >>> raw = make_continuous_eeg(10.0, ch_names=["Fz", "Cz", "Oz"], random_state=0)
    >>> raw.get_data().shape
    (3, 2560)
    """
    duration_s = check_positive(duration_s, "duration_s", unit="s")
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    alpha_hz = check_positive(alpha_hz, "alpha_hz", unit="Hz")
    alpha_rms_v = check_positive(alpha_rms_v, "alpha_rms_v", unit="V", allow_zero=True)
    if alpha_hz >= sfreq / 2:
        raise ValueError(f"alpha_hz must be below sfreq / 2 = {sfreq / 2:g} Hz, got "
                         f"{alpha_hz:g}.")
    if isinstance(ch_names, str) or not isinstance(ch_names, Sequence) or not ch_names:
        raise TypeError(f"ch_names must be a non-empty sequence of channel names, got "
                        f"{ch_names!r}.")
    ch_names = [str(c) for c in ch_names]
    montage = _montage()
    pos_all = montage.get_positions()["ch_pos"]
    unknown = [c for c in ch_names if c not in pos_all]
    if unknown:
        raise ValueError(f"Channels {unknown} are not in the 10-05 montage; use its names "
                         f"(e.g. 'Fp1', 'T7', 'Oz').")
    if len(set(ch_names)) != len(ch_names):
        raise ValueError(f"ch_names has duplicates: {ch_names}.")
    rng = check_random_state(random_state)
    n_times = int(round(duration_s * sfreq))
    pos = _positions(montage, ch_names)
    data = _background(rng, pos, n_times, sfreq)
    t = np.arange(n_times) / sfreq
    phase = rng.uniform(0, 2 * np.pi)
    weight = _pattern(pos, pos_all["Oz"], _SSVEP_SPREAD_M)
    data += np.sqrt(2) * alpha_rms_v * weight[:, None] * np.sin(2 * np.pi * alpha_hz * t + phase)
    return _raw(data, ch_names, sfreq, montage, _annotations([], 0.0, []),
                f"continuous EEG, {alpha_hz:g} Hz sine of {alpha_rms_v * 1e6:g} uV RMS at Oz")


# --------------------------------------------------------------------------------------------
# a step response with a known onset (pseudo-online latency checks)
# --------------------------------------------------------------------------------------------
def make_onset_trials(n_trials: int = 10, *, onset_s: float = 1.0, effect_s: float = 3.0,
                      classes: Sequence[str] = ("left_hand", "right_hand"),
                      sfreq: float = 128.0, freq: float = 10.0, snr: float = 3.0,
                      iti_s: tuple[float, float] = (2.0, 3.0),
                      random_state: int | np.random.Generator | None = None):
    """Simulate cued trials whose class effect switches on exactly ``onset_s`` after the cue.

    One EEG channel per class (C3, C4, Cz, Pz in that order) over white background noise
    (:data:`BACKGROUND_RMS_V` RMS per channel); in each trial, the channel of the trial's class
    carries a sine at ``freq`` from ``cue + onset_s`` (to the sample) for ``effect_s`` seconds,
    with no ramp. A window of the recording is therefore class-free up to the onset and holds
    the effect wholly from ``onset_s`` plus its own length: what a pseudo-online evaluation's
    decision latency is checked against.

    Parameters
    ----------
    n_trials : int
        Trials per class (balanced, shuffled).
    onset_s : float
        Time (s, >= 0) from the cue (the annotation onset) to the effect.
    effect_s : float
        Duration (s, > 0) of the effect.
    classes : sequence of str
        Class names (2 to 4, distinct); the annotation descriptions.
    sfreq : float
        Sampling frequency (Hz).
    freq : float
        Frequency (Hz) of the effect's sine, below Nyquist.
    snr : float
        RMS of the sine over the background's RMS (> 0).
    iti_s : (float, float)
        Rest before each cue (and after the last trial), uniform in this range (s), after the
        previous trial's effect ends.
    random_state : int | numpy.random.Generator | None
        Seed or generator.

    Returns
    -------
    raw : mne.io.RawArray
        One channel per class, in volts; montage set; one annotation per trial (onset = cue,
        duration = ``onset_s + effect_s``, description = class).

    Examples
    --------
    >>> raw = make_onset_trials(n_trials=2, onset_s=0.5, random_state=0)
    >>> raw.ch_names, sorted(set(raw.annotations.description))
    (['C3', 'C4'], ['left_hand', 'right_hand'])
    """
    n_trials = ensure_int(n_trials, "n_trials", minimum=1, what="trials per class")
    onset_s = check_positive(onset_s, "onset_s", unit="s", allow_zero=True)
    effect_s = check_positive(effect_s, "effect_s", unit="s")
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    freq = check_positive(freq, "freq", unit="Hz")
    if not freq < sfreq / 2:
        raise ValueError(f"freq={freq:g} Hz must be below Nyquist ({sfreq / 2:g} Hz).")
    snr = check_positive(snr, "snr")
    iti_s = _check_range_s("iti_s", iti_s)
    classes = tuple(str(c) for c in classes)
    if not 2 <= len(classes) <= 4 or len(set(classes)) != len(classes):
        raise ValueError(f"classes must be 2 to 4 distinct names, got {list(classes)}.")
    rng = check_random_state(random_state)
    montage = _montage()
    ch_names = ["C3", "C4", "Cz", "Pz"][:len(classes)]
    sched = _schedule(rng, classes, n_trials, onset_s + effect_s, iti_s, sfreq)
    data = rng.standard_normal((len(classes), sched.n_times)) * BACKGROUND_RMS_V
    amplitude = snr * BACKGROUND_RMS_V * np.sqrt(2)
    n_effect = int(round(effect_s * sfreq))
    t = np.arange(n_effect) / sfreq
    for onset, label in zip(sched.onsets_s, sched.labels, strict=True):
        start = int(round(onset * sfreq)) + int(round(onset_s * sfreq))
        stop = min(start + n_effect, sched.n_times)
        data[classes.index(label), start:stop] += amplitude * np.sin(
            2 * np.pi * freq * t[:stop - start])
    description = (f"bci synthetic onset trials: the class channel carries a {freq:g}-Hz sine "
                   f"(snr {snr:g}) from {onset_s:g} s to {onset_s + effect_s:g} s after "
                   "each cue")
    annotations = _annotations(sched.onsets_s, onset_s + effect_s, sched.labels)
    return _raw(data, ch_names, sfreq, montage, annotations, description)


# --------------------------------------------------------------------------------------------
# intracranial subjects with different electrodes
# --------------------------------------------------------------------------------------------
#: Electrode (shaft) name -> brain region of :func:`make_multicontact_ieeg`; a contact is named
#: by its electrode and its number along it (``"HC1"``, ``"HC2"``...).
IEEG_ELECTRODES: dict[str, str] = {
    "HC": "hippocampus", "AMY": "amygdala", "INS": "insula", "CING": "cingulate",
    "TP": "temporal_pole", "OFC": "orbitofrontal",
}
#: Classes of :func:`make_multicontact_ieeg` and their event codes.
IEEG_EVENT_ID: dict[str, int] = {"rest": 1, "task": 2}
#: RMS amplitude of the intracranial background on every contact (volts).
IEEG_BACKGROUND_RMS_V = 50e-6
_IEEG_SHAFT_SHARE = 0.5  # variance share of the background common to the contacts of a shaft


@dataclass
class MultiContactSubjects:
    """Simulated intracranial subjects, each with its own electrodes.

    Attributes
    ----------
    epochs : list of mne.EpochsArray
        One per subject: ``seeg`` channels named ``<electrode><number>``, data in volts, events
        ``"rest"`` (1) and ``"task"`` (2).
    subjects : list of str
        Subject names (``"sub-01"``...), in the order of ``epochs``.
    regions : dict of str to str
        Electrode name -> region (:data:`IEEG_ELECTRODES` restricted to the regions used).
    effect_regions : tuple of str
        Regions whose contacts carry the class effect.
    effect_weights : list of ndarray
        Per subject, ``(n_contacts,)`` amplitude weight of the effect on each contact (0
        outside the effect regions).
    """

    epochs: list
    subjects: list[str]
    regions: dict[str, str]
    effect_regions: tuple[str, ...]
    effect_weights: list


def make_multicontact_ieeg(n_subjects: int = 6, n_trials: int = 40, *,
                           regions: Sequence[str] = ("hippocampus", "amygdala", "insula",
                                                     "cingulate", "temporal_pole"),
                           effect_regions: Sequence[str] = ("hippocampus", "insula"),
                           n_regions: tuple[int, int] = (2, 4),
                           n_contacts: tuple[int, int] = (1, 4),
                           sfreq: float = 250.0, trial_s: float = 1.0,
                           effect_freq: float = 70.0, effect_bw: float = 10.0,
                           snr: float = 0.6,
                           random_state: int | np.random.Generator | None = None
                           ) -> MultiContactSubjects:
    """Simulate intracranial (sEEG) subjects with different contacts in different regions.

    Every subject has electrodes in ``n_regions`` regions drawn without replacement (at least
    one of them in ``effect_regions``, so that every subject is decodable), and ``n_contacts``
    contacts on each electrode (both uniform over the inclusive ranges). Each contact carries
    1/f background of :data:`IEEG_BACKGROUND_RMS_V` RMS, half of whose variance is common to
    its electrode. In ``"task"`` trials, every contact of an effect region carries a
    high-gamma burst (Gaussian spectral peak at ``effect_freq``, s.d. ``effect_bw``) of RMS
    ``snr * weight * background``, with a weight drawn per contact uniformly in [0.5, 1]; in
    ``"rest"`` trials nothing. Each subject's signals are multiplied by a gain drawn
    log-uniformly in [0.5, 2] (amplifiers and impedances differ), so the unit scale of a
    subject is not informative.

    Parameters
    ----------
    n_subjects : int
        Number of subjects.
    n_trials : int
        Trials per class and subject (balanced, shuffled).
    regions : sequence of str
        Regions electrodes are drawn from; names of :data:`IEEG_ELECTRODES`'s values.
    effect_regions : sequence of str
        Regions carrying the class effect (a non-empty subset of ``regions``).
    n_regions : (int, int)
        Inclusive range of regions per subject.
    n_contacts : (int, int)
        Inclusive range of contacts per electrode.
    sfreq : float
        Sampling rate (Hz); ``effect_freq + 2 * effect_bw`` must be below Nyquist.
    trial_s : float
        Trial length (s).
    effect_freq, effect_bw : float
        Centre and spectral s.d. of the effect (Hz).
    snr : float
        RMS of the effect over the background RMS, at weight 1.
    random_state : int | numpy.random.Generator | None
        Seed or generator.

    Returns
    -------
    data : MultiContactSubjects

    Examples
    --------
    >>> data = make_multicontact_ieeg(n_subjects=2, n_trials=3, random_state=0)
    >>> [len(e) for e in data.epochs], data.epochs[0].get_channel_types()[0]
    ([6, 6], 'seeg')
    """
    import mne

    n_subjects = ensure_int(n_subjects, "n_subjects", minimum=1, what="subjects")
    n_trials = ensure_int(n_trials, "n_trials", minimum=1, what="trials per class")
    by_region = {region: shaft for shaft, region in IEEG_ELECTRODES.items()}
    regions = tuple(regions)
    for region in (*regions, *effect_regions):
        check_option("region", region, by_region)
    effect_regions = tuple(effect_regions)
    if not effect_regions or not set(effect_regions) <= set(regions):
        raise ValueError(f"effect_regions must be a non-empty subset of regions {list(regions)}"
                         f", got {list(effect_regions)}.")
    lo_r, hi_r = (ensure_int(v, "n_regions", minimum=1) for v in n_regions)
    if not lo_r <= hi_r <= len(regions):
        raise ValueError(f"n_regions must be (low, high) with 1 <= low <= high <= "
                         f"{len(regions)} (the regions given), got {tuple(n_regions)}.")
    lo_c, hi_c = (ensure_int(v, "n_contacts", minimum=1) for v in n_contacts)
    if lo_c > hi_c:
        raise ValueError(f"n_contacts must be (low, high) with low <= high, got "
                         f"{tuple(n_contacts)}.")
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    trial_s = check_positive(trial_s, "trial_s", unit="s")
    effect_freq = check_positive(effect_freq, "effect_freq", unit="Hz")
    effect_bw = check_positive(effect_bw, "effect_bw", unit="Hz")
    if not effect_freq + 2 * effect_bw < sfreq / 2:
        raise ValueError(f"effect_freq + 2 * effect_bw = {effect_freq + 2 * effect_bw:g} Hz "
                         f"must be below Nyquist ({sfreq / 2:g} Hz); raise sfreq.")
    snr = check_positive(snr, "snr")
    rng = check_random_state(random_state)
    n_times = int(round(trial_s * sfreq))
    epochs, names, weights = [], [], []
    for s in range(n_subjects):
        first = effect_regions[rng.integers(len(effect_regions))]
        rest = [r for r in regions if r != first]
        k = int(rng.integers(lo_r, hi_r + 1)) - 1
        chosen = [first, *(rest[i] for i in rng.permutation(len(rest))[:k])]
        chosen = [r for r in regions if r in chosen]  # electrode order: that of ``regions``
        ch_names, ch_region, shafts = [], [], []
        for j, region in enumerate(chosen):
            n_c = int(rng.integers(lo_c, hi_c + 1))
            ch_names += [f"{by_region[region]}{c + 1}" for c in range(n_c)]
            ch_region += [region] * n_c
            shafts += [j] * n_c
        n_chans, n_total = len(ch_names), 2 * n_trials
        labels = rng.permutation(np.repeat([1, 2], n_trials))
        shafts = np.asarray(shafts)
        common = _pink_noise(rng, n_total * len(chosen), n_times, sfreq).reshape(
            n_total, len(chosen), n_times)
        own = _pink_noise(rng, n_total * n_chans, n_times, sfreq).reshape(
            n_total, n_chans, n_times)
        data = (np.sqrt(_IEEG_SHAFT_SHARE) * common[:, shafts]
                + np.sqrt(1 - _IEEG_SHAFT_SHARE) * own)
        weight = np.where(np.isin(ch_region, effect_regions),
                          rng.uniform(0.5, 1.0, n_chans), 0.0)
        task = np.flatnonzero(labels == 2)
        burst = _narrowband_noise(rng, len(task) * n_chans, n_times, sfreq, effect_freq,
                                  effect_bw).reshape(len(task), n_chans, n_times)
        data[task] += snr * weight[None, :, None] * burst
        gain = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        data *= IEEG_BACKGROUND_RMS_V * gain
        info = mne.create_info(ch_names, sfreq, ch_types="seeg")
        info["description"] = (f"bci synthetic sEEG subject {s + 1}: high-gamma burst "
                               f"({effect_freq:g} Hz, snr {snr:g}) in {list(effect_regions)} "
                               "during 'task' trials")
        events = np.column_stack([np.arange(n_total) * n_times, np.zeros(n_total, int),
                                  labels])
        epochs.append(mne.EpochsArray(data, info, events=events, event_id=IEEG_EVENT_ID,
                                      verbose=False))
        names.append(f"sub-{s + 1:02d}")
        weights.append(weight)
    used = {by_region[r]: r for r in regions}
    logger.info("Simulated %d sEEG subjects (%s contacts)", n_subjects,
                ", ".join(str(len(e.ch_names)) for e in epochs))
    return MultiContactSubjects(epochs=epochs, subjects=names, regions=used,
                                effect_regions=effect_regions, effect_weights=weights)
