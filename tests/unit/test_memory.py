"""Memory follows the live series: a churn of unique names through the in-process pipeline leaves no
trace in the store, the mapper or the ingest once its series have expired."""

import gc
import sys

from tests.conftest import pipeline

# counters with a pod tag and timers, unmapped and mapped, all with a 2 s ttl; the timers of one rule
# are histograms, the rest summaries
MAPPING = """
defaults:
  ttl: 2s
mappings:
- match: churn.hist.*
  observer_type: histogram
  name: churn_hist_$1
"""
NAMES_PER_SECOND = 1_000


def churn(bridge, second: int) -> None:
    lines = []
    for i in range(NAMES_PER_SECOND // 4):
        unique = f"{second}_{i}"
        lines += [
            f"churn.c{unique}:1|c|#pod:p{unique}",
            f"churn.t{unique}:3|ms|#pod:p{i % 7}",
            f"churn.hist.h{unique}:3|ms",
            f"churn.g:{i}|g|#pod:p{unique},{unique}:x",  # a new set of label names each line
        ]
    bridge.clock.now += 1
    bridge.ingest.packets([("\n".join(lines[i : i + 20])).encode() for i in range(0, len(lines), 20)])
    bridge.store.sweep(bridge.clock.now)
    bridge.text()


def test_a_churn_of_unique_names_holds_memory_by_its_live_series():
    bridge = pipeline(MAPPING)
    for second in range(20):  # warm-up: the live set (3 s of names) and the caches reach their size
        churn(bridge, second)
    gc.collect()
    live = bridge.store.series_count
    blocks = sys.getallocatedblocks()
    for second in range(20, 80):
        churn(bridge, second)
    gc.collect()
    grown = sys.getallocatedblocks() - blocks
    assert bridge.store.series_count == live  # the same live set: the expired went as new ones came
    assert bridge.stats.lines == 80 * NAMES_PER_SECOND
    # 60 s of churn made and dropped 60,000 series and vectors; a store that kept its vectors would keep ~180,000 blocks
    assert grown < 1_000, f"{grown} blocks more after 60 s of churn"
    assert bridge.store.vectors_created["counter"] == 80 * NAMES_PER_SECOND // 4
