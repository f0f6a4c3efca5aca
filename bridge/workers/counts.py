"""What the workers count, added up in the main process, which exposes it: each hand-over's stats, its
listeners' and relays' counts, and its mapper's cache counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bridge.receiving.relay import RelayStats
from bridge.stats import Stats, add_counts
from bridge.workers.records import Flushed


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
class Totals:
    """The main process's counts, which the workers' hand-overs add to."""

    stats: Stats
    listeners: dict[str, Any]  # listener kind -> its counts (DatagramCounts, TCPCounts)
    relays: dict[str, RelayStats]  # by target
    mapper: MapperCounts = field(default_factory=MapperCounts)

    def add(self, worker: int, flushed: Flushed) -> None:
        add_counts(self.stats, flushed.counts)
        self.stats.worker_lines[worker] += flushed.counts.get("lines", 0)
        for kind, taken in flushed.listeners.items():
            mine = self.listeners.get(kind)
            if mine is not None:
                for name, value in taken.items():
                    setattr(mine, name, getattr(mine, name) + value)
        gets, hits, length = flushed.mapper
        self.mapper.cache_gets += gets
        self.mapper.cache_hits += hits
        self.mapper.lengths[worker] = length
        for target, lines, packets, dropped in flushed.relays:
            relay = self.relays.get(target)
            if relay is not None:
                relay.lines += lines
                relay.packets += packets
                relay.dropped.update(dropped)
