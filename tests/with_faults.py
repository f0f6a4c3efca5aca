"""Run the bridge with faults put in, for the tests of what a failure costs (tests/integration/test_failures.py).

    STATSD_BRIDGE_FAULTS=line,reaper python tests/with_faults.py [bridge flags]

The same program, flags and output, with these faults (comma-separated in STATSD_BRIDGE_FAULTS):

- `line`: a line whose name starts with `fault.` raises inside the ingest, as a bug there would;
- `reaper`: the reaper's first pass raises;
- `event_loop`: a callback nobody awaits raises on the event loop a second after start-up;
- `reload`: a mapping reload raises inside, as a bug there would;
- `http`: a request for `/fault` raises inside the web app's handler, and `/invalid` is answered with a
  response h11 refuses to send (a header name with a space);
- `datagram_recv`: the portable datagram listener (asyncio-dgram, which tests/without_add_reader.py makes
  the bridge use; that program puts these faults in too) meets an error where a datagram starts with `fault.`;
- `datagram_closed`: the portable datagram listener's transport closes under it a second after start-up;
- `web_reload`: a web config reload raises inside, as a bug there would;
- `worker_event_loop`: in each receiving worker (--statsd.workers; they run this program too), a callback
  nobody awaits raises on the event loop right after start-up;
- `worker_reload`: worker 1 fails to compile the rules of a mapping reload;
- `pool_supervisor`: the main process's supervisors of the workers raise a second after start-up;
- `nofile=N`: the process may hold at most N open files (soft and hard limit).

    python tests/with_faults.py worker [worker flags]

runs a receiving worker (bridge.workers) with the same faults.
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
import bridge.receiving.portable
import bridge.web.front
import bridge.workers.pool
import bridge.workers.process
from bridge.daemon import Bridge
from bridge.series.store import Store
from bridge.web.app import App
from bridge.web.http import Response
from bridge.workers.process import Worker

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
        if request.path == "/invalid":
            return Response(200, [("Bad Name", "x")], b"")
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

if "datagram_closed" in FAULTS:
    from_socket = asyncio_dgram.from_socket

    async def from_socket_closed_a_second_later(sock):
        stream = await from_socket(sock)
        asyncio.get_running_loop().call_later(1.0, stream.close)
        return stream

    bridge.receiving.portable.asyncio_dgram.from_socket = from_socket_closed_a_second_later

if "web_reload" in FAULTS:

    def load_with_a_bug(path):
        raise InjectedFaultError("a bug in the web config reload")

    bridge.web.front.load = load_with_a_bug

if "worker_event_loop" in FAULTS:
    listen = Worker.listen

    async def listen_then_fail(self):
        await listen(self)

        def fail():
            raise InjectedFaultError(f"a callback on worker {self.index}'s event loop")

        asyncio.get_running_loop().call_soon(fail)

    Worker.listen = listen_then_fail

if "worker_reload" in FAULTS:
    reload = Worker.reload

    async def reload_failing_in_worker_1(self, writer, text, path):
        if self.index != 1:
            return await reload(self, writer, text, path)
        compile_mapping = bridge.workers.process.compile_mapping

        def compile_with_a_bug(*args):
            raise InjectedFaultError("a bug in worker 1's reload")

        bridge.workers.process.compile_mapping = compile_with_a_bug
        try:
            return await reload(self, writer, text, path)
        finally:
            bridge.workers.process.compile_mapping = compile_mapping

    Worker.reload = reload_failing_in_worker_1

if "pool_supervisor" in FAULTS:

    async def supervise_with_a_bug(self, handle):
        await asyncio.sleep(1.0)
        raise InjectedFaultError(f"a bug in worker {handle.index}'s supervisor")

    bridge.workers.pool.Pool._supervise = supervise_with_a_bug

bridge.workers.pool.WORKER_PROGRAM = (__file__, "worker")

if "nofile" in FAULTS:
    limit = int(FAULTS["nofile"])
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        sys.exit(bridge.workers.process.main(sys.argv[2:]))
    bridge.main.cli()
