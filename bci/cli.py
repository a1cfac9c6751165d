"""The bci command: benchmark, train, pipelines, datasets, play, acquire, stream, session-*, export.

Run ``bci COMMAND --help`` for the options of each command. Durations are in seconds and their
flags say so (``--duration-s``, ``--step-s``...; the older spellings without ``-s`` still work).
Every value is checked when the command line is read: a bad one gets argparse's usage message
and exit status 2, before any work.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Sequence

from ._logging import set_log_level


def _subjects(text: str) -> list[int]:
    """Parse ``"1,2,5-7"`` into ``[1, 2, 5, 6, 7]`` (subject numbers start at 1)."""
    import re

    subjects: list[int] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if match is None:
            what = "an empty item" if not part else repr(part)
            raise argparse.ArgumentTypeError(
                f"subjects must be numbers >= 1 and ranges like '1,2,5-7', got {what} in "
                f"{text!r}.")
        lo = int(match[1])
        hi = int(match[2]) if match[2] is not None else lo
        if lo < 1:
            raise argparse.ArgumentTypeError(
                f"subject numbers start at 1, got {lo} in {text!r}.")
        if hi < lo:
            raise argparse.ArgumentTypeError(
                f"the subject range {part!r} is reversed; write it low-high ({hi}-{lo}).")
        repeated = sorted(set(subjects) & set(range(lo, hi + 1)))
        if repeated:
            raise argparse.ArgumentTypeError(
                f"subject(s) {repeated} given twice in {text!r}.")
        subjects.extend(range(lo, hi + 1))
    return subjects


def _params(items: Sequence[str] | None, what: str = "parameters") -> dict:
    """Parse ``["n_classes=4", "fmin=8"]`` into ``{"n_classes": 4, "fmin": 8}``."""
    from ._checks import parse_key_values

    return parse_key_values(items or [], what=what)


# ---------------------------------------------------------------------- argparse types
# Each checks one value when the command line is read and raises ArgumentTypeError, so a bad
# value gets argparse's usage message and exit status 2 (never a traceback, never NaN).

def _argtype(fn):
    """Turn a checker's ``ValueError``/``TypeError`` into argparse's ``ArgumentTypeError``."""
    def parse(text: str):
        try:
            return fn(text)
        except (ValueError, TypeError) as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = fn.__name__
    return parse


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}.") from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}.") from None


def _positive(unit: str, *, allow_zero: bool = False, allow_none: bool = False):
    """Type of a finite number > 0 (>= 0 with ``allow_zero``); ``none`` for None if allowed."""
    from ._checks import check_positive

    def number(text: str) -> float | None:
        if allow_none and text.strip().lower() == "none":
            return None
        return check_positive(_float(text), "the value", unit=unit, allow_zero=allow_zero)

    return _argtype(number)


def _count(minimum: int = 1, *, allow_none: bool = False, what: str = ""):
    """Type of an int >= ``minimum``; ``none`` for None (no limit) if allowed."""
    from ._checks import ensure_int

    def count(text: str) -> int | None:
        if allow_none and text.strip().lower() == "none":
            return None
        return ensure_int(_int(text), "the value", minimum=minimum, what=what)

    return _argtype(count)


def _fraction(text: str) -> float:
    from ._checks import check_fraction

    return check_fraction(_float(text), "the value")


def _key_value(text: str) -> str:
    """One ``KEY=VALUE`` item (checked; parsed later by :func:`_params`)."""
    from ._checks import parse_key_values

    parse_key_values([text], what="KEY=VALUE parameters")
    return text


class _AppendKeyValue(argparse.Action):
    """``action="append"`` for ``KEY=VALUE`` items that refuses a key given twice."""

    def __call__(self, parser, namespace, value, option_string=None):
        items = list(getattr(namespace, self.dest, None) or [])
        key = value.partition("=")[0].strip()
        if key in (i.partition("=")[0].strip() for i in items):
            parser.error(f"argument {option_string}: {key!r} is given twice.")
        setattr(namespace, self.dest, [*items, value])


def _policy_spec(text: str) -> str:
    """Check a ``--policy`` spec by building it (the decoder's classes are checked later)."""
    from .realtime.session import parse_policy

    parse_policy(text)
    return text


def _stimulator_spec(text: str) -> str:
    """Check a ``--stimulator`` spec without opening any device."""
    from .hw.factory import parse_stimulator

    parse_stimulator(text)
    return text


class _LazyText:
    """Help text computed only when the help is shown (registries that import torch)."""

    def __init__(self, fn) -> None:
        self._fn = fn

    def __str__(self) -> str:
        return str(self._fn())


def _deep_default(key: str) -> _LazyText:
    def default():
        from .pipelines.registry import DEEP_SETTINGS

        return DEEP_SETTINGS[key]

    return _LazyText(default)


def _model_names() -> str:
    from .models.registry import MODELS

    return ", ".join(MODELS)


def _add_with_alias(parser, flag: str, alias: str, **kwargs) -> argparse.Action:
    """Add ``flag`` and a hidden older spelling ``alias`` that sets the same value."""
    action = parser.add_argument(flag, **kwargs)
    parser.add_argument(alias, dest=action.dest, type=kwargs.get("type"),
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return action


def _add_data_args(parser: argparse.ArgumentParser, *, default_dataset: str | None) -> None:
    parser.add_argument("--dataset", default=default_dataset, required=default_dataset is None,
                        help="MOABB dataset class name (see `bci datasets`); default: "
                             f"{default_dataset}")
    parser.add_argument("--paradigm", default="LeftRightImagery",
                        help="MOABB paradigm class name (default: LeftRightImagery)")
    parser.add_argument("--paradigm-param", action=_AppendKeyValue, type=_argtype(_key_value),
                        metavar="KEY=VALUE",
                        help="paradigm constructor argument, repeatable (e.g. n_classes=4)")
    parser.add_argument("--dataset-param", action=_AppendKeyValue, type=_argtype(_key_value),
                        metavar="KEY=VALUE",
                        help="dataset constructor argument or run list, repeatable (e.g. "
                             "executed=True; PhysionetMI feet_runs=[] loads the hand runs "
                             "only). Runs without any of the paradigm's events are skipped "
                             "anyway.")
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
                       choices=["within-session", "cross-session", "cross-subject",
                                "pseudo-online"],
                       help="MOABB's evaluations, or pseudo-online: the held-out recording "
                            "replayed through the online loop (folds of --split)")
    online = bench.add_argument_group("pseudo-online (with --evaluation pseudo-online)")
    online.add_argument("--split", default="within-session",
                        choices=["within-session", "cross-session", "cross-subject"],
                        help="folds of the pseudo-online evaluation (default within-session)")
    online.add_argument("--step-s", type=_positive("s"), default=0.1,
                        help="time between decoded windows (s, default 0.1)")
    online.add_argument("--deadline-s", type=_positive("s", allow_none=True), default=None,
                        help="forced decision time after the cue (s; default: epoch end)")
    online.add_argument("--threshold", type=_fraction, default=0.8,
                        help="probability of a confident decision (default 0.8)")
    online.add_argument("--n-consecutive", type=_count(1), default=1,
                        help="consecutive confident windows a decision needs (default 1)")
    online.add_argument("--iti-s", type=_positive("s", allow_zero=True, allow_none=True),
                        default=None, help="inter-trial interval for the ITR (s; default: "
                                           "the dataset's if known, else 0)")
    bench.add_argument("--n-jobs", type=_count(1), default=1, help="parallel jobs for MOABB")
    bench.add_argument("--out", default="results/benchmark",
                       help="output folder, checked for writing before the evaluation "
                            "(default: results/benchmark)")
    where = bench.add_mutually_exclusive_group()
    where.add_argument("--cluster", metavar="local:N", default=None,
                       help="compute the cells on a new Dask LocalCluster of N worker processes "
                            "(127.0.0.1; needs bci[dask])")
    where.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="compute the cells on an existing Dask scheduler, e.g. "
                            "tcp://host:8786 (needs bci[dask])")
    bench.add_argument("--scheduler-timeout", type=_positive("s"), default=30.0,
                       help="how long to try to reach --scheduler (default 30 s)")
    bench.add_argument("--cache-dir", default=None,
                       help="per-cell result cache, so an interrupted run resumes (default: "
                            "$BCI_CACHE_DIR or ~/.cache/bci/benchmark)")
    bench.add_argument("--no-cache", action="store_true",
                       help="recompute every cell (fresh results replace the cached ones)")

    train = sub.add_parser("train", help="fit a pipeline or train a network; save a decoder file",
                           description="Fit a registered pipeline, or train a deep decoder with "
                                       "Lightning, on all trials of the given subjects and save "
                                       "a decoder file for bci.load_decoder (networks: plus "
                                       "learning curves as PNG beside it).")
    _add_data_args(train, default_dataset=None)
    what = train.add_mutually_exclusive_group(required=True)
    what.add_argument("--pipeline", help="registered pipeline name (see `bci pipelines`)")
    model = what.add_argument("--model", help="deep decoder to train: %(models)s")
    model.models = _LazyText(_model_names)
    train.add_argument("--out", required=True, help="decoder file to write")
    train.add_argument("--sign-key", metavar="FILE", default=None,
                       help="sign the decoder file with this key file (HMAC lab key or Ed25519 "
                            "private key; default: the key in $BCI_DECODER_KEY, if set)")
    deep = train.add_argument_group("network training (with --model; defaults: the "
                                    "registered settings, bci.pipelines.registry.DEEP_SETTINGS)")
    deep_args = [
        deep.add_argument("--max-epochs", type=_count(1), default=None,
                          help="training epochs (default %(registered)s)"),
        deep.add_argument("--batch-size", type=_count(1), default=None,
                          help="batch size (default %(registered)s)"),
        deep.add_argument("--lr", type=_positive("learning rate"), default=None,
                          help="AdamW learning rate (default %(registered)s)"),
        deep.add_argument("--patience", type=_count(1), default=None,
                          help="early-stopping patience in epochs (default %(registered)s: "
                               "train --max-epochs; needs --val-fraction)"),
        deep.add_argument("--val-fraction", type=_argtype(_fraction), default=None,
                          help="stratified validation fraction for early stopping (default "
                               "%(registered)s: train on all epochs)"),
        deep.add_argument("--scheduler", choices=["cosine", "plateau", "none"], default=None,
                          help="learning-rate schedule (default %(registered)s)"),
        deep.add_argument("--seed", type=_count(0), default=None,
                          help="seed of weights, split, batches and dropout (default "
                               "%(registered)s)"),
    ]
    for action in deep_args:
        action.registered = _deep_default(action.dest)
    deep.add_argument("--accelerator", default="cpu",
                      help="Lightning accelerator: cpu (default), gpu, auto ...")
    deep.add_argument("--devices", default="1",
                      help="Lightning devices (default 1); with --strategy ddp, the processes "
                           "of this node (--batch-size is their global batch)")
    deep.add_argument("--strategy", default="auto",
                      help="Lightning strategy, e.g. ddp (default auto)")
    deep.add_argument("--num-nodes", type=_count(1), default=1,
                      help="Lightning nodes (default 1)")
    deep.add_argument("--threads", type=_count(1), default=None, help="torch CPU threads")
    deep.add_argument("--pretrained", metavar="FILE", default=None,
                      help="NeuroGPT: fine-tune from this pretrained network file (its "
                           "architecture, weights and sampling rate; epochs are resampled)")
    deep.add_argument("--finetune", choices=["encoder_gpt", "encoder", "linear"], default=None,
                      help="NeuroGPT fine-tuning strategy (default encoder_gpt)")

    _add_pretrain_command(sub)
    _add_realtime_commands(sub)
    _add_export_command(sub)
    _add_acquire_command(sub)
    _add_session_export_command(sub)
    sub.add_parser("pipelines", help="list the registered pipelines")
    sub.add_parser("datasets", help="list the dataset names bci accepts")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bci`` command; returns the exit status."""
    args = _build_parser().parse_args(argv)
    set_log_level("INFO" if args.verbose else "WARNING")
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, TypeError, OSError, RuntimeError, ImportError) as err:
        # OSError: an unwritable or full disk, a missing file (FileNotFoundError), a folder
        # that already holds a recording (FileExistsError); ImportError: a missing optional
        # extra (its message names the pip line): a message, never a traceback
        print(f"bci {args.command}: error: {err}", file=sys.stderr)
        return 2


def _benchmark(args) -> int:
    from .evaluation.benchmarks import format_table
    from .evaluation.cache import default_cache_dir
    from .evaluation.cluster import client_from_spec, close_client
    from .evaluation.online import format_online_table
    from .realtime.pseudo_online import benchmark

    start = time.perf_counter()
    print(f"Benchmarking {args.pipelines} on {args.dataset} ({args.paradigm}, "
          f"{args.evaluation}) ...", flush=True)
    online = args.evaluation == "pseudo-online"
    cache_dir = args.cache_dir if args.cache_dir is not None else default_cache_dir()
    client = client_from_spec(args.cluster, args.scheduler, args.scheduler_timeout)
    try:
        results = benchmark(dataset=args.dataset, paradigm=args.paradigm,
                            paradigm_params=_params(args.paradigm_param, "--paradigm-param"),
                            dataset_params=_params(args.dataset_param, "--dataset-param"),
                            pipelines=args.pipelines, subjects=args.subjects,
                            evaluation=args.evaluation, random_state=args.random_state,
                            n_jobs=args.n_jobs, out=args.out, split=args.split,
                            step_s=args.step_s, deadline_s=args.deadline_s,
                            threshold=args.threshold, n_consecutive=args.n_consecutive,
                            iti_s=args.iti_s, client=client, cache_dir=cache_dir,
                            recompute=args.no_cache)
    finally:
        if client is not None:
            close_client(client)
    print()
    print(format_online_table(results) if online else format_table(results))
    files = ("results.csv, folds.csv, trials.csv, curves.csv, summary.csv, accuracy_vs_time.png"
             if online else "results.csv, summary.csv, scores.png")
    cells = ("" if online else
             f" ({results.attrs['n_computed']} of {results.attrs['n_cells']} cells computed, "
             f"the others read from {cache_dir})")
    print(f"\n{len(results)} results in {time.perf_counter() - start:.1f} s{cells}; wrote "
          f"{args.out}/{files}")
    return 0


def _deep_classifier(args):
    """Build the DeepClassifier that ``bci train --model`` trains (registered settings + flags)."""
    from ._checks import check_option
    from .models.classifier import DeepClassifier
    from .models.registry import MODELS
    from .pipelines.registry import DEEP_SETTINGS

    check_option("model", args.model, MODELS)
    flags = {"max_epochs": args.max_epochs, "batch_size": args.batch_size, "lr": args.lr,
             "patience": args.patience, "val_fraction": args.val_fraction,
             "scheduler": args.scheduler, "seed": args.seed}
    settings = {**DEEP_SETTINGS, **{k: v for k, v in flags.items() if v is not None}}
    devices = int(args.devices) if args.devices.isdigit() else args.devices
    return DeepClassifier(args.model, **settings, accelerator=args.accelerator,
                          devices=devices, strategy=args.strategy, num_nodes=args.num_nodes,
                          n_threads=args.threads, progress_bar=sys.stderr.isatty())


def _train(args) -> int:
    from pathlib import Path

    from .pipelines.train import train_decoder

    name = args.model or args.pipeline
    pipeline = _deep_classifier(args) if args.model else args.pipeline
    decoder = train_decoder(args.dataset, args.paradigm, pipeline, args.subjects,
                            paradigm_params=_params(args.paradigm_param, "--paradigm-param"),
                            dataset_params=_params(args.dataset_param, "--dataset-param"),
                            random_state=args.random_state,
                            pretrained=getattr(args, "pretrained", None),
                            finetune=getattr(args, "finetune", None))
    if args.model and not _is_rank_zero(args):
        return 0  # another DDP process: rank 0 writes the decoder file
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
    path = decoder.save(args.out, key=_key_file(args.sign_key))
    print(f"Saved {name} decoder to {path}: {decoder.n_chans} channels at "
          f"{decoder.sfreq:g} Hz, window {decoder.tmin:g}-{decoder.tmax:g} s "
          f"({decoder.n_times} samples), classes {decoder.classes}, "
          f"trained on {decoder.info['n_epochs']} epochs.")
    if curves is not None:
        clf = decoder.estimator
        print(f"Trained {clf.n_epochs_} epochs, kept epoch {clf.best_epoch_}; learning curves: "
              f"{curves}")
    return 0


def _add_pretrain_command(sub) -> None:
    """``bci pretrain``: self-supervised Neuro-GPT pretraining (bci.pipelines.pretrain)."""
    pre = sub.add_parser(
        "pretrain", help="pretrain Neuro-GPT self-supervised on continuous recordings",
        description="Pretrain a NeuroGPT (causal masked chunk reconstruction) on every run of "
                    "the given datasets' subjects, mapped onto the model's 22 channels; write "
                    "the pretrained-weights file that `bci train --model NeuroGPT --pretrained "
                    "FILE` fine-tunes. Checkpoints every epoch; --resume continues a run.")
    pre.add_argument("--dataset", action="append", required=True, metavar="NAME",
                     help="dataset to pretrain on, repeatable (Kalunga2016, PhysionetMI: every "
                          "stored run, or any dataset of `bci datasets`)")
    pre.add_argument("--dataset-param", action=_AppendKeyValue, type=_argtype(_key_value),
                     metavar="KEY=VALUE",
                     help="dataset constructor argument for every --dataset, repeatable")
    pre.add_argument("--subjects", type=_subjects, default=None,
                     help="subjects of every dataset, e.g. 1-11 (default: all)")
    pre.add_argument("--exclude-subjects", type=_subjects, default=None,
                     help="subjects left out (never prepared), e.g. the held-out subject")
    pre.add_argument("--config", choices=["small", "paper"], default="small",
                     help="named NeuroGPT configuration (default small)")
    pre.add_argument("--out", required=True, help="pretrained-weights file to write")
    pre.add_argument("--max-epochs", type=_count(1), default=10,
                     help="pretraining epochs in all (default 10)")
    pre.add_argument("--batch-size", type=_count(1), default=16, help="samples per batch "
                                                                      "(default 16)")
    pre.add_argument("--lr", type=_positive("learning rate"), default=1e-4,
                     help="AdamW learning rate (default 1e-4)")
    pre.add_argument("--val-fraction", type=_argtype(_fraction), default=0.0,
                     help="fraction of recordings held out for val_loss (default 0)")
    pre.add_argument("--cache-dir", default=None,
                     help="prepared-signal cache (default: <out stem>_cache beside --out)")
    pre.add_argument("--checkpoint-dir", default=None,
                     help="checkpoint folder (default: <out stem>_checkpoints beside --out)")
    pre.add_argument("--resume", action="store_true",
                     help="continue the run of --checkpoint-dir from its last.ckpt")
    pre.add_argument("--accelerator", default="cpu",
                     help="Lightning accelerator: cpu (default), gpu, auto ...")
    pre.add_argument("--devices", default="1",
                     help="Lightning devices (default 1); with --strategy ddp, the processes "
                          "of this node (--batch-size is their global batch)")
    pre.add_argument("--strategy", default="auto",
                     help="Lightning strategy, e.g. ddp (default auto)")
    pre.add_argument("--num-nodes", type=_count(1), default=1,
                     help="Lightning nodes (default 1)")
    pre.add_argument("--workers", type=_count(0), default=0, help="data-loader processes")
    pre.add_argument("--threads", type=_count(1), default=None, help="torch CPU threads")
    pre.add_argument("--seed", type=_count(0), default=0,
                     help="seed of weights, split, batches, starts and dropout (default 0)")


def _is_rank_zero(args) -> bool:
    """Whether this process is rank 0 of a (possibly distributed) training, or alone."""
    from .models.training import global_rank

    return global_rank(int(args.devices) if args.devices.isdigit() else args.devices) == 0


def _pretrain(args) -> int:
    from .pipelines.pretrain import pretrain

    params = _params(args.dataset_param, "--dataset-param")
    devices = int(args.devices) if args.devices.isdigit() else args.devices
    start = time.perf_counter()
    path = pretrain(args.dataset, args.out, subjects=args.subjects,
                    exclude_subjects=args.exclude_subjects,
                    dataset_params={name: params for name in args.dataset} if params else None,
                    config=args.config, max_epochs=args.max_epochs, batch_size=args.batch_size,
                    lr=args.lr, val_fraction=args.val_fraction, cache_dir=args.cache_dir,
                    checkpoint_dir=args.checkpoint_dir, resume=args.resume,
                    accelerator=args.accelerator, devices=devices, strategy=args.strategy,
                    num_nodes=args.num_nodes, num_workers=args.workers, seed=args.seed,
                    n_threads=args.threads, progress_bar=sys.stderr.isatty())
    if not _is_rank_zero(args):
        return 0  # another DDP process: rank 0 wrote the file
    from .models.decoder import network_info

    info = network_info(path)
    print(f"Saved the pretrained NeuroGPT ({info['configuration']}) to {path}: "
          f"{info['n_epochs']} epochs, {info['n_steps']} steps on {info['n_train_samples']} "
          f"samples ({sum(info['minutes'].values()):.1f} min of EEG) in "
          f"{time.perf_counter() - start:.1f} s.")
    return 0


def _pipelines(args) -> int:
    from .pipelines.registry import PIPELINES

    for name, spec in PIPELINES.items():
        print(f"{name:<15} {'/'.join(spec.paradigms):<30} {spec.description}")
    return 0


def _datasets(args) -> int:
    from .data.loaders import list_datasets

    print("\n".join(list_datasets()))
    return 0


def _add_realtime_commands(sub) -> None:
    """``bci play``, ``bci stream``, ``bci session-report``."""
    seconds = _positive("s")
    play = sub.add_parser("play", help="publish a recording as a live LSL stream",
                          description="Replay a recording (any file MNE reads) as an LSL "
                                      "stream in real time.")
    play.add_argument("file", help="recording (.fif, .edf, .bdf, .vhdr, .set ...)")
    play.add_argument("--name", required=True, help="LSL stream name")
    play.add_argument("--type", default="EEG", help="LSL stream type (default EEG)")
    play.add_argument("--loop", action="store_true", help="start over at the end")
    _add_with_alias(play, "--duration-s", "--duration", type=seconds, default=None,
                    metavar="SECONDS", help="stop after SECONDS (default: the recording's end)")
    play.add_argument("--picks", default=None, help="comma-separated channels (default: data)")
    _add_with_alias(play, "--wait-s", "--wait", type=_positive("s", allow_zero=True),
                    default=0.0, metavar="SECONDS",
                    help="wait up to SECONDS for a first consumer before sending (samples "
                         "sent before an inlet connects are lost; default 0)")
    play.add_argument("--reaching", action="store_true",
                      help="FILE is a center-out reaching session (.mat TrialData, or "
                           "'staged' for the staged one): publish its binned spike counts, "
                           "one channel a unit, one sample a bin (20 Hz for 50-ms bins)")

    stream = sub.add_parser(
        "stream", help="run a closed-loop session on an LSL stream or a board",
        description="Read an LSL stream, decode it causally, stimulate under hard safety "
                    "limits and record everything. Create DIR/STOP to stop all stimulation; "
                    "Ctrl+C ends the session. Class and channel names in --policy are names, "
                    "read as text (target=13 is the class called 13; quotes optional, e.g. "
                    "--policy \"threshold:target='13'\"). A policy or stimulator error is "
                    "recorded and ends the session (--on-fault continue: goes on); the summary "
                    "is always written.")
    stream.add_argument("--source", default=None,
                        help="LSL stream name to read (or --board)")
    stream.add_argument("--board", default=None, metavar="NAME",
                        help="read a BrainFlow board directly instead of an LSL stream (e.g. "
                             "synthetic, cyton; needs bci[brainflow]); with --serial-port and "
                             "--board-param as for `bci acquire`")
    _add_board_args(stream)
    stream.add_argument("--decoder", default=None,
                        help="decoder file (`bci train --out`), or a streaming SNN's NIR file "
                             "(.nir, `bci export --format nir`): then every sample (bin) is "
                             "decoded, one step at a time, and the outputs are streamed "
                             "(--outlet) and recorded")
    stream.add_argument("--backend", choices=["torch", "nir", "snntorch"], default="torch",
                        help="with a .nir decoder: run it in torch (the model rebuilt from the "
                             "graph), in bci's NumPy NIR simulator (nir), or through snnTorch's "
                             "NIR import (snntorch, needs bci[bench]) (default torch)")
    stream.add_argument("--outlet", default=None, metavar="NAME",
                        help="with a .nir decoder: publish its outputs (one sample per input "
                             "sample, channels vx, vy) as this LSL stream")
    stream.add_argument("--max-bins", type=_count(1, what="bins"), default=None, metavar="N",
                        help="with a .nir decoder: stop after N decoded samples")
    stream.add_argument("--decoder-key", metavar="FILE", default=None,
                        help="verify the decoder file's signature with this key file (HMAC lab "
                             "key or Ed25519 public key) and refuse unsigned files (default: "
                             "the key in $BCI_DECODER_KEY, if set)")
    stream.add_argument("--policy", default="none", type=_argtype(_policy_spec),
                        help="none | threshold:target=CLASS,on=0.8,off=0.6,refractory_s=2 | "
                             "oscillation:channel=C3,freq=13.5,threshold=2.5 (default none); "
                             "checked at once, and the target against the decoder's classes "
                             "before the session starts")
    stream.add_argument("--record", default=None, metavar="DIR",
                        help="session folder to write (checked for writing before anything "
                             "else)")
    _add_with_alias(stream, "--duration-s", "--duration", type=seconds, default=None,
                    metavar="SECONDS", help="session length (default: until Ctrl+C)")
    stream.add_argument("--stimulator", default="lsl:bci-stim",
                        type=_argtype(_stimulator_spec),
                        help="lsl[:NAME][,wait_for_consumers_s=S] | "
                             "audio[:freq=1000,duration_s=0.05] | "
                             "serial:PORT[,baudrate=115200] | none (default lsl:bci-stim; its "
                             "outlet is created when the session starts, and markers sent "
                             "with no consumer connected are counted as such)")
    _add_with_alias(stream, "--window-s", "--window", type=seconds, default=None,
                    metavar="SECONDS", help="window length; the decoder's by default")
    _add_with_alias(stream, "--step-s", "--step", type=seconds, default=0.1,
                    metavar="SECONDS", help="step between windows (default 0.1)")
    hz = _positive("Hz")
    stream.add_argument("--bandpass", type=hz, nargs=2, default=None, metavar=("L", "H"),
                        help="causal band-pass (Hz) before the policy (and before the decoder "
                             "with --decoder-input processed)")
    stream.add_argument("--notch", type=hz, default=None, help="causal notch (Hz)")
    stream.add_argument("--decoder-input", choices=["raw", "processed"], default="raw")
    _add_with_alias(stream, "--min-interval-s", "--min-interval",
                    type=_positive("s", allow_zero=True), default=1.0, metavar="SECONDS",
                    help="safety: minimum time between stimuli (default 1; 0: none)")
    stream.add_argument("--max-per-minute", type=_count(0, allow_none=True, what="stimuli"),
                        default=20, metavar="N",
                        help="safety: stimuli per minute (default 20; none: no limit)")
    stream.add_argument("--max-per-session", type=_count(0, allow_none=True, what="stimuli"),
                        default=500, metavar="N",
                        help="safety: stimuli per session (default 500; none: no limit)")
    stream.add_argument("--on-fault", choices=["stop", "continue"], default="stop",
                        help="after a policy, stimulator or marker error (always recorded): "
                             "stop the session (default) or continue")
    stream.add_argument("--decision-markers", default=None, metavar="NAME",
                        help="also publish every decision on this LSL marker stream")
    _add_with_alias(stream, "--timeout-s", "--timeout", type=seconds, default=10.0,
                    metavar="SECONDS", help="time to look for the source (default 10)")
    stream.add_argument("--monitor", action="store_true",
                        help="serve a live web page of the session (signals, band power, "
                             "decisions, stimuli, latency, faults; needs bci[monitor]); its URL, "
                             "with its access token, is printed when the session starts")
    stream.add_argument("--monitor-host", default=None, metavar="ADDR",
                        help="address the monitor listens on (default 127.0.0.1: this machine "
                             "only; another address exposes the session and warns)")
    stream.add_argument("--monitor-port", type=_count(0, what="TCP port"), default=None,
                        metavar="PORT", help="the monitor's TCP port (default 0: a free one)")

    report = sub.add_parser("session-report", help="draw a recorded session",
                            description="Latency histograms, decisions and stimuli over time "
                                        "(PNG + report.html) for a `bci stream --record` DIR.")
    report.add_argument("directory", help="session folder")


def _play(args) -> int:
    from .realtime.player import play

    picks = args.picks.split(",") if args.picks else None
    source = args.file
    if args.reaching:
        from .realtime.player import reaching_counts

        if picks is not None:
            raise ValueError("--picks selects channels of a recording; with --reaching every "
                             "unit is published (drop --picks).")
        source = reaching_counts(None if args.file == "staged" else args.file)
        print(f"Reaching session: {source[0].shape[0]} units, {source[0].shape[1]} bins at "
              f"{source[1]:g} Hz.", flush=True)
    print(f"Playing {args.file} as LSL stream {args.name!r} (Ctrl+C to stop) ...", flush=True)
    n = play(source, args.name, stype=args.type, loop=args.loop, duration_s=args.duration_s,
             picks=picks, wait_for_consumers_s=args.wait_s)
    print(f"Pushed {n} samples.")
    return 0


_CLEAN_STOPS = ("duration reached", "interrupted (Ctrl+C)", "end of the replayed source")


def _stream(args) -> int:
    import json
    from pathlib import Path

    from .hw.factory import make_stimulator
    from .realtime.lsl import LSLSource, MarkerOutlet
    from .realtime.processing import CausalFilter, ProcessingChain
    from .realtime.recording import check_session_dir
    from .realtime.safety import SafetyGate
    from .realtime.session import run_session

    if args.record:  # before any work: a place that cannot be written fails at once
        check_session_dir(args.record)
    if args.decoder is not None and args.decoder.endswith(".nir"):
        return _stream_continuous(args)
    for flag, value in (("--outlet", args.outlet), ("--max-bins", args.max_bins)):
        if value is not None:
            raise ValueError(f"{flag} is for continuous decoding; give a streaming SNN's "
                             ".nir file as --decoder (or drop it).")
    decoder = _stream_decoder(args)  # loaded and verified before any LSL work
    safety = SafetyGate(min_interval_s=args.min_interval_s, max_per_minute=args.max_per_minute,
                        max_per_session=args.max_per_session,
                        stop_file=Path(args.record) / "STOP" if args.record else None)
    stimulator = make_stimulator(args.stimulator)
    markers = monitor = None
    try:
        monitor = _stream_monitor(args)  # a port in use fails before any LSL work
        if stimulator is not None:  # the outlet exists from the start: consumers can connect
            stimulator.open()
        markers = MarkerOutlet(args.decision_markers) if args.decision_markers else None
        source = _stream_source(args, LSLSource)
        steps = []
        if args.bandpass:
            steps.append(CausalFilter(source.info.sfreq, *args.bandpass))
        if args.notch:
            steps.append(CausalFilter(source.info.sfreq, args.notch, kind="notch"))
        print(f"Streaming {source.info.name!r}: {source.info.n_chans} channels at "
              f"{source.info.sfreq:g} Hz; decoder {args.decoder or 'none'}, policy "
              f"{args.policy}, stimulator {args.stimulator}"
              + (f", recording to {args.record}" if args.record else "")
              + " (Ctrl+C to stop) ...", flush=True)
        summary = run_session(source, decoder=decoder, policy=args.policy,
                              record_dir=args.record, duration_s=args.duration_s,
                              stimulator=stimulator, safety=safety,
                              processing=ProcessingChain(steps), window_s=args.window_s,
                              step_s=args.step_s, markers=markers, on_fault=args.on_fault,
                              info={"decoder": args.decoder, "policy": args.policy,
                                    "stimulator": args.stimulator},
                              monitor=None if monitor is None else monitor.feed)
    finally:
        if monitor is not None:
            monitor.close()
        if stimulator is not None:
            stimulator.close()
        if markers is not None:
            markers.close()
    lat = summary["latency_ms"]
    print(json.dumps({k: summary[k] for k in ("samples_received", "samples_lost", "gaps",
                                             "decisions", "stimuli_fired",
                                             "markers_sent_with_consumer",
                                             "stimuli_suppressed", "faults")}, indent=1))
    print("latency (ms)  " + "  ".join(
        f"{stage} p50 {lat[stage]['p50']} p99 {lat[stage]['p99']}"
        for stage in ("acquire", "decode", "end_to_end") if lat[stage]["n"]))
    stim = summary["stimulator"]
    if stim is not None and stim["sent_without_consumer"]:
        print(f"Warning: {stim['sent_without_consumer']} of {summary['stimuli_fired']} stimuli "
              f"were sent by {stim['name']} with no consumer connected (lost).")
    if summary.get("summary_written") is False:
        print(f"Warning: {summary['summary_error']}\nThe summary:\n"
              + json.dumps(summary, indent=1, default=str))
    print(f"Stopped: {summary['stopped_reason']}")
    return 0 if summary["stopped_reason"] in _CLEAN_STOPS else 1


def _stream_continuous(args) -> int:
    """``bci stream --decoder FILE.nir``: decode every bin, stream and record the outputs."""
    import json

    from .realtime.continuous import ContinuousLoop
    from .realtime.lsl import LSLSource, SignalOutlet
    from .realtime.recording import Recorder
    from .realtime.stream import Stream

    if args.decoder_key is not None or args.monitor or args.policy != "none":
        raise ValueError("A .nir decoder decodes continuously: --decoder-key, --policy and "
                         "--monitor do not apply to it (drop them).")
    if args.backend == "nir":
        from .models.nir_runtime import NIRStepDecoder

        decoder = NIRStepDecoder(args.decoder)
    elif args.backend == "snntorch":
        from .models.snntorch_runtime import SnnTorchStepDecoder

        decoder = SnnTorchStepDecoder(args.decoder)
    else:
        from .hw.nir_export import load_nir
        from .models.spiking.stepping import TorchStepDecoder

        decoder = TorchStepDecoder(load_nir(args.decoder))
    names = ["vx", "vy"] if decoder.n_outputs == 2 else None
    source = _stream_source(args, LSLSource)
    # flat_s=0: a unit silent for a while is normal in spike counts, not a fault to report
    stream = Stream(source, buffer_s=30.0, flat_s=0)
    outlet = None
    if args.outlet:
        outlet = SignalOutlet(args.outlet, names or [f"out{k}" for k in
                                                     range(decoder.n_outputs)],
                              decoder.sfreq, stype="Decoded")
    recorder = None
    if args.record:
        recorder = Recorder(args.record, stream.ch_names, stream.sfreq, unit="count",
                            info={"decoder": args.decoder, "backend": args.backend,
                                  "outlet": args.outlet, "mode": "continuous",
                                  "ch_types": "misc"})
    print(f"Decoding {source.info.name!r} ({source.info.n_chans} channels at "
          f"{source.info.sfreq:g} Hz) bin by bin with {args.decoder} on {args.backend}"
          + (f", outputs on LSL {args.outlet!r}" if args.outlet else "")
          + (f", recording to {args.record}" if args.record else "") + " ...", flush=True)
    try:
        loop = ContinuousLoop(stream, decoder, output_names=names, outlet=outlet,
                              recorder=recorder)
        summary = loop.run(args.duration_s, max_bins=args.max_bins,
                           idle_timeout_s=args.timeout_s)
    finally:
        if recorder is not None:
            recorder.close()
    print(json.dumps({k: summary[k] for k in ("backend", "n_bins", "synops_per_s",
                                             "latency_ms", "stream_events",
                                             "stopped_reason")}, indent=1))
    return 0 if summary["stopped_reason"] in ("max_bins", "duration", "idle") else 1


def _stream_monitor(args):
    """Start the live monitor of ``bci stream --monitor`` and print its URL (None without)."""
    if not args.monitor:
        if args.monitor_host is not None or args.monitor_port is not None:
            raise ValueError("--monitor-host and --monitor-port configure the live monitor; "
                             "give --monitor too (or drop them).")
        return None
    from .realtime.monitor import MonitorFeed, MonitorServer

    host = "127.0.0.1" if args.monitor_host is None else args.monitor_host
    port = 0 if args.monitor_port is None else args.monitor_port
    if port > 65535:
        raise ValueError(f"--monitor-port must be a TCP port (0-65535), got {port}.")
    # on another address than 127.0.0.1, MonitorServer.start logs a warning (on stderr)
    server = MonitorServer(MonitorFeed(), host=host, port=port).start()
    print(f"Live monitor: {server.url}", flush=True)
    return server


def _stream_source(args, lsl_source):
    """Open the source of ``bci stream``: an LSL stream (``--source``) or a board (``--board``)."""
    if (args.source is None) == (args.board is None):
        raise ValueError("Give the signal to read: --source LSL_NAME (an LSL stream) or "
                         "--board NAME (a BrainFlow board, e.g. synthetic), not both.")
    if args.board is None:
        if args.serial_port is not None or args.board_param:
            raise ValueError("--serial-port and --board-param configure a --board; give "
                             "--board NAME too (or drop them).")
        return lsl_source(args.source, timeout_s=args.timeout_s)
    from .hw.brainflow import BrainFlowSource

    return BrainFlowSource(args.board, serial_port=args.serial_port,
                           params=_params(args.board_param, "--board-param"))


def _key_file(path: str | None):
    """``--sign-key`` / ``--decoder-key``: a key file's path (None: $BCI_DECODER_KEY if set)."""
    from pathlib import Path

    return None if path is None else Path(path)


def _stream_decoder(args):
    """Load the decoder of ``bci stream`` (signature verified) before any LSL connection."""
    if args.decoder is None:
        if args.decoder_key is not None:
            raise ValueError("--decoder-key verifies a --decoder file; give --decoder too.")
        return None
    from .models.decoder import load_decoder

    return load_decoder(args.decoder, key=_key_file(args.decoder_key))


def _session_report(args) -> int:
    from .realtime.report import make_session_report

    paths = make_session_report(args.directory)
    print("Wrote " + ", ".join(str(p) for p in paths))
    return 0


def _export_numpy(args) -> int:
    from pathlib import Path

    from .hw.numpy_export import export_numpy
    from .models.decoder import load_decoder

    source = Path(args.model_file)
    decoder = load_decoder(source)
    out = Path(args.out)
    if out.suffix != ".bci":
        out = out / f"{source.stem}-numpy.bci"
    path = export_numpy(decoder, out)
    exported = load_decoder(path)
    print(f"Exported {decoder.info.get('pipeline', type(decoder.estimator).__name__)} to {path} "
          f"({path.stat().st_size} bytes; {source.stat().st_size} before): "
          + " -> ".join(exported.estimator.steps) + ", evaluated by NumPy alone (no "
          "scikit-learn, no pyRiemann, no pickle).")
    print(f"Decoder: {exported.n_chans} channels at {exported.sfreq:g} Hz, window "
          f"{exported.tmin:g}-{exported.tmax:g} s, classes {', '.join(exported.classes)}. "
          f"Run it with: bci stream --decoder {path} ...")
    return 0


def _add_export_command(sub) -> None:
    """``bci export``."""
    export = sub.add_parser(
        "export", help="export a trained decoder (NIR, ONNX)",
        description="Export the network of a network file (bci.models.decoder.save_network) "
                    "or decoder file to the Neuromorphic Intermediate Representation (HDF5 .nir "
                    "file, read by snnTorch, Norse, Lava, Rockpool...). Exportable: "
                    "SNNStreaming, SNN3D, LinearDecoder. --format onnx: a network decoder file "
                    "(bci train --model) as an ONNX decoder file, float32 or int8, that "
                    "bci.load_decoder and bci stream run with ONNX Runtime, without torch.")
    export.add_argument("model_file", metavar="MODEL_FILE", help="network or decoder file")
    export.add_argument("--format", choices=["nir", "onnx", "numpy"], default="nir",
                        help="export format (default nir; onnx: a network decoder file as an "
                             "ONNX decoder file that bci stream runs with ONNX Runtime, no "
                             "torch, needs bci[edge]; numpy: a covariance-pipeline decoder "
                             "file as a pickle-free NumPy decoder file)")
    export.add_argument("--out", required=True,
                        help="file to write (e.g. model.nir); onnx and numpy: a folder (the "
                             "file is named after MODEL_FILE: NAME-onnx.bci, NAME-onnx-int8.bci, "
                             "NAME-numpy.bci) or a .bci file")
    _add_with_alias(export, "--dt-s", "--dt", type=_positive("s"), default=None,
                    metavar="SECONDS",
                    help="time step the time constants are written for (default: 1 / the "
                         "model's sfreq; snnTorch's NIR importer assumes 1e-4)")
    export.add_argument("--annotate-unsupported-reset", action="store_true",
                        help="export reset-by-subtraction layers as NIR's reset to zero plus a "
                             "metadata note (only bci reads it back exactly)")
    onnx = export.add_argument_group("onnx")
    onnx.add_argument("--int8", action="store_true",
                      help="static int8 quantisation (QDQ) calibrated on training windows: by "
                           "default the decoder's training dataset and subjects (bci train "
                           "records them)")
    onnx.add_argument("--calibration", metavar="FILE.npy", default=None,
                      help="with --int8: calibration windows instead, raw as the stream gives "
                           "them (n_windows, n_chans, n_times) in volts at the decoder's rate, "
                           "channels in its order")
    onnx.add_argument("--calibration-dataset", default=None,
                      help="with --int8: load the calibration windows from this dataset "
                           "(default: the decoder's training dataset)")
    onnx.add_argument("--calibration-subjects", type=_subjects, default=None,
                      help="with --int8: subjects of the calibration windows, e.g. 1,2 "
                           "(default: the decoder's training subjects)")
    onnx.add_argument("--int8-calibration", choices=["minmax", "entropy", "percentile"],
                      default=None,
                      help="with --int8: how ONNX Runtime sets activation ranges (default "
                           "percentile; minmax with --int8-keep-float none: every node int8 "
                           "on min/max ranges)")
    onnx.add_argument("--int8-keep-float", default=None, metavar="NODES",
                      help="with --int8: comma-separated nodes left in float32: first (the "
                           "first weighted node, the temporal convolution; the default), last "
                           "(the classifier), node names of the graph, or none")


def _export(args) -> int:
    if args.format == "onnx":
        return _export_onnx(args)
    if args.format == "numpy":
        return _export_numpy(args)
    from .models.decoder import load_network

    try:
        from .hw.nir_export import save_nir
        model = load_network(args.model_file)
        path = save_nir(model, args.out, dt=args.dt_s,
                        unsupported_reset="annotate" if args.annotate_unsupported_reset
                        else "raise")
        import nir
    except ImportError as err:
        print(f"bci export: error: {err}", file=sys.stderr)
        return 2
    graph = nir.read(path)
    following, order = dict(graph.edges), ["input"]
    while order[-1] in following:  # to_nir writes a chain
        order.append(following[order[-1]])
    print(f"Exported {type(model).__name__} to {path} (NIR, dt={graph.metadata['dt']:g} s): "
          + " -> ".join(f"{name} ({type(graph.nodes[name]).__name__})" for name in order))
    print(f"Graph input: {graph.metadata['graph_input']}.")
    return 0


def _add_board_args(parser) -> None:
    """``--serial-port`` and ``--board-param`` (``bci acquire``, ``bci stream --board``)."""
    parser.add_argument("--serial-port", default=None, metavar="PORT",
                        help="serial port of the board (e.g. /dev/ttyUSB0, COM3)")
    parser.add_argument("--board-param", action=_AppendKeyValue, type=_argtype(_key_value),
                        metavar="KEY=VALUE",
                        help="BrainFlowInputParams field, repeatable (e.g. "
                             "mac_address=00:55:DA:B0:0C:4F, ip_address=192.168.4.1, "
                             "serial_number=..., timeout=15)")


def _add_acquire_command(sub) -> None:
    """``bci acquire``."""
    acquire = sub.add_parser(
        "acquire", help="publish a BrainFlow board (amplifier) as LSL streams",
        description="Read a board through BrainFlow (bci[brainflow]) and publish its EEG as an "
                    "LSL stream NAME (volts, BrainFlow's channel names, timestamps on the LSL "
                    "clock), its accelerometer as NAME-accel and its markers as NAME-markers "
                    "where the board has them. A board that stops delivering is reconnected "
                    "(--reconnect-s). Ctrl+C stops.")
    acquire.add_argument("--board", required=True, metavar="NAME",
                         help="BrainFlow board: synthetic, cyton, cyton_daisy, ganglion, "
                              "muse_2, unicorn ... (an unknown name lists them all)")
    _add_board_args(acquire)
    acquire.add_argument("--name", required=True, help="LSL name of the EEG stream")
    acquire.add_argument("--duration-s", type=_positive("s"), default=None, metavar="SECONDS",
                         help="stop after SECONDS (default: until Ctrl+C)")
    acquire.add_argument("--wait-s", type=_positive("s", allow_zero=True), default=0.0,
                         metavar="SECONDS",
                         help="wait up to SECONDS for a first consumer before publishing; the "
                              "board's samples are kept meanwhile (default 0)")
    acquire.add_argument("--reconnect-s", type=_positive("s", allow_zero=True), default=10.0,
                         metavar="SECONDS",
                         help="keep trying to reconnect a lost board this long (default 10)")


def _acquire(args) -> int:
    from .hw.brainflow import acquire

    def started(publisher) -> None:
        info = publisher.source.info
        print(f"Publishing BrainFlow board {publisher.source.board_name!r} as LSL "
              f"{', '.join(publisher.stream_names)}: {info.n_chans} EEG channels "
              f"({', '.join(info.ch_names)}) at {info.sfreq:g} Hz in volts (Ctrl+C to "
              "stop) ...", flush=True)

    publisher = acquire(args.board, args.name, serial_port=args.serial_port,
                        params=_params(args.board_param, "--board-param"),
                        duration_s=args.duration_s, reconnect_s=args.reconnect_s,
                        wait_for_consumers_s=args.wait_s, on_start=started)
    print(f"Published {publisher.n_pushed} samples and {publisher.n_markers} markers"
          + (f"; the board was reconnected {publisher.n_reconnects} times"
             if publisher.n_reconnects else "") + ".")
    return 0


def _add_session_export_command(sub) -> None:
    """``bci session-export``."""
    export = sub.add_parser(
        "session-export", help="write a recorded session as BIDS, EDF+ or FIF",
        description="Write a `bci stream --record` DIR (never modified) as BIDS EEG with "
                    "mne-bids (--bids ROOT: data, channels.tsv, events.tsv with decisions, "
                    "stimuli and faults, the decoder's provenance in the *_eeg.json sidecar) "
                    "or as one file (--format edf|fif --out FILE); needs bci[bids]. A session "
                    "still being written is refused.")
    export.add_argument("directory", help="session folder")
    where = export.add_mutually_exclusive_group(required=True)
    where.add_argument("--bids", metavar="ROOT", default=None, help="BIDS dataset root")
    where.add_argument("--out", metavar="FILE", default=None,
                       help="file to write with --format (e.g. session.edf, session_raw.fif)")
    export.add_argument("--format", choices=["edf", "fif"], default=None,
                        help="file format with --out")
    export.add_argument("--subject", default="01", help="BIDS subject label (default 01)")
    export.add_argument("--task", default="bci", help="BIDS task label (default bci)")
    export.add_argument("--session", default=None, help="BIDS session label")
    export.add_argument("--run", default=None, help="BIDS run label")
    export.add_argument("--line-freq", type=_positive("Hz"), default=None, metavar="HZ",
                        help="power-line frequency (Hz) for the BIDS sidecar")
    export.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
    export.add_argument("--allow-incomplete", action="store_true",
                        help="export a session without summary.json (its recording crashed)")


def _session_export(args) -> int:
    from .realtime.session_export import export_session, export_session_bids

    if args.bids is not None:
        if args.format is not None:
            raise ValueError("--format goes with --out FILE; BIDS (--bids) is written as "
                             "BrainVision by mne-bids.")
        path = export_session_bids(args.directory, args.bids, subject=args.subject,
                                   task=args.task, session=args.session, run=args.run,
                                   line_freq=args.line_freq, overwrite=args.overwrite,
                                   allow_incomplete=args.allow_incomplete)
        print(f"Wrote BIDS {path.fpath} (and its channels.tsv, events.tsv, eeg.json) under "
              f"{args.bids}")
        return 0
    if args.format is None:
        raise ValueError("--out FILE needs --format edf or --format fif.")
    path = export_session(args.directory, args.out, fmt=args.format, overwrite=args.overwrite,
                          allow_incomplete=args.allow_incomplete)
    print(f"Wrote {path} ({args.format.upper()})")
    return 0


def _export_onnx(args) -> int:
    from pathlib import Path

    import numpy as np

    from .hw.onnx_export import (
        INT8_DEFAULT_CALIBRATION,
        INT8_DEFAULT_KEEP_FLOAT,
        export_onnx,
        training_epochs,
    )
    from .models.decoder import load_decoder

    decoder = load_decoder(args.model_file)
    out = Path(args.out)
    if out.suffix != ".bci":
        out = out / f"{Path(args.model_file).stem}-onnx{'-int8' if args.int8 else ''}.bci"
    keep = list(INT8_DEFAULT_KEEP_FLOAT)
    if args.int8_keep_float is not None:
        keep = [n for n in args.int8_keep_float.split(",") if n]
        if "none" in keep:
            if len(keep) > 1:
                raise ValueError(f"--int8-keep-float {args.int8_keep_float}: 'none' (every "
                                 "node int8) cannot be combined with nodes; give one or the "
                                 "other.")
            keep = []
    calibration = None
    if args.int8:
        if args.calibration:
            calibration = decoder.preprocess(np.load(args.calibration, allow_pickle=False))
        else:
            calibration = training_epochs(decoder, dataset=args.calibration_dataset,
                                          subjects=args.calibration_subjects)
    elif (args.calibration or args.calibration_dataset or args.calibration_subjects
          or args.int8_calibration or args.int8_keep_float):
        raise ValueError("--calibration* and --int8-* options configure an int8 export; add "
                         "--int8.")
    path = export_onnx(decoder, out, int8=args.int8, calibration=calibration,
                       int8_calibration=args.int8_calibration or INT8_DEFAULT_CALIBRATION,
                       int8_keep_float=keep)
    exported = load_decoder(path)
    clf = exported.estimator
    quant = clf.quantization
    print(f"Exported {clf.model} to {path} ({path.stat().st_size} bytes): ONNX opset "
          f"{clf.opset}, input (batch, {clf.n_features_in_}, {clf.n_times_}), "
          + (f"int8 QDQ calibrated on {quant['n_windows']} windows ({quant['calibration']}"
             + (f"; {', '.join(quant['float32_nodes'])} kept in float32"
                if quant.get("float32_nodes") else "")
             + f"; argmax agrees with float32 on {quant['agreement_with_float32']:.1%} of "
             "them)" if quant else "float32"))
    print(f"Decoder: {exported.n_chans} channels at {exported.sfreq:g} Hz, window "
          f"{exported.tmin:g}-{exported.tmax:g} s, classes {', '.join(exported.classes)}. "
          f"Run it with: bci stream --decoder {path} ...")
    return 0


_COMMANDS = {"benchmark": _benchmark, "train": _train, "pretrain": _pretrain,
             "pipelines": _pipelines,
             "datasets": _datasets, "play": _play, "stream": _stream,
             "session-report": _session_report, "export": _export, "acquire": _acquire,
             "session-export": _session_export}

def run() -> None:
    """Run the ``bci`` console command (:func:`main`), then exit with its status.

    Before exiting it freezes the garbage collector: the interpreter's final collections would
    otherwise walk every object of MNE, MOABB, pyRiemann and torch, still alive at exit (about
    1 s of CPU for ``bci benchmark``), to free memory the operating system takes back anyway.
    """
    status = main()
    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":  # pragma: no cover
    run()
