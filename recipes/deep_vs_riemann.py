"""Deep decoders (EEGNeX, EEGNet, ShallowConvNet) next to Riemannian pipelines, within-session.

Each experiment is one :func:`bci.benchmark` run (MOABB's ``WithinSessionEvaluation``, 5 folds,
``random_state=42``); the table prints mean ± sd over the cross-validation folds (MOABB's
per-fold scores are kept instead of their mean, see ``--per-fold``) and per-subject means, and
everything is written to ``OUT/<experiment>/`` (``results.csv``, ``summary.csv``, ``scores.png``)
plus ``OUT/<experiment>.json``.

Experiments
-----------
``lr``        PhysionetMI subject 1, left vs right hand imagery, ROC-AUC.
``mi4``       PhysionetMI subject 1, 4-class ``MotorImagery``, accuracy.
``ssvep``     Kalunga2016, 11 subjects, ``SSVEP`` (4 classes), accuracy; the filter-bank
              Riemannian pipelines get ``FilterBankSSVEP`` (bci benchmark's SSVEP handling).
``ablation``  PhysionetMI subject 1 left/right, EEGNeX only, under training variants (the old
              early-stopping settings, no BatchNorm recalibration, scaling, learning rate,
              MOABB's Keras recipe) to find what matters.
``augment``   Kalunga2016 (4 classes), EEGNeX and ShallowConvNet under each augmentation of
              the training batches (:class:`bci.models.augmentation.EpochAugmentation`),
              none included; same folds and seeds as ``ssvep``.
``augment-lr`` The same on PhysionetMI subject 1 left/right (ROC-AUC).
``filterbank`` Kalunga2016 (4 classes), EEGNeX and ShallowConvNet on the filter-bank epochs the
              Riemannian SSVEP pipelines get (``FilterBankSSVEP``: one band-pass per stimulus
              frequency, bands stacked as channels by MOABB's ``ExtendedSSVEPSignal``).

All deep pipelines use the registered training settings (``bci.pipelines.registry.
DEEP_SETTINGS``) unless the ablation changes them (``--max-epochs`` and ``--quick`` change the
epoch budget for the run only). CPU only; torch uses ``--threads`` threads.

Data: MOABB downloads or finds PhysionetMI and Kalunga2016 under ``MNE_DATA`` (or their
``MNE_DATASETS_<SIGN>_PATH``); set ``MOABB_DOWNLOAD_PROVIDER=upstream`` offline.

Usage::

    nice python recipes/deep_vs_riemann.py lr mi4 ssvep --out results/deep_vs_riemann
    python recipes/deep_vs_riemann.py lr --quick        # a tiny smoke configuration
    # on a busy CPU: fewer subjects, without the slow ACM+TS+SVM
    nice python recipes/deep_vs_riemann.py ssvep --subjects 1 2 3
    nice python recipes/deep_vs_riemann.py lr --pipelines EEGNeX EEGNet ShallowConvNet TS+SVM
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from unittest import mock

import torch
from moabb.evaluations import WithinSessionEvaluation
from moabb.pipelines import ExtendedSSVEPSignal
from sklearn.pipeline import make_pipeline

import bci
from bci.evaluation.benchmarks import format_table, summarize
from bci.models.classifier import DeepClassifier
from bci.pipelines.registry import DEEP_SETTINGS

DEEP = ["EEGNeX", "EEGNet", "ShallowConvNet"]
EXPERIMENTS = {
    "lr": dict(dataset="PhysionetMI", paradigm="LeftRightImagery", subjects=[1],
               pipelines=[*DEEP, "TS+SVM", "ACM+TS+SVM"], metric="ROC-AUC"),
    # events must be named: MOABB's MotorImagery ignores n_classes without them and would add
    # PhysionetMI's "rest" (84 of 174 trials) as a fifth class
    "mi4": dict(dataset="PhysionetMI", paradigm="MotorImagery", subjects=[1],
                paradigm_params={"n_classes": 4,
                                 "events": ["left_hand", "right_hand", "feet", "hands"]},
                pipelines=[*DEEP, "TS+SVM", "ACM+TS+SVM"],
                metric="accuracy"),
    "ssvep": dict(dataset="Kalunga2016", paradigm="SSVEP", subjects=list(range(1, 12)),
                  paradigm_params={"n_classes": 4},
                  pipelines=[*DEEP, "SSVEP_TS+LR", "SSVEP_TS+SVM", "SSVEP_CCA"],
                  metric="accuracy"),
}


#: experiments whose pipelines are built here (name -> estimator) rather than registered names
BUILT_EXPERIMENTS = ("ablation", "augment", "augment-lr", "filterbank")


def _ablation_pipelines(max_epochs: int) -> dict:
    """EEGNeX under training variants (name -> estimator), on the LeftRightImagery paradigm."""
    base = {**DEEP_SETTINGS, "max_epochs": max_epochs}
    # the registered settings themselves are the EEGNeX row of the "lr" experiment
    variants = {
        # the previous registered settings: early stopping on a 20 % validation split (7-10
        # epochs here), restore of the best validation epoch, no BatchNorm recalibration
        "EEGNeX early stop (old)": {"patience": 15, "val_fraction": 0.2,
                                    "recalibrate_batch_norm": False, "augmentation": None},
        "EEGNeX no BN recalibration": {"recalibrate_batch_norm": False},
        "EEGNeX scale=sample (MOABB)": {"scaling": "sample"},
        "EEGNeX scale=epoch": {"scaling": "epoch"},
        "EEGNeX lr=3e-3": {"lr": 3e-3},
        # MOABB's Keras recipe on our network: per-time-sample scaling, no weight decay,
        # batch 64 (one step per epoch here), plateau schedule, no gradient clipping, early
        # stopping on a validation split, no restore of the best epoch's BatchNorm statistics
        "EEGNeX MOABB recipe": {"scaling": "sample", "weight_decay": 0.0, "batch_size": 64,
                                "scheduler": "plateau", "gradient_clip_val": None,
                                "patience": 15, "val_fraction": 0.2,
                                "recalibrate_batch_norm": False, "augmentation": None},
    }
    return {name: DeepClassifier("EEGNeX", **{**base, **v}) for name, v in variants.items()}


#: augmentation variants of the ``augment`` experiment (EpochAugmentation keywords; the
#: registered recipe is "shift+gain+noise")
AUGMENTATIONS = {
    "none": None,
    "shift": {"time_shift": 0.1},
    "recombine": {"recombine": 4},
    "shift+gain+noise": {"time_shift": 0.1, "scale": 0.2, "noise": 0.1},
}


def _augment_pipelines(max_epochs: int) -> dict:
    """EEGNeX and ShallowConvNet with each augmentation of :data:`AUGMENTATIONS`."""
    base = {**DEEP_SETTINGS, "max_epochs": max_epochs}
    return {f"{model} aug={name}": DeepClassifier(model, **{**base, "augmentation": aug})
            for model in ("EEGNeX", "ShallowConvNet") for name, aug in AUGMENTATIONS.items()}


def _filterbank_pipelines(max_epochs: int) -> dict:
    """EEGNeX and ShallowConvNet on filter-bank epochs, bands stacked as channels."""
    base = {**DEEP_SETTINGS, "max_epochs": max_epochs}
    return {f"{model} filter bank": make_pipeline(ExtendedSSVEPSignal(),
                                                  DeepClassifier(model, **base))
            for model in ("EEGNeX", "ShallowConvNet")}


def run(name: str, out: Path, *, resample: float | None, quick: bool, per_fold: bool,
        only: list[str] | None = None, subjects: list[int] | None = None) -> dict:
    """Run one experiment with :func:`bci.benchmark`; print its table, write its JSON."""
    if name == "ablation":
        exp = dict(dataset="PhysionetMI", paradigm="LeftRightImagery", subjects=[1],
                   metric="ROC-AUC", pipelines=_ablation_pipelines(DEEP_SETTINGS["max_epochs"]))
    elif name == "filterbank":
        exp = {**EXPERIMENTS["ssvep"], "paradigm": "FilterBankSSVEP",
               "pipelines": _filterbank_pipelines(DEEP_SETTINGS["max_epochs"])}
    elif name in ("augment", "augment-lr"):
        exp = {**EXPERIMENTS["ssvep" if name == "augment" else "lr"],
               "pipelines": _augment_pipelines(DEEP_SETTINGS["max_epochs"])}
    else:
        exp = dict(EXPERIMENTS[name])
    if only:
        pipes = exp["pipelines"]
        unknown = sorted(set(only) - set(pipes))
        if unknown:
            raise ValueError(f"{unknown} are not pipelines of experiment {name!r}: {list(pipes)}")
        exp["pipelines"] = ({k: v for k, v in pipes.items() if k in only}
                            if isinstance(pipes, dict) else [p for p in pipes if p in only])
    if subjects:
        exp["subjects"] = list(subjects)
    params = dict(exp.get("paradigm_params", {}))
    if resample:
        params["resample"] = resample
    dataset, subjects = exp["dataset"], exp["subjects"]
    if quick:
        ssvep = name in ("ssvep", "augment", "filterbank")
        dataset, subjects = ("SyntheticSSVEP" if ssvep else "SyntheticMotorImagery"), [1]
        if name in BUILT_EXPERIMENTS:
            exp["pipelines"] = dict(list(exp["pipelines"].items())[:2])
        elif name == "ssvep":
            exp["pipelines"] = [p for p in exp["pipelines"] if p != "SSVEP_CCA"]
        params.pop("n_classes", None)
        params.pop("events", None)
    print(f"\n=== {name}: {dataset} subjects {subjects}, {exp['paradigm']} {params}, "
          f"{exp['metric']} ===", flush=True)
    start = time.perf_counter()
    results = bci.benchmark(dataset=dataset, paradigm=exp["paradigm"], paradigm_params=params,
                            pipelines=exp["pipelines"], subjects=subjects,
                            evaluation="within-session", random_state=42, out=out / name)
    elapsed = time.perf_counter() - start
    print(format_table(results, metric=exp["metric"]))
    per_subject = results.groupby(["pipeline", "subject"])["score"].mean().unstack()
    if len(subjects) > 1:
        print("\nper-subject means:\n" + per_subject.round(3).to_string())
    summary = summarize(results)
    report = {
        "experiment": name, "dataset": dataset, "subjects": subjects,
        "paradigm": exp["paradigm"], "paradigm_params": params, "metric": exp["metric"],
        "per_fold": per_fold, "deep_settings": dict(DEEP_SETTINGS),
        "seconds": round(elapsed, 1),
        **({"augmentations": AUGMENTATIONS} if name.startswith("augment") else {}),
        "summary": {p: {k: float(v) for k, v in row.items()} for p, row in summary.iterrows()},
        "per_subject": {p: {str(s): float(v) for s, v in row.items()}
                        for p, row in per_subject.iterrows()},
    }
    (out / f"{name}.json").write_text(json.dumps(report, indent=2))
    print(f"({elapsed:.0f} s) wrote {out / name}/ and {out / name}.json", flush=True)
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the experiments named on the command line (``argv``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiments", nargs="+",
                        choices=[*EXPERIMENTS, *BUILT_EXPERIMENTS])
    parser.add_argument("--out", default="results/deep_vs_riemann", type=Path)
    parser.add_argument("--resample", type=float, default=128.0,
                        help="resample all epochs to this rate (Hz; MOABB's EEGNeX pipeline "
                             "used 128); 0 keeps the dataset's")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="override DEEP_SETTINGS['max_epochs']")
    parser.add_argument("--pipelines", nargs="+", default=None,
                        help="run only these pipelines of the experiment (e.g. leave out the "
                             "slow ACM+TS+SVM)")
    parser.add_argument("--subjects", nargs="+", type=int, default=None,
                        help="run only these subjects of the experiment (CPU budget)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--per-fold", action=argparse.BooleanOptionalAction, default=True,
                        help="keep MOABB's per-fold scores (default) instead of their mean")
    parser.add_argument("--quick", action="store_true",
                        help="synthetic data, 2 epochs: check that the recipe runs")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    # the epoch budget of the registered deep pipelines, for this run only
    max_epochs = 2 if args.quick else args.max_epochs
    settings = {} if max_epochs is None else {"max_epochs": max_epochs}
    # MOABB >= 1.5 averages the 5 folds of a within-session evaluation into one row; keep the
    # folds to report their spread (the mean is the same number MOABB reports)
    with mock.patch.dict(DEEP_SETTINGS, settings), \
            mock.patch.object(WithinSessionEvaluation, "_aggregate_folds", not args.per_fold):
        for name in args.experiments:
            run(name, args.out, resample=args.resample or None, quick=args.quick,
                per_fold=args.per_fold, only=args.pipelines, subjects=args.subjects)
    return 0


if __name__ == "__main__":
    sys.exit(main())
