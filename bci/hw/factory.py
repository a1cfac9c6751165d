"""Build a stimulator from a short text spec (the ``bci stream --stimulator`` option)."""

from __future__ import annotations

import ast

from .._checks import check_option
from ..realtime.stimulation import Stimulator

KINDS = ("lsl", "audio", "serial", "none")


def make_stimulator(spec: str | None) -> Stimulator | None:
    """``"lsl[:NAME]"`` (default name ``bci-stim``), ``"audio[:freq=1000,duration_s=0.05]"``,
    ``"serial:PORT[,baudrate=115200,reset_after_s=0.01]"`` or ``"none"`` (dry run: None).
    """
    if spec is None:
        return None
    kind, _, rest = spec.partition(":")
    check_option("stimulator", kind, KINDS)
    if kind == "none":
        return None
    if kind == "lsl":
        from .lsl_marker import LSLMarkerStimulator

        return LSLMarkerStimulator(rest or "bci-stim")
    items = [p.strip() for p in rest.split(",") if p.strip()]
    positional = [p for p in items if "=" not in p]
    params = {}
    for item in items:
        if "=" in item:
            key, value = (s.strip() for s in item.split("=", 1))
            try:
                params[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                params[key] = value
    if kind == "audio":
        from .audio import AudioToneStimulator

        return AudioToneStimulator(**params)
    if not positional:
        raise ValueError("The serial stimulator needs a port: 'serial:/dev/ttyUSB0'.")
    from .serial_trigger import SerialTriggerStimulator

    return SerialTriggerStimulator(positional[0], **params)
