r"""Neuro-GPT leave-one-subject-out: self-supervised pretraining against few trials.

For each held-out subject: pretrain a NeuroGPT (``bci.pipelines.pretrain.pretrain``, the
``bci pretrain`` command) on the continuous recordings of the other subjects of the pool
(``--pool-subjects``, default: every subject of the dataset; the held-out subject is never
prepared, and runs identical to its runs are left out), train an EEGNeX supervised on the other
subjects' epochs (epochs identical to one of the held-out subject's are left out), then, on
the held-out subject's own epochs, within each session, stratified ``--folds``-fold
cross-validation (shuffled, ``random_state=42``): for each training budget of ``--trials``
trials per class (drawn from the fold's training trials, seeded; ``all``: every one) fit

``NeuroGPT-pre``      the pretrained NeuroGPT fine-tuned (``--finetune``, default encoder), its
                      epochs put through the pretraining preprocessing (0.5-45 Hz, the file's
                      rate, channels mapped onto its 22, robust statistics of the training
                      trials: ``bci.pipelines.train.pretrained_channel_map``);
``NeuroGPT-scratch``  the same network and inputs, randomly initialised;
``NeuroGPT-pre-noaug``, ``NeuroGPT-scratch-noaug`` the same two without the registered
                      augmentation of the training batches (the paper fine-tunes without it);
``EEGNeX``            EEGNeX from scratch on the same 0.5-45 Hz epochs (the registered
                      pipeline's settings, its own scaling);
``EEGNeX-xsub-ft``    the cross-subject EEGNeX fine-tuned on the budget's trials (all weights,
                      the registered pipeline's settings; every subject's epochs standardised
                      per channel with that subject's own statistics: the other subjects' with
                      all their epochs, the held-out subject's with the budget's trials);
``EEGNeX-xsub``       the cross-subject EEGNeX without fine-tuning (the budget's trials only
                      give the standardisation statistics, their labels are not used);
``SSVEP_TS+LR``       the registered tangent-space pipeline on ``FilterBankSSVEP`` epochs (the
                      same trials in the same order);
``SSVEP_TS+LR-modelch`` the same on the channels NeuroGPT sees (those of the dataset among the
                      model's 22: O1, Oz, O2 of Kalunga2016's 8),

and score accuracy on the fold's test trials (and ROC-AUC with two classes, MOABB's score
for left/right imagery: ``roc_auc`` in the report). With ``--paradigm LeftRightImagery`` the
epochs are MOABB's ``LeftRightImagery`` ones (PhysionetMI: only the runs holding left/right
imagery are read) and the tangent-space arms are ``TS+LR`` (the registered pipeline on
``LeftRightImagery``'s default 8-32 Hz epochs at the dataset's rate) and ``TS+LR-modelch``
(on the channels NeuroGPT sees: 20 of PhysionetMI's 64).
``--extra-pretraining NAME ...`` adds the recordings of other datasets to every pretraining
(``--extra-pretraining-subjects``; the held-out subject is excluded from its own dataset only).
The table gives, per budget, mean ± sd over the held-out subjects of each subject's mean over
folds, and the Wilcoxon signed-rank p-values (two-sided, over subjects; NaN with fewer than 2
subjects or no difference) of NeuroGPT-pre against NeuroGPT-scratch, EEGNeX, EEGNeX-xsub-ft
and the tangent-space arm, and of NeuroGPT-pre-noaug against NeuroGPT-scratch-noaug and the
tangent-space arm. Everything goes to
``OUT/neurogpt_loso.json``, rewritten after each subject (and the README tables to
``OUT/neurogpt_loso.md`` at the end); a rerun with the same settings skips
the subjects already there and reuses finished pretrained files (an interrupted pretraining
resumes from its checkpoint), and ``--arms NAME ...`` adds arms missing from a folder's
subjects. ``--merge DIR ...`` joins the reports of runs split over
processes (same settings, other subjects) into ``OUT``.

Data: Kalunga2016 (SSVEP, 4 classes) or PhysionetMI (left/right imagery) under ``MNE_DATA``;
``--dataset SyntheticSSVEP`` or ``SyntheticMotorImagery`` runs without data.
CPU by default (``--accelerator gpu`` where there is one); ``--threads`` torch threads.

Usage::

    # Kalunga2016's subject 12 is not staged here: name the pool
    nice python recipes/neurogpt_loso.py --pool-subjects $(seq 1 11) --out results/neurogpt_loso
    # the same split over processes, then joined (evaluates nothing more)
    nice python recipes/neurogpt_loso.py --pool-subjects $(seq 1 11) --subjects 1 2 3 --out a
    ...
    python recipes/neurogpt_loso.py --pool-subjects $(seq 1 11) --out joined --merge a b c d
    python recipes/neurogpt_loso.py --dataset SyntheticSSVEP --subjects 1 2 --folds 2 \
        --trials 2 all --pretrain-epochs 1 --max-epochs 2 --xsub-epochs 1   # a tiny smoke run
    # PhysionetMI left/right, pretraining on the other 4 subjects and all of Kalunga2016
    nice python recipes/neurogpt_loso.py --dataset PhysionetMI --paradigm LeftRightImagery \
        --pool-subjects 1 2 3 4 5 --extra-pretraining Kalunga2016 \
        --extra-pretraining-subjects $(seq 1 11) --out results/neurogpt_loso_mi
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wilcoxon
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from bci.data.datamodule import EEGDataModule
from bci.data.loaders import get_dataset, get_paradigm, skip_unused_runs
from bci.data.pretraining import map_channels
from bci.data.pretraining_corpus import pretraining_source
from bci.models.classifier import DeepClassifier
from bci.models.decoder import apply_channel_map, network_info
from bci.models.inference import predict_proba
from bci.models.training import train_model
from bci.pipelines.pretrain import pretrain
from bci.pipelines.registry import DEEP_SETTINGS, get_pipeline, neurogpt_pipeline
from bci.pipelines.train import pretrained_channel_map

#: Every arm, in report order; the tangent-space arms are the paradigm's (BASELINES).
PIPELINES = ["NeuroGPT-pre", "NeuroGPT-scratch", "EEGNeX", "EEGNeX-xsub-ft", "EEGNeX-xsub",
             "SSVEP_TS+LR", "SSVEP_TS+LR-modelch", "TS+LR", "TS+LR-modelch",
             "NeuroGPT-pre-noaug", "NeuroGPT-scratch-noaug"]
#: Per paradigm: the registered tangent-space pipeline and the MOABB paradigm of its epochs.
BASELINES = {"SSVEP": ("SSVEP_TS+LR", "FilterBankSSVEP"),
             "LeftRightImagery": ("TS+LR", "LeftRightImagery")}
_NEUROGPT = {"NeuroGPT-pre", "NeuroGPT-scratch", "NeuroGPT-pre-noaug", "NeuroGPT-scratch-noaug"}
_XSUB = {"EEGNeX-xsub-ft", "EEGNeX-xsub"}
#: The pairs compared (paired Wilcoxon over subjects), reported as "A - B".
COMPARED = [("NeuroGPT-pre", other) for other in (
    "NeuroGPT-scratch", "EEGNeX", "EEGNeX-xsub-ft", "SSVEP_TS+LR", "TS+LR")] + [
    ("NeuroGPT-pre-noaug", "NeuroGPT-scratch-noaug"), ("NeuroGPT-pre-noaug", "SSVEP_TS+LR"),
    ("NeuroGPT-pre-noaug", "TS+LR")]
#: Settings that must match for a rerun to reuse (or a merge to join) a report's subjects,
#: with the value a report written before the setting existed had.
SETTINGS = {"dataset": None, "dataset_param": None, "pool_subjects": None, "config": None,
            "sfreq": None, "finetune": None, "folds": None, "trials": None,
            "pretrain_epochs": None, "max_epochs": None, "xsub_epochs": None, "seed": None,
            "n_classes": None, "paradigm": "SSVEP", "extra_pretraining": [],
            "extra_pretraining_subjects": None}
_EPS = 1e-12


def _budget(y: np.ndarray, train: np.ndarray, k: int | None, rng) -> np.ndarray:
    """At most ``k`` training trials per class (all when None), drawn with ``rng``."""
    if k is None:
        return train
    keep = [rng.permutation(train[y[train] == c])[:k] for c in np.unique(y[train])]
    return np.sort(np.concatenate(keep))


def _standardise(X: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``X`` standardised per channel with the mean and sd of ``reference`` (float32)."""
    mean = reference.mean(axis=(0, 2))[:, None]
    std = np.maximum(reference.std(axis=(0, 2)), _EPS)[:, None]
    return ((X - mean) / std).astype(np.float32)


def _deep_settings(args) -> dict:
    return {**DEEP_SETTINGS, "max_epochs": args.max_epochs, "seed": args.seed}


def _metrics(proba: np.ndarray, y: np.ndarray) -> tuple[float, float | None]:
    """Accuracy of the most probable class, and ROC-AUC with two classes (else None)."""
    accuracy = float(np.mean(proba.argmax(axis=1) == y))
    if proba.shape[1] != 2 or len(np.unique(y)) != 2:
        return accuracy, None
    return accuracy, float(roc_auc_score(y, proba[:, 1]))


def _finetune_xsub(base: DeepClassifier, data: dict, train: np.ndarray, test: np.ndarray,
                   args) -> tuple[tuple, tuple]:
    """Metrics of the cross-subject EEGNeX (fine-tuned, as is) on ``test``."""
    X, y = data["X"], data["y"]
    Xtr, Xte = _standardise(X[train], X[train]), _standardise(X[test], X[train])
    zero_shot = _metrics(predict_proba(base.model_, Xte, n_threads=args.threads), y[test])
    network = copy.deepcopy(base.model_)
    settings = _deep_settings(args)
    module = EEGDataModule(Xtr, y[train], val_fraction=0.0,
                           batch_size=settings["batch_size"], random_state=args.seed)
    train_model(network, module, max_epochs=settings["max_epochs"], patience=None,
                lr=settings["lr"], weight_decay=settings["weight_decay"],
                scheduler=settings["scheduler"],
                recalibrate_batch_norm=settings["recalibrate_batch_norm"],
                augmentation=settings["augmentation"], seed=args.seed, n_threads=args.threads,
                accelerator=args.accelerator)
    tuned = _metrics(predict_proba(network, Xte, n_threads=args.threads), y[test])
    return tuned, zero_shot


def _fit_score(name: str, data: dict, train: np.ndarray, test: np.ndarray, args,
               pretrained: Path) -> tuple[float, float | None]:
    """Fit arm ``name`` on ``train``; return its accuracy (and ROC-AUC) on ``test``."""
    y = data["y"]
    baseline = BASELINES[args.paradigm][0]
    if name.startswith(baseline):
        Xref = data["Xref"]
        if name == f"{baseline}-modelch":  # only the channels NeuroGPT sees (e.g. O1, Oz, O2)
            picks = map_channels(data["ch_names"]).picks
            Xref = Xref[:, np.sort(picks[picks >= 0])]
        clf = get_pipeline(baseline, random_state=42)
        clf.fit(Xref[train], y[train])
        return _metrics(clf.predict_proba(Xref[test]), y[test])
    X = data["X"]
    settings = {"max_epochs": args.max_epochs, "seed": args.seed, "n_threads": args.threads,
                "accelerator": args.accelerator}
    if name == "EEGNeX":
        clf = get_pipeline("EEGNeX", random_state=42)
        clf.set_params(**settings, sfreq=args.sfreq)
        clf.fit(X[train], y[train])
        return _metrics(clf.predict_proba(X[test]), y[test])
    if name.endswith("-noaug"):
        settings["augmentation"] = None
    clf = neurogpt_pipeline(args.finetune, pretrained=pretrained, scaling="none", **settings)
    if name.startswith("NeuroGPT-scratch"):
        params = {k: v for k, v in clf.model_params.items() if k != "pretrained"}
        clf.set_params(model_params=params)
    cmap = pretrained_channel_map(pretrained, data["ch_names"], X[train])
    clf.fit(apply_channel_map(X[train], cmap), y[train])
    return _metrics(clf.predict_proba(apply_channel_map(X[test], cmap)), y[test])


def _load(dataset, subject: int, args) -> dict:
    """Return a subject's epochs: 0.5-45 Hz at the model rate, and the baseline's epochs.

    SSVEP: ``SSVEP`` and ``FilterBankSSVEP`` epochs (``--n-classes``); left/right imagery:
    ``LeftRightImagery`` epochs at 0.5-45 Hz and with MOABB's defaults (8-32 Hz, the
    dataset's rate) for TS+LR. PhysionetMI reads only the runs with the paradigm's events.
    """
    ssvep = args.paradigm == "SSVEP"
    params = {"n_classes": args.n_classes} if ssvep else {}
    paradigm = get_paradigm(args.paradigm, **params, fmin=0.5, fmax=45.0, resample=args.sfreq)
    dataset = skip_unused_runs(dataset, paradigm)
    X, labels, meta = paradigm.get_data(dataset, [subject])
    reference = get_paradigm(BASELINES[args.paradigm][1], **params)
    Xref, labels_ref, meta_ref = reference.get_data(dataset, [subject])
    if not (np.array_equal(labels, labels_ref) and len(meta) == len(meta_ref)):
        raise RuntimeError("The two paradigms returned different trials; report this.")
    epochs = paradigm.get_data(dataset, [subject], return_epochs=True)[0]
    classes = np.unique(labels)
    return {"X": X, "Xref": Xref, "labels": np.asarray(labels),
            "sessions": meta["session"].to_numpy(), "ch_names": list(epochs.ch_names),
            "classes": [str(c) for c in classes]}


def _cross_subject(dataset, held_out: int, pool: list[int], held: dict, classes: np.ndarray,
                   args) -> tuple[DeepClassifier, dict]:
    """EEGNeX trained on the other subjects' epochs (each standardised with its own stats)."""
    seen = {epoch.tobytes() for epoch in held["X"]}
    Xs, ys, info = [], [], {"subjects": [], "n_epochs": 0, "n_duplicates_left_out": 0}
    for subject in pool:
        if subject == held_out:
            continue
        other = _load(dataset, subject, args)
        keep = np.array([epoch.tobytes() not in seen for epoch in other["X"]])
        info["n_duplicates_left_out"] += int((~keep).sum())
        if not keep.any():
            continue
        Xs.append(_standardise(other["X"][keep], other["X"]))
        ys.append(np.searchsorted(classes, other["labels"][keep]))
        info["subjects"].append(int(subject))
    X, y = np.concatenate(Xs), np.concatenate(ys)
    info["n_epochs"] = len(X)
    clf = DeepClassifier("EEGNeX", **{**DEEP_SETTINGS, "scaling": "none",
                                      "max_epochs": args.xsub_epochs, "seed": args.seed},
                         sfreq=args.sfreq, n_threads=args.threads, accelerator=args.accelerator)
    clf.fit(X, y)
    return clf, info


def _pretrained(args, subject: int, pool: list[int], params: dict) -> Path:
    """Pretrain for one held-out subject, or reuse / resume that pretraining."""
    out = args.out / f"pretrained_s{subject}.bci"
    if out.is_file() and network_info(out).get("n_epochs") == args.pretrain_epochs:
        return out
    checkpoints = args.out / f"pretrained_s{subject}_checkpoints"
    # the held-out subject is excluded from its own dataset only
    sources = [pretraining_source(args.dataset, subjects=pool, exclude_subjects=[subject],
                                  dataset_params=params or None)]
    sources += [pretraining_source(name, subjects=args.extra_pretraining_subjects)
                for name in args.extra_pretraining]
    return pretrain(sources, out, config=args.config, max_epochs=args.pretrain_epochs,
                    seed=args.seed, cache_dir=args.out / "cache", checkpoint_dir=checkpoints,
                    resume=(checkpoints / "last.ckpt").is_file(), n_threads=args.threads,
                    accelerator=args.accelerator,
                    progress_bar=False)


def _evaluate_subject(dataset, subject: int, pool: list[int], params: dict, args,
                      arms: list[str]) -> dict:
    """Score each arm on one held-out subject: its mean accuracy over folds, per budget."""
    budgets = [None if t == "all" else int(t) for t in args.trials]
    if _XSUB & set(arms):
        arms = [a for a in PIPELINES if a in arms or a in _XSUB]
    arms = [a for a in arms if a in _arms(args.paradigm)]
    seconds: dict[str, float] = {}
    result: dict = {}
    pre = None
    if _NEUROGPT & set(arms):
        start = time.perf_counter()
        pre = _pretrained(args, subject, pool, params)
        seconds["pretraining"] = time.perf_counter() - start
        info = network_info(pre)
        result["pretraining_losses"] = [round(r["train_loss"], 4)
                                        for r in info.get("history", [])]
        result["pretraining_sources"] = info.get("sources", [])
        result["pretraining_minutes"] = info.get("minutes", {})
    data = _load(dataset, subject, args)
    classes = np.array(data["classes"])
    data["y"] = np.searchsorted(classes, data["labels"])
    result["n_epochs"] = len(data["y"])
    result["model_channels"] = map_channels(data["ch_names"]).present  # model <- recording
    if _XSUB & set(arms):
        start = time.perf_counter()
        xsub, result["cross_subject"] = _cross_subject(dataset, subject, pool, data, classes,
                                                       args)
        seconds["EEGNeX cross-subject training"] = time.perf_counter() - start
    fold_scores: dict[tuple[str, str], list[float]] = {}
    fold_aucs: dict[tuple[str, str], list[float]] = {}
    for session in np.unique(data["sessions"]):
        idx = np.flatnonzero(data["sessions"] == session)
        folds = StratifiedKFold(args.folds, shuffle=True, random_state=42)
        for fold, (tr, te) in enumerate(folds.split(idx, data["y"][idx])):
            for k in budgets:
                rng = np.random.default_rng([args.seed, subject, fold])
                train = _budget(data["y"], idx[tr], k, rng)
                key = "all" if k is None else str(k)
                for name in arms:
                    if name == "EEGNeX-xsub":
                        continue  # scored with EEGNeX-xsub-ft
                    start = time.perf_counter()
                    if name == "EEGNeX-xsub-ft":
                        tuned, zero = _finetune_xsub(xsub, data, train, idx[te], args)
                        found = [(name, tuned), ("EEGNeX-xsub", zero)]
                    else:
                        found = [(name, _fit_score(name, data, train, idx[te], args, pre))]
                    for arm, (accuracy, auc) in found:
                        fold_scores.setdefault((arm, key), []).append(accuracy)
                        if auc is not None:
                            fold_aucs.setdefault((arm, key), []).append(auc)
                    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    if fold_aucs:
        result["roc_auc"] = _fold_means(fold_aucs)
    return {**result, "scores": _fold_means(fold_scores),
            "seconds": {k: round(v, 1) for k, v in seconds.items()}}


def _fold_means(fold_values: dict[tuple[str, str], list[float]]) -> dict[str, dict[str, float]]:
    """``{arm: {budget: mean over folds}}`` of per-fold values keyed by ``(arm, budget)``."""
    means: dict[str, dict[str, float]] = {}
    for (name, key), values in fold_values.items():
        means.setdefault(name, {})[key] = float(np.mean(values))
    return means


def _arms(paradigm: str) -> list[str]:
    """Return the arms of a paradigm: all but the other paradigms' tangent-space arms."""
    others = {b for p, (b, _) in BASELINES.items() if p != paradigm}
    return [a for a in PIPELINES if a.removesuffix("-modelch") not in others]


def _complete(report: dict, subjects: list[str]) -> list[str]:
    """Return the pipelines scored for every one of ``subjects``."""
    per = report["per_subject"]
    return [name for name in PIPELINES if all(name in per[s]["scores"] for s in subjects)]


def summarise(report: dict) -> dict:
    """Add mean ± sd over subjects and the paired tests to a report with ``per_subject``."""
    subjects = [s for s in map(str, report["subjects"]) if s in report["per_subject"]]
    per = report["per_subject"]
    names = _complete(report, subjects)
    scores = {name: {k: {s: per[s]["scores"][name][k] for s in subjects}
                     for k in report["trials"]} for name in names}
    summary = {}
    for name in names:
        for k in report["trials"]:
            v = np.array(list(scores[name][k].values()))
            summary.setdefault(name, {})[k] = {
                "mean": float(v.mean()) if len(v) else float("nan"),
                "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"), "n": len(v)}
    tests: dict[str, dict[str, dict[str, float]]] = {}
    for first, other in ((f, o) for f, o in COMPARED if f in names and o in names):
        for k in report["trials"]:
            a = np.array([scores[first][k][s] for s in subjects])
            b = np.array([scores[other][k][s] for s in subjects])
            p = float("nan")
            if len(a) > 1 and np.any(a != b):
                p = float(wilcoxon(a, b).pvalue)
            tests.setdefault(f"{first} - {other}", {})[k] = {
                "difference": float(np.mean(a - b)) if len(a) else float("nan"),
                "wilcoxon_p": p}
    auc = {}
    for name in names:
        for k in report["trials"]:
            v = np.array([per[s].get("roc_auc", {}).get(name, {}).get(k, np.nan)
                          for s in subjects])
            if len(v) and not np.isnan(v).any():
                auc.setdefault(name, {})[k] = {
                    "mean": float(v.mean()),
                    "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"), "n": len(v)}
    return {**report, "done_subjects": [int(s) for s in subjects], "scores": scores,
            "summary": summary, "roc_auc_summary": auc, "tests": tests,
            "pretrained_vs_scratch": tests.get("NeuroGPT-pre - NeuroGPT-scratch", {})}


def _write(report: dict, out: Path) -> dict:
    report = summarise(report)
    tmp = out / "neurogpt_loso.json.part"
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(out / "neurogpt_loso.json")
    return report


def _settings(args, pool: list[int]) -> dict:
    values = {**vars(args), "pool_subjects": pool}
    return {k: values[k] for k in SETTINGS}


def _previous(out: Path, settings: dict) -> dict:
    """Per-subject results of an earlier run with the same settings in ``out`` (or none)."""
    path = out / "neurogpt_loso.json"
    if not path.is_file():
        return {}
    old = json.loads(path.read_text())
    if any(old.get(k, SETTINGS[k]) != v for k, v in settings.items()):
        raise ValueError(f"{path} holds a run with other settings; use another --out.")
    return old.get("per_subject", {})


def run(args) -> dict:
    """Run the comparison; return the report (also written as JSON after each subject)."""
    arms = _arms(args.paradigm)
    wrong = [a for a in args.arms or [] if a not in arms]
    if wrong:
        raise ValueError(f"--arms {' '.join(wrong)}: not an arm of --paradigm "
                         f"{args.paradigm}; its arms are {', '.join(arms)}.")
    arms = [a for a in arms if a in (args.arms or arms)]
    torch.set_num_threads(args.threads)
    params = dict(p.split("=", 1) for p in args.dataset_param)
    params = {k: json.loads(v) for k, v in params.items()}
    dataset = get_dataset(args.dataset, **params)
    pool = [int(s) for s in (args.pool_subjects or dataset.subject_list)]
    subjects = args.subjects or pool
    args.out.mkdir(parents=True, exist_ok=True)
    settings = _settings(args, pool)
    per_subject = _previous(args.out, settings)
    for other in args.merge:  # a subject's entry with the most arms wins
        for subject, entry in _previous(other, settings).items():
            if len(entry["scores"]) > len(per_subject.get(subject, {}).get("scores", {})):
                per_subject[subject] = entry
    report = {**settings, "subjects": sorted({*map(int, per_subject), *subjects}),
              "per_subject": per_subject}
    report = _write(report, args.out)
    for subject in subjects:
        done = per_subject.get(str(subject))
        missing = [a for a in arms if done is None or a not in done["scores"]]
        if not missing:
            continue
        start = time.perf_counter()
        new = _evaluate_subject(dataset, subject, pool, params, args, missing)
        if done is not None:  # add the missing arms to the subject's earlier results
            new = {**done, **new, "scores": {**done["scores"], **new["scores"]},
                   "seconds": {**done["seconds"], **new["seconds"]}}
            if "roc_auc" in done or "roc_auc" in new:
                new["roc_auc"] = {**done.get("roc_auc", {}), **new.get("roc_auc", {})}
        per_subject[str(subject)] = new
        report = _write({**report, "per_subject": per_subject}, args.out)
        print(f"subject {subject}: {time.perf_counter() - start:.0f} s", flush=True)
    return report


def format_table(report: dict) -> str:
    """Mean ± sd over subjects per pipeline (rows) and trials per class (columns)."""
    ks = report["trials"]
    lines = [f"{'pipeline':<46}" + "".join(f"{k + '/class':>16}" for k in ks)]
    for name, row in report["summary"].items():
        lines.append(f"{name:<46}" + "".join(
            f"{row[k]['mean']:>9.3f} ± {row[k]['sd']:.3f}" for k in ks))
    for pair, row in report["tests"].items():
        lines.append(f"{pair + ' (p)':<46}" + "".join(
            f"{row[k]['difference']:>+9.3f} ({row[k]['wilcoxon_p']:.3f})" for k in ks))
    return "\n".join(lines)


def format_markdown(report: dict) -> str:
    """Return the README tables: per subject and mean ± sd per budget, then the paired tests."""
    ks, subjects = report["trials"], [str(s) for s in report["done_subjects"]]
    head = "| pipeline | trials/class | " + " | ".join(f"s{s}" for s in subjects) + \
        " | mean ± sd |"
    lines = [head, "|" + "---|" * (len(subjects) + 3)]
    for name in report["scores"]:
        for k in ks:
            row = report["scores"][name][k]
            cells = " | ".join(f"{row[s]:.3f}" for s in subjects)
            stat = report["summary"][name][k]
            lines.append(f"| {name} | {k} | {cells} | {stat['mean']:.3f} ± {stat['sd']:.3f} |")
    lines += ["", "| difference | " + " | ".join(f"{k}/class" for k in ks) + " |",
              "|" + "---|" * (len(ks) + 1)]
    for pair, row in report["tests"].items():
        lines.append(f"| {pair} | " + " | ".join(
            f"{row[k]['difference']:+.3f} (p = {row[k]['wilcoxon_p']:.3f})" for k in ks) + " |")
    if report.get("roc_auc_summary"):  # two classes: MOABB's score, mean ± sd over subjects
        lines += ["", "| ROC-AUC | " + " | ".join(f"{k}/class" for k in ks) + " |",
                  "|" + "---|" * (len(ks) + 1)]
        for name, row in report["roc_auc_summary"].items():
            lines.append(f"| {name} | " + " | ".join(
                f"{row[k]['mean']:.3f} ± {row[k]['sd']:.3f}" for k in ks) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run, print the table; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Kalunga2016")
    parser.add_argument("--dataset-param", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--subjects", nargs="+", type=int, default=None,
                        help="held-out subjects (default: the pool)")
    parser.add_argument("--pool-subjects", nargs="+", type=int, default=None,
                        help="subjects pretraining and cross-subject training draw from "
                             "(default: every subject of the dataset)")
    parser.add_argument("--paradigm", choices=list(BASELINES), default="SSVEP",
                        help="MOABB paradigm of the held-out subject's epochs; the "
                             "tangent-space arm is SSVEP_TS+LR for SSVEP, TS+LR for "
                             "LeftRightImagery")
    parser.add_argument("--n-classes", type=int, default=4, help="SSVEP classes")
    parser.add_argument("--extra-pretraining", nargs="+", default=[], metavar="DATASET",
                        help="datasets whose recordings are added to every pretraining "
                             "(none of their subjects is held out), e.g. Kalunga2016")
    parser.add_argument("--extra-pretraining-subjects", nargs="+", type=int, default=None,
                        help="their subjects (default: all of each dataset's)")
    parser.add_argument("--config", choices=["small", "paper"], default="small")
    parser.add_argument("--sfreq", type=float, default=128.0,
                        help="the configuration's rate (small: 128, paper: 250)")
    parser.add_argument("--finetune", choices=["encoder_gpt", "encoder", "linear"],
                        default="encoder")
    parser.add_argument("--trials", nargs="+", default=["2", "4", "8", "all"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=60,
                        help="training epochs of every network fitted on the held-out subject")
    parser.add_argument("--xsub-epochs", type=int, default=20,
                        help="epochs of the cross-subject EEGNeX's supervised training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--accelerator", default="cpu",
                        help="Lightning accelerator of pretraining and of every network fit "
                             "(cpu, gpu, auto ...); not a setting of the results")
    parser.add_argument("--out", type=Path, default=Path("results/neurogpt_loso"))
    parser.add_argument("--arms", nargs="+", choices=PIPELINES, default=None,
                        help="evaluate only these pipelines (default: all); a rerun adds "
                             "missing arms to the subjects already in --out")
    parser.add_argument("--merge", nargs="+", type=Path, default=[], metavar="DIR",
                        help="join the per-subject results of these runs' folders")
    args = parser.parse_args(argv)
    report = run(args)
    print(format_table(report))
    (args.out / "neurogpt_loso.md").write_text(format_markdown(report) + "\n")
    print(f"wrote {args.out / 'neurogpt_loso.json'} and {args.out / 'neurogpt_loso.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
