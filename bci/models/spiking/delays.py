"""Learnable synaptic delays, and a streaming SNN velocity decoder that uses them.

After DCLS (Hammouamri, Khalfaoui-Hassani & Masquelier 2023, "Learning delays in spiking
neural networks using dilated convolutions with learnable spacings"): every synapse of a
connection layer has a weight and a delay; the delays are real-valued parameters during
training and integer numbers of steps at inference. DCLS spreads each weight over the taps of
a temporal convolution with a Gaussian centred on the delay (annealing its width); here the
forward pass always uses the rounded delay (one tap per synapse, so training sees exactly the
network that runs) and the backward pass takes the gradient of the Gaussian spread (width
``sigma`` taps) with respect to the delay: a straight-through estimator of the delay. Written
from the paper's description; no code was copied.

- :class:`DelayedLinear`: ``y[t, o] = sum_i W[o, i] x[t - d[o, i], i]`` with integer delays
  ``0 <= d <= max_delay`` steps, causal (zeros before the first step). One weight per synapse:
  its synaptic operations are those of a :class:`torch.nn.Linear` applied to the delayed
  inputs (:func:`~bci.models.spiking.cost.count_operations` counts them so).
- Pruning (:meth:`DelayedLinear.prune`): a fixed mask of the smallest weights, zero from then
  on (also while training on), since effective synaptic operations skip zero weights.
- :class:`DelaySNN`: the :class:`~bci.models.spiking.ibmi.SNNStreaming` topology (LIF hidden
  layer, leaky-integrator read-out, one step per bin, state carried over) whose input layer is
  a :class:`DelayedLinear`: each hidden neuron sees each unit's counts at its own lag, up to
  ``max_delay`` bins back, at the cost of one synapse.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import check_bool, check_fraction, check_option, check_positive, ensure_int
from .ibmi import _SpikingStreamingDecoder

__all__ = ["DelayedLinear", "DelaySNN"]

DELAY_INITS = ("uniform", "zero")


class DelayedLinear(nn.Module):
    """Linear layer with a learnable integer delay (in steps) per synapse, DCLS-style.

    Parameters
    ----------
    in_features, out_features : int
        Inputs and outputs.
    max_delay : int
        Longest delay (steps, >= 0); delays are clamped to ``[0, max_delay]``.
    sigma : float
        Width (steps) of the Gaussian whose derivative gives the delays' gradient.
    bias : bool
        Add a learnable bias.
    init_delay : "uniform" | "zero"
        Initial delays: drawn uniformly in ``[0, max_delay]`` (torch's global generator), or 0.

    Examples
    --------
    >>> layer = DelayedLinear(1, 1, max_delay=4, init_delay="zero")
    >>> with torch.no_grad():
    ...     _ = layer.weight.fill_(1.0)
    ...     _ = layer.delay.fill_(2.0)
    >>> x = torch.tensor([[[1.0], [0.0], [0.0], [0.0], [0.0]]])  # (batch, steps, features)
    >>> layer(x)[0, :, 0].tolist()  # the spike arrives 2 steps later
    [0.0, 0.0, 1.0, 0.0, 0.0]
    """

    def __init__(self, in_features: int, out_features: int, max_delay: int, *,
                 sigma: float = 1.0, bias: bool = False,
                 init_delay: Literal["uniform", "zero"] = "uniform") -> None:
        super().__init__()
        self.in_features = ensure_int(in_features, "in_features", minimum=1)
        self.out_features = ensure_int(out_features, "out_features", minimum=1)
        self.max_delay = ensure_int(max_delay, "max_delay", minimum=0, what="steps")
        self.sigma = check_positive(sigma, "sigma", unit="steps")
        check_bool(bias, "bias")
        self.init_delay = check_option("init_delay", init_delay, DELAY_INITS)
        linear = nn.Linear(self.in_features, self.out_features, bias=bias)
        self.weight = nn.Parameter(linear.weight.detach().clone())
        self.bias = nn.Parameter(linear.bias.detach().clone()) if bias else None
        delay = torch.zeros(self.out_features, self.in_features)
        if self.init_delay == "uniform":
            delay.uniform_(0.0, float(self.max_delay))
        self.delay = nn.Parameter(delay)
        self.register_buffer("weight_mask", torch.ones(self.out_features, self.in_features))

    def prune(self, fraction: float) -> int:
        """Zero the ``fraction`` of synapses with the smallest ``|weight|``, for good.

        The mask also holds while training on (pruned weights get no effect and stay zero
        in :meth:`kernel`), so fine-tuning after pruning keeps them out.

        Parameters
        ----------
        fraction : float
            Fraction of all synapses to prune, in [0, 1) (already pruned ones count).

        Returns
        -------
        n_pruned : int
            Synapses pruned in total.
        """
        fraction = check_fraction(fraction, "fraction", kind="fraction of synapses")
        n_prune = int(round(fraction * self.weight_mask.numel()))
        if n_prune:
            magnitude = (self.weight.detach().abs() * self.weight_mask).flatten()
            order = torch.argsort(magnitude)
            mask = torch.ones_like(magnitude)
            mask[order[:n_prune]] = 0.0
            self.weight_mask.copy_(mask.view_as(self.weight_mask) * self.weight_mask)
        return int((self.weight_mask == 0).sum())

    def integer_delays(self) -> torch.Tensor:
        """Return the delays the forward pass uses: ``round(clamp(delay, 0, max_delay))``."""
        return self.delay.detach().clamp(0.0, float(self.max_delay)).round().long()

    def kernel(self) -> torch.Tensor:
        """Return the causal convolution kernel ``(out, in, max_delay + 1)``.

        Tap ``k`` holds the weight of delay ``max_delay - k`` (``F.conv1d`` correlates); the
        value has one non-zero tap per synapse (the rounded delay); its gradient with respect
        to the delay is that of a Gaussian spread of width ``sigma``.
        """
        lags = torch.arange(self.max_delay, -1, -1, dtype=self.weight.dtype,
                            device=self.weight.device)  # delay of each tap
        delay = self.delay.clamp(0.0, float(self.max_delay)).unsqueeze(-1)
        hard = (lags == delay.detach().round()).to(self.weight.dtype)
        soft = torch.exp(-0.5 * ((lags - delay) / self.sigma) ** 2)
        soft = soft / soft.sum(-1, keepdim=True)
        weight = self.weight * self.weight_mask
        return weight.unsqueeze(-1) * (hard + soft - soft.detach())

    def padded(self, x: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
        """Return ``(batch, in_features, max_delay + n_steps)``: the history (zeros) then ``x``."""
        if x.ndim != 3 or x.shape[-1] != self.in_features:
            raise ValueError(f"DelayedLinear expects (batch, n_steps, in_features="
                             f"{self.in_features}), got {tuple(x.shape)}.")
        if history is None:
            return F.pad(x.transpose(1, 2), (self.max_delay, 0))
        if history.shape != (x.shape[0], self.max_delay, self.in_features):
            raise ValueError(f"history must be (batch={x.shape[0]}, max_delay={self.max_delay}, "
                             f"in_features={self.in_features}), got {tuple(history.shape)}.")
        return torch.cat([history, x], dim=1).transpose(1, 2)

    def forward(self, x: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, n_steps, in_features)`` -> ``(batch, n_steps, out_features)``, causal.

        ``history`` ``(batch, max_delay, in_features)`` holds the inputs of the ``max_delay``
        steps before ``x`` (zeros when None).
        """
        return F.conv1d(self.padded(x, history), self.kernel(), self.bias).transpose(1, 2)

    def extra_repr(self) -> str:
        """Sizes, longest delay and surrogate width, for ``repr``."""
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"max_delay={self.max_delay}, sigma={self.sigma:g}")


class DelaySNN(_SpikingStreamingDecoder):
    """Streaming SNN with learnable synaptic delays on its input layer.

    :class:`~bci.models.spiking.ibmi.SNNStreaming` (LIF hidden neurons) whose input synapses
    are a :class:`DelayedLinear` (``n_chans -> n_hidden``, delays ``0 .. max_delay`` bins):
    each hidden neuron reads each unit's counts at its own lag. The forward pass is
    SNNStreaming's (one shared implementation); with ``max_delay=0`` it computes the same
    function. Its streaming state (:meth:`forward_sequence`) is ``(last max_delay bins of
    encoded input (batch, max_delay, n_chans), hidden state, read-out state)``.

    Parameters
    ----------
    n_chans, n_outputs, n_times : int
        Units, velocity components, and the window :meth:`forward` reads (bins).
    sfreq : float
        Bins per second (Hz).
    max_delay : int
        Longest synaptic delay (bins).
    sigma : float
        Width (bins) of the delays' surrogate Gaussian (:class:`DelayedLinear`).

    Other Parameters
    ----------------
    n_hidden, tau_s, readout_tau_s, threshold, reset, learn_tau, surrogate, slope, dropout, \
input_transform
        As :class:`~bci.models.spiking.ibmi.SNNStreaming`'s.

    Examples
    --------
    >>> model = DelaySNN(84, 2, sfreq=20.0, n_hidden=16, max_delay=4)
    >>> model.forward_sequence(torch.rand(3, 84, 50)).shape
    torch.Size([3, 2, 50])
    """

    def __init__(self, n_chans: int, n_outputs: int = 2, n_times: int = 1, *,
                 sfreq: float | None = None, n_hidden: int = 64, max_delay: int = 6,
                 sigma: float = 1.0, tau_s: float = 0.1, readout_tau_s: float = 0.1,
                 threshold: float = 1.0,
                 reset: Literal["subtract", "zero", "none"] = "zero", learn_tau: bool = False,
                 surrogate: str = "fast_sigmoid", slope: float = 20.0, dropout: float = 0.3,
                 input_transform: Literal["none", "sqrt", "log1p"] = "sqrt") -> None:
        max_delay = ensure_int(max_delay, "max_delay", minimum=0, what="bins")
        sigma = check_positive(sigma, "sigma", unit="bins")

        def delayed(n_in: int, n_out: int) -> DelayedLinear:
            return DelayedLinear(n_in, n_out, max_delay, sigma=sigma)

        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq, n_hidden=n_hidden,
                         tau_s=tau_s, readout_tau_s=readout_tau_s, syn_tau_s=0.05,
                         neuron="lif", threshold=threshold, reset=reset, learn_tau=learn_tau,
                         surrogate=surrogate, slope=slope, dropout=dropout,
                         input_transform=input_transform, input_layer=delayed)
        self.max_delay, self.sigma = max_delay, sigma

    def _input_synapses(self, currents: torch.Tensor, memory: tuple
                        ) -> tuple[torch.Tensor, tuple]:
        """Delayed input currents; the memory is the delay line (last ``max_delay`` inputs)."""
        history = memory[0] if memory else currents.new_zeros(currents.shape[0],
                                                               self.max_delay, self.n_chans)
        joined = torch.cat([history, currents], dim=1)
        return self.fc_in(currents, history), (joined[:, joined.shape[1] - self.max_delay:],)
