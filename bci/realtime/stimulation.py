"""The interface the online loop calls to stimulate; back-ends live in :mod:`bci.hw`."""

from __future__ import annotations

from abc import ABC, abstractmethod

from .events import StimEvent


class Stimulator(ABC):
    """One small interface for every stimulation back-end (an abstract base class).

    Subclasses must implement :meth:`trigger` (send the stimulus now, return quickly); they
    may implement :meth:`open` (called by :meth:`bci.realtime.loop.OnlineLoop.run` when the
    session starts, before the first decision: create outlets, open ports), :meth:`close`
    and :attr:`has_consumers`. They are used as context managers (``with`` opens and closes).

    Attributes
    ----------
    name : str
        Short name of the back-end, reported in session summaries.
    """

    name = "stimulator"

    def open(self) -> None:  # noqa: B027 (optional hook: most devices open in __init__)
        """Get ready to deliver (create outlets...); idempotent. Default: nothing to do."""

    @abstractmethod
    def trigger(self, event: StimEvent) -> None:
        """Deliver ``event`` now (its ``code`` selects the trigger value)."""

    @property
    def has_consumers(self) -> bool | None:
        """Whether a receiver is known to be connected now; None when it cannot be known.

        Network back-ends (LSL markers) know whether a consumer is connected, so a stimulus
        sent with none is known to be lost; a serial line or a sound card cannot tell (None).
        """
        return None

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release the device (idempotent). Default: nothing to release."""

    def __enter__(self) -> Stimulator:
        """Open the stimulator."""
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        """Close the stimulator."""
        self.close()


class RecordingStimulator(Stimulator):
    """Keep every triggered event in :attr:`events` (dry runs, tests); sends nothing."""

    name = "dry-run"

    def __init__(self) -> None:
        self.events: list[StimEvent] = []

    def trigger(self, event: StimEvent) -> None:
        """Keep ``event`` in :attr:`events`."""
        self.events.append(event)
