"""Leaky integrate-and-fire neurons in multi-step mode: :class:`LIF` and :class:`CubaLIF`.

Both take input currents for a whole sequence, ``(batch, n_steps, n_neurons)``, and unroll the
discrete-time dynamics over ``n_steps`` (one step per time bin), so a layer is called once per
sequence rather than once per step. The state can be passed in and is returned, for streaming
inference chunk by chunk (:meth:`LIF.forward` with ``state``).

Dynamics (``s[t]`` spikes, ``theta`` threshold, ``beta`` membrane decay per step, ``alpha``
synaptic decay per step), the convention of snnTorch's ``Leaky``/``Synaptic`` neurons (default
``reset_delay=True``), so that the two give the same spikes on the same currents:

- :class:`LIF`: ``v[t] = beta * v[t-1] + I[t] - R[t]``, ``s[t] = H(v[t] - theta)``;
- :class:`CubaLIF` (current-based): ``i[t] = alpha * i[t-1] + I[t]`` then the same with ``i[t]``
  in place of ``I[t]``;
- reset ``R[t]``: ``"subtract"``: ``theta * s[t-1]``; ``"zero"``: ``beta * v[t-1] * s[t-1]``
  (the decayed potential is removed, so ``v[t] = I[t]`` after a spike); ``"none"``: 0 (a leaky
  integrator, used as a non-spiking read-out whose membrane is the output).

The reset term is detached from the graph by default (``detach_reset=True``, snnTorch's default),
so gradients flow through the membrane and the surrogate of the spike only.

Time constants are decays per step, ``beta = exp(-dt / tau)``; they are fixed or learnable
(``learn_beta``: one decay per neuron, kept in (0, 1) by a sigmoid parametrisation). The
models in :mod:`bci.models.spiking.ibmi` take time constants in seconds and convert them with
their ``sfreq``: :func:`decay_from_tau`.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from ..._checks import check_option, check_positive, check_real, ensure_int
from .surrogate import SurrogateName, check_surrogate, spike

__all__ = ["LIF", "ApproxLIF", "CubaLIF", "RESETS", "decay_from_tau"]

RESETS = ("subtract", "zero", "none")
Reset = Literal["subtract", "zero", "none"]


def decay_from_tau(tau_s: float, sfreq: float) -> float:
    """Return the decay per step ``exp(-1 / (tau_s * sfreq))`` of a time constant.

    ``tau_s`` in seconds, ``sfreq`` steps per second.

    Examples
    --------
    >>> round(decay_from_tau(0.1, 20.0), 4)  # 100 ms at 50 ms bins
    0.6065
    """
    tau_s = check_positive(tau_s, "tau_s", unit="seconds")
    sfreq = check_positive(sfreq, "sfreq", unit="Hz")
    return math.exp(-1.0 / (tau_s * sfreq))


#: Appended to the message of an out-of-range decay.
DECAY_HINT = "A decay per step is exp(-dt / tau) (see decay_from_tau)."


class _Decay(nn.Module):
    """A decay per step, fixed or learnable per neuron.

    Fixed: a Python float, exact in any dtype; learnable: the sigmoid of a parameter.
    """

    def __init__(self, value: float, n_neurons: int, learn: bool) -> None:
        super().__init__()
        self.learn = bool(learn)
        self.value = float(value)
        if self.learn:
            logit = math.log(value / (1.0 - value))
            self.logit = nn.Parameter(torch.full((n_neurons,), logit))

    def forward(self, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
        if self.learn:
            return torch.sigmoid(self.logit).to(dtype)
        return torch.tensor(self.value, dtype=dtype, device=device)

    def extra_repr(self) -> str:
        return f"init={self.value:.4g}, learn={self.learn}"


class LIF(nn.Module):
    """Leaky integrate-and-fire neurons, multi-step, with surrogate-gradient spikes.

    Parameters
    ----------
    n_neurons : int
        Number of neurons (size of the last input axis).
    beta : float
        Membrane decay per step in (0, 1); ``exp(-dt / tau_mem)`` (see :func:`decay_from_tau`).
    threshold : float
        Firing threshold (same units as the input current).
    reset : "subtract" | "zero" | "none"
        Reset after a spike (see the module docstring); ``"none"`` makes a leaky integrator.
    learn_beta : bool
        Learn one decay per neuron (initialised at ``beta``); fixed otherwise.
    surrogate : "fast_sigmoid" | "atan" | "sigmoid" | "triangle"
        Surrogate derivative of the spike (:func:`~bci.models.spiking.surrogate.spike`).
    slope : float
        Steepness of the surrogate.
    detach_reset : bool
        Detach the reset term from the autograd graph (snnTorch's default).
    output : "spikes" | "membrane"
        What :meth:`forward` returns per step: the spikes, or the membrane potential before
        reset (the read-out of a ``reset="none"`` output layer).

    Examples
    --------
    >>> lif = LIF(1, beta=0.5, threshold=1.0, reset="subtract")
    >>> spikes, v = lif(torch.tensor([[[0.6], [0.6], [0.6], [0.6]]]))
    >>> spikes.flatten().tolist()  # v = 0.6, 0.9, 1.05 (spike), 0.125
    [0.0, 0.0, 1.0, 0.0]
    """

    n_state = 1

    def __init__(self, n_neurons: int, *, beta: float = 0.9, threshold: float = 1.0,
                 reset: Reset = "subtract", learn_beta: bool = False,
                 surrogate: SurrogateName = "fast_sigmoid", slope: float = 25.0,
                 detach_reset: bool = True,
                 output: Literal["spikes", "membrane"] = "spikes") -> None:
        super().__init__()
        self.n_neurons = ensure_int(n_neurons, "n_neurons", minimum=1)
        self.threshold = check_positive(threshold, "threshold")
        check_option("reset", reset, RESETS)
        check_option("output", output, ("spikes", "membrane"))
        self.reset = reset
        self.surrogate, self.slope = check_surrogate(surrogate, slope)
        self.detach_reset = bool(detach_reset)
        self.output = output
        beta = check_real(beta, "beta", low=0.0, high=1.0, low_inclusive=False,
                          high_inclusive=False, kind="decay per step", hint=DECAY_HINT)
        self.beta = _Decay(beta, self.n_neurons, learn_beta)

    @property
    def learn_beta(self) -> bool:
        """Whether the membrane decay is learned (one per neuron)."""
        return self.beta.learn

    def init_state(self, batch: int, *, dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, ...]:
        """Return the resting state, ``(batch, n_neurons)`` tensors.

        Membrane 0 and no spike at the previous step.
        """
        zeros = torch.zeros(batch, self.n_neurons, dtype=dtype, device=device)
        return (zeros, zeros.clone())

    def _check(self, current: torch.Tensor) -> None:
        if not isinstance(current, torch.Tensor) or not current.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects a floating-point torch.Tensor of "
                            "input currents (batch, n_steps, n_neurons).")
        if current.ndim != 3 or current.shape[2] != self.n_neurons:
            raise ValueError(
                f"{type(self).__name__} expects input currents of shape (batch, n_steps, "
                f"n_neurons={self.n_neurons}), got {tuple(current.shape)}."
            )

    def _membrane_step(self, v: torch.Tensor, s_prev: torch.Tensor, current: torch.Tensor,
                       beta: torch.Tensor) -> torch.Tensor:
        s_reset = s_prev.detach() if self.detach_reset else s_prev
        if self.reset == "subtract":
            return beta * v + current - self.threshold * s_reset
        if self.reset == "zero":
            return beta * v * (1.0 - s_reset) + current
        return beta * v + current

    def _fire(self, v: torch.Tensor) -> torch.Tensor:
        return spike(v - self.threshold, self.surrogate, self.slope)

    def forward(self, current: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Unroll the neurons over a sequence of input currents.

        Parameters
        ----------
        current : torch.Tensor
            Input currents ``(batch, n_steps, n_neurons)``.
        state : tuple of torch.Tensor | None
            State from a previous call (``(membrane, last spikes)``, each ``(batch,
            n_neurons)``); the resting state when None.

        Returns
        -------
        out : torch.Tensor
            ``(batch, n_steps, n_neurons)``: spikes in {0, 1}, or membrane potentials when
            ``output="membrane"``.
        state : tuple of torch.Tensor
            State after the last step, to pass to the next call.
        """
        self._check(current)
        if state is None:
            state = self.init_state(current.shape[0], dtype=current.dtype,
                                    device=current.device)
        v, s = state
        beta = self.beta(current.dtype, current.device)
        outputs = []
        for t in range(current.shape[1]):
            v = self._membrane_step(v, s, current[:, t], beta)
            s = self._fire(v) if self.reset != "none" or self.output == "spikes" else s
            outputs.append(s if self.output == "spikes" else v)
        return torch.stack(outputs, dim=1), (v, s)

    def extra_repr(self) -> str:
        """Return the neuron settings, for ``repr``."""
        return (f"{self.n_neurons}, threshold={self.threshold}, reset={self.reset!r}, "
                f"learn_beta={self.learn_beta}, surrogate={self.surrogate!r}, "
                f"slope={self.slope}, output={self.output!r}")


class CubaLIF(LIF):
    """Current-based LIF neurons: a leaky synaptic current drives a LIF membrane.

    ``i[t] = alpha * i[t-1] + I[t]``, then :class:`LIF` dynamics driven by ``i[t]`` (snnTorch's
    ``Synaptic`` neuron). Parameters as :class:`LIF`, plus:

    Parameters
    ----------
    alpha : float
        Synaptic current decay per step in (0, 1), ``exp(-dt / tau_syn)``.
    learn_alpha : bool
        Learn one synaptic decay per neuron.

    Examples
    --------
    >>> neuron = CubaLIF(1, alpha=0.5, beta=0.5, threshold=1.0, output="membrane",
    ...                  reset="none")
    >>> neuron(torch.tensor([[[1.0], [0.0], [0.0]]]))[0].flatten().tolist()  # i = 1, .5, .25
    [1.0, 1.0, 0.75]
    """

    n_state = 2

    def __init__(self, n_neurons: int, *, alpha: float = 0.8, beta: float = 0.9,
                 threshold: float = 1.0, reset: Reset = "subtract", learn_alpha: bool = False,
                 learn_beta: bool = False, surrogate: SurrogateName = "fast_sigmoid",
                 slope: float = 25.0, detach_reset: bool = True,
                 output: Literal["spikes", "membrane"] = "spikes") -> None:
        super().__init__(n_neurons, beta=beta, threshold=threshold, reset=reset,
                         learn_beta=learn_beta, surrogate=surrogate, slope=slope,
                         detach_reset=detach_reset, output=output)
        alpha = check_real(alpha, "alpha", low=0.0, high=1.0, low_inclusive=False,
                           high_inclusive=False, kind="decay per step", hint=DECAY_HINT)
        self.alpha = _Decay(alpha, self.n_neurons, learn_alpha)

    @property
    def learn_alpha(self) -> bool:
        """Whether the synaptic decay is learned (one per neuron)."""
        return self.alpha.learn

    def init_state(self, batch: int, *, dtype: torch.dtype = torch.float32,
                   device: torch.device | str | None = None) -> tuple[torch.Tensor, ...]:
        """Return the resting state, ``(batch, n_neurons)`` tensors.

        ``(synaptic current, membrane, last spikes)``, all zero.
        """
        zeros = torch.zeros(batch, self.n_neurons, dtype=dtype, device=device)
        return (zeros, zeros.clone(), zeros.clone())

    def forward(self, current: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Unroll over ``(batch, n_steps, n_neurons)`` currents (see :meth:`LIF.forward`).

        The membrane never goes below 0 and resting neurons with non-positive input are skipped.

        The state is ``(synaptic current, membrane, last spikes)``.
        """
        self._check(current)
        if state is None:
            state = self.init_state(current.shape[0], dtype=current.dtype,
                                    device=current.device)
        i_syn, v, s = state
        alpha = self.alpha(current.dtype, current.device)
        beta = self.beta(current.dtype, current.device)
        outputs = []
        for t in range(current.shape[1]):
            i_syn = alpha * i_syn + current[:, t]
            v = self._membrane_step(v, s, i_syn, beta)
            s = self._fire(v) if self.reset != "none" or self.output == "spikes" else s
            outputs.append(s if self.output == "spikes" else v)
        return torch.stack(outputs, dim=1), (i_syn, v, s)


class ApproxLIF(LIF):
    """Approximate LIF neurons: a membrane floored at 0 and skipped updates of resting neurons.

    The approximate spiking neuron of the Spiking Conformer (Gao et al. 2024, "Epilepsy seizure
    detection and prediction using an approximate spiking convolutional transformer") skips
    neuron updates that cannot change the output. The paper does not give the rule in a form we
    could check, so this class implements the following reading, exact by construction:

    - **approximation**: the membrane is kept non-negative, ``v[t] = max(0, beta * v[t-1] +
      I[t] - R[t])`` (:class:`LIF` otherwise: same reset, threshold and surrogate). A plain LIF
      neuron driven below 0 keeps a negative potential that inhibits later spikes; here it is
      forgotten. This is the only difference in the spikes from :class:`LIF`, and its effect on
      accuracy is what the recipe measures (same weights, both neurons);
    - **skip rule**: a neuron *at rest* (``v[t-1] == 0``, hence no spike at ``t - 1``) whose input
      is not positive (``I[t] <= 0``) gets ``v[t] = max(0, I[t]) = 0`` and ``s[t] = 0``: its state
      and output are unchanged, so the update (read the membrane, decay, add, compare, write) is
      skipped. The skip is exact: :meth:`forward` computes every step with ``torch.where`` on the
      skip mask and gives the same spikes and membranes as the update equation above (tested
      against an event-driven loop that only touches non-skipped neurons).

    :meth:`skip_mask` tells which ``(step, neuron)`` updates were skipped; NeuroBench-style
    neuron-update counts (:func:`~bci.models.spiking.cost.count_operations`) subtract them.
    Parameters as :class:`LIF`.

    Examples
    --------
    >>> lif = ApproxLIF(1, beta=0.5, threshold=1.0)
    >>> current = torch.tensor([[[-0.5], [0.6], [-1.0], [-0.2], [1.5]]])
    >>> spikes, (v, _) = lif(current)
    >>> spikes.flatten().tolist()  # v = 0 (skip), 0.6, 0 (floor), 0 (skip), 1.5 (spike)
    [0.0, 0.0, 0.0, 0.0, 1.0]
    >>> lif.skip_mask(current).flatten().tolist()
    [True, False, False, True, False]
    """

    def _step(self, v: torch.Tensor, s: torch.Tensor, current: torch.Tensor, beta: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        skip = (v == 0) & (current <= 0)
        v_new = torch.relu(self._membrane_step(v, s, current, beta))
        v_new = torch.where(skip, v, v_new)  # skipped neurons keep their (zero) state
        s_new = self._fire(v_new) if self.reset != "none" or self.output == "spikes" else s
        return v_new, s_new, skip

    def _unroll(self, current: torch.Tensor, state: tuple[torch.Tensor, ...] | None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        self._check(current)
        if state is None:
            state = self.init_state(current.shape[0], dtype=current.dtype,
                                    device=current.device)
        v, s = state
        beta = self.beta(current.dtype, current.device)
        outputs, masks = [], []
        for t in range(current.shape[1]):
            v, s, skip = self._step(v, s, current[:, t], beta)
            outputs.append(s if self.output == "spikes" else v)
            masks.append(skip)
        return torch.stack(outputs, dim=1), (v, s), torch.stack(masks, dim=1)

    def forward(self, current: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Unroll over ``(batch, n_steps, n_neurons)`` currents (see :meth:`LIF.forward`).

        The membrane never goes below 0 and resting neurons with non-positive input are skipped.
        """
        out, state, _ = self._unroll(current, state)
        return out, state

    @torch.no_grad()
    def skip_mask(self, current: torch.Tensor, state: tuple[torch.Tensor, ...] | None = None
                  ) -> torch.Tensor:
        """Which updates :meth:`forward` skips on these currents.

        Parameters
        ----------
        current : torch.Tensor
            Input currents ``(batch, n_steps, n_neurons)``.
        state : tuple of torch.Tensor | None
            Initial state, as for :meth:`forward`.

        Returns
        -------
        skipped : torch.Tensor of bool
            ``(batch, n_steps, n_neurons)``: True where the neuron was at rest and its input
            not positive.
        """
        return self._unroll(current, state)[2]
