"""The interface the online loop calls to stimulate; back-ends live in :mod:`bci.hw`."""

from __future__ import annotations

from .events import StimEvent


class Stimulator:
    """One small interface for every stimulation back-end.

    Subclasses implement :meth:`trigger` (send the stimulus now, return quickly) and may
    implement :meth:`close`. They are used as context managers.
    """

    name = "stimulator"

    def trigger(self, event: StimEvent) -> None:
        """Deliver ``event`` now (its ``code`` selects the trigger value)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the device (idempotent)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecordingStimulator(Stimulator):
    """Keep every triggered event in :attr:`events` (dry runs, tests); sends nothing."""

    name = "dry-run"

    def __init__(self) -> None:
        self.events: list[StimEvent] = []

    def trigger(self, event: StimEvent) -> None:
        self.events.append(event)
