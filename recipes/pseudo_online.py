"""Pseudo-online evaluation: offline score beside what a user of the BCI would see.

Each experiment is one :func:`bci.benchmark` run with ``evaluation="pseudo-online"``: MOABB's
within-session folds (5, seed 42), the pipeline fitted as MOABB fits it, then every held-out
trial replayed from the continuous recording through the online loop (a window of the
paradigm's epoch length every ``--step-s``), and the rest periods replayed for false
activations. The table prints, per pipeline: the offline score (MOABB's metric), the offline
accuracy, the pseudo-online accuracy of the decision forced at the end of the epoch, the
accuracy and median time of the selections (first decision with probability >= ``--threshold``,
else the forced one), Wolpaw's ITR (selection time plus the dataset's inter-trial interval)
and false activations per minute of rest. Everything goes to ``OUT/<experiment>/``
(``results.csv``, ``folds.csv``, ``trials.csv``, ``curves.csv``, ``summary.csv``,
``accuracy_vs_time.png``) and ``OUT/<experiment>.json``.

Experiments
-----------
``lr``     PhysionetMI subject 1, left vs right hand imagery (ROC-AUC offline); T0 rest
           between trials is the no-control period; ITI 4.2 s.
``mi4``    PhysionetMI subject 1, 4 classes (left hand, right hand, feet, both hands), T0 rest.
``ssvep``  Kalunga2016, 11 subjects, 3 classes (13, 17, 21 Hz); the rest trials are the
           no-control periods; ITI 1.5 s.

``--extra`` adds each experiment's slower pipelines: ACM+TS+SVM (PhysionetMI) or SSVEP_CCA
(Kalunga2016, fitted on MNE epochs through ``bci.realtime.pseudo_online.EpochsInput``) and the
three registered networks (EEGNeX, EEGNet, ShallowConvNet, trained as
``bci.pipelines.registry.DEEP_SETTINGS`` says, or for ``--max-epochs``); ``--only-extra``
runs them alone.

Usage::

    nice python recipes/pseudo_online.py lr mi4 ssvep --out results/pseudo_online
    nice python recipes/pseudo_online.py lr mi4 --only-extra --out results/pseudo_online_extra
    python recipes/pseudo_online.py lr --quick      # synthetic data: check that it runs
    python recipes/pseudo_online.py lr --quick --extra   # ... with EEGNet (1 epoch)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import bci
from bci.evaluation.online import format_online_table, summarize_online

RIEMANN_MI = ["CSP+LDA", "TS+LR", "TS+SVM", "MDM", "FgMDM"]
#: the registered networks (trained with ``bci.pipelines.registry.DEEP_SETTINGS``)
NETWORKS = ["EEGNeX", "EEGNet", "ShallowConvNet"]
EXPERIMENTS = {
    "lr": dict(dataset="PhysionetMI", paradigm="LeftRightImagery", subjects=[1],
               pipelines=RIEMANN_MI),
    "mi4": dict(dataset="PhysionetMI", paradigm="MotorImagery", subjects=[1],
                paradigm_params={"n_classes": 4,
                                 "events": ["left_hand", "right_hand", "feet", "hands"]},
                pipelines=RIEMANN_MI),
    "ssvep": dict(dataset="Kalunga2016", paradigm="SSVEP", subjects=list(range(1, 12)),
                  paradigm_params={"n_classes": 3},
                  pipelines=["SSVEP_TS+LR", "SSVEP_TS+SVM", "SSVEP_MDM"]),
}
#: the slower pipelines of each experiment, run with ``--extra`` (``--only-extra``: alone)
EXTRA = {"lr": ["ACM+TS+SVM", *NETWORKS], "mi4": ["ACM+TS+SVM", *NETWORKS],
         "ssvep": ["SSVEP_CCA", *NETWORKS]}
QUICK = dict(dataset="SyntheticMotorImagery", paradigm="LeftRightImagery", subjects=[1],
             dataset_params={"n_subjects": 1, "n_trials": 5}, pipelines=["MDM"])
QUICK_EXTRA = ["EEGNet"]


def main(argv: list[str] | None = None) -> int:
    """Run the experiments named on the command line (``argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+", choices=list(EXPERIMENTS))
    parser.add_argument("--out", default="results/pseudo_online", type=Path)
    parser.add_argument("--pipelines", nargs="+", default=None,
                        help="run only these pipelines (e.g. a network: EEGNet)")
    parser.add_argument("--subjects", nargs="+", type=int, default=None,
                        help="run only these subjects (CPU budget)")
    parser.add_argument("--step-s", type=float, default=0.1, help="s between windows")
    parser.add_argument("--threshold", type=float, default=0.8,
                        help="probability of a confident decision")
    parser.add_argument("--n-consecutive", type=int, default=1,
                        help="consecutive confident windows a decision needs")
    parser.add_argument("--extra", action="store_true",
                        help="add the experiment's slower pipelines (ACM+TS+SVM or "
                             "SSVEP_CCA, and the networks EEGNeX, EEGNet, ShallowConvNet)")
    parser.add_argument("--only-extra", action="store_true",
                        help="run the slower pipelines alone (without the Riemannian ones)")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="training epochs of the networks (default: the registry's 60)")
    parser.add_argument("--quick", action="store_true",
                        help="synthetic data, one pipeline (and EEGNet with --extra, 1 "
                             "epoch), 0.5-s steps: check that it runs")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.experiments:
        config = dict(QUICK if args.quick else EXPERIMENTS[name])
        extra = QUICK_EXTRA if args.quick else EXTRA[name]
        if args.only_extra:
            config["pipelines"] = list(extra)
        elif args.extra:
            config["pipelines"] = [*config["pipelines"], *extra]
        if args.pipelines:
            config["pipelines"] = args.pipelines
        if args.subjects:
            config["subjects"] = args.subjects
        max_epochs = 1 if args.quick and args.max_epochs is None else args.max_epochs
        networks = [p for p in config["pipelines"] if p in NETWORKS]
        pipeline_params = ({p: {"max_epochs": max_epochs} for p in networks}
                           if max_epochs is not None else None)
        step_s = 0.5 if args.quick else args.step_s
        start = time.perf_counter()
        print(f"{name}: {config['dataset']} {config['paradigm']} subjects "
              f"{config['subjects']}, {', '.join(config['pipelines'])} ...", flush=True)
        results = bci.benchmark(evaluation="pseudo-online", step_s=step_s,
                                threshold=args.threshold, n_consecutive=args.n_consecutive,
                                out=args.out / name, pipeline_params=pipeline_params,
                                **config)
        wall_s = time.perf_counter() - start
        print(format_online_table(results))
        print(f"{len(results)} rows in {wall_s:.0f} s; wrote {args.out / name}/\n", flush=True)
        summary = summarize_online(results)
        report = {
            "experiment": name, "quick": args.quick, "dataset": config["dataset"],
            "paradigm": config["paradigm"], "subjects": config["subjects"],
            "paradigm_params": config.get("paradigm_params", {}),
            "step_s": step_s, "threshold": args.threshold,
            "n_consecutive": args.n_consecutive, "wall_s": round(wall_s, 1),
            "pipelines": list(config["pipelines"]), "network_max_epochs": max_epochs,
            "fit_s_per_fold": {p: round(float(v), 2) for p, v in results.groupby(
                "pipeline", sort=False)["time"].mean().items()},
            "summary": {p: {k: (None if v != v else round(float(v), 4)) for k, v in row.items()}
                        for p, row in summary.iterrows()},
            "per_subject_online_accuracy": {
                p: {str(s): round(float(v), 4) for s, v in part.groupby("subject")[
                    "online_accuracy"].mean().items()}
                for p, part in results.groupby("pipeline", sort=False)},
        }
        (args.out / f"{name}.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
