"""Amplifiers through BrainFlow: a board as a :class:`~bci.realtime.sources.Source`, or on LSL.

`BrainFlow <https://brainflow.org>`_ (``pip install 'bci[brainflow]'``) drives some sixty
boards (OpenBCI Cyton/Ganglion, Muse, Unicorn, BrainBit, ANT Neuro, ...) behind one API;
``bci`` writes no driver. Two ways in:

- :class:`BrainFlowSource`: the loop reads a board directly (``bci stream --board NAME``);
- :class:`BoardPublisher` / :func:`acquire`: the board is published on LSL (``bci acquire
  --board NAME --name STREAM``) for any LSL consumer (``bci stream --source STREAM``,
  LabRecorder...).

What is published, and how (the choices of this module):

- **EEG**: the board's EEG rows (BrainFlow's ``eeg_channels`` of the default preset), named
  with BrainFlow's electrode names for the board (``eeg_names``; ``EEG1``... when BrainFlow has
  none), in **volts** (BrainFlow gives microvolts: multiplied by 1e-6), LSL type ``EEG``, unit
  ``volts``, float32, at the board's nominal rate.
- **Accelerometer** (boards whose default preset has one, e.g. Cyton, the synthetic board): a
  separate LSL stream ``<STREAM>-accel`` (type ``Accelerometer``, channels ``accel_x``,
  ``accel_y``, ``accel_z``, values as BrainFlow gives them, in g), same timestamps as the EEG.
  A separate stream, so that a consumer of the EEG gets EEG only (decoders expect it).
- **Markers** (BrainFlow's marker channel, written by ``BoardShim.insert_marker``): a separate
  LSL marker stream ``<STREAM>-markers`` (type ``Markers``), one string per non-zero value
  (``"3"``, ``"2.5"``), stamped with the time of its sample.
- **Timestamps**: BrainFlow stamps each sample on the host's wall clock (Unix time, s, taken
  when the packet is read). They are moved onto the LSL clock
  (:func:`~bci.realtime.lsl.local_clock`, the clock of every other ``bci`` stream and marker)
  by the offset between the
  two clocks, measured when the session starts (the tightest of 8 bracketed reads: within a few
  microseconds) and again after each reconnection, then dejittered by a
  :class:`~bci.realtime.sources.Dejitterer` (a packet's samples arrive together; steps, i.e.
  lost samples, longer than ``max_jitter_s`` = 50 ms stay sharp). Each LSL sample is pushed
  with its own timestamp. A step of the wall clock during a session (NTP) moves later
  timestamps by the step: the stream reports it as a ``clock_jump`` (see
  :class:`~bci.realtime.stream.Stream`).

A board that stops delivering (a cable pulled, a dongle out of range, a board switched off)
raises :class:`~bci.realtime.sources.SourceLostError` after ``no_data_timeout_s`` without a
sample; :meth:`BrainFlowSource.reconnect` releases the session and prepares a new one. The
:class:`~bci.realtime.stream.Stream` reports the stall, the loss and the reconnection (or
stops cleanly, keeping everything received, when the board does not come back).

BrainFlow 5.19-5.23 look for their library with ``importlib.resources.files`` on a module,
which Python accepts from 3.12 on only; on 3.10 and 3.11 they fall back to ``pkg_resources``,
gone from setuptools >= 81. :func:`import_board_shim` then points that lookup at the
``brainflow`` package (brainflow-dev/brainflow#789), changing nothing else.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._checks import check_bool, check_positive, check_type, did_you_mean, ensure_int
from .._logging import logger as _root_logger
from ..realtime.sources import Dejitterer, Source, SourceInfo, SourceLostError

logger = _root_logger.getChild("hw.brainflow")

PIP_LINE = "pip install 'bci[brainflow]'"

#: BrainFlow reports EEG in microvolts; bci works in volts.
UV_TO_V = 1e-6

#: BrainFlowInputParams fields that are whole numbers (the others are text).
_INT_PARAMS = ("ip_port", "ip_port_aux", "ip_port_anc", "ip_protocol", "timeout",
               "master_board")


def import_board_shim():
    """Import :mod:`brainflow.board_shim` (``ImportError`` with the pip line when missing).

    On Python < 3.12 it also repairs BrainFlow's library lookup (see the module notes).
    """
    try:
        board_shim = importlib.import_module("brainflow.board_shim")
    except ImportError as err:
        raise ImportError(f"Reading a board needs BrainFlow: {PIP_LINE}.") from err
    if sys.version_info < (3, 12) and not getattr(board_shim, "_bci_files_fixed", False):
        from importlib.resources import files

        try:
            files(board_shim.__name__)
        except TypeError:  # a module, not a package: accepted from Python 3.12 on only
            def package_files(anchor):
                return files(anchor.rpartition(".")[0] if anchor == board_shim.__name__
                             else anchor)

            board_shim.files = package_files
        board_shim._bci_files_fixed = True
    return board_shim


def _board_ids() -> dict[str, int]:
    """Board names bci accepts (BrainFlow's ``BoardIds`` without ``_BOARD``, lower case)."""
    ids = import_board_shim().BoardIds
    names = {}
    for member in ids:
        if member.name == "NO_BOARD":
            continue
        name = member.name.lower()
        names[name[:-len("_board")] if name.endswith("_board") else name] = int(member.value)
    return names


def board_names() -> list[str]:
    """Names of the boards BrainFlow supports (``synthetic``, ``cyton``, ``muse_2``...)."""
    return sorted(_board_ids())


def resolve_board(board: str | int) -> tuple[str, int]:
    """Return ``(name, BrainFlow board id)`` of a board given by name (or BrainFlow id).

    Names are BrainFlow's ``BoardIds`` in lower case without ``_BOARD`` (``cyton_daisy``);
    ``-`` may replace ``_`` and the full enum name is accepted too.

    Raises
    ------
    ValueError
        Unknown board: with a "did you mean" and the list of valid names.
    TypeError
        Neither a string nor an int.
    """
    ids = _board_ids()
    if isinstance(board, (int, np.integer)) and not isinstance(board, bool):
        for name, value in ids.items():
            if value == int(board):
                return name, value
        raise ValueError(f"Unknown BrainFlow board id {board}; valid names: "
                         f"{', '.join(sorted(ids))}.")
    check_type(board, (str, int), "board")
    key = board.strip().lower().replace("-", "_")
    key = key[:-len("_board")] if key.endswith("_board") else key
    if key not in ids:
        raise ValueError(f"Unknown board {board!r}.{did_you_mean(key, ids)} Valid boards "
                         f"(BrainFlow's): {', '.join(sorted(ids))}.")
    return key, ids[key]


def _serial_ports() -> list[str]:
    try:
        from serial.tools import list_ports
    except ImportError:  # pragma: no cover (pyserial is a dependency)
        return []
    return sorted(p.device for p in list_ports.comports())


def check_serial_port(port: str | None) -> str | None:
    """Check that a serial port given as a device path exists (``COM3`` is not checked).

    Raises
    ------
    FileNotFoundError
        The device file does not exist; the message lists the ports present.
    """
    if port is None or port == "":
        return None
    check_type(port, str, "serial_port")
    if (port.startswith("/") or os.sep in port) and not Path(port).exists():
        present = _serial_ports()
        raise FileNotFoundError(
            f"The serial port {port} does not exist (ports present: "
            f"{', '.join(present) if present else 'none'}). Plug in the board's dongle or "
            "cable, then give its port with --serial-port (e.g. /dev/ttyUSB0 on Linux, COM3 "
            "on Windows)."
        )
    return port


def make_input_params(serial_port: str | None = None,
                      params: Mapping[str, Any] | None = None) -> Any:
    """Build BrainFlow's ``BrainFlowInputParams`` from a serial port and ``KEY=VALUE`` params.

    Keys are the fields of ``BrainFlowInputParams`` (``mac_address``, ``ip_address``,
    ``ip_port``, ``serial_number``, ``other_info``, ``timeout``, ``file``, ``master_board``
    (a board name or id)...); unknown keys are refused with the list.
    """
    board_shim = import_board_shim()
    out = board_shim.BrainFlowInputParams()
    fields = sorted(vars(out))
    check_type(params, (Mapping, type(None)), "params")
    params = dict(params or {})
    if serial_port is not None:
        if "serial_port" in params:
            raise ValueError("The serial port is given twice (serial_port and a board "
                             "parameter serial_port=...); give it once.")
        params["serial_port"] = serial_port
    for key, value in params.items():
        if key not in fields:
            raise ValueError(f"Unknown board parameter {key!r}.{did_you_mean(key, fields)} "
                             f"BrainFlow's parameters: {', '.join(fields)}.")
        if key == "serial_port":
            value = check_serial_port(str(value))
        elif key == "master_board":
            value = resolve_board(value)[1]
        elif key in _INT_PARAMS:
            value = ensure_int(value, f"board parameter {key}")
        else:
            value = str(value)
        setattr(out, key, value)
    return out


def explain_error(err: BaseException, board: str, input_params: Any = None) -> str:
    """Explain a BrainFlow error: what failed, on which board, how to fix it."""
    code = getattr(err, "exit_code", None)
    codes = import_board_shim().BrainFlowExitCodes
    port = getattr(input_params, "serial_port", "") or ""
    hints = {
        codes.UNABLE_TO_OPEN_PORT_ERROR: (
            f"could not open the serial port {port or '(none given)'}: check that the "
            "board's dongle or cable is plugged in, that the port is the right one "
            f"(present: {', '.join(_serial_ports()) or 'none'}) and that you may use it "
            "(Linux: the dialout group)"),
        codes.PORT_ALREADY_OPEN_ERROR: (
            f"the port {port} is already open: close the other program using the board "
            "(OpenBCI GUI, another bci acquire)"),
        codes.SER_PORT_ERROR: f"the serial port {port} failed: unplug and replug the board",
        codes.ANOTHER_BOARD_IS_CREATED_ERROR: (
            "a session with this board is already open in this process: close it first"),
        codes.INVALID_ARGUMENTS_ERROR: (
            "the board's parameters are wrong or missing (serial boards need --serial-port, "
            "Bluetooth/WiFi boards a --board-param such as mac_address=, ip_address= or "
            "serial_number=; see BrainFlow's board documentation)"),
        codes.UNSUPPORTED_BOARD_ERROR: "this BrainFlow build does not support the board",
        codes.BOARD_WRITE_ERROR: "a command could not be sent to the board: is it on?",
        codes.INCOMMING_MSG_ERROR: "the board sent an unexpected message: power-cycle it",
        codes.INITIAL_MSG_ERROR: "the board did not answer: is it switched on and in range?",
        codes.SYNC_TIMEOUT_ERROR: ("the board did not answer in time: is it switched on, in "
                                   "range and charged?"),
        codes.BOARD_NOT_READY_ERROR: "the board session is not prepared (closed?)",
        codes.BOARD_NOT_CREATED_ERROR: "the board session is not open (released?)",
        codes.STREAM_THREAD_ERROR: "BrainFlow's acquisition thread failed",
    }
    hint = hints.get(code, "see BrainFlow's documentation for this error")
    return f"BrainFlow board {board!r}: {hint} (BrainFlow: {err})."


@dataclass(frozen=True)
class BoardChunk:
    """What one read of a board returned.

    Attributes
    ----------
    eeg : ndarray, shape (n_eeg, n_samples), float64
        EEG in volts.
    timestamps : ndarray, shape (n_samples,), float64
        LSL-clock times (s), dejittered unless the source was made with ``dejitter=False``.
    accel : ndarray, shape (3, n_samples) | None
        Accelerometer (g), None when the board's default preset has none.
    markers : ndarray, shape (n_samples,) | None
        BrainFlow's marker channel (0: no marker), None when the board has none.
    """

    eeg: np.ndarray
    timestamps: np.ndarray
    accel: np.ndarray | None
    markers: np.ndarray | None

    @property
    def n_samples(self) -> int:
        """Samples in the chunk."""
        return self.timestamps.size


def _clock_offset(wall, lsl, n: int = 8) -> float:
    """LSL clock minus wall clock (s), from the tightest of ``n`` bracketed reads."""
    best = (np.inf, 0.0)
    for _ in range(n):
        t1 = lsl()
        w = wall()
        t2 = lsl()
        best = min(best, (t2 - t1, (t1 + t2) / 2.0 - w))
    return best[1]


class BrainFlowSource(Source):
    """A BrainFlow board as a :class:`~bci.realtime.sources.Source` (EEG in volts, LSL clock).

    Parameters
    ----------
    board : str | int
        Board name (``"synthetic"``, ``"cyton"``, ``"cyton_daisy"``, ``"muse_2"``...; see
        :func:`board_names`) or BrainFlow board id.
    serial_port : str | None
        Serial port of serial boards (``/dev/ttyUSB0``, ``COM3``); a device path that does
        not exist is refused (``FileNotFoundError``) before BrainFlow is called.
    params : dict | None
        Other ``BrainFlowInputParams`` fields (``mac_address``, ``ip_address``...; see
        :func:`make_input_params`).
    name : str | None
        Stream name (``info.name``); ``brainflow-<board>`` when None.
    dejitter : bool
        Smooth the timestamps' jitter with a :class:`~bci.realtime.sources.Dejitterer`.
    max_jitter_s : float
        With ``dejitter``: largest departure (s) taken for jitter; larger ones are steps
        (lost samples, clock jumps). 50 ms by default, not LSL's 10 ms: BrainFlow stamps a
        packet when the host reads it, late by tens of ms over Bluetooth or on a busy
        machine (the synthetic board's stamps were 13 ms late on 2 loaded cores), and a late
        bunch taken for a step would be reported as a clock jump. Steps shorter than this
        (12 samples at 250 Hz) are smoothed over instead of reported.
    no_data_timeout_s : float
        A board that delivered nothing for this long (s) is lost: :meth:`pull` raises
        :class:`~bci.realtime.sources.SourceLostError` (then :meth:`reconnect`).
    buffer_s : float
        BrainFlow's ring buffer (s of samples) between pulls; older samples are lost.
    warmup_s : float
        With ``dejitter``: after the board (re)starts, the first read waits until this much
        (s) of samples is there, so that the dejitterer's first line rests on many samples.
        A line started on one sample moves when the next ones come, and that move, up to
        ``max_jitter_s``, came out as a false one-sample gap (1 time in 8 after a
        reconnection on 2 loaded cores). The first samples are delayed, never lost.
    board_shim : object | None
        An already built (unprepared) ``BoardShim``, or an object with its methods, instead
        of one made from ``board`` and the parameters (tests wrap the synthetic board so).

    Notes
    -----
    See the module notes for the units, channel names and the mapping of BrainFlow's
    timestamps to the LSL clock. :meth:`now` is the LSL clock. Use it as a context manager,
    or call :meth:`close` (which releases the board).
    """

    def __init__(self, board: str | int = "synthetic", *, serial_port: str | None = None,
                 params: Mapping[str, Any] | None = None, name: str | None = None,
                 dejitter: bool = True, max_jitter_s: float = 0.05,
                 no_data_timeout_s: float = 3.0, buffer_s: float = 60.0,
                 warmup_s: float = 0.2, board_shim: Any = None) -> None:
        self.board_name, self.board_id = resolve_board(board)
        self.dejitter = check_bool(dejitter, "dejitter")
        self.max_jitter_s = check_positive(max_jitter_s, "max_jitter_s", unit="s")
        self.no_data_timeout_s = check_positive(no_data_timeout_s, "no_data_timeout_s",
                                                unit="s")
        self.buffer_s = check_positive(buffer_s, "buffer_s", unit="s")
        self.warmup_s = check_positive(warmup_s, "warmup_s", unit="s", allow_zero=True)
        check_type(name, (str, type(None)), "name")
        self._bf = import_board_shim()
        self.input_params = make_input_params(serial_port, params)
        descr = self._bf.BoardShim.get_board_descr(self.board_id)
        self.sfreq = float(descr["sampling_rate"])
        self._eeg_rows = list(descr.get("eeg_channels", []))
        if not self._eeg_rows:
            raise ValueError(f"BrainFlow board {self.board_name!r} has no EEG channels in "
                             "its default preset; bci reads EEG boards.")
        self._ts_row = int(descr["timestamp_channel"])
        self._accel_rows = list(descr.get("accel_channels", []))[:3]
        self._marker_row = descr.get("marker_channel")
        names = [n.strip() for n in str(descr.get("eeg_names", "")).split(",") if n.strip()]
        if len(names) != len(self._eeg_rows):
            names = [f"EEG{i + 1}" for i in range(len(self._eeg_rows))]
        source_id = "brainflow-" + self.board_name + (
            f"-{self.input_params.serial_port}" if self.input_params.serial_port else "")
        self._info = SourceInfo(name=name or f"brainflow-{self.board_name}", ch_names=names,
                                sfreq=self.sfreq, source_id=source_id)
        from ..realtime.lsl import local_clock

        self._lsl_clock = local_clock
        self._wall_clock = time.time
        self._quiet_board_logger()
        self._board = board_shim if board_shim is not None else \
            self._bf.BoardShim(self.board_id, self.input_params)
        self._open = False
        self.n_reconnects = 0
        self._start()

    # --------------------------------------------------------------- session
    def _quiet_board_logger(self) -> None:
        """BrainFlow logs to stderr itself: only when bci logs at DEBUG (errors are raised)."""
        if logger.isEnabledFor(10):
            self._bf.BoardShim.enable_board_logger()
        else:
            self._bf.BoardShim.disable_board_logger()

    def _call(self, what: str, fn, *args):
        try:
            return fn(*args)
        except self._bf.BrainFlowError as err:
            raise RuntimeError(f"{what} failed: "
                               f"{explain_error(err, self.board_name, self.input_params)}"
                               ) from err

    def _start(self) -> None:
        """Prepare the session, start streaming, measure the clock offset."""
        self._call("Opening the board", self._board.prepare_session)
        try:
            n_buffer = max(int(np.ceil(self.buffer_s * self.sfreq)), 1)
            self._call("Starting the stream", self._board.start_stream, n_buffer)
        except RuntimeError:
            self._release()
            raise
        self._open = True
        self.offset_s = _clock_offset(self._wall_clock, self._lsl_clock)
        self._dejitterer = Dejitterer(self.sfreq, max_jitter_s=self.max_jitter_s) \
            if self.dejitter else None
        self._last_data = self._lsl_clock()
        self._n_buffered = 0
        # the first samples wait until warmup_s of them are there (see the class notes)
        self._warmup_n = int(np.ceil(self.warmup_s * self.sfreq)) if self.dejitter else 0
        logger.info("BrainFlow board %r streaming: %d EEG channels at %g Hz (LSL - wall clock "
                    "offset %.6f s).", self.board_name, self.info.n_chans, self.sfreq,
                    self.offset_s)

    def _release(self) -> None:
        """Stop and release the session, whatever state it is in (errors only logged)."""
        for step in ("stop_stream", "release_session"):
            try:
                getattr(self._board, step)()
            except self._bf.BrainFlowError as err:  # not streaming / not prepared: fine
                logger.debug("BrainFlow %s: %s", step, err)
        self._open = False

    @property
    def info(self) -> SourceInfo:
        """Name, EEG channel names, nominal rate and source id of the board."""
        return self._info

    @property
    def board(self) -> Any:
        """The BrainFlow ``BoardShim`` (e.g. to ``insert_marker``)."""
        return self._board

    @property
    def accel_names(self) -> list[str]:
        """Accelerometer channel names, empty when the board has none."""
        return ["accel_x", "accel_y", "accel_z"][:len(self._accel_rows)]

    @property
    def has_markers(self) -> bool:
        """Whether the board has a marker channel."""
        return self._marker_row is not None

    def now(self) -> float:
        """Return the LSL clock (s), the time base of this source's timestamps."""
        return self._lsl_clock()

    # --------------------------------------------------------------- reading
    def read(self, max_samples: int | None = None) -> BoardChunk:
        """Return everything the board delivered since the last read (never waits).

        Parameters
        ----------
        max_samples : int | None
            Return at most this many samples (the rest stay in BrainFlow's buffer).

        Returns
        -------
        chunk : BoardChunk
            EEG (volts), LSL-clock timestamps, accelerometer and markers of the samples.

        Raises
        ------
        SourceLostError
            The board delivered nothing for ``no_data_timeout_s``, or BrainFlow failed
            (the message says why); :meth:`reconnect` may bring it back.
        RuntimeError
            The source is closed.
        """
        if self._board is None:
            raise RuntimeError("This BrainFlowSource is closed; create a new one.")
        if not self._open:
            raise SourceLostError(f"BrainFlow board {self.board_name!r} is not streaming "
                                  "(lost before); reconnect.")
        try:
            count = int(self._board.get_board_data_count())
            now = self._lsl_clock()
            if count > self._n_buffered:  # the board delivered since the last read
                self._last_data = now
            self._n_buffered = count
            raw = None
            if count and count >= self._warmup_n:
                self._warmup_n = 0
                n = count if max_samples is None else min(count, int(max_samples))
                raw = self._board.get_board_data(n)
                self._n_buffered = count - raw.shape[1]
        except self._bf.BrainFlowError as err:
            raise SourceLostError(explain_error(err, self.board_name, self.input_params)
                                  ) from err
        if raw is None or raw.shape[1] == 0:
            quiet = now - self._last_data
            if quiet > self.no_data_timeout_s:
                raise SourceLostError(
                    f"BrainFlow board {self.board_name!r} delivered no sample for {quiet:.1f} s "
                    f"(no_data_timeout_s={self.no_data_timeout_s:g}): unplugged, out of range "
                    "or switched off?")
            return self._empty()
        ts = raw[self._ts_row].astype(np.float64) + self.offset_s
        if self._dejitterer is not None:
            ts = self._dejitterer(ts)
        return BoardChunk(
            eeg=raw[self._eeg_rows].astype(np.float64) * UV_TO_V,
            timestamps=ts,
            accel=raw[self._accel_rows].astype(np.float64) if self._accel_rows else None,
            markers=raw[self._marker_row].astype(np.float64) if self.has_markers else None)

    def _empty(self) -> BoardChunk:
        return BoardChunk(np.empty((self.info.n_chans, 0)), np.empty(0),
                          np.empty((len(self._accel_rows), 0)) if self._accel_rows else None,
                          np.empty(0) if self.has_markers else None)

    def pull(self, max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return the EEG samples available now (volts) and their LSL-clock timestamps (s).

        Returns
        -------
        data : ndarray, shape (n_chans, n_samples), float64
        timestamps : ndarray, shape (n_samples,), float64
        """
        chunk = self.read(max_samples)
        return chunk.eeg, chunk.timestamps

    def reconnect(self) -> SourceInfo:
        """Release the board's session and prepare a new one (the board must be back).

        Raises
        ------
        SourceLostError
            The board cannot be opened yet (BrainFlow's reason in the message).
        """
        if self._board is None:
            raise RuntimeError("This BrainFlowSource is closed; create a new one.")
        self._release()
        try:
            self._start()
        except RuntimeError as err:
            raise SourceLostError(str(err)) from err
        self.n_reconnects += 1
        return self.info

    def close(self) -> None:
        """Stop streaming and release the board (idempotent)."""
        if self._board is not None:
            self._release()
            self._board = None


class BoardPublisher:
    """Publish a board on LSL in a background thread: EEG, accelerometer and markers.

    Parameters
    ----------
    source : BrainFlowSource
        The open board (closed by :meth:`stop`).
    name : str
        LSL name of the EEG stream; the accelerometer is ``<name>-accel``, the markers
        ``<name>-markers``.
    poll_s : float
        Period (s) of the reads of the board.
    reconnect_s : float
        After the board is lost, keep trying to reconnect for this long (s); then stop with
        an error (0: stop at once).
    wait_for_consumers_s : float
        Wait up to this long (s) for a first consumer of the EEG stream before publishing;
        the board's samples wait in BrainFlow's buffer meanwhile, so a consumer that
        connects in time gets every sample from the first (0: publish at once; LSL drops
        samples pushed while no consumer is connected).

    Attributes
    ----------
    n_pushed : int
        EEG samples pushed.
    n_markers : int
        Markers pushed.
    n_reconnects : int
        Times the board came back after it was lost.
    """

    def __init__(self, source: BrainFlowSource, name: str, *, poll_s: float = 0.01,
                 reconnect_s: float = 10.0, wait_for_consumers_s: float = 0.0) -> None:
        check_type(source, BrainFlowSource, "source")
        check_type(name, str, "name")
        self.source = source
        self.name = name
        self.poll_s = check_positive(poll_s, "poll_s", unit="s")
        self.reconnect_s = check_positive(reconnect_s, "reconnect_s", unit="s",
                                          allow_zero=True)
        self.wait_for_consumers_s = check_positive(wait_for_consumers_s,
                                                   "wait_for_consumers_s", unit="s",
                                                   allow_zero=True)
        self.n_pushed = 0
        self.n_markers = 0
        self.n_reconnects = 0
        self._outlets: dict[str, Any] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        #: set when publishing begins (after ``wait_for_consumers_s``)
        self.publishing = threading.Event()

    def start(self) -> BoardPublisher:
        """Create the outlets and start publishing; returns self."""
        from ..realtime.lsl import MarkerOutlet, SignalOutlet

        if self._thread is not None:
            raise RuntimeError("The publisher is already running.")
        info = self.source.info
        self._outlets["eeg"] = SignalOutlet(self.name, info.ch_names, info.sfreq, stype="EEG",
                                            source_id=info.source_id, unit="volts")
        if self.source.accel_names:
            self._outlets["accel"] = SignalOutlet(
                f"{self.name}-accel", self.source.accel_names, info.sfreq,
                stype="Accelerometer", source_id=f"{info.source_id}-accel", unit="g")
        if self.source.has_markers:
            self._outlets["markers"] = MarkerOutlet(f"{self.name}-markers",
                                                    source_id=f"{info.source_id}-markers")
        self._stop.clear()
        self._thread = threading.Thread(target=self._work, name=f"bci-acquire-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    @property
    def stream_names(self) -> list[str]:
        """LSL names of the streams published."""
        return [{"eeg": self.name, "accel": f"{self.name}-accel",
                 "markers": f"{self.name}-markers"}[k] for k in self._outlets]

    def _push(self, chunk: BoardChunk) -> None:
        ts = chunk.timestamps.tolist()  # one LSL timestamp per sample
        self._outlets["eeg"].push_rows(np.ascontiguousarray(chunk.eeg.T, dtype=np.float32),
                                       timestamp=ts)
        if "accel" in self._outlets:
            self._outlets["accel"].push_rows(
                np.ascontiguousarray(chunk.accel.T, dtype=np.float32), timestamp=ts)
        self.n_pushed += chunk.n_samples
        if "markers" in self._outlets:
            for k in np.flatnonzero(chunk.markers):
                self._outlets["markers"].push(f"{chunk.markers[k]:g}", float(ts[k]))
                self.n_markers += 1

    def _work(self) -> None:
        try:
            if self.wait_for_consumers_s > 0:
                self._outlets["eeg"].wait_for_consumers(self.wait_for_consumers_s)
            self.publishing.set()
            while not self._stop.is_set():
                try:
                    chunk = self.source.read()
                except SourceLostError as err:
                    self._reconnect(err)
                    continue
                if chunk.n_samples:
                    self._push(chunk)
                self._stop.wait(self.poll_s)
        except BaseException as err:  # thread boundary: re-raised by stop()/join()
            self._error = err
            logger.error("Publishing board %r failed: %s", self.source.board_name, err)

    def _reconnect(self, err: SourceLostError) -> None:
        logger.warning("Board %r lost after %d samples (%s); reconnecting for up to %g s.",
                       self.source.board_name, self.n_pushed, err, self.reconnect_s)
        deadline = time.monotonic() + self.reconnect_s
        last: BaseException = err
        while time.monotonic() < deadline and not self._stop.is_set():
            try:
                self.source.reconnect()
            except SourceLostError as again:
                last = again
                self._stop.wait(min(0.5, self.reconnect_s))
                continue
            self.n_reconnects += 1
            logger.warning("Board %r reconnected.", self.source.board_name)
            return
        if not self._stop.is_set():
            raise SourceLostError(
                f"the board {self.source.board_name!r} was lost after {self.n_pushed} samples "
                f"and did not come back within {self.reconnect_s:g} s ({last}). Check the "
                "board, then start `bci acquire` again.") from err

    @property
    def running(self) -> bool:
        """Whether the publishing thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the thread to end (it ends on an error); re-raises its error."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._raise()

    def stop(self) -> None:
        """Stop publishing, withdraw the streams and release the board; re-raises an error."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        for outlet in self._outlets.values():
            outlet.close()
        self._outlets = {}
        self.source.close()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"Publishing {self.name!r} failed: {error}") from error

    def __enter__(self) -> BoardPublisher:
        """Start publishing."""
        return self.start()

    def __exit__(self, *exc) -> None:
        """Stop publishing."""
        self.stop()


def acquire(board: str | int, name: str, *, serial_port: str | None = None,
            params: Mapping[str, Any] | None = None, duration_s: float | None = None,
            reconnect_s: float = 10.0, wait_for_consumers_s: float = 0.0,
            on_start: Callable[[BoardPublisher], None] | None = None,
            **kwargs: Any) -> BoardPublisher:
    """Publish ``board`` as LSL stream ``name`` until ``duration_s`` (or Ctrl+C).

    Parameters
    ----------
    board, serial_port, params
        See :class:`BrainFlowSource` (its other keywords come through ``kwargs``).
    name : str
        LSL name of the EEG stream.
    duration_s : float | None
        How long to publish (s, finite, > 0), counted from the first consumer when
        ``wait_for_consumers_s`` > 0; until Ctrl+C when None.
    reconnect_s, wait_for_consumers_s : float
        See :class:`BoardPublisher`.
    on_start : callable | None
        Called with the started publisher (the CLI prints what it publishes).

    Returns
    -------
    publisher : BoardPublisher
        Stopped; ``n_pushed`` and ``n_markers`` say what was published.
    """
    if duration_s is not None:
        duration_s = check_positive(duration_s, "duration_s", unit="s")
    source = BrainFlowSource(board, serial_port=serial_port, params=params, name=name,
                             **kwargs)
    try:
        publisher = BoardPublisher(source, name, reconnect_s=reconnect_s,
                                   wait_for_consumers_s=wait_for_consumers_s).start()
    except BaseException:
        source.close()  # the board is released whatever failed
        raise
    try:
        if on_start is not None:
            on_start(publisher)
        while publisher.running and not publisher.publishing.is_set():
            publisher.join(0.1)  # waiting for a consumer (wait_for_consumers_s)
        start = time.monotonic()
        while publisher.running:
            left = None if duration_s is None else duration_s - (time.monotonic() - start)
            if left is not None and left <= 0:
                break
            publisher.join(0.1 if left is None else min(0.1, left))
    except KeyboardInterrupt:
        pass
    finally:
        publisher.stop()
    return publisher
