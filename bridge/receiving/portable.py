"""Datagram listeners on event loops without readiness callbacks (Windows' default Proactor loop).

The fast path (datagrams.serve_datagrams) reads a socket dry on each readiness callback, which
needs the loop's add_reader. A loop without it gets asyncio-dgram instead: one awaited receive per
datagram. Measured on uvloop with single-line datagrams (bench/run.py, 3 s trials): asyncio-dgram took
90-110k lossless datagrams/s where the readiness path took 130-140k, the Python sender's own limit;
so it is the portable path, picked only where the fast one can't run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from typing import Any

import asyncio_dgram

from bridge.logs import log
from bridge.receiving.batches import MAX_DATAGRAM, DatagramCounts, Receive

logger = logging.getLogger("bridge.listeners")


def serve_with_asyncio_dgram(sock: socket.socket, receive: Receive, counts: DatagramCounts) -> Callable[[], None]:
    """Receive on a bound datagram socket with asyncio-dgram; returns the function that stops it."""
    holder: dict[str, Any] = {}  # the stream, once asyncio-dgram made it

    def count_and_receive(batch: list[bytes]) -> None:
        counts.packets += len(batch)
        receive(batch)

    async def receive_loop() -> None:
        stream = holder["stream"] = await asyncio_dgram.from_socket(sock)
        while True:
            try:
                data, _ = await stream.recv()
            except asyncio_dgram.TransportClosed:
                return
            count_and_receive([data])

    task = asyncio.get_running_loop().create_task(receive_loop())

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
