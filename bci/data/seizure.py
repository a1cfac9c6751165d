"""Seizure EEG: Bonn segments, streams, windows, continuous recordings, synthetic segments.

- :func:`load_bonn` reads the Bonn epilepsy EEG (Andrzejak et al. 2001, Phys. Rev. E 64,
  061907): five sets of 100 single-channel segments of 4,097 samples (23.6 s) at 173.61 Hz.
  Z and O: scalp EEG of healthy volunteers (eyes open, eyes closed); N and F: intracranial,
  seizure-free intervals (opposite hemisphere, epileptogenic zone); S: intracranial, seizures.
- :func:`make_seizure_stream` joins segments end to end into one continuous signal with known
  seizure intervals. With real segments the stream is a **synthetic concatenation of real
  segments**, not a continuous recording: the junctions are abrupt and the seizures start at
  segment boundaries. Say so wherever its results are reported.
- :func:`subsample_segments`, :func:`split_segments` and :func:`segment_windows`: a seeded
  subset per set, a split by segment stratified by set, and overlapping windows of segments.
- :func:`sliding_windows` cuts a stream into windows with labels and decision times.
- Continuous recordings (e.g. CHB-MIT files): :func:`prepare_recording` band-passes, resamples
  and scales one, :func:`choose_training_windows` picks seizure and (subsampled) background
  windows in seconds, :func:`windows_at` cuts them.
- :func:`make_seizure_eeg`: seeded synthetic segments (coloured background noise; ictal segments
  add rhythmic high-amplitude spike-and-wave bursts), so tests run without the real data.

A whole windowed task in one call (split, windows, held-out streams):
:mod:`bci.data.seizure_windows`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import check_fraction, check_positive, check_random_state, ensure_int
from .._config import config_help, dataset_path

__all__ = ["BONN_SETS", "BONN_SFREQ", "SeizureSegments", "SeizureStream",
           "choose_training_windows", "load_bonn", "make_seizure_eeg", "make_seizure_stream",
           "prepare_recording", "segment_windows", "seizure_overlap_s", "sliding_windows",
           "split_segments", "subsample_segments", "windows_at"]

logger = logging.getLogger(__name__)

#: Set names of the Bonn data, in the order of the paper; ``"S"`` holds the seizures.
BONN_SETS = ("Z", "O", "N", "F", "S")
#: Sampling rate of the Bonn segments (Hz).
BONN_SFREQ = 173.61
BONN_N_TIMES = 4097
ICTAL_SET = "S"


@dataclass
class SeizureSegments:
    """Labelled EEG segments.

    Attributes
    ----------
    X : ndarray, shape (n_segments, n_chans, n_times)
        Signals (float32), in the units of the source (the Bonn files hold integers, µV in the
        literature).
    sets : ndarray of str, shape (n_segments,)
        Set of each segment (``"Z"``, ``"O"``, ``"N"``, ``"F"`` or ``"S"``).
    names : list of str
        Segment names (file stems, e.g. ``"S001"``).
    sfreq : float
        Sampling rate (Hz).
    source : str
        ``"bonn"`` (real) or ``"synthetic"``.
    """

    X: np.ndarray
    sets: np.ndarray
    names: list[str]
    sfreq: float
    source: str = "bonn"
    extras: dict = field(default_factory=dict)

    @property
    def ictal(self) -> np.ndarray:
        """Boolean ``(n_segments,)``: True for seizure segments (set S)."""
        return self.sets == ICTAL_SET

    def subset(self, idx: Sequence[int] | np.ndarray) -> SeizureSegments:
        """Return the segments at ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=int)
        return SeizureSegments(X=self.X[idx], sets=self.sets[idx],
                               names=[self.names[i] for i in idx], sfreq=self.sfreq,
                               source=self.source, extras=dict(self.extras))

    def __len__(self) -> int:
        """Return the number of segments."""
        return len(self.X)


@dataclass
class SeizureStream:
    """A continuous signal with known seizure intervals.

    Attributes
    ----------
    signal : ndarray, shape (n_chans, n_samples)
        The stream (float32).
    sfreq : float
        Sampling rate (Hz).
    intervals : ndarray, shape (n_seizures, 2)
        Seizure onset and offset times (seconds from the start of the stream).
    segment_names : list of str
        The segments the stream was built from, in order (empty for a continuous recording).
    description : str
        How it was made (a concatenation of segments, real or synthetic; or a recording).
    name : str
        Short name (e.g. ``"stream"``, or the file of a continuous recording).
    """

    signal: np.ndarray
    sfreq: float
    intervals: np.ndarray
    segment_names: list[str]
    description: str
    name: str = "stream"

    @property
    def duration_s(self) -> float:
        """Length of the stream (seconds)."""
        return self.signal.shape[1] / self.sfreq


def _bonn_root(path: str | os.PathLike | None) -> Path:
    """Return the folder of the Bonn sets, or raise ``FileNotFoundError`` naming the fix.

    ``path``, else MNE_DATASETS_BONN_PATH, else ``$MNE_DATA/bonn_epilepsy`` (see
    :func:`bci._config.dataset_path`).
    """
    path = dataset_path("BONN", "bonn_epilepsy", path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"Bonn epilepsy data not found at {path}. Pass path= (the folder holding the Z, O, "
            f"N, F and S folders of text files), or {config_help('BONN')} (MNE_DATA: the "
            "folder holding bonn_epilepsy/)."
        )
    return path


def load_bonn(path: str | os.PathLike | None = None, sets: Sequence[str] = BONN_SETS
              ) -> SeizureSegments:
    """Read the Bonn epilepsy segments (Andrzejak et al. 2001).

    Parameters
    ----------
    path : path-like | None
        Folder holding one sub-folder per set (``Z/Z001.txt`` ... ``S/S100.txt``; file
        extensions in any case). When None: ``MNE_DATASETS_BONN_PATH`` (environment or MNE
        config), else ``$MNE_DATA/bonn_epilepsy``.
    sets : sequence of str
        Sets to read, among ``"Z"``, ``"O"``, ``"N"``, ``"F"``, ``"S"``.

    Returns
    -------
    segments : SeizureSegments
        ``X`` of shape ``(n_segments, 1, 4097)`` at 173.61 Hz, sorted by set (in the order
        given) then file name.

    Raises
    ------
    FileNotFoundError
        When the folder, a set folder, or its files are missing.
    """
    if isinstance(sets, str):
        sets = [sets]
    sets = list(sets)
    for name in sets:
        if name not in BONN_SETS:
            raise ValueError(f"Unknown Bonn set {name!r}; choose among {', '.join(BONN_SETS)}.")
    if not sets:
        raise ValueError("sets is empty; choose among " + ", ".join(BONN_SETS) + ".")
    root = _bonn_root(path)
    X, labels, names = [], [], []
    for name in sets:
        folder = root / name
        files = sorted(f for f in folder.glob("*") if f.suffix.lower() == ".txt") \
            if folder.is_dir() else []
        if not files:
            raise FileNotFoundError(
                f"No segment files (*.txt) for Bonn set {name} in {folder}. The folder given "
                "to load_bonn must hold one sub-folder per set (Z, O, N, F, S)."
            )
        for file in files:
            data = np.loadtxt(file, dtype=np.float64)
            if data.ndim != 1 or len(data) != BONN_N_TIMES:
                raise ValueError(f"{file} holds {data.shape} values; a Bonn segment has "
                                 f"{BONN_N_TIMES} samples in one column.")
            X.append(data.astype(np.float32))
            labels.append(name)
            names.append(file.stem.upper())
    logger.info("Read %d Bonn segments (sets %s) from %s", len(X), "".join(sets), root)
    return SeizureSegments(X=np.stack(X)[:, None, :], sets=np.array(labels), names=names,
                           sfreq=BONN_SFREQ, source="bonn")


def make_seizure_stream(segments: SeizureSegments, *, n_seizures: int | None = None,
                        random_state: int | np.random.Generator | None = None
                        ) -> SeizureStream:
    """Join segments end to end into one stream, seizure segments between non-seizure ones.

    The non-ictal segments are shuffled and laid end to end; each ictal segment is inserted in
    a different gap between two non-ictal segments (never two seizures in a row, never at the
    very start or end), so every seizure is a separate event whose onset and offset are the
    segment boundaries. With real segments the result is a synthetic concatenation of real
    segments (abrupt junctions), not a continuous recording.

    Parameters
    ----------
    segments : SeizureSegments
        Segments to use (all of the same shape); ``segments.ictal`` marks the seizures.
    n_seizures : int | None
        Ictal segments to insert (the first ones after shuffling); all when None.
    random_state : int | Generator | None
        Seed of the order.

    Returns
    -------
    stream : SeizureStream
    """
    ictal = np.flatnonzero(segments.ictal)
    background = np.flatnonzero(~segments.ictal)
    if len(background) < 2:
        raise ValueError("make_seizure_stream needs at least 2 non-ictal segments, got "
                         f"{len(background)}.")
    rng = np.random.default_rng(random_state)
    ictal = rng.permutation(ictal)
    if n_seizures is not None:
        n_seizures = ensure_int(n_seizures, "n_seizures", minimum=0, maximum=len(ictal),
                                what="the ictal segments available")
        ictal = ictal[:n_seizures]
    if len(ictal) > len(background) - 1:
        raise ValueError(f"{len(ictal)} seizures need at least {len(ictal) + 1} non-ictal "
                         f"segments to separate them, got {len(background)}; pass a smaller "
                         "n_seizures.")
    background = rng.permutation(background)
    gaps = set(rng.choice(np.arange(1, len(background)), size=len(ictal), replace=False)
               .tolist())
    order, ictal_iter = [], iter(ictal)
    for i, seg in enumerate(background):
        if i in gaps:
            order.append(int(next(ictal_iter)))
        order.append(int(seg))
    n_times = segments.X.shape[-1]
    signal = np.concatenate([segments.X[i] for i in order], axis=-1).astype(np.float32)
    is_ictal = segments.ictal
    intervals = np.array([[k * n_times, (k + 1) * n_times] for k, i in enumerate(order)
                          if is_ictal[i]], dtype=float).reshape(-1, 2) / segments.sfreq
    kind = ("real Bonn segments" if segments.source == "bonn" else f"{segments.source} segments")
    description = (f"synthetic concatenation of {len(order)} {kind} ({len(ictal)} seizures), "
                   "joined end to end")
    return SeizureStream(signal=signal, sfreq=segments.sfreq, intervals=intervals,
                         segment_names=[segments.names[i] for i in order],
                         description=description)


def sliding_windows(signal: np.ndarray, sfreq: float, window_s: float, step_s: float,
                    intervals: np.ndarray | None = None, *, ictal_fraction: float = 0.5
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a stream into sliding windows, with labels and decision times.

    Parameters
    ----------
    signal : ndarray, shape (n_chans, n_samples) or (n_samples,)
        The stream.
    sfreq : float
        Sampling rate (Hz).
    window_s, step_s : float
        Window length and hop (seconds); rounded to whole samples.
    intervals : ndarray, shape (n_seizures, 2) | None
        Seizure onset/offset times (seconds); labels are all 0 when None.
    ictal_fraction : float
        A window is labelled 1 when at least this fraction of it lies inside a seizure, in
        (0, 1].

    Returns
    -------
    windows : ndarray, shape (n_windows, n_chans, n_window_samples)
        Copies of the windows (float32).
    labels : ndarray of int, shape (n_windows,)
        1 for seizure windows.
    times : ndarray, shape (n_windows,)
        End time of each window (seconds): the time its decision is available to a causal
        detector.

    Examples
    --------
    >>> w, y, t = sliding_windows(np.zeros(1000), 100.0, 2.0, 1.0, np.array([[4.0, 7.0]]))
    >>> w.shape, y.tolist(), t.tolist()
    ((9, 1, 200), [0, 0, 0, 1, 1, 1, 1, 0, 0], [2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    """
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    window_s = check_positive(window_s, "window_s", unit="seconds")
    step_s = check_positive(step_s, "step_s", unit="seconds")
    check_fraction(ictal_fraction, "ictal_fraction", allow_zero=False, allow_one=True)
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim == 1:
        signal = signal[None]
    if signal.ndim != 2:
        raise ValueError(f"signal must be (n_chans, n_samples) or (n_samples,), got shape "
                         f"{signal.shape}.")
    n_window = int(round(window_s * sfreq))
    n_step = max(1, int(round(step_s * sfreq)))
    n_samples = signal.shape[1]
    if n_window > n_samples:
        raise ValueError(f"window_s={window_s} s ({n_window} samples) is longer than the "
                         f"signal ({n_samples} samples, {n_samples / sfreq:.3g} s).")
    starts = np.arange(0, n_samples - n_window + 1, n_step)
    idx = starts[:, None] + np.arange(n_window)[None]
    windows = signal[:, idx].transpose(1, 0, 2).copy()
    t_start, t_end = starts / sfreq, (starts + n_window) / sfreq
    labels = np.zeros(len(starts), dtype=int)
    if intervals is not None:
        overlap = seizure_overlap_s(t_start, n_window / sfreq, intervals)
        labels = (overlap >= ictal_fraction * n_window / sfreq - 1e-9).astype(int)
    return windows, labels, t_end


def seizure_overlap_s(starts_s: np.ndarray, window_s: float, intervals: np.ndarray
                      ) -> np.ndarray:
    """Seconds of each window ``[start, start + window_s]`` that lie inside the seizures.

    Parameters
    ----------
    starts_s : ndarray, shape (n_windows,)
        Window start times (seconds).
    window_s : float
        Window length (seconds).
    intervals : ndarray, shape (n_seizures, 2)
        Seizure onset/offset times (seconds), not overlapping each other.

    Returns
    -------
    overlap : ndarray, shape (n_windows,)

    Examples
    --------
    >>> seizure_overlap_s(np.array([0.0, 3.0, 5.0]), 2.0, np.array([[4.0, 6.0]])).tolist()
    [0.0, 1.0, 1.0]
    """
    starts_s = np.asarray(starts_s, dtype=float)
    overlap = np.zeros(len(starts_s))
    for onset, offset in np.asarray(intervals, dtype=float).reshape(-1, 2):
        overlap += np.clip(np.minimum(starts_s + window_s, offset) - np.maximum(starts_s, onset),
                           0, None)
    return overlap


def make_seizure_eeg(n_segments: int = 40, *, n_times: int = 1024, sfreq: float = BONN_SFREQ,
                     ictal_ratio: float = 0.25, n_chans: int = 1,
                     random_state: int | np.random.Generator | None = None) -> SeizureSegments:
    """Seeded synthetic seizure segments (for tests and the no-data fallback of the recipe).

    Background: low-pass filtered Gaussian noise (1/f-like, about 40 units standard deviation).
    Ictal segments add a rhythmic spike-and-wave discharge: a 3-5 Hz sharp wave of 150-300 units
    with a random phase (the effect a detector must find), over the whole segment.

    Parameters
    ----------
    n_segments : int
        Number of segments.
    n_times : int
        Samples per segment.
    sfreq : float
        Sampling rate (Hz).
    ictal_ratio : float
        Fraction of ictal segments (rounded, at least one of each kind), in (0, 1).
    n_chans : int
        Channels per segment (the discharge is shared with random gains).
    random_state : int | Generator | None
        Seed.

    Returns
    -------
    segments : SeizureSegments
        Sets ``"Z"`` (non-ictal) and ``"S"`` (ictal), ``source="synthetic"``.
    """
    from scipy.signal import lfilter

    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    check_fraction(ictal_ratio, "ictal_ratio", allow_zero=False)
    ensure_int(n_segments, "n_segments", minimum=2)
    rng = np.random.default_rng(random_state)
    n_ictal = int(np.clip(round(ictal_ratio * n_segments), 1, n_segments - 1))
    is_ictal = np.zeros(n_segments, dtype=bool)
    is_ictal[rng.choice(n_segments, n_ictal, replace=False)] = True
    t = np.arange(n_times) / sfreq
    X = np.empty((n_segments, n_chans, n_times), dtype=np.float32)
    for i in range(n_segments):
        noise = lfilter([1.0], [1.0, -0.95], rng.standard_normal((n_chans, n_times)), axis=-1)
        x = 40.0 * noise / noise.std()
        if is_ictal[i]:
            freq = rng.uniform(3.0, 5.0)
            phase = 2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi)
            wave = np.sin(phase) ** 9 + 0.5 * np.sin(phase - 1.0)  # sharp spike + slow wave
            gains = rng.uniform(0.7, 1.3, (n_chans, 1))
            x = x + rng.uniform(150.0, 300.0) * gains * wave / np.abs(wave).max()
        X[i] = x
    sets = np.where(is_ictal, ICTAL_SET, "Z")
    names = [f"{s}{i + 1:03d}" for i, s in enumerate(sets)]
    return SeizureSegments(X=X, sets=sets, names=names, sfreq=sfreq, source="synthetic")


def subsample_segments(segments: SeizureSegments, n_per_set: int, *,
                       random_state: int | np.random.Generator | None = None
                       ) -> SeizureSegments:
    """Keep a seeded random ``n_per_set`` segments of every set (all of a smaller set).

    Parameters
    ----------
    segments : SeizureSegments
        The segments, e.g. from :func:`load_bonn`.
    n_per_set : int
        Segments kept per set (>= 1).
    random_state : int | Generator | None
        Seed of the choice (one permutation per set, sets in sorted order).

    Returns
    -------
    subset : SeizureSegments
        The kept segments in their original order.

    Examples
    --------
    >>> seg = make_seizure_eeg(10, n_times=64, ictal_ratio=0.3, random_state=0)
    >>> sub = subsample_segments(seg, 2, random_state=0)
    >>> len(sub), sorted(set(sub.sets.tolist()))
    (4, ['S', 'Z'])
    """
    n_per_set = ensure_int(n_per_set, "n_per_set", minimum=1, what="segments")
    rng = check_random_state(random_state)
    keep = np.concatenate([rng.permutation(np.flatnonzero(segments.sets == name))[:n_per_set]
                           for name in np.unique(segments.sets)])
    return segments.subset(np.sort(keep))


def split_segments(sets, *, test_fraction: float = 0.3, val_fraction: float = 0.1,
                   random_state: int | np.random.Generator | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split segments into training, validation and test sets, stratified by set.

    Within each set (in sorted order) the segments are permuted; the first ``round(test_fraction
    x n)`` (at least one) are test, the next ``round(val_fraction x n)`` (at least one)
    validation, the rest training.

    Parameters
    ----------
    sets : array of str, shape (n_segments,)
        Set of each segment (``SeizureSegments.sets``).
    test_fraction, val_fraction : float
        Fractions of each set held out for testing and for validation, in [0, 1).
    random_state : int | Generator | None
        Seed of the permutations.

    Returns
    -------
    train, val, test : ndarray of int
        Sorted segment indices.

    Examples
    --------
    >>> train, val, test = split_segments(np.array(["Z"] * 10 + ["S"] * 10), random_state=0)
    >>> len(train), len(val), len(test)
    (12, 2, 6)
    """
    sets = np.asarray(sets)
    if sets.ndim != 1:
        raise ValueError(f"sets must be 1-D (one set name per segment), got shape {sets.shape}.")
    test_fraction = check_fraction(test_fraction, "test_fraction")
    val_fraction = check_fraction(val_fraction, "val_fraction")
    rng = check_random_state(random_state)
    train: list[int] = []
    val: list[int] = []
    test: list[int] = []
    for name in np.unique(sets):
        idx = rng.permutation(np.flatnonzero(sets == name))
        n_test = max(1, int(round(test_fraction * len(idx))))
        n_val = max(1, int(round(val_fraction * len(idx))))
        test += idx[:n_test].tolist()
        val += idx[n_test:n_test + n_val].tolist()
        train += idx[n_test + n_val:].tolist()
    return tuple(np.sort(np.array(part, dtype=int)) for part in (train, val, test))


def segment_windows(segments: SeizureSegments, idx, n_window: int, *, hop: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut segments into overlapping windows, with labels and the segment of each window.

    Parameters
    ----------
    segments : SeizureSegments
        The segments.
    idx : sequence of int
        Segments to cut, in this order.
    n_window : int
        Window length (samples, >= 1, at most the segments' length).
    hop : int | None
        Hop between window starts (samples, >= 1); ``n_window // 2`` (50 % overlap) when None.

    Returns
    -------
    X : ndarray, shape (n_windows, n_chans, n_window)
        The windows (copies, in the segments' dtype and unit).
    y : ndarray of int, shape (n_windows,)
        1 for windows of seizure segments.
    owner : ndarray of int, shape (n_windows,)
        Index of the segment of each window.

    Examples
    --------
    >>> seg = make_seizure_eeg(4, n_times=100, random_state=0)
    >>> X, y, owner = segment_windows(seg, [2, 0], 40)
    >>> X.shape, owner.tolist()
    ((8, 1, 40), [2, 2, 2, 2, 0, 0, 0, 0])
    """
    n_window = ensure_int(n_window, "n_window", minimum=1, maximum=segments.X.shape[-1],
                          what="samples")
    hop = n_window // 2 if hop is None else ensure_int(hop, "hop", minimum=1, what="samples")
    hop = max(hop, 1)
    X, y, owner = [], [], []
    for i in idx:
        sig = segments.X[i]
        for start in range(0, sig.shape[-1] - n_window + 1, hop):
            X.append(sig[:, start:start + n_window])
            y.append(int(segments.ictal[i]))
            owner.append(i)
    if not X:
        raise ValueError("idx selects no segment: there are no windows to cut.")
    return np.stack(X), np.array(y), np.array(owner)


def prepare_recording(raw, channels: Sequence[str], *,
                      band_hz: tuple[float, float] | None = (0.5, 40.0),
                      sfreq: float | None = 128.0, unit_factor: float = 1e6
                      ) -> tuple[np.ndarray, float]:
    """Pick, band-pass, resample and scale one continuous recording.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording (e.g. one CHB-MIT file from :func:`bci.data.chbmit.load_chbmit_subject`);
        not modified.
    channels : sequence of str
        Channels to keep, in this order (e.g. :func:`bci.data.chbmit.common_eeg_channels`).
    band_hz : tuple of float | None
        Band-pass edges (Hz; MNE's FIR filter); the upper edge is lowered to 0.45 x the new rate
        when it is above. None: no filter.
    sfreq : float | None
        Rate to resample to (Hz); None (or the recording's own rate) keeps the rate.
    unit_factor : float
        Factor from MNE's volts to the returned unit (``1e6``: µV).

    Returns
    -------
    signal : ndarray, shape (n_chans, n_samples)
        The signal (float32) in volts x ``unit_factor``.
    sfreq : float
        Its sampling rate (Hz).
    """
    if sfreq is not None:
        sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    unit_factor = check_positive(unit_factor, "unit_factor")
    raw = raw.copy().pick(list(channels)).load_data(verbose="error")
    if band_hz is not None:
        low, high = band_hz
        high = min(high, 0.45 * (sfreq or raw.info["sfreq"]))
        raw.filter(low, high, verbose="error")
    if sfreq is not None and not np.isclose(raw.info["sfreq"], sfreq):
        raw.resample(sfreq, verbose="error")
    return (raw.get_data() * unit_factor).astype(np.float32), float(raw.info["sfreq"])


def choose_training_windows(durations_s: Sequence[float], intervals: Sequence[np.ndarray],
                            window_s: float, step_s: float, *, background_ratio: float = 4.0,
                            ictal_fraction: float = 0.5,
                            random_state: int | np.random.Generator | None = None
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Choose the training windows of continuous recordings, in seconds (before reading them).

    Windows of ``window_s`` start every ``step_s`` in each recording. Seizure windows lie at
    least ``ictal_fraction`` inside an annotated seizure; background windows overlap no seizure
    and are subsampled uniformly over the recordings (seeded) to ``background_ratio`` per
    seizure window; windows partly inside a seizure (less than ``ictal_fraction``) are left
    out.

    Parameters
    ----------
    durations_s : sequence of float
        Length of each recording (seconds).
    intervals : sequence of array, shape (n_seizures, 2)
        Seizure onsets/offsets of each recording (seconds).
    window_s, step_s : float
        Window length and hop (seconds).
    background_ratio : float
        Background windows kept per seizure window (> 0; all when there are fewer).
    ictal_fraction : float
        Fraction of a window inside a seizure that makes it a seizure window, in (0, 1].
    random_state : int | Generator | None
        Seed of the background subsample (one ``choice`` call).

    Returns
    -------
    recording : ndarray of int, shape (n_windows,)
        Position of each window's recording in ``durations_s``.
    starts_s : ndarray, shape (n_windows,)
        Start time of each window (seconds).
    labels : ndarray of int, shape (n_windows,)
        1 for seizure windows; all seizure windows come first (by recording, then time), then
        the kept background windows (by recording, then time).

    Examples
    --------
    >>> rec, starts, y = choose_training_windows([10.0], [np.array([[2.0, 5.0]])], 2.0, 1.0,
    ...                                          background_ratio=1.0, random_state=0)
    >>> starts[y == 1].tolist(), len(starts[y == 0])
    ([1.0, 2.0, 3.0, 4.0], 4)
    """
    window_s = check_positive(window_s, "window_s", unit="s")
    step_s = check_positive(step_s, "step_s", unit="s")
    background_ratio = check_positive(background_ratio, "background_ratio")
    ictal_fraction = check_fraction(ictal_fraction, "ictal_fraction", allow_zero=False,
                                    allow_one=True)
    if len(durations_s) != len(intervals):
        raise ValueError(f"durations_s ({len(durations_s)}) and intervals ({len(intervals)}) "
                         "need one entry per recording.")
    rng = check_random_state(random_state)
    seizure_wins: list[tuple[int, float]] = []
    background_wins: list[tuple[int, float]] = []
    for i, (duration_s, iv) in enumerate(zip(durations_s, intervals, strict=True)):
        starts_s = np.arange(0.0, duration_s - window_s + 1e-9, step_s)
        overlap = seizure_overlap_s(starts_s, window_s, iv)
        seizure_wins += [(i, s) for s in starts_s[overlap >= ictal_fraction * window_s - 1e-9]]
        background_wins += [(i, s) for s in starts_s[overlap == 0]]
    if not seizure_wins:
        raise ValueError(f"The {len(durations_s)} recording(s) hold no seizure window of "
                         f"{window_s} s (at least {ictal_fraction:g} of it inside a seizure); "
                         "use a shorter window_s or recordings with seizures.")
    n_background = min(len(background_wins), int(round(background_ratio * len(seizure_wins))))
    keep = np.sort(rng.choice(len(background_wins), size=n_background, replace=False))
    chosen = seizure_wins + [background_wins[k] for k in keep]
    labels = np.array([1] * len(seizure_wins) + [0] * n_background)
    return (np.array([i for i, _ in chosen], dtype=int), np.array([s for _, s in chosen]),
            labels)


def windows_at(signal: np.ndarray, sfreq: float, starts_s, window_s: float) -> np.ndarray:
    """Copy the windows of ``window_s`` that start at ``starts_s`` out of a signal.

    Parameters
    ----------
    signal : ndarray, shape (n_chans, n_samples)
        The signal.
    sfreq : float
        Its sampling rate (Hz).
    starts_s : array, shape (n_windows,)
        Window starts (seconds); rounded to the nearest sample.
    window_s : float
        Window length (seconds); rounded to whole samples.

    Returns
    -------
    windows : ndarray, shape (n_windows, n_chans, n_window)
        Copies, in the signal's dtype.

    Examples
    --------
    >>> windows_at(np.arange(10.0)[None], 2.0, [0.0, 2.5], 1.0).tolist()
    [[[0.0, 1.0]], [[5.0, 6.0]]]
    """
    signal = np.asarray(signal)
    if signal.ndim != 2:
        raise ValueError(f"signal must be (n_chans, n_samples), got shape {signal.shape}.")
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    window_s = check_positive(window_s, "window_s", unit="s")
    n_window = int(round(window_s * sfreq))
    starts = [int(round(s * sfreq)) for s in np.asarray(starts_s, dtype=float).ravel()]
    if starts and (min(starts) < 0 or max(starts) + n_window > signal.shape[1]):
        raise ValueError(f"A window of {window_s} s starting at {min(starts) / sfreq} .. "
                         f"{max(starts) / sfreq} s does not fit in the signal "
                         f"({signal.shape[1] / sfreq} s).")
    if not starts:
        return np.empty((0, signal.shape[0], n_window), dtype=signal.dtype)
    return np.stack([signal[:, s:s + n_window] for s in starts])
