"""MOABB-comparable benchmarks of registered pipelines: :func:`benchmark`, tables and plots.

The cross-validation is MOABB's own (``WithinSessionEvaluation``, ``CrossSessionEvaluation``,
``CrossSubjectEvaluation``): ``bci`` only resolves names, groups pipelines by the paradigm they
need, and formats the results, so the scores equal those of MOABB run directly on the same
pipeline definitions.
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from unittest import mock

import numpy as np

from .._checks import check_option
from .._config import writable_dir
from .._logging import logger
from ..data.loaders import (
    check_class_count,
    check_subjects,
    get_dataset,
    get_paradigm,
    missing_data_as_file_not_found,
    skip_unused_runs,
)
from ..pipelines.registry import get_pipeline, get_spec, paradigm_for

#: Evaluation names accepted by :func:`benchmark`, and the MOABB class behind each.
EVALUATIONS = {
    "within-session": "WithinSessionEvaluation",
    "cross-session": "CrossSessionEvaluation",
    "cross-subject": "CrossSubjectEvaluation",
}
#: The columns of MOABB's results, in the order written to ``results.csv``.
RESULT_COLUMNS = ["score", "time", "samples", "subject", "session", "pipeline", "dataset",
                  "evaluation", "paradigm", "channels", "n_sessions"]
DEFAULT_PIPELINES = ("CSP+LDA", "TS+LR", "TS+SVM", "MDM", "FgMDM", "ACM+TS+SVM")


def _paradigm_for(spec, paradigm):
    """Return the paradigm ``spec`` needs (:func:`bci.pipelines.registry.paradigm_for`)."""
    return paradigm_for(spec, paradigm)


def benchmark(dataset: Any = "SyntheticMotorImagery", paradigm: Any = "LeftRightImagery",
              pipelines: Sequence[str] | Mapping[str, Any] = DEFAULT_PIPELINES,
              subjects: Sequence[int] | None = None,
              evaluation: Literal["within-session", "cross-session", "cross-subject"]
              = "within-session", *,
              paradigm_params: dict | None = None, dataset_params: dict | None = None,
              random_state: int | None = 42, n_jobs: int = 1, blas_threads: int | None = 1,
              out: str | Path | None = None, progress: bool = True, client: Any = None,
              cache_dir: str | Path | None = None, recompute: bool = False) -> Any:
    """Evaluate pipelines on a dataset with a MOABB evaluation.

    Parameters
    ----------
    dataset : str | moabb.datasets.base.BaseDataset
        Dataset name (``"PhysionetMI"``, ``"Kalunga2016"``, ``"SyntheticMotorImagery"``...) or
        instance.
    paradigm : str | moabb.paradigms.base.BaseParadigm
        Paradigm name (``"LeftRightImagery"``, ``"MotorImagery"``, ``"SSVEP"``...) or instance.
        SSVEP pipelines that need filter-bank epochs get ``FilterBankSSVEP`` with the same
        ``n_classes``, and vice versa.
    pipelines : sequence of str | mapping of str to estimator
        Registered pipeline names (see :func:`bci.features.list_pipelines`), or your own
        estimators by name.
    subjects : sequence of int | None
        Subjects to evaluate; all of the dataset's when None.
    evaluation : "within-session" | "cross-session" | "cross-subject"
        The MOABB evaluation to run.
    paradigm_params, dataset_params : dict | None
        Constructor arguments when ``paradigm`` / ``dataset`` are names (e.g.
        ``{"n_classes": 4}``).
    random_state : int | None
        Seed of MOABB's fold shuffling and of the inner grid searches.
    n_jobs : int
        Parallel jobs of MOABB's evaluation.
    blas_threads : int | None
        Threads of the BLAS/LAPACK library during the evaluation (``threadpoolctl``). One is
        fastest for covariance pipelines: their matrices are small (tens of channels) and
        OpenBLAS threads cost more than they bring (a batch of 32 x 32 ``eigh`` runs 4.6x
        slower with 2 threads on 2 busy cores). None leaves the library's default.
    out : str | Path | None
        When given, write ``results.csv``, ``summary.csv`` and ``scores.png`` there (checked
        for writing first: an unwritable folder raises ``OSError`` before any work).
    progress : bool
        Show a progress bar over the cells: one per subject and pipeline (MOABB runs the
        within- and cross-session evaluations one subject at a time and each pipeline on the
        same seeded folds, so this changes no score), one per pipeline for cross-subject.
    client : dask.distributed.Client | None
        Compute the cells on this Dask cluster (:mod:`bci.evaluation.cluster`; ``pip install
        'bci[dask]'``): each worker loads its own subject, the scores equal the serial run's.
        None computes them in this process.
    cache_dir : str | Path | None
        Per-cell result cache (:mod:`bci.evaluation.cache`): finished cells are read from
        there and new ones written, so an interrupted run resumes. None caches nothing.
    recompute : bool
        Recompute every cell even when cached (the fresh rows replace the cached ones).

    Returns
    -------
    results : pandas.DataFrame
        One row per subject, session (or fold group) and pipeline, with MOABB's columns
        ``score``, ``time`` (mean fit time per fold, seconds), ``samples``, ``subject``,
        ``session``, ``pipeline``, ``dataset`` and ``evaluation``. ``results.attrs`` holds
        ``n_cells`` and ``n_computed`` (cells not read from the cache).

    Raises
    ------
    bci.evaluation.cluster.CellsFailedError
        A ``RuntimeError`` naming each failed cell with its traceback, raised once every other
        cell has finished (and been cached); its ``results`` holds their rows (also written to
        ``out``).
    """
    if evaluation == "pseudo-online":  # replays through bci.realtime, a layer above this one
        raise ValueError("The pseudo-online evaluation replays recordings through the "
                         "real-time loop; run it with bci.benchmark(..., evaluation="
                         "'pseudo-online') or bci.realtime.pseudo_online.pseudo_online.")
    check_option("evaluation", evaluation, EVALUATIONS)
    if out is not None:  # before the evaluation, not after it
        writable_dir(out, "--out folder")
    if cache_dir is not None:
        writable_dir(cache_dir, "--cache-dir folder")
    dataset = get_dataset(dataset, **(dataset_params or {}))
    paradigm = get_paradigm(paradigm, **(paradigm_params or {}))
    subjects = check_subjects(dataset, subjects)
    if not paradigm.is_valid(dataset):
        raise ValueError(
            f"{dataset.code} is not a {type(paradigm).__name__} dataset (its paradigm is "
            f"{dataset.paradigm!r}); pick a matching paradigm."
        )
    check_class_count(paradigm, dataset)
    dataset = skip_unused_runs(dataset, paradigm)  # e.g. PhysionetMI's feet runs for left/right
    if evaluation == "cross-subject" and len(subjects) < 2:
        raise ValueError("cross-subject evaluation needs at least 2 subjects, got "
                         f"{subjects}.")
    if evaluation == "cross-session" and dataset.n_sessions < 2:
        raise ValueError(f"cross-session evaluation needs at least 2 sessions; {dataset.code} "
                         f"has {dataset.n_sessions}.")
    dataset.subject_list = subjects

    groups = _group_by_paradigm(pipelines, paradigm, random_state=random_state)
    try:
        results = _run_cells(groups, dataset, subjects, evaluation, random_state=random_state,
                             n_jobs=n_jobs, blas_threads=blas_threads, progress=progress,
                             client=client, cache_dir=cache_dir, recompute=recompute, out=out)
    finally:
        dataset.subject_list = subjects
    if out is not None:
        write_results(results, out)
    return results


def _run_cells(groups, dataset, subjects, evaluation, *, random_state, n_jobs, blas_threads,
               progress, client, cache_dir, recompute, out):
    """Split the benchmark into cells (:mod:`bci.evaluation.cluster`), run them, join the rows.

    Within/cross-session: MOABB evaluates subjects independently (and pipelines with the same
    seeded folds), so one cell per subject and pipeline gives the same rows as one whole run;
    cross-subject folds need every subject: one cell per pipeline.
    """
    import pandas as pd

    from .cluster import Cell, CellsFailedError, run_cells

    batches = [(s,) for s in subjects] if evaluation != "cross-subject" else [tuple(subjects)]
    cells = [Cell(dataset=dataset, paradigm=para, epochs_input=epochs_input, pipeline=name,
                  subjects=batch, evaluation=evaluation, random_state=random_state,
                  estimator=est if custom else None, n_jobs=n_jobs, blas_threads=blas_threads)
             for para, epochs_input, named, custom in groups
             for batch in batches for name, est in named.items()]
    logger.info("%s on %s: %d cells", EVALUATIONS[evaluation], dataset.code, len(cells))
    rows, failures, n_computed = run_cells(cells, client=client, cache_dir=cache_dir,
                                           recompute=recompute, progress=progress,
                                           desc=f"{dataset.code} {evaluation}")
    results = pd.DataFrame.from_records([r for cell_rows in rows if cell_rows
                                         for r in cell_rows])
    if len(results):
        results["evaluation"] = evaluation
        columns = [c for c in RESULT_COLUMNS if c in results] + [
            c for c in results if c not in RESULT_COLUMNS]
        results = results[columns]
    results.attrs["n_computed"] = n_computed
    results.attrs["n_cells"] = len(cells)
    if failures:
        if out is not None and len(results):
            write_results(results, out)
        raise CellsFailedError(failures, results)
    return results


def _group_by_paradigm(pipelines, paradigm, *, random_state):
    """[(paradigm, epochs_input, {name: estimator}, custom)], one per paradigm needed."""
    if isinstance(pipelines, str):
        pipelines = [p.strip() for p in pipelines.split(",") if p.strip()]
    if not len(pipelines):
        raise ValueError("No pipeline to evaluate; name at least one (see `bci pipelines`).")
    groups: dict[tuple, tuple[Any, bool, dict]] = {}
    for name in pipelines:
        if isinstance(pipelines, Mapping):
            para, epochs_input, est = paradigm, False, pipelines[name]
        else:
            spec = get_spec(name)
            para, epochs_input = _paradigm_for(spec, paradigm), spec.epochs_input
            est = get_pipeline(name, random_state=random_state, scoring=para.scoring)
        key = (type(para).__name__, epochs_input)
        groups.setdefault(key, (para, epochs_input, {}, isinstance(pipelines, Mapping)))[2][
            name] = est
    return list(groups.values())


def _run_moabb(evaluation, paradigm, dataset, pipelines, subjects, *, epochs_input,
               random_state, n_jobs, data_memo=None):
    import moabb.evaluations as mevaluations

    from .moabb_fixes import fix_paradigm

    cls = getattr(mevaluations, EVALUATIONS[evaluation])
    paradigm = fix_paradigm(paradigm, dataset)
    if data_memo is not None:  # bci.evaluation.cluster.SubjectDataMemo: reuse loaded subjects
        paradigm = data_memo.wrap(paradigm)
    with tempfile.TemporaryDirectory(prefix="bci-moabb-") as tmp, \
            missing_data_as_file_not_found(dataset, subjects):
        ev = cls(paradigm=paradigm, datasets=[dataset], overwrite=True, hdf5_path=tmp,
                 random_state=random_state, n_jobs=n_jobs, return_epochs=epochs_input,
                 mne_labels=epochs_input, save_model=False)
        # MOABB's own per-subject bar would print one finished bar per step of ours
        with mock.patch.object(mevaluations.evaluations, "tqdm", lambda iterable, **_: iterable), \
                warnings.catch_warnings():
            # moabb 1.7.2 writes its (temporary) HDF5 results with an h5py-deprecated call
            warnings.filterwarnings("ignore", message="Creating a dataset without passing data")
            return ev.process(pipelines)


def summarize(results) -> Any:
    """Mean ± sd score and mean fit time per pipeline.

    Parameters
    ----------
    results : pandas.DataFrame
        As returned by :func:`benchmark`.

    Returns
    -------
    summary : pandas.DataFrame
        Indexed by pipeline, columns ``score_mean``, ``score_std``, ``time_mean`` (seconds),
        ``n`` (rows averaged), sorted by decreasing mean score.
    """
    grouped = results.groupby("pipeline", sort=False)
    summary = grouped.agg(score_mean=("score", "mean"), score_std=("score", "std"),
                          time_mean=("time", "mean"), n=("score", "size"))
    summary["score_std"] = summary["score_std"].fillna(0.0)
    return summary.sort_values("score_mean", ascending=False)


def format_table(results, *, metric: str = "score") -> str:
    """Format :func:`summarize` as a plain-text table: ``pipeline | score (mean ± sd) | time``."""
    summary = summarize(results)
    width = max([16, *(len(str(name)) for name in summary.index)])
    header = f"{'pipeline':<{width}} {metric + ' (mean ± sd)':>22} {'fit time (s)':>13} {'n':>4}"
    lines = [header, "-" * len(header)]
    for name, row in summary.iterrows():
        lines.append(f"{name:<{width}} {row.score_mean:>13.4f} ± {row.score_std:<6.4f} "
                     f"{row.time_mean:>13.3f} {int(row.n):>4d}")
    return "\n".join(lines)


def plot_scores(results, fname: str | Path | None = None):
    """Plot the score of each pipeline for each subject (means over sessions/folds).

    Parameters
    ----------
    results : pandas.DataFrame
        As returned by :func:`benchmark`.
    fname : str | Path | None
        Save the figure there (PNG) when given.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib

    if fname is not None:
        matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    table = results.groupby(["pipeline", "subject"], sort=False)["score"].mean().unstack()
    pipelines = list(summarize(results).index)
    table = table.loc[pipelines]
    subjects = [str(s) for s in table.columns]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 0.55 * len(pipelines)), 4.0),
                           layout="constrained")
    x = np.arange(len(pipelines))
    rng = np.random.default_rng(0)  # jitter only, for legibility
    for j, subject in enumerate(subjects):
        jitter = rng.uniform(-0.15, 0.15, size=len(pipelines)) if len(subjects) > 1 else 0.0
        ax.scatter(x + jitter, table.iloc[:, j], s=22, alpha=0.8,
                   label=f"subject {subject}" if len(subjects) <= 12 else None)
    ax.errorbar(x, table.mean(axis=1), yerr=table.std(axis=1).fillna(0.0), fmt="_k",
                markersize=20, capsize=4, label="mean ± sd")
    ax.set_xticks(x, pipelines, rotation=30, ha="right")
    dataset = ", ".join(map(str, results["dataset"].unique()))
    evaluation = ", ".join(map(str, results["evaluation"].unique()))
    ax.set_ylabel("score (MOABB metric)")
    ax.set_title(f"{dataset} – {evaluation}")
    ax.grid(axis="y", alpha=0.3)
    if len(subjects) <= 12:
        ax.legend(fontsize="small", loc="best")
    if fname is not None:
        fig.savefig(fname, dpi=120)
    return fig


def write_results(results, out: str | Path) -> Path:
    """Write ``results.csv``, ``summary.csv`` and ``scores.png`` to the folder ``out``."""
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "results.csv", index=False)
    summarize(results).to_csv(out / "summary.csv")
    fig = plot_scores(results, out / "scores.png")
    plt.close(fig)
    logger.info("Wrote %s", out)
    return out
