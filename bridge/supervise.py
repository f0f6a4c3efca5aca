"""Background work that neither fails silently nor stays failed.

Each periodic task runs one step at a time under `periodic`: a step that raises is logged with its
traceback and counted (statsd_bridge_internal_errors_total{component}), and the task goes on at its next
step. What the event loop itself catches (a callback or task nobody awaits) goes through the same count
and log, by `loop_exception_handler` (the log within a rate limit: a bug on the fast path fires with every
datagram), and `report_failure` hands it a task's failure as the task ends. `FileWatch` reloads what
files on disk define (the mapping file, the web config and its certificates) when they change, and
tries a reload that failed (or raised) again on the `Backoff` schedule.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from bridge.logs import RateLimited, log

logger = logging.getLogger("bridge.supervise")


Step = Callable[[], Awaitable[None] | None]


async def periodic(name: str, interval: float, step: Step, failures: Counter[str]) -> None:
    """Run `step` every `interval` seconds for ever; an exception costs one step, never the task."""
    while True:
        await asyncio.sleep(interval)
        try:
            result = step()
            if result is not None:
                await result
        except asyncio.CancelledError:
            raise
        except Exception:
            count_bug(failures, name, "background task step failed; it goes on at its next step")


def count_bug(
    failures: Counter[str], component: str, message: str, log_to: logging.Logger = logger, **fields: object
) -> None:
    """A bug caught where the work goes on (call it in the except block): counted under `component` and
    logged with its traceback."""
    failures[component] += 1
    extra = {"fields": {"component": component, **fields, "failures": failures[component]}}
    log_to.exception(message, extra=extra)


def loop_exception_handler(failures: Counter[str]) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An event loop exception handler that counts and logs what the loop caught: by the component its
    context names (a supervised task that reports its failure here), else as component="event_loop".
    Each is counted; the log holds at most a few tracebacks of each component's and message's every ten
    seconds (a bug in a receive callback fires with every datagram), then how many it held back."""
    limited = RateLimited(logger)

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if "component" in context:  # reported by the task that handles it: its own words
            what, fields = context.get("message", ""), {"component": context["component"]}
        else:
            what, fields = (
                "unhandled error in the event loop",
                {"component": "event_loop", "context": context.get("message", "")},
            )
        failures[fields["component"]] += 1
        if error is not None:
            limited.exception(what, kind=fields["component"], error=error, **fields)
        else:
            limited(logging.ERROR, what, kind=fields["component"], **fields)

    return handle


def report_failure(task: asyncio.Task, component: str, what: str) -> None:
    """When `task` ends on an exception (not a cancellation), hand it at once to the loop's exception
    handler, counted under `component`: not only at the loop's teardown, as asyncio would."""

    def ended(task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        context = {"message": what, "exception": task.exception(), "component": component, "task": task}
        task.get_loop().call_exception_handler(context)

    task.add_done_callback(ended)


class Backoff:
    """When to try again after a failure: 1 s, then doubling, at most `longest` seconds."""

    def __init__(self, longest: float = 60.0) -> None:
        self.longest = longest
        self.failures = 0
        self.next_try = 0.0

    def failed(self, now: float) -> float:
        """Record a failure at `now`; return how long until the next try."""
        self.failures += 1
        wait = min(self.longest, 2.0 ** (self.failures - 1))
        self.next_try = now + wait
        return wait

    def succeeded(self) -> None:
        self.failures = 0
        self.next_try = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_try


def file_marks(names: Iterable[str]) -> tuple:
    """Changes when any of the files changes on disk (size, modification time or inode: a Kubernetes
    ConfigMap update swaps a symbolic link, which os.stat follows), or appears or goes."""
    marks: list[tuple[str, int, int, int] | tuple[str, None]] = []
    for name in names:
        try:
            info = os.stat(name)
            marks.append((name, info.st_mtime_ns, info.st_size, info.st_ino))
        except OSError:
            marks.append((name, None))
    return tuple(marks)


class FileWatch:
    """A reload when the watched files change on disk, checked at each `step` (`periodic` runs it every
    second). A reload that fails is tried again after 1 s and then twice as long each time (at most a
    minute), until it passes or the files change again: a transient fault (descriptors used up while a
    renewed certificate lands) must not leave the old settings in service until they expire."""

    def __init__(
        self,
        name: str,
        files: Callable[[], Iterable[str]],
        reload: Callable[[], Awaitable[bool]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.clock = clock
        self.files = files  # asked again after each reload: a new web config may name other certificates
        self.reload = reload  # True when it passed; a failure is logged and counted by the reload itself
        self.marks = file_marks(files())
        self.pending = False  # a change not yet loaded: the last try failed
        self.backoff = Backoff()

    async def step(self) -> None:
        now = self.clock()
        names = list(self.files())
        marks = file_marks(names)
        if marks != self.marks:
            self.marks, self.pending = marks, True
            self.backoff.succeeded()  # new files: try them now
        if not self.pending or not self.backoff.due(now):
            return
        try:
            passed = await self.reload()
        except Exception:  # a bug in the reload: tried again on the same schedule, and counted by `periodic`
            self.backoff.failed(now)
            raise
        if passed:
            self.pending = False
            self.backoff.succeeded()
            current = list(self.files())
            if current != names:  # the new settings name other files: watch those from now on
                self.marks = file_marks(current)
        else:
            retry = self.backoff.failed(now)
            log(logger, logging.INFO, "reload to be tried again", watch=self.name, retry_in=f"{retry:g}s")
