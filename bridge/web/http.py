"""HTTP/1.1 on the event loop: h11 parses, this module holds each connection to its limits.

Every connection costs a few kilobytes and no thread, so a burst of clients that open connections and
send half a request is accepted at once and then timed out; the handler (rendering a scrape, checking a
password) runs on a small thread pool the caller owns, so the loop keeps reading datagrams meanwhile.
uvicorn, the obvious candidate, has no timeout for a request head that never completes and answers an
oversized head with 400: this module exists for those two answers (408 and 431).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import cast
from urllib.parse import unquote, urlsplit

import h11

from bridge.logs import RateLimited
from bridge.net import format_address, listen_backlog

logger = logging.getLogger("bridge.http")


@dataclass(frozen=True)
class Limits:
    # The whole request head must arrive within this long of its first byte (Go's ReadHeaderTimeout).
    header_timeout: float = 10.0
    # A kept-alive connection may wait this long for its next request: longer than any scrape interval.
    idle_timeout: float = 330.0
    # Larger heads get 431. Go allows 1 MiB; 64 KiB bounds the memory of 10,000 half-sent heads to 640 MiB.
    max_header_bytes: int = 64 * 1024
    max_body_bytes: int = 64 * 1024  # a bigger body gets 413; only BODY_PATHS keep theirs
    # Connections past this are closed as soon as they are accepted, so file descriptors never run out.
    max_connections: int = 10_000
    # A response the client doesn't read within this long is abandoned with its connection.
    write_timeout: float = 60.0


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # percent-decoded, without the query
    query: str
    headers: dict[str, str]  # lower-case names; a repeated header keeps its last value
    body: bytes = b""  # at most Limits.max_body_bytes
    peer: str = ""  # the client's address, host:port


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


Handler = Callable[[Request], Awaitable[Response]]
# the pages that read a request's body (the clearing form); any other body is only counted against the
# limit, so that a client can't make the server hold 64 KiB for each of its connections
BODY_PATHS = frozenset({"/-/clear"})


ERROR_REASONS = (
    "malformed_request",  # 400
    "header_timeout",  # 408: the head was not complete in time
    "header_too_large",  # 431
    "body_too_large",  # 413
    "idle_timeout",  # a kept-alive connection sent nothing in time: closed without a word
    "write_timeout",  # the client did not read its response
    "too_many_connections",
    "tls_rejected",  # a client certificate without an allowed SAN
)


@dataclass
class HTTPStats:
    """What the server counts; exposed as statsd_bridge_http_* self-metrics."""

    open_connections: int = 0
    max_connections: int = 0  # Limits.max_connections: what the open-files limit leaves of it
    connections: int = 0
    requests: Counter[int] = field(default_factory=Counter)  # by status code
    errors: Counter[str] = field(default_factory=lambda: Counter({reason: 0 for reason in ERROR_REASONS}))


def _raw_response(status: int, text: str) -> bytes:
    """A complete response written without h11, for answers that end the connection whatever state h11
    is in (a head that never completed has no request for h11 to answer)."""
    body = text.encode()
    phrase = HTTPStatus(status).phrase
    return (
        f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def address(peername: object) -> str:
    """A socket's peer name as host:port ([host]:port for IPv6), for the log; whatever else as it is."""
    return format_address(peername) if isinstance(peername, tuple) else str(peername or "")


def parse_target(target: bytes) -> tuple[str, str]:
    """(path, query) of a request target, absolute form included, as Go's r.URL.Path and RawQuery."""
    text = target.decode("latin-1")
    if not text.startswith("/"):
        parts = urlsplit(text)
        return unquote(parts.path or "/"), parts.query
    path, _, query = text.partition("?")
    return unquote(path), query


class Connection(asyncio.Protocol):
    """One client connection: reads request heads through h11, one request at a time, with timeouts."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.loop = server.loop
        self.transport: asyncio.Transport  # set by connection_made, before anything else is called
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=server.limits.max_header_bytes)
        self.timer: asyncio.TimerHandle | None = None
        self.head_started = False  # bytes of the current request have arrived
        self.idle = False  # kept alive after a response, waiting for the next request
        self.busy = False  # a request is being answered; reading is paused meanwhile
        self.request: Request | None = None
        self.body_size = 0
        self.body: list[bytes] = []  # the current request's body, as it arrives
        self.draining: asyncio.Future | None = None
        self.peer = ""  # the client's address, host:port, for the log

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream server's transports are Transports
        self.peer = address(transport.get_extra_info("peername"))
        stats = self.server.stats
        stats.connections += 1
        if len(self.server.connections) >= self.server.limits.max_connections:
            self.server.count_error("too_many_connections", transport.get_extra_info("peername"))
            self.transport.abort()
            return
        self.server.connections.add(self)
        stats.open_connections = len(self.server.connections)
        tls = transport.get_extra_info("ssl_object") is not None
        if tls and not self.server.peer_allowed(transport.get_extra_info("peercert")):
            self.server.count_error("tls_rejected", transport.get_extra_info("peername"))
            self.transport.abort()
            return
        self._arm(self.server.limits.header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.server.connections.discard(self)
        self.server.stats.open_connections = len(self.server.connections)
        if self.draining is not None and not self.draining.done():
            self.draining.set_result(None)

    def pause_writing(self) -> None:
        if self.draining is None or self.draining.done():
            self.draining = self.loop.create_future()

    def resume_writing(self) -> None:
        if self.draining is not None and not self.draining.done():
            self.draining.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.head_started = True
        if self.idle:
            # a kept-alive connection started its next request: the head timeout runs from here
            self.idle = False
            self._arm(self.server.limits.header_timeout, self._head_timed_out)
        self.h11.receive_data(data)
        self._next_events()

    def eof_received(self) -> bool | None:
        # A client may send its request and shut its side (printf ... | nc): answer it, then close.
        self.h11.receive_data(b"")
        self._next_events()
        return self.transport.get_extra_info("ssl_object") is None

    # -- requests

    def _next_events(self) -> None:
        while not self.busy and not self.transport.is_closing():
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as error:
                status = error.error_status_hint
                if status == 431:
                    limit = self.server.limits.max_header_bytes
                    self._fail(status, "header_too_large", f"the request head is over {limit} bytes\n", error)
                else:
                    self._fail(status, "malformed_request", "not an HTTP/1.1 request\n", error)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                # h11 caps only a head still incomplete; one that arrived whole in a read is measured here
                size = len(event.target) + sum(len(name) + len(value) + 4 for name, value in event.headers)
                if size > self.server.limits.max_header_bytes:
                    limit = self.server.limits.max_header_bytes
                    self._fail(431, "header_too_large", f"the request head is over {limit} bytes\n")
                    return
                path, query = parse_target(event.target)
                headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
                self.request = Request(event.method.decode("ascii"), path, query, headers, peer=self.peer)
                self.body_size = 0
                self.body.clear()
            elif isinstance(event, h11.Data):
                self.body_size += len(event.data)
                if self.body_size > self.server.limits.max_body_bytes:
                    self._fail(413, "body_too_large", "the request body is too large\n")
                    return
                if self.request is not None and self.request.path in BODY_PATHS:
                    self.body.append(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self._disarm()
                self.busy = True
                self.transport.pause_reading()
                # the server holds each answer's task until it is done: the loop keeps only a weak reference
                assert self.request is not None  # h11 gives a Request before its EndOfMessage
                if self.body:
                    self.request = replace(self.request, body=b"".join(self.body))
                    self.body.clear()
                task = self.loop.create_task(self._answer(self.request))
                self.server.answering.add(task)
                task.add_done_callback(self.server.answering.discard)
                return
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.close()
                return

    async def _answer(self, request: Request) -> None:
        try:
            response = await self.server.handler(request)
        except Exception as error:
            self.server.failed(error, "request failed", path=request.path)
            response = Response(
                500, [("Content-Type", "text/plain; charset=utf-8")], b"internal error, see the bridge's log\n"
            )
        if self.transport is None or self.transport.is_closing():
            return
        self.server.stats.requests[response.status] += 1
        self._send(request, response)
        if self.draining is not None and not self.draining.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.draining), self.server.limits.write_timeout)
            except asyncio.TimeoutError:
                self.server.count_error("write_timeout", self.transport.get_extra_info("peername"))
                self.transport.abort()
                return
        self._next_request()

    def _send(self, request: Request, response: Response) -> None:
        headers = [*response.headers, ("Content-Length", str(len(response.body)))]
        if self.server.closing:
            headers.append(("Connection", "close"))
        try:
            head = h11.Response(status_code=response.status, headers=headers, reason=HTTPStatus(response.status).phrase)
            data = self.h11.send(head)
            if request.method != "HEAD":
                data += self.h11.send(h11.Data(data=response.body))
            data += self.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError as error:  # our own response is invalid: a bug
            self.server.failed(error, "cannot send the response", path=request.path)
            self.transport.abort()
            return
        self.transport.write(data)

    def _next_request(self) -> None:
        if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is not h11.DONE:
            self.transport.close()
            return
        self.h11.start_next_cycle()
        self.busy = False
        self.head_started = bool(self.h11.trailing_data[0])  # a pipelined request already arriving
        self.idle = not self.head_started
        if self.idle:
            self._arm(self.server.limits.idle_timeout, self._idle_timed_out)
        else:
            self._arm(self.server.limits.header_timeout, self._head_timed_out)
        self.transport.resume_reading()
        self._next_events()

    def _fail(self, status: int, reason: str, text: str, detail: object = None) -> None:
        self._disarm()
        self.server.stats.requests[status] += 1
        self.server.count_error(reason, self.transport.get_extra_info("peername"), detail=detail)
        self.transport.write(_raw_response(status, f"{HTTPStatus(status).phrase}: {text}"))
        self.transport.close()

    # -- timeouts

    def _arm(self, seconds: float, callback: Callable[[], None]) -> None:
        self._disarm()
        self.timer = self.loop.call_later(seconds, callback)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _head_timed_out(self) -> None:
        self.timer = None
        if self.busy or self.transport is None or self.transport.is_closing():
            return
        if self.head_started:
            limit = self.server.limits.header_timeout
            self._fail(408, "header_timeout", f"the request head took longer than {limit:g}s\n")
        else:
            # nothing sent since the connection opened: as Go, close without a word
            self.server.count_error("header_timeout", self.transport.get_extra_info("peername"))
            self.transport.close()

    def _idle_timed_out(self) -> None:
        self.timer = None
        if not self.busy and self.transport is not None:
            self.server.count_error("idle_timeout", None, log=False)
            self.transport.close()


class Server:
    """The listening side: the connections it holds, what they count, and their handler."""

    def __init__(
        self,
        handler: Handler,
        limits: Limits | None = None,
        peer_allowed: Callable[[dict | None], bool] = lambda _certificate: True,
        failures: Counter[str] | None = None,
    ) -> None:
        self.handler = handler
        self.limits = limits or Limits()
        self.peer_allowed = peer_allowed
        self.stats = HTTPStats(max_connections=self.limits.max_connections)
        # a handler that raised, counted as component "http" with the process's other internal errors
        self.failures: Counter[str] = Counter() if failures is None else failures
        self.connections: set[Connection] = set()
        self.answering: set[asyncio.Task] = set()  # requests being answered
        self.closing = False
        self.loop = asyncio.get_running_loop()
        self.listener: asyncio.Server | None = None
        self._log = RateLimited(logger)
        # the failures counted last: the requests that shared one render all meet its one exception
        self._counted: collections.deque[BaseException] = collections.deque(maxlen=16)

    def failed(self, error: BaseException, what: str, **fields: object) -> None:
        """A bug met answering a request: counted once per failure (not per request that shared it) as
        component "http", and logged with its traceback within a limit."""
        if any(error is counted for counted in self._counted):
            return
        self._counted.append(error)
        self.failures["http"] += 1
        self._log.exception(what, kind="http", error=error, component="http", **fields)

    def count_error(self, reason: str, peer: object, log: bool = True, detail: object = None) -> None:
        self.stats.errors[reason] += 1
        if log:
            fields = {"reason": reason, "peer": peer} | ({"detail": str(detail)} if detail else {})
            self._log(logging.WARNING, "http request refused", kind=reason, **fields)

    async def listen(self, sock: socket.socket, ssl_context: ssl.SSLContext | None = None) -> None:
        """Serve on a bound socket, with the kernel's longest accept queue."""
        self.listener = await self.loop.create_server(
            lambda: Connection(self),
            sock=sock,
            ssl=ssl_context,
            backlog=listen_backlog(),
            ssl_handshake_timeout=self.limits.header_timeout if ssl_context else None,
        )

    async def serve_with(self, ssl_context: ssl.SSLContext) -> None:
        """Accept new connections with another TLS context (renewed certificates): the same listening socket,
        served anew; open connections keep the context they started with. Raises OSError."""
        old = self.listener
        assert old is not None, "serve_with before listen"
        sock = old.sockets[0]
        duplicate = socket.socket(sock.family, sock.type, fileno=os.dup(sock.fileno()))
        try:
            await self.listen(duplicate, ssl_context)
        except BaseException:
            duplicate.close()
            raise
        old.close()

    async def close(self, grace: float = 2.0) -> None:
        """Stop accepting, let requests in flight finish for up to `grace` seconds, then close the rest."""
        self.closing = True
        if self.listener is not None:
            self.listener.close()
        deadline = self.loop.time() + grace
        while any(c.busy for c in self.connections) and self.loop.time() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
