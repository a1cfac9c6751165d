"""Seizure EEG: the Bonn segments, continuous streams built from them, sliding windows, and a
synthetic generator.

- :func:`load_bonn` reads the Bonn epilepsy EEG (Andrzejak et al. 2001, Phys. Rev. E 64,
  061907): five sets of 100 single-channel segments of 4,097 samples (23.6 s) at 173.61 Hz.
  Z and O: scalp EEG of healthy volunteers (eyes open, eyes closed); N and F: intracranial,
  seizure-free intervals (opposite hemisphere, epileptogenic zone); S: intracranial, seizures.
- :func:`make_seizure_stream` joins segments end to end into one continuous signal with known
  seizure intervals. With real segments the stream is a **synthetic concatenation of real
  segments**, not a continuous recording: the junctions are abrupt and the seizures start at
  segment boundaries. Say so wherever its results are reported.
- :func:`sliding_windows` cuts a stream into windows with labels and decision times.
- :func:`make_seizure_eeg`: seeded synthetic segments (coloured background noise; ictal segments
  add rhythmic high-amplitude spike-and-wave bursts), so tests run without the real data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import check_fraction, check_positive, ensure_int

__all__ = ["BONN_SETS", "BONN_SFREQ", "SeizureSegments", "SeizureStream", "load_bonn",
           "make_seizure_eeg", "make_seizure_stream", "seizure_overlap_s", "sliding_windows"]

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
        """The segments at ``idx`` (in that order)."""
        idx = np.asarray(idx, dtype=int)
        return SeizureSegments(X=self.X[idx], sets=self.sets[idx],
                               names=[self.names[i] for i in idx], sfreq=self.sfreq,
                               source=self.source, extras=dict(self.extras))

    def __len__(self) -> int:
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
        The segments the stream was built from, in order.
    description : str
        How it was made (a concatenation of segments; real or synthetic).
    """

    signal: np.ndarray
    sfreq: float
    intervals: np.ndarray
    segment_names: list[str]
    description: str

    @property
    def duration_s(self) -> float:
        """Length of the stream (seconds)."""
        return self.signal.shape[1] / self.sfreq


def _bonn_root(path: str | os.PathLike | None) -> Path:
    """Return the folder of the Bonn sets, or raise ``FileNotFoundError`` naming the fix.

    ``path``, else MNE_DATASETS_BONN_PATH, else ``$MNE_DATA/bonn_epilepsy`` (see
    :func:`bci._config.dataset_path`).
    """
    from .._config import config_help, dataset_path

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
