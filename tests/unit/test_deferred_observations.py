"""Histogram observations deferred and folded in batches give the buckets observing one by one gives."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.series.native_histogram import BOUNDS, ZERO_THRESHOLD
from bridge.series.store import FOLD_AFTER
from bridge.series.types import Histogram
from tests.conftest import pipeline

CLASSIC = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# values where a fold could go wrong: bucket bounds at every schema (upper-inclusive), their neighbours,
# powers of two, the zero threshold, negatives, and plain timer-like values
_edges = sorted({math.ldexp(bound, exponent) for schema in (1, 3, 8) for bound in BOUNDS[schema][::9]
                 for exponent in (-3, 0, 1, 7)})  # fmt: skip
edge_values = st.sampled_from(
    [*_edges, *(math.nextafter(v, math.inf) for v in _edges), *(math.nextafter(v, 0) for v in _edges), *CLASSIC,
     0.0, -0.0, ZERO_THRESHOLD, -ZERO_THRESHOLD, 2 * ZERO_THRESHOLD, 1e-300, -0.5, -3.0, 1e300]
)  # fmt: skip
values = st.one_of(edge_values, st.floats(-1e6, 1e6, allow_nan=False), st.floats(0.0001, 10.0))


def _state(series: Histogram) -> tuple:
    native = series.native
    return (series.counts, series.sum, native.schema, native.zero_count, native.positive, native.negative)


@settings(max_examples=400, deadline=None)
@given(
    batches=st.lists(st.lists(values, max_size=60), min_size=1, max_size=6),
    schema=st.integers(-4, 8),
    max_buckets=st.sampled_from([0, 2, 5, 16, 256]),
)
def test_folding_batches_equals_observing_one_by_one(batches, schema, max_buckets):
    one_by_one = Histogram((), 0.0, CLASSIC, (schema, max_buckets))
    deferred = Histogram((), 0.0, CLASSIC, (schema, max_buckets))
    for batch in batches:
        for value in batch:
            one_by_one.observe(value, 1)
        deferred.pending.extend(batch)
        deferred.fold()
        assert _state(deferred) == _state(one_by_one)
        assert math.copysign(1, deferred.sum) == math.copysign(1, one_by_one.sum)


def test_a_weighted_observation_keeps_the_arrival_order():
    one_by_one = Histogram((), 0.0, CLASSIC, (3, 4))
    deferred = Histogram((), 0.0, CLASSIC, (3, 4))
    for value in (0.1, 0.2, 0.4, 0.8):
        one_by_one.observe(value, 1)
        deferred.pending.append(value)
    one_by_one.observe(1.6, 3)  # a sampled timer line stands for three observations
    deferred.observe(1.6, 3)  # folds what waits before it
    assert not deferred.pending and _state(deferred) == _state(one_by_one)


def test_waiting_observations_stay_bounded_and_all_reach_the_scrape():
    bridge = pipeline("defaults:\n  observer_type: histogram\nmappings: []\n")
    lines = [f"t{i % 700}:{(i * 7919) % 1000 / 10}|ms" for i in range(FOLD_AFTER + 5_000)]
    for start in range(0, len(lines), 30):
        bridge.ingest.packet("\n".join(lines[start : start + 30]).encode())
    waiting = sum(len(series.pending) for family in bridge.store.families.values() for series in family.series.values())
    assert 0 < waiting < FOLD_AFTER and waiting == bridge.store.pending
    counts = bridge.samples()
    assert sum(v for (name, _), v in counts.items() if name.endswith("_count")) == len(lines)
    assert sum(v for (name, labels), v in counts.items() if name == "t0_bucket" and ("le", "+Inf") in labels) == (
        len(lines) // 700 + 1
    )
