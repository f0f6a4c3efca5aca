"""The bridge's own counters, kept as plain ints on the hot path; bridge/exposition/self_metrics.py
exposes them at scrape time."""

from __future__ import annotations

from collections import Counter


class Stats:
    def __init__(self) -> None:
        self.lines = 0
        self.samples = 0
        self.tags = 0
        self.tag_errors = 0
        self.events_unmapped = 0
        self.loaded_mappings = 0
        self.sample_errors: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.event_errors: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.conflicts: Counter[tuple[str, str]] = Counter()
        # both outcomes from 0, so that Prometheus sees the first failure as an increase (alerts.yml)
        self.config_reloads: Counter[str] = Counter({"success": 0, "failure": 0})
        self.output_skips: Counter[tuple[str, str]] = Counter()
        self.series_dropped: Counter[str] = Counter()
        self.metric_series_dropped: Counter[str] = Counter()
        self.batches = 0  # datagram batches handed to the ingest: statsd_exporter's event queue flushes
        self.web_config_reloads: Counter[str] = Counter({"success": 0, "failure": 0})
        # what raised where nothing should have, by component (ingest, sweep, reaper, web_config,
        # mapping_watch, listener, reload, http, event_loop, workers, introduce), counted and logged with its
        # traceback while the work goes on
        self.internal_errors: Counter[str] = Counter()
        # receiving workers (--statsd.workers): how many run, and how often one had to be started again
        self.workers = 0
        self.worker_restarts = 0
        self.worker_lines: Counter[int] = Counter()  # by worker number
        # POST /-/clear: series it dropped, and its requests by outcome (cleared, bad_selector, bad_request, disabled)
        self.cleared_series = 0
        self.clear_requests: Counter[str] = Counter({"cleared": 0, "bad_selector": 0, "bad_request": 0, "disabled": 0})


# What the main process counts itself, never handed over by a worker: the mapping and web config it
# loads, and its workers
MAIN_ONLY = frozenset(
    {
        "loaded_mappings",
        "config_reloads",
        "web_config_reloads",
        "workers",
        "worker_restarts",
        "worker_lines",
        "cleared_series",
        "clear_requests",
    }
)


def take_counts(stats: Stats) -> dict[str, object]:
    """A worker's counts since the last call, which are zeroed: what it hands over to the main process."""
    taken: dict[str, object] = {}
    for name, value in vars(stats).items():
        if name in MAIN_ONLY:
            continue
        if isinstance(value, Counter):
            if value:
                taken[name] = dict(value)
                value.clear()
        elif value:
            taken[name] = value
            setattr(stats, name, 0)
    return taken


def add_counts(stats: Stats, counts: dict[str, object]) -> None:
    """Add a worker's handed-over counts (take_counts) to the main process's."""
    for name, value in counts.items():
        if name in MAIN_ONLY:
            continue
        mine = getattr(stats, name)
        if isinstance(mine, Counter):
            mine.update(value)  # type: ignore[call-overload]
        else:
            setattr(stats, name, mine + value)


def rejections(stats: Stats) -> Counter[str]:
    """Lines, samples and events rejected, by reason: the parser's and the ingest's reasons, type
    conflicts, series refused by a cap, outputs skipped for a missing tag. (Reads from a web worker
    thread too: the counters are copied first.)"""
    rejected: Counter[str] = Counter(dict(stats.sample_errors))
    rejected.update(dict(stats.event_errors))
    rejected["type_conflict"] += sum(dict(stats.conflicts).values())
    rejected["series_cap"] += sum(dict(stats.series_dropped).values())
    rejected["metric_series_cap"] += sum(dict(stats.metric_series_dropped).values())
    rejected["output_skipped"] += sum(dict(stats.output_skips).values())  # a required tag was missing
    return rejected
