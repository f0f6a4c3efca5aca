"""The series store on its own: families, sample-name claims, caps, TTL sweep, the reaper's index, and the
options each set of label names keeps."""

import math

import pytest

from bridge.mapping.router import Target
from bridge.series.quantiles import SummaryOptions
from bridge.series.store import ConflictError, MetricSeriesLimitError, SeriesLimitError, Store
from bridge.series.types import CounterSeries


def target(name: str, kind: str = "counter", **options) -> Target:
    return Target(name=name, type=kind, **options)


def test_a_series_is_made_once_and_found_again():
    store = Store()
    first = store.series(target("hits"), (("env", "prod"),), 0.0)
    assert isinstance(first, CounterSeries)
    assert store.series(target("hits"), (("env", "prod"),), 1.0) is first
    assert store.series_count == 1


def test_a_name_keeps_its_first_type_and_sample_names_are_claimed():
    store = Store()
    store.series(target("latency", "histogram"), (), 0.0)
    with pytest.raises(ConflictError):
        store.series(target("latency", "gauge"), (), 0.0)
    with pytest.raises(ConflictError):  # a histogram writes latency_count
        store.series(target("latency_count"), (), 0.0)
    store.reserve(["statsd_bridge_lines_total"])
    with pytest.raises(ConflictError):
        store.series(target("statsd_bridge_lines_total"), (), 0.0)


def test_caps_refuse_new_series_and_let_existing_ones_update():
    store = Store()
    store.max_series, store.max_series_per_metric = 3, 2
    store.series(target("a"), (("k", "1"),), 0.0)
    store.series(target("a"), (("k", "2"),), 0.0)
    with pytest.raises(MetricSeriesLimitError):
        store.series(target("a"), (("k", "3"),), 0.0)
    store.series(target("b"), (), 0.0)
    with pytest.raises(SeriesLimitError):
        store.series(target("c"), (), 0.0)
    assert store.series(target("a"), (("k", "1"),), 0.0) is not None


def test_ttl_sweep_drops_only_series_past_their_ttl_and_frees_the_name():
    store = Store()
    old = store.series(target("brief", ttl=10.0), (("k", "old"),), 0.0)
    store.series(target("brief", ttl=10.0), (("k", "new"),), 5.0).updated = 5.0
    assert old.updated == 0.0
    assert store.sweep(12.0) == 1
    assert [key for key in store.families["brief"].series] == [(("k", "new"),)]
    assert store.sweep(20.0) == 1
    assert "brief" not in store.families  # the name is free for another type
    store.series(target("brief", "gauge"), (), 21.0)


def test_the_reaper_drops_every_series_of_a_silent_source_and_nothing_else():
    store = Store()
    store.reap_label = "worker"
    for name in ("jobs", "load"):
        for worker in ("w1", "w2"):
            store.series(target(name), (("worker", worker),), 0.0)
    store.series(target("global"), (), 0.0)
    store.families["load"].series[(("worker", "w2"),)].updated = 50.0  # one fresh series keeps its source
    assert store.sources == 2
    assert store.reap(100.0, after=60.0) == 2
    remaining = {(name, key) for name, family in store.families.items() for key in family.series}
    assert remaining == {("jobs", (("worker", "w2"),)), ("load", (("worker", "w2"),)), ("global", ())}
    assert store.reaped_sources == 1 and store.reaped_series == 2 and store.sources == 1


def test_each_set_of_label_names_keeps_the_options_of_its_first_series():
    store = Store()
    store.series(target("lat", "histogram", buckets=(1.0,)), (), 0.0)
    other = store.series(target("lat", "histogram", buckets=(2.0, 3.0)), (("k", "v"),), 0.0)
    same_names = store.series(target("lat", "histogram", buckets=(9.0,)), (("k", "w"),), 0.0)
    assert store.families["lat"].series[()].bounds == (1.0,)
    assert other.bounds == (2.0, 3.0) and same_names.bounds == (2.0, 3.0)
    summary = store.series(target("q", "summary", summary=SummaryOptions(((0.5, 0.05),))), (), 0.0)
    assert summary.quantiles == (0.5,)


def test_pending_observations_fold_into_the_buckets():
    store = Store()
    histogram = store.series(target("lat", "histogram", buckets=(1.0, 10.0)), (), 0.0)
    histogram.pending.extend([0.5, 5.0, 50.0] * 4)
    store.pending_tracker()(histogram)
    store.add_pending(12)
    assert store.pending == 12
    store.fold_pending()
    assert histogram.counts == [4, 4, 4] and histogram.pending == []
    assert histogram.sum == pytest.approx(222.0) and not math.isnan(histogram.sum)


def test_clear_drops_the_selected_series_as_ttl_does_and_keeps_the_indexes_true():
    store = Store()
    store.reap_label = "worker"
    store.max_series = 4
    for worker in ("w1", "w2"):
        store.series(target("jobs", ttl=60.0), (("worker", worker),), 0.0)
    store.series(target("lat", "histogram"), (("worker", "w1"),), 0.0)
    store.series(target("global"), (), 0.0)
    store.take_removed()
    generation = store.generation

    assert store.clear(lambda name: lambda key: ("worker", "w1") in key) == 2
    remaining = {(name, key) for name, family in store.families.items() for key in family.series}
    assert remaining == {("jobs", (("worker", "w2"),)), ("global", ())}
    assert store.series_count == 2 and store.sources == 1 and store.generation > generation
    assert len(store.take_removed()) == 2  # the caches of series let go of both
    assert "lat" not in store.families  # its name is free: another type may take it
    store.series(target("lat", "gauge"), (), 1.0)
    assert store.sweep(100.0) == 1  # the cleared ttl series are no longer watched: only w2's goes

    assert store.clear() == 2
    assert store.families == {} and store.series_count == 0 and store.sources == 0
    for index in range(4):  # the cap counts from zero again
        store.series(target("fresh"), (("k", str(index)),), 2.0)
    with pytest.raises(SeriesLimitError):
        store.series(target("fresh"), (("k", "over"),), 2.0)


def test_a_cleared_series_is_made_anew_with_its_vector():
    store = Store()
    old = store.series(target("lat", "histogram", buckets=(1.0,)), (), 0.0)
    old.observe(0.5, 1)
    assert store.clear() == 1
    new = store.series(target("lat", "histogram", buckets=(5.0,)), (), 3.0)
    # the first series of a set of label names again: its rule's buckets, nothing of the old one
    assert new is not old and new.bounds == (5.0,) and sum(new.counts) == 0
    assert store.vectors_created == {"histogram": 2}
