"""Simulated MEG trials from real evoked templates plus real MEG noise, with planted separability.

:func:`make_meg_trials` builds a continuous Elekta/MEGIN recording (306 MEG channels: 102
magnetometers, 204 planar gradiometers) in which every trial is one of the real evoked responses
of MNE's ``test-ave.fif.gz`` (``Left Auditory``, ``Right Auditory``, ``Left visual``, ``Right
visual``), scaled by ``snr``, added to noise made of a real recording's time courses:

- noise: each channel is the sum of ``n_sources`` shared sources and one channel-own source
  (half of the variance each), every source a real time course of the noise recording (the
  Elekta recording's magnetometer for magnetometers, a gradiometer for gradiometers) taken at
  a random offset, band-passed to 1-40 Hz (the band decoded); the noise of each type is then
  scaled to the RMS of that type's templates, and the recording's SSP projections (those of
  the evoked file) are applied to signal and noise alike, so the data are rank-deficient as
  real projected data (rank 303 of 306 with the file's three magnetometer projectors);
- signal: trial ``k`` of class ``c`` adds ``snr * template_c`` (the evoked response from -0.2
  to 0.5 s) at its cue; ``snr=0`` leaves noise only (chance decoding, 25 %), and decoding
  accuracy rises with ``snr``: that is the planted, known separability.

Templates and noise are low-passed at 40 Hz and decimated to ``sfreq`` (150.15 Hz by default:
the file's 600.6 Hz / 4), which keeps a 306-channel recording small.
"""

from __future__ import annotations

import copy
import logging
import os

import numpy as np

from .._checks import check_positive, check_random_state, ensure_int

logger = logging.getLogger(__name__)

__all__ = ["CONDITIONS", "make_meg_trials"]

#: Conditions of MNE's ``test-ave.fif.gz`` and their class names.
CONDITIONS = {"Left Auditory": "auditory_left", "Right Auditory": "auditory_right",
              "Left visual": "visual_left", "Right visual": "visual_right"}


def _lowpass_decimate(data: np.ndarray, sfreq: float, factor: int) -> np.ndarray:
    import mne

    filtered = mne.filter.filter_data(data, sfreq, None, 40.0, verbose=False)
    return filtered[..., ::factor]


def make_meg_trials(evoked_fname: str | os.PathLike, noise_fname: str | os.PathLike, *,
                    n_trials: int = 20, snr: float = 1.0, iti_s: float = 0.5,
                    decim: int = 4, n_sources: int = 20,
                    random_state: int | np.random.Generator | None = None):
    """Simulate a 306-channel MEG recording of four evoked conditions on real noise.

    Parameters
    ----------
    evoked_fname : path-like
        MNE's ``test-ave.fif.gz`` (four evoked responses, 306 MEG + 60 EEG channels).
    noise_fname : path-like
        A real MEG recording with at least one magnetometer and one gradiometer (MNE's
        ``test_elekta_3ch_raw.fif``: 80 s, 1 magnetometer, 2 gradiometers).
    n_trials : int
        Trials per condition (shuffled order).
    snr : float
        Amplitude of the templates relative to the noise (per channel type, RMS over the
        window); 0 for noise only.
    iti_s : float
        Noise-only time between the end of a trial window and the next cue's window (s).
    decim : int
        Decimation factor after the 40-Hz low-pass (600.6 Hz / 4 = 150.15 Hz).
    n_sources : int
        Shared noise sources (spatially correlated noise).
    random_state : int | numpy.random.Generator | None
        Seed.

    Returns
    -------
    raw : mne.io.RawArray
        The 306 MEG channels in T and T/m, with the evoked file's projectors applied, and one
        annotation a trial (description: ``auditory_left``, ``auditory_right``,
        ``visual_left``, ``visual_right``; onset: the cue, 0.2 s into the trial's window).
    """
    import mne

    n_trials = ensure_int(n_trials, "n_trials", minimum=1, what="trials per condition")
    snr = check_positive(snr, "snr", allow_zero=True)
    iti_s = check_positive(iti_s, "iti_s", unit="s", allow_zero=True)
    decim = ensure_int(decim, "decim", minimum=1, what="decimation factor")
    n_sources = ensure_int(n_sources, "n_sources", minimum=1, what="noise sources")
    rng = check_random_state(random_state)
    evokeds = [e.pick("meg") for e in mne.read_evokeds(evoked_fname, verbose="error")]
    names = [e.comment for e in evokeds]
    if sorted(names) != sorted(CONDITIONS):
        raise ValueError(f"{evoked_fname} holds conditions {names}; expected "
                         f"{list(CONDITIONS)} (MNE's test-ave.fif.gz).")
    info = evokeds[0].info
    sfreq0 = info["sfreq"]
    templates = np.stack([_lowpass_decimate(e.data, sfreq0, decim) for e in evokeds])
    n_win = templates.shape[-1]
    sfreq = sfreq0 / decim
    types = np.array(evokeds[0].get_channel_types())
    noise_raw = mne.io.read_raw_fif(noise_fname, preload=True, verbose="error")
    courses = {}
    for kind in ("mag", "grad"):
        picks = mne.pick_types(noise_raw.info, meg=kind)
        if len(picks) == 0:
            raise ValueError(f"{noise_fname} has no {kind} channel; it needs at least one "
                             "magnetometer and one gradiometer (e.g. test_elekta_3ch_raw.fif).")
        data = noise_raw.copy().pick(picks).resample(sfreq, verbose=False).get_data()
        # 1-40 Hz, the band decoded: the recording's slow drifts would otherwise dominate the
        # noise RMS, and a band-pass before decoding would leave a far higher SNR than asked
        data = mne.filter.filter_data(data, sfreq, 1.0, 40.0, verbose=False)
        data = data - data.mean(axis=1, keepdims=True)
        courses[kind] = data / data.std(axis=1, keepdims=True)
    n_win_iti = n_win + int(round(iti_s * sfreq))
    n_total = 4 * n_trials
    n_times = n_total * n_win_iti + n_win
    noise = np.empty((len(types), n_times))

    def real_course():
        kind_courses = courses[kind]
        row = kind_courses[rng.integers(len(kind_courses))]
        start = int(rng.integers(len(row)))
        idx = (start + np.arange(n_times)) % len(row)  # circular: any length from 80 s
        return row[idx]

    for kind in ("mag", "grad"):
        sel = np.flatnonzero(types == kind)
        shared = np.stack([real_course() for _ in range(n_sources)])
        mixing = rng.standard_normal((len(sel), n_sources)) / np.sqrt(n_sources)
        own = np.stack([real_course() for _ in sel])
        block = (mixing @ shared + own) / np.sqrt(2.0)
        rms = np.sqrt(np.mean(templates[:, sel] ** 2))
        noise[sel] = block / np.sqrt(np.mean(block ** 2)) * rms
    labels = np.repeat(np.arange(4), n_trials)
    rng.shuffle(labels)
    signal = noise
    onsets = []
    for k, label in enumerate(labels):
        start = k * n_win_iti + (n_win_iti - n_win)
        signal[:, start:start + n_win] += snr * templates[label]
        onsets.append((start - int(round(evokeds[0].times[0] * sfreq0 / decim))) / sfreq)
    raw = mne.io.RawArray(signal, mne.create_info(info["ch_names"], sfreq, types.tolist()),
                          verbose=False)
    for new, old in zip(raw.info["chs"], info["chs"], strict=True):  # sensor geometry
        new.update(loc=old["loc"].copy(), coil_type=old["coil_type"],
                   coord_frame=old["coord_frame"])
    raw.add_proj([copy.deepcopy(p) for p in info["projs"]], verbose=False)
    raw.apply_proj(verbose=False)
    classes = [CONDITIONS[names[label]] for label in labels]
    raw.set_annotations(mne.Annotations(onsets, 0.0, classes))
    logger.info("Simulated %d MEG trials (%d channels, %.2f Hz, snr %g)", n_total,
                len(types), sfreq, snr)
    return raw
