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

and score accuracy on the fold's test trials. The table gives, per budget, mean ± sd over the
held-out subjects of each subject's mean over folds, and the Wilcoxon signed-rank p-values
(two-sided, over subjects; NaN with fewer than 2 subjects or no difference) of NeuroGPT-pre
against NeuroGPT-scratch, EEGNeX, EEGNeX-xsub-ft and SSVEP_TS+LR, and of NeuroGPT-pre-noaug
against NeuroGPT-scratch-noaug and SSVEP_TS+LR. Everything goes to
``OUT/neurogpt_loso.json``, rewritten after each subject (and the README tables to
``OUT/neurogpt_loso.md`` at the end); a rerun with the same settings skips
the subjects already there and reuses finished pretrained files (an interrupted pretraining
resumes from its checkpoint), and ``--arms NAME ...`` adds arms missing from a folder's
subjects. ``--merge DIR ...`` joins the reports of runs split over
processes (same settings, other subjects) into ``OUT``.

Data: Kalunga2016 (SSVEP, 4 classes) under ``MNE_DATA``; ``--dataset SyntheticSSVEP`` runs
without data. CPU only; ``--threads`` torch threads.

Usage::

    # Kalunga2016's subject 12 is not staged here: name the pool
    nice python recipes/neurogpt_loso.py --pool-subjects $(seq 1 11) --out results/neurogpt_loso
    # the same split over processes, then joined (evaluates nothing more)
    nice python recipes/neurogpt_loso.py --pool-subjects $(seq 1 11) --subjects 1 2 3 --out a
    ...
    python recipes/neurogpt_loso.py --pool-subjects $(seq 1 11) --out joined --merge a b c d
    python recipes/neurogpt_loso.py --dataset SyntheticSSVEP --subjects 1 2 --folds 2 \
        --trials 2 all --pretrain-epochs 1 --max-epochs 2 --xsub-epochs 1   # a tiny smoke run
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
from sklearn.model_selection import StratifiedKFold

from bci.data.datamodule import EEGDataModule
from bci.data.loaders import get_dataset, get_paradigm
from bci.data.pretraining import map_channels
from bci.models.classifier import DeepClassifier
from bci.models.decoder import apply_channel_map, network_info
from bci.models.inference import predict_proba
from bci.models.training import train_model
from bci.pipelines.pretrain import pretrain
from bci.pipelines.registry import DEEP_SETTINGS, get_pipeline, neurogpt_pipeline
from bci.pipelines.train import pretrained_channel_map

PIPELINES = ["NeuroGPT-pre", "NeuroGPT-scratch", "EEGNeX", "EEGNeX-xsub-ft", "EEGNeX-xsub",
             "SSVEP_TS+LR", "SSVEP_TS+LR-modelch", "NeuroGPT-pre-noaug", "NeuroGPT-scratch-noaug"]
_NEUROGPT = {"NeuroGPT-pre", "NeuroGPT-scratch", "NeuroGPT-pre-noaug", "NeuroGPT-scratch-noaug"}
_XSUB = {"EEGNeX-xsub-ft", "EEGNeX-xsub"}
#: The pairs compared (paired Wilcoxon over subjects), reported as "A - B".
COMPARED = [("NeuroGPT-pre", other)
            for other in ("NeuroGPT-scratch", "EEGNeX", "EEGNeX-xsub-ft", "SSVEP_TS+LR")] + [
    ("NeuroGPT-pre-noaug", "NeuroGPT-scratch-noaug"), ("NeuroGPT-pre-noaug", "SSVEP_TS+LR")]
#: Settings that must match for a rerun to reuse (or a merge to join) a report's subjects.
SETTINGS = ["dataset", "dataset_param", "pool_subjects", "config", "sfreq", "finetune", "folds",
            "trials", "pretrain_epochs", "max_epochs", "xsub_epochs", "seed", "n_classes"]
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


def _finetune_xsub(base: DeepClassifier, data: dict, train: np.ndarray, test: np.ndarray,
                   args) -> tuple[float, float]:
    """Accuracy of the cross-subject EEGNeX (fine-tuned, as is) on ``test``."""
    X, y = data["X"], data["y"]
    Xtr, Xte = _standardise(X[train], X[train]), _standardise(X[test], X[train])
    zero_shot = float(np.mean(predict_proba(base.model_, Xte, n_threads=args.threads)
                              .argmax(axis=1) == y[test]))
    network = copy.deepcopy(base.model_)
    settings = _deep_settings(args)
    module = EEGDataModule(Xtr, y[train], val_fraction=0.0,
                           batch_size=settings["batch_size"], random_state=args.seed)
    train_model(network, module, max_epochs=settings["max_epochs"], patience=None,
                lr=settings["lr"], weight_decay=settings["weight_decay"],
                scheduler=settings["scheduler"],
                recalibrate_batch_norm=settings["recalibrate_batch_norm"],
                augmentation=settings["augmentation"], seed=args.seed, n_threads=args.threads)
    tuned = float(np.mean(predict_proba(network, Xte, n_threads=args.threads).argmax(axis=1)
                          == y[test]))
    return tuned, zero_shot


def _fit_score(name: str, data: dict, train: np.ndarray, test: np.ndarray, args,
               pretrained: Path) -> float:
    y = data["y"]
    if name.startswith("SSVEP_TS+LR"):
        Xfb = data["Xfb"]
        if name == "SSVEP_TS+LR-modelch":  # only the channels NeuroGPT sees (e.g. O1, Oz, O2)
            picks = map_channels(data["ch_names"]).picks
            Xfb = Xfb[:, np.sort(picks[picks >= 0])]
        clf = get_pipeline("SSVEP_TS+LR", random_state=42)
        clf.fit(Xfb[train], y[train])
        return float(np.mean(clf.predict(Xfb[test]) == y[test]))
    X = data["X"]
    settings = {"max_epochs": args.max_epochs, "seed": args.seed, "n_threads": args.threads}
    if name == "EEGNeX":
        clf = get_pipeline("EEGNeX", random_state=42)
        clf.set_params(**settings, sfreq=args.sfreq)
        clf.fit(X[train], y[train])
        return float(np.mean(clf.predict(X[test]) == y[test]))
    if name.endswith("-noaug"):
        settings["augmentation"] = None
    clf = neurogpt_pipeline(args.finetune, pretrained=pretrained, scaling="none", **settings)
    if name.startswith("NeuroGPT-scratch"):
        params = {k: v for k, v in clf.model_params.items() if k != "pretrained"}
        clf.set_params(model_params=params)
    cmap = pretrained_channel_map(pretrained, data["ch_names"], X[train])
    clf.fit(apply_channel_map(X[train], cmap), y[train])
    return float(np.mean(clf.predict(apply_channel_map(X[test], cmap)) == y[test]))


def _load(dataset, subject: int, args) -> dict:
    """Return a subject's epochs (0.5-45 Hz at the model rate, filter bank)."""
    paradigm = get_paradigm("SSVEP", n_classes=args.n_classes, fmin=0.5, fmax=45.0,
                            resample=args.sfreq)
    X, labels, meta = paradigm.get_data(dataset, [subject])
    fb = get_paradigm("FilterBankSSVEP", n_classes=args.n_classes)
    Xfb, labels_fb, meta_fb = fb.get_data(dataset, [subject])
    if not (np.array_equal(labels, labels_fb) and len(meta) == len(meta_fb)):
        raise RuntimeError("The two paradigms returned different trials; report this.")
    epochs = paradigm.get_data(dataset, [subject], return_epochs=True)[0]
    classes = np.unique(labels)
    return {"X": X, "Xfb": Xfb, "labels": np.asarray(labels),
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
                         sfreq=args.sfreq, n_threads=args.threads)
    clf.fit(X, y)
    return clf, info


def _pretrained(args, subject: int, pool: list[int], params: dict) -> Path:
    """Pretrain for one held-out subject, or reuse / resume that pretraining."""
    out = args.out / f"pretrained_s{subject}.bci"
    if out.is_file() and network_info(out).get("n_epochs") == args.pretrain_epochs:
        return out
    checkpoints = args.out / f"pretrained_s{subject}_checkpoints"
    return pretrain(args.dataset, out, subjects=pool, exclude_subjects=[subject],
                    dataset_params={args.dataset: params} if params else None,
                    config=args.config, max_epochs=args.pretrain_epochs, seed=args.seed,
                    cache_dir=args.out / "cache", checkpoint_dir=checkpoints,
                    resume=(checkpoints / "last.ckpt").is_file(), n_threads=args.threads,
                    progress_bar=False)


def _evaluate_subject(dataset, subject: int, pool: list[int], params: dict, args,
                      arms: list[str]) -> dict:
    """Score each arm on one held-out subject: its mean accuracy over folds, per budget."""
    budgets = [None if t == "all" else int(t) for t in args.trials]
    if _XSUB & set(arms):
        arms = [a for a in PIPELINES if a in arms or a in _XSUB]
    seconds: dict[str, float] = {}
    result: dict = {}
    pre = None
    if _NEUROGPT & set(arms):
        start = time.perf_counter()
        pre = _pretrained(args, subject, pool, params)
        seconds["pretraining"] = time.perf_counter() - start
        result["pretraining_losses"] = [round(r["train_loss"], 4)
                                        for r in network_info(pre).get("history", [])]
    data = _load(dataset, subject, args)
    classes = np.array(data["classes"])
    data["y"] = np.searchsorted(classes, data["labels"])
    result["n_epochs"] = len(data["y"])
    if _XSUB & set(arms):
        start = time.perf_counter()
        xsub, result["cross_subject"] = _cross_subject(dataset, subject, pool, data, classes,
                                                       args)
        seconds["EEGNeX cross-subject training"] = time.perf_counter() - start
    fold_scores: dict[tuple[str, str], list[float]] = {}
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
                        fold_scores.setdefault(("EEGNeX-xsub", key), []).append(zero)
                        score = tuned
                    else:
                        score = _fit_score(name, data, train, idx[te], args, pre)
                    fold_scores.setdefault((name, key), []).append(score)
                    seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    scores: dict[str, dict[str, float]] = {}
    for (name, key), values in fold_scores.items():
        scores.setdefault(name, {})[key] = float(np.mean(values))
    return {**result, "scores": scores,
            "seconds": {k: round(v, 1) for k, v in seconds.items()}}


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
    return {**report, "done_subjects": [int(s) for s in subjects], "scores": scores,
            "summary": summary, "tests": tests,
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
    if any(old.get(k) != v for k, v in settings.items()):
        raise ValueError(f"{path} holds a run with other settings; use another --out.")
    return old.get("per_subject", {})


def run(args) -> dict:
    """Run the comparison; return the report (also written as JSON after each subject)."""
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
    arms = args.arms or PIPELINES
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
    parser.add_argument("--n-classes", type=int, default=4)
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
