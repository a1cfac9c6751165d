"""The live monitor's page in a real headless browser (Debian's chromium, DevTools protocol).

Skipped when chromium is not installed (``.ci/run`` installs it: ``apt-get install chromium``).
The DevTools protocol is spoken with aiohttp's WebSocket client (the monitor's own dependency).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bci.realtime.events import StimRequest
from bci.realtime.monitor import MonitorFeed, MonitorServer
from bci.realtime.policies import Policy
from bci.realtime.safety import SafetyGate
from bci.realtime.session import run_session
from bci.realtime.sources import ArraySource

aiohttp = pytest.importorskip("aiohttp", reason="the live monitor needs bci[monitor] (aiohttp)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium for the browser test of the live monitor; install "
    "Debian's (apt-get install chromium), as .ci/run does")

class EveryWindow(Policy):
    """Ask for a stimulus after every decision (the safety gate suppresses most)."""

    def update(self, decision):
        decision.score = float(decision.proba[0])
        return StimRequest(reason=f"p(left_hand)={decision.score:.2f}",
                           t_trigger=decision.t_end)


COUNTERS = ("n-samples", "n-decisions", "n-stimuli", "n-suppressed", "n-updates")


class DevTools:
    """Minimal DevTools-protocol client: commands, and every event kept in order."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.events: list[dict] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self._waiting:
                self._waiting.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, **params) -> dict:
        """Run a command; return its result (raises on a protocol error)."""
        i = next(self._ids)
        self._waiting[i] = asyncio.get_running_loop().create_future()
        await self.ws.send_json({"id": i, "method": method, "params": params})
        reply = await asyncio.wait_for(self._waiting[i], 30.0)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def js(self, expression: str):
        """Evaluate ``expression`` in the page (promises awaited); return its value."""
        result = await self.send("Runtime.evaluate", expression=expression,
                                 awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def until(self, expression: str, timeout_s: float = 20.0):
        """Poll ``expression`` until truthy; return its value."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.js(expression)
            if value:
                return value
            await asyncio.sleep(0.05)
        raise AssertionError(f"{expression} stayed false for {timeout_s} s")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and failed loads seen so far."""
        out = []
        for e in self.events:
            method, p = e.get("method"), e.get("params", {})
            if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append(f"console.{p['type']}: {p.get('args')}")
            elif method == "Runtime.exceptionThrown":
                out.append(f"exception: {p.get('exceptionDetails')}")
            elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
                out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        return out

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()


def _start_chromium(profile: Path) -> tuple[subprocess.Popen, int]:
    """Start headless chromium with DevTools on a free loopback port; return it and the port."""
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--disable-background-networking", "--disable-sync",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--user-data-dir={profile}", "--window-size=1400,1200", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port_file = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text().strip():
            return proc, int(port_file.read_text().split()[0])
        if proc.poll() is not None:
            break
        threading.Event().wait(0.1)  # polling for the browser's file, with a deadline
    proc.kill()
    proc.wait()
    pytest.fail(f"chromium did not open its DevTools port within 60 s (exit {proc.poll()})")


async def _drive(devtools_port: int, server: MonitorServer, shot: Path) -> dict:
    base = f"http://127.0.0.1:{server.port}"
    out: dict = {}
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{devtools_port}/json/list") as r:
            targets = await r.json()
        page = next(t for t in targets if t["type"] == "page")
        ws = await http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        cdp = DevTools(ws)
        try:
            for domain in ("Runtime", "Log", "Page"):
                await cdp.send(f"{domain}.enable")
            await cdp.send("Page.navigate", url=server.url)
            await cdp.until("document.readyState === 'complete'")
            await cdp.until("+document.getElementById('n-decisions').textContent > 0")
            read = "({" + ",".join(f"'{c}': +document.getElementById('{c}').textContent"
                                   for c in COUNTERS) + ", t: performance.now()})"
            out["first"] = await cdp.js(read)
            await cdp.until(
                f"+document.getElementById('n-decisions').textContent > "
                f"{out['first']['n-decisions'] + 5}")
            await cdp.until("document.querySelectorAll('#stimuli tbody tr').length > 0")
            await cdp.until("document.querySelectorAll('#suppressed tbody tr').length > 0")
            out["second"] = await cdp.js(read)
            out["signal_canvases"] = await cdp.js(
                "document.querySelectorAll('#signals canvas').length")
            out["proba_canvases"] = await cdp.js(
                "document.querySelectorAll('#proba canvas').length")
            out["band_rows"] = await cdp.js("document.querySelectorAll('#bands tbody tr').length")
            out["latency_stages"] = await cdp.js(
                "[...document.querySelectorAll('#latency tbody tr td:first-child')]"
                ".map(td => td.textContent)")
            out["suppressed_why"] = await cdp.js(
                "document.querySelector('#suppressed tbody tr td:nth-child(2)').textContent")
            png = await cdp.send("Page.captureScreenshot", format="png")
            shot.write_bytes(base64.b64decode(png["data"]))
            # the manual stop: the button, its confirmation dialog accepted
            n_events = len(cdp.events)
            click = asyncio.ensure_future(cdp.js("document.getElementById('stop').click()"))
            deadline = time.monotonic() + 20.0
            while not any(e.get("method") == "Page.javascriptDialogOpening"
                          for e in cdp.events[n_events:]):
                assert time.monotonic() < deadline, "no confirmation dialog"
                await asyncio.sleep(0.05)
            await cdp.send("Page.handleJavaScriptDialog", accept=True)
            await click
            out["stop_button"] = await cdp.until(  # as the next message reports it
                "document.getElementById('stop').disabled "
                "&& document.getElementById('stop').textContent.startsWith('stimulation') "
                "&& document.getElementById('stop').textContent")
            out["ended"] = await cdp.until(
                "document.getElementById('status').textContent.startsWith('session ended') "
                "&& document.getElementById('status').textContent", timeout_s=30.0)
            out["errors"] = cdp.errors()
            # the token, from the page's own origin: refused without, served with it
            out["no_token"] = await cdp.js("fetch('/snapshot').then(r => r.status)")
            out["bad_token"] = await cdp.js("fetch('/snapshot?token=x').then(r => r.status)")
            out["with_token"] = await cdp.js(
                f"fetch('/snapshot?token={server.token}').then(r => r.status)")
            out["stop_no_token"] = await cdp.js(
                "fetch('/stop', {method: 'POST'}).then(r => r.status)")
            await cdp.send("Page.navigate", url=base + "/")
            out["page_no_token"] = await cdp.until(
                "document.body && document.body.innerText")
            await cdp.send("Browser.close")
        finally:
            await cdp.close()
    return out


def test_monitor_page_in_headless_chromium(tmp_path, capsys, mi_decoder, mi_recording):
    data = mi_recording.get_data(picks=mi_decoder.ch_names)
    source = ArraySource(data, mi_recording.info["sfreq"], mi_decoder.ch_names,
                         clock=time.perf_counter, loop=True)
    feed = MonitorFeed()
    safety = SafetyGate(min_interval_s=1.0, max_per_minute=None, max_per_session=None)
    result: dict = {}
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    shot = tmp_path / "monitor.png"
    with MonitorServer(feed, update_hz=20.0) as server:
        session = threading.Thread(target=lambda: result.update(summary=run_session(
            source, decoder=mi_decoder, step_s=0.1, duration_s=5.0, safety=safety,
            policy=EveryWindow(),
            monitor=feed)))
        session.start()
        proc, port = _start_chromium(profile)
        try:
            out = asyncio.run(_drive(port, server, shot))
        finally:
            try:
                proc.wait(10.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            session.join(30.0)
    with capsys.disabled():  # the artefact's path, in the test output even without -s
        print(f"\nscreenshot of the live monitor: {shot}")  # noqa: T201
    assert out["errors"] == []
    first, second = out["first"], out["second"]
    for counter in ("n-samples", "n-decisions", "n-updates"):
        assert second[counter] > first[counter], counter
    rate = (second["n-updates"] - first["n-updates"]) / ((second["t"] - first["t"]) / 1e3)
    assert rate >= 10.0  # updates a second, as the page counts them
    assert second["n-stimuli"] > 0
    assert second["n-suppressed"] > 0
    assert out["suppressed_why"].startswith("min_interval")
    assert out["signal_canvases"] >= 1
    assert out["proba_canvases"] >= 1
    assert out["band_rows"] == len(mi_decoder.ch_names)
    assert {"decode", "end_to_end", "stimulus"} <= set(out["latency_stages"])
    assert out["ended"] == "session ended: duration reached"
    assert result["summary"]["decisions"] >= second["n-decisions"]
    assert (out["no_token"], out["bad_token"], out["with_token"]) == (403, 403, 200)
    assert out["stop_no_token"] == 403
    assert safety.stopped  # by the button (its POST carried the token)
    assert safety.stop_reason.startswith("manual stop from the live monitor")
    assert out["stop_button"].startswith("stimulation stopped: manual stop from the live")
    assert server.n_stop_requests == 1  # the button's (the one without token never got in)
    assert out["page_no_token"].startswith("Forbidden")
    assert shot.stat().st_size > 10_000
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
