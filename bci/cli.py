"""The ``bci`` command: ``bci benchmark``, ``bci train``, ``bci pipelines``, ``bci datasets``.

Run ``bci COMMAND --help`` for the options of each command.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from ._logging import set_log_level


def _subjects(text: str) -> list[int]:
    """Parse ``"1,2,5-7"`` into ``[1, 2, 5, 6, 7]``."""
    subjects: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(p) for p in part.split("-", 1))
                subjects.extend(range(lo, hi + 1))
            elif part:
                subjects.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"subjects must look like '1,2,5-7', got {text!r}") from None
    return subjects


def _params(items: Sequence[str] | None) -> dict:
    """Parse ``["n_classes=4", "fmin=8"]`` into ``{"n_classes": 4, "fmin": 8}``."""
    import ast

    params = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"bci: parameters must look like KEY=VALUE, got {item!r}")
        try:
            params[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            params[key.strip()] = value.strip()
    return params


def _add_data_args(parser: argparse.ArgumentParser, *, default_dataset: str | None) -> None:
    parser.add_argument("--dataset", default=default_dataset, required=default_dataset is None,
                        help="MOABB dataset class name (see `bci datasets`); default: "
                             f"{default_dataset}")
    parser.add_argument("--paradigm", default="LeftRightImagery",
                        help="MOABB paradigm class name (default: LeftRightImagery)")
    parser.add_argument("--paradigm-param", action="append", metavar="KEY=VALUE",
                        help="paradigm constructor argument, repeatable (e.g. n_classes=4)")
    parser.add_argument("--subjects", type=_subjects, default=None,
                        help="subjects, e.g. 1,2,5-7 (default: all of the dataset's)")
    parser.add_argument("--random-state", type=int, default=42,
                        help="seed of the fold shuffling and inner grid searches (default 42)")


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="bci", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"bci {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO)")
    sub = parser.add_subparsers(dest="command", required=True)

    bench = sub.add_parser("benchmark", help="evaluate pipelines with a MOABB evaluation",
                           description="Evaluate registered pipelines with MOABB's evaluation; "
                                       "print a table, write results.csv and scores.png.")
    _add_data_args(bench, default_dataset="SyntheticMotorImagery")
    bench.add_argument("--pipelines", default="CSP+LDA,TS+LR,TS+SVM,MDM,FgMDM,ACM+TS+SVM",
                       help="comma-separated registered pipeline names (see `bci pipelines`)")
    bench.add_argument("--evaluation", default="within-session",
                       choices=["within-session", "cross-session", "cross-subject"])
    bench.add_argument("--n-jobs", type=int, default=1, help="parallel jobs for MOABB")
    bench.add_argument("--out", default="results/benchmark",
                       help="output folder (default: results/benchmark)")

    train = sub.add_parser("train", help="fit a pipeline or train a network; save a decoder file",
                           description="Fit a registered pipeline, or train a deep decoder with "
                                       "Lightning, on all trials of the given subjects and save "
                                       "a decoder file for bci.load_decoder (networks: plus "
                                       "learning curves as PNG beside it).")
    _add_data_args(train, default_dataset=None)
    what = train.add_mutually_exclusive_group(required=True)
    what.add_argument("--pipeline", help="registered pipeline name (see `bci pipelines`)")
    what.add_argument("--model", help="deep decoder to train: EEGNeX, EEGNet or ShallowConvNet")
    train.add_argument("--out", required=True, help="decoder file to write")
    deep = train.add_argument_group("network training (with --model)")
    deep.add_argument("--max-epochs", type=int, default=None,
                      help="upper bound on training epochs (default 60)")
    deep.add_argument("--batch-size", type=int, default=None, help="batch size (default 16)")
    deep.add_argument("--lr", type=float, default=None, help="AdamW learning rate (1e-3)")
    deep.add_argument("--patience", type=int, default=None,
                      help="early-stopping patience in epochs (default 15)")
    deep.add_argument("--val-fraction", type=float, default=None,
                      help="stratified validation fraction for early stopping (default 0.2)")
    deep.add_argument("--scheduler", choices=["cosine", "plateau", "none"], default=None,
                      help="learning-rate schedule (default cosine)")
    deep.add_argument("--seed", type=int, default=None,
                      help="seed of weights, split, batches and dropout (default 42)")
    deep.add_argument("--accelerator", default="cpu",
                      help="Lightning accelerator: cpu (default), gpu, auto ...")
    deep.add_argument("--devices", default="1", help="Lightning devices (default 1)")
    deep.add_argument("--strategy", default="auto",
                      help="Lightning strategy, e.g. ddp (default auto)")
    deep.add_argument("--threads", type=int, default=None, help="torch CPU threads")

    sub.add_parser("pipelines", help="list the registered pipelines")
    sub.add_parser("datasets", help="list the dataset names bci accepts")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bci`` command; returns the exit status."""
    args = _build_parser().parse_args(argv)
    set_log_level("INFO" if args.verbose else "WARNING")
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        print(f"bci {args.command}: error: {err}", file=sys.stderr)
        return 2


def _benchmark(args) -> int:
    from .evaluation.benchmarks import benchmark, format_table

    start = time.perf_counter()
    print(f"Benchmarking {args.pipelines} on {args.dataset} ({args.paradigm}, "
          f"{args.evaluation}) ...", flush=True)
    results = benchmark(dataset=args.dataset, paradigm=args.paradigm,
                        paradigm_params=_params(args.paradigm_param),
                        pipelines=args.pipelines, subjects=args.subjects,
                        evaluation=args.evaluation, random_state=args.random_state,
                        n_jobs=args.n_jobs, out=args.out)
    print()
    print(format_table(results))
    print(f"\n{len(results)} results in {time.perf_counter() - start:.1f} s; wrote "
          f"{args.out}/results.csv, summary.csv, scores.png")
    return 0


def _deep_classifier(args):
    """The DeepClassifier that ``bci train --model`` trains (registered settings + flags)."""
    from .features.pipelines import DEEP_SETTINGS
    from .models.classifier import DeepClassifier
    from .models.registry import MODELS
    from ._checks import check_option

    check_option("model", args.model, MODELS)
    flags = {"max_epochs": args.max_epochs, "batch_size": args.batch_size, "lr": args.lr,
             "patience": args.patience, "val_fraction": args.val_fraction,
             "scheduler": args.scheduler, "seed": args.seed}
    settings = {**DEEP_SETTINGS, **{k: v for k, v in flags.items() if v is not None}}
    devices = int(args.devices) if args.devices.isdigit() else args.devices
    return DeepClassifier(args.model, **settings, accelerator=args.accelerator,
                          devices=devices, strategy=args.strategy, n_threads=args.threads,
                          progress_bar=sys.stderr.isatty())


def _train(args) -> int:
    from pathlib import Path

    from .models.decoder import train_decoder

    name = args.model or args.pipeline
    pipeline = _deep_classifier(args) if args.model else args.pipeline
    decoder = train_decoder(args.dataset, args.paradigm, pipeline, args.subjects,
                            paradigm_params=_params(args.paradigm_param),
                            random_state=args.random_state)
    decoder.info["pipeline"] = name
    curves = None
    if args.model:
        import matplotlib.pyplot as plt

        from .models.classifier import plot_learning_curves

        clf = decoder.estimator
        decoder.info["training"] = {"n_epochs": clf.n_epochs_, "best_epoch": clf.best_epoch_,
                                    "history": clf.history_}
        out = Path(args.out)
        curves = out.with_name(out.stem + "_learning_curves.png")
        curves.parent.mkdir(parents=True, exist_ok=True)
        plt.close(plot_learning_curves(clf.history_, curves,
                                       title=f"{name} on {decoder.info['dataset']}"))
    path = decoder.save(args.out)
    print(f"Saved {name} decoder to {path}: {decoder.n_chans} channels at "
          f"{decoder.sfreq:g} Hz, window {decoder.tmin:g}-{decoder.tmax:g} s "
          f"({decoder.n_times} samples), classes {decoder.classes}, "
          f"trained on {decoder.info['n_epochs']} epochs.")
    if curves is not None:
        clf = decoder.estimator
        print(f"Trained {clf.n_epochs_} epochs, kept epoch {clf.best_epoch_}; learning curves: "
              f"{curves}")
    return 0


def _pipelines(args) -> int:
    from .features.pipelines import PIPELINES

    for name, spec in PIPELINES.items():
        print(f"{name:<15} {'/'.join(spec.paradigms):<30} {spec.description}")
    return 0


def _datasets(args) -> int:
    from .data.loaders import list_datasets

    print("\n".join(list_datasets()))
    return 0


_COMMANDS = {"benchmark": _benchmark, "train": _train, "pipelines": _pipelines,
             "datasets": _datasets}

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
