"""bci.benchmark on a Dask LocalCluster: serial-identical scores, per-cell cache, failures."""

from __future__ import annotations

import io
import json
import os
import pickle
import time

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin

import bci
from bci.evaluation import cache as cache_mod
from bci.evaluation.cluster import CellsFailedError, close_client, connect, local_client

pytest.importorskip("distributed")

PIPES = ["CSP+LDA", "MDM"]
KW = {"dataset": "SyntheticMotorImagery", "paradigm": "LeftRightImagery", "subjects": [1, 2],
      "progress": False}


@pytest.fixture(scope="module")
def client():
    """One LocalCluster for the module: 2 worker processes, 1 thread each, on 127.0.0.1."""
    client = local_client(2)
    yield client
    close_client(client)


def _entries(folder):
    return sorted(folder.rglob("*.json"))


def _same_rows(a, b):
    """Equal results, column for column, except the measured fit times."""
    assert list(a.columns) == list(b.columns)
    assert a.drop(columns="time").equals(b.drop(columns="time"))


def test_cluster_scores_equal_serial_and_cache_resumes(client, tmp_path):
    serial = bci.benchmark(pipelines=PIPES, **KW)
    assert serial.attrs == {"n_computed": 4, "n_cells": 4}
    on_dask = bci.benchmark(pipelines=PIPES, client=client, cache_dir=tmp_path, **KW)
    _same_rows(on_dask, serial)
    np.testing.assert_array_equal(on_dask.score.to_numpy(), serial.score.to_numpy())
    assert on_dask.attrs == {"n_computed": 4, "n_cells": 4}
    assert len(_entries(tmp_path)) == 4  # one file per (subject, pipeline) cell
    # a second run computes nothing: every cell comes from the cache, times included
    again = bci.benchmark(pipelines=PIPES, client=client, cache_dir=tmp_path, **KW)
    assert again.attrs["n_computed"] == 0
    assert again.equals(on_dask)
    # an interrupted run resumes: drop one cell, only that one is computed
    _entries(tmp_path)[0].unlink()
    resumed = bci.benchmark(pipelines=PIPES, cache_dir=tmp_path, **KW)  # serial: same cache
    assert resumed.attrs["n_computed"] == 1
    _same_rows(resumed, serial)
    # recompute forces every cell
    forced = bci.benchmark(pipelines=PIPES, cache_dir=tmp_path, recompute=True, **KW)
    assert forced.attrs["n_computed"] == 4
    _same_rows(forced, serial)


def test_cache_ignores_corrupted_and_other_version_entries(tmp_path, monkeypatch, caplog):
    kw = {**KW, "subjects": [1]}
    first = bci.benchmark(pipelines=["MDM"], cache_dir=tmp_path, **kw)
    (entry,) = _entries(tmp_path)
    stored = json.loads(entry.read_text())
    assert stored["key"]["versions"] == cache_mod.versions()
    assert stored["rows"][0]["score"] == first.score.iloc[0]

    entry.write_text(entry.read_text()[:40])  # a truncated file
    with caplog.at_level("WARNING", logger="bci"):
        again = bci.benchmark(pipelines=["MDM"], cache_dir=tmp_path, **kw)
    assert again.attrs["n_computed"] == 1
    assert "corrupted cache entry" in caplog.text
    _same_rows(again, first)

    # an entry at the right place but written by another MOABB version: ignored, replaced
    stale = json.loads(entry.read_text())
    stale["key"]["versions"]["moabb"] = "0.0.1"
    stale["rows"][0]["score"] = -1.0
    entry.write_text(json.dumps(stale))
    caplog.clear()
    with caplog.at_level("WARNING", logger="bci"):
        again = bci.benchmark(pipelines=["MDM"], cache_dir=tmp_path, **kw)
    assert again.attrs["n_computed"] == 1
    assert "written for another key" in caplog.text
    assert (again.score >= 0).all()
    _same_rows(again, first)

    # other versions hash elsewhere: their entries are neither read nor mixed in
    monkeypatch.setattr(cache_mod, "versions", lambda: {"bci": "9", "moabb": "9",
                                                         "pyriemann": "9", "scikit-learn": "9"})
    other = bci.benchmark(pipelines=["MDM"], cache_dir=tmp_path, **kw)
    assert other.attrs["n_computed"] == 1
    assert len(other) == 1
    assert len(_entries(tmp_path)) == 2


def test_cache_key_changes_with_what_decides_the_scores():
    from pyriemann.classification import MDM

    from bci.data import SyntheticMotorImagery
    from bci.evaluation.cluster import Cell

    para = bci.data.get_paradigm("LeftRightImagery")
    base = {"dataset": SyntheticMotorImagery(), "paradigm": para, "epochs_input": False,
            "pipeline": "MDM", "subjects": (1,), "evaluation": "within-session",
            "random_state": 42}
    key = Cell(**base).cache_key()
    assert cache_mod.key_hash(key) == cache_mod.key_hash(Cell(**base).cache_key())  # stable
    changed = [{"subjects": (2,)}, {"random_state": 0}, {"evaluation": "cross-session"},
               {"dataset": SyntheticMotorImagery(snr=0.5)},
               {"pipeline": "mine", "estimator": MDM(metric="logeuclid")}]
    hashes = {cache_mod.key_hash(Cell(**{**base, **c}).cache_key()) for c in changed}
    assert len(hashes) == len(changed)
    assert cache_mod.key_hash(key) not in hashes
    # n_jobs and BLAS threads do not change scores: same key
    assert Cell(**base, n_jobs=2, blas_threads=None).cache_key() == key


def _bad_pipelines():
    from pyriemann.classification import MDM
    from pyriemann.estimation import Covariances
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    # C=-1 is refused by scikit-learn in fit: this cell fails on the worker
    return {"MDM": make_pipeline(Covariances("oas"), MDM()),
            "broken": make_pipeline(Covariances("oas"), LogisticRegression(C=-1.0))}


def test_failing_cell_is_reported_while_the_others_finish(client, tmp_path):
    with pytest.raises(CellsFailedError, match=r"2 benchmark cell\(s\) failed") as info:
        bci.benchmark(pipelines=_bad_pipelines(), client=client, cache_dir=tmp_path,
                      out=tmp_path / "out", **KW)
    err = info.value
    assert isinstance(err, RuntimeError)
    assert sorted(f.cell.label() for f in err.failures) == [
        "SyntheticMotorImagery subject 1 broken", "SyntheticMotorImagery subject 2 broken"]
    assert all("InvalidParameterError" in f.error for f in err.failures)
    assert "Traceback" in str(err) or "fit" in err.failures[0].traceback
    assert "fit" in err.failures[0].traceback  # the worker's traceback came back
    # the other cells finished, are cached and written
    assert sorted(err.results.pipeline) == ["MDM", "MDM"]
    assert len(_entries(tmp_path)) == 2
    assert (tmp_path / "out" / "results.csv").is_file()


def test_client_ships_names_not_arrays(client, tmp_path, monkeypatch):
    """Every submitted task pickles to a few kB and holds no array: the worker loads its data."""
    submitted = []
    real_submit = client.submit

    def spy(fn, *args, **kwargs):
        submitted.append((fn, args))
        return real_submit(fn, *args, **kwargs)

    monkeypatch.setattr(client, "submit", spy)
    bci.benchmark(pipelines=PIPES, client=client, **KW)
    assert len(submitted) == 4

    arrays = []

    class Spy(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, np.ndarray):
                arrays.append(obj.shape)
            return NotImplemented

    for _, args in submitted:
        buf = io.BytesIO()
        Spy(buf).dump(args)
        assert buf.tell() < 20_000, buf.tell()
    assert arrays == []


def test_unreachable_scheduler_fails_fast_with_a_hint(capsys):
    from bci.cli import main

    start = time.perf_counter()
    with pytest.raises(TimeoutError, match=r"Could not reach the Dask scheduler at "
                                           r"'tcp://127.0.0.1:9' within 1 s.*dask scheduler"):
        connect("tcp://127.0.0.1:9", timeout_s=1.0)
    assert time.perf_counter() - start < 15
    assert main(["benchmark", "--pipelines", "MDM", "--scheduler", "tcp://127.0.0.1:9",
                 "--scheduler-timeout", "1"]) == 2
    assert "Could not reach the Dask scheduler" in capsys.readouterr().err


@pytest.mark.parametrize(("spec", "match"), [("local:0", "local:N with N >= 1"),
                                             ("local", "local:N with N >= 1"),
                                             ("slurm:2", "Unknown cluster 'slurm'")])
def test_bad_cluster_spec(spec, match, capsys):
    from bci.cli import main

    assert main(["benchmark", "--pipelines", "MDM", "--cluster", spec]) == 2
    assert match in capsys.readouterr().err


def test_missing_dask_names_the_pip_line(monkeypatch):
    import sys

    from bci.evaluation.cluster import client_from_spec

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"pip install 'bci\[dask\]'"):
        client_from_spec("local:2")


class _DieInFit(ClassifierMixin, BaseEstimator):
    """Kills its worker process in fit (a segfault, an out-of-memory kill...)."""

    def fit(self, X, y):
        os._exit(1)


def test_a_cell_whose_worker_dies_is_retried_once_then_reported(tmp_path, caplog):
    from pyriemann.classification import MDM
    from pyriemann.estimation import Covariances
    from sklearn.pipeline import make_pipeline

    pipes = {"MDM": make_pipeline(Covariances("oas"), MDM()),
             "dies": make_pipeline(Covariances("oas"), _DieInFit())}
    client = local_client(1)
    try:
        with caplog.at_level("ERROR", logger="distributed.scheduler"), \
                pytest.raises(CellsFailedError, match="KilledWorker") as info:
            bci.benchmark(pipelines=pipes, client=client, cache_dir=tmp_path,
                          **{**KW, "subjects": [1]})
    finally:
        close_client(client)
    (failure,) = info.value.failures
    assert failure.cell.pipeline == "dies"
    assert "on 2 different workers" in failure.error  # the first run and one retry
    assert list(info.value.results.pipeline) == ["MDM"]
    assert len(_entries(tmp_path)) == 1


def test_readme_cluster_commands(client, tmp_path, monkeypatch, capsys):
    """README: `bci benchmark --dataset SyntheticSSVEP ... --cluster local:2`, run twice.

    The module's LocalCluster (2 worker processes) stands in for the one the command starts,
    so the test does not pay a second cluster start; ``local_client`` is asked for 2 workers.
    """
    import pandas as pd

    import bci.evaluation.cluster as cluster
    from bci.cli import main

    asked = []
    monkeypatch.setattr(cluster, "local_client", lambda n: asked.append(n) or client)
    monkeypatch.setattr(cluster, "close_client", lambda c: None)
    out, cache = tmp_path / "cluster", tmp_path / "cache"
    argv = ["benchmark", "--dataset", "SyntheticSSVEP", "--paradigm", "SSVEP",
            "--paradigm-param", "n_classes=3", "--pipelines", "SSVEP_TS+LR,SSVEP_MDM",
            "--cluster", "local:2", "--cache-dir", str(cache), "--out", str(out)]
    assert main(argv) == 0
    assert "(4 of 4 cells computed" in capsys.readouterr().out
    first = pd.read_csv(out / "results.csv")
    assert main(argv) == 0  # resumes from the cache: nothing computed
    assert f"(0 of 4 cells computed, the others read from {cache})" in capsys.readouterr().out
    assert asked == [2, 2]
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), first)
    assert main([*argv, "--no-cache"]) == 0
    assert "(4 of 4 cells computed" in capsys.readouterr().out
    serial = bci.benchmark("SyntheticSSVEP", "SSVEP", ["SSVEP_TS+LR", "SSVEP_MDM"],
                           paradigm_params={"n_classes": 3}, progress=False)
    np.testing.assert_array_equal(first.score.to_numpy(), serial.score.to_numpy())


@pytest.mark.parametrize("evaluation", ["cross-session", "cross-subject"])
def test_cells_equal_moabb_whole_run(client, evaluation, tmp_path):
    """Cells on the cluster give the rows of one whole MOABB evaluation.

    Cross-session: one cell per subject and pipeline; cross-subject: one per pipeline.
    """
    import moabb.evaluations as mevaluations
    from moabb.paradigms import LeftRightImagery

    from bci.data import SyntheticMotorImagery
    from bci.evaluation.benchmarks import EVALUATIONS
    from bci.pipelines.registry import get_pipeline

    dataset = SyntheticMotorImagery(n_sessions=2)
    ours = bci.benchmark(dataset, "LeftRightImagery", PIPES, subjects=[1, 2],
                         evaluation=evaluation, client=client, progress=False)
    assert ours.attrs["n_cells"] == (4 if evaluation == "cross-session" else 2)
    cls = getattr(mevaluations, EVALUATIONS[evaluation])
    dataset.subject_list = [1, 2]
    para = LeftRightImagery()
    ev = cls(paradigm=para, datasets=[dataset], overwrite=True, hdf5_path=str(tmp_path),
             random_state=42, save_model=False)
    theirs = ev.process({n: get_pipeline(n, random_state=42, scoring=para.scoring)
                         for n in PIPES})
    key = ["pipeline", "subject", "session"]
    merged = ours.astype({k: str for k in key}).merge(
        theirs.astype({k: str for k in key}), on=key, validate="one_to_one")
    assert len(merged) == len(ours) == len(theirs) > 0
    np.testing.assert_array_equal(merged.score_x.to_numpy(), merged.score_y.to_numpy())


def test_bad_client_and_unwritable_cache(tmp_path):
    with pytest.raises(TypeError, match="client must be a dask.distributed.Client"):
        bci.benchmark(pipelines=["MDM"], client="tcp://127.0.0.1:8786", **KW)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="Cannot write to the --cache-dir folder"):
        bci.benchmark(pipelines=["MDM"], cache_dir=blocker, **KW)


def test_subject_data_memo_returns_what_moabb_loads_as_fresh_copies():
    from moabb.paradigms import LeftRightImagery

    from bci.data import SyntheticMotorImagery
    from bci.evaluation.cluster import SubjectDataMemo

    dataset, para = SyntheticMotorImagery(n_subjects=3), LeftRightImagery()
    memo = SubjectDataMemo(max_entries=2)
    wrapped = memo.wrap(para)
    assert "get_data" not in vars(para)  # the caller's paradigm is untouched
    X, y, meta = wrapped.get_data(dataset, [1])
    X[:] = 0.0  # an evaluation that writes into its data cannot reach the stored copy
    y[:] = "nothing"
    X2, y2, meta2 = wrapped.get_data(dataset, [1])
    assert (memo.hits, memo.misses) == (1, 1)
    Xr, yr, metar = para.get_data(dataset, [1])
    np.testing.assert_array_equal(X2, Xr)
    np.testing.assert_array_equal(y2, yr)
    assert meta2.equals(metar)
    assert X2 is not wrapped.get_data(dataset, [1])[0]
    # other subjects, or epochs instead of arrays, are other entries; 2 are kept (LRU)
    epochs = wrapped.get_data(dataset, [1], return_epochs=True)[0]
    assert epochs.get_data(copy=False).shape == Xr.shape
    wrapped.get_data(dataset, [2])
    assert (memo.hits, memo.misses, len(memo)) == (2, 3, 2)
    wrapped.get_data(dataset, [1])  # dropped (least recently used): loaded again
    assert (memo.hits, memo.misses) == (2, 4)
    memo.clear()
    assert (memo.hits, memo.misses, len(memo)) == (2, 4, 0)
    with pytest.raises(ValueError, match="max_entries must be an integer >= 0"):
        SubjectDataMemo(-1)


def test_serial_benchmark_loads_each_subject_once_with_equal_scores(monkeypatch):
    from bci.evaluation import cluster

    memo = cluster.SubjectDataMemo()
    monkeypatch.setattr(cluster, "SUBJECT_DATA", memo)
    kept = bci.benchmark(pipelines=PIPES, **KW)
    # 2 subjects x 2 pipelines of one paradigm: each subject loaded once, reused once
    assert (memo.hits, memo.misses) == (2, 2)
    assert len(memo) == 0  # a serial run drops the data when it is done
    monkeypatch.setattr(cluster, "SUBJECT_DATA", cluster.SubjectDataMemo(max_entries=0))
    fresh = bci.benchmark(pipelines=PIPES, **KW)
    assert cluster.SUBJECT_DATA.hits == 0
    np.testing.assert_array_equal(kept.score.to_numpy(), fresh.score.to_numpy())
    _same_rows(kept, fresh)


def _two_paradigm_cells():
    """Cells of pipelines A, B, C on one paradigm and D on another, subjects 1-3; labels "A1"..."""
    from bci.evaluation.cluster import Cell

    fb, raw = object(), object()  # two paradigms: their cells load different data
    cells = [Cell(dataset=None, paradigm=para, epochs_input=False, pipeline=name,
                  subjects=(s,), evaluation="within-session", random_state=0)
             for para, names in ((fb, "ABC"), (raw, "D")) for s in (1, 2, 3) for name in names]
    return cells, [f"{c.pipeline}{c.subjects[0]}" for c in cells]


def test_submission_order_deals_subjects_round_robin():
    from bci.evaluation.cluster import submission_order

    cells, label = _two_paradigm_cells()
    order = submission_order(cells, range(len(cells)), n_workers=2)
    # groups (paradigm, subject) two at a time: fb1+fb2, fb3+raw1, raw2+raw3
    assert [label[i] for i in order] == ["A1", "A2", "B1", "B2", "C1", "C2", "A3", "D1", "B3",
                                         "C3", "D2", "D3"]
    assert [label[i] for i in submission_order(cells, range(len(cells)), 1)] == label
    # cached cells are left out, the rest keeps the pattern
    todo = [i for i, name in enumerate(label) if name not in ("A1", "D2")]
    assert [label[i] for i in submission_order(cells, todo, 2)] == [
        "B1", "A2", "C1", "B2", "C2", "A3", "D1", "B3", "C3", "D3"]


def test_worker_affinity_balances_groups_by_cell_count():
    from bci.evaluation.cluster import max_memo_hits, worker_affinity

    cells, label = _two_paradigm_cells()
    plan = worker_affinity(cells, range(len(cells)), ["w0", "w1"])
    # longest processing time first: fb1 -> w0, fb2 -> w1, fb3 -> w0 (3 each, tie: w0),
    # then the 1-cell groups to the emptier worker: raw1, raw2, raw3 -> w1 (6 cells each)
    assert sorted(i for i, _ in plan) == list(range(len(cells)))
    assert [(label[i], w) for i, w in plan] == [
        ("A1", "w0"), ("A2", "w1"), ("B1", "w0"), ("B2", "w1"), ("C1", "w0"), ("C2", "w1"),
        ("A3", "w0"), ("D1", "w1"), ("B3", "w0"), ("D2", "w1"), ("C3", "w0"), ("D3", "w1")]
    assert max_memo_hits(cells, range(len(cells))) == 12 - 6
    # each group has one worker; the cell counts differ by at most the largest group
    where = {}
    for i, w in plan:
        where.setdefault((cells[i].paradigm, cells[i].subjects), set()).add(w)
    assert all(len(ws) == 1 for ws in where.values())
    todo = [i for i, name in enumerate(label) if name not in ("A1", "B1", "C1")]  # cached
    counts = [sum(w == x for _, w in worker_affinity(cells, todo, ["w0", "w1", "w2"]))
              for x in ("w0", "w1", "w2")]
    assert counts == [3, 3, 3]
    assert [(label[i], w) for i, w in worker_affinity(cells, [0, 1], ["only"])] == [
        ("A1", "only"), ("B1", "only")]
    with pytest.raises(ValueError, match="at least one worker address"):
        worker_affinity(cells, [0], [])


def test_affinity_loads_each_data_group_once_per_worker(client):
    """Without stealing, every cell runs on its group's worker: each group is loaded once."""
    from bci.evaluation import cluster
    from bci.evaluation.benchmarks import _group_by_paradigm
    from bci.evaluation.cluster import Cell, max_memo_hits, run_cells, summarize_stats

    dataset = bci.data.get_dataset("SyntheticSSVEP", n_subjects=3)
    para = bci.data.get_paradigm("SSVEP", n_classes=3)
    names = ["SSVEP_TS+LR", "SSVEP_MDM", "SSVEP_CCA"]
    cells = [Cell(dataset=dataset, paradigm=p, epochs_input=e, pipeline=name, subjects=(s,),
                  evaluation="within-session", random_state=42)
             for p, e, named, _ in _group_by_paradigm(names, para, random_state=42)
             for s in (1, 2, 3) for name in named]
    todo = range(len(cells))
    best = max_memo_hits(cells, todo)
    assert (len(cells), best) == (9, 3)  # 3 subjects x (2 filter-bank cells + CCA)

    async def stealing(dask_scheduler, on):
        ext = dask_scheduler.extensions["stealing"]
        await (ext.start() if on else ext.stop())

    client.run_on_scheduler(stealing, on=False)
    stats = []
    try:
        rows, failures, n = run_cells(cells, client=client, progress=False, stats=stats)
    finally:
        client.run_on_scheduler(stealing, on=True)
    assert (failures, n) == ([], 9)
    summary = summarize_stats(stats, max_hits=best)
    assert (summary["memo_hits"], summary["memo_misses"]) == (best, 9 - best)
    assert summary["n_cells"] == 9
    assert summary["cpu_s"] > 0
    pids = {int(p.rsplit(":", 1)[1]) for p in summary["processes"]}
    assert pids == set(client.run(os.getpid).values())  # both workers took cells
    by_group = {}
    for s in stats:
        cell = cells[s["cell"]]
        by_group.setdefault((id(cell.paradigm), cell.subjects), set()).add(s["process"])
    assert all(len(where) == 1 for where in by_group.values())
    # the same scores as a serial run (which loads each group once too)
    serial_stats = []
    serial = run_cells(cells, progress=False, stats=serial_stats)[0]
    assert [[r["score"] for r in cell] for cell in serial] == \
        [[r["score"] for r in cell] for cell in rows]
    assert sum(s["memo_hits"] for s in serial_stats) == best
    assert len(cluster.SUBJECT_DATA) == 0


def _worker_state():
    import gc
    import sys

    return gc.get_freeze_count(), "moabb.evaluations" in sys.modules


def test_workers_fork_from_a_preloaded_frozen_server(client):
    """The fork server imported the cells' modules and froze its collector before forking."""
    states = client.run(_worker_state)
    assert len(states) == 2
    for frozen, preloaded in states.values():
        assert frozen > 10_000  # every object of MNE, MOABB... in the permanent generation
        assert preloaded
