"""Heaviside spike function with surrogate gradients.

The forward pass of a spiking neuron is a step, ``spike = H(v - threshold)``, whose derivative is
zero almost everywhere. Training uses a *surrogate gradient*: the backward pass replaces ``H'``
by the derivative of a smooth proxy of the step. Each surrogate here is the exact derivative of
a named proxy, so the gradient can be checked against finite differences of that proxy:

- ``"fast_sigmoid"`` (Zenke & Ganguli 2018, snnTorch ``surrogate.fast_sigmoid``):
  proxy ``x / (1 + slope |x|)`` (up to scale and offset), derivative ``1 / (1 + slope |x|)^2``;
- ``"atan"`` (Fang et al. 2021, snnTorch ``surrogate.atan``): proxy
  ``atan(pi / 2 * slope * x) / pi``, derivative ``slope / 2 / (1 + (pi / 2 * slope * x)^2)``;
- ``"sigmoid"``: proxy ``sigmoid(slope * x)``, derivative ``slope * s (1 - s)``;
- ``"triangle"``: proxy a piecewise-quadratic ramp, derivative ``max(0, 1 - slope |x|)``.

``x = v - threshold``. The derivatives match snnTorch 1.0's surrogates with the same ``slope``
(``alpha`` for ``atan``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch

from ..._checks import check_option, check_positive

__all__ = ["SURROGATES", "spike", "surrogate_derivative", "surrogate_proxy"]

SurrogateName = Literal["fast_sigmoid", "atan", "sigmoid", "triangle"]


def _fast_sigmoid_grad(x: torch.Tensor, slope: float) -> torch.Tensor:
    return 1.0 / (1.0 + slope * x.abs()) ** 2


def _fast_sigmoid_proxy(x: torch.Tensor, slope: float) -> torch.Tensor:
    return x / (1.0 + slope * x.abs())


def _atan_grad(x: torch.Tensor, slope: float) -> torch.Tensor:
    return slope / 2.0 / (1.0 + (math.pi / 2.0 * slope * x) ** 2)


def _atan_proxy(x: torch.Tensor, slope: float) -> torch.Tensor:
    return torch.atan(math.pi / 2.0 * slope * x) / math.pi


def _sigmoid_grad(x: torch.Tensor, slope: float) -> torch.Tensor:
    s = torch.sigmoid(slope * x)
    return slope * s * (1.0 - s)


def _sigmoid_proxy(x: torch.Tensor, slope: float) -> torch.Tensor:
    return torch.sigmoid(slope * x)


def _triangle_grad(x: torch.Tensor, slope: float) -> torch.Tensor:
    return torch.clamp(1.0 - slope * x.abs(), min=0.0)


def _triangle_proxy(x: torch.Tensor, slope: float) -> torch.Tensor:
    # integral of max(0, 1 - slope |x|): x - slope x |x| / 2 inside |x| < 1 / slope, constant out
    inside = x - slope * x * x.abs() / 2.0
    edge = torch.full_like(x, 1.0 / (2.0 * slope))
    return torch.where(x.abs() < 1.0 / slope, inside, torch.sign(x) * edge)


#: Surrogate name -> (derivative, proxy whose exact derivative it is).
SURROGATES: dict[str, tuple[Callable[[torch.Tensor, float], torch.Tensor],
                            Callable[[torch.Tensor, float], torch.Tensor]]] = {
    "fast_sigmoid": (_fast_sigmoid_grad, _fast_sigmoid_proxy),
    "atan": (_atan_grad, _atan_proxy),
    "sigmoid": (_sigmoid_grad, _sigmoid_proxy),
    "triangle": (_triangle_grad, _triangle_proxy),
}


def check_surrogate(name: str, slope: float) -> tuple[str, float]:
    """Validate a surrogate name and its (positive) slope."""
    check_option("surrogate", name, SURROGATES)
    slope = check_positive(slope, "slope", hint="It is the steepness of the surrogate gradient.")
    return name, float(slope)


class _Spike(torch.autograd.Function):
    """``H(x)`` (1 where ``x > 0``) forward, surrogate derivative backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, name: str, slope: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.name, ctx.slope = name, slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_out * SURROGATES[ctx.name][0](x, ctx.slope), None, None


def spike(x: torch.Tensor, surrogate: SurrogateName = "fast_sigmoid",
          slope: float = 25.0) -> torch.Tensor:
    """Spikes ``H(x)`` (``1.0`` where ``x > 0``, else ``0.0``) with a surrogate gradient.

    Parameters
    ----------
    x : torch.Tensor
        Membrane potential minus threshold, any shape (floating point).
    surrogate : "fast_sigmoid" | "atan" | "sigmoid" | "triangle"
        Smooth proxy whose derivative the backward pass uses (see the module docstring).
    slope : float
        Steepness of the proxy (snnTorch's ``slope``; ``alpha`` for ``atan``).

    Returns
    -------
    spikes : torch.Tensor
        Same shape and dtype as ``x``; values in ``{0, 1}``.

    Examples
    --------
    >>> x = torch.tensor([-0.5, 0.0, 0.5], requires_grad=True)
    >>> spike(x).tolist()
    [0.0, 0.0, 1.0]
    >>> spike(x, "fast_sigmoid", 1.0).sum().backward(); x.grad.tolist()
    [0.4444444477558136, 1.0, 0.4444444477558136]
    """
    name, slope = check_surrogate(surrogate, slope)
    return _Spike.apply(x, name, slope)


def surrogate_derivative(x: torch.Tensor, surrogate: SurrogateName = "fast_sigmoid",
                         slope: float = 25.0) -> torch.Tensor:
    """Return the derivative the backward pass of :func:`spike` uses at ``x``."""
    name, slope = check_surrogate(surrogate, slope)
    return SURROGATES[name][0](x, slope)


def surrogate_proxy(x: torch.Tensor, surrogate: SurrogateName = "fast_sigmoid",
                    slope: float = 25.0) -> torch.Tensor:
    """Return the smooth function whose exact derivative is :func:`surrogate_derivative`.

    For tests and straight-through estimators.
    """
    name, slope = check_surrogate(surrogate, slope)
    return SURROGATES[name][1](x, slope)
