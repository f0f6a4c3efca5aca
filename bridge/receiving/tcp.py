"""The TCP listener: newline-framed StatsD lines over asyncio streams, each line handed on as it arrives."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass

from bridge.logs import RateLimited, log
from bridge.net import bound_socket, listen_backlog
from bridge.receiving.batches import Receive

logger = logging.getLogger("bridge.listeners")

MAX_TCP_LINE = 65535  # a TCP line longer than the largest datagram closes its connection


@dataclass(slots=True)
class TCPCounts:
    """What the TCP listener counts (statsd_exporter's tcp_* self-metrics)."""

    connections: int = 0
    connection_errors: int = 0
    too_long_lines: int = 0


def tcp_socket(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    sock = bound_socket(host, port, socket.SOCK_STREAM, reuse_port)
    sock.listen(listen_backlog())
    return sock


async def serve_tcp(sock: socket.socket, receive: Receive, counts: TCPCounts) -> asyncio.Server:
    """Accept connections on a listening socket (several processes may accept on the same one). asyncio
    listens again with its own backlog, 100 unless told: told the kernel's longest. What ends a connection
    is counted each time and logged within a limit per kind (a client that reconnects in a loop)."""
    limited = RateLimited(logger)

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts.connections += 1
        peer = writer.get_extra_info("peername")
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError as end:
                    if end.partial:
                        receive([end.partial])  # the last line needs no newline
                    break
                except asyncio.LimitOverrunError:
                    counts.too_long_lines += 1
                    limited(logging.WARNING, "TCP line too long, closing connection", peer=peer, limit=MAX_TCP_LINE)
                    break
                receive([raw[:-1]])
        except (ConnectionError, OSError) as error:
            counts.connection_errors += 1
            limited(logging.INFO, "TCP connection error", peer=peer, error=str(error))
        finally:
            writer.close()

    return await asyncio.start_server(connection, sock=sock, limit=MAX_TCP_LINE, backlog=listen_backlog())


async def close_servers(servers: list[asyncio.Server], grace: float = 2.0) -> None:
    """Stop accepting, and wait up to `grace` seconds for the connections to end (told, not raised, if not)."""
    for server in servers:
        server.close()
    for server in servers:
        try:
            await asyncio.wait_for(server.wait_closed(), grace)
        except (asyncio.TimeoutError, OSError) as error:
            log(logger, logging.WARNING, "TCP connections not closed in time", error=repr(error))
