"""DREAMS Sleep Spindles database: 8 excerpts of sleep EEG with expert spindle scorings.

The DREAMS Sleep Spindles database (Devuyst et al. 2011, University of Mons; CC BY-NC-ND)
holds 8 excerpts of 30 minutes of one central EEG channel (C3-A1 or CZ-A1) at 50, 100 or
200 Hz, with the sleep spindles scored by two experts (expert 2 scored excerpts 1-6 only).
Its files, as distributed::

    excerpt1.txt                      "[C3-A1]" then one sample (µV) a line
    Visual_scoring1_excerpt1.txt      "[vis1_Spindles/C3-A1]" then "onset  duration" (s) a line
    Visual_scoring2_excerpt1.txt      expert 2, same format
    ...

:func:`load_dreams_spindles` reads one excerpt as a :class:`DreamsExcerpt`: the signal in
volts, its rate, the channel and each expert's spindles as ``[onset, offset]`` intervals, plus
the reference used to score detectors: the union of both experts' spindles where there are two
(overlapping spindles merged), else expert 1's.

Where the files are looked for: the ``path`` argument, else ``MNE_DATASETS_DREAMS_PATH``
(environment variable or MNE config), else ``$MNE_DATA/dreams_spindles`` (``~/mne_data`` when
``MNE_DATA`` is not set). Nothing is downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np

from .._checks import check_positive, ensure_int
from .._config import dataset_path

__all__ = ["DREAMS_EXCERPTS", "DreamsExcerpt", "load_dreams_spindles", "merge_scorings"]

#: Excerpt numbers of the database.
DREAMS_EXCERPTS = tuple(range(1, 9))
_EXCERPT_S = 1800.0  # every excerpt lasts 30 min


@dataclass
class DreamsExcerpt:
    """One DREAMS excerpt and its expert spindle scorings.

    Attributes
    ----------
    number : int
        Excerpt number (1-8).
    signal : ndarray, shape (n_times,)
        The EEG channel (volts, float64).
    sfreq : float
        Sampling rate (Hz).
    ch_name : str
        Channel (``"C3-A1"`` or ``"CZ-A1"``).
    expert1 : ndarray, shape (n_spindles, 2)
        Expert 1's spindles, ``[onset, offset]`` (seconds from the first sample).
    expert2 : ndarray, shape (n_spindles, 2) | None
        Expert 2's spindles (excerpts 1-6), else None.
    reference : ndarray, shape (n_spindles, 2)
        The union of both experts' spindles (:func:`merge_scorings`), or expert 1's alone.
    """

    number: int
    signal: np.ndarray
    sfreq: float
    ch_name: str
    expert1: np.ndarray
    expert2: np.ndarray | None
    reference: np.ndarray

    @property
    def duration_s(self) -> float:
        """Length of the signal (seconds)."""
        return len(self.signal) / self.sfreq

    def crop(self, tmax: float) -> DreamsExcerpt:
        """Return the first ``tmax`` seconds, with the spindles that end within them.

        Parameters
        ----------
        tmax : float
            End (seconds, > 0); the signal keeps ``round(tmax * sfreq)`` samples.

        Returns
        -------
        excerpt : DreamsExcerpt
            A copy; this one is not modified.
        """
        tmax = check_positive(tmax, "tmax", unit="s")

        def keep(spindles):
            return None if spindles is None else spindles[spindles[:, 1] <= tmax].copy()

        return replace(self, signal=self.signal[:int(round(tmax * self.sfreq))].copy(),
                       expert1=keep(self.expert1), expert2=keep(self.expert2),
                       reference=keep(self.reference))


def merge_scorings(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Union of two spindle scorings: overlapping (or touching) spindles merged into one.

    Parameters
    ----------
    a, b : ndarray, shape (n, 2)
        Scorings as in the DREAMS files: ``[onset, duration]`` (seconds) a row.

    Returns
    -------
    union : ndarray, shape (n_merged, 2)
        ``[onset, duration]`` rows sorted by onset.

    Examples
    --------
    >>> merge_scorings(np.array([[1.0, 1.0], [5.0, 0.5]]), np.array([[1.5, 1.0]])).tolist()
    [[1.0, 1.5], [5.0, 0.5]]
    """
    ev = np.concatenate([np.asarray(a, dtype=float).reshape(-1, 2),
                         np.asarray(b, dtype=float).reshape(-1, 2)])
    if not len(ev):
        return ev
    ev = ev[np.argsort(ev[:, 0])]
    merged = [list(ev[0])]
    for onset, dur in ev[1:]:
        end = merged[-1][0] + merged[-1][1]
        if onset <= end:
            merged[-1][1] = max(end, onset + dur) - merged[-1][0]
        else:
            merged.append([onset, dur])
    return np.array(merged)


def _intervals(onset_duration: np.ndarray) -> np.ndarray:
    """``[onset, duration]`` rows to ``[onset, onset + duration]``."""
    return np.stack([onset_duration[:, 0], onset_duration[:, 0] + onset_duration[:, 1]], axis=1)


def load_dreams_spindles(excerpt: int, path: str | os.PathLike | None = None) -> DreamsExcerpt:
    """Read one excerpt of the DREAMS Sleep Spindles database.

    Parameters
    ----------
    excerpt : int
        Excerpt number, 1-8.
    path : path-like | None
        Folder of the database's text files; when None, ``MNE_DATASETS_DREAMS_PATH``
        (environment or MNE config), else ``$MNE_DATA/dreams_spindles``.

    Returns
    -------
    excerpt : DreamsExcerpt
        The signal in volts at its rate (``round(n_samples / 1800 s)``: 50, 100 or 200 Hz) and
        the expert scorings as ``[onset, offset]`` intervals.

    Raises
    ------
    FileNotFoundError
        When the excerpt's signal or expert 1's scoring is missing; the message names the
        folder and the variable to set.
    """
    number = ensure_int(excerpt, "excerpt", minimum=1, maximum=len(DREAMS_EXCERPTS))
    root = dataset_path("DREAMS", "dreams_spindles", path)
    signal_file = root / f"excerpt{number}.txt"
    scoring_files = [root / f"Visual_scoring{e}_excerpt{number}.txt" for e in (1, 2)]
    for file in (signal_file, scoring_files[0]):
        if not file.is_file():
            raise FileNotFoundError(
                f"DREAMS spindles excerpt {number}: {file.name} not found in {root}. Pass "
                "path= (the folder of the database's text files: excerpt1.txt, "
                "Visual_scoring1_excerpt1.txt, ...), or set MNE_DATASETS_DREAMS_PATH "
                "(environment or mne.set_config) to it.")
    with signal_file.open() as f:
        ch_name = f.readline().strip().strip("[]")
    signal = np.loadtxt(signal_file, skiprows=1) * 1e-6  # µV -> V
    sfreq = float(round(len(signal) / _EXCERPT_S))
    scorings = [np.loadtxt(f, skiprows=1, ndmin=2) if f.is_file() else None
                for f in scoring_files]
    reference = (scorings[0] if scorings[1] is None
                 else merge_scorings(scorings[0], scorings[1]))
    return DreamsExcerpt(number=number, signal=signal, sfreq=sfreq, ch_name=ch_name,
                         expert1=_intervals(scorings[0]),
                         expert2=None if scorings[1] is None else _intervals(scorings[1]),
                         reference=_intervals(reference))
