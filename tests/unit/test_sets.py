"""StatsD sets (`|s`) with a mapping's set_window: a gauge of the distinct values of a sliding window, exact
to a bound and estimated past it within the documented error, in bounded memory; refused without one."""

from __future__ import annotations

import gc
import tracemalloc

import datasketches
import pytest

from bridge.explain import explain_lines, format_text
from bridge.mapping.lint import rollback
from bridge.mapping.loader import load_mapping
from bridge.parsing.line import TagStats, parse_line
from bridge.reasons import SET
from bridge.series.distinct import BUCKETS, EXACT_LIMIT, SKETCH_LG_K, DistinctWindow, member_hash
from tests.conftest import pipeline, sample
from tests.unit.test_handover import workers

MAPPING = """
mappings:
- match: users.*
  name: users_seen
  labels: {page: $1}
  set_window: 10s
- match: plain.*
  name: plain_$1
"""
# a HyperLogLog of 2**12 registers: relative standard error 1.04 / 64; three of them bound the tests
DOCUMENTED_ERROR = 3 * 1.04 / 64


def users(bridge) -> float | None:
    return sample(bridge.samples(), "users_seen", page="home")


def test_a_set_counts_the_distinct_members_of_its_window_and_is_a_gauge():
    bridge = pipeline(MAPPING)
    bridge.send("users.home:alice|s", "users.home:bob|s", "users.home:alice|s", "users.home:42|s|@0.5")
    assert users(bridge) == 3
    assert "# TYPE users_seen gauge" in bridge.text()
    assert bridge.stats.events[SET] == 4
    assert not bridge.stats.sample_errors and not bridge.stats.internal_errors


def test_the_window_slides_and_scrapes_read_it_without_resetting_it():
    bridge = pipeline(MAPPING)
    bridge.clock.now = 1000.0
    bridge.send("users.home:alice|s")
    bridge.clock.now = 1005.0
    bridge.send("users.home:bob|s")
    # several scrapes at one moment read one number, and reading changes nothing
    assert [users(bridge) for _ in range(3)] == [2, 2, 2]
    bridge.clock.now = 1010.5  # alice's bucket (1000-1001) left the 10 s window; bob's has not
    assert users(bridge) == 1
    bridge.clock.now = 1015.5
    assert users(bridge) == 0
    bridge.send("users.home:alice|s")  # seen again: counted again
    assert users(bridge) == 1


def test_a_member_seen_again_stays_counted_from_its_last_sighting():
    bridge = pipeline(MAPPING)
    bridge.send("users.home:alice|s")
    bridge.clock.now += 8
    bridge.send("users.home:alice|s")
    bridge.clock.now += 8
    assert users(bridge) == 1


@pytest.mark.parametrize("distinct", [1, EXACT_LIMIT - 1, EXACT_LIMIT])
def test_up_to_the_bound_the_count_is_exact(distinct):
    window = DistinctWindow(60.0)
    for i in range(distinct):
        for _ in range(2):  # each twice: a distinct count
            window.add(int(member_hash(f"user-{i}")), 1000.0 + i * 0.01)
    assert window.count(1010.0) == distinct
    assert not window.sketches


@pytest.mark.parametrize("distinct", [EXACT_LIMIT + 1, 5_000, 50_000, 200_000])
def test_past_the_bound_the_estimate_is_within_the_documented_error(distinct):
    window = DistinctWindow(60.0)
    for i in range(distinct):
        window.add(int(member_hash(f"member {i}")), 1000.0 + 50.0 * i / distinct)
    estimate = window.count(1050.0)
    error = abs(estimate - distinct) / distinct
    print(f"{distinct} distinct values: estimated {estimate}, relative error {error:.4f}")
    assert error <= DOCUMENTED_ERROR, (distinct, estimate)


def test_counts_exactly_again_once_its_sketches_left_the_window():
    window = DistinctWindow(10.0)
    for i in range(EXACT_LIMIT + 10):
        window.add(int(member_hash(str(i))), 1000.0)
    assert window.sketches
    window.add(int(member_hash("late")), 1012.0)
    assert window.count(1012.0) == 1
    assert not window.sketches


def _held(values: int) -> tuple[int, int]:
    """Bytes a window holds after `values` distinct values in one window: Python's as tracemalloc sees them,
    and its sketches' (allocated in C++, out of tracemalloc's sight) as the library counts them."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    window = DistinctWindow(60.0)
    for i in range(values):
        window.add(i * 7919, 1000.0 + 59.0 * i / values)  # spread over every bucket
    window.count(1059.0)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held, sum(sketch.get_updatable_serialization_bytes() for sketch in window.sketches.values())


def test_memory_per_series_is_bounded_whatever_the_distinct_values():
    exact, no_sketches = _held(EXACT_LIMIT)
    sketched = [_held(values) for values in (20_000, 200_000, 600_000)]
    print(f"held: {exact} bytes at {EXACT_LIMIT} values; (Python, sketches) {sketched} at 20k, 200k, 600k")
    assert no_sketches == 0 and exact < 80_000  # a thousand hashes and their buckets
    for python_bytes, sketch_bytes in sketched:
        assert python_bytes < 8_000
        # one sketch per bucket, each at most its registers and header
        assert sketch_bytes <= BUCKETS * datasketches.hll_sketch.get_max_updatable_serialization_bytes(
            SKETCH_LG_K, datasketches.tgt_hll_type.HLL_8
        )
    assert sketched[2][1] == sketched[1][1]  # full: three times the values cost the sketches nothing more


def test_without_set_window_a_set_is_refused_as_statsd_exporter_refuses_it():
    for mapping in ("", "mappings:\n- match: users.*\n  name: users_seen\n"):
        bridge = pipeline(mapping)
        bridge.send("users.home:alice|s", "users.home:1|s|#a:b")
        assert bridge.stats.sample_errors == {"set_unsupported": 2}
        assert bridge.stats.samples == 2
        assert not bridge.stats.events and not bridge.stats.events_unmapped
        assert "users" not in bridge.text()
        assert parse_line("users.home:alice|s", TagStats())[1][0].reason == "set_unsupported"


def test_a_set_no_rule_with_a_window_takes_is_refused_and_a_drop_rule_drops_it():
    bridge = pipeline(MAPPING + "- match: gone.*\n  name: gone\n  action: drop\n")
    bridge.send("plain.x:alice|s", "unmapped:bob|s", "gone.x:carol|s")
    assert bridge.stats.sample_errors == {"set_unsupported": 2}
    assert bridge.stats.actions["drop"] == 1
    assert not bridge.stats.events


def test_defaults_give_every_set_a_window_unmapped_ones_too():
    bridge = pipeline("defaults:\n  set_window: 1m\nmappings: []\n")
    bridge.send("logins:alice|s", "logins:bob|s|#region:eu")
    samples = bridge.samples()
    assert sample(samples, "logins") == 1
    assert sample(samples, "logins", region="eu") == 1


def test_a_gauge_line_for_a_sets_name_is_a_conflict():
    bridge = pipeline(MAPPING)
    bridge.send("users.home:alice|s")
    bridge.ingest.packet(b"users_seen:3|g|#page:home")
    assert users(bridge) == 1
    assert sum(bridge.stats.conflicts.values()) == 1


def test_a_name_has_one_window_a_rule_with_another_is_a_conflict():
    """Buckets of two widths can't count one set: the first window a name gets stays, as the first type does."""
    bridge = pipeline(
        "mappings:\n"
        "- match: a.*\n  name: seen\n  set_window: 2s\n  labels: {src: $1}\n"
        "- match: b.*\n  name: seen\n  set_window: 20s\n  labels: {src: $1}\n"
    )
    bridge.send("a.x:alice|s", "b.y:bob|s")
    samples = bridge.samples()
    assert sample(samples, "seen", src="x") == 1 and sample(samples, "seen", src="y") is None
    assert sum(bridge.stats.conflicts.values()) == 1


def test_workers_hand_over_the_values_so_the_count_is_their_union():
    several = workers(MAPPING, count=2)
    several.store.clock = several.clock
    # each datagram to the next worker: alice and bob reach both
    several.send(*[f"users.home:{name}|s" for name in ("alice", "alice", "bob", "bob", "carol")])
    assert sample(several.samples(), "users_seen", page="home") == 3
    several.send("users.home:dave|s", "users.home:alice|s")
    assert sample(several.samples(), "users_seen", page="home") == 4
    several.clock.now += 11
    assert sample(several.samples(), "users_seen", page="home") == 0


def test_workers_hand_over_sketches_past_the_bound():
    several = workers(MAPPING, count=2)
    several.store.clock = several.clock
    distinct = 3 * EXACT_LIMIT
    lines = [f"users.home:m{i % distinct}|s" for i in range(2 * distinct)]  # each value to both workers
    several.send(*["\n".join(lines[i : i + 50]) for i in range(0, len(lines), 50)])
    estimate = sample(several.samples(), "users_seen", page="home")
    assert estimate is not None and abs(estimate - distinct) / distinct <= DOCUMENTED_ERROR


def test_the_lint_names_set_window_in_its_rollback_line():
    config = load_mapping("statsd_bridge_extensions: true\n" + MAPPING, "m.yml")
    assert rollback(config) == (
        "m.yml: statsd_exporter would load this file but ignore the bridge's mapping extensions `set_window`; "
        "a rollback to statsd_exporter needs another mapping file"
    )
    assert load_mapping("defaults:\n  set_window: 30s\n", "d.yml").extensions == [(2, "set_window")]


@pytest.mark.parametrize("window", ["0s", "-1s", "soon"])
def test_a_set_window_must_be_a_positive_duration(window):
    with pytest.raises(ValueError, match="set_window"):
        load_mapping(f"defaults:\n  set_window: {window}\n", "d.yml")


def test_explain_says_what_a_set_line_does():
    config = load_mapping(MAPPING, "m.yml")
    first, again, refused = explain_lines(["users.home:alice|s", "users.home:bob|s", "plain.x:alice|s"], config)
    assert first["samples"][0]["kind"] == SET and first["samples"][0]["member"] == "alice"
    assert [series["effect"] for series in again["series"]] == [
        "a gauge of the distinct values in its set_window: now 2"
    ]
    assert "member 'bob'" in format_text(again)
    assert [problem["reason"] for problem in refused["problems"]] == ["set_unsupported"]


def test_a_cleared_or_expired_set_starts_anew():
    bridge = pipeline(MAPPING.replace("set_window: 10s", "set_window: 10s\n  ttl: 30s"))
    bridge.send("users.home:alice|s", "users.home:bob|s")
    assert bridge.store.clear() == 1
    assert users(bridge) is None
    bridge.send("users.home:carol|s")
    assert users(bridge) == 1
    bridge.clock.now += 31
    assert bridge.store.sweep(bridge.clock.now) == 1
    assert users(bridge) is None and not bridge.store._sets
