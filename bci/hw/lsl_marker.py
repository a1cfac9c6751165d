"""The default stimulator: a marker on an LSL stream, read by the stimulation software."""

from __future__ import annotations

from .._checks import check_positive, check_type
from .._logging import logger as _root_logger
from ..realtime.events import StimEvent
from ..realtime.lsl import MarkerOutlet
from ..realtime.stimulation import Stimulator

logger = _root_logger.getChild("hw.lsl_marker")


class LSLMarkerStimulator(Stimulator):
    """Send each stimulus as the string marker ``"stim/<code>"`` on an LSL marker stream.

    The outlet is created by :meth:`open`, which the online loop calls when the session starts
    (before the first decision); open it yourself (or use ``with``) to let consumers connect
    earlier. A marker pushed while no consumer is connected is lost (LSL keeps nothing for
    inlets that connect later): :attr:`has_consumers` says so before each marker, and the
    session summary counts the markers sent with and without a consumer.

    Parameters
    ----------
    name : str
        Marker stream name (consumers resolve it, e.g. a stimulation PC or LabRecorder).
    stype : str
        Stream type.
    wait_for_consumers_s : float
        :meth:`open` waits up to this long (s, finite, >= 0) for a first consumer, so that
        none of the first markers is lost; 0 (default): do not wait.
    linger_s : float
        :meth:`close` keeps the outlet up to this long (s, finite, >= 0) after the last marker
        so that it reaches the connected consumers (see :meth:`MarkerOutlet.close`).

    Attributes
    ----------
    timestamps : list of float
        LSL time (s) of every marker sent.
    n_sent_with_consumer : int
        Markers sent while a consumer was connected.
    """

    name = "lsl-marker"

    def __init__(self, name: str = "bci-stim", *, stype: str = "Markers",
                 wait_for_consumers_s: float = 0.0, linger_s: float = 1.0) -> None:
        self.stream_name = check_type(name, str, "name")
        self.stype = check_type(stype, str, "stype")
        self.wait_for_consumers_s = check_positive(wait_for_consumers_s, "wait_for_consumers_s",
                                                   unit="s", allow_zero=True)
        self.linger_s = check_positive(linger_s, "linger_s", unit="s", allow_zero=True)
        self._outlet: MarkerOutlet | None = None
        self._closed = False
        self.timestamps: list[float] = []
        self.n_sent_with_consumer = 0

    def open(self) -> None:
        """Create the marker outlet (idempotent); wait for a consumer if asked to."""
        if self._closed:
            raise RuntimeError(f"The LSL marker stimulator {self.stream_name!r} is closed; "
                               "create a new one.")
        if self._outlet is not None:
            return
        self._outlet = MarkerOutlet(self.stream_name, stype=self.stype)
        if self.wait_for_consumers_s > 0:
            logger.info("Waiting up to %g s for a consumer of the marker stream %r ...",
                        self.wait_for_consumers_s, self.stream_name)
            self._outlet.wait_for_consumers(self.wait_for_consumers_s)
        if not self._outlet.has_consumers:
            logger.warning("No consumer is connected to the marker stream %r yet; markers sent "
                           "before one connects are lost.", self.stream_name)

    @property
    def has_consumers(self) -> bool:
        """Whether a consumer is connected to the marker stream now (False before open)."""
        return self._outlet is not None and self._outlet.has_consumers

    def trigger(self, event: StimEvent) -> None:
        """Push ``"stim/<code>"`` now."""
        if self._outlet is None:
            raise RuntimeError(f"The LSL marker stimulator {self.stream_name!r} is "
                               f"{'closed' if self._closed else 'not open'}; call open() first "
                               "(the online loop does it when the session starts).")
        consumer = self._outlet.has_consumers
        self.timestamps.append(self._outlet.push(f"stim/{event.code}"))
        self.n_sent_with_consumer += consumer

    def close(self) -> None:
        """Withdraw the marker stream, after the last markers reached the consumers."""
        if self._outlet is not None:
            self._outlet.close(linger_s=self.linger_s)
            self._outlet = None
        self._closed = True
