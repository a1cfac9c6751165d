"""Hard safety limits on stimulation that no decoder or policy can override."""

from __future__ import annotations

import threading
from collections import Counter, deque
from pathlib import Path

#: Reasons a stimulus can be suppressed, as counted in :attr:`SafetyGate.suppressed`.
SUPPRESS_REASONS = ("manual_stop", "min_interval", "max_per_minute", "max_per_session")


class SafetyGate:
    """Allow or refuse each stimulus against fixed limits, and count the refusals.

    Parameters
    ----------
    min_interval_s : float
        Minimum time (s) between two stimuli.
    max_per_minute : int | None
        At most this many stimuli in any 60-s sliding window.
    max_per_session : int | None
        At most this many stimuli in the whole session.
    stop_file : str | Path | None
        Manual stop from outside: once this file exists, every stimulus is refused (e.g.
        ``touch SESSION_DIR/STOP`` from another terminal).

    Notes
    -----
    Times are on the source clock (s). :meth:`stop` (manual stop) is thread-safe and final.
    """

    def __init__(self, *, min_interval_s: float = 1.0, max_per_minute: int | None = 20,
                 max_per_session: int | None = 500, stop_file: str | Path | None = None) -> None:
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0 (seconds), got {min_interval_s}.")
        for value, label in ((max_per_minute, "max_per_minute"),
                             (max_per_session, "max_per_session")):
            if value is not None and value < 0:
                raise ValueError(f"{label} must be >= 0 or None, got {value}.")
        self.min_interval_s = float(min_interval_s)
        self.max_per_minute = max_per_minute
        self.max_per_session = max_per_session
        self.stop_file = Path(stop_file) if stop_file is not None else None
        self._stopped = threading.Event()
        self.stop_reason = ""
        self.fired: list[float] = []
        self._recent: deque[float] = deque()
        self.suppressed: Counter[str] = Counter()

    def stop(self, reason: str = "manual stop") -> None:
        """Refuse every later stimulus (final)."""
        self.stop_reason = reason
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        """Whether the manual stop was pressed (or the stop file appeared)."""
        if not self._stopped.is_set() and self.stop_file is not None and self.stop_file.exists():
            self.stop(f"stop file {self.stop_file}")
        return self._stopped.is_set()

    def check(self, t: float) -> str | None:
        """The reason stimulating at time ``t`` (s) is refused, or None if it is allowed.

        Does not record anything; see :meth:`allow`.
        """
        if self.stopped:
            return "manual_stop"
        if self.fired and t - self.fired[-1] < self.min_interval_s:
            return "min_interval"
        if self.max_per_session is not None and len(self.fired) >= self.max_per_session:
            return "max_per_session"
        while self._recent and t - self._recent[0] >= 60.0:
            self._recent.popleft()
        if self.max_per_minute is not None and len(self._recent) >= self.max_per_minute:
            return "max_per_minute"
        return None

    def allow(self, t: float) -> str | None:
        """Check a stimulus at ``t`` and count it as fired (None) or suppressed (the reason)."""
        reason = self.check(t)
        if reason is None:
            self.fired.append(t)
            self._recent.append(t)
        else:
            self.suppressed[reason] += 1
        return reason

    @property
    def n_suppressed(self) -> int:
        """Stimuli refused so far."""
        return sum(self.suppressed.values())
