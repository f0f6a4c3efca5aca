"""The StatsD listeners of one process: their sockets bound from the flags (a failure names the flag), read
on this process's event loop or by the receiving workers, what they count, and their closing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

from bridge.config import FLAGS, Config
from bridge.net import format_address, parse_address
from bridge.receiving.batches import DatagramCounts, Receive
from bridge.receiving.datagrams import serve_datagrams, udp_drops, udp_socket, unixgram_socket
from bridge.receiving.portable import Fatal
from bridge.receiving.tcp import TCPCounts, close_servers, serve_tcp, tcp_socket

logger = logging.getLogger("bridge.server")


class StartupError(Exception):
    """Start-up cannot go on; the message is the one line the operator sees."""


@contextlib.contextmanager
def listening(listener: str, setting: str, address: str) -> Iterator[None]:
    """Turn a failure to bind or start a listener into a StartupError naming the listener, address and the flag
    of the Config field `setting`."""
    try:
        yield
    except OSError as error:
        reason = error.strerror or str(error)
        flag = FLAGS[setting].dotted or FLAGS[setting].name
        raise StartupError(f"cannot listen: {listener} on {address} ({flag}): {reason}") from None


class Listeners:
    """The UDP, TCP and unixgram listeners the flags ask for."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.udp, self.unixgram, self.tcp = DatagramCounts(), DatagramCounts(), TCPCounts()
        self.addresses: dict[str, str] = {}  # by listener, as bound (port 0 resolved)
        self.udp_inodes: list[int] = []  # the UDP sockets' inodes, to read their kernel drop counts
        self.servers: list[asyncio.Server] = []
        self.closers: list[Callable[[], None]] = []  # stop the datagram listeners, or close the workers' sockets

    @property
    def counts(self) -> dict[str, Any]:
        """Each kind's counts: DatagramCounts, or TCPCounts for tcp."""
        return {"udp": self.udp, "unixgram": self.unixgram, "tcp": self.tcp}

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped on the UDP sockets, their receive buffers full."""
        return udp_drops(self.udp_inodes) if self.udp_inodes else 0

    def bind(self) -> dict[str, socket.socket]:
        """Every listener's socket, bound (and TCP's listening), by kind; a failure names the flag."""
        config = self.config
        sockets: dict[str, socket.socket] = {}
        if config.statsd_listen_udp:
            with listening("udp", "statsd_listen_udp", config.statsd_listen_udp):
                host, port = parse_address(config.statsd_listen_udp)
                sockets["udp"] = udp_socket(host, port, config.statsd_read_buffer, config.statsd_reuse_port)
            self.addresses["udp"] = format_address(sockets["udp"].getsockname())
            self.udp_inodes.append(os.fstat(sockets["udp"].fileno()).st_ino)
        if config.statsd_listen_tcp:
            with listening("tcp", "statsd_listen_tcp", config.statsd_listen_tcp):
                host, port = parse_address(config.statsd_listen_tcp)
                sockets["tcp"] = tcp_socket(host, port, config.statsd_reuse_port)
            self.addresses["tcp"] = format_address(sockets["tcp"].getsockname())
        if config.statsd_listen_unixgram:
            with listening("unixgram", "statsd_listen_unixgram", config.statsd_listen_unixgram):
                sockets["unixgram"] = unixgram_socket(
                    config.statsd_listen_unixgram, config.statsd_unixsocket_mode, config.statsd_read_buffer
                )
            self.addresses["unixgram"] = config.statsd_listen_unixgram
        return sockets

    async def serve(self, receive: Receive, fatal: Fatal) -> None:
        """Bind every listener and read it on this process's event loop: one process does it all. A listener
        that can't go on calls `fatal`."""
        for kind, sock in self.bind().items():
            if kind == "tcp":
                with listening("tcp", "statsd_listen_tcp", self.config.statsd_listen_tcp):
                    self.servers.append(await serve_tcp(sock, receive, self.tcp))
            else:
                self.closers.append(serve_datagrams(sock, receive, self.counts[kind], fatal).stop)

    def bind_for_workers(self) -> dict[str, socket.socket]:
        """Bind every listener for the workers to read; the sockets stay open here until `close`."""
        sockets = self.bind()
        self.closers.extend(sock.close for sock in sockets.values())
        return sockets

    async def close(self) -> None:
        """Stop reading (the datagram listeners read what the kernel holds first) and close every socket."""
        for close in self.closers:
            close()
        await close_servers(self.servers)
        if self.config.statsd_listen_unixgram:
            with contextlib.suppress(OSError):
                os.unlink(self.config.statsd_listen_unixgram)
