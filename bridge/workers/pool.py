"""The main process's side of --statsd.workers: it starts the receiving workers on the sockets it bound,
asks them for what they hold (every FLUSH_INTERVAL, and before every scrape), applies that to the one
store, restarts a worker that dies, and stops them all, drained, on shutdown.

The listening sockets stay open here for the life of the bridge, so that the kernel keeps queueing
datagrams and connections while a worker is started again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.logs import log
from bridge.receiving.relay import RelayStats
from bridge.series.store import Store
from bridge.stats import Stats, add_counts
from bridge.workers import channel
from bridge.workers.merge import Known, Merger
from bridge.workers.records import NewRecord, Record

logger = logging.getLogger("bridge.workers")

# Seconds between hand-overs: what a worker that dies loses at most, besides the batch it was reading
FLUSH_INTERVAL = 1.0
# How long a scrape, a sweep or the shutdown waits for the workers' hand-overs
COLLECT_TIMEOUT = 2.0
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0  # a worker reads what its sockets hold (up to --statsd.read-buffer) before it hands over
RELOAD_TIMEOUT = 60.0
# More restarts than this within CRASH_WINDOW seconds is a crash loop: the bridge exits, saying why
CRASH_RESTARTS = 5
CRASH_WINDOW = 60.0


class WorkerStartError(Exception):
    """A worker did not start; the message says how it ended."""


@dataclass
class MapperCounts:
    """The workers' mappers' cache counts, summed (self_metrics reads these as it reads a Mapper's)."""

    cache_gets: int = 0
    cache_hits: int = 0
    lengths: dict[int, int] = field(default_factory=dict)  # worker -> its cache length

    @property
    def cache_length(self) -> int:
        return sum(self.lengths.values())


@dataclass
class Handle:
    """One worker as the main process sees it."""

    index: int
    process: asyncio.subprocess.Process | None = None
    writer: asyncio.StreamWriter | None = None
    known: Known = field(default_factory=Known)
    ready: asyncio.Future | None = None
    waiting: dict[int, asyncio.Future] = field(default_factory=dict)  # round -> its hand-over
    reloaded: asyncio.Future | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)


class Pool:
    def __init__(
        self,
        count: int,
        sockets: dict[str, socket.socket],
        start: dict[str, Any],
        store: Store,
        stats: Stats,
        listener_counts: dict[str, Any],
        relays: list[RelayStats],
        fatal: Callable[[str], None],
    ) -> None:
        self.count = count
        self.sockets = sockets
        self.start_message = start  # what every worker is started with (mapping, reserved names, log, ...)
        self.store = store
        self.stats = stats
        self.listener_counts = listener_counts
        self.relays = {relay.target: relay for relay in relays}
        self.fatal = fatal  # called once workers keep dying: the bridge stops and exits non-zero
        self.merger = Merger(store, stats)
        self.mapper_counts = MapperCounts()
        self.handles = [Handle(index) for index in range(1, count + 1)]
        self.round = 0
        self.collected_until = -float("inf")  # every line read before this time is in the store
        self.restarts: collections.deque[float] = collections.deque()
        self.stopping = False
        self._lock = asyncio.Lock()  # one hand-over round at a time

    async def start(self) -> None:
        self.store.names.changes = []  # the workers keep copies of the store's Names
        await asyncio.gather(*(self._spawn(handle) for handle in self.handles))
        self.stats.workers = self.count

    async def _spawn(self, handle: Handle) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        try:
            handle.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bridge.workers", "--worker", f"{handle.index}/{self.count}",
                "--channel", str(theirs.fileno()),
                pass_fds=[theirs.fileno(), *(sock.fileno() for sock in self.sockets.values())],
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            theirs.close()
        start = dict(
            self.start_message,
            index=handle.index,
            fds={kind: sock.fileno() for kind, sock in self.sockets.items()},
            types=dict(self.store.names.types),  # the store's verdicts so far; changes follow with hand-overs
        )
        reader, handle.writer = await asyncio.open_unix_connection(sock=ours)
        channel.send(handle.writer, start)  # buffered: the worker reads it once it has started
        handle.known = Known()
        handle.ready = loop.create_future()
        handle.tasks = [asyncio.ensure_future(self._read(handle, reader)), asyncio.ensure_future(self._watch(handle))]
        try:
            await asyncio.wait_for(asyncio.shield(handle.ready), START_TIMEOUT)
        except asyncio.TimeoutError:
            handle.process.kill()
            raise WorkerStartError(f"worker {handle.index} did not start within {START_TIMEOUT:g} s") from None
        except WorkerStartError:
            raise
        log(logger, logging.INFO, "worker started", worker=handle.index, pid=handle.process.pid)

    async def _read(self, handle: Handle, reader: asyncio.StreamReader) -> None:
        """Every message of one worker, until it is gone."""
        while True:
            try:
                message = await channel.receive(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            try:
                self._take(handle, message)
            except Exception:  # a bug: counted and logged, and the channel is read on
                self.stats.internal_errors["workers"] += 1
                logger.exception("a worker's message could not be applied", extra={"fields": {"worker": handle.index}})
        for future in [handle.ready, handle.reloaded, *handle.waiting.values()]:
            if future is not None and not future.done():
                future.set_exception(WorkerStartError(f"worker {handle.index} is gone"))
        handle.waiting.clear()

    def _take(self, handle: Handle, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            if handle.ready is not None and not handle.ready.done():
                handle.ready.set_result(message[1])
        elif kind == "flushed":
            waiting = handle.waiting.pop(message[1], None)
            if waiting is not None and not waiting.done():
                waiting.set_result(message)
            else:  # later than its round waited: applied on its own
                self._merge([(handle, message)])
        elif kind == "reloaded" and handle.reloaded is not None and not handle.reloaded.done():
            handle.reloaded.set_result((message[1], message[2]))

    async def _watch(self, handle: Handle) -> None:
        """Start a worker again when it exits, unless the bridge is stopping; a crash loop stops the bridge."""
        assert handle.process is not None
        status = await handle.process.wait()
        if self.stopping:
            return
        self.stats.worker_restarts += 1
        now = time.monotonic()
        self.restarts.append(now)
        while self.restarts and now - self.restarts[0] > CRASH_WINDOW:
            self.restarts.popleft()
        reason = f"signal {-status}" if status < 0 else f"status {status}"
        log(logger, logging.ERROR, "worker exited; starting it again", worker=handle.index, exit=reason,
            pid=handle.process.pid)  # fmt: skip
        if len(self.restarts) > CRASH_RESTARTS:
            self.fatal(
                f"workers keep dying: {len(self.restarts)} restarts in {CRASH_WINDOW:g} s, "
                f"the last worker {handle.index} with {reason}"
            )
            return
        try:
            await self._spawn(handle)
        except (WorkerStartError, OSError) as error:
            log(logger, logging.ERROR, "worker did not start again", worker=handle.index, error=str(error))
            await asyncio.sleep(1.0)  # counted as another restart when this one's process exits
            if handle.process is not None and handle.process.returncode is None:
                handle.process.kill()
            handle.tasks.append(asyncio.ensure_future(self._watch(handle)))

    def _live(self) -> list[Handle]:
        return [
            handle
            for handle in self.handles
            if handle.writer is not None
            and handle.ready is not None
            and handle.ready.done()
            and not handle.ready.exception()
            and handle.process is not None
            and handle.process.returncode is None
        ]

    async def collect(self, command: str = "flush", timeout: float = COLLECT_TIMEOUT) -> None:
        """A hand-over round: every live worker hands over what it holds (bounded by `timeout`), and it is
        applied to the store; with "stop", the workers drain their sockets first and then exit."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            started = time.monotonic()
            self.round += 1
            self.merger.prepare([handle.known for handle in self.handles])
            asked: list[tuple[Handle, asyncio.Future]] = []
            for handle in self._live():
                future = handle.waiting[self.round] = loop.create_future()
                assert handle.writer is not None
                channel.send(handle.writer, (command, self.round, *handle.known.take_news()))
                asked.append((handle, future))
            if asked:
                await asyncio.wait([future for _, future in asked], timeout=timeout)
            answered = [
                (handle, future.result()) for handle, future in asked if future.done() and not future.exception()
            ]
            for handle, future in asked:
                if not future.done():
                    log(logger, logging.WARNING, "worker did not hand over in time", worker=handle.index,
                        timeout=f"{timeout:g}s")  # fmt: skip
            self._merge(answered)
            if len(answered) == len(asked) == self.count:
                self.collected_until = started

    def _merge(self, messages: list[tuple[Handle, tuple]]) -> None:
        handovers: list[tuple[Known, list[NewRecord], list[Record], list[int]]] = []
        for handle, message in messages:
            _, _, new, known, forgotten, counts, listeners, mapper, relays = message
            handovers.append((handle.known, new, known, forgotten))
            add_counts(self.stats, counts)
            self.stats.worker_lines[handle.index] += counts.get("lines", 0)
            for kind, taken in listeners.items():
                mine = self.listener_counts.get(kind)
                if mine is not None:
                    for name, value in taken.items():
                        setattr(mine, name, getattr(mine, name) + value)
            gets, hits, length = mapper
            self.mapper_counts.cache_gets += gets
            self.mapper_counts.cache_hits += hits
            self.mapper_counts.lengths[handle.index] = length
            for target, lines, packets, dropped in relays:
                relay = self.relays.get(target)
                if relay is not None:
                    relay.lines += lines
                    relay.packets += packets
                    relay.dropped.update(dropped)
        self.merger.merge(handovers)

    async def reload(self, text: str | None, path: str) -> list[str]:
        """Every worker compiles the same text and swaps its rules in; the errors of those that did not."""
        loop = asyncio.get_running_loop()
        # a worker started again meanwhile is started with the new text
        self.start_message = dict(self.start_message, mapping=text, mapping_path=path)
        asked = []
        for handle in self._live():
            handle.reloaded = loop.create_future()
            assert handle.writer is not None
            channel.send(handle.writer, ("reload", text, path))
            asked.append((handle, handle.reloaded))
        errors = []
        for handle, future in asked:
            try:
                ok, error = await asyncio.wait_for(future, RELOAD_TIMEOUT)
            except (asyncio.TimeoutError, WorkerStartError) as failure:
                ok, error = False, str(failure) or "no answer"
            if not ok:
                errors.append(f"worker {handle.index}: {error}")
        return errors

    async def stop(self) -> None:
        """Each worker reads its sockets dry and hands over what it holds, then exits."""
        self.stopping = True
        await self.collect("stop", STOP_TIMEOUT)
        for handle in self.handles:
            process = handle.process
            if process is None:
                continue
            try:
                await asyncio.wait_for(process.wait(), COLLECT_TIMEOUT)
            except asyncio.TimeoutError:
                log(logger, logging.WARNING, "worker did not exit; killed", worker=handle.index)
                process.kill()
                await process.wait()
            if handle.writer is not None:
                handle.writer.close()
            for task in handle.tasks:
                task.cancel()
