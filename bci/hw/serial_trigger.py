"""Serial / TTL triggers: one byte a stimulus on a serial port (USB-TTL trigger boxes)."""

from __future__ import annotations

import threading

from .._checks import check_positive, check_type, ensure_int
from ..realtime.events import StimEvent
from ..realtime.stimulation import Stimulator


class SerialTriggerStimulator(Stimulator):
    """Write the stimulus code as one byte to a serial port.

    Parameters
    ----------
    port : str
        Device (``/dev/ttyUSB0``, ``COM3``) or any pyserial URL (``loop://`` for tests,
        ``socket://host:port``).
    baudrate : int
        Line speed (baud, > 0).
    reset_after_s : float | None
        Write ``reset_code`` this long (s, finite, > 0) after each trigger (boxes that hold
        the last byte on their TTL lines need it back to 0); None: no reset.
    reset_code : int
        Byte written to reset (0-255).
    write_timeout_s : float
        A write blocked longer than this (s, finite, > 0) raises (a stuck device is a fault,
        not a hang).

    Notes
    -----
    Codes must fit a byte (0-255); a larger code raises ``ValueError``.
    """

    name = "serial"

    def __init__(self, port: str, *, baudrate: int = 115200, reset_after_s: float | None = None,
                 reset_code: int = 0, write_timeout_s: float = 0.1) -> None:
        check_type(port, str, "port")
        baudrate = ensure_int(baudrate, "baudrate", minimum=1, what="baud")
        if reset_after_s is not None:
            reset_after_s = check_positive(reset_after_s, "reset_after_s", unit="s")
        write_timeout_s = check_positive(write_timeout_s, "write_timeout_s", unit="s")
        reset_code = self._check_code(reset_code)
        try:
            import serial
        except ImportError as err:
            raise ImportError("SerialTriggerStimulator needs pyserial: "
                              "`pip install pyserial`.") from err
        try:
            self._port = serial.serial_for_url(port, baudrate=baudrate, timeout=0,
                                               write_timeout=write_timeout_s)
        except (serial.SerialException, ValueError) as err:
            raise RuntimeError(f"Cannot open serial port {port!r}: {err}. Check the device "
                               "name (e.g. /dev/ttyUSB0) and your permissions.") from err
        self.port = port
        self.reset_after_s = reset_after_s
        self.reset_code = reset_code
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self.n_sent = 0

    @staticmethod
    def _check_code(code: int) -> int:
        code = ensure_int(code, "code")
        if not 0 <= code <= 255:
            raise ValueError(f"Serial trigger codes are one byte (0-255), got {code}.")
        return code

    def _write(self, code: int) -> None:
        with self._lock:
            if self._port is None:
                return
            self._port.write(bytes([code]))
            self._port.flush()

    def trigger(self, event: StimEvent) -> None:
        """Write the event's code (one byte), then schedule the reset byte if asked."""
        if self._port is None:
            raise RuntimeError(f"The serial trigger on {self.port!r} is closed.")
        self._write(self._check_code(event.code))
        self.n_sent += 1
        if self.reset_after_s is not None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.reset_after_s, self._write, (self.reset_code,))
            self._timer.daemon = True
            self._timer.start()

    def close(self) -> None:
        """Cancel a pending reset and close the port (idempotent)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self._lock:
            if self._port is not None:
                self._port.close()
                self._port = None
