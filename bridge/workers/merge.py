"""The main process's side of the hand-over: each worker's records applied to the one store.

The store keeps its rules whoever hands a series over: type conflicts, the series caps, ttl, the
reaper's index. What a worker hands over that the store refuses (a conflict, a cap) is counted as one
process counts it, once per record rather than per line, and the worker is told to forget the series.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bridge.reasons import SET
from bridge.series.refusals import EVENT_KIND, Refusals
from bridge.series.store import ConflictError, SeriesLimitError, Store
from bridge.series.types import LabelKey
from bridge.stats import Stats
from bridge.workers.records import Events, MetricSpec, NewRecord, Record, kind_of

# the StatsD kind of a series' lines by what its hand-over carries (records.kind_of)
KIND_EVENT = {**EVENT_KIND, "set": SET}


class Known:
    """The series one worker has handed over, by sid, and the sids it was asked to forget."""

    def __init__(self) -> None:
        self.sids: dict[int, tuple[MetricSpec, LabelKey]] = {}
        self.forgetting: set[int] = set()  # asked, not yet acknowledged
        self.to_forget: list[int] = []  # to ask with the next hand-over
        self.accepted: list[int] = []  # new series the store took, to tell with the next hand-over
        self.name_changes: list[tuple[str, str, str]] = []  # the store's Names changes, to tell likewise

    def forget_gone(self, store: Store) -> None:
        """Ask the worker to forget the sids whose series the store no longer holds (ttl, reaper)."""
        families = store.families
        for sid, (spec, key) in self.sids.items():
            if sid in self.forgetting:
                continue
            family = families.get(spec.name)
            if family is None or key not in family.series:
                self.to_forget.append(sid)
                self.forgetting.add(sid)

    def take_news(self) -> tuple[list[int], list[int], list[tuple[str, str, str]]]:
        """What the worker is to hear with the next hand-over: sids to forget, sids accepted, name changes."""
        news = (self.to_forget, self.accepted, self.name_changes)
        self.to_forget, self.accepted, self.name_changes = [], [], []
        return news

    def acknowledged(self, sids: list[int]) -> None:
        for sid in sids:
            self.sids.pop(sid, None)
            self.forgetting.discard(sid)

    def refused(self, sid: int) -> None:
        self.sids.pop(sid, None)
        if sid not in self.forgetting:
            self.forgetting.add(sid)
            self.to_forget.append(sid)


class Merger:
    """Applies hand-overs to the store, counting what it refuses in the main process's stats."""

    def __init__(self, store: Store, stats: Stats) -> None:
        self.store = store
        self.stats = stats
        self._track_pending = store.pending_tracker()
        self.refusals = Refusals(stats, store)
        self._generation = store.generation
        self.apply: dict[str, Callable] = {
            "counter": self._counter,
            "gauge": self._gauge,
            "set": self._set,
            "histogram": self._histogram,
            "summary": self._summary,
        }

    def prepare(self, workers: list[Known]) -> None:
        """Before a round: what each worker is to hear with it (the series the store removed since the last
        round, which name is which type now)."""
        store = self.store
        if store.generation != self._generation:
            self._generation = store.generation
            store.take_removed()  # no cache of series here: the workers' are told by sid instead
            for known in workers:
                known.forget_gone(store)
        changes = store.names.take_changes()
        for known in workers:
            known.name_changes.extend(changes)

    def merge(self, handovers: list[tuple[Known, list[NewRecord], list[Record], list[int]]]) -> None:
        """Several workers' hand-overs of one round: new series in the order they were first seen, so
        that the first of two conflicting types wins as in one process; then every known series; then
        the sids each worker has forgotten."""
        new = [(record, known) for known, records, _, _ in handovers for record in records]
        new.sort(key=lambda item: item[0][3])
        for (sid, spec, key, _, updated, change, events), known in new:
            known.sids[sid] = (spec, key)
            if self._apply(known, sid, spec, key, updated, change, events):
                known.accepted.append(sid)
        for known, _, records, _ in handovers:
            sids = known.sids
            for sid, updated, change, events in records:
                entry = sids.get(sid)
                if entry is None:
                    continue  # refused at its first record; the worker has been told to forget it
                self._apply(known, sid, entry[0], entry[1], updated, change, events)
        for known, _, _, forgotten in handovers:
            known.acknowledged(forgotten)

    def _apply(
        self,
        known: Known,
        sid: int,
        spec: MetricSpec,
        key: LabelKey,
        updated: float,
        change: tuple,
        events: Events | None,
    ) -> bool:
        """Apply one record; False when the store refused its series, counted as one process counts it:
        the lines of a provisional series (`events`) become conflicts or refusals, not events."""
        kind, samples, count = events if events is not None else (KIND_EVENT[kind_of(spec)], 1, 1)
        try:
            series = self.store.series(spec, key, updated)
        except (ConflictError, SeriesLimitError) as refusal:
            self.refusals.count(refusal, kind, spec.name, count, samples, updated)
            self._uncount(kind, count, events)
            known.refused(sid)
            return False
        self.apply[kind_of(spec)](series, change)
        if updated > series.updated:
            series.updated = updated
        return True

    def _uncount(self, kind: str, count: int, events: Events | None) -> None:
        """A refused series' lines were counted as events where they were applied: they are not."""
        if events is not None and count:
            events_total = self.stats.events
            events_total[kind] -= count
            if not events_total[kind]:
                del events_total[kind]  # as if never counted: one process shows no type it has no event of

    @staticmethod
    def _counter(series: Any, change: tuple) -> None:
        whole, fraction = change
        series.value += whole
        series.fraction += fraction

    @staticmethod
    def _gauge(series: Any, change: tuple) -> None:
        value, set_at = change
        if set_at == -math.inf:
            series.value += value  # only changed (+N, -N) there: the changes add up
        elif set_at >= series.set_at:
            series.value, series.set_at = value, set_at
        # else another worker set it later: that set wins, as it would have in one process

    @staticmethod
    def _set(series: Any, change: tuple) -> None:
        series.window.absorb(change)  # the union of the values seen, not the sum of counts

    def _histogram(self, series: Any, change: tuple) -> None:
        pending, weighted = change
        for value, weight in weighted:
            series.observe(value, weight)
        if pending:
            if not series.pending:
                self._track_pending(series)
            series.pending.extend(pending)
            self.store.add_pending(len(pending))

    @staticmethod
    def _summary(series: Any, change: tuple) -> None:
        count, total, width, buckets = change
        series.count += count
        series.sum += total
        series.window.absorb(buckets, width)
