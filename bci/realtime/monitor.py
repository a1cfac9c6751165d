"""Live monitor of a running session: a token-protected web page (aiohttp, Server-Sent Events).

Two halves, so that watching never slows the loop:

- :class:`MonitorFeed`, the loop's side. :class:`~bci.realtime.loop.OnlineLoop` hands it every
  event it records (decision, stimulus, suppressed stimulus, fault, stream fault:
  :meth:`MonitorFeed.on_event`, one ``deque.append``) and, at most ``publish_hz`` times a
  second, a snapshot (:meth:`MonitorFeed.publish`: the new processed samples decimated to
  ``display_hz`` for display, the last second at full rate for band power, and the counters).
  Nothing there takes a lock or waits: the events go into a bounded deque (the oldest are
  dropped if nobody reads them), the snapshot replaces a reference.
- :class:`MonitorServer`, an aiohttp server in its own thread and event loop. Every
  ``1 / update_hz`` s it drains the events, reads the latest snapshot, computes band power and
  latency percentiles and sends one JSON message to every page connected (Server-Sent Events).
  The page (``monitor_static/``: HTML, JS, uPlot for the plots, vendored, no CDN) draws it.

Security: bound to 127.0.0.1 by default; every request needs the access token
(:func:`secrets.token_urlsafe`, compared with :func:`hmac.compare_digest`; 403 otherwise), which
is in the URL the session prints. The page is read-only except for one action: the manual stop
(``POST /stop``, the same as the session's ``STOP`` file: every later stimulus is refused).
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import itertools
import json
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np

from .._checks import check_positive, check_type, ensure_int
from .._logging import logger as _root_logger
from .buffer import RingBuffer

logger = _root_logger.getChild("realtime.monitor")

__all__ = ["BANDS", "LOCAL_HOSTS", "MonitorFeed", "MonitorServer", "band_power"]

#: Frequency bands of the band-power panel (Hz, [low, high)).
BANDS = {"delta": (1.0, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0),
         "beta": (13.0, 30.0), "gamma": (30.0, 45.0)}

#: Addresses that only this machine can reach (no warning when the monitor binds them).
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")

_PIP = "pip install 'bci[monitor]'"
_STATIC = ("index.html", "monitor.js", "monitor.css", "uPlot.iife.min.js", "uPlot.min.css")
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}


def _web():
    """Import aiohttp's server, or say how to install it."""
    try:
        from aiohttp import web
    except ImportError as err:
        raise ImportError(f"The live monitor needs aiohttp; install it with: {_PIP}") from err
    return web


def band_power(data: np.ndarray, sfreq: float, bands: dict | None = None) -> np.ndarray:
    """Mean power spectral density in each band (Hann-windowed periodogram).

    Parameters
    ----------
    data : array, shape (n_chans, n_times)
        Signal (any unit U; not modified).
    sfreq : float
        Its rate (Hz).
    bands : dict | None
        ``name: (low, high)`` in Hz; :data:`BANDS` when None.

    Returns
    -------
    power : ndarray, shape (n_chans, n_bands)
        Mean one-sided PSD over the bins in ``[low, high)`` (U²/Hz); NaN for a band without
        bins (above Nyquist, or a window too short to resolve it).

    Examples
    --------
    >>> t = np.arange(256) / 128.0
    >>> p = band_power(np.sin(2 * np.pi * 10 * t)[np.newaxis], 128.0)
    >>> int(np.argmax(p[0]))  # alpha
    2
    """
    bands = BANDS if bands is None else bands
    x = np.asarray(data, dtype=float)
    n = x.shape[-1]
    win = np.hanning(n)
    spec = np.fft.rfft((x - x.mean(axis=-1, keepdims=True)) * win, axis=-1)
    psd = np.abs(spec) ** 2 / (sfreq * np.sum(win ** 2))
    psd[..., 1:] *= 2.0
    freqs = np.fft.rfftfreq(n, 1.0 / sfreq)
    out = np.full((x.shape[0], len(bands)), np.nan)
    for j, (low, high) in enumerate(bands.values()):
        sel = (freqs >= low) & (freqs < high)
        if sel.any():
            out[:, j] = psd[:, sel].mean(axis=-1)
    return out


class MonitorFeed:
    """What a running loop publishes for the monitor: bounded, lock-free, never blocking.

    Give it to :func:`~bci.realtime.session.run_session` (``monitor=``) or set
    ``loop.monitor`` on an :class:`~bci.realtime.loop.OnlineLoop` before it runs.

    Parameters
    ----------
    publish_hz : float
        Most snapshots a second the loop makes (> 0); each costs one copy of the new samples.
    display_hz : float
        Rate of the displayed signal (Hz, > 0): every ``ceil(sfreq / display_hz)``-th sample is
        shown (display only; the loop's data is untouched).
    history_s : float
        Seconds of signal on the page (> 0).
    max_chans : int
        Channels displayed (the first ones, >= 1).
    max_events : int
        Events kept for the server (>= 1); older ones are dropped when it does not read them.
    clock : callable
        Clock (s) that paces the snapshots (:func:`time.perf_counter`; a fake one in tests).
    """

    def __init__(self, *, publish_hz: float = 25.0, display_hz: float = 100.0,
                 history_s: float = 5.0, max_chans: int = 8, max_events: int = 10000,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.publish_hz = check_positive(publish_hz, "publish_hz", unit="Hz")
        self.display_hz = check_positive(display_hz, "display_hz", unit="Hz")
        self.history_s = check_positive(history_s, "history_s", unit="s")
        self.max_chans = ensure_int(max_chans, "max_chans", minimum=1, what="channels")
        max_events = ensure_int(max_events, "max_events", minimum=1, what="events")
        #: ``(seq, kind, t, fields)`` of every recorded event; appended by the loop (and the
        #: stream's thread), drained by the server only.
        self.events: deque[tuple[int, str, float, dict]] = deque(maxlen=max_events)
        #: Latest snapshot (a dict replaced, never modified, by the loop), None before the first.
        self.snapshot: dict | None = None
        self.info: dict = {}
        self.summary: dict | None = None
        self._seq = itertools.count()
        self._period = 1.0 / self.publish_hz
        self._next = 0.0
        self._n_snapshots = 0
        self._display: RingBuffer | None = None
        self._stride = 1
        self._read = 0
        self._n_recent = 1
        self._stop: Callable[[str], None] | None = None
        self._loop: Any = None
        self._clock = clock

    def bind(self, loop: Any) -> None:
        """Attach to ``loop`` (an :class:`~bci.realtime.loop.OnlineLoop`) before it runs.

        Sets ``loop.monitor``; the manual stop of the page then stops the loop's safety gate.
        """
        sfreq = float(loop.sfreq)
        n_chans = min(len(loop.ch_names), self.max_chans)
        self._stride = max(int(math.ceil(sfreq / self.display_hz)), 1)
        n_display = max(int(math.ceil(self.history_s * sfreq / self._stride)), 2)
        self._display = RingBuffer(n_chans, n_display)
        self._n_recent = max(int(round(sfreq)), 8)  # 1 s at full rate for band power
        self._read = 0
        classes = getattr(loop.decoder, "classes", None)
        self.info = {"stream": loop.stream.info.name, "sfreq": sfreq,
                     "ch_names": list(loop.ch_names[:n_chans]),
                     "n_chans": len(loop.ch_names), "display_hz": sfreq / self._stride,
                     "window_s": loop.window_s, "history_s": self.history_s, "step_s": loop.step_s,
                     "classes": None if classes is None else [str(c) for c in classes],
                     "policy": type(loop.policy).__name__ if loop.policy is not None else None}
        self._stop = loop.safety.stop
        self._loop = loop
        loop.monitor = self

    # ------------------------------------------------------------------ loop side
    def on_event(self, kind: str, t: float, fields: dict) -> None:
        """Queue an event (called by the loop, and the stream's thread; never blocks)."""
        self.events.append((next(self._seq), kind, t, fields))

    def publish(self, loop: Any, processed: RingBuffer) -> None:
        """Make a snapshot if one is due (called by the loop after each step; cheap otherwise).

        Parameters
        ----------
        loop : OnlineLoop
            The running loop (its counters are read).
        processed : RingBuffer
            The loop's processed signal (read, never modified).
        """
        now = self._clock()
        if now < self._next or self._display is None:
            return
        # on a grid of periods (a steady rate), restarted after a pause
        self._next = self._next + self._period if now - self._next < self._period \
            else now + self._period
        n_chans = self._display.n_chans
        stop = processed.n_written
        start = max(self._read, processed.oldest_index)
        if stop > start:
            first = start + (-start) % self._stride  # shown samples: absolute index % stride
            if first < stop:
                data, ts = processed.get(first, stop)
                self._display.write(data[:n_chans, ::self._stride], ts[::self._stride])
            self._read = stop
        n_recent = min(self._n_recent, processed.n_available)
        signal, times = self._display.get_last(self._display.n_available)
        recent = processed.get_last(n_recent)[0][:n_chans] if n_recent >= 8 else None
        stream = loop.stream
        self._n_snapshots += 1
        self.snapshot = {
            "n": self._n_snapshots, "wall": time.time(),
            "samples": int(stream.n_written), "lost": int(stream.n_lost),
            "decisions": len(loop.decisions), "skipped": int(loop.n_skipped),
            "stimuli": len(loop.stim_events), "suppressed": int(loop.safety.n_suppressed),
            "faults": dict(loop.faults), "stopped": loop.safety.stopped,
            "stop_reason": loop.safety.stop_reason,
            "signal_t": times, "signal": signal, "recent": recent,
        }

    def finish(self, summary: dict) -> None:
        """Record the session's summary (the page shows that the session ended, and why)."""
        loop = self._loop
        if loop is not None:  # a last snapshot with the final counters
            self._next = 0.0
            self.publish(loop, loop._processed)
        self.summary = summary

    # ------------------------------------------------------------------ server side
    def request_stop(self, reason: str) -> bool:
        """Press the manual stop: every later stimulus is refused; False when not bound."""
        if self._stop is None:
            return False
        self._stop(reason)
        return True


def _clean(obj: Any) -> Any:
    """Make ``obj`` JSON-safe for a browser: NaN/inf -> None, numpy -> Python."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        return _clean(obj.item())
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def _rounded(a: np.ndarray, digits: int = 4) -> list:
    """Nested lists of ``a`` rounded to ``digits`` significant digits (of its largest value).

    NaN and inf become None (JSON has neither).
    """
    a = np.asarray(a, dtype=float)
    finite = np.isfinite(a)
    peak = float(np.max(np.abs(a[finite]))) if finite.any() else 0.0
    decimals = digits - 1 - int(np.floor(np.log10(peak))) if peak > 0 else digits
    out = np.round(np.where(finite, a, 0.0), decimals)
    if finite.all():
        return out.tolist()
    return np.where(finite, out, None).tolist()


class MonitorServer:
    """Serve the live page of a :class:`MonitorFeed` from a thread (aiohttp, SSE).

    Parameters
    ----------
    feed : MonitorFeed
        What the loop publishes.
    host : str
        Address to bind; 127.0.0.1 (default) is reachable from this machine only. Any other
        address exposes the session (to anyone with the token) and is logged as a warning.
    port : int
        TCP port (0: a free one, see :attr:`port`).
    token : str | None
        Access token; a random one (:func:`secrets.token_urlsafe`) when None.
    update_hz : float
        Messages a second sent to each page (>= 10 recommended).

    Notes
    -----
    Use as a context manager, or :meth:`start` then :meth:`close`. :meth:`start` raises
    ``OSError`` (``EADDRINUSE``) with the fix when the port is taken.
    """

    def __init__(self, feed: MonitorFeed, *, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, update_hz: float = 20.0) -> None:
        check_type(feed, MonitorFeed, "feed")
        check_type(host, str, "host")
        check_type(token, (str, type(None)), "token")
        if token is not None and len(token) < 16:
            raise ValueError(f"token must have >= 16 characters, got {len(token)}; leave it "
                             "None for a random one.")
        self.feed = feed
        self.host = host
        self.port = ensure_int(port, "port", minimum=0, maximum=65535, what="TCP port")
        self.token = token if token is not None else secrets.token_urlsafe(24)
        self.update_hz = check_positive(update_hz, "update_hz", unit="Hz")
        self.n_messages = 0
        self.n_clients = 0
        self.n_stop_requests = 0
        #: CPU time (s) the server's thread spent in :meth:`update`.
        self.update_cpu_s = 0.0
        #: ``(host, port)`` the server listens on, once started.
        self.addresses: list[tuple] = []
        self._web = _web()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._update: asyncio.Event | None = None
        self._message = ""
        self._snap: dict | None = None
        self._summary: dict | None = None
        self._latency_table: dict | None = None
        self._shown_until: float | None = None
        self._history = {k: deque(maxlen=n) for k, n in
                         (("decision", 100), ("stim", 30), ("suppressed", 30), ("fault", 30))}
        self._latency: dict[str, deque] = {}
        self._stim_latency: deque = deque(maxlen=500)
        self._event_counts: dict[str, int] = {}
        self._last_seq = -1
        self._dropped = 0
        self._n_faults = 0

    # ------------------------------------------------------------------ life cycle
    @property
    def url(self) -> str:
        """The page's address, token included."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    def start(self) -> MonitorServer:
        """Bind and serve in a thread; return when listening (raises if it cannot bind)."""
        if self._thread is not None:
            raise RuntimeError("The monitor server is already started; close() it first.")
        if self.host not in LOCAL_HOSTS:
            logger.warning("The live monitor is exposed on %s: anyone who can reach this "
                           "address and has the token can watch the session and stop its "
                           "stimulation. Use the default 127.0.0.1 unless you need it.",
                           self.host)
        self._thread = threading.Thread(target=self._run, name="bci-monitor", daemon=True)
        self._thread.start()
        if not self._ready.wait(30.0):
            raise RuntimeError("The monitor server did not start within 30 s.")
        if self._error is not None:
            self._thread.join(5.0)
            self._thread = None
            raise self._error
        logger.info("Live monitor at %s", self.url)
        return self

    def close(self) -> None:
        """Stop serving (idempotent); open pages see the connection end."""
        if self._thread is None:
            return
        if self._aloop is not None and self._closing is not None:
            self._aloop.call_soon_threadsafe(self._closing.set)
        self._thread.join(10.0)
        self._thread = None

    def __enter__(self) -> MonitorServer:
        """Start serving."""
        return self.start()

    def __exit__(self, *exc) -> None:
        """Stop serving."""
        self.close()

    def _run(self) -> None:
        aloop = asyncio.new_event_loop()
        self._aloop = aloop
        try:
            aloop.run_until_complete(self._serve())
        except BaseException as err:  # thread boundary: kept and re-raised by start()
            if not self._ready.is_set():
                self._error = err
            else:
                logger.error("The live monitor stopped: %r", err)
        finally:
            self._ready.set()
            aloop.close()

    async def _serve(self) -> None:
        web = self._web
        self._closing = asyncio.Event()
        self._update = asyncio.Event()
        self._done = False  # set with the last message, which every page still gets
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/snapshot", self._snapshot)
        app.router.add_get("/events", self._events)
        app.router.add_post("/stop", self._stop)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=False)
            await site.start()
        except OSError as err:
            await runner.cleanup()
            if err.errno == errno.EADDRINUSE:
                raise OSError(errno.EADDRINUSE, f"The monitor's port {self.port} on "
                              f"{self.host} is already in use (another monitor or program); "
                              "choose another one with --monitor-port PORT, or "
                              "--monitor-port 0 for a free one.") from None
            raise OSError(err.errno, f"The monitor cannot listen on {self.host}:{self.port}: "
                          f"{err.strerror or err}; check --monitor-host and --monitor-port."
                          ) from None
        self.addresses = [tuple(a[:2]) for a in runner.addresses]
        self.port = self.addresses[0][1]
        self.update()
        self._ready.set()
        try:
            while not self._closing.is_set():
                try:
                    await asyncio.wait_for(self._closing.wait(), 1.0 / self.update_hz)
                except asyncio.TimeoutError:
                    pass
                self.update()
        finally:  # a last message (e.g. the session's end), then the pages are let go
            self._done = True
            self.update()
            await runner.cleanup()

    def _wake(self) -> None:
        event, self._update = self._update, asyncio.Event()
        event.set()

    # ------------------------------------------------------------------ state
    def update(self) -> None:
        """Drain the feed's events, take its snapshot, send the pages what is new.

        Called by the server's thread every ``1 / update_hz`` s (never by the loop); its CPU
        time adds up in :attr:`update_cpu_s`.
        """
        cpu0 = time.thread_time()
        feed = self.feed
        while True:
            try:
                seq, kind, t, fields = feed.events.popleft()
            except IndexError:
                break
            if seq != self._last_seq + 1:
                self._dropped += seq - self._last_seq - 1
            self._last_seq = seq
            self._add_event(kind, t, fields)
        since = self._shown_until
        # the summary first: finish() publishes the last snapshot before it sets the summary
        self._summary = feed.summary
        self._snap = feed.snapshot
        if self._snap is not None and len(self._snap["signal_t"]):
            self._shown_until = float(self._snap["signal_t"][-1])
        if self.n_clients:  # the pages get the samples new since the last message
            self._message = self._dumps(self.state(since=since))
            self.n_messages += 1
        if self._update is not None:
            self._wake()
        self.update_cpu_s += time.thread_time() - cpu0

    def _add_event(self, kind: str, t: float, fields: dict) -> None:
        self._event_counts[kind] = self._event_counts.get(kind, 0) + 1
        if kind == "decision":
            for stage, value in (fields.get("latency_ms") or {}).items():
                self._latency.setdefault(stage, deque(maxlen=1000)).append(value)
            self._history["decision"].append(
                {"t": t, "label": fields.get("description"), "proba": fields.get("proba"),
                 "score": fields.get("score")})
        elif kind == "stim":
            if fields.get("latency_ms") is not None:
                self._stim_latency.append(fields["latency_ms"])
            self._history["stim"].append(
                {"t": t, "code": fields.get("code"), "reason": fields.get("reason"),
                 "latency_ms": fields.get("latency_ms"), "consumer": fields.get("consumer")})
        elif kind == "suppressed":
            self._history["suppressed"].append(
                {"t": t, "why": fields.get("description"), "request": fields.get("request")})
        elif kind not in ("session_end",):  # loop faults and stream events
            self._n_faults += 1
            self._history["fault"].append(
                {"t": t, "kind": fields.get("fault", kind),
                 "message": str(fields.get("description", ""))[:300]})
        else:
            return
        history = self._history[kind if kind in self._history else "fault"]
        history[-1] = _clean(history[-1])  # once, on arrival (JSON-safe from then on)
        if kind in ("decision", "stim"):
            self._latency_table = None  # percentiles to compute again

    def _latency_percentiles(self) -> dict:
        """p50/p95/p99/max (ms) per stage over the last 1,000 windows (cached until new ones)."""
        if self._latency_table is None:
            table = {}
            for stage, values in [*self._latency.items(), ("stimulus", self._stim_latency)]:
                a = np.asarray(values, dtype=float)
                a = a[np.isfinite(a)]
                if a.size:
                    p = np.percentile(a, [50, 95, 99])
                    table[stage] = {"p50": round(float(p[0]), 4), "p95": round(float(p[1]), 4),
                                    "p99": round(float(p[2]), 4),
                                    "max": round(float(a.max()), 4), "n": int(a.size)}
            self._latency_table = table
        return self._latency_table

    @staticmethod
    def _dumps(state: dict) -> str:
        return json.dumps(state, allow_nan=False, separators=(",", ":"))

    def state(self, since: float | None = None) -> dict:
        """Everything the page shows as of the last :meth:`update`, JSON-safe.

        Parameters
        ----------
        since : float | None
            Only the displayed samples after this source time (s; what the page already has
            is older); None: the whole displayed history (``signal["reset"]`` is True).
        """
        feed = self.feed
        snap = self._snap
        state: dict = {"info": feed.info, "state": "waiting" if snap is None else "running",
                       "events_dropped": self._dropped, "n_faults": self._n_faults,
                       "event_counts": dict(self._event_counts)}
        if self._summary is not None:
            state["state"] = "ended"
            state["stopped_reason"] = self._summary.get("stopped_reason")
        if snap is not None:
            state["counts"] = {k: snap[k] for k in (
                "n", "wall", "samples", "lost", "decisions", "skipped", "stimuli",
                "suppressed", "faults", "stopped", "stop_reason")}
        state = _clean(state)  # small parts; the events are clean, the arrays done in bulk
        state["latency_ms"] = self._latency_percentiles()
        state.update({f"recent_{k}": list(v) for k, v in self._history.items()})
        if snap is not None:
            t, y = snap["signal_t"], snap["signal"]
            if since is not None:
                keep = t > since
                t, y = t[keep], y[:, keep]
            t = np.round(t, 4)
            state["signal"] = {"reset": since is None,
                               "t": t.tolist() if np.isfinite(t).all()
                               else np.where(np.isfinite(t), t, None).tolist(),
                               "y": _rounded(y, 4)}
            if snap["recent"] is not None:
                with np.errstate(divide="ignore"):
                    db = 10 * np.log10(band_power(snap["recent"], feed.info["sfreq"]))
                state["band_power"] = {"bands": list(BANDS), "db": _rounded(db, 4)}
        return state

    # ------------------------------------------------------------------ HTTP
    def _authorised(self, request) -> bool:
        given = request.query.get("token") or request.headers.get("X-BCI-Token") or ""
        return hmac.compare_digest(given.encode(), self.token.encode())

    @property
    def _guard(self):
        web = self._web

        @web.middleware
        async def guard(request, handler):
            if not self._authorised(request):
                return web.Response(status=403, text="Forbidden: this page needs its access "
                                    "token; open the URL printed when the session started.")
            response = await handler(request)
            response.headers.update({
                "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                                           "style-src 'self' 'unsafe-inline'"})
            return response

        return guard

    def _asset(self, name: str) -> str:
        return (resources.files("bci.realtime") / "monitor_static" / name).read_text("utf-8")

    async def _index(self, request):
        html = self._asset("index.html").replace("{{TOKEN}}", self.token)
        return self._web.Response(text=html, content_type="text/html")

    async def _static(self, request):
        name = request.match_info["name"]
        if name not in _STATIC:
            raise self._web.HTTPNotFound()
        return self._web.Response(text=self._asset(name),
                                  content_type=_TYPES[name[name.rfind("."):]])

    async def _snapshot(self, request):
        return self._web.Response(text=self._dumps(self.state()),
                                  content_type="application/json")

    async def _events(self, request):
        web = self._web
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        self.n_clients += 1
        try:  # everything first, then what each update adds
            update = self._update
            await response.write(f"data: {self._dumps(self.state())}\n\n".encode())
            sent = None
            while True:
                await update.wait()
                update = self._update
                message = self._message
                if message and message is not sent:
                    sent = message
                    await response.write(f"data: {message}\n\n".encode())
                # the last message may have come during that write: one more turn sends it
                if self._done and sent is self._message:
                    break
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.n_clients -= 1
        return response

    async def _stop(self, request):
        self.n_stop_requests += 1
        peer = request.remote
        logger.warning("Manual stop requested from the live monitor (%s): no more stimuli.",
                       peer)
        done = self.feed.request_stop(f"manual stop from the live monitor ({peer})")
        return self._web.json_response({"stopped": done})
