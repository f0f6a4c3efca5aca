"""The main process's side of --statsd.workers: it starts the receiving workers on the sockets it bound,
asks them for what they hold (every second, and before every scrape), applies that to the one
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
from bridge.stats import Stats
from bridge.supervise import report_failure
from bridge.workers import channel
from bridge.workers.counts import Totals
from bridge.workers.merge import Known, Merger
from bridge.workers.records import Flushed, NewRecord, Record

logger = logging.getLogger("bridge.workers")

# How long a scrape, a sweep or the shutdown waits for the workers' hand-overs
COLLECT_TIMEOUT = 2.0
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0  # a worker reads what its sockets hold (up to --statsd.read-buffer) before it hands over
RELOAD_TIMEOUT = 60.0
# A worker that hands nothing over for this long hangs (a busy one still answers, late): it is killed and
# started again, so that ttl and the reaper (which wait for every worker's hand-over) go on
HUNG_SECONDS = 30.0
# More restarts than this within CRASH_WINDOW seconds is a crash loop: the bridge exits, saying why
CRASH_RESTARTS = 5
CRASH_WINDOW = 60.0
# How a worker's process is run, after the interpreter (the tests run it with faults put in)
WORKER_PROGRAM = ("-m", "bridge.workers")


class WorkerStartError(Exception):
    """A worker did not start; the message says how it ended."""


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
    rules: tuple[str | None, str] = (None, "")  # the mapping text and path it runs: started with or reloaded
    answered: float = 0.0  # when it last handed over (or got ready): a worker silent too long hangs


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
        self.totals = Totals(stats, listener_counts, {relay.target: relay for relay in relays})
        self.mapper_counts = self.totals.mapper
        self.fatal = fatal  # called once workers keep dying: the bridge stops and exits non-zero
        self.merger = Merger(store, stats)
        self.handles = [Handle(index) for index in range(1, count + 1)]
        self.round = 0
        self.collected_until = -float("inf")  # every line read before this time is in the store
        self.restarts: collections.deque[float] = collections.deque()
        self.stopping = False
        self._lock = asyncio.Lock()  # one hand-over round at a time
        self.supervisors: list[asyncio.Task] = []

    async def start(self) -> None:
        self.store.names.changes = []  # the workers keep copies of the store's Names
        await asyncio.gather(*(self._spawn(handle) for handle in self.handles))
        self.supervisors = [asyncio.ensure_future(self._supervise(handle)) for handle in self.handles]
        for supervisor in self.supervisors:
            report_failure(supervisor, "workers", "a worker's supervisor failed")
            supervisor.add_done_callback(self._supervisor_ended)
        self.stats.workers = self.count

    def _supervisor_ended(self, task: asyncio.Task) -> None:
        """A supervisor that ended on an exception (a bug, counted and logged by report_failure) leaves its
        worker unwatched: the bridge stops (exit 1) for its own supervisor to start it again."""
        if not task.cancelled() and task.exception() is not None:
            self.fatal("a worker's supervisor failed, so the worker would not be started again if it died")

    async def _spawn(self, handle: Handle) -> None:
        """Start the worker's process on the shared sockets, and wait until it is ready. Its process is
        `handle.process` even when it fails to get ready: the supervisor then sees it exit."""
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair()
        try:
            process = handle.process = await asyncio.create_subprocess_exec(
                sys.executable, *WORKER_PROGRAM, "--worker", f"{handle.index}/{self.count}",
                "--channel", str(theirs.fileno()),
                pass_fds=[theirs.fileno(), *(sock.fileno() for sock in self.sockets.values())],
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            theirs.close()
        # the store's verdicts so far, with a fresh Known: the changes after them follow with hand-overs
        handle.known = Known()
        start = dict(
            self.start_message,
            index=handle.index,
            fds={kind: sock.fileno() for kind, sock in self.sockets.items()},
            types=dict(self.store.names.types),
        )
        ready = handle.ready = loop.create_future()
        handle.waiting = {}
        reader, handle.writer = await asyncio.open_unix_connection(sock=ours)
        channel.send(handle.writer, start)  # buffered: the worker reads it once it has started
        handle.rules = (start["mapping"], start["mapping_path"])
        handle.tasks = [asyncio.ensure_future(self._read(handle, reader, ready, handle.waiting))]
        # a reader that escapes stops taking this worker's hand-overs: it is killed as hung and started again
        report_failure(handle.tasks[0], "workers", "reading a worker's messages failed")
        try:
            await asyncio.wait_for(asyncio.shield(ready), START_TIMEOUT)
        except (asyncio.TimeoutError, WorkerStartError):
            if process.returncode is None:
                process.kill()
            raise WorkerStartError(f"worker {handle.index} did not get ready within {START_TIMEOUT:g} s") from None
        handle.answered = time.monotonic()
        log(logger, logging.INFO, "worker started", worker=handle.index, pid=process.pid)

    async def _read(
        self, handle: Handle, reader: asyncio.StreamReader, ready: asyncio.Future, waiting: dict[int, asyncio.Future]
    ) -> None:
        """Every message of one worker process, until it is gone; then what waited on it is told so."""
        while True:
            try:
                message = await channel.receive(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            except Exception:  # a message that can't be read: the channel is out of step, so the worker goes
                self._bug("a worker's message could not be read; stopping it", handle)
                if handle.process is not None and handle.process.returncode is None:
                    handle.process.kill()  # started again by its supervisor
                break
            try:
                self._take(handle, message)
            except Exception:  # a bug: counted and logged, and the channel is read on
                self._bug("a worker's message could not be applied", handle)
        for future in [ready, *waiting.values()]:
            if not future.done():
                future.set_exception(WorkerStartError(f"worker {handle.index} is gone"))
        waiting.clear()

    def _take(self, handle: Handle, message: tuple) -> None:
        kind = message[0]
        if kind == "ready":
            if handle.ready is not None and not handle.ready.done():
                handle.ready.set_result(message[1])
        elif kind == "flushed":
            flushed: Flushed = message[1]
            handle.answered = time.monotonic()
            waiting = handle.waiting.pop(flushed.round, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(flushed)
            else:  # later than its round waited: applied on its own, and its news told at once
                self._merge([(handle, flushed)])
                self._tell(handle)
        elif kind == "reloaded" and handle.reloaded is not None and not handle.reloaded.done():
            handle.reloaded.set_result((message[1], message[2]))

    async def _supervise(self, handle: Handle) -> None:
        """Start a worker again whenever it exits, unless the bridge is stopping; a crash loop stops the
        bridge. One supervisor per worker, for the bridge's life: nothing else starts one."""
        while not self.stopping:
            assert handle.process is not None
            process = handle.process
            status = await process.wait()
            if self.stopping:
                return
            try:
                self._count_restart(handle, status, process.pid)
                if len(self.restarts) > CRASH_RESTARTS:
                    reason = _exit_reason(status)
                    self.fatal(f"workers keep dying: {len(self.restarts)} restarts in {CRASH_WINDOW:g} s, "
                               f"the last worker {handle.index} with {reason}")  # fmt: skip
                    return
                await self._spawn(handle)
            except (WorkerStartError, OSError) as error:
                # the process that failed is handle.process (killed if it hung): its exit is the next restart
                log(logger, logging.ERROR, "worker did not start again", worker=handle.index, error=str(error))
                await asyncio.sleep(1.0)
            except Exception:  # a bug: counted and logged, and the worker is supervised on
                self._bug("supervising a worker failed", handle)
                await asyncio.sleep(1.0)

    def _bug(self, what: str, handle: Handle) -> None:
        """What raised where nothing should (a bug): counted in internal_errors_total and logged with its traceback."""
        self.stats.internal_errors["workers"] += 1
        logger.exception(what, extra={"fields": {"worker": handle.index}})

    def _count_restart(self, handle: Handle, status: int, pid: int) -> None:
        self.stats.worker_restarts += 1
        now = time.monotonic()
        self.restarts.append(now)
        while self.restarts and now - self.restarts[0] > CRASH_WINDOW:
            self.restarts.popleft()
        reason = _exit_reason(status)
        log(logger, logging.ERROR, "worker exited; starting it again", worker=handle.index, exit=reason, pid=pid)

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
                if future.done():
                    continue
                # its answer, when it comes, is applied on its own (_take)
                handle.waiting.pop(self.round, None)
                future.cancel()
                silent = time.monotonic() - handle.answered
                log(logger, logging.WARNING, "worker did not hand over in time", worker=handle.index,
                    timeout=f"{timeout:g}s", silent_for=f"{silent:.0f}s")  # fmt: skip
                if silent > HUNG_SECONDS and command != "stop" and handle.process is not None:
                    log(logger, logging.ERROR, "worker hangs; killing it", worker=handle.index, pid=handle.process.pid)
                    handle.process.kill()  # its supervisor starts it again
            self._merge(answered)
            for handle, _ in answered:  # at once, not with the next round: a new series is provisional till then
                self._tell(handle)
            if len(answered) == len(asked) == self.count:
                self.collected_until = started

    def _tell(self, handle: Handle) -> None:
        known = handle.known
        has_news = known.to_forget or known.accepted or known.name_changes
        if has_news and handle.writer is not None and not handle.writer.is_closing():
            channel.send(handle.writer, ("news", *known.take_news()))

    def _merge(self, hand_overs: list[tuple[Handle, Flushed]]) -> None:
        handovers: list[tuple[Known, list[NewRecord], list[Record], list[int]]] = []
        for handle, flushed in hand_overs:
            handovers.append((handle.known, flushed.new, flushed.known, flushed.forgotten))
            self.totals.add(handle.index, flushed)
        self.merger.merge(handovers)

    async def reload(self, text: str | None, path: str) -> list[str]:
        """Every worker compiles the same text and swaps its rules in, all at once; the errors of those that
        did not. A worker that dies meanwhile is started again with the new text, so it counts as reloaded;
        one that does not answer in time is killed, and so starts again with it too. If any fails, every
        worker goes back to the old rules (one that can't is killed, and starts again with them), so that
        "the old rules stay" holds for them all."""
        old = self.start_message
        self.start_message = dict(old, mapping=text, mapping_path=path)  # what a worker started meanwhile gets
        errors = await self._reload_live(text, path)
        if errors:
            self.start_message = old
            back = (old["mapping"], old["mapping_path"])
            for error in await self._reload_live(*back):
                log(logger, logging.ERROR, "worker could not go back to the old rules", error=error)
            for handle in self.handles:
                if handle.rules != back and handle.process is not None and handle.process.returncode is None:
                    log(logger, logging.ERROR, "worker killed to start again with the old rules", worker=handle.index)
                    handle.process.kill()
        return errors

    async def _reload_live(self, text: str | None, path: str) -> list[str]:
        """Ask every live worker to swap in these rules; the errors of those that did not."""
        loop = asyncio.get_running_loop()
        asked = []
        for handle in self._live():
            handle.reloaded = loop.create_future()
            assert handle.writer is not None
            channel.send(handle.writer, ("reload", text, path))
            asked.append((handle, handle.reloaded))
        if asked:
            await asyncio.wait([future for _, future in asked], timeout=RELOAD_TIMEOUT)
        errors = []
        for handle, future in asked:
            if not future.done():
                future.cancel()
                log(logger, logging.ERROR, "worker did not reload in time; killing it", worker=handle.index)
                if handle.process is not None and handle.process.returncode is None:
                    handle.process.kill()
            elif not future.exception():  # an exception: the worker died, and starts with start_message
                ok, error = future.result()
                if ok:
                    handle.rules = (text, path)
                else:
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
        for supervisor in self.supervisors:
            supervisor.cancel()


def _exit_reason(status: int) -> str:
    """A process's return code as the log says it: a negative one is the signal that ended it."""
    return f"signal {-status}" if status < 0 else f"status {status}"
