"""Windowed seizure detection: training, validation and test windows, and held-out streams.

Two protocols give one result, :class:`SeizureWindows`:

- :func:`prepare_bonn_windows`: Bonn-style segments (:func:`bci.data.seizure.load_bonn`, or
  seeded synthetic ones) split **by segment**, stratified by set
  (:func:`~bci.data.seizure.split_segments`), each segment cut into overlapping windows
  (:func:`~bci.data.seizure.segment_windows`); the held-out segments are also joined end to end
  into one stream (:func:`~bci.data.seizure.make_seizure_stream`): a **synthetic concatenation
  of segments**, not a continuous recording.
- :func:`prepare_chbmit_windows`: one CHB-MIT case split **by file**
  (:func:`bci.data.chbmit.split_files`); seizure and subsampled background windows of the
  training files (:func:`~bci.data.seizure.choose_training_windows`), a stratified validation
  part of them, and the held-out files as **real continuous recordings**.

Windows are float32 in units of ``unit_uv`` µV (100 µV by default: values of order 1).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._checks import check_positive, check_random_state, check_type, ensure_int
from .chbmit import common_eeg_channels, load_chbmit_subject, seizure_intervals, split_files
from .datamodule import split_train_val
from .seizure import (
    SeizureSegments,
    SeizureStream,
    choose_training_windows,
    make_seizure_stream,
    prepare_recording,
    segment_windows,
    split_segments,
    windows_at,
)

__all__ = ["CHBMIT_NOTE", "SeizureWindows", "prepare_bonn_windows", "prepare_chbmit_windows"]

logger = logging.getLogger(__name__)

#: How results on the held-out CHB-MIT files are to be described.
CHBMIT_NOTE = "real continuous CHB-MIT recordings"


@dataclass
class SeizureWindows:
    """Windows of a seizure-detection task, split for training, and held-out streams.

    Attributes
    ----------
    source : {"bonn", "synthetic", "chbmit"}
        Where the signals come from.
    description : str
        What the data are, to print beside every result (e.g. that a Bonn stream is a
        concatenation of segments).
    details : str
        One line on the data, the split and the window counts.
    sfreq : float
        Sampling rate of the windows (Hz).
    window_s : float
        Window length asked for (seconds); windows hold ``round(window_s * sfreq)`` samples.
    X_train, X_val : ndarray, shape (n_windows, n_chans, n_window)
        Training and validation (early stopping) windows, float32 in units of ``unit_uv`` µV.
    y_train, y_val : ndarray of int, shape (n_windows,)
        1 for seizure windows.
    X_test : ndarray, shape (n_windows, n_chans, n_window) | None
        Windows of the held-out segments (Bonn); None when the held-out data are continuous
        recordings (CHB-MIT), which are scored through ``recordings``.
    y_test : ndarray of int, shape (n_windows,) | None
        Labels of ``X_test``.
    test_owner : ndarray of int, shape (n_windows,) | None
        Segment of each test window, an index into ``segment_ictal``.
    segment_ictal : ndarray of bool, shape (n_segments,) | None
        Truth of every segment (for :func:`bci.evaluation.seizure_metrics.segment_scores`).
    X_sample : ndarray, shape (n_sample, n_chans, n_window)
        A seeded sample of held-out windows (e.g. for operation counts).
    recordings : list of SeizureStream
        The held-out continuous signals (float32, units of ``unit_uv`` µV) with their seizures:
        one joined stream (Bonn) or one per held-out file (CHB-MIT).
    info : dict
        JSON-serialisable facts: the split (``"split"``), and ``"stream"`` (Bonn) or the
        subject, channels, seizures and window counts (CHB-MIT).
    """

    source: str
    description: str
    details: str
    sfreq: float
    window_s: float
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    test_owner: np.ndarray | None
    segment_ictal: np.ndarray | None
    X_sample: np.ndarray
    recordings: list[SeizureStream]
    info: dict = field(default_factory=dict)

    @property
    def n_chans(self) -> int:
        """Channels per window."""
        return int(self.X_train.shape[1])

    @property
    def n_window(self) -> int:
        """Samples per window."""
        return int(self.X_train.shape[2])

    @property
    def unit(self) -> str:
        """What a held-out accuracy counts: ``"segment"`` (Bonn) or ``"window"`` (CHB-MIT)."""
        return "segment" if self.X_test is not None else "window"


def prepare_bonn_windows(segments: SeizureSegments, window_s: float, *,
                         test_fraction: float = 0.3, val_fraction: float = 0.1,
                         unit_uv: float = 100.0, n_sample: int = 64,
                         random_state: int | np.random.Generator | None = None
                         ) -> SeizureWindows:
    """Split segments by segment, cut them into windows, and join the test segments.

    Segments are split stratified by set (:func:`~bci.data.seizure.split_segments`), cut into
    windows with 50 % overlap (:func:`~bci.data.seizure.segment_windows`) and divided by
    ``unit_uv``. The test segments are joined end to end, seizures between non-seizure
    segments (:func:`~bci.data.seizure.make_seizure_stream`), into the one held-out stream.

    Parameters
    ----------
    segments : SeizureSegments
        E.g. :func:`~bci.data.seizure.load_bonn` (µV) or
        :func:`~bci.data.seizure.make_seizure_eeg`.
    window_s : float
        Window length (seconds, > 0; rounded to whole samples, at most a segment).
    test_fraction, val_fraction : float
        Fractions of each set held out for testing and for validation, in [0, 1).
    unit_uv : float
        Unit of the returned signals (µV, > 0): values are divided by it.
    n_sample : int
        Test windows drawn (without replacement; all when fewer) into ``X_sample``.
    random_state : int | Generator | None
        Seed of the split, of the stream's order and of ``X_sample``; an int seeds each of the
        three with it.

    Returns
    -------
    windows : SeizureWindows
        ``source`` is the segments' source; ``info`` holds the segment names of the split
        (``"split"``) and the stream's description, duration (s), seizure intervals (s) and
        segment order (``"stream"``).

    Examples
    --------
    >>> from bci.data.seizure import make_seizure_eeg
    >>> segs = make_seizure_eeg(20, n_times=400, ictal_ratio=0.25, random_state=0)
    >>> data = prepare_bonn_windows(segs, 1.0, random_state=0)
    >>> [len(data.info["split"][k]) for k in ("train", "val", "test")]
    [11, 3, 6]
    >>> data.X_train.shape[1:], len(data.recordings[0].intervals)
    ((1, 174), 2)
    """
    check_type(segments, SeizureSegments, "segments")
    window_s = check_positive(window_s, "window_s", unit="s")
    unit_uv = check_positive(unit_uv, "unit_uv", unit="µV")
    n_sample = ensure_int(n_sample, "n_sample", minimum=1, what="windows")
    sfreq = segments.sfreq
    n_window = int(round(window_s * sfreq))
    train_idx, val_idx, test_idx = split_segments(
        segments.sets, test_fraction=test_fraction, val_fraction=val_fraction,
        random_state=random_state)
    (X_tr, y_tr, _), (X_va, y_va, _), (X_te, y_te, owner) = (
        segment_windows(segments, idx, n_window) for idx in (train_idx, val_idx, test_idx))
    X_tr, X_va, X_te = X_tr / unit_uv, X_va / unit_uv, X_te / unit_uv
    stream = make_seizure_stream(segments.subset(test_idx), random_state=random_state)
    rng = check_random_state(random_state)
    X_sample = X_te[rng.choice(len(X_te), size=min(n_sample, len(X_te)), replace=False)]
    real = segments.source == "bonn"
    details = (f"{'real' if real else segments.source}; {len(segments)} segments (train "
               f"{len(train_idx)}, val {len(val_idx)}, test {len(test_idx)}); windows "
               f"{n_window} samples ({window_s} s): train {len(X_tr)}, val {len(X_va)}, test "
               f"{len(X_te)}")
    logger.info("Seizure windows: %s", details)
    return SeizureWindows(
        source=segments.source,
        description=("real Bonn segments; streams are concatenations of real segments" if real
                     else segments.source),
        details=details, sfreq=sfreq, window_s=window_s, X_train=X_tr, y_train=y_tr,
        X_val=X_va, y_val=y_va, X_test=X_te, y_test=y_te, test_owner=owner,
        segment_ictal=segments.ictal, X_sample=X_sample,
        recordings=[SeizureStream(signal=stream.signal / unit_uv, sfreq=sfreq,
                                  intervals=stream.intervals,
                                  segment_names=stream.segment_names,
                                  description=stream.description, name="stream")],
        info={"split": {"train": [segments.names[i] for i in train_idx],
                        "val": [segments.names[i] for i in val_idx],
                        "test": [segments.names[i] for i in test_idx]},
              "stream": {"description": stream.description,
                         "duration_s": stream.duration_s,
                         "intervals_s": stream.intervals.tolist(),
                         "segments": stream.segment_names}})


def prepare_chbmit_windows(subject: int, path: str | os.PathLike | None = None, *,
                           files: Sequence[str] | None = None, download: bool = True,
                           window_s: float = 4.0, step_s: float = 1.0,
                           test_fraction: float = 0.3, val_fraction: float = 0.15,
                           background_ratio: float = 4.0,
                           band_hz: tuple[float, float] | None = (0.5, 40.0),
                           sfreq: float | None = 128.0, unit_uv: float = 100.0,
                           n_sample: int = 64,
                           random_state: int | np.random.Generator | None = None
                           ) -> SeizureWindows:
    """Training windows and held-out continuous recordings of one CHB-MIT case, split by file.

    1. The case's EDF files (:func:`~bci.data.chbmit.load_chbmit_subject`) keep the EEG
       channels common to all (:func:`~bci.data.chbmit.common_eeg_channels`); each file is
       band-passed, resampled and scaled (:func:`~bci.data.seizure.prepare_recording`).
    2. Split by file (:func:`~bci.data.chbmit.split_files`): held out are the last
       ``test_fraction`` of the files with seizures and of the seizure-free files.
    3. Training windows (``window_s``, hop ``step_s``) of the training files only
       (:func:`~bci.data.seizure.choose_training_windows`: seizure windows at least half inside
       a seizure, background windows subsampled to ``background_ratio`` per seizure window); a
       stratified ``val_fraction`` of them validates
       (:func:`~bci.data.datamodule.split_train_val`).
    4. The held-out files are ``recordings``, whole; ``X_sample`` is drawn from their sliding
       windows.

    Parameters
    ----------
    subject : int
        Case number, 1 to 24.
    path, files, download
        See :func:`~bci.data.chbmit.load_chbmit_subject`.
    window_s, step_s : float
        Window length and hop (seconds, > 0).
    test_fraction : float
        Fraction of the files held out, in (0, 1).
    val_fraction : float
        Fraction of the training windows used for validation, in [0, 1).
    background_ratio : float
        Background training windows per seizure window (> 0).
    band_hz : tuple of float | None
        Band-pass edges (Hz); None: no filter.
    sfreq : float | None
        Rate to resample to (Hz); None keeps the files' rate.
    unit_uv : float
        Unit of the returned signals (µV, > 0).
    n_sample : int
        Held-out windows drawn into ``X_sample`` (without replacement; all when fewer).
    random_state : int | Generator | None
        Seed of the background subsample and of ``X_sample`` (one generator, in this order),
        and of the validation split.

    Returns
    -------
    windows : SeizureWindows
        ``source="chbmit"``, ``X_test=None``; ``info`` holds ``subject``, ``case``,
        ``channels``, ``sfreq``, ``split`` (file names), ``seizures_s`` (per file),
        ``test_hours``, ``n_test_seizures`` and ``training_windows`` (counts).

    Raises
    ------
    FileNotFoundError
        If the case's files are missing and cannot be downloaded (see
        :func:`~bci.data.chbmit.load_chbmit_subject`).
    ValueError
        If fewer than 2 files hold seizures, or no EEG channel is common to all files.
    """
    window_s = check_positive(window_s, "window_s", unit="s")
    step_s = check_positive(step_s, "step_s", unit="s")
    unit_uv = check_positive(unit_uv, "unit_uv", unit="µV")
    n_sample = ensure_int(n_sample, "n_sample", minimum=1, what="windows")
    raws = load_chbmit_subject(subject, path, files, download=download)
    case = f"chb{int(subject):02d}"
    names = [Path(r.filenames[0]).name for r in raws]
    channels = common_eeg_channels(raws)
    intervals = [seizure_intervals(r) for r in raws]
    train, test = split_files(intervals, test_fraction=test_fraction, names=names)

    def prepare(raw) -> tuple[np.ndarray, float]:
        return prepare_recording(raw, channels, band_hz=band_hz, sfreq=sfreq,
                                 unit_factor=1e6 / unit_uv)

    # training windows: chosen in seconds first, then read from each training file
    rng = check_random_state(random_state)
    owner, starts_s, labels = choose_training_windows(
        [raws[i].n_times / raws[i].info["sfreq"] for i in train], [intervals[i] for i in train],
        window_s, step_s, background_ratio=background_ratio, random_state=rng)
    X, y = [], []
    for k, i in enumerate(train):
        signal, rate = prepare(raws[i])
        X.append(windows_at(signal, rate, starts_s[owner == k], window_s))
        y.append(labels[owner == k])
    X, y = np.concatenate(X), np.concatenate(y)
    tr, va = split_train_val(y, val_fraction, stratify=True, random_state=random_state)

    recordings = []
    for i in test:
        signal, rate_test = prepare(raws[i])
        recordings.append(SeizureStream(
            signal=signal, sfreq=rate_test, intervals=intervals[i], segment_names=[],
            description=f"{names[i]}: real continuous CHB-MIT recording, "
                        f"{signal.shape[1] / rate_test:.0f} s, {len(intervals[i])} seizure(s)",
            name=names[i]))
    n_window = int(round(window_s * rate))
    n_step = max(1, int(round(step_s * rate)))
    pool = [(k, s) for k, rec in enumerate(recordings)
            for s in range(0, rec.signal.shape[1] - n_window + 1, n_step)]
    picks = rng.choice(len(pool), size=min(n_sample, len(pool)), replace=False)
    X_sample = np.stack([recordings[pool[p][0]].signal[:, pool[p][1]:pool[p][1] + n_window]
                         for p in picks])
    test_hours = sum(r.duration_s for r in recordings) / 3600
    n_test_seizures = sum(len(r.intervals) for r in recordings)
    details = (f"CHB-MIT {case}, {len(names)} files, {len(channels)} common EEG channels at "
               f"{rate:g} Hz; train files {[names[i] for i in train]}, held-out files "
               f"{[names[i] for i in test]} ({test_hours:.2f} h, {n_test_seizures} seizures); "
               f"windows {n_window} samples ({window_s} s): train {len(tr)}, val {len(va)} "
               f"({int(y.sum())} seizure windows in all)")
    logger.info("Seizure windows: %s", details)
    return SeizureWindows(
        source="chbmit",
        description=(f"{CHBMIT_NOTE} (case {case}, split by file; held-out files: "
                     f"{', '.join(names[i] for i in test)})"),
        details=details, sfreq=rate, window_s=window_s, X_train=X[tr], y_train=y[tr],
        X_val=X[va], y_val=y[va], X_test=None, y_test=None, test_owner=None,
        segment_ictal=None, X_sample=X_sample, recordings=recordings,
        info={"subject": int(subject), "case": case, "channels": channels, "sfreq": rate,
              "split": {"train": [names[i] for i in train], "test": [names[i] for i in test]},
              "seizures_s": {n: iv.tolist() for n, iv in zip(names, intervals, strict=True)},
              "test_hours": test_hours, "n_test_seizures": n_test_seizures,
              "training_windows": {"seizure": int(y.sum()), "background": int((y == 0).sum()),
                                   "val": len(va)}})
