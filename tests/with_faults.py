"""Run the bridge with faults put in, for the tests of what a failure costs (tests/integration/test_failures.py).

    STATSD_BRIDGE_FAULTS=line,reaper python tests/with_faults.py [bridge flags]

The same program, flags and output, with these faults (comma-separated in STATSD_BRIDGE_FAULTS):

- `line`: a line whose name starts with `fault.` raises inside the ingest, as a bug there would;
- `reaper`: the reaper's first pass raises;
- `event_loop`: a callback nobody awaits raises on the event loop a second after start-up;
- `reload`: a mapping reload raises inside, as a bug there would;
- `http`: a request for `/fault` raises inside the web app's handler;
- `datagram_recv`: the portable datagram listener (asyncio-dgram, which tests/without_add_reader.py makes
  the bridge use; that program puts these faults in too) meets an error where a datagram starts with `fault.`;
- `nofile=N`: the process may hold at most N open files (soft and hard limit).
"""

import asyncio
import os
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncio_dgram.aio

import bridge.daemon
import bridge.ingest.lines
import bridge.main
from bridge.daemon import Bridge
from bridge.series.store import Store
from bridge.web.app import App

FAULTS = dict(fault.partition("=")[::2] for fault in os.environ.get("STATSD_BRIDGE_FAULTS", "").split(",") if fault)


class InjectedFaultError(RuntimeError):
    """The error a fault raises, named so that a test can find it in the log."""


if "line" in FAULTS:
    parse_line = bridge.ingest.lines.parse_line

    def parse_line_with_a_bug(line, *args, **kwargs):
        if line.startswith("fault."):
            raise InjectedFaultError(f"a bug met {line!r}")
        return parse_line(line, *args, **kwargs)

    bridge.ingest.lines.parse_line = parse_line_with_a_bug

if "reaper" in FAULTS:
    reap = Store.reap
    passes = []

    def reap_failing_once(self, now, after):
        passes.append(now)
        if len(passes) == 1:
            raise InjectedFaultError("the reaper's first pass")
        return reap(self, now, after)

    Store.reap = reap_failing_once

if "event_loop" in FAULTS:
    start = Bridge.start

    async def start_then_fail(self):
        await start(self)

        def fail():
            raise InjectedFaultError("a callback on the event loop")

        asyncio.get_running_loop().call_later(1.0, fail)

    Bridge.start = start_then_fail

if "reload" in FAULTS:

    def warmed_with_a_bug(*args, **kwargs):
        raise InjectedFaultError("a bug in the reload")

    bridge.daemon.warmed = warmed_with_a_bug

if "http" in FAULTS:
    route = App.route

    async def route_with_a_bug(self, request):
        if request.path == "/fault":
            raise InjectedFaultError("a bug in a page")
        return await route(self, request)

    App.route = route_with_a_bug

if "datagram_recv" in FAULTS:
    recv = asyncio_dgram.aio.DatagramStream.recv

    async def recv_failing_on_faults(self):
        data, address = await recv(self)
        if data.startswith(b"fault."):
            raise InjectedFaultError(f"receiving {data!r}")
        return data, address

    asyncio_dgram.aio.DatagramStream.recv = recv_failing_on_faults

if "nofile" in FAULTS:
    limit = int(FAULTS["nofile"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

if __name__ == "__main__":
    bridge.main.cli()
