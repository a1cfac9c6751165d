"""Registry of the deep decoders: :data:`MODELS` and :func:`get_model`."""

from __future__ import annotations

from typing import Any

from .._checks import check_option, did_you_mean
from .base import EEGModule
from .contact_set import ContactSetNet
from .eegnet import EEGNet
from .eegnex import EEGNeX
from .neurogpt import NeuroGPT
from .shallow import ShallowConvNet
from .spiking.conformer import SpikingConformer

__all__ = ["MODELS", "get_model"]

#: Name -> :class:`~bci.models.base.EEGModule` subclass. Every registered model must pass the
#: shared network tests (``tests/models/test_networks.py`` runs them on every entry).
MODELS: dict[str, type[EEGModule]] = {
    "EEGNeX": EEGNeX,
    "EEGNet": EEGNet,
    "ShallowConvNet": ShallowConvNet,
    "SpikingConformer": SpikingConformer,
    "NeuroGPT": NeuroGPT,
    "ContactSetNet": ContactSetNet,
}


def get_model(name: str, n_chans: int, n_outputs: int, n_times: int, *,
              sfreq: float | None = None, **arch_kwargs: Any) -> EEGModule:
    """Build a registered decoder.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS`: ``"EEGNeX"``, ``"EEGNet"``, ``"ShallowConvNet"``,
        ``"SpikingConformer"``, ``"NeuroGPT"`` or ``"ContactSetNet"``.
    n_chans, n_outputs, n_times : int
        Channels, outputs (classes) and samples per window.
    sfreq : float | None
        Sampling rate (Hz), stored in the model's config.
    **arch_kwargs
        Architecture keywords of that model (see its docstring).

    Returns
    -------
    model : EEGModule
        Freshly initialised; ``model.get_config()`` rebuilds it.

    Examples
    --------
    >>> model = get_model("EEGNet", 8, 2, 256, sfreq=128.0)
    >>> type(model).__name__
    'EEGNet'
    """
    check_option("model", name, MODELS)
    cls = MODELS[name]
    names = [n for n in cls._config_names() if n not in ("n_chans", "n_outputs", "n_times",
                                                          "sfreq")]
    for key in arch_kwargs:
        if key not in names:
            raise TypeError(
                f"{name} has no architecture keyword {key!r}.{did_you_mean(key, names)} "
                f"Available: {', '.join(names)}."
            )
    return cls(n_chans, n_outputs, n_times, sfreq=sfreq, **arch_kwargs)
