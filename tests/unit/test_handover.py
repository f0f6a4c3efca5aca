"""The hand-over between receiving workers and the one store, in process: workers' series handed over and
applied give what one process gives from the same lines, counts included, and memory follows the live
series on both sides of the boundary."""

from __future__ import annotations

import gc
import logging
import math
import sys
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from bridge.exposition.text import render_text
from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Mapper
from bridge.series.store import Store
from bridge.stats import Stats, add_counts, take_counts
from bridge.workers.handover import WorkerIngest, WorkerStore
from bridge.workers.merge import Known, Merger
from tests.conftest import FakeClock, parse_samples, pipeline


@dataclass
class Workers:
    """Several workers' ingests, a main store and the merge between them, as the pool runs them, minus
    the processes: `send` gives each datagram to the next worker in turn."""

    clock: FakeClock
    store: Store
    stats: Stats
    merger: Merger
    ingests: list[WorkerIngest]
    known: list[Known] = field(default_factory=list)
    turn: int = 0

    def send(self, *datagrams: str) -> None:
        for datagram in datagrams:
            self.clock.now += 0.001  # one after the other, as datagrams arrive
            self.ingests[self.turn % len(self.ingests)].packets([datagram.encode()])
            self.turn += 1

    def hand_over(self) -> None:
        """A round, as the pool runs it: the main process's news out, each worker's hand-over back."""
        self.merger.prepare(self.known)
        handovers = []
        for ingest, known in zip(self.ingests, self.known, strict=True):
            store: WorkerStore = ingest.store
            new, records, forgotten = store.answer(*known.take_news(), self.clock.now)
            add_counts(self.stats, take_counts(ingest.stats))
            handovers.append((known, new, records, forgotten))
        self.merger.merge(handovers)

    def samples(self) -> dict:
        self.hand_over()
        self.store.fold_pending()
        return parse_samples(render_text(self.store, CollectorRegistry(), self.clock.now).decode())


def workers(mapping: str = "", count: int = 2) -> Workers:
    clock = FakeClock()
    store, stats = Store(), Stats()
    store.names.changes = []
    config = load_mapping(mapping, "test.yml")
    ingests = []
    for _ in range(count):
        worker_store = WorkerStore()
        ingests.append(WorkerIngest(Mapper(config), worker_store, Stats(), clock))
    return Workers(clock, store, stats, Merger(store, stats), ingests, [Known() for _ in range(count)])


MAPPING = """
mappings:
- match: hist.*
  observer_type: histogram
  histogram_options:
    buckets: [1, 5, 10]
    native_histogram_bucket_factor: 1.1
  name: hist_$1
"""

LINES = [
    *(f"requests:{n}|c|#code:{200 + n % 3}" for n in range(1, 40)),
    "fraction:0.1|c", "fraction:0.2|c", "fraction:0.7|c|@0.5",
    "temp:10|g\ntemp:+5|g\ntemp:-2|g\ntemp:7|g\ntemp:+1|g",  # sets and changes in order: one datagram
    *(f"moves:{sign}{n}|g" for n in range(1, 20) for sign in "+-+"),  # changes add up, whoever reads them
    *(f"sets:{n}|g" for n in range(1, 20)),  # of sets read by different workers, the later wins
    *(f"hist.latency:{n % 13}|ms" for n in range(60)), "hist.latency:3|ms|@0.25",
    *(f"summary.time:{n}|ms" for n in range(1, 50)), "summary.time:7|ms|@0.5",
    "conflict:1|c", "conflict:1|g", "conflict:2|ms|@0.5", "conflict:3|c",
    "conflict_sum:1|g",  # a summary's sample name, once the summary below exists
    "latency:5|ms", "latency_sum:1|g", "latency_count:2|c",
]  # fmt: skip


def test_workers_hand_over_what_one_process_makes_of_the_same_lines():
    one = pipeline(MAPPING)
    two = workers(MAPPING)
    for index, line in enumerate(LINES):
        one.clock.now += 0.001
        one.ingest.packets([line.encode()])
        two.send(line)
        if index % 17 == 0:
            two.hand_over()  # hand-overs fall between lines, as the pool's rounds do
    own = ("statsd_bridge", "process_", "python_")  # one's self-metrics: the workers' stats are compared below
    expected = {key: value for key, value in one.samples().items() if not key[0].startswith(own)}
    got = two.samples()
    for key, value in expected.items():
        assert key in got, key
        if "quantile" in dict(key[1]):
            assert math.isclose(got[key], value, rel_tol=0.011), key
        elif key[0].endswith("_sum") or key[0] == "fraction":
            # floats added in another order (each worker's, then their totals): the same to within rounding
            assert math.isclose(got[key], value, rel_tol=1e-12), key
        else:
            assert got[key] == value, key
    assert set(got) == set(expected)
    for name in ("lines", "samples", "events", "conflicts", "event_errors", "series_dropped", "actions"):
        assert getattr(two.stats, name) == getattr(one.stats, name), name


def test_a_type_seen_first_wins_whichever_worker_saw_it():
    two = workers()
    two.send("first:1|c", "first:1|g", "first:5|ms", "first:2|c")  # worker 1, 2, 1, 2
    samples = two.samples()
    assert samples[("first", frozenset())] == 3
    assert dict(two.stats.conflicts) == {("gauge", "first"): 1, ("observer", "first"): 1}
    assert dict(two.stats.events) == {"counter": 2}
    two.send("first:1|g", "first:1|g")  # both workers now know the store's verdict: refused where read
    two.samples()
    assert two.stats.conflicts[("gauge", "first")] == 3


def test_caps_refuse_handed_over_series_and_count_their_lines():
    two = workers()
    two.store.max_series = 2
    two.send("a:1|c", "b:1|c", "c:1|c", "c:1|c", "d:1|c")
    samples = two.samples()
    assert {key[0] for key in samples} == {"a", "b"}
    assert dict(two.stats.series_dropped) == {"c": 2, "d": 1}
    assert dict(two.stats.events) == {"counter": 2}


def test_refusals_are_said_as_one_process_says_them(caplog):
    """The same warnings, with the same fields, whether the ingest or the merge met the refusal."""
    said = {}
    for name, bridge in (("one", pipeline()), ("two", workers())):
        bridge.store.max_series = 3
        bridge.store.max_series_per_metric = 2
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            for line in ("a:1|c", "a:1|g", "a:1|c|#k:v", "a:1|c|#k:w", "b:1|c", "c:1|c", "d:1|c", "d:1|c|#k:v"):
                bridge.clock.now += 0.001
                bridge.send(line)
            if isinstance(bridge, Workers):
                bridge.hand_over()
        said[name] = [
            (record.getMessage(), record.fields) for record in caplog.records if record.levelname == "WARNING"
        ]
    assert said["one"] == said["two"]
    assert [message for message, _ in said["one"]] == [
        "metric type conflict",
        "per-metric series cap reached: new series of this metric are refused",
        "series cap reached: new series are refused, existing ones still update",  # then once a minute at most
    ]
    assert said["one"][-1][1]["fastest_growing"] == "c" and said["one"][-1][1]["refused"] == 1


def churn(two: Workers, second: int) -> None:
    lines = []
    for i in range(200):
        unique = f"{second}_{i}"
        lines += [f"churn.c{unique}:1|c|#pod:p{unique}", f"churn.t{unique}:3|ms|#pod:p{i % 7}", f"hist.h{unique}:2|ms"]
    two.send(*("\n".join(lines[i : i + 10]) for i in range(0, len(lines), 10)))
    two.clock.now += 1
    two.hand_over()
    two.store.sweep(two.clock.now)
    two.store.fold_pending()  # as a scrape does
    two.hand_over()  # the store's removals reach the workers


def test_memory_follows_the_live_series_on_both_sides_of_the_hand_over():
    two = workers("defaults:\n  ttl: 2s\n" + MAPPING.removeprefix("\n"))
    for second in range(15):
        churn(two, second)
    gc.collect()
    live = two.store.series_count
    held = [ingest.store.series_count for ingest in two.ingests]
    blocks = sys.getallocatedblocks()
    for second in range(15, 60):
        churn(two, second)
    gc.collect()
    grown = sys.getallocatedblocks() - blocks
    assert two.store.series_count == live
    assert [ingest.store.series_count for ingest in two.ingests] == held
    assert all(len(known.sids) <= live for known in two.known)
    assert grown < 1_000, f"{grown} blocks more after 45 s of churn"
