"""One call for a whole closed-loop session (what ``bci stream`` runs), or its offline replay."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from .._checks import check_bool, check_positive, check_type, ensure_int, parse_spec
from .._logging import logger as _root_logger
from .events import Decision
from .loop import OnlineLoop
from .policies import OscillationTrigger, Policy, ThresholdPolicy
from .processing import ProcessingChain
from .recording import Recorder, check_session_dir
from .safety import SafetyGate
from .sources import ArraySource, Source
from .stimulation import Stimulator
from .stream import Stream

logger = _root_logger.getChild("realtime.session")

POLICIES = {"none": None, "threshold": ThresholdPolicy, "oscillation": OscillationTrigger}

#: Spec keys whose values are names, kept as text (``target=13`` is the class called 13).
NAME_KEYS = frozenset({"target", "channel"})


def parse_policy(spec: str | Policy | None) -> Policy | None:
    """Build a policy from ``"name:key=value,key=value"``.

    Names: ``none``, ``threshold`` (:class:`~bci.realtime.policies.ThresholdPolicy`; its
    ``target`` is required, e.g. ``threshold:target=left_hand,on=0.8,off=0.6,refractory_s=2``),
    ``oscillation`` (:class:`~bci.realtime.policies.OscillationTrigger`, e.g.
    ``oscillation:channel=C3,freq=13.5,threshold=2.5``).

    ``target`` and ``channel`` are names, always read as text: ``target=13`` is the class
    called ``13`` (quotes are optional, ``target='13'`` is the same), never a column index;
    whether it is one of the decoder's classes is checked when the session starts. Other
    values are Python literals (``on=0.8``, ``target_phase=None``, ``relative=False``).

    Raises
    ------
    ValueError
        Unknown policy (with a "did you mean"), unknown or missing parameters, values out of
        range (NaN and inf are refused).
    TypeError
        A value of the wrong type (``on=high``).
    """
    if spec is None or isinstance(spec, Policy):
        return spec
    kind, positional, params = parse_spec(spec, what="policy", kinds=POLICIES,
                                          strings=NAME_KEYS)
    cls = POLICIES[kind]
    if cls is None:
        if positional or params:
            raise ValueError(f"The 'none' policy takes no parameters, got {spec!r}.")
        return None
    if positional:
        raise ValueError(f"Policy parameters look like KEY=VALUE, got {positional[0]!r} in "
                         f"{spec!r}.")
    if cls is ThresholdPolicy and "target" not in params:
        raise ValueError("The threshold policy needs target=<class name>, e.g. "
                         "'threshold:target=left_hand,on=0.8'.")
    accepted = list(inspect.signature(cls).parameters)
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise ValueError(f"Bad {kind} policy parameters in {spec!r}: unknown {unknown}; "
                         f"accepted: {', '.join(accepted)}.")
    return cls(**params)


def run_session(source: Source, *, decoder: Any = None, policy: str | Policy | None = None,
                record_dir: str | Path | None = None, duration_s: float | None = None,
                stimulator: Stimulator | None = None, safety: SafetyGate | None = None,
                processing: ProcessingChain | None = None, window_s: float | None = None,
                step_s: float = 0.1, markers: Any = None, decode_timeout_s: float | None = 1.0,
                buffer_s: float = 30.0, reconnect_s: float = 5.0,
                threaded: bool = True, info: dict | None = None,
                on_fault: Literal["stop", "continue"] = "stop", catch_up: bool = False,
                monitor: Any = None) -> dict:
    """Stream ``source``, decode, stimulate under the safety limits and record; return the summary.

    Everything that can be checked is checked before any work: the parameters (durations
    finite and > 0), that ``record_dir`` can be written, the decoder against the stream and
    the policy against the decoder (e.g. an unknown target class is refused with the list of
    classes); the recording starts only then.

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
        Session length (s, finite, > 0); until Ctrl+C or the end of the source when None.
    stimulator, safety, processing, window_s, step_s, markers, decode_timeout_s, on_fault
        See :class:`~bci.realtime.loop.OnlineLoop`.
    catch_up : bool
        Decide on every window even when late (e.g. to compare with an offline replay,
        :func:`replay_offline`); see :class:`~bci.realtime.loop.OnlineLoop`.
    buffer_s, reconnect_s, threaded
        See :class:`~bci.realtime.stream.Stream` (``buffer_s`` > 0, ``reconnect_s`` >= 0,
        finite).
    info : dict | None
        Extra facts for the recording's header; the stream's channel types (``ch_types``)
        are added when the source gives them.
    monitor : MonitorFeed | None
        Live monitor feed (:class:`~bci.realtime.monitor.MonitorFeed`, served by a
        :class:`~bci.realtime.monitor.MonitorServer`); it gets the summary at the end.

    Returns
    -------
    summary : dict
        See :func:`bci.realtime.report.summarize`; always written to ``record_dir`` when
        recording (see :meth:`~bci.realtime.loop.OnlineLoop.run`).
    """
    try:
        if duration_s is not None:
            check_positive(duration_s, "duration_s", unit="s")
        buffer_s = check_positive(buffer_s, "buffer_s", unit="s")
        reconnect_s = check_positive(reconnect_s, "reconnect_s", unit="s", allow_zero=True)
        threaded = check_bool(threaded, "threaded")
        check_type(record_dir, (str, Path, type(None)), "record_dir")
        if record_dir is not None:
            record_dir = check_session_dir(record_dir)  # before any work
        if isinstance(decoder, (str, Path)):
            from ..models.decoder import load_decoder

            decoder = load_decoder(decoder)
        policy = parse_policy(policy)
        stream = Stream(source, buffer_s=buffer_s, threaded=threaded, reconnect_s=reconnect_s)
        if record_dir is not None and safety is None:
            safety = SafetyGate(stop_file=record_dir / "STOP")
        loop = OnlineLoop(stream, decoder, window_s=window_s, step_s=step_s,
                          processing=processing, policy=policy, safety=safety,
                          stimulator=stimulator, markers=markers,
                          decode_timeout_s=decode_timeout_s, on_fault=on_fault,
                          catch_up=catch_up)
        if record_dir is not None:
            facts = {"source": source.info.name, **(info or {})}
            if stream.ch_types is not None:  # read_session types the channels with them
                facts.setdefault("ch_types", list(stream.ch_types))
            loop.recorder = Recorder(record_dir, stream.ch_names, stream.sfreq, info=facts)
        if monitor is not None:
            monitor.bind(loop)
    except BaseException:
        source.close()
        raise
    summary = loop.run(duration_s)
    if monitor is not None:
        monitor.finish(summary)
    return summary


def replay_offline(signal, sfreq: float, ch_names: Sequence[str] | None = None, *,
                   decoder: Any = None, window_s: float | None = None, step_s: float = 0.1,
                   processing: ProcessingChain | None = None, policy: Policy | None = None,
                   safety: SafetyGate | None = None, chunk_size: int = 32,
                   buffer_s: float = 30.0) -> tuple[list[Decision], dict]:
    """Run the online loop over a recorded signal, offline, as fast as it computes.

    The same :class:`~bci.realtime.loop.OnlineLoop` code as a live session, fed by an
    :class:`~bci.realtime.sources.ArraySource` (sample ``i`` stamped ``i / sfreq``) through an
    unthreaded :class:`~bci.realtime.stream.Stream`, deciding on every window
    (``catch_up=True``): deterministic, so offline and online decisions can be compared, and
    a policy's scores can be recorded to tune it (e.g.
    :meth:`~bci.realtime.policies.OscillationTrigger.replay`).

    Parameters
    ----------
    signal : array, shape (n_chans, n_samples)
        The recording (not modified).
    sfreq : float
        Its sampling rate (Hz).
    ch_names : sequence of str | None
        Channel names; ``Ch1``... when None.
    decoder, window_s, step_s, processing, policy, safety
        See :class:`~bci.realtime.loop.OnlineLoop`.
    chunk_size : int
        Samples per pull of the source (>= 1).
    buffer_s : float
        Stream buffer (s, > 0); at least one window.

    Returns
    -------
    decisions : list of Decision
        One per window, in time order (``t_end`` on the signal's clock, ``score``...).
    summary : dict
        The session summary (:func:`bci.realtime.report.summarize`).

    Examples
    --------
    >>> import numpy as np
    >>> from bci.realtime.policies import OscillationTrigger
    >>> t = np.arange(2000) / 100.0
    >>> decisions, summary = replay_offline(np.sin(2 * np.pi * 10 * t)[np.newaxis], 100.0,
    ...                                     ["EEG"], window_s=0.5, step_s=0.5,
    ...                                     policy=OscillationTrigger(freq=10.0, threshold=np.inf,
    ...                                                               relative=False))
    >>> len(decisions), round(decisions[0].score, 3)  # RMS of a unit sine
    (40, 0.707)
    """
    chunk_size = ensure_int(chunk_size, "chunk_size", minimum=1, what="samples")
    source = ArraySource(signal, sfreq, ch_names, chunk_size=chunk_size)
    loop = OnlineLoop(Stream(source, threaded=False, buffer_s=buffer_s), decoder,
                      window_s=window_s, step_s=step_s, processing=processing, policy=policy,
                      safety=safety, catch_up=True)
    summary = loop.run()
    return loop.decisions, summary
