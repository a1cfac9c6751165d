"""Compare bci's networks with braindecode's: parameter counts, outputs and gradients.

braindecode is not a dependency of bci; run this in an environment that has both, e.g.::

    python3 -m venv /tmp/bdenv && /tmp/bdenv/bin/pip install torch braindecode -e /path/to/bci
    /tmp/bdenv/bin/python benchmarks/compare_braindecode.py

It prints:

1. parameter counts of EEGNeX (authors' code and braindecode-compatible), EEGNet and
   ShallowConvNet next to braindecode's for a few configurations;
2. EEGNeX built with ``BRAINDECODE_KWARGS`` and loaded with braindecode's weights
   (``load_braindecode_state_dict``): max |difference| of the outputs in eval mode (random
   BatchNorm statistics), and in train mode without dropout (outputs, every gradient, outputs
   after one AdamW step);
3. the same eval-mode check for ShallowConvNet (whose architecture is braindecode's).

Training speed is measured by ``benchmarks/train_speed.py``.
"""

from __future__ import annotations

import argparse
import warnings

import torch
from torch import nn

from bci.models.eegnet import EEGNet
from bci.models.eegnex import (
    BRAINDECODE_KWARGS,
    EEGNeX,
    braindecode_parameter_name,
    load_braindecode_state_dict,
)
from bci.models.shallow import ShallowConvNet
from bci.models.shallow import load_braindecode_state_dict as load_shallow_state_dict

warnings.filterwarnings("ignore")  # braindecode/mne deprecation chatter

import braindecode  # noqa: E402
from braindecode.models import EEGNet as BDEEGNet  # noqa: E402
from braindecode.models import EEGNeX as BDEEGNeX  # noqa: E402
from braindecode.models import ShallowFBCSPNet as BDShallow  # noqa: E402

CONFIGS = [(22, 4, 1000), (22, 4, 500), (22, 4, 512), (3, 2, 256), (64, 2, 384)]


def n_params(model: nn.Module) -> int:
    """Count the parameters of a network."""
    return sum(p.numel() for p in model.parameters())


def randomize_batch_norms(model: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial BatchNorm affine parameters and running statistics (eval mode uses them)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.weight.copy_(1 + 0.3 * torch.randn(module.weight.shape,
                                                          generator=generator))
                module.bias.copy_(0.3 * torch.randn(module.bias.shape, generator=generator))
                module.running_mean.copy_(0.3 * torch.randn(module.running_mean.shape,
                                                            generator=generator))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape,
                                                          generator=generator))


def print_counts() -> None:
    """Print the parameter counts of ours and braindecode's networks, per configuration."""
    print(f"braindecode {braindecode.__version__}, torch {torch.__version__}")
    print("parameter counts (n_chans, n_outputs, n_times): ours / braindecode")
    for c, o, t in CONFIGS:
        rows = [
            ("EEGNeX (braindecode kwargs)", EEGNeX(c, o, t, **BRAINDECODE_KWARGS),
             BDEEGNeX(n_chans=c, n_outputs=o, n_times=t)),
            ("EEGNet-8,2", EEGNet(c, o, t), BDEEGNet(n_chans=c, n_outputs=o, n_times=t)),
            ("ShallowConvNet", ShallowConvNet(c, o, t),
             BDShallow(n_chans=c, n_outputs=o, n_times=t)),
        ]
        paper = n_params(EEGNeX(c, o, t))
        cells = [f"{name} {n_params(ours)} / {n_params(theirs)}"
                 + ("" if n_params(ours) == n_params(theirs) else " MISMATCH")
                 for name, ours, theirs in rows]
        print(f"  ({c}, {o}, {t}): " + "; ".join(cells) + f"; EEGNeX (authors' code) {paper}")


def compare_eegnex(n_times: int = 1000, batch: int = 16) -> None:
    """Print the output and gradient differences of EEGNeX at identical weights."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    theirs = BDEEGNeX(n_chans=22, n_outputs=4, n_times=n_times)
    randomize_batch_norms(theirs, gen)
    ours = load_braindecode_state_dict(EEGNeX(22, 4, n_times, **BRAINDECODE_KWARGS),
                                       theirs.state_dict())
    x = torch.randn(batch, 22, n_times, generator=gen)
    theirs.eval()
    ours.eval()
    with torch.no_grad():
        diff = (ours(x) - theirs(x)).abs().max().item()
        scale = theirs(x).abs().max().item()
    print(f"EEGNeX eval, n_times={n_times}: max |ours - braindecode| = {diff:.3g} "
          f"(max |logit| {scale:.3g})")

    # train mode, no dropout: batch statistics, gradients, one optimiser step; in float32 and
    # float64 (float64 separates implementation differences from rounding)
    for dtype in (torch.float32, torch.float64):
        theirs = BDEEGNeX(n_chans=22, n_outputs=4, n_times=n_times, drop_prob=0.0).to(dtype)
        ours = load_braindecode_state_dict(
            EEGNeX(22, 4, n_times, **BRAINDECODE_KWARGS, drop_prob=0.0).to(dtype),
            theirs.state_dict())
        xd = x.to(dtype)
        y = torch.randint(0, 4, (batch,), generator=gen)
        out_t, out_o = theirs(xd), ours(xd)
        nn.functional.cross_entropy(out_t, y).backward()
        nn.functional.cross_entropy(out_o, y).backward()
        ours_params = dict(ours.named_parameters())
        grad_diff = grad_max = 0.0
        for key, param in theirs.named_parameters():
            grad_o = ours_params[braindecode_parameter_name(key)].grad
            grad_diff = max(grad_diff,
                            (grad_o - param.grad.reshape(grad_o.shape)).abs().max().item())
            grad_max = max(grad_max, param.grad.abs().max().item())
        opt_t = torch.optim.AdamW(theirs.parameters(), lr=1e-3)
        opt_o = torch.optim.AdamW(ours.parameters(), lr=1e-3)
        opt_t.step()
        opt_o.step()
        theirs.eval()
        ours.eval()
        with torch.no_grad():
            step_diff = (ours(xd) - theirs(xd)).abs().max().item()
        print(f"EEGNeX train mode, no dropout, {str(dtype).replace('torch.', '')}: max |output "
              f"diff| = {(out_o - out_t).abs().max().item():.3g}; max |gradient diff| over all "
              f"parameters = {grad_diff:.3g} (max |gradient| {grad_max:.3g}); after one AdamW "
              f"step (eval, updated running stats) max |output diff| = {step_diff:.3g}")


def compare_shallow(n_times: int = 1000, batch: int = 16) -> None:
    """Print the output difference of ShallowConvNet at identical weights (eval mode)."""
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    theirs = BDShallow(n_chans=22, n_outputs=4, n_times=n_times)
    randomize_batch_norms(theirs, gen)
    ours = ShallowConvNet(22, 4, n_times)
    load_shallow_state_dict(ours, theirs.state_dict())
    theirs.eval()
    ours.eval()
    x = torch.randn(batch, 22, n_times, generator=gen)
    with torch.no_grad():
        diff = (ours(x) - theirs(x)).abs().max().item()
        scale = theirs(x).abs().max().item()
    print(f"ShallowConvNet eval, n_times={n_times}: max |ours - braindecode| = {diff:.3g} "
          f"(max |logit| {scale:.3g})")


def main() -> None:
    """Run every comparison."""
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()
    print_counts()
    compare_eegnex(1000)
    compare_eegnex(500)
    compare_shallow(1000)


if __name__ == "__main__":
    main()
