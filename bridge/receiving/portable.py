"""Datagram listeners on event loops without readiness callbacks (Windows' default Proactor loop).

The fast path (datagrams.serve_datagrams) reads a socket dry on each readiness callback, which
needs the loop's add_reader. A loop without it gets asyncio-dgram instead: one awaited receive per
datagram. Measured on uvloop with single-line datagrams (bench/run.py, 3 s trials): asyncio-dgram took
90-110k lossless datagrams/s where the readiness path took 130-140k, the Python sender's own limit;
so it is the portable path, picked only where the fast one can't run.

Its receive task is supervised. A failure where a datagram went (a bug) is logged with its traceback and
counted in statsd_bridge_internal_errors_total{component="listener"}, through the event loop's exception
handler as a failed readiness callback of the fast path is, and receiving goes on after a pause that
doubles while failures follow each other. An error the socket reports (the OS's, not a bug) is counted
where the fast path counts it (DatagramCounts.socket_errors) and logged within a rate limit. A listener
that can't go on (its transport closed under it, or the task ended on what it did not expect) is
reported and the process told to exit 1 (`fatal`): reopening in place would need the address, buffer
size, reuse-port and file mode the socket was made with, and whatever closed it is unknown, so a fresh
process from the supervisor (systemd, Kubernetes) is the state known to be right; until it exits,
/-/ready answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

import asyncio_dgram

from bridge.logs import RateLimited, log
from bridge.receiving.batches import MAX_DATAGRAM, DatagramCounts, Receive

logger = logging.getLogger("bridge.listeners")

# After a failure, receiving goes on after this pause (seconds), doubled up to LONGEST_PAUSE while failures
# follow each other without a datagram between them, so that a socket that keeps failing can't flood the log
FIRST_PAUSE = 0.01
LONGEST_PAUSE = 1.0


Fatal = Callable[[str], None]  # the process can't go on: it stops and exits 1, saying why


def report_failure(loop: asyncio.AbstractEventLoop, error: BaseException, what: str) -> None:
    """Counted and logged by the loop's exception handler (bridge.supervise.loop_exception_handler)."""
    loop.call_exception_handler({"message": what, "exception": error, "component": "listener"})


def serve_with_asyncio_dgram(
    sock: socket.socket, receive: Receive, counts: DatagramCounts, fatal: Fatal
) -> Callable[[], None]:
    """Receive on a bound datagram socket with asyncio-dgram; returns the function that stops it."""
    holder: dict[str, Any] = {}  # the stream, once asyncio-dgram made it
    socket_errors = RateLimited(logger)

    def count_and_receive(batch: list[bytes]) -> None:
        counts.packets += len(batch)
        receive(batch)

    async def receive_loop() -> None:
        stream = holder["stream"] = await asyncio_dgram.from_socket(sock)
        pause = FIRST_PAUSE
        while True:
            try:
                data, _ = await stream.recv()
                count_and_receive([data])
                pause = FIRST_PAUSE
                continue
            except asyncio_dgram.TransportClosed:  # not by stop(), which cancels this task first
                raise
            except OSError as error:  # the socket's, as the fast path meets them: counted there, not a bug
                counts.socket_errors += 1
                socket_errors(logging.WARNING, "datagram socket error", error=str(error))
            except Exception as error:
                report_failure(loop, error, "datagram listener failed; receiving goes on")
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)

    def ended(task: asyncio.Task) -> None:
        if task.cancelled():
            return  # stop()
        error = task.exception()
        if isinstance(error, asyncio_dgram.TransportClosed):
            what = "datagram listener's socket closed under it; no longer receiving"
        else:
            what = "datagram listener stopped on an error; no longer receiving"
        report_failure(loop, error or RuntimeError("the receive task returned"), what)
        fatal(f"{what}: exiting, for a supervisor to start the bridge again")

    loop = asyncio.get_running_loop()
    task = loop.create_task(receive_loop())
    task.add_done_callback(ended)

    def stop() -> None:
        task.cancel()
        stream = holder.get("stream")
        if stream is not None:
            # what the transport read but the loop has not handed on yet (asyncio-dgram 3 keeps it
            # in an asyncio.Queue), then what the kernel still holds, before the socket closes
            queue = stream._recvq
            batch: list[bytes] = []
            while not queue.empty():
                data, _ = queue.get_nowait()
                if data is not None:
                    batch.append(data)
            if batch:
                count_and_receive(batch)
        sock.setblocking(False)
        batch = []
        with contextlib.suppress(BlockingIOError):
            while True:
                batch.append(sock.recv(MAX_DATAGRAM))
        if batch:
            count_and_receive(batch)
        if stream is not None:
            stream.close()
        else:
            sock.close()

    log(logger, logging.INFO, "datagram listener without readiness callbacks: asyncio-dgram")
    return stop
