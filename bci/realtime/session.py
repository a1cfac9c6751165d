"""One call for a whole closed-loop session (what ``bci stream`` runs)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from .._checks import check_option
from .._logging import logger as _root_logger
from .loop import OnlineLoop
from .policies import OscillationTrigger, Policy, ThresholdPolicy
from .processing import ProcessingChain
from .recording import Recorder
from .safety import SafetyGate
from .sources import Source
from .stimulation import Stimulator
from .stream import Stream

logger = _root_logger.getChild("realtime.session")

POLICIES = {"none": None, "threshold": ThresholdPolicy, "oscillation": OscillationTrigger}


def parse_policy(spec: str | Policy | None) -> Policy | None:
    """Build a policy from ``"name:key=value,key=value"``.

    Names: ``none``, ``threshold`` (:class:`~bci.realtime.policies.ThresholdPolicy`; its
    ``target`` is required, e.g. ``threshold:target=left,on=0.8,off=0.6,refractory_s=2``),
    ``oscillation`` (:class:`~bci.realtime.policies.OscillationTrigger`, e.g.
    ``oscillation:channel=C3,freq=13.5,threshold=2.5``).
    """
    if spec is None or isinstance(spec, Policy):
        return spec
    name, _, rest = str(spec).partition(":")
    check_option("policy", name.strip(), POLICIES)
    cls = POLICIES[name.strip()]
    if cls is None:
        return None
    params: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"Policy parameters look like key=value, got {item!r} in {spec!r}.")
        try:
            params[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            params[key.strip()] = value.strip()
    if cls is ThresholdPolicy:
        if "target" not in params:
            raise ValueError("The threshold policy needs target=<class name>, e.g. "
                             "'threshold:target=left,on=0.8'.")
        target = params.pop("target")
        try:
            return ThresholdPolicy(target, **params)
        except TypeError as err:
            raise ValueError(f"Bad threshold policy parameters in {spec!r}: {err}") from None
    channel = params.pop("channel", 0)
    try:
        return OscillationTrigger(channel, **params)
    except TypeError as err:
        raise ValueError(f"Bad oscillation policy parameters in {spec!r}: {err}") from None


def run_session(source: Source, *, decoder: Any = None, policy: str | Policy | None = None,
                record_dir: str | Path | None = None, duration_s: float | None = None,
                stimulator: Stimulator | None = None, safety: SafetyGate | None = None,
                processing: ProcessingChain | None = None, window_s: float | None = None,
                step_s: float = 0.1, markers: Any = None, decode_timeout_s: float | None = 1.0,
                buffer_s: float = 30.0, reconnect_s: float = 5.0,
                threaded: bool = True, info: dict | None = None) -> dict:
    """Stream ``source``, decode, stimulate under the safety limits and record; return the summary.

    Parameters
    ----------
    source : Source
        E.g. :class:`~bci.realtime.lsl.LSLSource`.
    decoder : Decoder | str | Path | None
        A decoder or a decoder file (``bci.load_decoder``).
    policy : str | Policy | None
        See :func:`parse_policy`.
    record_dir : str | Path | None
        Session folder (samples, events, ``summary.json``); nothing is recorded when None.
        A ``STOP`` file created there stops all stimulation (manual stop).
    duration_s : float | None
        Session length (s); until Ctrl+C or the end of the source when None.
    stimulator, safety, processing, window_s, step_s, markers, decode_timeout_s
        See :class:`~bci.realtime.loop.OnlineLoop`.
    buffer_s, reconnect_s, threaded
        See :class:`~bci.realtime.stream.Stream`.
    info : dict | None
        Extra facts for the recording's header.

    Returns
    -------
    summary : dict
        See :func:`bci.realtime.report.summarize`.
    """
    if isinstance(decoder, (str, Path)):
        from ..models.decoder import load_decoder

        decoder = load_decoder(decoder)
    policy = parse_policy(policy)
    stream = Stream(source, buffer_s=buffer_s, threaded=threaded, reconnect_s=reconnect_s)
    recorder = None
    if record_dir is not None:
        record_dir = Path(record_dir)
        recorder = Recorder(record_dir, stream.ch_names, stream.sfreq,
                            info={"source": source.info.name, **(info or {})})
        if safety is None:
            safety = SafetyGate(stop_file=record_dir / "STOP")
    try:
        loop = OnlineLoop(stream, decoder, window_s=window_s, step_s=step_s,
                          processing=processing, policy=policy, safety=safety,
                          stimulator=stimulator, recorder=recorder, markers=markers,
                          decode_timeout_s=decode_timeout_s)
    except BaseException:
        if recorder is not None:
            recorder.close()
        source.close()
        raise
    return loop.run(duration_s)
