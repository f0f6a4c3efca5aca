"""A receiving worker's side of the hand-over: the series it holds between two hand-overs, and what it
hands to the main process's store.

A worker applies lines to series of its own, exactly as one process does (bridge/ingest and its
caches), and the main process asks, about once a second and before every scrape, for what changed
since it last asked. Each changed series is handed over as a record, and reset:

- a counter: its whole increments and its fractions, summed apart (as CounterSeries keeps them);
- a gauge: the change it saw, or the value it was last set to and when (the store keeps the latest set);
- a histogram: its observations, as they came (the store folds them into the buckets, native ones too,
  exactly as one process would);
- a summary: its count, its sum and the sketches of its age buckets, merged into the store's window;
- a set's gauge: the values it saw, by the bucket of the window they were last seen in (past the exact
  bound, a sketch per bucket), united with the store's: the count is of distinct values over every worker.

A series is named by a number (sid) the worker gives it: the first record of a sid carries the metric
and the label set, later ones only the change. The main process tells the worker which sids to forget
(their series expired, were reaped, or were refused), and the worker acknowledges each in its next
hand-over, so that the main process drops a sid only once no record of it can be on the way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bridge.ingest import Ingest, Shape, Update
from bridge.mapping.router import Target
from bridge.parsing.line import Sample
from bridge.series.store import Family, Metric, Names, Vector
from bridge.series.types import CounterSeries, LabelKey, Scalar, Series, SetSeries, Summary, render_labels
from bridge.workers.records import Events, MetricSpec, NewRecord, Record, kind_of, spec_of


class HeldObservations:
    """A histogram series in a worker: its observations kept as they came, for the store to fold in."""

    __slots__ = ("key", "label_text", "pending", "source", "updated", "weighted")

    def __init__(self, key: LabelKey, now: float) -> None:
        self.key = key
        self.source: str | None = None
        self.label_text = render_labels(key)
        self.updated = now
        self.pending: list[float] = []  # observations of weight 1 (How.DEFER), appended by the ingest
        self.weighted: list[tuple[float, int]] = []  # sampled ones: (value, int(1/rate))

    def observe(self, value: float, weight: int, now: float = 0.0) -> None:
        self.weighted.append((value, weight))

    def fold(self) -> None:
        """Nothing to fold here: the main process's store does, with the observations handed over."""


class WorkerFamily(Family):
    __slots__ = ()

    def make(self, key: LabelKey, now: float, vector: Vector) -> Series:
        if self.type == "histogram":
            return HeldObservations(key, now)  # type: ignore[return-value]
        return super().make(key, now, vector)


class WorkerStore:
    """A worker's series, for the ingest as the store is for one process, with no rules of its own: the
    main process's store decides. Its families are kept by name and type, so that two types of one name
    can both wait for the store's verdict (the first to reach the store wins, as the first line does in
    one process); `names` is the store's own rule, as far as the main process has told it.

    A series is provisional until the store has accepted it: the ingest doesn't cache its shape, so each
    of its lines is counted here, and a refusal counts them as one process would have."""

    def __init__(self) -> None:
        self.names = Names()  # the store's verdicts
        self.families: dict[tuple[str, str], Family] = {}
        self._held: dict[str, int] = {}  # metric name -> local families of it, for the mapper's route cache
        self.series_count = 0
        self.max_series = math.inf  # the caps are the store's
        self.max_series_per_metric = math.inf
        self.generation = 0
        self._removed: set[int] = set()
        self.specs: dict[int, MetricSpec] = {}  # id(series) -> its metric
        self.created: dict[int, float] = {}  # id(series) -> when it was made, for the store's order
        self.provisional: dict[int, list] = {}  # id(series) -> [kind, samples, events] until the store accepts it
        self.sids: dict[int, int] = {}  # id(series) -> the sid it was handed over as
        self.by_sid: dict[int, tuple[Family, Series]] = {}
        self.next_sid = 1
        self.forgotten: list[int] = []  # sids forgotten since the last hand-over, to acknowledge with it
        self.fresh: list[tuple[Family, Series]] = []  # made since the last hand-over or introduction
        self.since = -math.inf  # series updated at or after this time have something to hand over

    def reserve(self, names: list[str]) -> None:
        self.names.reserve(names)

    def holds(self, name: str) -> bool:
        return name in self._held

    def series(self, metric: Metric, key: LabelKey, now: float) -> Series:
        family_key = (metric.name, kind_of(metric))
        family = self.families.get(family_key)
        series = family.series.get(key) if family is not None else None
        if series is not None and id(series) not in self.provisional:
            return series
        self.names.check(metric.name, metric.type)  # what the store has refused meanwhile
        if series is not None:
            return series
        if family is None:
            family = self.families[family_key] = WorkerFamily(metric)
            self._held[metric.name] = self._held.get(metric.name, 0) + 1
        series, _ = family.new_series(key, now, metric)
        family.series[key] = series
        self.series_count += 1
        self.specs[id(series)] = spec_of(metric)
        self.created[id(series)] = now
        self.provisional[id(series)] = ["", 0, 0]
        self.fresh.append((family, series))
        return series

    def count(self, series: Series, kind: str, events: int) -> None:
        """A line's sample applied to a provisional series (the ingest's full path)."""
        counted = self.provisional.get(id(series))
        if counted is not None:
            counted[0] = kind
            counted[1] += 1
            counted[2] += events

    def is_provisional(self, series: Series) -> bool:
        return id(series) in self.provisional

    def remove(self, family: Family, series: Series) -> None:
        if family.series.get(series.key) is not series:
            return
        del family.series[series.key]
        family.forget(series)
        self.series_count -= 1
        self.generation += 1
        self._removed.add(id(series))
        for index in (self.specs, self.created, self.provisional):
            index.pop(id(series), None)
        sid = self.sids.pop(id(series), None)
        if sid is not None:
            self.by_sid.pop(sid, None)
        if not family.series:
            del self.families[(family.name, kind_of(family))]
            self._held[family.name] -= 1
            if not self._held[family.name]:
                del self._held[family.name]

    def take_removed(self) -> set[int]:
        removed, self._removed = self._removed, set()
        return removed

    def pending_tracker(self) -> Callable[[Any], None]:
        return _untracked  # the store folds what is handed over

    def add_pending(self, count: int) -> None:
        pass

    def hear(self, forget: list[int], accepted: list[int], changes: list[tuple[str, str, str]]) -> None:
        """The main process's news: which name is which type, which series it took, which to forget (the
        sids forgotten are acknowledged with the next hand-over)."""
        self.learn(changes)
        self.accept(accepted)
        self.forgotten.extend(self.forget(forget))

    def answer(
        self, forget: list[int], accepted: list[int], changes: list[tuple[str, str, str]], now: float
    ) -> tuple[list[NewRecord], list[Record], list[int]]:
        """A hand-over, once the main process's news are heard: new records, records, sids forgotten."""
        self.hear(forget, accepted, changes)
        new, known = self.hand_over(now)
        forgotten, self.forgotten = self.forgotten, []
        return new, known, forgotten

    def hand_over(self, now: float) -> tuple[list[NewRecord], list[Record]]:
        """A record of each series changed since the last hand-over, its change taken out of it."""
        new: list[NewRecord] = []
        known: list[Record] = []
        since, sids = self.since, self.sids
        self.fresh = []  # the walk below finds them
        for family in list(self.families.values()):
            take = TAKE[kind_of(family)]
            for series in family.series.values():
                if series.updated < since:
                    continue
                change = take(series)
                sid = sids.get(id(series))
                if sid is None:
                    new.append(self._new_record(family, series, change))
                    continue
                known.append((sid, series.updated, change, self._take_events(series)))
        self.since = now
        return new, known

    def introduce(self) -> list[NewRecord]:
        """Records of the series made since the last hand-over or introduction, their change taken out: those
        of metrics the store already holds with their type (new label sets: a churn of pods). A series of
        a name new to the store waits for the hand-over, where the store takes the new series of every
        worker in the order they were made, so that the first type seen wins."""
        new: list[NewRecord] = []
        fresh, self.fresh = self.fresh, []
        types = self.names.types
        for family, series in fresh:
            if id(series) in self.sids or family.series.get(series.key) is not series:
                continue  # handed over already, or gone
            if types.get(family.name) != family.type:
                self.fresh.append((family, series))
                continue
            new.append(self._new_record(family, series, TAKE[kind_of(family)](series)))
        return new

    def _new_record(self, family: Family, series: Series, change: tuple) -> NewRecord:
        events = self._take_events(series)
        sid = self._number(family, series)
        return (sid, self.specs[id(series)], series.key, self.created[id(series)], series.updated, change, events)

    def _take_events(self, series: Series) -> Events | None:
        """A provisional series' lines and events counted since the last hand-over (None once accepted)."""
        counted = self.provisional.get(id(series))
        if counted is None:
            return None
        events = (counted[0], counted[1], counted[2])
        counted[1] = counted[2] = 0
        return events

    def _number(self, family: Family, series: Series) -> int:
        sid = self.next_sid
        self.next_sid += 1
        self.sids[id(series)] = sid
        self.by_sid[sid] = (family, series)
        return sid

    def accept(self, sids: list[int]) -> None:
        """The store took these series: their lines may take the ingest's cached path from now on."""
        for sid in sids:
            entry = self.by_sid.get(sid)
            if entry is not None:
                self.provisional.pop(id(entry[1]), None)

    def forget(self, sids: list[int]) -> list[int]:
        """Forget what the main process no longer holds. A series changed since the last hand-over stays,
        under no sid: its next record is a new one, and the store makes its series again. Returns the sids
        acknowledged (all of them: none is used again)."""
        for sid in sids:
            entry = self.by_sid.pop(sid, None)
            if entry is None:
                continue
            family, series = entry
            del self.sids[id(series)]
            if series.updated < self.since:
                self.remove(family, series)
            else:  # kept for what it holds, as a new series: provisional, made now, out of the caches
                self.provisional.setdefault(id(series), ["", 0, 0])
                self.created[id(series)] = series.updated
                self.fresh.append((family, series))
                self._removed.add(id(series))
                self.generation += 1
        return sids

    def learn(self, changes: list[tuple[str, str, str]]) -> None:
        """The store's changes of which name is which type."""
        for change, name, metric_type in changes:
            if change == "+":
                self.names.claim(name, metric_type)
            else:
                self.names.release(name, metric_type)


def _untracked(series: Any) -> None:
    pass


class WorkerIngest(Ingest):
    """The ingest of one process, with a worker's store: a provisional series' lines are counted, and its
    shape not cached, until the store has accepted it."""

    store: WorkerStore

    def _update(self, sample: Sample, target: Target, mapped: int) -> Update | None:
        update = super()._update(sample, target, mapped)
        if update is not None:
            self.store.count(update[0].series, sample.kind, sample.weight)
        return update

    def _remember_shape(self, line: str, shape: Shape) -> None:
        if not self.store.is_provisional(shape.series):
            super()._remember_shape(line, shape)


def _take_counter(series: CounterSeries) -> tuple:
    change = (series.value, series.fraction)
    series.value = series.fraction = 0.0
    return change


def _take_gauge(series: Scalar) -> tuple:
    change = (series.value, series.set_at)
    series.value, series.set_at = 0.0, -math.inf
    return change


def _take_histogram(series: HeldObservations) -> tuple:
    change = (series.pending, series.weighted)
    series.pending, series.weighted = [], []
    return change


def _take_summary(series: Summary) -> tuple:
    change = (series.count, series.sum, series.window.width, series.window.take())
    series.count, series.sum = 0, 0.0
    return change


def _take_set(series: SetSeries) -> tuple:
    return series.window.take()


TAKE: dict[str, Callable[[Any], tuple]] = {
    "counter": _take_counter,
    "gauge": _take_gauge,
    "set": _take_set,
    "histogram": _take_histogram,
    "summary": _take_summary,
}
