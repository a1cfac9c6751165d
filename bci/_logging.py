"""Package logger and :func:`set_log_level` (the package itself adds only a NullHandler)."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("bci")
logger.addHandler(logging.NullHandler())

class _StderrHandler(logging.StreamHandler):
    """A stream handler writing to whatever ``sys.stderr`` is when a record is emitted.

    A plain ``StreamHandler()`` keeps the ``sys.stderr`` of the moment it was made: once that
    stream is replaced (pytest's capture, a redirected CLI) or closed, records go nowhere or
    raise "--- Logging error ---".
    """

    @property
    def stream(self):  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def set_log_level(level: int | str = "INFO") -> None:
    """Set the level of the ``bci`` logger and make its messages visible.

    Parameters
    ----------
    level : int | str
        A :mod:`logging` level or one of ``"DEBUG"``, ``"INFO"``, ``"WARNING"``,
        ``"ERROR"``, ``"CRITICAL"`` (case-insensitive).
    """
    if isinstance(level, str):
        key = level.upper()
        if key not in _LEVELS:
            raise ValueError(f"level must be one of {sorted(_LEVELS)}, got {level!r}.")
        level = _LEVELS[key]
    logger.setLevel(level)
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.NullHandler)
               for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s [%(name)s] %(message)s"))
        logger.addHandler(handler)
