"""Intracortical reaching data: binned spike counts with hand velocity, real and simulated.

Three sources give the same container, :class:`ReachingData` (a list of trials, each
``(n_chans, n_bins)`` spike counts and ``(2, n_bins)`` hand velocity, at ``sfreq = 1 / bin``):

- :func:`load_center_out`: a macaque M1 center-out session in Lee Miller's lab "TrialData"
  format (``center_out_data.mat``: 286 trials, 84 units, 50 ms bins; see
  ``../shared/data/README.md``, section 5a);
- :func:`load_primate_reaching`: the NeuroBench primate-reaching files (O'Doherty, Cardoso,
  Makin & Sabes, Zenodo 583331, ``indy_*.mat`` / ``loco_*.mat``, MATLAB 7.3 / HDF5), binned as
  NeuroBench's ``PrimateReaching`` does (4 ms steps, a 28 ms sliding count window, velocity as
  the gradient of the cursor position, segments between target changes), with
  :func:`neurobench_split` for its train/validation/test split of segments;
- :func:`make_reaching`: simulated center-out reaches with Poisson spike counts whose rates are
  a planted linear function of the hand velocity (a known decoder exists).

:func:`pad_trials` and :func:`make_windows` turn a :class:`ReachingData` into the tensors the
decoders of :mod:`bci.models.spiking.ibmi` take.

Paths: an explicit ``path``, else ``MNE_DATASETS_REACHING_PATH``, else ``<MNE_DATA>/reaching``
(environment or MNE config); nothing is downloaded and no configuration is written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from .._checks import (
    check_fraction,
    check_positive,
    check_random_state,
    ensure_int,
)
from .._config import config_help, dataset_path
from .._logging import logger

__all__ = ["ReachingData", "load_center_out", "load_primate_reaching", "neurobench_split",
           "make_reaching", "pad_trials", "make_windows"]

#: Step of the NeuroBench primate-reaching recordings (seconds; cursor sampled at 250 Hz).
NEUROBENCH_STEP_S = 0.004


@dataclass
class ReachingData:
    """Binned spike counts and hand velocity, trial by trial.

    Attributes
    ----------
    spikes : list of ndarray
        One ``(n_chans, n_bins)`` float array of spike counts per bin per trial (``n_bins`` may
        differ between trials).
    velocity : list of ndarray
        One ``(2, n_bins)`` float array per trial: hand (or cursor) velocity, x then y, in the
        source's units (``velocity_unit``).
    sfreq : float
        Bins per second (Hz), ``1 / bin width``.
    ch_names : list of str
        One name per unit or channel.
    trial_info : dict of str to ndarray
        Per-trial metadata (e.g. ``target_direction`` in rad), each of length ``n_trials``.
    kind : "real" | "simulated"
        Whether the counts were recorded or generated.
    source : str
        Where the data come from (file name, or the generator and its parameters).
    velocity_unit : str
        Unit of ``velocity`` as far as known.
    extras : dict
        Anything else a loader knows (planted tuning of simulated data, ...).
    """

    spikes: list[np.ndarray]
    velocity: list[np.ndarray]
    sfreq: float
    ch_names: list[str]
    trial_info: dict[str, np.ndarray] = field(default_factory=dict)
    kind: Literal["real", "simulated"] = "real"
    source: str = ""
    velocity_unit: str = "unknown"
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Check that trials, velocities and channel names agree."""
        if len(self.spikes) != len(self.velocity) or not self.spikes:
            raise ValueError(f"spikes and velocity must be non-empty lists of the same length "
                             f"(one array per trial), got {len(self.spikes)} and "
                             f"{len(self.velocity)}.")
        n_chans = self.spikes[0].shape[0]
        for i, (s, v) in enumerate(zip(self.spikes, self.velocity, strict=True)):
            if s.ndim != 2 or s.shape[0] != n_chans:
                raise ValueError(f"trial {i}: spikes must be (n_chans={n_chans}, n_bins), got "
                                 f"{s.shape}.")
            if v.shape != (2, s.shape[1]):
                raise ValueError(f"trial {i}: velocity must be (2, n_bins={s.shape[1]}), got "
                                 f"{v.shape}.")
        if len(self.ch_names) != n_chans:
            raise ValueError(f"ch_names has {len(self.ch_names)} names for {n_chans} channels.")

    @property
    def n_trials(self) -> int:
        """Number of trials."""
        return len(self.spikes)

    @property
    def n_chans(self) -> int:
        """Number of channels (units)."""
        return self.spikes[0].shape[0]

    @property
    def n_bins(self) -> int:
        """Total number of bins over all trials."""
        return int(sum(s.shape[1] for s in self.spikes))

    def subset(self, trials: Sequence[int] | np.ndarray) -> ReachingData:
        """Return the trials at the given indices (in that order), metadata included."""
        idx = np.asarray(trials, dtype=int)
        return ReachingData(
            spikes=[self.spikes[i] for i in idx], velocity=[self.velocity[i] for i in idx],
            sfreq=self.sfreq, ch_names=list(self.ch_names),
            trial_info={k: np.asarray(v)[idx] for k, v in self.trial_info.items()},
            kind=self.kind, source=self.source, velocity_unit=self.velocity_unit,
            extras=dict(self.extras))


def _resolve(path: str | os.PathLike | None, filename: str) -> Path:
    """Return the path of ``filename``, or raise ``FileNotFoundError`` naming the fix.

    ``path`` (the file or its folder), else the folder MNE_DATASETS_REACHING_PATH, else
    ``$MNE_DATA/reaching`` (see :func:`bci._config.dataset_path`).
    """
    found = dataset_path("REACHING", "reaching", path)
    if path is None or found.is_dir():
        found = found / filename
    if not found.is_file():
        raise FileNotFoundError(
            f"{filename} not found at {found}. Pass path= (the file or its folder), or "
            f"{config_help('REACHING')} (MNE_DATASETS_REACHING_PATH: the folder that holds it; "
            "MNE_DATA: the folder holding reaching/)."
        )
    return found


# ---------------------------------------------------------------------------------------------
# Center-out (TrialData format)
# ---------------------------------------------------------------------------------------------
def load_center_out(path: str | os.PathLike | None = None, *,
                    array: str = "M1") -> ReachingData:
    """Load a center-out reaching session stored in the "TrialData" MAT format.

    Parameters
    ----------
    path : path-like | None
        The ``.mat`` file, or its folder (file name ``center_out_data.mat``); None looks in
        ``MNE_DATASETS_REACHING_PATH`` then ``<MNE_DATA>/reaching``.
    array : str
        Prefix of the spike fields (``"M1"`` reads ``M1_spikes`` and ``M1_unit_guide``).

    Returns
    -------
    data : ReachingData
        One trial per struct element: counts ``(n_units, n_bins)`` and velocity ``(2, n_bins)``
        (``vel``), ``sfreq = 1 / bin_size``; ``trial_info`` holds ``target_direction`` (rad)
        and the 0-based bin indices ``idx_go_cue``, ``idx_movement_on``, ``idx_peak_speed``
        (MATLAB's 1-based indices minus one).
    """
    from scipy.io import loadmat

    file = _resolve(path, "center_out_data.mat")
    mat = loadmat(file, simplify_cells=True)
    if "trial_data" not in mat:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{file} has no 'trial_data' struct (found {found}); it is not a "
                         "TrialData file.")
    trials = mat["trial_data"]
    trials = [trials] if isinstance(trials, dict) else list(trials)
    key = f"{array}_spikes"
    if key not in trials[0]:
        fields = [k for k in trials[0] if k.endswith("_spikes")]
        raise ValueError(f"{file} has no {key!r} field; spike fields present: {fields}.")
    bins = {float(t["bin_size"]) for t in trials}
    if len(bins) != 1:
        raise ValueError(f"{file}: trials have different bin sizes {sorted(bins)} (s).")
    bin_s = bins.pop()
    spikes = [np.asarray(t[key], dtype=np.float64).T for t in trials]
    velocity = [np.asarray(t["vel"], dtype=np.float64).T for t in trials]
    guide = np.asarray(trials[0].get(f"{array}_unit_guide", np.zeros((spikes[0].shape[0], 0))))
    if guide.ndim == 2 and guide.shape[1] == 2:
        ch_names = [f"{array}_e{int(e)}_u{int(u)}" for e, u in guide]
    else:
        ch_names = [f"{array}_{i}" for i in range(spikes[0].shape[0])]
    info = {"target_direction": np.array([float(t["target_direction"]) for t in trials])}
    for name in ("idx_go_cue", "idx_movement_on", "idx_peak_speed"):
        if name in trials[0]:
            info[name] = np.array([int(t[name]) - 1 for t in trials])
    logger.info("Loaded %d trials, %d units, %.0f ms bins from %s", len(trials), len(ch_names),
                bin_s * 1e3, file)
    return ReachingData(spikes, velocity, 1.0 / bin_s, ch_names, info, kind="real",
                        source=file.name, velocity_unit="cm/s (presumably)")


# ---------------------------------------------------------------------------------------------
# NeuroBench primate reaching (O'Doherty et al., MATLAB 7.3 / HDF5)
# ---------------------------------------------------------------------------------------------
def _segment_bounds(target_pos: np.ndarray) -> np.ndarray:
    """Return the ``(n_segments, 2)`` start/stop sample indices of the reaching segments.

    A segment lies between two changes of the target position ``(2, n_samples)`` (NeuroBench's
    ``get_flag_index`` + ``split_into_segments``).
    """
    diff = np.diff(target_pos, axis=1, append=target_pos[:, -1:])
    flags = np.nonzero(np.abs(diff).sum(axis=0))[0]
    edges = np.concatenate([[0], flags, [target_pos.shape[1]]])
    return np.stack([edges[:-1], edges[1:]], axis=1)


def _spike_times(h5, ref) -> np.ndarray:
    obj = h5[ref]
    if obj.attrs.get("MATLAB_empty", 0):
        return np.zeros(0)
    return np.asarray(obj[()], dtype=np.float64).ravel()


def load_primate_reaching(path: str | os.PathLike, *, bin_width_s: float = 0.028,
                          stride_s: float = NEUROBENCH_STEP_S,
                          sort_units: bool = False) -> ReachingData:
    """Load a NeuroBench primate-reaching session (``indy_*.mat``, ``loco_*.mat``).

    The processing is NeuroBench's ``PrimateReaching``: spike times are marked on a 4 ms grid
    (a unit spiking at least once in a 4 ms step counts 1), units are merged per channel unless
    ``sort_units`` (a channel is active if any of its units is), counts are summed over a sliding
    window of ``bin_width_s``, and the velocity is the gradient of
    ``cursor_pos`` per 4 ms step (``numpy.gradient``, position units per step). Segments between
    changes of ``target_pos`` become the trials; every ``stride_s / 0.004``-th sample is kept.
    As in NeuroBench, the count at cursor sample ``t_k`` covers the 4 ms steps whose spikes fall
    in ``[t_k - bin_width_s - 0.004, t_k - 0.004)`` (its histogram marks a step at its upper
    edge, and the window ends one step before ``t_k``).

    Parameters
    ----------
    path : path-like
        The ``.mat`` file (MATLAB 7.3, read with ``h5py``): datasets ``spikes`` (object
        references, ``(n_units, n_chans)``), ``t`` (s), ``cursor_pos`` and ``target_pos``
        (``(2, n_samples)``).
    bin_width_s : float
        Count window (seconds), a multiple of 4 ms; NeuroBench's default 0.028.
    stride_s : float
        Step between kept samples (seconds), a multiple of 4 ms; NeuroBench's default 0.004.
    sort_units : bool
        Keep sorted units apart (NeuroBench's ``spike_sorting=True``; empty units are dropped).

    Returns
    -------
    data : ReachingData
        ``sfreq = 1 / stride_s``; ``trial_info["segment_bounds"]`` holds each trial's
        ``(start, stop)`` indices on the 4 ms grid.
    """
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - h5py ships with the scientific stack
        raise ImportError("Reading NeuroBench primate-reaching files needs h5py: "
                          "pip install h5py") from err
    check_positive(bin_width_s, "bin_width_s", unit="seconds")
    check_positive(stride_s, "stride_s", unit="seconds")
    ratio = int(round(bin_width_s / NEUROBENCH_STEP_S))
    step = int(round(stride_s / NEUROBENCH_STEP_S))
    for value, n, name in ((bin_width_s, ratio, "bin_width_s"), (stride_s, step, "stride_s")):
        if n < 1 or not np.isclose(n * NEUROBENCH_STEP_S, value):
            raise ValueError(f"{name} must be a positive multiple of 0.004 s (the recording "
                             f"step), got {value!r}.")
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(f"{file} not found; NeuroBench's primate-reaching files are on "
                                "Zenodo (record 583331).")
    with h5py.File(file, "r") as h5:
        for key in ("spikes", "t", "cursor_pos", "target_pos"):
            if key not in h5:
                raise ValueError(f"{file} has no {key!r} dataset; not a NeuroBench "
                                 f"primate-reaching file (found {sorted(h5.keys())}).")
        refs = h5["spikes"][()]
        t = np.asarray(h5["t"][()], dtype=np.float64).ravel()
        cursor = np.asarray(h5["cursor_pos"][()], dtype=np.float64)
        target = np.asarray(h5["target_pos"][()], dtype=np.float64)
        if cursor.shape[0] != 2:
            cursor, target = cursor.T, target.T
        # 4 ms grid starting one count window before the first sample (NeuroBench's new_t)
        edges = np.arange(t[0] - bin_width_s, t[-1], NEUROBENCH_STEP_S)
        n_units, n_chans = refs.shape
        marks = np.zeros((n_units, n_chans, len(edges)), dtype=bool)
        for u in range(n_units):
            for c in range(n_chans):
                counts, _ = np.histogram(_spike_times(h5, refs[u, c]), bins=edges)
                # a spike in [edges[j], edges[j+1]) is marked at the step ending at edges[j+1]
                marks[u, c, np.nonzero(counts)[0] + 1] = True
    if sort_units:
        flat = marks.transpose(1, 0, 2).reshape(n_chans * n_units, -1)
        keep = flat.any(axis=1)
        grid = flat[keep].astype(np.float64)
        ch_names = [f"ch{c}_u{u}" for c in range(n_chans) for u in range(n_units)]
        ch_names = [n for n, k in zip(ch_names, keep, strict=True) if k]
    else:
        grid = marks.any(axis=0).astype(np.float64)
        ch_names = [f"ch{c}" for c in range(n_chans)]
    # sliding sum over `ratio` steps, "valid" (NeuroBench's convolve2d with a row of ones)
    cums = np.cumsum(np.pad(grid, ((0, 0), (1, 0))), axis=1)
    counts = cums[:, ratio:] - cums[:, :-ratio]
    n_samples = min(counts.shape[1], t.size)
    counts = counts[:, :n_samples]
    velocity = np.gradient(cursor[:, :n_samples], axis=1)
    bounds = _segment_bounds(target[:, :n_samples])
    spikes, vel, kept = [], [], []
    for start, stop in bounds:
        idx = np.arange(start, stop, step)
        if idx.size:
            spikes.append(counts[:, idx])
            vel.append(velocity[:, idx])
            kept.append((start, stop))
    logger.info("Loaded %d segments, %d channels from %s", len(spikes), len(ch_names), file)
    return ReachingData(spikes, vel, 1.0 / stride_s, ch_names,
                        {"segment_bounds": np.array(kept).reshape(-1, 2)}, kind="real",
                        source=file.name, velocity_unit="position units per 4 ms step")


def neurobench_split(n_segments: int, train_ratio: float = 0.8
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split segments chronologically, as NeuroBench does (``split_num=1``).

    The first ``floor(train_ratio * n)`` for training, then half of the rest (floored) for
    validation, the remainder for testing.

    Examples
    --------
    >>> [s.tolist() for s in neurobench_split(10)]
    [[0, 1, 2, 3, 4, 5, 6, 7], [8], [9]]
    """
    n_segments = ensure_int(n_segments, "n_segments", minimum=1)
    check_fraction(train_ratio, "train_ratio", allow_one=True)
    n_train = int(np.floor(train_ratio * n_segments))
    n_val = (n_segments - n_train) // 2
    idx = np.arange(n_segments)
    return idx[:n_train], idx[n_train:n_train + n_val], idx[n_train + n_val:]


# ---------------------------------------------------------------------------------------------
# Simulated reaching
# ---------------------------------------------------------------------------------------------
def make_reaching(n_trials: int = 64, n_chans: int = 32, *, sfreq: float = 20.0,
                  trial_s: float = 2.0, n_targets: int = 8, peak_speed: float = 20.0,
                  base_rate_hz: float = 10.0, modulation_hz: float = 1.0,
                  random_state: int | np.random.Generator | None = None) -> ReachingData:
    """Simulate center-out reaches with spike counts linearly tuned to the hand velocity.

    Each trial rests, then reaches towards one of ``n_targets`` directions with a bell-shaped
    (minimum-jerk) speed profile peaking at ``peak_speed`` (cm/s) at a random onset. Unit ``i``
    fires Poisson counts per bin with rate ``max(0, b_i + w_i . v(t)) / sfreq`` where ``b_i`` is
    ``base_rate_hz`` times a random factor in [0.5, 1.5] and ``w_i`` a random preferred direction
    scaled so a reach at peak speed changes the rate by about ``modulation_hz * peak_speed`` Hz
    (cosine tuning). The planted tuning is returned in ``extras`` (``"weights"`` ``(n_chans,
    2)`` in Hz per cm/s, ``"baseline_hz"`` ``(n_chans,)``).

    Parameters
    ----------
    n_trials, n_chans : int
        Trials and units.
    sfreq : float
        Bins per second (20 Hz: 50 ms bins).
    trial_s : float
        Trial duration (seconds).
    n_targets : int
        Reach directions, evenly spaced.
    peak_speed : float
        Peak hand speed (cm/s).
    base_rate_hz, modulation_hz : float
        Mean baseline rate, and rate change per cm/s of velocity along the preferred direction.
    random_state : int | numpy.random.Generator | None
        Seed or generator.

    Returns
    -------
    data : ReachingData
        ``kind="simulated"``; ``trial_info["target_direction"]`` in rad.
    """
    ensure_int(n_trials, "n_trials", minimum=1)
    ensure_int(n_chans, "n_chans", minimum=1, what="units")
    ensure_int(n_targets, "n_targets", minimum=1, what="reach directions")
    check_positive(sfreq, "sfreq", unit="Hz")
    check_positive(trial_s, "trial_s", unit="seconds")
    check_positive(peak_speed, "peak_speed", unit="cm/s")
    check_positive(base_rate_hz, "base_rate_hz", unit="Hz")
    rng = check_random_state(random_state)
    n_bins = int(round(trial_s * sfreq))
    if n_bins < 8:
        raise ValueError(f"trial_s * sfreq = {n_bins} bins; a trial needs >= 8 bins.")
    baseline = base_rate_hz * rng.uniform(0.5, 1.5, n_chans)
    preferred = rng.uniform(0, 2 * np.pi, n_chans)
    gain = modulation_hz * rng.uniform(0.5, 1.5, n_chans)
    weights = gain[:, None] * np.stack([np.cos(preferred), np.sin(preferred)], axis=1)
    directions = rng.integers(0, n_targets, n_trials) * 2 * np.pi / n_targets
    t = np.arange(n_bins) / sfreq
    spikes, velocity = [], []
    for direction in directions:
        duration = rng.uniform(0.4, 0.6) * trial_s
        onset = rng.uniform(0.1, 0.9 * trial_s - duration)
        tau = np.clip((t - onset) / duration, 0.0, 1.0)
        # minimum-jerk speed profile, normalised to peak at peak_speed (at tau = 0.5)
        speed = peak_speed * 16.0 * tau ** 2 * (1 - tau) ** 2
        vel = np.stack([np.cos(direction) * speed, np.sin(direction) * speed])
        rate = np.maximum(baseline[:, None] + weights @ vel, 0.0)
        spikes.append(rng.poisson(rate / sfreq).astype(np.float64))
        velocity.append(vel)
    return ReachingData(
        spikes, velocity, float(sfreq), [f"unit{i}" for i in range(n_chans)],
        {"target_direction": directions}, kind="simulated",
        source=f"make_reaching(n_trials={n_trials}, n_chans={n_chans}, sfreq={sfreq})",
        velocity_unit="cm/s", extras={"weights": weights, "baseline_hz": baseline})


# ---------------------------------------------------------------------------------------------
# Tensors for the decoders
# ---------------------------------------------------------------------------------------------
def pad_trials(data: ReachingData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stack trials into zero-padded arrays (trials keep their start at bin 0).

    Returns
    -------
    X : ndarray, shape (n_trials, n_chans, max_bins)
        Spike counts, float32, zero after each trial's end.
    Y : ndarray, shape (n_trials, 2, max_bins)
        Velocity, float32, zero after each trial's end.
    mask : ndarray of bool, shape (n_trials, max_bins)
        True on real bins.
    """
    n_max = max(s.shape[1] for s in data.spikes)
    X = np.zeros((data.n_trials, data.n_chans, n_max), dtype=np.float32)
    Y = np.zeros((data.n_trials, 2, n_max), dtype=np.float32)
    mask = np.zeros((data.n_trials, n_max), dtype=bool)
    for i, (s, v) in enumerate(zip(data.spikes, data.velocity, strict=True)):
        X[i, :, :s.shape[1]] = s
        Y[i, :, :s.shape[1]] = v
        mask[i, :s.shape[1]] = True
    return X, Y, mask


def make_windows(data: ReachingData, n_times: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Causal windows of ``n_times`` bins ending at every bin, zero-padded before each trial.

    Returns
    -------
    X : ndarray, shape (n_bins_total, n_chans, n_times)
        Window ``k`` holds the counts of bins ``k - n_times + 1 .. k`` of its trial (float32).
    y : ndarray, shape (n_bins_total, 2)
        Velocity at the window's last bin.
    groups : ndarray of int, shape (n_bins_total,)
        Trial index of each window (for grouped cross-validation).
    """
    n_times = ensure_int(n_times, "n_times", minimum=1, what="bins")
    Xs, ys, groups = [], [], []
    for i, (s, v) in enumerate(zip(data.spikes, data.velocity, strict=True)):
        padded = np.pad(s, ((0, 0), (n_times - 1, 0))).astype(np.float32)
        win = np.lib.stride_tricks.sliding_window_view(padded, n_times, axis=1)  # (C, T, n)
        Xs.append(np.ascontiguousarray(win.transpose(1, 0, 2)))
        ys.append(v.T.astype(np.float32))
        groups.append(np.full(s.shape[1], i))
    return np.concatenate(Xs), np.concatenate(ys), np.concatenate(groups)
