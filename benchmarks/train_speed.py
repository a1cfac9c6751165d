"""Training speed of bci's EEGNeX against braindecode's, at identical outputs for identical weights.

braindecode is not a dependency of bci (it is the optional ``bench`` extra); run this in an
environment that has both, e.g.::

    python3 -m venv /tmp/bdenv && /tmp/bdenv/bin/pip install torch braindecode -e /path/to/bci
    nice /tmp/bdenv/bin/python benchmarks/train_speed.py --json results/train_speed.json

What it does, in this order:

1. **Parity.** Builds ``braindecode.models.EEGNeX`` (its defaults) and bci's
   ``EEGNeX(..., **BRAINDECODE_KWARGS)``, loads braindecode's weights into ours
   (``load_braindecode_state_dict``) and reports the largest absolute and relative differences of
   the logits (eval mode, with random BatchNorm statistics; train mode, batch statistics, no
   dropout), of every parameter's gradient of the cross-entropy loss, and of the logits after a
   few AdamW steps on the same batches, in float32 and float64 (float64 separates a difference of
   function from float32 rounding).
2. **FLOPs.** Counts the floating-point operations of one training step (forward, loss, backward)
   of each model with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix
   products, as that counter does). Ours computes the same function with fewer operations (blocks
   1 and 2 run as one composed filter bank), so two rates are reported for ours: the achieved
   GFLOP/s (its own FLOPs / its time) and the braindecode-equivalent rate (braindecode's FLOPs /
   our time, the work it replaces per second).
3. **Speed.** Trains both on the same synthetic windows (``--n-chans`` x ``--n-times``, batch
   ``--batch-size``, ``--epochs`` epochs of ``--batches-per-epoch`` batches, AdamW, the same
   shuffling for both) with ``torch.set_num_threads(--threads)``. The two models alternate step by
   step (which one goes first alternates too), so a load change on a shared machine hits both;
   ``os.getloadavg()`` is printed and stored with every step. samples/s = samples trained / time
   spent in training steps (data is already in memory). Our EEGNeX with the authors' defaults
   (ELU after block 1, a different function of the same size) is timed as an extra row.
4. With ``--profile``: the ten most expensive operators of one training step of each model
   (``torch.profiler``), printed and stored.
5. With ``--compile``: the same timing for ``torch.compile``'d copies of both models, reported
   separately (a compiler is available to braindecode's model too, so it is not part of the
   model-code comparison).

``--device cuda`` runs the same on a GPU (``--threads`` then only sets the CPU threads).
A table is printed and, with ``--json PATH``, everything is written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from bci.models.eegnex import (
    BRAINDECODE_KWARGS,
    EEGNeX,
    braindecode_parameter_name,
    load_braindecode_state_dict,
)

warnings.filterwarnings("ignore")  # mne/braindecode deprecation chatter at import

try:
    import braindecode
    from braindecode.models import EEGNeX as BraindecodeEEGNeX
except ImportError as err:  # pragma: no cover - benchmark extra
    raise SystemExit("This benchmark needs braindecode: pip install 'bci[bench]' (or "
                     f"pip install braindecode). ({err})") from err


def n_params(model: nn.Module) -> int:
    """Count the parameters of a network."""
    return sum(p.numel() for p in model.parameters())


def build_pair(n_chans: int, n_outputs: int, n_times: int, *, drop_prob: float = 0.5,
               dtype: torch.dtype = torch.float32, device: str = "cpu", seed: int = 0,
               random_batch_norm: bool = False) -> tuple[nn.Module, EEGNeX]:
    """Braindecode's EEGNeX (seeded initialisation) and ours with its weights."""
    torch.manual_seed(seed)
    theirs = BraindecodeEEGNeX(n_chans=n_chans, n_outputs=n_outputs, n_times=n_times,
                               drop_prob=drop_prob)
    if random_batch_norm:  # eval mode uses running statistics: make them non-trivial
        gen = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for module in theirs.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    for name, low, high in (("weight", 0.5, 1.5), ("bias", -0.3, 0.3),
                                            ("running_mean", -0.3, 0.3),
                                            ("running_var", 0.5, 1.5)):
                        tensor = getattr(module, name)
                        tensor.copy_(low + (high - low) * torch.rand(tensor.shape,
                                                                     generator=gen))
    ours = EEGNeX(n_chans, n_outputs, n_times, **BRAINDECODE_KWARGS, drop_prob=drop_prob)
    load_braindecode_state_dict(ours, theirs.state_dict())
    return theirs.to(device, dtype), ours.to(device, dtype)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Largest absolute difference, and the same relative to the largest magnitude of ``b``."""
    diff = (a - b.reshape(a.shape)).abs().max().item()
    return diff, diff / max(b.abs().max().item(), 1e-30)


def parity(args: argparse.Namespace) -> dict:
    """Logits and gradients of ours vs braindecode's at identical weights (see module doc)."""
    shape = (args.n_chans, args.n_outputs, args.n_times)
    gen = torch.Generator().manual_seed(10)
    batch = 16
    x = torch.randn(batch, args.n_chans, args.n_times, generator=gen)
    y = torch.randint(0, args.n_outputs, (batch,), generator=gen)
    report: dict = {}
    for dtype in (torch.float32, torch.float64):
        name = str(dtype).replace("torch.", "")
        xd = x.to(args.device, dtype)
        yd = y.to(args.device)
        # eval mode, random running statistics, dropout inactive
        theirs, ours = build_pair(*shape, dtype=dtype, device=args.device,
                                  random_batch_norm=True)
        theirs.eval()
        ours.eval()
        with torch.no_grad():
            eval_abs, eval_rel = _max_diff(ours(xd), theirs(xd))
        # train mode (batch statistics), no dropout: logits and every gradient
        theirs, ours = build_pair(*shape, drop_prob=0.0, dtype=dtype, device=args.device)
        out_t, out_o = theirs(xd), ours(xd)
        train_abs, train_rel = _max_diff(out_o, out_t)
        nn.functional.cross_entropy(out_t, yd).backward()
        nn.functional.cross_entropy(out_o, yd).backward()
        # relative to the largest gradient of all parameters: some gradients are zero up to
        # rounding (block 1's BatchNorm bias, whose shift block 2's BatchNorm removes)
        ours_params = dict(ours.named_parameters())
        grad_abs = grad_scale = 0.0
        for key, param in theirs.named_parameters():
            grad_abs = max(grad_abs, _max_diff(ours_params[braindecode_parameter_name(key)].grad,
                                           param.grad)[0])
            grad_scale = max(grad_scale, param.grad.abs().max().item())
        grad_rel = grad_abs / grad_scale
        # a few AdamW steps on the same batches (BatchNorm running statistics update too)
        opt_t = torch.optim.AdamW(theirs.parameters(), lr=1e-3)
        opt_o = torch.optim.AdamW(ours.parameters(), lr=1e-3)
        for _ in range(3):
            for model, opt in ((theirs, opt_t), (ours, opt_o)):
                opt.step()
                opt.zero_grad()
                nn.functional.cross_entropy(model(xd), yd).backward()
        theirs.eval()
        ours.eval()
        with torch.no_grad():
            step_abs, step_rel = _max_diff(ours(xd), theirs(xd))
        report[name] = {
            "eval_logits_max_abs": eval_abs, "eval_logits_max_rel": eval_rel,
            "train_logits_max_abs": train_abs, "train_logits_max_rel": train_rel,
            "grad_max_abs": grad_abs, "grad_max_rel": grad_rel,
            "after_3_adamw_steps_logits_max_abs": step_abs,
            "after_3_adamw_steps_logits_max_rel": step_rel,
        }
    return report


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor) -> None:
    """Run one optimiser step of the cross-entropy loss on a batch."""
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()


def count_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one forward + loss + backward pass (FlopCounterMode's count)."""
    model.zero_grad(set_to_none=True)
    with FlopCounterMode(display=False) as counter:
        nn.functional.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_training(models: dict[str, nn.Module], args: argparse.Namespace) -> dict:
    """Interleaved training of every model on the same batches; per-step times and load."""
    gen = torch.Generator().manual_seed(args.seed)
    n_windows = args.batch_size * args.batches_per_epoch
    x_all = torch.randn(n_windows, args.n_chans, args.n_times, generator=gen).to(args.device)
    y_all = torch.randint(0, args.n_outputs, (n_windows,), generator=gen).to(args.device)
    opts = {name: torch.optim.AdamW(model.parameters(), lr=1e-3)
            for name, model in models.items()}
    names = list(models)
    for name in names:  # warm-up step (allocations, oneDNN primitive creation, compilation)
        models[name].train()
        start = time.perf_counter()
        train_step(models[name], opts[name], x_all[:args.batch_size], y_all[:args.batch_size])
        _sync(args.device)
        print(f"  warm-up {name}: {time.perf_counter() - start:.2f} s", flush=True)
    steps: dict[str, list[float]] = {name: [] for name in names}
    loads: list[list[float]] = []
    n_step = 0
    for epoch in range(args.epochs):
        order = torch.randperm(n_windows, generator=gen).to(args.device)
        for i in range(args.batches_per_epoch):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            xb, yb = x_all[idx], y_all[idx]
            turn = names if n_step % 2 == 0 else names[::-1]
            for name in turn:
                _sync(args.device)
                start = time.perf_counter()
                train_step(models[name], opts[name], xb, yb)
                _sync(args.device)
                steps[name].append(time.perf_counter() - start)
            loads.append(list(os.getloadavg()))
            n_step += 1
            print(f"  epoch {epoch} batch {i}: "
                  + ", ".join(f"{name} {steps[name][-1]:.2f} s" for name in names)
                  + f"; load {loads[-1][0]:.2f}", flush=True)
    result = {}
    for name in names:
        total = sum(steps[name])
        result[name] = {
            "step_s": steps[name],
            "median_step_s": statistics.median(steps[name]),
            "samples_per_s": args.batch_size * len(steps[name]) / total,
        }
    result["loadavg_per_step"] = loads
    return result


def profile_top(model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: str,
                n_rows: int = 10) -> list[dict]:
    """Profile one training step; returns its most expensive operators (self time)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device.startswith("cuda"):
        activities.append(ProfilerActivity.CUDA)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with profile(activities=activities, record_shapes=True) as prof:
        train_step(model, opt, x, y)
        _sync(device)
    events = prof.key_averages(group_by_input_shape=True)
    key = "self_device_time_total" if device.startswith("cuda") else "self_cpu_time_total"
    print(events.table(sort_by=key, row_limit=n_rows, max_name_column_width=40,
                       max_shapes_column_width=70))
    rows = sorted(events, key=lambda e: getattr(e, key, 0), reverse=True)[:n_rows]
    return [{"name": e.key, "input_shapes": str(e.input_shapes), "count": e.count,
             "self_time_s": getattr(e, key, 0) / 1e6} for e in rows]


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def main() -> None:
    """Run the benchmark from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-chans", type=int, default=22)
    parser.add_argument("--n-outputs", type=int, default=4)
    parser.add_argument("--n-times", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batches-per-epoch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-paper-config", action="store_true",
                        help="skip timing our EEGNeX with the authors' defaults")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--skip-parity", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    shape = (args.n_chans, args.n_outputs, args.n_times)
    env = {"torch": torch.__version__, "braindecode": braindecode.__version__,
           "threads": torch.get_num_threads(), "device": args.device,
           "cpu": platform.processor() or platform.machine(), "os_cpu_count": os.cpu_count(),
           "loadavg_start": list(os.getloadavg())}
    if args.device.startswith("cuda"):
        env["gpu"] = torch.cuda.get_device_name()
    print(f"torch {env['torch']}, braindecode {env['braindecode']}, {env['threads']} threads, "
          f"device {args.device}; os.getloadavg() = {env['loadavg_start']}")
    report: dict = {"env": env, "config": vars(args) | {"json": str(args.json)}}

    theirs, ours = build_pair(*shape, device=args.device, seed=args.seed)
    counts = {"braindecode": n_params(theirs), "bci": n_params(ours),
              "bci_authors_config": n_params(EEGNeX(*shape))}
    report["n_params"] = counts
    print(f"parameters: braindecode {counts['braindecode']}, bci (braindecode config) "
          f"{counts['bci']}, bci (authors' config) {counts['bci_authors_config']}")

    if not args.skip_parity:
        print("parity (ours with braindecode's weights vs braindecode) ...", flush=True)
        report["parity"] = parity(args)
        for dtype, values in report["parity"].items():
            print(f"  {dtype}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in values.items()))

    models: dict[str, nn.Module] = {"braindecode": theirs, "bci": ours}
    if not args.no_paper_config:
        torch.manual_seed(args.seed)
        models["bci_authors_config"] = EEGNeX(*shape).to(args.device)
    gen = torch.Generator().manual_seed(args.seed + 1)
    xb = torch.randn(args.batch_size, args.n_chans, args.n_times, generator=gen).to(args.device)
    yb = torch.randint(0, args.n_outputs, (args.batch_size,), generator=gen).to(args.device)
    flops = {name: count_flops(model.train(), xb, yb) for name, model in models.items()}
    report["gflop_per_step"] = {name: value / 1e9 for name, value in flops.items()}

    print(f"training, batch {args.batch_size}, {args.n_chans} x {args.n_times}, "
          f"{args.epochs} epochs x {args.batches_per_epoch} batches ...", flush=True)
    timing = time_training(models, args)
    report["timing"] = timing
    report["env"]["loadavg_end"] = list(os.getloadavg())

    rows = []
    base = timing["braindecode"]["samples_per_s"]
    for name in models:
        t = timing[name]
        rows.append({
            "model": name, "median_step_s": t["median_step_s"],
            "samples_per_s": t["samples_per_s"], "speedup_vs_braindecode": t["samples_per_s"]
            / base, "gflop_per_step": flops[name] / 1e9,
            "achieved_gflop_per_s": flops[name] / 1e9 * t["samples_per_s"] / args.batch_size,
            "braindecode_equivalent_gflop_per_s": flops["braindecode"] / 1e9
            * t["samples_per_s"] / args.batch_size,
        })
    report["table"] = rows

    if args.compile:
        print("torch.compile'd copies ...", flush=True)
        compiled = {f"{name}_compiled": torch.compile(model)
                    for name, model in models.items() if name != "bci_authors_config"}
        report["timing_compiled"] = time_training(compiled, args)

    if args.profile:
        report["profile"] = {}
        for name, model in models.items():
            print(f"profile of one training step, {name}:")
            report["profile"][name] = profile_top(model, xb, yb, args.device)

    load = [row[0] for row in timing["loadavg_per_step"]]
    print(f"\nEEGNeX training, batch {args.batch_size}, {args.n_chans} x {args.n_times}, "
          f"{args.threads} threads, {args.device}; 1-min load average during timing "
          f"{min(load):.2f} .. {max(load):.2f} (machine has {os.cpu_count()} CPUs)")
    header = (f"{'model':<22}{'median step (s)':>16}{'samples/s':>11}{'speed-up':>10}"
              f"{'GFLOP/step':>12}{'GFLOP/s':>9}{'bd-equiv. GFLOP/s':>19}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['model']:<22}{row['median_step_s']:>16.3f}{row['samples_per_s']:>11.2f}"
              f"{row['speedup_vs_braindecode']:>9.2f}x{row['gflop_per_step']:>12.1f}"
              f"{row['achieved_gflop_per_s']:>9.1f}"
              f"{row['braindecode_equivalent_gflop_per_s']:>19.1f}")
    if args.compile:
        comp = report["timing_compiled"]
        base_c = comp["braindecode_compiled"]["samples_per_s"]
        for name, value in comp.items():
            if name != "loadavg_per_step":
                print(f"{name:<22}{value['median_step_s']:>16.3f}{value['samples_per_s']:>11.2f}"
                      f"{value['samples_per_s'] / base_c:>9.2f}x (vs compiled braindecode)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
