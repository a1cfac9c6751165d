"""Benchmark cells, computed in this process or on a Dask cluster, with a per-cell cache.

A benchmark is split into *cells*: one MOABB evaluation of one pipeline on one subject
(within- and cross-session evaluations, which MOABB runs one subject at a time, so a cell's rows
equal those of the whole run) or on all the subjects (cross-subject, whose folds need every
subject: one cell per pipeline). A :class:`Cell` holds names and parameters only (the dataset and
paradigm objects, a registered pipeline's name); the process that computes it loads its own
subject, builds the pipeline, runs MOABB with one BLAS thread and returns MOABB's result rows.

Dask is the engine (``dask.distributed``): :func:`run_cells` submits one task per cell with
``retries=1`` (a cell whose worker died is run once more, then reported), collects failed cells
with their tracebacks while the others finish, and caches each finished cell
(:mod:`bci.evaluation.cache`) from whichever side computed it, so an interrupted run resumes.
Without a client the same cells run here, one after the other, through the same code.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path
from typing import Any

from .._checks import check_type, parse_spec
from .._logging import logger
from . import cache as _cache

#: Worker deaths a cell survives on a LocalCluster: run once more, then reported as failed.
ALLOWED_FAILURES = 1
#: ``pip install`` line of the Dask extra.
PIP_DASK = "pip install 'bci[dask]'"


@dataclass(frozen=True)
class Cell:
    """One MOABB evaluation of one pipeline on one subject (or on all, cross-subject).

    Attributes
    ----------
    dataset : moabb.datasets.base.BaseDataset
        The dataset object (names, URLs, event codes: no data); its ``subject_list`` is set to
        ``subjects`` where the cell runs.
    paradigm : moabb.paradigms.base.BaseParadigm
        The paradigm the pipeline needs.
    epochs_input : bool
        Whether the pipeline takes MNE epochs (MOABB ``return_epochs``).
    pipeline : str
        The pipeline's name (a registered name, or the key of a user-given estimator).
    subjects : tuple of int
        The subject(s) evaluated.
    evaluation : str
        ``"within-session"``, ``"cross-session"`` or ``"cross-subject"``.
    random_state : int | None
        Seed of MOABB's folds and the inner grid searches.
    estimator : object | None
        A user-given (unfitted) estimator; None for a registered pipeline, built where the
        cell runs.
    n_jobs : int
        Parallel jobs of MOABB's evaluation inside the cell.
    blas_threads : int | None
        BLAS threads inside the cell (``threadpoolctl``); None leaves the default.
    """

    dataset: Any
    paradigm: Any
    epochs_input: bool
    pipeline: str
    subjects: tuple[int, ...]
    evaluation: str
    random_state: int | None
    estimator: Any = None
    n_jobs: int = 1
    blas_threads: int | None = 1

    def build_pipeline(self):
        """Return the estimator this cell evaluates (a registered pipeline is built here)."""
        if self.estimator is not None:
            return self.estimator
        from ..pipelines.registry import get_pipeline

        return get_pipeline(self.pipeline, random_state=self.random_state,
                            scoring=self.paradigm.scoring)

    def cache_key(self) -> dict[str, Any]:
        """Return the cache key: everything that decides this cell's rows, and the versions."""
        return _cache.cell_key(
            dataset={"code": self.dataset.code, "object": self.dataset},
            paradigm=self.paradigm, epochs_input=self.epochs_input,
            pipeline={"name": self.pipeline, "definition": self.build_pipeline()},
            subjects=list(self.subjects), evaluation=self.evaluation,
            random_state=self.random_state)

    def label(self) -> str:
        """``"Kalunga2016 subject 3 SSVEP_TS+LR"`` (for messages)."""
        who = ",".join(map(str, self.subjects))
        return (f"{self.dataset.code} subject{'s' if len(self.subjects) > 1 else ''} {who} "
                f"{self.pipeline}")


@dataclass
class CellFailure:
    """A cell that raised: the cell, the error text and its traceback (from the worker)."""

    cell: Cell
    error: str
    traceback: str


class CellsFailedError(RuntimeError):
    """Some benchmark cells failed; the others finished (and are cached).

    Attributes
    ----------
    failures : list of CellFailure
    results : pandas.DataFrame | None
        The rows of the cells that finished.
    """

    def __init__(self, failures: list[CellFailure], results=None):
        self.failures = failures
        self.results = results
        lines = [f"{len(failures)} benchmark cell(s) failed; the others finished"
                 " (their results are cached: fix the cause and rerun to compute only these):"]
        for f in failures:
            lines.append(f"- {f.cell.label()}: {f.error}\n{f.traceback.rstrip()}")
        super().__init__("\n".join(lines))


class SubjectDataMemo:
    """The data of the last few subjects that a MOABB paradigm loaded in this process.

    Every pipeline of a benchmark that needs the same paradigm evaluates the same epochs of a
    subject: the three filter-bank SSVEP pipelines, for instance, each read and band-pass
    filter the same recording. :meth:`wrap` returns a copy of a paradigm whose ``get_data``
    looks the request up here first: the key is everything ``get_data`` is given (dataset and
    its parameters, subjects, paradigm and its parameters, processing pipelines, epochs or
    arrays...) as :func:`bci.evaluation.cache.describe` writes it, so a hit returns what MOABB
    would have computed; every call, hit or miss, returns fresh copies, so an evaluation that
    changes its data in place cannot reach the stored one. The least recently used entry is
    dropped beyond ``max_entries``.

    One instance, :data:`SUBJECT_DATA`, serves this process (a Dask worker keeps its own).

    Parameters
    ----------
    max_entries : int
        Subjects' data kept (one entry per subject and paradigm); 0 stores nothing.
    """

    def __init__(self, max_entries: int = 2):
        from .._checks import ensure_int

        self.max_entries = ensure_int(max_entries, "max_entries")
        if self.max_entries < 0:
            raise ValueError(f"max_entries must be an integer >= 0 (subjects kept), got "
                             f"{max_entries}.")
        self._entries: OrderedDict[str, tuple] = OrderedDict()
        self._lock = threading.Lock()
        self._tally = threading.local()
        self.hits = 0
        self.misses = 0

    @contextmanager
    def counting(self):
        """Count the hits and misses of this thread's lookups inside the ``with`` block.

        Yields
        ------
        tally : dict
            ``{"hits": int, "misses": int}``, updated as this thread looks data up (other
            threads' lookups are not counted in it; :attr:`hits` and :attr:`misses` count all).
        """
        tally = {"hits": 0, "misses": 0}
        outer = getattr(self._tally, "current", None)
        self._tally.current = tally
        try:
            yield tally
        finally:
            self._tally.current = outer

    def clear(self) -> None:
        """Drop every stored subject (the hit and miss counts go on)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        """Return the number of stored entries."""
        return len(self._entries)

    def wrap(self, paradigm: Any) -> Any:
        """Return a shallow copy of ``paradigm`` whose ``get_data`` goes through this memo.

        ``paradigm`` itself is not modified.
        """
        import copy

        wrapped = copy.copy(paradigm)
        load = paradigm.get_data  # the class's own (MOABB's, or bci's band fix)
        described = _cache.describe(paradigm)

        def get_data(dataset, subjects=None, **kwargs):
            key = _cache.key_hash({"paradigm": described, "dataset": _cache.describe(dataset),
                                   "subjects": _cache.describe(subjects),
                                   "kwargs": _cache.describe(kwargs)})
            with self._lock:
                stored = self._entries.get(key)
                if stored is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                else:
                    self.misses += 1
            tally = getattr(self._tally, "current", None)
            if tally is not None:
                tally["misses" if stored is None else "hits"] += 1
            if stored is None:
                stored = load(dataset, subjects=subjects, **kwargs)
                if self.max_entries:
                    with self._lock:
                        self._entries[key] = stored
                        while len(self._entries) > self.max_entries:
                            self._entries.popitem(last=False)
            return _copied(stored)

        get_data.__doc__ = load.__doc__
        wrapped.get_data = get_data
        return wrapped


def _copied(data):
    """Copy each item of what ``get_data`` returned (arrays, MNE epochs, data frames)."""
    import numpy as np

    if isinstance(data, (tuple, list)):
        return type(data)(_copied(item) for item in data)
    if isinstance(data, np.ndarray):
        return data.copy()
    copy_method = getattr(data, "copy", None)
    return copy_method() if callable(copy_method) else data


#: This process's :class:`SubjectDataMemo` (each Dask worker process has its own).
SUBJECT_DATA = SubjectDataMemo()


def compute_cell(cell: Cell, cache_dir: str | None = None,
                 key: dict | None = None) -> list[dict[str, Any]]:
    """Compute one cell where this function runs (here or on a Dask worker); cache its rows.

    Parameters
    ----------
    cell : Cell
        What to evaluate; the subject is loaded here.
    cache_dir : str | None
        Cache folder; the rows are written there (atomically) when given and writable here.
    key : dict | None
        The cell's cache key (computed by the client, so both sides agree).

    Returns
    -------
    rows : list of dict
        MOABB's result rows, as plain Python values.
    """
    from threadpoolctl import threadpool_limits

    from . import benchmarks  # looked up at call time: tests may patch _run_moabb

    dataset = cell.dataset
    dataset.subject_list = list(cell.subjects)
    with threadpool_limits(limits=cell.blas_threads, user_api="blas"):
        frame = benchmarks._run_moabb(cell.evaluation, cell.paradigm, dataset,
                                      {cell.pipeline: cell.build_pipeline()},
                                      list(cell.subjects), epochs_input=cell.epochs_input,
                                      random_state=cell.random_state, n_jobs=cell.n_jobs,
                                      data_memo=SUBJECT_DATA)
    rows = [{str(k): _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]
    if cache_dir is not None and key is not None:
        try:
            _cache.write_entry(_cache.entry_path(cache_dir, key, dataset.code), key, rows)
        except OSError as err:  # e.g. a worker that cannot see the client's disk
            logger.warning("Could not cache %s in %s: %s", cell.label(), cache_dir, err)
    return rows


def _plain(value):
    import numpy as np

    return value.item() if isinstance(value, np.generic) else value


def _measured_cell(cell: Cell, cache_dir: str | None = None,
                   key: dict | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """:func:`compute_cell`, and what it cost where it ran (the task a Dask worker runs).

    Returns
    -------
    rows : list of dict
        As :func:`compute_cell`.
    stats : dict
        ``process`` (``"host:pid"``), ``cpu_s`` (CPU time of this thread: with one thread a
        worker, the cell's own), ``memo_hits`` and ``memo_misses`` (this cell's lookups in
        :data:`SUBJECT_DATA`).
    """
    with SUBJECT_DATA.counting() as tally:
        start = time.thread_time()
        rows = compute_cell(cell, cache_dir, key)
        cpu = time.thread_time() - start
    return rows, {"process": f"{socket.gethostname()}:{os.getpid()}", "cpu_s": cpu,
                  "memo_hits": tally["hits"], "memo_misses": tally["misses"]}


def run_cells(cells: Sequence[Cell], *, client: Any = None, cache_dir: str | Path | None = None,
              recompute: bool = False, progress: bool = True, desc: str = "cells",
              stats: list | None = None,
              ) -> tuple[list[list[dict] | None], list[CellFailure], int]:
    """Compute (or read from the cache) every cell, on ``client``'s cluster or here.

    Parameters
    ----------
    cells : sequence of Cell
    client : dask.distributed.Client | None
        Submit one task per uncached cell to this client's cluster (cells that load the same
        data prefer the same worker: :func:`worker_affinity`); None computes them here, in
        order.
    cache_dir : str | Path | None
        Per-cell cache folder (:mod:`bci.evaluation.cache`); None caches nothing.
    recompute : bool
        Ignore cached entries (their fresh results overwrite them).
    progress : bool
        Show a progress bar over the cells (cached cells count as done).
    desc : str
        The progress bar's label.
    stats : list | None
        When given, receives one dict per computed cell, in the order they finished: ``cell``
        (its index in ``cells``), ``process``, ``cpu_s``, ``memo_hits``, ``memo_misses`` (see
        :func:`summarize_stats`; a failed cell has none). They are summarised in a log line
        (INFO) either way.

    Returns
    -------
    rows : list of (list of dict | None)
        Each cell's rows, in the order of ``cells``; None for a failed cell.
    failures : list of CellFailure
    n_computed : int
        Cells computed in this call (not read from the cache), failed ones included.
    """
    from tqdm.auto import tqdm

    if client is not None and not callable(getattr(client, "submit", None)):
        raise TypeError(f"client must be a dask.distributed.Client (or None to compute here), "
                        f"got {type(client).__name__}.")
    if stats is not None:
        check_type(stats, list, "stats")
    cache_str = None if cache_dir is None else os.fspath(cache_dir)
    keys = [c.cache_key() for c in cells] if cache_str is not None else [None] * len(cells)
    rows: list[list[dict] | None] = [None] * len(cells)
    todo = []
    for i, (cell, key) in enumerate(zip(cells, keys, strict=True)):
        if key is not None and not recompute:
            rows[i] = _cache.read_entry(_cache.entry_path(cache_str, key, cell.dataset.code),
                                        key)
        if rows[i] is None:
            todo.append(i)
    if cache_str is not None:
        logger.info("%d of %d cells cached in %s; computing %d", len(cells) - len(todo),
                    len(cells), cache_str, len(todo))
    failures: list[CellFailure] = []
    measured: list[dict] = []
    with tqdm(total=len(cells), initial=len(cells) - len(todo), desc=desc, unit="cell",
              disable=not progress) as bar:
        if client is None:
            try:
                for i in todo:
                    bar.set_postfix_str(cells[i].label())
                    try:
                        rows[i], cost = _measured_cell(cells[i], cache_str, keys[i])
                        measured.append({"cell": i, **cost})
                    except Exception as err:  # a cell boundary: recorded, reported at the end
                        failures.append(CellFailure(cells[i], f"{type(err).__name__}: {err}",
                                                    traceback.format_exc()))
                    bar.update()
            finally:  # the subjects' data served this run; do not keep it in this process
                SUBJECT_DATA.clear()
        else:
            _run_on_dask(client, cells, keys, todo, rows, failures, cache_str, bar, measured)
    if measured:
        _log_stats(summarize_stats(measured, max_hits=max_memo_hits(cells, todo)))
    if stats is not None:
        stats.extend(measured)
    return rows, failures, len(todo)


def summarize_stats(stats: Sequence[dict], max_hits: int | None = None) -> dict[str, Any]:
    """Sum the per-cell costs of :func:`run_cells` (``stats=``), in all and per process.

    Parameters
    ----------
    stats : sequence of dict
        One dict per computed cell (``process``, ``cpu_s``, ``memo_hits``, ``memo_misses``).
    max_hits : int | None
        The most memo hits these cells can have (:func:`max_memo_hits`), copied into the
        summary.

    Returns
    -------
    summary : dict
        ``n_cells``, ``cpu_s`` (sum), ``cpu_s_per_cell`` (mean), ``memo_hits``,
        ``memo_misses``, ``max_memo_hits`` and ``processes``: ``{process: {"n_cells",
        "cpu_s", "cpu_s_per_cell", "memo_hits", "memo_misses"}}``.
    """
    def total(items) -> dict[str, Any]:
        items = list(items)
        cpu = sum(s["cpu_s"] for s in items)
        return {"n_cells": len(items), "cpu_s": cpu,
                "cpu_s_per_cell": cpu / len(items) if items else float("nan"),
                "memo_hits": sum(s["memo_hits"] for s in items),
                "memo_misses": sum(s["memo_misses"] for s in items)}

    processes = sorted({s["process"] for s in stats})
    return {**total(stats), "max_memo_hits": max_hits,
            "processes": {p: total(s for s in stats if s["process"] == p) for p in processes}}


def _log_stats(summary: dict) -> None:
    per_process = "; ".join(
        f"{name}: {p['n_cells']} cells, {p['memo_hits']} hits, {p['memo_misses']} misses, "
        f"{p['cpu_s_per_cell']:.3f} s CPU a cell" for name, p in summary["processes"].items())
    logger.info("Cell costs: %d cells in %d processes, %.3f s CPU a cell (%.2f s in all); "
                "subject-data memo: %d hits, %d misses (at most %s hits: each data group "
                "loaded once)", summary["n_cells"], len(summary["processes"]),
                summary["cpu_s_per_cell"], summary["cpu_s"], summary["memo_hits"],
                summary["memo_misses"], summary["max_memo_hits"])
    logger.debug("Cell costs per process: %s", per_process)


def _data_groups(cells: Sequence[Cell], todo: Sequence[int]) -> list[list[int]]:
    """Group the cells of ``todo`` that load the same data (paradigm object, epochs, subjects)."""
    groups: dict[tuple, list[int]] = {}
    for i in todo:
        cell = cells[i]
        groups.setdefault((id(cell.paradigm), cell.epochs_input, cell.subjects), []).append(i)
    return list(groups.values())


def max_memo_hits(cells: Sequence[Cell], todo: Sequence[int]) -> int:
    """Return the most :data:`SUBJECT_DATA` hits of the cells ``todo`` (each group loaded once).

    Parameters
    ----------
    cells : sequence of Cell
    todo : sequence of int
        Indices into ``cells``.

    Returns
    -------
    n : int
        ``len(todo)`` minus the number of data groups (cells loading the same data).
    """
    return len(todo) - len(_data_groups(cells, todo))


def submission_order(cells: Sequence[Cell], todo: Sequence[int], n_workers: int) -> list[int]:
    """Order the cells ``todo`` so that each worker's next cell tends to reuse its subject.

    Cells that load the same data (same paradigm object, epochs or arrays, subjects) form a
    group; groups are taken ``n_workers`` at a time and their cells dealt round-robin (first
    cell of each group, then the second of each...). Dask hands queued cells out in this
    order, so while the workers keep pace each one takes the next pipeline of the subject it
    has in its :data:`SUBJECT_DATA` memo. The order changes no result: cells are independent.
    Used when no worker is known yet (:func:`worker_affinity` otherwise).

    Parameters
    ----------
    cells : sequence of Cell
    todo : sequence of int
        Indices into ``cells``.
    n_workers : int
        Workers of the cluster (>= 1).

    Returns
    -------
    order : list of int
        ``todo``, reordered.
    """
    blocks = _data_groups(cells, todo)
    order = []
    for start in range(0, len(blocks), max(1, n_workers)):
        chunk = blocks[start:start + max(1, n_workers)]
        for rank in range(max(len(b) for b in chunk)):
            order += [b[rank] for b in chunk if rank < len(b)]
    return order


def worker_affinity(cells: Sequence[Cell], todo: Sequence[int],
                    workers: Sequence[str]) -> list[tuple[int, str]]:
    """Give each data group of ``todo`` a preferred worker; return the submission order.

    Cells that load the same data (:func:`submission_order`'s groups) prefer one worker, so
    that its :data:`SUBJECT_DATA` memo loads the group once. Groups go to workers by
    longest-processing-time greedy on their cell counts (the largest group first, each to the
    worker with the fewest cells so far; ties to the earlier worker), which balances the
    cells across workers. Each worker takes its groups in their original order, one after the
    other; the cells are submitted round-robin over the workers (each worker's first cell,
    then each one's second...). :func:`run_cells` submits them with Dask's loose restriction
    (``workers=[address], allow_other_workers=True``): the scheduler places a cell on its
    worker while it lives, and an idle worker may still steal it. The placement changes no
    result: cells are independent.

    Parameters
    ----------
    cells : sequence of Cell
    todo : sequence of int
        Indices into ``cells``.
    workers : sequence of str
        The workers' addresses (at least one).

    Returns
    -------
    plan : list of (int, str)
        ``(index into cells, preferred worker)`` for every index of ``todo``, in submission
        order.
    """
    workers = list(workers)
    if not workers:
        raise ValueError("worker_affinity needs at least one worker address, got none.")
    groups = _data_groups(cells, todo)
    load = [0] * len(workers)
    mine: list[list[int]] = [[] for _ in workers]
    for g in sorted(range(len(groups)), key=lambda g: -len(groups[g])):  # stable: ties in order
        w = min(range(len(workers)), key=lambda w: load[w])
        mine[w].append(g)
        load[w] += len(groups[g])
    queues = [[i for g in sorted(gs) for i in groups[g]] for gs in mine]
    return [(queue[rank], workers[w]) for rank in range(max(load, default=0))
            for w, queue in enumerate(queues) if rank < len(queue)]


def _run_on_dask(client, cells, keys, todo, rows, failures, cache_str, bar, measured):
    from distributed import as_completed

    futures = {}
    workers = sorted(client.scheduler_info().get("workers", {}))
    if len(workers) > 1:
        plan = worker_affinity(cells, todo, workers)
    else:  # one worker, or none yet (an adaptive cluster): no preference to give
        plan = [(i, None) for i in submission_order(cells, todo, 1)]
    preferred = dict(plan)
    for rank, (i, worker) in enumerate(plan):
        name = f"bci-cell-{cells[i].pipeline}-{uuid.uuid4().hex[:12]}"
        where = {} if worker is None else {"workers": [worker], "allow_other_workers": True}
        # tasks submitted one by one within Dask's fifo-timeout share one priority, and a
        # worker would take them in the order of their (random) keys: keep the plan's order
        fut = client.submit(_measured_cell, cells[i], cache_str, keys[i], key=name, retries=1,
                            priority=len(plan) - rank, **where)
        futures[fut] = i
    try:
        for fut in as_completed(list(futures)):
            i = futures[fut]
            if fut.status == "finished":
                rows[i], cost = fut.result()
                measured.append({"cell": i, **cost})
                logger.debug("%s: %.3f s CPU, %d memo hits, %d misses on %s (preferred %s)",
                             cells[i].label(), cost["cpu_s"], cost["memo_hits"],
                             cost["memo_misses"], cost["process"],
                             preferred[i] or "none")
                fut.release()  # a worker that dies later must not recompute a finished cell
                if cache_str is not None:  # the worker may not share our disk
                    path = _cache.entry_path(cache_str, keys[i], cells[i].dataset.code)
                    try:
                        if not path.exists():
                            _cache.write_entry(path, keys[i], rows[i])
                    except OSError as err:  # a full disk: the rows still count
                        logger.warning("Could not cache %s in %s: %s", cells[i].label(),
                                       cache_str, err)
            else:
                err = fut.exception()
                tb = fut.traceback()
                text = "".join(traceback.format_tb(tb)) if tb is not None else ""
                failures.append(CellFailure(cells[i], f"{type(err).__name__}: {err}", text))
            bar.set_postfix_str(cells[i].label())
            bar.update()
    finally:
        client.cancel([f for f in futures if not f.done()])


def _import_distributed():
    try:
        import distributed
    except ImportError as err:
        raise ImportError(f"Benchmarks on a Dask cluster need dask.distributed: {PIP_DASK}") \
            from err
    return distributed


#: Modules a LocalCluster's worker processes need for a cell, imported once before they start.
WORKER_PRELOAD = ("numpy", "scipy.signal", "sklearn.pipeline", "pyriemann.estimation",
                  "mne", "moabb.datasets", "moabb.paradigms", "moabb.evaluations",
                  "bci.data.loaders", "bci.pipelines.registry", "bci.evaluation.benchmarks",
                  "bci.evaluation.moabb_fixes", "bci.evaluation.cluster")


#: Imported last by the fork server: freezes its garbage collector (see the module).
_FORKSERVER_FREEZE = "bci.evaluation._forkserver_freeze"


def _importable(name: str) -> bool:
    """Whether ``name`` can be imported (found on the path, not blocked), without importing it."""
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ValueError:  # sys.modules[name] is None (blocked) or has no spec
        return False


def _import_modules(names: Sequence[str]) -> None:
    """Import ``names`` (those that fail are left to fail, with their message, where used)."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as err:  # e.g. an optional package: the cell that needs it says so
            logger.debug("Not preloading %s: %s", name, err)


def local_client(n_workers: int, *, preload: Sequence[str] = WORKER_PRELOAD, **kwargs: Any):
    """Start a ``distributed.LocalCluster`` (``n_workers`` processes, 1 thread each); its client.

    The cluster listens on 127.0.0.1 only (dashboard on a free port); its scheduler gives up on a
    cell after :data:`ALLOWED_FAILURES` + 1 worker deaths (``KilledWorker``, reported as a
    failed cell). On a scheduler of your own, set ``distributed.scheduler.allowed-failures``
    likewise. Close the client and its cluster with :func:`close_client`.

    The workers' statistical profiler is off (``distributed.worker.profile.enabled``) and
    they keep glibc's own memory trimming (Dask's ``MALLOC_TRIM_THRESHOLD_`` is not set).
    The worker processes start with Dask's ``forkserver`` method
    (``distributed.worker.multiprocessing-method``; ``spawn`` where the platform has no fork
    server): one server process, started first, imports ``preload`` (MNE, MOABB, pyRiemann,
    scikit-learn, bci's evaluation code) once, freezes its garbage collector
    (:mod:`bci.evaluation._forkserver_freeze`) and forks every worker from there, so a
    worker's first cell does not pay those imports, and the workers do not pay them twice.
    Meanwhile this process imports the same modules in a background thread, which it needs
    to build the cells: the two imports run at once, on two cores. A fork server that already
    runs in this process (an earlier cluster) is reused as it is.

    Parameters
    ----------
    n_workers : int
        Worker processes (>= 1).
    preload : sequence of str
        Modules imported by the fork server before it forks the workers (and here, meanwhile);
        ``()`` preloads nothing.
    **kwargs
        More ``LocalCluster`` arguments (they win over the defaults above).
    """
    import threading

    from .._checks import ensure_int

    n_workers = ensure_int(n_workers, "n_workers")
    if n_workers < 1:
        raise ValueError(f"n_workers must be an integer >= 1 (worker processes), got "
                         f"{n_workers}.")
    preload = [str(name) for name in preload]
    if not _importable("distributed"):  # the clear error, before any process starts
        _import_distributed()
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    if method == "forkserver":
        # the fork server starts first, so that its imports run beside all of this process's
        # (Dask's, the scheduler's, the cells'); "distributed" first as in Dask's own preload
        multiprocessing.get_context(method).set_forkserver_preload(
            ["distributed", *preload, _FORKSERVER_FREEZE])
        forkserver.ensure_running()
    warm = threading.Thread(target=_import_modules, args=(preload,), daemon=True,
                            name="bci-client-imports")
    warm.start()
    distributed = _import_distributed()
    import dask
    options = {"n_workers": n_workers, "threads_per_worker": 1, "processes": True,
               "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0", **kwargs}
    # a cell whose worker dies is run once more, then reported (Dask's default is 3 more)
    config = {"distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
              "distributed.worker.multiprocessing-method": method,
              # the statistical profiler wakes a thread every 10 ms, which takes the GIL from
              # the cell's thread: cells cost 5-10 % more CPU time with it
              "distributed.worker.profile.enabled": False,
              # Dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which also turns off
              # glibc's adaptive mmap threshold: every large NumPy temporary is then mapped
              # and unmapped, and a cell costs about 12 % more CPU time; glibc's defaults here
              "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    try:
        with dask.config.set(config):
            cluster = distributed.LocalCluster(**options)
    finally:
        warm.join()
    return distributed.Client(cluster)


def connect(address: str, timeout_s: float = 30.0):
    """Connect to an existing Dask scheduler (``tcp://host:8786``), or raise a clear error.

    Parameters
    ----------
    address : str
        The scheduler's address.
    timeout_s : float
        How long to try to reach it (s).

    Raises
    ------
    TimeoutError
        The scheduler did not answer within ``timeout_s`` (an ``OSError``), with a hint.
    """
    from .._checks import check_positive

    check_type(address, str, "scheduler address")
    timeout_s = check_positive(timeout_s, "timeout_s")
    distributed = _import_distributed()
    try:
        return distributed.Client(address, timeout=timeout_s)
    except (OSError, TimeoutError) as err:
        raise TimeoutError(
            f"Could not reach the Dask scheduler at {address!r} within {timeout_s:g} s "
            f"({type(err).__name__}: {err}). Check the address (e.g. tcp://host:8786), that "
            "the scheduler runs (`dask scheduler`, or your dask-jobqueue cluster), and that "
            "this machine can reach its port; or run on this machine with --cluster local:N."
        ) from err


def client_from_spec(cluster: str | None = None, scheduler: str | None = None,
                     timeout_s: float = 30.0):
    """Return the client for ``--cluster local:N`` or ``--scheduler ADDRESS`` (None for neither).

    Parameters
    ----------
    cluster : str | None
        ``"local:N"``: a new LocalCluster with N worker processes.
    scheduler : str | None
        Address of an existing scheduler.
    timeout_s : float
        Bounded wait for ``scheduler`` (s).
    """
    if cluster is not None and scheduler is not None:
        raise ValueError("Give --cluster or --scheduler, not both.")
    if scheduler is not None:
        return connect(scheduler, timeout_s)
    if cluster is None:
        return None
    _, positional, params = parse_spec(cluster, what="cluster", kinds=["local"])
    if params or len(positional) != 1 or not positional[0].isdigit() \
            or int(positional[0]) < 1:
        raise ValueError(f"--cluster must be local:N with N >= 1 worker processes, got "
                         f"{cluster!r}; e.g. --cluster local:2.")
    return local_client(int(positional[0]))


def close_client(client) -> None:
    """Close ``client`` and, when it started one, its LocalCluster."""
    cluster = getattr(client, "cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()
