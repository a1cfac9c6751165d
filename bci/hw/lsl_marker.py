"""The default stimulator: a marker on an LSL stream, read by the stimulation software."""

from __future__ import annotations

from ..realtime.events import StimEvent
from ..realtime.lsl import MarkerOutlet
from ..realtime.stimulation import Stimulator


class LSLMarkerStimulator(Stimulator):
    """Send each stimulus as the string marker ``"stim/<code>"`` on an LSL marker stream.

    Parameters
    ----------
    name : str
        Marker stream name (consumers resolve it, e.g. a stimulation PC or LabRecorder).
    stype : str
        Stream type.

    Attributes
    ----------
    timestamps : list of float
        LSL time (s) of every marker sent.
    """

    name = "lsl-marker"

    def __init__(self, name: str = "bci-stim", *, stype: str = "Markers") -> None:
        self.stream_name = name
        self._outlet: MarkerOutlet | None = MarkerOutlet(name, stype=stype)
        self.timestamps: list[float] = []

    def trigger(self, event: StimEvent) -> None:
        if self._outlet is None:
            raise RuntimeError(f"The LSL marker stimulator {self.stream_name!r} is closed.")
        self.timestamps.append(self._outlet.push(f"stim/{event.code}"))

    def close(self) -> None:
        if self._outlet is not None:
            self._outlet.close()
            self._outlet = None
