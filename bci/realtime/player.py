"""Publish a recording as a live LSL stream, in real time (``bci play FILE --name NAME``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from .._checks import check_bool, check_positive, check_type
from .._logging import logger as _root_logger
from .sources import read_recording

logger = _root_logger.getChild("realtime.player")


#: LSL unit label of the FIFF units of the channels a recording holds (SI, as MNE stores them).
_UNITS = {107: "volts", 112: "tesla", 201: "tesla/metre"}  # FIFF_UNIT_V, _T, _T_M


def channel_meta(info) -> tuple[list[str], list[str]]:
    """Type and unit of each channel of an MNE ``info``, as the player writes them to LSL.

    Parameters
    ----------
    info : mne.Info
        The recording's measurement info.

    Returns
    -------
    ch_types : list of str
        MNE channel types (``"eeg"``, ``"mag"``, ``"grad"``, ``"seeg"``...).
    units : list of str
        ``"volts"``, ``"tesla"``, ``"tesla/metre"`` (the samples are in these SI units), or
        ``"n/a"`` for other channels.

    Examples
    --------
    >>> import mne
    >>> channel_meta(mne.create_info(["MEG 0111", "MEG 0112", "Fz"], 100.0,
    ...                              ["mag", "grad", "eeg"]))
    (['mag', 'grad', 'eeg'], ['tesla', 'tesla/metre', 'volts'])
    """
    types = info.get_channel_types()
    units = [_UNITS.get(int(ch["unit"]), "n/a") for ch in info["chs"]]
    return types, units


class Player:
    """Replay a recording over LSL at its own rate, in a background thread.

    Each chunk is pushed with its last sample's timestamp set to the LSL clock time at which
    that sample is due (``t_start + index / sfreq``), so timestamps are exact and
    consumers can measure their latency from them.

    The stream's XML description lists each channel's label, type and unit
    (``desc/channels/channel/{label,type,unit}``, the XDF/LSL meta-data convention): the MNE
    type (``eeg``, ``mag``, ``grad``, ``seeg``...) and SI unit of a recording's channels, so
    that :class:`~bci.realtime.lsl.LSLSource` knows them and the online loop refuses a decoder
    trained on other types. An array (``(data, sfreq, ch_names)``) has no types: its channels
    are typed ``stype`` and in ``"volts"``.

    Parameters
    ----------
    raw : mne.io.BaseRaw | str | Path | tuple of (array, sfreq, ch_names)
        The recording, a file :func:`mne.io.read_raw` reads, or an array ``(n_chans,
        n_times)`` with its rate (Hz) and channel names.
    name : str
        LSL stream name.
    stype : str
        LSL stream type.
    chunk_s : float
        Push period (s, finite, > 0).
    loop : bool
        Start over at the end (timestamps keep increasing).
    picks : str | list | None
        Channels to publish (MNE ``picks``; data channels by default).
    wait_for_consumers_s : float
        Wait this long (s, finite, >= 0) for a first consumer before sending (samples sent
        before an inlet connects are lost); 0: do not wait.
    source_id : str | None
        LSL source id (lets consumers recover a restarted player).
    """

    def __init__(self, raw, name: str, *, stype: str = "EEG", chunk_s: float = 0.01,
                 loop: bool = False, picks=None, wait_for_consumers_s: float = 0.0,
                 source_id: str | None = None) -> None:
        check_type(name, str, "name")
        chunk_s = check_positive(chunk_s, "chunk_s", unit="s")
        wait_for_consumers_s = check_positive(wait_for_consumers_s, "wait_for_consumers_s",
                                              unit="s", allow_zero=True)
        loop = check_bool(loop, "loop")
        if isinstance(raw, tuple):
            data, sfreq, ch_names = raw
            data = np.asarray(data, dtype=np.float32)
            ch_types, units = None, "volts"
        else:
            recording = read_recording(raw).copy().pick("data" if picks is None else picks)
            data = recording.get_data().astype(np.float32)
            sfreq, ch_names = recording.info["sfreq"], recording.ch_names
            ch_types, units = channel_meta(recording.info)
        if data.ndim != 2 or data.shape[0] != len(ch_names):
            raise ValueError(f"data must be (n_chans, n_times) with one name a channel, got "
                             f"{data.shape} and {len(ch_names)} names.")
        self.data = np.ascontiguousarray(data.T)  # (n_times, n_chans), pushed as-is
        self.sfreq = float(sfreq)
        self.ch_names = list(ch_names)
        self.ch_types: list[str] | None = ch_types
        self.units = units
        self.name, self.stype, self.chunk_s, self.loop = name, stype, float(chunk_s), loop
        self.wait_for_consumers_s = float(wait_for_consumers_s)
        self.source_id = source_id or f"bci-player-{name}"
        self.n_pushed = 0
        self.t_start: float | None = None
        self._outlet = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None

    @property
    def n_times(self) -> int:
        """Samples in the recording."""
        return self.data.shape[0]

    @property
    def duration_s(self) -> float:
        """Length of the recording (s)."""
        return self.n_times / self.sfreq

    def start(self) -> Player:
        """Create the outlet and start pushing; returns self."""
        from .lsl import SignalOutlet, local_clock

        if self._thread is not None:
            raise RuntimeError("The player is already playing.")
        self._outlet = SignalOutlet(self.name, self.ch_names, self.sfreq, stype=self.stype,
                                    source_id=self.source_id, unit=self.units,
                                    ch_types=self.ch_types)
        self._clock = local_clock
        self._stop.clear()
        self._thread = threading.Thread(target=self._work, name=f"bci-player-{self.name}",
                                        daemon=True)
        self._thread.start()
        return self

    def _work(self) -> None:
        try:
            if self.wait_for_consumers_s > 0:
                self._outlet.wait_for_consumers(self.wait_for_consumers_s)
            self.t_start = self._clock()
            period = 1.0 / self.sfreq
            while not self._stop.is_set():
                due = int((self._clock() - self.t_start) * self.sfreq) + 1
                if not self.loop:
                    due = min(due, self.n_times)
                if due > self.n_pushed:
                    idx = np.arange(self.n_pushed, due)
                    chunk = self.data[idx % self.n_times] if self.loop else \
                        self.data[self.n_pushed:due]
                    self._outlet.push_rows(chunk, timestamp=self.t_start + (due - 1) * period)
                    self.n_pushed = due
                if not self.loop and self.n_pushed >= self.n_times:
                    break
                self._stop.wait(self.chunk_s)
        except BaseException as err:  # thread boundary: re-raised by stop()/join()
            self._error = err
            logger.error("Player %r failed: %s", self.name, err)

    @property
    def playing(self) -> bool:
        """Whether samples are still being pushed."""
        return self._thread is not None and self._thread.is_alive()

    def join(self, timeout_s: float | None = None) -> None:
        """Wait for the end of a non-looping recording; re-raises a player error."""
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._raise()

    def stop(self) -> None:
        """Stop pushing and withdraw the stream (consumers see it lost)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self._outlet is not None:
            self._outlet.close()
            self._outlet = None
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"Player {self.name!r} failed: {error}") from error

    def __enter__(self) -> Player:
        """Start playing."""
        return self.start()

    def __exit__(self, *exc) -> None:
        """Stop playing."""
        self.stop()


def play(fname: str | Path, name: str, *, loop: bool = False, duration_s: float | None = None,
         **kwargs) -> int:
    """Publish ``fname`` as LSL stream ``name`` until its end (or ``duration_s``, or Ctrl+C).

    ``duration_s`` (s) must be finite and > 0 (None: until the end). Returns the number of
    samples pushed. Other keywords go to :class:`Player`.
    """
    if duration_s is not None:
        duration_s = check_positive(duration_s, "duration_s", unit="s")
    with Player(fname, name, loop=loop, **kwargs) as player:
        logger.info("Playing %s as %r: %d channels at %g Hz, %.1f s%s",
                    "an array" if isinstance(fname, tuple) else fname, name,
                    len(player.ch_names), player.sfreq, player.duration_s,
                    " (looping)" if loop else "")
        start = time.monotonic()
        try:
            while player.playing:
                if duration_s is not None and time.monotonic() - start >= duration_s:
                    break
                time.sleep(0.1)
        except KeyboardInterrupt:
            pass
        return player.n_pushed


def reaching_counts(path: str | Path | None = None) -> tuple[np.ndarray, float, list[str]]:
    """Binned spike counts of a center-out reaching session, trials one after the other.

    What ``bci play --reaching`` publishes: one channel a unit, one sample a bin (``sfreq = 1 /
    bin width``, 20 Hz for the staged session's 50-ms bins). Pass the result as ``raw`` to
    :class:`Player` or :func:`play`.

    Parameters
    ----------
    path : str | Path | None
        The session's ``.mat`` file or folder (see
        :func:`~bci.data.reaching.load_center_out`); the staged one when None.

    Returns
    -------
    counts : ndarray, shape (n_units, n_bins)
    sfreq : float
        Bins per second (Hz).
    ch_names : list of str
        The units' names.
    """
    from ..data.reaching import load_center_out

    data = load_center_out(path)
    return np.concatenate(data.spikes, axis=1), float(data.sfreq), list(data.ch_names)
