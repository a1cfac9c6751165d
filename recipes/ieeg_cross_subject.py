"""Cross-subject intracranial decoding: a channel-agnostic network vs per-subject training.

Every sEEG patient has different contacts, so a network with per-channel weights cannot move
from one patient to the next. :class:`bci.models.contact_set.ContactSetNet` embeds each contact
with one shared temporal encoder, labels it with its brain region, pools contacts per region
(``pooling="region"``, Du-IN) or attends over all contacts (``pooling="contact"``, MVPFormer)
and so accepts any electrode set. Two comparisons, at few labelled trials per class:

1. **Simulated subjects** (:func:`bci.data.synthetic.make_multicontact_ieeg`): each subject
   has 1 to 4 contacts on electrodes in 2 to 4 of 5 regions; "task" trials carry a high-gamma
   burst in the hippocampus and insula only. For each held-out subject: the channel-agnostic
   network trained on the *other* subjects (leave one subject out, no label of the held-out
   subject) vs per-subject training on ``k`` trials per class of that subject (TS+LR on its own
   contacts, and the same network trained on those trials alone); all scored on the same
   held-out trials of that subject. ``--poolings unlabelled`` adds an ablation: contact
   attention with every contact in one region (the region labels withheld).
2. **Bonn intracranial sets** (single channel; ``F``: epileptogenic zone and ``N``:
   contralateral hippocampal formation, both seizure-free = class 0; ``S``: seizures = 1).
   Bonn segments carry no patient label (the five patients are pooled within each set), so a
   leave-one-patient-out split is impossible. We use the *recording site* as the unit to
   transfer across: for a target site T in {F, N}, the channel-agnostic model is trained on
   the other site's non-seizure segments vs seizure segments, and per-site training uses ``k``
   segments per class of T itself; both are tested on the same held-out T and S segments (the
   second half of every set; training S segments come from the first half). The seizure
   segments are recorded in the same patients in both halves, so this measures transfer across
   recording sites, not across patients. With one channel there is one contact and one region
   (every segment gets the same region, since a region per set would give the class away): the
   network is its shared temporal encoder.

In both, ``loso_*``/``cross_site`` never see a label of the tested subject or site; ``ts_lr``
and ``net_*`` see ``k`` of them. Run ``python recipes/ieeg_cross_subject.py`` (``--help`` for the
options; the Bonn part runs when the data are found, ``--bonn-path`` or ``MNE_DATA``); it prints
the tables and writes JSON (``--out``) after each comparison.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score

from bci.data.datamodule import EEGDataModule
from bci.data.seizure import load_bonn
from bci.data.synthetic import make_multicontact_ieeg
from bci.models.classifier import scale_epochs
from bci.models.contact_set import (
    ContactSetNet,
    contact_regions_from_names,
    place_contacts,
    slot_layout,
)
from bci.models.inference import predict_proba
from bci.models.training import train_model
from bci.pipelines.registry import get_pipeline

BONN_WINDOW = 512  # samples per window (2.95 s at 173.61 Hz); 8 windows per segment


def fit_network(X, y, layout, *, sfreq, pooling, seed, max_epochs):
    """Train a ContactSetNet on slot-laid-out, scaled epochs (X: n_epochs, n_slots, n_times)."""
    torch.manual_seed(seed)
    model = ContactSetNet(X.shape[1], 2, X.shape[2], sfreq=sfreq, contact_regions=layout,
                          pooling=pooling)
    data = EEGDataModule(X, y, val_fraction=0.2, batch_size=32, random_state=seed)
    return train_model(model, data, max_epochs=max_epochs, patience=10, lr=3e-3, seed=seed,
                       n_threads=1).model


def score_network(model, X, y) -> float:
    """Balanced accuracy of a trained network."""
    return float(balanced_accuracy_score(y, predict_proba(model, X, n_threads=1).argmax(1)))


def few_shot_split(y, k, rng):
    """Return the indices of k trials per class for training, and the rest for testing."""
    train = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c in (0, 1)])
    return np.sort(train), np.setdiff1d(np.arange(len(y)), train)


def simulated(args) -> dict:
    """Leave-one-subject-out ContactSetNet vs per-subject training on simulated sEEG."""
    data = make_multicontact_ieeg(n_subjects=args.n_subjects, n_trials=args.n_trials,
                                  random_state=args.seed)
    sfreq = data.epochs[0].info["sfreq"]
    subjects = []
    for name, epochs in zip(data.subjects, data.epochs, strict=True):
        X = epochs.get_data(copy=True)
        y = (epochs.events[:, 2] == 2).astype(int)  # task = 1
        regions = contact_regions_from_names(epochs.ch_names, data.regions)
        subjects.append({"name": name, "X": X, "y": y, "regions": regions})
    layout = slot_layout([s["regions"] for s in subjects])
    try:  # the bad input: a subject whose only electrode is in a region no subject trained on
        place_contacts(np.zeros((1, 2, 10)), ["orbitofrontal"] * 2, layout, subject="sub-new")
    except ValueError as err:
        print(f"Refused as expected: {err}")
    # ablation "unlabelled": contact attention with one region for every labelled contact
    unlabelled = [["any" if r is not None else None for r in s["regions"]] for s in subjects]
    flat_layout = slot_layout(unlabelled)
    variants = {"region": ("slots", layout, "region"), "contact": ("slots", layout, "contact"),
                "unlabelled": ("flat", flat_layout, "contact")}
    for s, flat in zip(subjects, unlabelled, strict=True):
        scaled = scale_epochs(s["X"], "epoch")
        s["slots"] = place_contacts(scaled, s["regions"], layout, subject=s["name"])
        s["flat"] = place_contacts(scaled, flat, flat_layout, subject=s["name"])
    rows = []
    for i, s in enumerate(subjects):
        rng = np.random.default_rng([args.seed, i])
        splits = {k: few_shot_split(s["y"], k, rng) for k in args.shots}
        others = [o for j, o in enumerate(subjects) if j != i]
        y_tr = np.concatenate([o["y"] for o in others])
        row = {"subject": s["name"], "n_contacts": len(s["regions"]),
               "contact_regions": s["regions"]}
        for name in args.poolings:
            key, lay, pooling = variants[name]
            model = fit_network(np.concatenate([o[key] for o in others]), y_tr, lay,
                                sfreq=sfreq, pooling=pooling, seed=args.seed,
                                max_epochs=args.max_epochs)
            for k, (_, test) in splits.items():
                row[f"loso_{name}_k{k}"] = score_network(model, s[key][test], s["y"][test])
        for k, (train, test) in splits.items():
            pipe = get_pipeline("TS+LR", random_state=args.seed).fit(s["X"][train], s["y"][train])
            row[f"ts_lr_k{k}"] = float(balanced_accuracy_score(s["y"][test],
                                                               pipe.predict(s["X"][test])))
            key, lay, pooling = variants[args.poolings[0]]
            model = fit_network(s[key][train], s["y"][train], lay, sfreq=sfreq,
                                pooling=pooling, seed=args.seed, max_epochs=args.max_epochs)
            row[f"net_subject_k{k}"] = score_network(model, s[key][test], s["y"][test])
        rows.append(row)
        logging.getLogger(__name__).info("%s", row)
    return {"layout": list(layout), "subjects": rows}


def bonn(args) -> dict:
    """Cross-site (train on the other site) vs per-site training on Bonn F, N vs S."""
    segments = load_bonn(args.bonn_path, sets=("F", "N", "S"))
    sfreq = segments.sfreq
    n_win = segments.X.shape[2] // BONN_WINDOW
    windows = segments.X[:, :, :n_win * BONN_WINDOW].reshape(len(segments), 1, n_win,
                                                            BONN_WINDOW).transpose(0, 2, 1, 3)
    layout = ("intracranial",)

    def windows_of(idx):
        X = windows[idx].reshape(-1, 1, BONN_WINDOW)
        y = np.repeat(segments.ictal[idx].astype(int), n_win)
        return X, y

    halves = {}
    for name in ("F", "N", "S"):
        idx = np.flatnonzero(segments.sets == name)
        halves[name] = (idx[:len(idx) // 2], idx[len(idx) // 2:])
    rows = []
    for target, other in (("F", "N"), ("N", "F")):
        X_te, y_te = windows_of(np.concatenate([halves[target][1], halves["S"][1]]))
        Xs_te = scale_epochs(X_te, "epoch")
        X_tr, y_tr = windows_of(np.concatenate([halves[other][0], halves["S"][0]]))
        row = {"target": target, "trained_on": f"{other} vs S", "n_test_windows": len(y_te)}
        model = fit_network(scale_epochs(X_tr, "epoch"), y_tr, layout, sfreq=sfreq,
                            pooling="region", seed=args.seed, max_epochs=args.max_epochs)
        row["cross_site"] = score_network(model, Xs_te, y_te)
        # one channel: the within-subject pipeline is channel-agnostic too, so it can transfer
        pipe = get_pipeline("TS+LR", random_state=args.seed).fit(X_tr, y_tr)
        row["cross_site_ts_lr"] = float(balanced_accuracy_score(y_te, pipe.predict(X_te)))
        rng = np.random.default_rng([args.seed, ord(target)])
        for k in args.shots:
            seg = np.concatenate([rng.permutation(halves[target][0])[:k],
                                  rng.permutation(halves["S"][0])[:k]])
            X_k, y_k = windows_of(seg)
            pipe = get_pipeline("TS+LR", random_state=args.seed).fit(X_k, y_k)
            row[f"ts_lr_k{k}"] = float(balanced_accuracy_score(y_te, pipe.predict(X_te)))
            model = fit_network(scale_epochs(X_k, "epoch"), y_k, layout, sfreq=sfreq,
                                pooling="region", seed=args.seed, max_epochs=args.max_epochs)
            row[f"net_site_k{k}"] = score_network(model, Xs_te, y_te)
        rows.append(row)
    return {"window_samples": BONN_WINDOW, "sites": rows}


def _table(rows, keys) -> str:
    """Return the rows as a text table, with a last row of column means."""
    lines = [" ".join(f"{k:>16}" for k in keys)]
    for row in [*rows, {keys[0]: "mean", **{k: float(np.mean([r[k] for r in rows]))
                                            for k in keys[1:]}}]:
        lines.append(" ".join(f"{row[k]:>16.3f}" if isinstance(row[k], float)
                              else f"{row[k]!s:>16}" for k in keys))
    return "\n".join(lines)


def main(argv=None) -> dict:
    """Run the comparisons, print the tables and return (and write) the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-subjects", type=int, default=6)
    parser.add_argument("--n-trials", type=int, default=40, help="trials per class and subject")
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10],
                        help="labelled trials (Bonn: segments) per class for per-subject training")
    parser.add_argument("--poolings", nargs="+", default=["region", "contact"],
                        choices=["region", "contact", "unlabelled"],
                        help="LOSO networks (the first also per subject); unlabelled: contact "
                             "attention with every contact in one region (an ablation)")
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--simulated", choices=["yes", "no"], default="yes",
                        help="run the simulated comparison")
    parser.add_argument("--bonn", choices=["auto", "yes", "no"], default="auto",
                        help="run the Bonn comparison (auto: when the data are found)")
    parser.add_argument("--bonn-path", default=None, help="folder with Bonn sets F, N, S")
    parser.add_argument("--out", type=Path, default=Path("results/ieeg_cross_subject.json"))
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {"config": {k: (str(v) if isinstance(v, Path) else v)
                                for k, v in vars(args).items()}}
    if args.simulated == "yes":
        start = time.perf_counter()
        results["simulated"] = sim = simulated(args)
        sim["seconds"] = time.perf_counter() - start
        args.out.write_text(json.dumps(results, indent=2))
        keys = ["subject", *(f"{m}_k{k}" for k in args.shots
                             for m in (*(f"loso_{p}" for p in args.poolings), "ts_lr",
                                       "net_subject"))]
        print("Simulated sEEG, balanced accuracy on held-out trials (chance 0.5)")
        print(_table(sim["subjects"], keys))
    if args.bonn != "no":
        try:
            start = time.perf_counter()
            results["bonn"] = bonn(args)
            results["bonn"]["seconds"] = time.perf_counter() - start
        except FileNotFoundError as err:
            if args.bonn == "yes":
                raise
            print(f"Bonn comparison skipped: {err}")
        else:
            args.out.write_text(json.dumps(results, indent=2))
            keys = ["target", "cross_site", "cross_site_ts_lr", *(f"{m}_k{k}" for k in args.shots
                                              for m in ("ts_lr", "net_site"))]
            print("Bonn F/N vs S, balanced accuracy on held-out windows (chance 0.5)")
            print(_table(results["bonn"]["sites"], keys))
    print(f"Wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
