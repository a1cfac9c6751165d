r"""Wall time of ``bci benchmark`` serial vs ``--cluster local:N``, and the resume after a kill.

Every run is the whole command, in a fresh process through the ``bci`` CLI (imports, cluster
start, result files and plot included), with ``--no-cache`` and a temporary ``--cache-dir``,
so nothing is read from an earlier run::

    python benchmarks/cluster_speed.py --dataset Kalunga2016 --paradigm SSVEP \\
        --paradigm-param n_classes=4 --pipelines SSVEP_TS+LR,SSVEP_TS+SVM,SSVEP_MDM,SSVEP_CCA \\
        --subjects 1-11 --workers 2 --pairs 3 --out results/cluster_speed

What it does, in this order:

1. ``--pairs`` K pairs of runs, serial and ``--cluster local:N``, interleaved (the first run of
   a pair alternates: serial first in pairs 1, 3..., the cluster first in pairs 2, 4...), so
   a load change on a shared machine hits both. For each run: wall time (s), cells computed,
   cells per second (cells / wall time), ``os.getloadavg()`` before and after, the scores
   (``results.csv``), checked equal to the first serial run's, and the cells' costs that the
   command logs (``bci -v``): CPU time a cell (the cell's thread, on the worker or here, so a
   load from other jobs changes it far less than wall time) and the subject-data memo's hits
   and misses, with the most hits possible (each data group loaded once). Speed-up of a pair =
   serial wall / cluster wall.
2. Unless ``--no-resume``: the cluster command with an empty cache (not ``--no-cache``); once
   half of the cells are cached, the client is killed with SIGKILL. Its remaining child
   processes (worker processes, Dask's fork server) are counted after a bounded wait (they
   should exit on their own: their parent is gone) and killed if still there. Then the same
   command again: its wall time, the cells it computed and the cells it read from the cache.

Everything goes to ``<out>/cluster_speed.json`` after each run (a run cut short still leaves
numbers), and a table is printed, then the command to measure wall time on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_CELLS = re.compile(r"\((\d+) of (\d+) cells computed")
#: The cell costs ``bci -v benchmark`` logs (bci.evaluation.cluster.run_cells).
_COSTS = re.compile(r"Cell costs: (\d+) cells in (\d+) processes, ([\d.]+) s CPU a cell "
                    r"\(([\d.]+) s in all\); subject-data memo: (\d+) hits, (\d+) misses "
                    r"\(at most (\d+) hits")


def _bci_command() -> list[str]:
    """Return the ``bci`` console script of this environment (else ``python -m bci.cli``)."""
    script = Path(sys.executable).with_name("bci")
    if script.is_file():
        return [str(script)]
    found = shutil.which("bci")
    return [found] if found else [sys.executable, "-m", "bci.cli"]


def _argv(args, cache_dir: Path, out_dir: Path, cluster: bool, no_cache: bool) -> list[str]:
    argv = [*_bci_command(), "-v", "benchmark", "--dataset", args.dataset, "--paradigm",
            args.paradigm, "--pipelines", args.pipelines, "--evaluation", args.evaluation,
            "--cache-dir", str(cache_dir), "--out", str(out_dir)]
    for value in args.paradigm_param:
        argv += ["--paradigm-param", value]
    for value in args.dataset_param:
        argv += ["--dataset-param", value]
    if args.subjects:
        argv += ["--subjects", args.subjects]
    if cluster:
        argv += ["--cluster", f"local:{args.workers}"]
    if no_cache:
        argv.append("--no-cache")
    return argv


def _scores(out_dir: Path) -> list[float]:
    import pandas as pd

    return pd.read_csv(out_dir / "results.csv")["score"].tolist()


def _cells(text: str) -> tuple[int, int]:
    match = _CELLS.search(text)
    if match is None:
        raise RuntimeError(f"bci benchmark printed no cell count; its output:\n{text[-3000:]}")
    return int(match.group(1)), int(match.group(2))


def _costs(text: str) -> dict | None:
    """Return the cell costs the command logged (None when it computed no cell)."""
    match = _COSTS.search(text)
    if match is None:
        return None
    n, procs, per_cell, total, hits, misses, best = match.groups()
    return {"n_cells": int(n), "n_processes": int(procs), "cpu_s_per_cell": float(per_cell),
            "cpu_s": float(total), "memo_hits": int(hits), "memo_misses": int(misses),
            "max_memo_hits": int(best)}


def _run(args, work: Path, name: str, cluster: bool) -> dict:
    """One whole ``bci benchmark`` command, fresh cache, ``--no-cache``; its numbers."""
    cache_dir, out_dir = work / f"{name}_cache", work / f"{name}_out"
    argv = _argv(args, cache_dir, out_dir, cluster, no_cache=True)
    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout_s,
                          check=False)
    wall = time.perf_counter() - start
    load_after = os.getloadavg()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode}:\n"
                           f"{proc.stderr[-3000:]}")
    n_computed, n_cells = _cells(proc.stdout)
    return {"run": name, "mode": f"local:{args.workers}" if cluster else "serial",
            "wall_s": wall, "n_cells": n_cells, "n_computed": n_computed,
            "cells_per_s": n_computed / wall, "loadavg_before": list(load_before),
            "loadavg_after": list(load_after), "cost": _costs(proc.stderr),
            "scores": _scores(out_dir)}


def _descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_until(predicate, timeout_s: float, poll_s: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()


def _resume(args, work: Path, n_cells: int) -> dict:
    """Kill the cluster command (SIGKILL) once half its cells are cached; rerun; time it."""
    cache_dir, out_dir = work / "resume_cache", work / "resume_out"
    argv = _argv(args, cache_dir, out_dir, cluster=True, no_cache=False)
    half = (n_cells + 1) // 2

    def cached() -> int:
        return sum(1 for _ in cache_dir.rglob("*.json")) if cache_dir.exists() else 0

    load_before = os.getloadavg()
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        reached = _wait_until(lambda: cached() >= half or proc.poll() is not None,
                              args.timeout_s)
        children = _descendants(proc.pid)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        raise
    killed_at = time.perf_counter() - start
    # the workers and the fork server notice that their parent is gone and exit
    exited = _wait_until(lambda: not any(_alive(p) for p in children), args.orphan_wait_s)
    left = [p for p in children if _alive(p)]
    for pid in left:  # ours: started by the command we started
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    cached_before = cached()
    rerun_start = time.perf_counter()
    again = subprocess.run(argv, capture_output=True, text=True, timeout=args.timeout_s,
                           check=False)
    wall = time.perf_counter() - rerun_start
    if again.returncode != 0:
        raise RuntimeError(f"the resumed run exited with {again.returncode}:\n"
                           f"{again.stderr[-3000:]}")
    n_computed, n_total = _cells(again.stdout)
    return {"killed": killed and reached, "killed_after_s": killed_at,
            "cached_at_kill_target": half, "cached_before_rerun": cached_before,
            "child_processes": len(children), "children_exited_by_themselves": exited,
            "children_left": len(left), "rerun_wall_s": wall, "rerun_n_computed": n_computed,
            "rerun_n_cells": n_total, "rerun_cost": _costs(again.stderr),
            "loadavg_before": list(load_before),
            "loadavg_after": list(os.getloadavg()), "scores": _scores(out_dir)}


def _summary(runs: list[dict]) -> dict:
    pairs = {}
    for run in runs:
        pairs.setdefault(run["pair"], {})[run["mode"] == "serial"] = run
    speedups = [p[True]["wall_s"] / p[False]["wall_s"] for p in pairs.values() if len(p) == 2]
    out = {"speedups": speedups}
    for mode in sorted({r["mode"] for r in runs}):
        walls = [r["wall_s"] for r in runs if r["mode"] == mode]
        costs = [r["cost"] for r in runs if r["mode"] == mode and r.get("cost")]
        out[mode] = {"wall_s_median": statistics.median(walls), "wall_s_min": min(walls),
                     "cells_per_s_median": statistics.median(
                         [r["cells_per_s"] for r in runs if r["mode"] == mode])}
        if costs:
            out[mode]["cpu_s_per_cell_median"] = statistics.median(
                c["cpu_s_per_cell"] for c in costs)
            out[mode]["memo_hits_median"] = statistics.median(c["memo_hits"] for c in costs)
    if speedups:
        out["speedup_median"] = statistics.median(speedups)
    return out


def _table(report: dict) -> str:
    lines = ["| pair | run | wall (s) | cells | cells/s | CPU s a cell | memo hits (most) "
             "| load before -> after (1 min) |", "|---|---|---|---|---|---|---|---|"]
    for run in report["runs"]:
        cost = run.get("cost")
        cpu = f"{cost['cpu_s_per_cell']:.3f}" if cost else "-"
        hits = f"{cost['memo_hits']} ({cost['max_memo_hits']})" if cost else "-"
        lines.append(f"| {run['pair']} | {run['mode']} | {run['wall_s']:.1f} | "
                     f"{run['n_computed']} | {run['cells_per_s']:.2f} | {cpu} | {hits} | "
                     f"{run['loadavg_before'][0]:.2f} -> {run['loadavg_after'][0]:.2f} |")
    summary = report["summary"]
    if summary.get("speedups"):
        lines.append("")
        lines.append("speed-up per pair (serial / cluster wall): "
                     + ", ".join(f"{s:.2f}x" for s in summary["speedups"])
                     + f"; median {summary['speedup_median']:.2f}x")
    resume = report.get("resume")
    if resume:
        lines.append(
            f"resume: client {'killed (SIGKILL)' if resume['killed'] else 'NOT killed'} after "
            f"{resume['killed_after_s']:.1f} s, {resume['cached_before_rerun']} of "
            f"{resume['rerun_n_cells']} cells cached; {resume['child_processes']} child "
            f"processes, {resume['children_left']} left behind; rerun "
            f"{resume['rerun_wall_s']:.1f} s computing {resume['rerun_n_computed']} cells "
            f"(load {resume['loadavg_before'][0]:.2f} -> {resume['loadavg_after'][0]:.2f})")
    return "\n".join(lines)


def quiet_command(args) -> str:
    """Return the command of the wall-time measurement on a quiet machine (3 pairs, resume).

    The same options as ``args`` with ``--pairs`` at least 3, the resume measurement on and
    ``--out results/cluster_speed``; ``MNE_DATA`` is named when it is set here.
    """
    parts = ["python", "benchmarks/cluster_speed.py", "--dataset", args.dataset, "--paradigm",
             args.paradigm]
    for value in args.paradigm_param:
        parts += ["--paradigm-param", value]
    for value in args.dataset_param:
        parts += ["--dataset-param", value]
    parts += ["--pipelines", args.pipelines]
    if args.subjects:
        parts += ["--subjects", args.subjects]
    if args.evaluation != "within-session":
        parts += ["--evaluation", args.evaluation]
    parts += ["--workers", str(args.workers), "--pairs", str(max(3, args.pairs)), "--out",
              "results/cluster_speed"]
    env = f"MNE_DATA={shlex.quote(os.environ['MNE_DATA'])} " if os.environ.get("MNE_DATA") \
        else ""
    return env + " ".join(shlex.quote(p) for p in parts)


def _count(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text}")
        return value

    return parse


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0 (s), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser of this benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="Kalunga2016")
    parser.add_argument("--paradigm", default="SSVEP")
    parser.add_argument("--paradigm-param", action="append", default=[])
    parser.add_argument("--dataset-param", action="append", default=[])
    parser.add_argument("--pipelines", default="SSVEP_TS+LR,SSVEP_TS+SVM,SSVEP_MDM,SSVEP_CCA")
    parser.add_argument("--subjects", default=None, help="e.g. 1-11 (default: all)")
    parser.add_argument("--evaluation", default="within-session")
    parser.add_argument("--workers", type=_count(1), default=2,
                        help="worker processes of --cluster local:N (default 2)")
    parser.add_argument("--pairs", type=_count(1), default=3,
                        help="serial/cluster pairs, interleaved (default 3)")
    parser.add_argument("--no-resume", action="store_true",
                        help="skip the kill-and-resume measurement")
    parser.add_argument("--timeout-s", type=_positive, default=1800.0,
                        help="limit of one command (s, default 1800)")
    parser.add_argument("--orphan-wait-s", type=_positive, default=15.0,
                        help="how long the killed client's children get to exit (s)")
    parser.add_argument("--out", default="results/cluster_speed",
                        help="folder of cluster_speed.json")
    return parser


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; return (and write) the report."""
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"argv": sys.argv[1:] if argv is None else list(argv), "cpu_count": os.cpu_count(),
              "platform": platform.platform(), "python": platform.python_version(),
              "command": " ".join(_argv(args, Path("CACHE"), Path("OUT"), True, True)[1:]),
              "quiet_command": quiet_command(args),
              "runs": [], "summary": {}}

    def save() -> None:
        report["summary"] = _summary(report["runs"])
        (out / "cluster_speed.json").write_text(json.dumps(report, indent=1))

    with tempfile.TemporaryDirectory(prefix="bci-cluster-speed-") as tmp:
        work = Path(tmp)
        for pair in range(1, args.pairs + 1):
            order = (False, True) if pair % 2 else (True, False)  # serial first, then alternate
            for cluster in order:
                run = _run(args, work, f"pair{pair}_{'cluster' if cluster else 'serial'}",
                           cluster)
                run["pair"] = pair
                report["runs"].append(run)
                save()
                print(f"pair {pair} {run['mode']}: {run['wall_s']:.1f} s "
                      f"(load {run['loadavg_before'][0]:.2f})", flush=True)
        reference = next(r["scores"] for r in report["runs"] if r["mode"] == "serial")
        report["scores_equal"] = all(r["scores"] == reference for r in report["runs"])
        if not args.no_resume:
            report["resume"] = _resume(args, work, report["runs"][0]["n_cells"])
            report["scores_equal"] &= report["resume"]["scores"] == reference
        save()
    print(_table(report))
    print(f"scores equal in every run: {report['scores_equal']}; wrote "
          f"{out / 'cluster_speed.json'}")
    print(f"wall time on a quiet machine (nothing else running): {report['quiet_command']}")
    return report


if __name__ == "__main__":
    main()
