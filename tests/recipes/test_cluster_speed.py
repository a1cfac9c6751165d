"""The cluster speed benchmark in a tiny configuration (synthetic data, 2 cells, 1 pair)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[2]


def _readme_command() -> list[str]:
    """Return the README's ``python benchmarks/cluster_speed.py ...`` command's arguments."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^python benchmarks/cluster_speed\.py (.+?)(?<!\\)$", text,
                      flags=re.MULTILINE | re.DOTALL)
    assert match is not None, "README lost its cluster_speed.py command"
    return shlex.split(match.group(1).replace("\\\n", " "))


def test_cluster_speed_tiny(tmp_path, script_main):
    main = script_main("benchmarks/cluster_speed.py")
    readme = _readme_command()
    assert readme[readme.index("--dataset") + 1] == "Kalunga2016"
    # the README's options, on 1 synthetic subject, 2 cells, 1 worker, 1 pair
    small = {"--dataset": "SyntheticSSVEP", "--pipelines": "SSVEP_MDM,SSVEP_TS+LR",
             "--subjects": "1", "--workers": "1", "--pairs": "1", "--out": str(tmp_path),
             "--paradigm-param": "n_classes=3"}
    argv = [small.get(prev, arg) for prev, arg in zip(["", *readme[:-1]], readme, strict=True)]
    report = main([*argv, "--dataset-param", "n_trials=4"])

    runs = report["runs"]
    assert [(r["pair"], r["mode"]) for r in runs] == [(1, "serial"), (1, "local:1")]
    for run in runs:
        assert (run["n_cells"], run["n_computed"]) == (2, 2)  # --no-cache: all computed
        assert run["wall_s"] > 0
        assert run["cells_per_s"] == pytest.approx(2 / run["wall_s"])
        assert len(run["loadavg_before"]) == len(run["loadavg_after"]) == 3
        assert len(run["scores"]) == 2
        # both pipelines read the same filter-bank data: loaded once, reused once
        cost = run["cost"]
        assert (cost["n_cells"], cost["n_processes"]) == (2, 1)
        assert (cost["memo_hits"], cost["memo_misses"], cost["max_memo_hits"]) == (1, 1, 1)
        assert 0 < cost["cpu_s"] == pytest.approx(2 * cost["cpu_s_per_cell"], abs=0.01)
    assert report["summary"]["speedups"] == [pytest.approx(runs[0]["wall_s"] / runs[1]["wall_s"])]
    assert report["scores_equal"] is True
    resume = report["resume"]
    assert resume["killed"] is True  # SIGKILL once 1 of the 2 cells was cached
    assert resume["cached_before_rerun"] >= resume["cached_at_kill_target"] == 1
    # the rerun computes exactly the cells the killed run did not cache
    assert resume["rerun_n_cells"] == 2
    assert resume["rerun_n_computed"] == 2 - resume["cached_before_rerun"]
    assert resume["child_processes"] >= 1  # the worker (and Dask's fork server)
    assert resume["children_left"] == 0
    assert resume["rerun_wall_s"] > 0
    if resume["rerun_n_computed"]:
        assert resume["rerun_cost"]["n_cells"] == resume["rerun_n_computed"]
    else:
        assert resume["rerun_cost"] is None
    assert report["summary"]["serial"]["memo_hits_median"] == 1
    # the command for the quiet machine: the README's options, 3 pairs, with the resume
    quiet = report["quiet_command"].split("python ", 1)[1]
    assert shlex.split(quiet)[:2] == ["benchmarks/cluster_speed.py", "--dataset"]
    for option in ("--pipelines SSVEP_MDM,SSVEP_TS+LR", "--workers 1", "--pairs 3",
                   "--out results/cluster_speed", "--paradigm-param n_classes=3"):
        assert option in quiet
    assert "--no-resume" not in quiet
    saved = json.loads((tmp_path / "cluster_speed.json").read_text())
    assert saved["runs"][1]["wall_s"] == runs[1]["wall_s"]
    assert saved["resume"]["rerun_n_computed"] == resume["rerun_n_computed"]


def test_cluster_speed_refuses_bad_counts(tmp_path, script_main):
    main = script_main("benchmarks/cluster_speed.py")
    with pytest.raises(SystemExit):
        main(["--pairs", "0", "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--orphan-wait-s", "nan", "--out", str(tmp_path)])
