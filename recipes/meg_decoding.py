r"""MEG decoding through a BIDS folder: real evoked templates, real noise, planted separability.

Each simulated subject is a 306-channel Elekta/MEGIN recording from
:func:`bci.data.meg.make_meg_trials`: the four real evoked responses of MNE's
``test-ave.fif.gz`` (auditory left/right, visual left/right) added at a known amplitude ``snr``
to noise built from the real Elekta recording ``test_elekta_3ch_raw.fif``, with the file's SSP
projectors applied (the magnetometers have rank 99 of 102). Subject ``k`` is simulated at the
``k``-th SNR of ``--snr``; ``snr=0`` is noise only (chance, 0.25). The recordings are written
as a BIDS folder with :func:`mne_bids.write_raw_bids`, then evaluated with the ``bci`` command
exactly as a lab's own BIDS data would be::

    bci benchmark --dataset BIDS --dataset-param root=OUT/bids --dataset-param ch_types=mag \\
        --dataset-param "interval=(0.0, 0.5)" --paradigm MotorImagery \\
        --paradigm-param n_classes=4 --paradigm-param fmin=1 --paradigm-param fmax=40 \\
        --pipelines TS+LR,MDM --no-cache --out OUT/benchmark

(within-session 5-fold accuracy, 4 classes), then the same evaluation of ``RANK+TS+LR`` and
``RANK+MDM`` (the same pipelines after :class:`bci.features.rank.SubspaceProjection`, which
projects onto the signal subspace whose dimension MNE's rank estimator finds) through
:func:`bci.benchmark`. Writes ``OUT/benchmark/results.csv``, ``OUT/rank/results.csv`` and
``OUT/meg_decoding.json`` (score per pipeline and SNR).

Usage::

    nice python recipes/meg_decoding.py --out results/meg
    python recipes/meg_decoding.py --quick --out results/meg_quick   # 2 SNRs, 10 trials/class
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

STAGED = Path("/work/shared/data/meg_ieeg")
EVOKED = STAGED / "mne-python" / "mne" / "io" / "tests" / "data" / "test-ave.fif.gz"
NOISE = STAGED / "mne-testing-data" / "misc" / "test_elekta_3ch_raw.fif"


def write_bids(root: Path, snrs: list[float], n_trials: int, seed: int,
               evoked: Path = EVOKED, noise: Path = NOISE) -> None:
    """Simulate one subject a SNR and write them as a BIDS MEG folder."""
    import mne_bids

    from bci.data.meg import make_meg_trials

    for k, snr in enumerate(snrs, start=1):
        raw = make_meg_trials(evoked, noise, n_trials=n_trials, snr=snr, random_state=seed + k)
        path = mne_bids.BIDSPath(subject=f"{k:02d}", task="evoked", datatype="meg", root=root)
        mne_bids.write_raw_bids(raw, path, format="FIF", allow_preload=True, overwrite=True,
                                verbose=False)


def rank_pipelines() -> dict:
    """``RANK+TS+LR`` and ``RANK+MDM``: the registered pipelines after a SubspaceProjection."""
    from pyriemann.classification import MDM
    from pyriemann.estimation import Covariances
    from pyriemann.tangentspace import TangentSpace
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from bci.features import CheckEpochs, SubspaceProjection

    def front():
        return [("check", CheckEpochs()), ("rank", SubspaceProjection()),
                ("covariances", Covariances(estimator="oas"))]

    return {"RANK+TS+LR": Pipeline([*front(), ("tangentspace", TangentSpace(metric="riemann")),
                                    ("logisticregression", LogisticRegression(C=1.0))]),
            "RANK+MDM": Pipeline([*front(), ("mdm", MDM(metric="riemann"))])}


def main(argv: list[str] | None = None) -> int:
    """Run the recipe; return the exit status."""
    import pandas as pd

    from bci.cli import main as bci_main

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/meg", help="output folder")
    parser.add_argument("--snr", default="0,0.05,0.1,0.2",
                        help="comma-separated SNRs, one simulated subject each")
    parser.add_argument("--n-trials", type=int, default=20, help="trials per class")
    parser.add_argument("--pipelines", default="TS+LR,MDM",
                        help="registered pipelines; RANK+ variants of TS+LR and MDM are added")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true",
                        help="SNRs 0 and 2, 10 trials a class, TS+LR and RANK+TS+LR")
    args = parser.parse_args(argv)
    if args.quick:
        args.snr, args.n_trials, args.pipelines = "0,2", 10, "TS+LR"
    snrs = [float(s) for s in args.snr.split(",")]
    out = Path(args.out)
    root = out / "bids"
    write_bids(root, snrs, args.n_trials, args.seed)
    code = bci_main(["benchmark", "--dataset", "BIDS", "--dataset-param", f"root={root}",
                     "--dataset-param", "ch_types=mag", "--dataset-param", "interval=(0.0, 0.5)",
                     "--paradigm", "MotorImagery", "--paradigm-param", "n_classes=4",
                     "--paradigm-param", "fmin=1", "--paradigm-param", "fmax=40",
                     "--pipelines", args.pipelines, "--no-cache",
                     "--out", str(out / "benchmark")])
    if code != 0:
        return code
    from bci.evaluation.benchmarks import benchmark

    rank = {name: est for name, est in rank_pipelines().items()
            if name.removeprefix("RANK+") in args.pipelines.split(",")}
    benchmark(dataset="BIDS", paradigm="MotorImagery", pipelines=rank,
              dataset_params={"root": str(root), "ch_types": "mag", "interval": (0.0, 0.5)},
              paradigm_params={"n_classes": 4, "fmin": 1, "fmax": 40},
              out=out / "rank", recompute=True, progress=False)
    results = pd.concat([pd.read_csv(out / "benchmark" / "results.csv"),
                         pd.read_csv(out / "rank" / "results.csv")])
    scores = {pipe: {f"{snrs[int(s) - 1]:g}": round(float(v), 4)
                     for s, v in rows.groupby("subject").score.mean().items()}
              for pipe, rows in results.groupby("pipeline")}
    report = {"quick": args.quick, "snr": snrs, "n_trials_per_class": args.n_trials,
              "channels": "102 magnetometers (rank 99: 3 SSP projectors)",
              "evaluation": "within-session 5-fold accuracy, 4 classes (chance 0.25)",
              "scores": scores}
    (out / "meg_decoding.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(scores, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
