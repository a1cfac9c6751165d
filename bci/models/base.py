"""Base class of the deep decoders (their small shared layers are in :mod:`bci.models._layers`).

Every network in :mod:`bci.models` subclasses :class:`EEGModule`:

- one constructor signature, ``(n_chans, n_outputs, n_times, *, sfreq=None, <architecture
  keywords>)``, every argument stored under its own name so that :meth:`EEGModule.get_config`
  rebuilds the model (``type(model).from_config(model.get_config())``);
- ``forward(x)`` maps ``(batch, n_chans, n_times)`` float32 to logits ``(batch, n_outputs)``
  (no softmax);
- :attr:`EEGModule.min_n_times` is the shortest window the architecture accepts; a shorter
  ``n_times`` raises ``"n_times=64 is too short for EEGNeX; it needs >= 121 samples"``.

The rule behind :attr:`~EEGModule.min_n_times` is the same for every architecture: each pooling
stage must produce at least one output, and every tap of every temporal kernel must reach at least
one real (non-padding) sample of the signal it slides over; a tap that only ever sees zero padding
never receives a gradient, so it is a parameter the network cannot learn.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .._checks import check_positive, did_you_mean, ensure_int
from ._layers import _smallest

__all__ = ["EEGModule"]


#: Appended to the message of an out-of-range ``batch_norm_momentum``.
MOMENTUM_HINT = ("It is the weight of the new batch (torch convention); Keras' momentum m is "
                 "1 - m here.")


class EEGModule(nn.Module):
    """Base class of the ``bci`` deep decoders (plain :class:`torch.nn.Module`).

    Parameters
    ----------
    n_chans : int
        Number of EEG channels of the input.
    n_outputs : int
        Number of outputs (classes for classification).
    n_times : int
        Number of samples per input window.
    sfreq : float | None
        Sampling rate of the input (Hz). Stored (so that a checkpoint carries it) and validated;
        architectures whose kernel sizes are defined in samples do not rescale them.

    Notes
    -----
    Subclasses store every constructor argument under its own name, implement :meth:`_fits`
    (whether a window of ``n_times`` samples fits the architecture) and call
    :meth:`_check_n_times` before building their layers.
    """

    def __init__(self, n_chans: int, n_outputs: int, n_times: int, *,
                 sfreq: float | None = None) -> None:
        super().__init__()
        self.n_chans = ensure_int(n_chans, "n_chans", minimum=1, what="EEG channels")
        self.n_outputs = ensure_int(n_outputs, "n_outputs", minimum=1, what="outputs")
        self.n_times = ensure_int(n_times, "n_times", minimum=1, what="samples per window")
        if sfreq is not None:
            sfreq = check_positive(sfreq, "sfreq", unit="Hz")
        self.sfreq = sfreq

    # -- configuration -------------------------------------------------------------------------
    @classmethod
    def _config_names(cls) -> list[str]:
        params = inspect.signature(cls.__init__).parameters
        return [name for name, p in params.items()
                if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_config(self) -> dict[str, Any]:
        """Return the constructor arguments of this model.

        ``type(self)(**self.get_config())`` rebuilds it (with fresh weights).

        Returns
        -------
        config : dict
            ``{"n_chans": ..., "n_outputs": ..., "n_times": ..., "sfreq": ..., <architecture
            keywords>}``; plain Python scalars and strings (JSON-serialisable).
        """
        config = {}
        for name in self._config_names():
            if not hasattr(self, name):
                raise RuntimeError(
                    f"{type(self).__name__} does not store its constructor argument {name!r} "
                    "under that name; every EEGModule must (see STYLE.md, Networks)."
                )
            config[name] = getattr(self, name)
        return config

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> EEGModule:
        """Build a model from :meth:`get_config`'s output.

        Parameters
        ----------
        config : dict
            Constructor arguments; unknown keys raise ``ValueError``.

        Returns
        -------
        model : EEGModule
            A new model with freshly initialised weights.
        """
        if not isinstance(config, Mapping):
            raise TypeError(f"config must be a dict, got {type(config).__name__}.")
        names = cls._config_names()
        unknown = [key for key in config if key not in names]
        if unknown:
            raise ValueError(
                f"Unknown {cls.__name__} argument {unknown[0]!r}."
                f"{did_you_mean(str(unknown[0]), names)} Available: {', '.join(names)}."
            )
        return cls(**config)

    # -- window length -------------------------------------------------------------------------
    def _fits(self, n_times: int) -> bool:
        """Tell whether a window of ``n_times`` samples fits the architecture.

        The answer is monotone in ``n_times``.
        """
        raise NotImplementedError

    @property
    def min_n_times(self) -> int:
        """Shortest window (samples) this architecture, with these hyper-parameters, accepts."""
        return _smallest(self._fits)

    def _describe_samples(self, n_samples: int) -> str:
        if self.sfreq is None:
            return f"{n_samples} samples"
        return f"{n_samples} samples ({n_samples / self.sfreq:.3g} s at sfreq={self.sfreq:g} Hz)"

    def _check_n_times(self) -> None:
        """Raise ``ValueError`` when ``n_times`` is below :attr:`min_n_times`."""
        min_n_times = self.min_n_times
        if self.n_times < min_n_times:
            raise ValueError(
                f"n_times={self.n_times} is too short for {type(self).__name__}; it needs >= "
                f"{self._describe_samples(min_n_times)}. Use longer windows, or smaller kernel, "
                "dilation or pooling sizes."
            )

    def _check_input(self, x: torch.Tensor) -> None:
        """Raise ``TypeError``/``ValueError`` unless ``x`` is a float tensor of the input shape.

        The input shape is ``(batch, n_chans, n_times)``; the check is skipped while
        ``torch.jit.trace`` records the graph.
        """
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__} expects a torch.Tensor (batch, n_chans, "
                            f"n_times), got {type(x).__name__}; use torch.as_tensor(x).")
        if torch.jit.is_tracing():
            return
        if not x.is_floating_point():
            raise TypeError(f"{type(self).__name__} expects floating-point input (float32), got "
                            f"{x.dtype}.")
        if x.ndim != 3 or x.shape[1] != self.n_chans or x.shape[2] != self.n_times:
            hint = ""
            if x.ndim == 3 and x.shape[1] == self.n_chans and x.shape[2] < self.n_times:
                hint = f" The window is too short: {type(self).__name__} was built for " \
                       f"n_times={self.n_times}."
            raise ValueError(
                f"{type(self).__name__} expects input of shape (batch, n_chans={self.n_chans}, "
                f"n_times={self.n_times}), got {tuple(x.shape)}.{hint}"
            )

    def extra_repr(self) -> str:
        """Return the signal arguments, for ``repr``."""
        return ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()
                         if k in ("n_chans", "n_outputs", "n_times", "sfreq"))
