"""Build a stimulator from a short text spec (the ``bci stream --stimulator`` option)."""

from __future__ import annotations

import inspect
from typing import Any

from .._checks import parse_spec
from ..realtime.stimulation import Stimulator

KINDS = ("lsl", "audio", "serial", "none")

#: Spec keys whose values are names, kept as text (a stream called ``1`` stays ``"1"``).
NAME_KEYS = frozenset({"name", "stype", "port", "kind"})

#: The positional item of each kind, e.g. ``lsl:bci-stim`` is ``lsl:name=bci-stim``.
POSITIONAL = {"lsl": "name", "serial": "port"}


def _backend(kind: str) -> type[Stimulator]:
    if kind == "lsl":
        from .lsl_marker import LSLMarkerStimulator

        return LSLMarkerStimulator
    if kind == "audio":
        from .audio import AudioToneStimulator

        return AudioToneStimulator
    from .serial_trigger import SerialTriggerStimulator

    return SerialTriggerStimulator


def parse_stimulator(spec: str) -> tuple[str, dict[str, Any]]:
    """Check a stimulator spec without opening anything; return its kind and parameters.

    Parameters
    ----------
    spec : str
        ``"lsl[:NAME][,wait_for_consumers_s=5]"`` (default name ``bci-stim``),
        ``"audio[:freq=1000,duration_s=0.05]"``,
        ``"serial:PORT[,baudrate=115200,reset_after_s=0.01]"`` or ``"none"`` (dry run).
        Names (``name``, ``port``, ``stype``, ``kind``) are kept as text; quotes around them
        are optional.

    Returns
    -------
    kind : str
        One of :data:`KINDS`.
    params : dict
        Keyword arguments of the back-end's class (the positional item under its name).

    Raises
    ------
    ValueError
        Unknown kind (with a "did you mean"), unknown parameters (the accepted ones are
        listed), a missing serial port, values out of range (checked for ``lsl`` and the
        tone of ``audio``, which open nothing when built).
    TypeError
        A value of the wrong type.
    """
    kind, positional, params = parse_spec(spec, what="stimulator", kinds=KINDS,
                                          strings=NAME_KEYS)
    if kind == "none":
        if positional or params:
            raise ValueError(f"The 'none' stimulator (dry run) takes no parameters, got "
                             f"{spec!r}.")
        return kind, {}
    first = POSITIONAL.get(kind)
    if positional:
        if first is None or len(positional) > 1 or first in params:
            raise ValueError(f"Stimulator parameters look like KEY=VALUE after "
                             f"{'the ' + first + ', ' if first else ''}got {positional!r} in "
                             f"{spec!r}.")
        params[first] = positional[0]
    if kind == "serial" and "port" not in params:
        raise ValueError("The serial stimulator needs a port: 'serial:/dev/ttyUSB0'.")
    cls = _backend(kind)
    accepted = [p for p in inspect.signature(cls).parameters if p != "play"]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"Bad {kind} stimulator parameters in {spec!r}: unknown {unknown}; "
                         f"accepted: {', '.join(accepted)}.")
    if kind == "lsl":
        cls(**params)  # checks the values; the outlet is created only by open()
    elif kind == "audio":
        from .audio import make_tone

        tone = set(inspect.signature(make_tone).parameters)
        make_tone(**{k: v for k, v in params.items() if k in tone})
    return kind, params


def make_stimulator(spec: str | None) -> Stimulator | None:
    """Build the stimulator of a spec (see :func:`parse_stimulator`); None for ``"none"``.

    An LSL marker stimulator creates its outlet when opened (:meth:`Stimulator.open`, called
    by the online loop when the session starts); a serial port is opened here.
    """
    if spec is None:
        return None
    kind, params = parse_stimulator(spec)
    if kind == "none":
        return None
    return _backend(kind)(**params)
