"""UDP and unixgram sockets, read dry on each readiness callback. Datagrams in, batches out."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from bridge.logs import RateLimited, log
from bridge.net import bound_socket
from bridge.receiving.batches import MAX_DATAGRAM, DatagramCounts, Listening, Receive
from bridge.receiving.portable import Fatal, serve_with_asyncio_dgram

logger = logging.getLogger("bridge.listeners")


def set_receive_buffer(sock: socket.socket, size: int, where: str) -> int:
    """Ask for an SO_RCVBUF of `size` bytes; warn when the kernel grants less. Returns what it granted."""
    if size <= 0:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    try:
        # as root, SO_RCVBUFFORCE goes past net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), size)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux reports double
    if granted < size:
        log(
            logger,
            logging.WARNING,
            "kernel clamped the receive buffer; raise net.core.rmem_max to avoid loss",
            listener=where,
            requested=size,
            granted=granted,
        )
    return granted


# Datagrams read per readiness callback at most, so TCP connections and timers still get their turn.
DRAIN_BATCH = 256

# Once the socket is read dry, wait this long before asking for readiness again, so that each wake-up
# reads many datagrams instead of one: below saturation a wake-up per datagram costs more than the
# datagram's lines, and a wake-up after an idle pause starts with cold caches. Measured side by side
# (mixed load at 275k lines/s, CPU per line): 5 ms costs 15-25 % less than 1 ms, and 20 ms no less than
# 5 ms. Only where the receive buffer holds far more than arrives meanwhile: 5 ms of 1,000,000
# datagrams/s is about 5 MiB of kernel memory.
COALESCE_SECONDS = 0.005
# How long read_now reads at most: a worker asked for its hand-over reads what arrived meanwhile first
READ_NOW_SECONDS = 0.05
COALESCE_MIN_BUFFER = 16 * 1024 * 1024


def serve_datagrams(
    sock: socket.socket, receive: Receive, counts: DatagramCounts, fatal: Fatal | None = None
) -> Listening:
    """Start receiving on a bound datagram socket (UDP or unixgram). On a loop without readiness callbacks,
    the portable path (which stops the process through `fatal` if it can't go on); without `fatal`, such a
    loop raises NotImplementedError.

    On each readiness callback the socket is read until it is empty. Measured here on uvloop
    with single-line datagrams (bench/run.py, 3 s trials): asyncio-dgram's awaitable recv()
    took 90-110k lossless datagrams/s, a DatagramProtocol 95-140k, this loop 130-140k, where
    the Python sender reached its own limit.
    """
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    recv = sock.recv
    fd = sock.fileno()
    coalesce = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2 >= COALESCE_MIN_BUFFER
    resume: list[asyncio.TimerHandle] = []  # the pending re-arm while coalescing
    socket_errors = RateLimited(logger)

    def read_dry() -> int:
        batch: list[bytes] = []
        try:
            while len(batch) < DRAIN_BATCH:
                batch.append(recv(MAX_DATAGRAM))
        except BlockingIOError:
            pass
        except OSError as error:  # the OS's (an ICMP error on UDP, say), not a bug: counted, logged within a limit
            counts.socket_errors += 1
            socket_errors(logging.WARNING, "datagram socket error", error=str(error))
        if batch:
            counts.packets += len(batch)
            receive(batch)  # one call for the batch: the clock and the counts once, not per datagram
        return len(batch)

    def on_readable() -> None:
        if read_dry() < DRAIN_BATCH and coalesce:
            loop.remove_reader(fd)
            resume[:] = [loop.call_later(COALESCE_SECONDS, rearm)]

    def rearm() -> None:
        resume.clear()
        loop.add_reader(fd, on_readable)

    try:
        loop.add_reader(fd, on_readable)
    except NotImplementedError:  # Windows' Proactor loop has no readiness callbacks
        if fatal is None:
            raise
        return Listening(serve_with_asyncio_dgram(sock, receive, counts, fatal))

    def read_now() -> None:
        # for at most READ_NOW_SECONDS: a socket that fills as fast as it is read is never dry
        deadline = time.monotonic() + READ_NOW_SECONDS
        while read_dry() == DRAIN_BATCH and time.monotonic() < deadline:
            pass

    def stop() -> None:
        for handle in resume:
            handle.cancel()
        loop.remove_reader(fd)
        while read_dry() == DRAIN_BATCH:
            pass  # what the kernel already holds is handled before the socket closes
        sock.close()

    return Listening(stop, read_now)


def udp_drops(inodes: list[int]) -> int:
    """Datagrams the kernel dropped on these UDP sockets (the `drops` column of /proc/net/udp{,6}).

    statsd_exporter's udp_packet_drops_total counts its own queue's overflows; the loss that
    matters here happens in the kernel, when the receive buffer is full, and only it can count it.
    """
    wanted, drops = {str(inode) for inode in inodes}, 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table, encoding="ascii") as handle:
                next(handle, None)
                for row in handle:
                    fields = row.split()
                    if len(fields) > 12 and fields[9] in wanted:
                        drops += int(fields[12])
        except OSError:
            continue  # no procfs (not Linux): nothing to report
    return drops


def udp_socket(host: str, port: int, read_buffer: int, reuse_port: bool = False) -> socket.socket:
    sock = bound_socket(host, port, socket.SOCK_DGRAM, reuse_port)
    set_receive_buffer(sock, read_buffer, "udp")
    return sock


def unixgram_socket(path: str, mode: int, read_buffer: int) -> socket.socket:
    if os.path.exists(path) and not os.path.isdir(path):
        os.unlink(path)  # a socket file left by an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        set_receive_buffer(sock, read_buffer, "unixgram")
    except OSError:
        sock.close()
        raise
    return sock
