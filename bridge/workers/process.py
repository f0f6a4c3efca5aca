"""A receiving worker: one process of `--statsd.workers`, started by the main process (pool.py).

It reads the listening sockets it inherited (each datagram and each TCP connection goes to whichever
worker reads it first), parses, maps and applies lines to series of its own with the same ingest as one
process, and hands what changed over to the main process when asked (handover.py). It holds no caps, no
ttl and no reaper: the main process's store does. Signals are the main process's business: a worker
ignores SIGINT, SIGTERM and SIGHUP (a terminal's Ctrl-C and systemd's stop reach the whole group) and
stops when told, or when the main process is gone.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from bridge.logs import log, setup, summarise_held_back
from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Mapper, warmed
from bridge.mapping.schema import MappingConfig, MappingError
from bridge.receiving.batches import DatagramCounts, Listening
from bridge.receiving.datagrams import serve_datagrams
from bridge.receiving.relay import Relay, relayed
from bridge.receiving.tcp import TCPCounts, close_servers, serve_tcp
from bridge.stats import Stats, take_counts
from bridge.supervise import loop_exception_handler, report_failure
from bridge.workers import channel
from bridge.workers.handover import WorkerIngest, WorkerStore
from bridge.workers.records import Flushed

logger = logging.getLogger("bridge.worker")

# How often a worker hands its new series over ahead of the hand-over: until the store accepts a series,
# each of its lines takes the full path (to be counted, should the store refuse it)
INTRODUCE_SECONDS = 0.1


def compile_mapping(text: str | None, path: str, utf8_names: bool, known: Iterable[tuple[str, str]] = ()) -> Mapper:
    """The mapper of a mapping file's text (the one the main process read), warmed with `known` routes;
    `utf8_names`: --statsd.utf8-names, as the main process was given it."""
    config = load_mapping(text, path, utf8_names) if text is not None else MappingConfig(utf8_names=utf8_names)
    return warmed(config, known)


class Worker:
    def __init__(self, start: dict[str, Any]) -> None:
        self.index = start["index"]
        self.store = WorkerStore()
        self.store.reserve(start["reserved"])
        self.store.learn([("+", name, metric_type) for name, metric_type in start["types"].items()])
        self.stats = Stats()
        mapper = compile_mapping(start["mapping"], start["mapping_path"], start["utf8_names"])
        self.ingest = WorkerIngest(mapper, self.store, self.stats, dialects=start["dialects"])
        self.counts: dict[str, Any] = {"udp": DatagramCounts(), "unixgram": DatagramCounts(), "tcp": TCPCounts()}
        self.relays = [Relay(target, start["relay_packet_length"]) for target in start["relays"]]
        self.fds: dict[str, int] = start["fds"]
        self.listening: list[Listening] = []
        self.servers: list[asyncio.Server] = []

    async def listen(self) -> None:
        receive = relayed(self.relays, self.ingest.packets)
        for kind, fd in self.fds.items():
            sock = socket.socket(fileno=fd)
            if kind == "tcp":
                self.servers.append(await serve_tcp(sock, receive, self.counts["tcp"]))
            else:
                self.listening.append(serve_datagrams(sock, receive, self.counts[kind]))

    async def stop_listening(self) -> None:
        for listening in self.listening:
            listening.stop()  # reads what the kernel holds first
        self.listening = []
        await close_servers(self.servers)
        for relay in self.relays:
            relay.close()

    def hand_over(
        self, round_number: int, forget: list[int], accepted: list[int], changes: list[tuple[str, str, str]]
    ) -> tuple:
        for listening in self.listening:
            listening.read_now()  # a line sent before the scrape that asked for this is in it
        summarise_held_back()  # every second or so: a flood of warnings that stopped is told how large it was
        new, known, forgotten = self.store.answer(forget, accepted, changes, time.monotonic())
        return self._message(round_number, new, known, forgotten)

    def introduce(self) -> tuple | None:
        """The series made since the last hand-over, handed over ahead of it (round 0: asked by nobody), so
        that the store accepts them soon and their lines take the cached path."""
        new = self.store.introduce()
        return self._message(0, new, [], []) if new else None

    def _message(self, round_number: int, new: list, known: list, forgotten: list[int]) -> tuple:
        mapper = self.ingest.mapper
        mapper_counts = (mapper.cache_gets, mapper.cache_hits, mapper.cache_length)
        mapper.cache_gets = mapper.cache_hits = 0
        listeners = {kind: _take_fields(counts) for kind, counts in self.counts.items()}
        relays = [
            (relay.target, relay.stats.lines, relay.stats.packets, dict(relay.stats.dropped)) for relay in self.relays
        ]
        for relay in self.relays:
            relay.stats.lines = relay.stats.packets = 0
            relay.stats.dropped.clear()
        return ("flushed", Flushed(round_number, new, known, forgotten, take_counts(self.stats), listeners,
                                   mapper_counts, relays))  # fmt: skip

    async def introduce_often(self, writer: asyncio.StreamWriter) -> None:
        while True:
            await asyncio.sleep(INTRODUCE_SECONDS)
            try:
                message = self.introduce()
            except Exception:  # a bug: counted (handed over with the next counts) and logged; tried again
                self.stats.internal_errors["introduce"] += 1
                logger.exception("new series could not be handed over ahead")
                continue
            if message is not None:
                channel.send(writer, message)
                await writer.drain()

    async def reload(self, writer: asyncio.StreamWriter, text: str | None, path: str) -> None:
        """Compile the new rules on a thread, so that the loop goes on receiving, then swap them in at once."""
        try:
            known = self.ingest.mapper.routes_known()
            utf8_names = self.ingest.mapper.config.utf8_names  # a flag: the same for every mapping file
            mapper = await asyncio.get_running_loop().run_in_executor(
                None, compile_mapping, text, path, utf8_names, known
            )
        except MappingError as error:  # the main process compiled the same text: it can't fail here
            log(logger, logging.ERROR, "mapping reload failed in a worker, keeping the old rules", error=str(error))
            channel.send(writer, ("reloaded", False, str(error)))
            return
        except Exception as error:  # a bug: counted and logged, and the main process told
            self.stats.internal_errors["reload"] += 1
            logger.exception("mapping reload failed in a worker (a bug), keeping the old rules")
            channel.send(writer, ("reloaded", False, repr(error)))
            return
        self.ingest.set_mapper(mapper)
        channel.send(writer, ("reloaded", True, ""))

    async def serve(self, sock: socket.socket) -> int:
        # what the loop catches (a failed readiness callback, a task's escape) is counted with this worker's
        # other internal errors, handed over with them to the main process's internal_errors_total
        asyncio.get_running_loop().set_exception_handler(loop_exception_handler(self.stats.internal_errors))
        await self.listen()
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        channel.send(writer, ("ready", os.getpid()))
        reloads: set[asyncio.Task] = set()
        introducer = asyncio.ensure_future(self.introduce_often(writer))
        report_failure(introducer, "introduce", "the worker's early hand-over stopped on an error")
        while True:
            try:
                message = await channel.receive(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                log(logger, logging.ERROR, "the main process is gone; worker exiting", worker=self.index)
                await self.stop_listening()
                return 1
            kind = message[0]
            if kind == "flush":
                channel.send(writer, self.hand_over(*message[1:]))
            elif kind == "news":
                self.store.hear(*message[1:])
            elif kind == "reload":
                task = asyncio.ensure_future(self.reload(writer, message[1], message[2]))
                reloads.add(task)
                task.add_done_callback(reloads.discard)
                report_failure(task, "reload", "a worker's reload stopped on an error")
            elif kind == "stop":
                introducer.cancel()
                await self.stop_listening()
                channel.send(writer, self.hand_over(*message[1:]))
                await writer.drain()
                writer.close()
                return 0
            await writer.drain()


def _take_fields(counts: Any) -> dict[str, int]:
    taken = asdict(counts)
    for name in taken:
        setattr(counts, name, 0)
    return taken


def _read_start(sock: socket.socket) -> dict[str, Any]:
    """The first message, read before any event loop runs: what to listen on and how to map."""
    header = _read_exactly(sock, channel.HEADER)
    return channel.decode(_read_exactly(sock, int.from_bytes(header, "big")))


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise SystemExit("statsd-bridge worker: the main process closed the channel before the start")
        data += chunk
    return bytes(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.workers", description="A receiving worker of statsd-bridge")
    parser.add_argument("--worker", required=True, help="this worker's number and the count, as 1/2")
    parser.add_argument("--channel", type=int, required=True, help="the descriptor of the main process's channel")
    args = parser.parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    sock = socket.socket(fileno=args.channel)
    start = _read_start(sock)
    setup(*start["log"])
    sys.setswitchinterval(0.001)  # a reload's compile on a thread gives the receive loop the GIL back often
    worker = Worker(start)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(worker.serve(sock))
    return uvloop.run(worker.serve(sock))
