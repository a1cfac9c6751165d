r"""Neuro-GPT leave-one-subject-out: self-supervised pretraining against few trials.

For each held-out subject: pretrain a NeuroGPT (``bci.pipelines.pretrain.pretrain``, the
``bci pretrain`` command) on the other subjects' continuous recordings (the held-out subject
is never prepared, and runs identical to its runs are left out), then, on the held-out
subject's own epochs, within each session, stratified ``--folds``-fold cross-validation
(shuffled, ``random_state=42``): for each training budget of ``--trials`` trials per class
(drawn from the fold's training trials, seeded; ``all``: every one) fit

``NeuroGPT-pre``      the pretrained NeuroGPT fine-tuned (``--finetune``, default encoder), its
                      epochs put through the pretraining preprocessing (0.5-45 Hz, the file's
                      rate, channels mapped onto its 22, robust statistics of the training
                      trials: ``bci.pipelines.train.pretrained_channel_map``);
``NeuroGPT-scratch``  the same network and inputs, randomly initialised;
``EEGNeX``            EEGNeX from scratch on the same 0.5-45 Hz epochs (its own scaling);
``SSVEP_TS+LR``       the registered tangent-space pipeline on ``FilterBankSSVEP`` epochs (the
                      same trials in the same order),

and score accuracy on the fold's test trials. The table gives, per budget, mean ± sd over the
held-out subjects of each subject's mean over folds, and the Wilcoxon signed-rank p-value of
NeuroGPT-pre against NeuroGPT-scratch over subjects (two-sided; NaN with fewer than 2
subjects or no difference). Everything goes to ``OUT/neurogpt_loso.json``.

Data: Kalunga2016 (SSVEP, 4 classes) under ``MNE_DATA``; ``--dataset SyntheticSSVEP`` runs
without data. CPU only; ``--threads`` torch threads.

Usage::

    nice python recipes/neurogpt_loso.py --subjects $(seq 1 11) --out results/neurogpt_loso  # hours
    python recipes/neurogpt_loso.py --dataset SyntheticSSVEP --subjects 1 2 --folds 2 \
        --trials 2 all --pretrain-epochs 1 --max-epochs 2               # a tiny smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wilcoxon
from sklearn.model_selection import StratifiedKFold

from bci.data.loaders import get_dataset, get_paradigm
from bci.models.decoder import apply_channel_map
from bci.pipelines.pretrain import pretrain
from bci.pipelines.registry import get_pipeline, neurogpt_pipeline
from bci.pipelines.train import pretrained_channel_map

PIPELINES = ["NeuroGPT-pre", "NeuroGPT-scratch", "EEGNeX", "SSVEP_TS+LR"]


def _budget(y: np.ndarray, train: np.ndarray, k: int | None, rng) -> np.ndarray:
    """At most ``k`` training trials per class (all when None), drawn with ``rng``."""
    if k is None:
        return train
    keep = [rng.permutation(train[y[train] == c])[:k] for c in np.unique(y[train])]
    return np.sort(np.concatenate(keep))


def _fit_score(name: str, data: dict, train: np.ndarray, test: np.ndarray, args,
               pretrained: Path) -> float:
    y = data["y"]
    if name == "SSVEP_TS+LR":
        clf = get_pipeline("SSVEP_TS+LR", random_state=42)
        clf.fit(data["Xfb"][train], y[train])
        return float(np.mean(clf.predict(data["Xfb"][test]) == y[test]))
    X = data["X"]
    settings = {"max_epochs": args.max_epochs, "seed": args.seed, "n_threads": args.threads}
    if name == "EEGNeX":
        clf = get_pipeline("EEGNeX", random_state=42)
        clf.set_params(**settings, sfreq=args.sfreq)
        clf.fit(X[train], y[train])
        return float(np.mean(clf.predict(X[test]) == y[test]))
    clf = neurogpt_pipeline(args.finetune, pretrained=pretrained, scaling="none", **settings)
    if name == "NeuroGPT-scratch":
        params = {k: v for k, v in clf.model_params.items() if k != "pretrained"}
        clf.set_params(model_params=params)
    cmap = pretrained_channel_map(pretrained, data["ch_names"], X[train])
    clf.fit(apply_channel_map(X[train], cmap), y[train])
    return float(np.mean(clf.predict(apply_channel_map(X[test], cmap)) == y[test]))


def _load(dataset, subject: int, args) -> dict:
    """Return the held-out subject's epochs (0.5-45 Hz at the model rate, filter bank)."""
    paradigm = get_paradigm("SSVEP", n_classes=args.n_classes, fmin=0.5, fmax=45.0,
                            resample=args.sfreq)
    X, labels, meta = paradigm.get_data(dataset, [subject])
    fb = get_paradigm("FilterBankSSVEP", n_classes=args.n_classes)
    Xfb, labels_fb, meta_fb = fb.get_data(dataset, [subject])
    if not (np.array_equal(labels, labels_fb) and len(meta) == len(meta_fb)):
        raise RuntimeError("The two paradigms returned different trials; report this.")
    epochs = paradigm.get_data(dataset, [subject], return_epochs=True)[0]
    classes, y = np.unique(labels, return_inverse=True)
    return {"X": X, "Xfb": Xfb, "y": y, "sessions": meta["session"].to_numpy(),
            "ch_names": list(epochs.ch_names), "classes": [str(c) for c in classes]}


def run(args) -> dict:
    """Run the comparison; return the report (also written as JSON)."""
    torch.set_num_threads(args.threads)
    params = dict(p.split("=", 1) for p in args.dataset_param)
    params = {k: json.loads(v) for k, v in params.items()}
    dataset = get_dataset(args.dataset, **params)
    subjects = args.subjects or list(dataset.subject_list)
    budgets = [None if t == "all" else int(t) for t in args.trials]
    scores: dict[str, dict[str, dict[str, float]]] = {p: {} for p in PIPELINES}
    args.out.mkdir(parents=True, exist_ok=True)
    for subject in subjects:
        start = time.perf_counter()
        pre = pretrain(args.dataset, args.out / f"pretrained_s{subject}.bci", subjects=subjects,
                       exclude_subjects=[subject],
                       dataset_params={args.dataset: params} if params else None,
                       config=args.config, max_epochs=args.pretrain_epochs, seed=args.seed,
                       cache_dir=args.out / "cache", n_threads=args.threads,
                       progress_bar=False)
        data = _load(dataset, subject, args)
        fold_scores: dict[tuple[str, str], list[float]] = {}
        for session in np.unique(data["sessions"]):
            idx = np.flatnonzero(data["sessions"] == session)
            folds = StratifiedKFold(args.folds, shuffle=True, random_state=42)
            for fold, (tr, te) in enumerate(folds.split(idx, data["y"][idx])):
                for k in budgets:
                    rng = np.random.default_rng([args.seed, subject, fold])
                    train = _budget(data["y"], idx[tr], k, rng)
                    for name in PIPELINES:
                        key = (name, "all" if k is None else str(k))
                        fold_scores.setdefault(key, []).append(
                            _fit_score(name, data, train, idx[te], args, pre))
        for (name, k), values in fold_scores.items():
            scores[name].setdefault(k, {})[str(subject)] = float(np.mean(values))
        print(f"subject {subject}: {time.perf_counter() - start:.0f} s", flush=True)
    summary = {}
    for name in PIPELINES:
        for k, per_subject in scores[name].items():
            v = np.array(list(per_subject.values()))
            summary.setdefault(name, {})[k] = {"mean": float(v.mean()),
                                               "sd": float(v.std(ddof=1)) if len(v) > 1
                                               else float("nan"), "n": len(v)}
    tests = {}
    for k in scores["NeuroGPT-pre"]:
        a = np.array([scores["NeuroGPT-pre"][k][s] for s in map(str, subjects)])
        b = np.array([scores["NeuroGPT-scratch"][k][s] for s in map(str, subjects)])
        p = float("nan")
        if len(a) > 1 and np.any(a != b):
            p = float(wilcoxon(a, b).pvalue)
        tests[k] = {"difference": float(np.mean(a - b)), "wilcoxon_p": p}
    report = {"dataset": args.dataset, "subjects": subjects, "config": args.config,
              "finetune": args.finetune, "folds": args.folds, "trials": args.trials,
              "pretrain_epochs": args.pretrain_epochs, "max_epochs": args.max_epochs,
              "scores": scores, "summary": summary, "pretrained_vs_scratch": tests}
    (args.out / "neurogpt_loso.json").write_text(json.dumps(report, indent=2))
    return report


def format_table(report: dict) -> str:
    """Mean ± sd over subjects per pipeline (rows) and trials per class (columns)."""
    ks = report["trials"]
    lines = [f"{'pipeline':<18}" + "".join(f"{k + '/class':>16}" for k in ks)]
    for name, row in report["summary"].items():
        lines.append(f"{name:<18}" + "".join(
            f"{row[k]['mean']:>9.3f} ± {row[k]['sd']:.3f}" for k in ks))
    lines.append(f"{'pre - scratch (p)':<18}" + "".join(
        f"{report['pretrained_vs_scratch'][k]['difference']:>+9.3f} "
        f"({report['pretrained_vs_scratch'][k]['wilcoxon_p']:.3f})" for k in ks))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run, print the table; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="Kalunga2016")
    parser.add_argument("--dataset-param", action="append", default=[], metavar="KEY=JSON")
    parser.add_argument("--subjects", nargs="+", type=int, default=None)
    parser.add_argument("--n-classes", type=int, default=4)
    parser.add_argument("--config", choices=["small", "paper"], default="small")
    parser.add_argument("--sfreq", type=float, default=128.0,
                        help="the configuration's rate (small: 128, paper: 250)")
    parser.add_argument("--finetune", choices=["encoder_gpt", "encoder", "linear"],
                        default="encoder")
    parser.add_argument("--trials", nargs="+", default=["2", "4", "8", "all"])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--pretrain-epochs", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/neurogpt_loso"))
    args = parser.parse_args(argv)
    report = run(args)
    print(format_table(report))
    print(f"wrote {args.out / 'neurogpt_loso.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
