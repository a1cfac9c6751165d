"""Velocity decoders for intracortical BMI from binned spike counts, and their training.

Five decoders with the ``bci`` network signature ``(n_chans, n_outputs, n_times, *, sfreq,
...)`` (``n_chans`` units, ``n_outputs`` velocity components, ``sfreq = 1 / bin width``):

- :class:`SNNStreaming` (NeuroBench's "SNN_Streaming"/``SNN2`` topology): one hidden layer of
  LIF neurons and a leaky-integrator read-out, run continuously, one step per bin, the state
  carried from bin to bin;
- :class:`SNN3D` (NeuroBench's "SNN_3D"/``SNNModel3``): each prediction re-reads the last
  ``n_times`` bins as ``n_times`` steps of a 3-layer LIF network (reset per window; input
  ``(bins, steps, units)`` is the "3-D" tensor), the read-out membrane at the last step is the
  output;
- :class:`ANNDecoder` (NeuroBench's ``ANNModel3D``): a 3-layer MLP on the flattened window, the
  non-spiking twin of :class:`SNN3D`;
- :class:`GRUDecoder`: a small GRU run continuously, the recurrent baseline;
- :class:`LinearDecoder`: a linear map of the flattened window (ridge regression, fitted in
  closed form by :func:`fit_ridge`).

Every decoder has :meth:`~_IBMIDecoder.forward_sequence`: causal predictions at every bin of
``(batch, n_chans, n_bins)`` counts, ``(batch, n_outputs, n_bins)``; windowed decoders see
zeros before the first bin. :meth:`forward` maps one window ``(batch, n_chans, n_times)`` to the
prediction at its last bin (streaming decoders start from rest at the window's first bin).
Outputs are in the units of the training targets: a fitted per-output offset and scale (buffers
``output_offset``, ``output_scale``, set by the fitting functions) undo the standardisation the
networks are trained on.

Training (:func:`fit_sequence_decoder`) goes through the project's one LightningModule,
:class:`~bci.models.training.DecoderModule`, via :func:`~bci.models.training.train_model`: the
streaming decoders on whole zero-padded trials with a loss masked to the real bins (task
``"sequence_regression"``), the windowed ones on the causal window of every bin (task
``"regression"``); :class:`LinearDecoder` is fitted in closed form (:func:`fit_ridge`).
Shuffling comes from ``random_state``; initialisation uses torch's global generator, which the
caller seeds, and dropout the generator seeded with ``seed`` (else a fork of the global one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..._checks import check_bool, check_fraction, check_option, check_positive, ensure_int
from ...data.reaching import ReachingData, make_windows, pad_trials
from .._threads import torch_threads
from ..base import EEGModule
from .encoders import TRANSFORMS, DirectEncoder
from .neurons import LIF, RESETS, CubaLIF, decay_from_tau
from .surrogate import SURROGATES

__all__ = ["SNNStreaming", "SNN3D", "ANNDecoder", "GRUDecoder", "LinearDecoder",
           "IBMI_MODELS", "FitResult", "fit_sequence_decoder", "fit_ridge", "predict_sequences"]


class _IBMIDecoder(EEGModule):
    """Shared parts: sfreq required, output de-standardisation, sequence prediction."""

    #: Whether the decoder carries a state from bin to bin (trained on whole trials).
    streaming: bool = False

    def __init__(self, n_chans: int, n_outputs: int, n_times: int, *,
                 sfreq: float | None) -> None:
        if sfreq is None:
            raise ValueError(f"{type(self).__name__} needs sfreq (bins per second, 1 / bin "
                             "width) to convert its time constants; got None.")
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        self.register_buffer("output_offset", torch.zeros(self.n_outputs))
        self.register_buffer("output_scale", torch.ones(self.n_outputs))

    def _fits(self, n_times: int) -> bool:
        return n_times >= 1

    def _destandardise(self, out: torch.Tensor, dim: int) -> torch.Tensor:
        shape = [1] * out.ndim
        shape[dim] = self.n_outputs
        return out * self.output_scale.view(shape) + self.output_offset.view(shape)

    def _check_sequence(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"{type(self).__name__}.forward_sequence expects a floating-point "
                            "torch.Tensor (batch, n_chans, n_bins).")
        if x.ndim != 3 or x.shape[1] != self.n_chans:
            raise ValueError(f"{type(self).__name__}.forward_sequence expects (batch, n_chans="
                             f"{self.n_chans}, n_bins), got {tuple(x.shape)}.")

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Predict causally at every bin.

        ``(batch, n_chans, n_bins)`` -> ``(batch, n_outputs, n_bins)``.
        """
        raise NotImplementedError


class _WindowedDecoder(_IBMIDecoder):
    """A decoder of one window; sequences are cut into causal windows (zeros before bin 0)."""

    def _window(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, n_times) -> (B, n_outputs)
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict at the last bin of each window.

        ``(batch, n_chans, n_times)`` -> ``(batch, n_outputs)``.
        """
        self._check_input(x)
        return self._destandardise(self._window(x), 1)

    def forward_sequence(self, x: torch.Tensor) -> torch.Tensor:
        self._check_sequence(x)
        batch, n_chans, n_bins = x.shape
        padded = F.pad(x, (self.n_times - 1, 0))
        windows = padded.unfold(2, self.n_times, 1)  # (B, C, n_bins, n_times)
        windows = windows.permute(0, 2, 1, 3).reshape(batch * n_bins, n_chans, self.n_times)
        out = self._window(windows).reshape(batch, n_bins, self.n_outputs).transpose(1, 2)
        return self._destandardise(out, 1)


class _StreamingDecoder(_IBMIDecoder):
    streaming = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict at the last bin, starting from rest at the first.

        ``(batch, n_chans, n_times)`` -> ``(batch, n_outputs)``.
        """
        self._check_input(x)
        return self.forward_sequence(x)[..., -1]


# ---------------------------------------------------------------------------------------------
# Spiking decoders
# ---------------------------------------------------------------------------------------------
class _SpikingStreamingDecoder(_StreamingDecoder):
    """Shared streaming SNN: units -> input synapses -> LIF hidden layer -> leaky read-out.

    ``x`` (counts) -> :class:`~bci.models.spiking.encoders.DirectEncoder` (``input_transform``)
    -> input synapses (``input_layer(n_chans, n_hidden)``: a bias-free ``nn.Linear`` for
    :class:`SNNStreaming`, a :class:`~bci.models.spiking.delays.DelayedLinear` for
    :class:`~bci.models.spiking.delays.DelaySNN`) -> LIF (or current-based LIF,
    ``neuron="cuba"``) -> dropout -> ``Linear(n_hidden, n_outputs)`` -> non-spiking LIF
    (``reset="none"``) whose membrane is the prediction, one step per bin, the state carried
    from bin to bin. The parameters are those of :class:`SNNStreaming`.

    The streaming state is ``(*input synapse state, hidden state, read-out state)``; input
    synapses with a memory (a delay line) override :meth:`_input_synapses`.
    """

    def __init__(self, n_chans: int, n_outputs: int, n_times: int, *, sfreq: float | None,
                 n_hidden: int, tau_s: float, readout_tau_s: float, syn_tau_s: float,
                 neuron: str, threshold: float, reset: str, learn_tau: bool, surrogate: str,
                 slope: float, dropout: float, input_transform: str,
                 input_layer: Callable[[int, int], nn.Module]) -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        self.n_hidden = ensure_int(n_hidden, "n_hidden", minimum=1)
        self.tau_s = check_positive(tau_s, "tau_s", unit="seconds")
        self.readout_tau_s = check_positive(readout_tau_s, "readout_tau_s", unit="seconds")
        self.syn_tau_s = check_positive(syn_tau_s, "syn_tau_s", unit="seconds")
        self.neuron = check_option("neuron", neuron, ("lif", "cuba"))
        self.threshold = check_positive(threshold, "threshold")
        self.reset = check_option("reset", reset, RESETS)
        self.learn_tau = check_bool(learn_tau, "learn_tau")
        self.surrogate = check_option("surrogate", surrogate, SURROGATES)
        self.slope = check_positive(slope, "slope")
        self.dropout = check_fraction(dropout, "dropout", kind="probability")
        self.input_transform = check_option("input_transform", input_transform, TRANSFORMS)
        self._check_n_times()

        beta = decay_from_tau(self.tau_s, self.sfreq)
        self.encoder = DirectEncoder(self.n_chans, transform=self.input_transform)
        self.fc_in = input_layer(self.n_chans, self.n_hidden)
        common = dict(beta=beta, threshold=self.threshold, reset=self.reset,
                      learn_beta=self.learn_tau, surrogate=self.surrogate, slope=self.slope)
        if self.neuron == "cuba":
            self.lif_hidden: LIF = CubaLIF(self.n_hidden,
                                           alpha=decay_from_tau(self.syn_tau_s, self.sfreq),
                                           learn_alpha=self.learn_tau, **common)
        else:
            self.lif_hidden = LIF(self.n_hidden, **common)
        self.drop = nn.Dropout(self.dropout)
        self.fc_out = nn.Linear(self.n_hidden, self.n_outputs)
        self.lif_out = LIF(self.n_outputs, beta=decay_from_tau(self.readout_tau_s, self.sfreq),
                           reset="none", output="membrane", learn_beta=self.learn_tau)

    def _input_synapses(self, currents: torch.Tensor, memory: tuple
                        ) -> tuple[torch.Tensor, tuple]:
        """Input currents ``(batch, n_bins, n_chans)`` -> hidden-layer input, memory after."""
        return self.fc_in(currents), ()

    def forward_sequence(self, x: torch.Tensor, state: tuple | None = None, *,
                         return_state: bool = False):
        """Predictions at every bin, carrying the state.

        Parameters
        ----------
        x : torch.Tensor
            Counts ``(batch, n_chans, n_bins)``.
        state : tuple | None
            The state after a previous call with ``return_state=True`` (streaming chunk by
            chunk); rest (zero input before the first bin) when None.
        return_state : bool
            Also return the state after the last bin.

        Returns
        -------
        out : torch.Tensor
            ``(batch, n_outputs, n_bins)``.
        state : tuple
            Only with ``return_state=True``.
        """
        self._check_sequence(x)
        memory, hidden_state, out_state = ((tuple(state[:-2]), state[-2], state[-1])
                                           if state is not None else ((), None, None))
        currents, memory = self._input_synapses(self.encoder(x), memory)
        spikes, hidden_state = self.lif_hidden(currents, hidden_state)
        membrane, out_state = self.lif_out(self.fc_out(self.drop(spikes)), out_state)
        out = self._destandardise(membrane.transpose(1, 2), 1)
        return (out, (*memory, hidden_state, out_state)) if return_state else out


class SNNStreaming(_SpikingStreamingDecoder):
    """Streaming SNN: units -> LIF hidden layer -> leaky-integrator read-out, one step per bin.

    ``x`` (counts) -> :class:`~bci.models.spiking.encoders.DirectEncoder` (``input_transform``)
    -> ``Linear(n_chans, n_hidden, bias=False)`` -> LIF (or current-based LIF, ``neuron="cuba"``)
    -> dropout -> ``Linear(n_hidden, n_outputs)`` -> non-spiking LIF (``reset="none"``) whose
    membrane is the prediction. The state runs on from bin to bin (NeuroBench's SNN_Streaming:
    ``beta = 0.96`` at 4 ms steps, i.e. tau about 100 ms, reset to zero, threshold 1); its
    streaming state (:meth:`forward_sequence`) is ``(hidden state, read-out state)``.

    Parameters
    ----------
    n_chans, n_outputs, n_times : int
        Units, velocity components, and the window :meth:`forward` reads (bins).
    sfreq : float
        Bins per second (Hz).
    n_hidden : int
        Hidden LIF neurons.
    tau_s, readout_tau_s : float
        Membrane time constants of the hidden and read-out neurons (seconds).
    syn_tau_s : float
        Synaptic time constant of the hidden neurons when ``neuron="cuba"`` (seconds).
    neuron : "lif" | "cuba"
        Hidden neuron model.
    threshold : float
        Firing threshold of the hidden neurons.
    reset : "subtract" | "zero" | "none"
        Hidden neurons' reset.
    learn_tau : bool
        Learn the time constants (one per neuron).
    surrogate : str
        Surrogate gradient (``"fast_sigmoid"``, ``"atan"``, ``"sigmoid"``, ``"triangle"``).
    slope : float
        Surrogate steepness.
    dropout : float
        Dropout on the hidden spikes (training only).
    input_transform : "none" | "sqrt" | "log1p"
        Compression of the counts before the first layer.
    """

    def __init__(self, n_chans: int, n_outputs: int = 2, n_times: int = 1, *,
                 sfreq: float | None = None, n_hidden: int = 64, tau_s: float = 0.1,
                 readout_tau_s: float = 0.1, syn_tau_s: float = 0.05,
                 neuron: Literal["lif", "cuba"] = "lif", threshold: float = 1.0,
                 reset: Literal["subtract", "zero", "none"] = "zero", learn_tau: bool = False,
                 surrogate: str = "fast_sigmoid", slope: float = 20.0, dropout: float = 0.3,
                 input_transform: Literal["none", "sqrt", "log1p"] = "sqrt") -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq, n_hidden=n_hidden,
                         tau_s=tau_s, readout_tau_s=readout_tau_s, syn_tau_s=syn_tau_s,
                         neuron=neuron, threshold=threshold, reset=reset, learn_tau=learn_tau,
                         surrogate=surrogate, slope=slope, dropout=dropout,
                         input_transform=input_transform,
                         input_layer=lambda n_in, n_out: nn.Linear(n_in, n_out, bias=False))


class SNN3D(_WindowedDecoder):
    """SNN on a window of bins: ``n_times`` steps of a 3-layer LIF network per prediction.

    ``LayerNorm`` over the window ``(n_times, n_chans)`` -> ``Linear(n_chans, n_hidden_1)`` ->
    dropout -> LIF -> ``Linear(n_hidden_1, n_hidden_2)`` -> LIF -> ``Linear(n_hidden_2,
    n_outputs)`` -> non-spiking LIF read-out; the read-out membrane after the last step, times a
    learnable gain per output, is the prediction. The neurons start from rest in every window
    (NeuroBench's SNN_3D: 32 and 48 neurons, ``beta = 0.5``, threshold 0.5, 7 steps of a 200 ms
    window).

    Parameters
    ----------
    n_chans, n_outputs : int
        Units and velocity components.
    n_times : int
        Window length (bins) = number of SNN steps per prediction.
    sfreq : float
        Bins per second (Hz).
    n_hidden_1, n_hidden_2 : int
        LIF neurons of the two hidden layers.
    tau_s : float
        Membrane time constant of all neurons (seconds).
    threshold : float
        Firing threshold.
    reset : "subtract" | "zero" | "none"
        Reset of the hidden neurons.
    learn_tau : bool
        Learn the time constants.
    surrogate, slope
        Surrogate gradient and its steepness.
    dropout : float
        Dropout after the first layer (training only).
    input_transform : "none" | "sqrt" | "log1p"
        Compression of the counts.
    """

    def __init__(self, n_chans: int, n_outputs: int = 2, n_times: int = 4, *,
                 sfreq: float | None = None, n_hidden_1: int = 32, n_hidden_2: int = 48,
                 tau_s: float = 0.07, threshold: float = 0.5,
                 reset: Literal["subtract", "zero", "none"] = "subtract",
                 learn_tau: bool = False, surrogate: str = "atan", slope: float = 2.0,
                 dropout: float = 0.3,
                 input_transform: Literal["none", "sqrt", "log1p"] = "sqrt") -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        self.n_hidden_1 = ensure_int(n_hidden_1, "n_hidden_1", minimum=1)
        self.n_hidden_2 = ensure_int(n_hidden_2, "n_hidden_2", minimum=1)
        self.tau_s = check_positive(tau_s, "tau_s", unit="seconds")
        self.threshold = check_positive(threshold, "threshold")
        self.reset = check_option("reset", reset, RESETS)
        self.learn_tau = check_bool(learn_tau, "learn_tau")
        self.surrogate = check_option("surrogate", surrogate, SURROGATES)
        self.slope = check_positive(slope, "slope")
        self.dropout = check_fraction(dropout, "dropout", kind="probability")
        self.input_transform = check_option("input_transform", input_transform, TRANSFORMS)
        self._check_n_times()

        beta = decay_from_tau(self.tau_s, self.sfreq)
        common = dict(beta=beta, threshold=self.threshold, reset=self.reset,
                      learn_beta=self.learn_tau, surrogate=self.surrogate, slope=self.slope)
        self.encoder = DirectEncoder(self.n_chans, transform=self.input_transform)
        self.norm = nn.LayerNorm([self.n_times, self.n_chans])
        self.fc1 = nn.Linear(self.n_chans, self.n_hidden_1)
        self.drop = nn.Dropout(self.dropout)
        self.lif1 = LIF(self.n_hidden_1, **common)
        self.fc2 = nn.Linear(self.n_hidden_1, self.n_hidden_2)
        self.lif2 = LIF(self.n_hidden_2, **common)
        self.fc3 = nn.Linear(self.n_hidden_2, self.n_outputs)
        self.lif_out = LIF(self.n_outputs, beta=beta, reset="none", output="membrane",
                           learn_beta=self.learn_tau)
        self.gain = nn.Parameter(torch.ones(self.n_outputs))

    def _window(self, x: torch.Tensor) -> torch.Tensor:
        currents = self.norm(self.encoder(x))  # (B, n_times, C)
        s1, _ = self.lif1(self.drop(self.fc1(currents)))
        s2, _ = self.lif2(self.fc2(s1))
        membrane, _ = self.lif_out(self.fc3(s2))
        return membrane[:, -1] * self.gain


# ---------------------------------------------------------------------------------------------
# Non-spiking baselines
# ---------------------------------------------------------------------------------------------
class ANNDecoder(_WindowedDecoder):
    """MLP on the flattened window (NeuroBench's ANN_3D), the non-spiking twin of :class:`SNN3D`.

    ``Linear(n_chans * n_times, n_hidden_1)`` -> ReLU -> BatchNorm -> dropout ->
    ``Linear(n_hidden_1, n_hidden_2)`` -> ReLU -> BatchNorm -> dropout ->
    ``Linear(n_hidden_2, n_outputs)``.

    Parameters
    ----------
    n_chans, n_outputs, n_times : int
        Units, velocity components, window length (bins).
    sfreq : float
        Bins per second (Hz), stored.
    n_hidden_1, n_hidden_2 : int
        Hidden units.
    dropout : float
        Dropout rate (training only).
    input_transform : "none" | "sqrt" | "log1p"
        Compression of the counts.
    """

    def __init__(self, n_chans: int, n_outputs: int = 2, n_times: int = 4, *,
                 sfreq: float | None = None, n_hidden_1: int = 32, n_hidden_2: int = 48,
                 dropout: float = 0.3,
                 input_transform: Literal["none", "sqrt", "log1p"] = "sqrt") -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        self.n_hidden_1 = ensure_int(n_hidden_1, "n_hidden_1", minimum=1)
        self.n_hidden_2 = ensure_int(n_hidden_2, "n_hidden_2", minimum=1)
        self.dropout = check_fraction(dropout, "dropout", kind="probability")
        self.input_transform = check_option("input_transform", input_transform, TRANSFORMS)
        self._check_n_times()
        self.encoder = DirectEncoder(self.n_chans, transform=self.input_transform)
        self.fc1 = nn.Linear(self.n_chans * self.n_times, self.n_hidden_1)
        self.act1 = nn.ReLU()
        self.bn1 = nn.BatchNorm1d(self.n_hidden_1)
        self.fc2 = nn.Linear(self.n_hidden_1, self.n_hidden_2)
        self.act2 = nn.ReLU()
        self.bn2 = nn.BatchNorm1d(self.n_hidden_2)
        self.fc3 = nn.Linear(self.n_hidden_2, self.n_outputs)
        self.drop = nn.Dropout(self.dropout)

    def _window(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x).flatten(1)
        h = self.drop(self.bn1(self.act1(self.fc1(h))))
        h = self.drop(self.bn2(self.act2(self.fc2(h))))
        return self.fc3(h)


class LinearDecoder(_WindowedDecoder):
    """Linear map of the flattened (compressed) window: ``Linear(n_chans * n_times, n_outputs)``.

    Fit it in closed form with :func:`fit_ridge` (ridge regression).

    Parameters
    ----------
    n_chans, n_outputs, n_times : int
        Units, velocity components, window length (bins: lags ``0 .. n_times - 1``).
    sfreq : float
        Bins per second (Hz), stored.
    input_transform : "none" | "sqrt" | "log1p"
        Compression of the counts.
    """

    def __init__(self, n_chans: int, n_outputs: int = 2, n_times: int = 3, *,
                 sfreq: float | None = None,
                 input_transform: Literal["none", "sqrt", "log1p"] = "sqrt") -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        self.input_transform = check_option("input_transform", input_transform, TRANSFORMS)
        self._check_n_times()
        self.encoder = DirectEncoder(self.n_chans, transform=self.input_transform)
        self.fc = nn.Linear(self.n_chans * self.n_times, self.n_outputs)

    def _window(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(x).flatten(1))


class GRUDecoder(_StreamingDecoder):
    """Small GRU run continuously over the bins, then a linear read-out.

    Parameters
    ----------
    n_chans, n_outputs, n_times : int
        Units, velocity components, and the window :meth:`forward` reads (bins).
    sfreq : float
        Bins per second (Hz), stored.
    n_hidden : int
        GRU hidden units.
    dropout : float
        Dropout on the GRU output (training only).
    input_transform : "none" | "sqrt" | "log1p"
        Compression of the counts.
    """

    def __init__(self, n_chans: int, n_outputs: int = 2, n_times: int = 1, *,
                 sfreq: float | None = None, n_hidden: int = 32, dropout: float = 0.2,
                 input_transform: Literal["none", "sqrt", "log1p"] = "sqrt") -> None:
        super().__init__(n_chans, n_outputs, n_times, sfreq=sfreq)
        self.n_hidden = ensure_int(n_hidden, "n_hidden", minimum=1)
        self.dropout = check_fraction(dropout, "dropout", kind="probability")
        self.input_transform = check_option("input_transform", input_transform, TRANSFORMS)
        self._check_n_times()
        self.encoder = DirectEncoder(self.n_chans, transform=self.input_transform)
        self.gru = nn.GRU(self.n_chans, self.n_hidden, batch_first=True)
        self.drop = nn.Dropout(self.dropout)
        self.fc_out = nn.Linear(self.n_hidden, self.n_outputs)

    def forward_sequence(self, x: torch.Tensor, state: torch.Tensor | None = None, *,
                         return_state: bool = False):
        """Predict at every bin, from ``state`` (rest when None).

        ``state`` is ``(1, batch, n_hidden)`` as in :meth:`SNNStreaming.forward_sequence`.
        """
        self._check_sequence(x)
        h, state = self.gru(self.encoder(x), state)
        out = self._destandardise(self.fc_out(self.drop(h)).transpose(1, 2), 1)
        return (out, state) if return_state else out


#: Name -> iBMI decoder class.
IBMI_MODELS: dict[str, type[_IBMIDecoder]] = {
    "SNNStreaming": SNNStreaming,
    "SNN3D": SNN3D,
    "ANNDecoder": ANNDecoder,
    "GRUDecoder": GRUDecoder,
    "LinearDecoder": LinearDecoder,
}


# ---------------------------------------------------------------------------------------------
# Fitting and prediction
# ---------------------------------------------------------------------------------------------
def _target_stats(data: ReachingData) -> tuple[np.ndarray, np.ndarray]:
    vel = np.concatenate(data.velocity, axis=1)
    std = vel.std(axis=1)
    return vel.mean(axis=1), np.where(std > 0, std, 1.0)


def _set_output_stats(model: _IBMIDecoder, mean: np.ndarray, std: np.ndarray) -> None:
    with torch.no_grad():
        model.output_offset.copy_(torch.as_tensor(mean, dtype=model.output_offset.dtype))
        model.output_scale.copy_(torch.as_tensor(std, dtype=model.output_scale.dtype))


def _check_model(model) -> None:
    if not isinstance(model, _IBMIDecoder):
        raise TypeError(f"model must be one of the iBMI decoders ({', '.join(IBMI_MODELS)}), "
                        f"got {type(model).__name__}.")


def fit_ridge(model: LinearDecoder, data: ReachingData, *, alpha: float = 1.0
              ) -> LinearDecoder:
    """Fit a :class:`LinearDecoder` by ridge regression on every bin of ``data`` (in place).

    Solves ``min ||Y - X W - b||^2 + alpha ||W||^2`` on standardised targets (``X``: the
    flattened, compressed windows of :func:`~bci.data.reaching.make_windows`; the intercept is
    not penalised), in float64.

    Parameters
    ----------
    model : LinearDecoder
        The decoder to fit.
    data : ReachingData
        Training trials.
    alpha : float
        Ridge penalty (>= 0).

    Returns
    -------
    model : LinearDecoder
        The same object, fitted.
    """
    if not isinstance(model, LinearDecoder):
        raise TypeError(f"fit_ridge fits a LinearDecoder, got {type(model).__name__}.")
    alpha = check_positive(alpha, "alpha", allow_zero=True,
                           hint="It is the ridge penalty on the weights.")
    X, y, _ = make_windows(data, model.n_times)
    with torch.no_grad():
        feats = model.encoder(torch.as_tensor(X)).flatten(1).double().numpy()
    mean, std = _target_stats(data)
    target = (y - mean) / std
    x_mean = feats.mean(axis=0)
    xc = feats - x_mean
    gram = xc.T @ xc + alpha * np.eye(xc.shape[1])
    weights = np.linalg.solve(gram, xc.T @ (target - target.mean(axis=0)))  # (F, n_outputs)
    bias = target.mean(axis=0) - x_mean @ weights
    with torch.no_grad():
        model.fc.weight.copy_(torch.as_tensor(weights.T, dtype=torch.float32))
        model.fc.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
    _set_output_stats(model, mean, std)
    return model


@dataclass
class FitResult:
    """History of :func:`fit_sequence_decoder`.

    Attributes
    ----------
    train_loss, val_loss : list of float
        Mean squared error on standardised targets per epoch, over the real bins (``val_loss``
        empty without validation data).
    best_epoch : int
        Epoch (0-based) whose weights were kept (the last one without validation data).
    history : list of dict
        The per-epoch rows of :func:`bci.models.training.train_model`: ``epoch``,
        ``train_loss``, ``train_r2``, ``val_loss``, ``val_r2`` (with validation data) and
        ``lr`` (R² over the real bins, on standardised targets).
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


def _shuffle_seed(random_state) -> int | None:
    """Return the data loader's seed: an int as is, one draw from a Generator, None unseeded."""
    if random_state is None:
        return None
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63 - 1))
    return ensure_int(random_state, "random_state",
                      hint="Pass an int seed, a numpy.random.Generator or None.")


def _datamodule(model: _IBMIDecoder, train: ReachingData, val: ReachingData | None,
                mean: np.ndarray, std: np.ndarray, batch_size: int, random_state):
    """Build standardised training (and validation) data for the Lightning training.

    For :func:`~bci.models.training.train_model`: zero-padded trials with masks (streaming decoders)
    or the causal window of every bin.
    """
    from ...data.datamodule import EEGDataModule

    def standardise(Y, axis):
        shape = [1] * Y.ndim
        shape[axis] = -1
        return ((Y - mean.reshape(shape)) / std.reshape(shape)).astype(np.float32)

    seed = _shuffle_seed(random_state)
    if model.streaming:
        X, Y, mask = pad_trials(train)
        kwargs = {}
        if val is not None:
            X_val, Y_val, mask_val = pad_trials(val)
            kwargs = dict(X_val=X_val, y_val=standardise(Y_val, 1), mask_val=mask_val)
        return EEGDataModule(X, standardise(Y, 1), mask=mask, task="sequence_regression",
                             val_fraction=0.0, batch_size=batch_size, random_state=seed,
                             **kwargs)
    X, y, _ = make_windows(train, model.n_times)
    kwargs = {}
    if val is not None:
        X_val, y_val, _ = make_windows(val, model.n_times)
        kwargs = dict(X_val=X_val, y_val=standardise(y_val, 1))
    # BatchNorm (ANNDecoder) cannot train on a last batch of one window: drop only that one
    return EEGDataModule(X, standardise(y, 1), task="regression", val_fraction=0.0,
                         batch_size=batch_size, random_state=seed,
                         drop_last=len(X) % batch_size == 1, **kwargs)


def fit_sequence_decoder(model: _IBMIDecoder, train: ReachingData, *,
                         val: ReachingData | None = None, max_epochs: int = 60,
                         lr: float = 3e-3, weight_decay: float = 1e-4,
                         batch_size: int | None = None, patience: int | None = 10,
                         grad_clip: float = 1.0,
                         random_state: int | np.random.Generator | None = None,
                         n_threads: int | None = 1,
                         scheduler: Literal["cosine", "plateau", "none"] = "none",
                         seed: int | None = None) -> FitResult:
    """Train an iBMI decoder on trials of ``train`` (in place) with Lightning.

    Through :class:`~bci.models.training.DecoderModule` and :func:`~bci.models.training.train_model`
    (AdamW, gradient clipping, early stopping).

    Streaming decoders (:class:`SNNStreaming`, :class:`GRUDecoder`) see whole zero-padded trials
    and a loss masked to the real bins (task ``"sequence_regression"``: ``forward_sequence``
    on batches of trials); windowed decoders see the causal window of every bin (task
    ``"regression"``). Targets are standardised with the training mean and standard deviation,
    which are stored in the model (``output_offset``, ``output_scale``) after training so that
    predictions come back in the original units. With ``val``, training stops after
    ``patience`` epochs without a lower validation loss and the weights of the best epoch are
    restored.

    Parameters
    ----------
    model : _IBMIDecoder
        One of :data:`IBMI_MODELS` (not :class:`LinearDecoder`: use :func:`fit_ridge`).
    train, val : ReachingData
        Training and (optional) validation trials.
    max_epochs : int
        Upper bound on the passes over the training data.
    lr, weight_decay : float
        AdamW learning rate and decoupled weight decay.
    batch_size : int | None
        Trials (streaming) or windows (windowed) per step; None: 16 trials or 256 windows.
    patience : int | None
        Early-stopping patience (epochs); None trains ``max_epochs``.
    grad_clip : float
        Gradient norm clip.
    random_state : int | numpy.random.Generator | None
        Shuffling seed (the data loader's own :class:`torch.Generator`).
    n_threads : int | None
        Torch CPU threads while training (restored afterwards); None keeps the current count.
        One thread is the default: these networks are small and unrolled step by step, so
        per-operation threading overhead dominates (on a loaded 2-core machine a step of
        :class:`SNNStreaming` took 17 times longer with 2 threads than with 1).
    scheduler : "cosine" | "plateau" | "none"
        Learning-rate schedule of :class:`~bci.models.training.DecoderModule`, stepped per
        epoch; ``"none"`` (default) keeps ``lr`` constant.
    seed : int | None
        Seed of torch's RNG (dropout) while training, as in
        :func:`~bci.models.training.train_model`; None draws from torch's global generator,
        which the caller seeds. Either way the caller's RNG state is unchanged afterwards.

    Returns
    -------
    result : FitResult
        Per-epoch losses and the kept epoch.
    """
    _check_model(model)
    if isinstance(model, LinearDecoder):
        raise TypeError("fit a LinearDecoder with fit_ridge (closed form).")
    max_epochs = ensure_int(max_epochs, "max_epochs", minimum=1)
    if batch_size is None:
        batch_size = 16 if model.streaming else 256
    batch_size = ensure_int(batch_size, "batch_size", minimum=1)
    from ..training import train_model

    mean, std = _target_stats(train)
    datamodule = _datamodule(model, train, val, mean, std, batch_size, random_state)
    # the network learns standardised targets: identity output statistics while training
    _set_output_stats(model, np.zeros_like(mean), np.ones_like(std))
    try:
        trained = train_model(model, datamodule, max_epochs=max_epochs, patience=patience,
                              lr=lr, weight_decay=weight_decay, scheduler=scheduler,
                              gradient_clip_val=grad_clip, seed=seed, n_threads=n_threads,
                              logger_kind="none", recalibrate_batch_norm=False)
    finally:
        _set_output_stats(model, mean, std)
    model.eval()
    history = trained.history
    return FitResult(train_loss=[row["train_loss"] for row in history],
                     val_loss=[row["val_loss"] for row in history if "val_loss" in row],
                     best_epoch=(trained.best_epoch if trained.best_epoch is not None
                                 else max(trained.n_epochs - 1, 0)),
                     history=history)


def predict_sequences(model: _IBMIDecoder, data: ReachingData, *,
                      n_threads: int | None = 1) -> list[np.ndarray]:
    """Predict causally every trial of ``data``.

    Evaluation mode, no gradients; torch runs on ``n_threads`` CPU threads, restored afterwards.

    Returns
    -------
    predictions : list of ndarray
        One ``(n_outputs, n_bins)`` float64 array per trial, in the training targets' units.
    """
    _check_model(model)
    model.eval()
    X, _, mask = pad_trials(data)
    with torch.no_grad(), torch_threads(n_threads):
        out = model.forward_sequence(torch.as_tensor(X)).double().numpy()
    return [out[i, :, :int(m.sum())] for i, m in enumerate(mask)]
