"""The store's housekeeping: every second the workers' hand-over, the status page's rates and trends and
the series past their ttl; the reaper's passes over silent sources; POST /-/clear."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

from bridge.config import ReaperSettings
from bridge.logs import log, summarise_held_back
from bridge.series.selectors import Selector, for_family
from bridge.series.store import Store
from bridge.stats import Stats, rejections
from bridge.supervise import periodic
from bridge.web.status import Rates, Trends
from bridge.workers.pool import Pool

logger = logging.getLogger("bridge.server")

SWEEP_INTERVAL = 1.0  # seconds between TTL sweeps, as statsd_exporter, and between the workers' hand-overs


class Housekeeping:
    def __init__(self, store: Store, stats: Stats, reaper: ReaperSettings, kernel_drops: Callable[[], int]) -> None:
        self.store = store
        self.stats = stats
        self.reaper = reaper
        self.kernel_drops = kernel_drops
        self.pool: Pool | None = None  # the receiving workers, whose hand-over comes first
        self.rates = Rates()
        self.trends = Trends()
        self.reaper_last_sweep: float | None = None
        self.reaper_last_removed = 0

    def start(self, failures: Counter[str]) -> list[asyncio.Task]:
        """The sweep's task and, with a reap label, the reaper's: supervised, failures counted in `failures`."""
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(periodic("sweep", SWEEP_INTERVAL, self.sweep, failures))]
        reaper = self.reaper
        if reaper.label:
            tasks.append(loop.create_task(periodic("reaper", reaper.interval, self.reap, failures)))
            log(
                logger,
                logging.INFO,
                "reaper on",
                label=reaper.label,
                after=f"{reaper.after:g}s",
                interval=f"{reaper.interval:g}s",
            )
        return tasks

    async def collect(self) -> float:
        """Every line read before the returned time is in the store: the workers' hand-over first, if any."""
        if self.pool is None:
            return time.monotonic()
        await self.pool.collect()
        return self.pool.collected_until

    async def sweep(self) -> None:
        """The workers' hand-over, the rates and trends of the status page, the series past their ttl (as of
        the hand-over: a series a worker still holds an update of is not past it), and the log's held-back
        counts."""
        collected = await self.collect()
        now = time.monotonic()
        errors = sum(rejections(self.stats).values())
        self.rates.record(now, self.stats.lines, errors)
        self.trends.record(now, self.stats.lines, errors, self.kernel_drops(), self.store.series_count)
        removed = self.store.sweep(collected)
        if removed:
            log(logger, logging.DEBUG, "expired series removed", count=removed)
        summarise_held_back()  # a flood of warnings that stopped is told how large it was

    def reap(self) -> None:
        removed = self.store.reap(self.pool.collected_until if self.pool else time.monotonic(), self.reaper.after)
        self.reaper_last_sweep, self.reaper_last_removed = time.time(), removed
        if removed:
            log(logger, logging.INFO, "reaped the series of silent sources", series=removed, label=self.reaper.label)

    async def clear(self, selectors: list[Selector]) -> int:
        """Drop the series any of `selectors` selects (every series, given none), once every line read before
        is in the store (the workers' hand-over first), so that none of them comes back with a later one.
        The store drops them as it does at ttl, so the workers are told to forget their sids, and a line
        after this starts its series anew (a counter from its own increments). How many series went."""
        await self.collect()
        cleared = self.store.clear(partial(for_family, selectors) if selectors else None)
        self.stats.cleared_series += cleared
        return cleared
