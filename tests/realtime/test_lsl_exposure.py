"""What LSL exposes on the network under the loopback configuration, read with ``ss``.

The loopback configuration (:data:`bci.realtime.lsl.LOOPBACK_CONFIG`) keeps discovery on
127.0.0.1, but liblsl binds each outlet's data server (TCP) and time/info service (UDP) to the
wildcard address: this test checks both facts, which the README's Security section states, on
the sockets of this process (an outlet and an inlet connected over loopback). It connects to
nothing but loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pylsl")
pytestmark = [
    pytest.mark.skipif(shutil.which("ss") is None,
                       reason="`ss` (iproute2) is not installed: apt-get install iproute2"),
    pytest.mark.skipif(not sys.platform.startswith("linux"),
                       reason="reads this process's sockets from /proc (Linux)"),
]

WILDCARD = "0.0.0.0"
LOOPBACK = "127.0.0.1"


def _socket_inodes() -> set[str]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def _our_sockets() -> list[dict]:
    """TCP/UDP sockets of this process: ``{"proto", "state", "host", "port", "peer", "ino"}``."""
    out = subprocess.run(["ss", "-H", "-a", "-n", "-t", "-u", "-e"], capture_output=True,
                         text=True, check=True).stdout
    inodes = _socket_inodes()
    sockets = []
    for line in out.splitlines():
        fields = line.split()
        ino = next((f[len("ino:"):] for f in fields if f.startswith("ino:")), None)
        if len(fields) < 6 or ino not in inodes:
            continue
        host, _, port = fields[4].rpartition(":")
        sockets.append({"proto": fields[0], "state": fields[1], "host": host.strip("[]"),
                        "port": int(port), "peer": fields[5], "ino": ino})
    return sockets


def _cfg(key: str, default: int) -> int:
    for line in Path(os.environ["LSLAPICFG"]).read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() == key:
            return int(value)
    return default


def test_lsl_discovery_on_loopback_but_data_servers_on_every_interface():
    from bci.realtime.lsl import LSLSource
    from bci.realtime.player import Player

    name = f"bci-test-exposure-{os.getpid()}"
    before = _socket_inodes()  # sockets of earlier tests of this process are not counted
    with Player((np.zeros((2, 2500), np.float32), 250.0, ["a", "b"]), name,
                wait_for_consumers_s=5.0):
        source = LSLSource(name, timeout_s=5.0)
        try:
            sockets = [s for s in _our_sockets() if s["ino"] not in before]
        finally:
            source.close()
    multicast_port = _cfg("MulticastPort", 16571)
    assert sockets, "ss showed no socket of this process"
    # no IPv6 at all (IPv6 = disable)
    assert all(":" not in s["host"] for s in sockets), sockets
    # discovery: the multicast responder listens on loopback only (ListenAddress)
    responders = [s for s in sockets if s["port"] == multicast_port]
    assert responders
    assert {s["host"] for s in responders} == {LOOPBACK}
    # every connection made goes to loopback
    connected = [s for s in sockets if s["state"] == "ESTAB"]
    assert connected
    assert all(s["host"] == LOOPBACK and s["peer"].startswith(f"{LOOPBACK}:")
               for s in connected), connected
    # what liblsl cannot keep private: the outlet's data server listens on every interface,
    # and so does its UDP time/info service (on ports of BasePort..BasePort+PortRange-1, or
    # random ones when other LSL processes hold those)
    listening = [s for s in sockets if s["proto"] == "tcp" and s["state"] == "LISTEN"]
    assert [s["host"] for s in listening] == [WILDCARD]
    exposed = [s for s in sockets if s["host"] != LOOPBACK]
    assert {s["host"] for s in exposed} == {WILDCARD}
    assert {s["proto"] for s in exposed} == {"tcp", "udp"}
