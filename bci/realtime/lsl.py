"""Lab Streaming Layer: the only module of ``bci`` that imports :mod:`pylsl`.

It holds the LSL signal source (:class:`LSLSource`), the outlets that publish a signal or
markers (:class:`SignalOutlet`, :class:`MarkerOutlet`), the LSL clock (:func:`local_clock`) and
:func:`use_loopback_config`, which keeps every LSL packet on this machine (tests, benchmarks).

pylsl behaviours this module is built around:

- ``pull_chunk(timeout > 0)`` waits for a *full* chunk, so the source polls with ``timeout=0.0``
  into a preallocated ``(max_samples, n_chans)`` buffer (no per-sample Python loop);
- samples pushed before an inlet connects are dropped: a publisher that must not lose the first
  samples calls :meth:`SignalOutlet.wait_for_consumers` first;
- timestamps are corrected to the local clock (``time_correction``, applied by liblsl's
  ``proc_clocksync``) and dejittered (``proc_dejitter``), so they can be compared with
  :func:`local_clock` on this machine.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._logging import logger as _root_logger
from .sources import Source, SourceInfo, SourceLostError

logger = _root_logger.getChild("realtime.lsl")

#: LSL configuration that keeps every packet on this machine (no multicast/broadcast on the
#: network card). Same content as the project's ``shared/lsl_api.cfg``.
LOOPBACK_CONFIG = """\
; written by bci.realtime.lsl.use_loopback_config: keep every LSL packet on this machine
[ports]
IPv6 = disable
[multicast]
ResolveScope = machine
AddressesOverride = {127.0.0.1}
ListenAddress = 127.0.0.1
[lab]
KnownPeers = {127.0.0.1}
[log]
level = -3
"""


def use_loopback_config(directory: str | Path | None = None) -> Path:
    """Make LSL stay on this machine: write :data:`LOOPBACK_CONFIG` and point ``LSLAPICFG`` at it.

    Must run before the first pylsl call of the process (liblsl reads its configuration once).
    Real sessions keep the user's own LSL configuration: call this only in tests, benchmarks
    and demos.

    Parameters
    ----------
    directory : str | Path | None
        Where to write ``lsl_api.cfg``; a new temporary folder when None.

    Returns
    -------
    path : Path
        The configuration file now named by ``LSLAPICFG``.
    """
    directory = Path(directory) if directory is not None else Path(tempfile.mkdtemp("_bci_lsl"))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "lsl_api.cfg"
    path.write_text(LOOPBACK_CONFIG)
    os.environ["LSLAPICFG"] = str(path)
    return path


def local_clock() -> float:
    """LSL's clock (s): the time base of every LSL timestamp on this machine."""
    import pylsl

    return pylsl.local_clock()


def list_streams(timeout_s: float = 1.0) -> list[dict]:
    """Streams visible now: ``[{"name", "type", "n_chans", "sfreq", "source_id"}, ...]``."""
    import pylsl

    return [{"name": s.name(), "type": s.type(), "n_chans": s.channel_count(),
             "sfreq": s.nominal_srate(), "source_id": s.source_id()}
            for s in pylsl.resolve_streams(wait_time=timeout_s)]


def _channel_names(info, n_chans: int) -> list[str]:
    """Channel labels from a stream's XML description (``Ch1``... when it has none)."""
    names = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty() and len(names) < n_chans:
        names.append(ch.child_value("label"))
        ch = ch.next_sibling()
    if len(names) != n_chans or any(not n for n in names):
        names = [f"Ch{i + 1}" for i in range(n_chans)]
    return names


class LSLSource(Source):
    """Pull a signal stream from LSL into numpy arrays.

    Parameters
    ----------
    name : str | None
        Stream name to resolve (``info.name()``); at least one of ``name``/``stype``.
    stype : str | None
        Stream type to resolve (e.g. ``"EEG"``).
    timeout_s : float
        How long (s) to look for the stream before raising.
    max_samples : int
        Largest chunk (samples) one :meth:`pull` returns; the pull buffer is preallocated.
    max_buffered_s : float
        How much (s) liblsl keeps for us between pulls; older samples are lost (and show up
        as a gap).
    dejitter : bool
        Smooth timestamps with liblsl's ``proc_dejitter`` (recommended for regular streams).

    Notes
    -----
    Timestamps are in the local LSL clock (``time_correction`` applied by liblsl). When the
    outlet disappears :meth:`pull` raises :class:`~bci.realtime.sources.SourceLostError`;
    :meth:`reconnect` resolves the stream again by the same name/type.
    """

    def __init__(self, name: str | None = None, *, stype: str | None = None,
                 timeout_s: float = 5.0, max_samples: int = 4096,
                 max_buffered_s: float = 60.0, dejitter: bool = True) -> None:
        if name is None and stype is None:
            raise ValueError("Give the stream's name or stype (e.g. name='bci-player').")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive (seconds), got {timeout_s}.")
        self.name = name
        self.stype = stype
        self.timeout_s = float(timeout_s)
        self.max_samples = int(max_samples)
        self.max_buffered_s = float(max_buffered_s)
        self.dejitter = dejitter
        self._inlet = None
        self._buf: np.ndarray | None = None
        self.info = self._open()

    def _resolve(self):
        import pylsl

        prop, value = ("name", self.name) if self.name is not None else ("type", self.stype)
        found = pylsl.resolve_byprop(prop, value, minimum=1, timeout=self.timeout_s)
        if self.name is not None and self.stype is not None:
            found = [s for s in found if s.type() == self.stype]
        if not found:
            visible = [s["name"] for s in list_streams(0.5)]
            raise RuntimeError(
                f"No LSL stream with {prop}={value!r} found within {self.timeout_s:g} s "
                f"(visible streams: {visible or 'none'}). Start the device's LSL app, or "
                "`bci play FILE --name NAME`, and check the name."
            )
        if len(found) > 1:
            logger.warning("%d LSL streams match %s=%r; using the first (%s).", len(found),
                           prop, value, found[0].source_id())
        return found[0]

    def _open(self) -> SourceInfo:
        import pylsl

        stream = self._resolve()
        flags = pylsl.proc_clocksync | (pylsl.proc_dejitter if self.dejitter else 0)
        inlet = pylsl.StreamInlet(stream, max_buflen=max(1, int(np.ceil(self.max_buffered_s))),
                                  processing_flags=flags, recover=False)
        info = inlet.info(timeout=self.timeout_s)
        n_chans = info.channel_count()
        sfreq = info.nominal_srate()
        if sfreq <= 0:
            raise ValueError(f"LSL stream {info.name()!r} has an irregular rate; bci reads "
                             "regularly sampled signal streams (markers go to a MarkerOutlet).")
        if info.channel_format() != pylsl.cf_float32:
            logger.info("Stream %r is not float32; samples are converted.", info.name())
        inlet.open_stream(timeout=self.timeout_s)
        inlet.time_correction(timeout=self.timeout_s)  # first estimate before data flows
        self._inlet = inlet
        self._dtype = np.float32 if info.channel_format() == pylsl.cf_float32 else np.float64
        if info.channel_format() not in (pylsl.cf_float32, pylsl.cf_double64):
            self._dtype = None  # integer streams: let pylsl allocate (rare)
        self._buf = (np.empty((self.max_samples, n_chans), dtype=self._dtype)
                     if self._dtype is not None else None)
        return SourceInfo(name=info.name(), ch_names=_channel_names(info, n_chans),
                          sfreq=float(sfreq), source_id=info.source_id())

    def now(self) -> float:
        """LSL's local clock (s), the time base of this source's timestamps."""
        return local_clock()

    def pull(self, max_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Samples available now (never waits).

        Returns
        -------
        data : ndarray, shape (n_chans, n_samples), float64
        timestamps : ndarray, shape (n_samples,), float64
            Local LSL clock (s).
        """
        from pylsl.util import LostError

        if self._inlet is None:
            raise RuntimeError("This LSLSource is closed; create a new one.")
        n = self.max_samples if max_samples is None else min(int(max_samples), self.max_samples)
        try:
            if self._buf is not None:
                _, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=n, dest_obj=self._buf)
                k = len(ts)
                data = self._buf[:k].T.astype(np.float64)
            else:
                samples, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=n, as_numpy=True)
                data = np.asarray(samples, dtype=np.float64).reshape(len(ts), -1).T
        except LostError as err:
            raise SourceLostError(f"LSL stream {self.info.name!r} was lost ({err}).") from err
        return data, np.asarray(ts, dtype=np.float64)

    def reconnect(self) -> SourceInfo:
        """Resolve and open the stream again after it was lost; checks it still matches."""
        self.close()
        info = self._open()
        if info.ch_names != self.info.ch_names or info.sfreq != self.info.sfreq:
            raise RuntimeError(
                f"The LSL stream {info.name!r} came back with other channels or rate "
                f"({info.n_chans} channels at {info.sfreq:g} Hz, before {self.info.n_chans} "
                f"at {self.info.sfreq:g} Hz); start a new session."
            )
        self.info = info
        return info

    def close(self) -> None:
        """Close the inlet (idempotent)."""
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            finally:
                self._inlet = None


class SignalOutlet:
    """Publish a regularly sampled signal on LSL (float32).

    Parameters
    ----------
    name : str
        Stream name consumers resolve.
    ch_names : sequence of str
        Channel labels (written to the stream's XML description).
    sfreq : float
        Nominal rate (Hz).
    stype : str
        Stream type (``"EEG"``, ``"MEG"``...).
    source_id : str | None
        Unique id that lets consumers recover the stream after a restart.
    unit : str
        Unit label of every channel (e.g. ``"volts"``).
    """

    def __init__(self, name: str, ch_names: Sequence[str], sfreq: float, *, stype: str = "EEG",
                 source_id: str | None = None, unit: str = "volts") -> None:
        import pylsl

        if sfreq <= 0:
            raise ValueError(f"sfreq must be positive (Hz), got {sfreq}.")
        self.ch_names = list(ch_names)
        info = pylsl.StreamInfo(name, stype, len(self.ch_names), float(sfreq), pylsl.cf_float32,
                                source_id or f"bci-{name}")
        chans = info.desc().append_child("channels")
        for ch in self.ch_names:
            c = chans.append_child("channel")
            c.append_child_value("label", ch)
            c.append_child_value("unit", unit)
            c.append_child_value("type", stype)
        self._outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)

    def wait_for_consumers(self, timeout_s: float) -> bool:
        """Wait until an inlet is connected (samples pushed before are dropped)."""
        return bool(self._outlet.wait_for_consumers(timeout_s))

    @property
    def has_consumers(self) -> bool:
        """Whether some inlet is connected now."""
        return bool(self._outlet.have_consumers())

    def push(self, data: np.ndarray, timestamp: float = 0.0) -> None:
        """Push ``data`` (``(n_chans, n_samples)``); ``timestamp`` is the last sample's time."""
        self._outlet.push_chunk(np.ascontiguousarray(np.asarray(data).T, dtype=np.float32),
                                timestamp=timestamp, pushthrough=True)

    def push_rows(self, samples: np.ndarray, timestamp: float = 0.0) -> None:
        """Push ``samples`` shaped ``(n_samples, n_chans)`` (no transpose; float32 is fastest)."""
        self._outlet.push_chunk(samples, timestamp=timestamp, pushthrough=True)

    def close(self) -> None:
        """Withdraw the stream (consumers see it lost)."""
        self._outlet = None


class MarkerOutlet:
    """Publish string markers (decisions, stimulation events) on LSL.

    The outlet exists from construction: create it when the session starts, so that consumers
    (a stimulation PC, LabRecorder) can connect before the first marker. LSL drops a marker
    pushed while no inlet is connected, and one still in transit when the outlet is
    destroyed: :attr:`has_consumers` tells the first case (a marker pushed without consumer
    is known lost), and :meth:`close` lingers so that the last markers reach the connected
    consumers.

    Parameters
    ----------
    name : str
        Stream name (e.g. ``"bci-stim"``).
    stype : str
        Stream type (``"Markers"``).
    source_id : str | None
        LSL source id (``"bci-<name>"`` by default).

    Attributes
    ----------
    n_pushed : int
        Markers pushed.
    n_pushed_with_consumer : int
        Markers pushed while at least one consumer was connected.
    """

    def __init__(self, name: str, *, stype: str = "Markers",
                 source_id: str | None = None) -> None:
        import time

        import pylsl

        from .._checks import check_type

        check_type(name, str, "name")
        check_type(stype, str, "stype")
        info = pylsl.StreamInfo(name, stype, 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                                source_id or f"bci-{name}")
        self.name = name
        self._outlet = pylsl.StreamOutlet(info)
        self._clock = pylsl.local_clock
        self._monotonic = time.monotonic
        self._last_push: float | None = None
        self.n_pushed = 0
        self.n_pushed_with_consumer = 0

    @property
    def has_consumers(self) -> bool:
        """Whether some inlet is connected now (False once closed)."""
        return self._outlet is not None and bool(self._outlet.have_consumers())

    def wait_for_consumers(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (s, finite, >= 0) for an inlet; return whether one is there."""
        from .._checks import check_positive

        timeout_s = check_positive(timeout_s, "timeout_s", unit="s", allow_zero=True)
        if self._outlet is None:
            raise RuntimeError(f"The marker outlet {self.name!r} is closed.")
        return bool(self._outlet.wait_for_consumers(timeout_s)) if timeout_s > 0 \
            else self.has_consumers

    def push(self, marker: str, timestamp: float | None = None) -> float:
        """Push one marker now (or stamped ``timestamp``); returns its LSL timestamp (s)."""
        if self._outlet is None:
            raise RuntimeError(f"The marker outlet {self.name!r} is closed.")
        ts = self._clock() if timestamp is None else float(timestamp)
        consumer = self.has_consumers
        self._outlet.push_sample([marker], ts)
        self.n_pushed += 1
        self.n_pushed_with_consumer += consumer
        self._last_push = self._monotonic()
        return ts

    def close(self, linger_s: float = 1.0) -> None:
        """Withdraw the stream (idempotent), first lingering for the last markers.

        liblsl drops the markers still in transit when an outlet is destroyed (measured on
        loopback: all 20 markers pushed 10 ms before were lost, and a consumer that corrects
        clocks, such as :class:`MarkerInlet`, needs about 0.2 s for its first ones). So when a
        consumer is connected and the last marker is younger than ``linger_s`` (s), wait
        until it is that old.
        """
        from .._checks import check_positive

        linger_s = check_positive(linger_s, "linger_s", unit="s", allow_zero=True)
        if self._outlet is None:
            return
        if self._last_push is not None and linger_s > 0 and self.has_consumers:
            import time

            time.sleep(max(linger_s - (self._monotonic() - self._last_push), 0.0))
        self._outlet = None


class MarkerInlet:
    """Read string markers from LSL (e.g. to check a session's stimulation stream).

    Parameters
    ----------
    name : str
        Marker stream name to resolve.
    timeout_s : float
        How long (s) to look for it.
    """

    def __init__(self, name: str, *, timeout_s: float = 5.0) -> None:
        import pylsl

        found = pylsl.resolve_byprop("name", name, minimum=1, timeout=timeout_s)
        if not found:
            raise RuntimeError(f"No LSL marker stream named {name!r} within {timeout_s:g} s.")
        self._inlet = pylsl.StreamInlet(found[0], processing_flags=pylsl.proc_clocksync)
        self._inlet.open_stream(timeout=timeout_s)

    def pull(self) -> tuple[list[str], np.ndarray]:
        """Markers available now and their timestamps (local LSL clock, s)."""
        samples, ts = self._inlet.pull_chunk(timeout=0.0, max_samples=1024)
        return [s[0] for s in samples], np.asarray(ts, dtype=np.float64)

    def close(self) -> None:
        """Close the inlet."""
        self._inlet.close_stream()
