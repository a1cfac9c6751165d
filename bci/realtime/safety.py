"""Hard safety limits on stimulation that no decoder or policy can override."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import dataclass
from pathlib import Path

from .._checks import check_positive, check_real, check_type, ensure_int

#: Reasons a stimulus can be suppressed, as counted in :attr:`SafetyGate.suppressed`.
SUPPRESS_REASONS = ("manual_stop", "min_interval", "max_per_minute", "max_per_session")


@dataclass(frozen=True)
class SafetyVerdict:
    """The gate's answer about one stimulus: allowed, or refused with a reason.

    Truthy when the stimulus is allowed, so ``if gate.allow(t): fire()`` reads as it runs.

    Attributes
    ----------
    allowed : bool
        Whether the stimulus may be delivered.
    reason : str | None
        Why it is refused (one of :data:`SUPPRESS_REASONS`); None when allowed.
    """

    allowed: bool
    reason: str | None = None

    def __bool__(self) -> bool:
        """Whether the stimulus is allowed."""
        return self.allowed


_ALLOWED = SafetyVerdict(True)


def _check_count(value, name: str) -> int | None:
    """Check a limit on a number of stimuli: an int >= 0, or None for no limit."""
    if value is None:
        return None
    return ensure_int(value, name, minimum=0, what="stimuli; None for no limit")


class SafetyGate:
    """Allow or refuse each stimulus against fixed limits, and count the refusals.

    Parameters
    ----------
    min_interval_s : float
        Minimum time (s) between two stimuli: a finite number >= 0 (0: no minimum).
    max_per_minute : int | None
        At most this many stimuli in any 60-s sliding window (an int >= 0; None: no limit).
    max_per_session : int | None
        At most this many stimuli in the whole session (an int >= 0; None: no limit).
    stop_file : str | Path | None
        Manual stop from outside: once this file exists, every stimulus is refused (e.g.
        ``touch SESSION_DIR/STOP`` from another terminal).

    Notes
    -----
    Times are on the source clock (s). :meth:`stop` (manual stop) is thread-safe and final.
    "No limit" is said with None, never with NaN or inf (refused: a NaN limit would silently
    disable the check it sets).

    Examples
    --------
    >>> gate = SafetyGate(min_interval_s=1.0, max_per_minute=None, max_per_session=2)
    >>> bool(gate.allow(0.0)), gate.allow(0.5).reason, bool(gate.allow(2.0))
    (True, 'min_interval', True)
    >>> gate.allow(10.0)
    SafetyVerdict(allowed=False, reason='max_per_session')
    """

    def __init__(self, *, min_interval_s: float = 1.0, max_per_minute: int | None = 20,
                 max_per_session: int | None = 500, stop_file: str | Path | None = None) -> None:
        self.min_interval_s = check_positive(min_interval_s, "min_interval_s", unit="s",
                                             allow_zero=True)
        self.max_per_minute = _check_count(max_per_minute, "max_per_minute")
        self.max_per_session = _check_count(max_per_session, "max_per_session")
        check_type(stop_file, (str, Path, type(None)), "stop_file")
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

    def check(self, t: float) -> SafetyVerdict:
        """Whether a stimulus at time ``t`` (s, source clock) would be allowed, and if not why.

        Records nothing; see :meth:`allow`.

        Raises
        ------
        ValueError
            ``t`` is NaN or infinite (a NaN time would pass every interval check).
        """
        t = check_real(t, "t", unit="s")
        if self.stopped:
            return SafetyVerdict(False, "manual_stop")
        if self.fired and t - self.fired[-1] < self.min_interval_s:
            return SafetyVerdict(False, "min_interval")
        if self.max_per_session is not None and len(self.fired) >= self.max_per_session:
            return SafetyVerdict(False, "max_per_session")
        while self._recent and t - self._recent[0] >= 60.0:
            self._recent.popleft()
        if self.max_per_minute is not None and len(self._recent) >= self.max_per_minute:
            return SafetyVerdict(False, "max_per_minute")
        return _ALLOWED

    def allow(self, t: float) -> SafetyVerdict:
        """Judge a stimulus at ``t`` (s) and record it as fired (allowed) or suppressed.

        Returns
        -------
        verdict : SafetyVerdict
            Truthy when the stimulus may be delivered (it then counts against the limits);
            otherwise ``verdict.reason`` says which limit refused it.
        """
        verdict = self.check(t)
        if verdict:
            self.fired.append(float(t))
            self._recent.append(float(t))
        else:
            self.suppressed[verdict.reason] += 1
        return verdict

    @property
    def n_suppressed(self) -> int:
        """Stimuli refused so far."""
        return sum(self.suppressed.values())
