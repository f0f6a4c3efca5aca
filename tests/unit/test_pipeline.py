"""Parser, mapper, store and text exposition together, without sockets."""

import math

import pytest

from tests.conftest import pipeline, sample

MAPPING = """
defaults:
  observer_type: histogram
mappings:
- match: test.dispatcher.*.*.*
  name: dispatcher_events_total
  labels:
    processor: $1
    action: $2
    outcome: $3
    job: test_dispatcher
- match: "*.signup.*.*"
  name: signup_events_total
  labels:
    provider: $2
    outcome: $3
    job: ${1}_server
- match: request.time.*
  name: request_seconds
  observer_type: summary
  summary_options:
    quantiles:
      - quantile: 0.5
        error: 0.05
      - quantile: 0.99
        error: 0.001
    max_age: 5m
    age_buckets: 3
- match: request.size.*
  name: request_bytes
  histogram_options:
    buckets: [100, 1000, 10000]
  labels:
    route: $1
- match: drop.me.*
  action: drop
  name: dropped
- match: typed.*
  match_metric_type: counter
  name: typed_counter
- match: typed.*
  match_metric_type: gauge
  name: typed_gauge
- match: scaled.*
  name: scaled_seconds
  scale: 0.001
- match: honor.*
  name: honored
  honor_labels: true
  labels:
    env: mapping
- match: dishonor.*
  name: dishonored
  labels:
    env: mapping
- match: help.me
  name: helped
  help: "A helpful text."
- match: (.*)\\.regex\\.(\\w+)
  match_type: regex
  name: "regex_${2}_total"
  labels:
    first: "$1"
- match: "first.*"
  name: first_rule
- match: "first.win"
  name: second_rule
"""


@pytest.fixture
def bridge():
    return pipeline(MAPPING)


def test_unmapped_counter_is_escaped_and_keeps_its_tags(bridge):
    bridge.send("test.web-server.foo.bar:3|c|#env:prod")
    assert sample(bridge.samples(), "test_web_server_foo_bar", env="prod") == 3


@pytest.mark.parametrize(
    ("statsd", "prometheus"),
    [
        ("test.web-server.foo.bar", "test_web_server_foo_bar"),
        ("a--b", "a_b"),
        ("a---b", "a_b"),
        ("a-.b", "a__b"),
        ("1abc", "_1abc"),
        ("héllo", "h_llo"),
        ("a b", "a_b"),
        ("a/b:c", None),  # the colon ends the name at "a/b"
    ],
)
def test_name_escaping(bridge, statsd, prometheus):
    if prometheus is None:
        bridge.send(f"{statsd}|c")
        assert bridge.stats.sample_errors
        return
    bridge.send(f"{statsd}:1|c")
    assert bridge.types().get(prometheus) == "counter"


def test_counter_is_exposed_under_its_exact_name_not_renamed_total(bridge):
    bridge.send("foo:1|c")
    text = bridge.text()
    assert "# TYPE foo counter\n" in text
    assert "\nfoo 1\n" in text
    assert "foo_total" not in text


def test_counters_add_and_rates_scale(bridge):
    bridge.send("hits:1|c", "hits:2|c", "hits:1|c|@0.1")
    assert sample(bridge.samples(), "hits") == 13


def test_gauge_set_and_deltas_in_one_datagram(bridge):
    bridge.send("temp:0|g", "temp:-5|g")
    assert sample(bridge.samples(), "temp") == -5
    bridge.send("temp:+7|g")
    assert sample(bridge.samples(), "temp") == 2
    bridge.send("temp:3|g")
    assert sample(bridge.samples(), "temp") == 3


def test_lines_apply_in_order_whichever_path_each_takes(bridge):
    # the first line of each name is new (the full path); the ones after it hit the cache it leaves
    bridge.ingest.packet(b"g:5|g\ng:+1|g\nt:1:2|ms\nt:3|ms\ng:+1|g\nc:0.5|c\nc:1|c\ng:-3|g")
    samples = bridge.samples()
    assert sample(samples, "g") == 4
    assert sample(samples, "t_count") == 3 and sample(samples, "c") == 1.5
    bridge.ingest.packet(b"other:2|g\ng:7|g\ng:+2|g\nc:0.25|c\nt:4|ms")
    samples = bridge.samples()
    assert sample(samples, "g") == 9 and sample(samples, "c") == 1.75 and sample(samples, "t_count") == 4


def test_gauge_may_hold_nan(bridge):
    bridge.send("g:NaN|g")
    assert math.isnan(sample(bridge.samples(), "g"))


def test_timer_is_observed_in_seconds_into_default_buckets(bridge):
    bridge.send("latency:150|ms", "latency:20|ms")
    samples = bridge.samples()
    assert sample(samples, "latency_bucket", le="0.025") == 1
    assert sample(samples, "latency_bucket", le="0.25") == 2
    assert sample(samples, "latency_bucket", le="+Inf") == 2
    assert sample(samples, "latency_count") == 2
    assert sample(samples, "latency_sum") == pytest.approx(0.17)


def test_histogram_and_distribution_are_observed_raw(bridge):
    bridge.send("size:3|h", "size:7|d")
    samples = bridge.samples()
    assert sample(samples, "size_bucket", le="5") == 1
    assert sample(samples, "size_bucket", le="10") == 2
    assert sample(samples, "size_sum") == 10


def test_observer_sample_rate_repeats(bridge):
    bridge.send("t:100|ms|@0.25")
    assert sample(bridge.samples(), "t_count") == 4


def test_bucket_bounds_are_inclusive(bridge):
    bridge.send("edge:0.5|h")
    samples = bridge.samples()
    assert sample(samples, "edge_bucket", le="0.25") == 0
    assert sample(samples, "edge_bucket", le="0.5") == 1


def test_multi_value_timer(bridge):
    bridge.send("multi:100:200:300|ms|#a:b")
    assert sample(bridge.samples(), "multi_count", a="b") == 3


def test_glob_mapping_with_captures(bridge):
    bridge.send("test.dispatcher.FooProcessor.send.success:1|c")
    assert (
        sample(
            bridge.samples(),
            "dispatcher_events_total",
            processor="FooProcessor",
            action="send",
            outcome="success",
            job="test_dispatcher",
        )
        == 1
    )


def test_glob_braced_capture_and_leading_star(bridge):
    bridge.send("foo_product.signup.facebook.failure:1|c")
    samples = bridge.samples()
    assert sample(samples, "signup_events_total", provider="facebook", outcome="failure", job="foo_product_server")


def test_glob_star_does_not_cross_dots(bridge):
    bridge.send("test.dispatcher.a.b.c.d:1|c")
    assert bridge.types().get("test_dispatcher_a_b_c_d") == "counter"
    assert "dispatcher_events_total" not in bridge.types()


def test_tags_join_mapping_labels(bridge):
    bridge.send("test.dispatcher.P.send.ok:1|c|#region:eu")
    samples = bridge.samples()
    assert (
        sample(
            samples,
            "dispatcher_events_total",
            processor="P",
            action="send",
            outcome="ok",
            job="test_dispatcher",
            region="eu",
        )
        == 1
    )


def test_mapping_labels_win_over_tags_unless_honor_labels(bridge):
    bridge.send("dishonor.x:1|c|#env:tag", "honor.x:1|c|#env:tag")
    samples = bridge.samples()
    assert sample(samples, "dishonored", env="mapping") == 1
    assert sample(samples, "honored", env="tag") == 1


def test_summary_has_real_quantiles(bridge):
    bridge.send(*[f"request.time.api:{v}|ms" for v in range(1, 101)])
    samples = bridge.samples()
    assert sample(samples, "request_seconds", quantile="0.5") == pytest.approx(0.050, rel=0.03)
    assert sample(samples, "request_seconds", quantile="0.99") == pytest.approx(0.099, rel=0.03)
    assert sample(samples, "request_seconds_count") == 100
    assert sample(samples, "request_seconds_sum") == pytest.approx(5.05)
    assert bridge.types()["request_seconds"] == "summary"


def test_summary_quantiles_forget_observations_older_than_max_age(bridge):
    bridge.send(*["request.time.old:1000|ms"] * 10)
    assert sample(bridge.samples(), "request_seconds", quantile="0.5") == pytest.approx(1.0, rel=0.03)
    bridge.clock.now += 301  # past max_age (5m)
    bridge.send(*["request.time.old:10|ms"] * 10)
    samples = bridge.samples()
    assert sample(samples, "request_seconds", quantile="0.99") == pytest.approx(0.010, rel=0.03)
    assert sample(samples, "request_seconds_count") == 20  # _count and _sum are cumulative


def test_histogram_options_buckets(bridge):
    bridge.send("request.size.home:500|h")
    samples = bridge.samples()
    assert sample(samples, "request_bytes_bucket", route="home", le="100") == 0
    assert sample(samples, "request_bytes_bucket", route="home", le="1000") == 1
    assert sample(samples, "request_bytes_bucket", route="home", le="+Inf") == 1


def test_drop_action(bridge):
    bridge.send("drop.me.now:1|c", "kept:1|c")
    assert set(bridge.types()) & {"dropped", "drop_me_now"} == set()
    assert bridge.stats.actions["drop"] == 1


def test_match_metric_type(bridge):
    bridge.send("typed.x:1|c", "typed.x:5|g")
    types = bridge.types()
    assert types["typed_counter"] == "counter"
    assert types["typed_gauge"] == "gauge"


def test_scale(bridge):
    bridge.send("scaled.x:1500|c")
    assert sample(bridge.samples(), "scaled_seconds") == 1.5


def test_help_text(bridge):
    bridge.send("help.me:1|g")
    assert "# HELP helped A helpful text.\n" in bridge.text()


def test_regex_mapping_uses_go_expansion(bridge):
    bridge.send("svc.a.regex.calls:1|c")
    assert sample(bridge.samples(), "regex_calls_total", first="svc.a") == 1


def test_first_matching_glob_wins(bridge):
    bridge.send("first.win:1|c")
    types = bridge.types()
    assert "first_rule" in types
    assert "second_rule" not in types


def test_globs_are_tried_before_regexes():
    bridge = pipeline("""
mappings:
- match: .*
  match_type: regex
  name: by_regex
- match: a.b
  name: by_glob
""")
    bridge.send("a.b:1|c", "c.d:1|c")
    types = bridge.types()
    assert "by_glob" in types
    assert "by_regex" in types


def test_type_conflict_keeps_the_first_type_and_counts(bridge):
    bridge.send("clash:1|c", "clash:5|g", "clash:2|c")
    assert bridge.types()["clash"] == "counter"
    assert sample(bridge.samples(), "clash") == 3
    assert bridge.stats.conflicts[("gauge", "clash")] == 1


def test_sample_name_clash_between_histogram_and_counter_is_a_conflict(bridge):
    bridge.send("lat:1|h", "lat_count:1|c", "lat_sum:1|g")
    assert set(bridge.types()) >= {"lat"}
    assert bridge.stats.conflicts[("counter", "lat_count")] == 1
    assert bridge.stats.conflicts[("gauge", "lat_sum")] == 1


def test_self_metric_names_cannot_be_taken(bridge):
    bridge.send("statsd_bridge_lines_total:1|g")
    assert bridge.stats.conflicts[("gauge", "statsd_bridge_lines_total")] == 1
    assert bridge.types()["statsd_bridge_lines_total"] == "counter"


def test_same_name_with_other_label_names_keeps_both(bridge):
    bridge.send("mixed:1|c|#a:1", "mixed:1|c|#b:2", "mixed:1|c")
    samples = bridge.samples()
    assert sample(samples, "mixed", a="1") == 1
    assert sample(samples, "mixed", b="2") == 1
    assert sample(samples, "mixed") == 1


def test_tag_keys_are_escaped_to_label_names(bridge):
    bridge.send("tagged:1|c|#my-tag.x:v,9lives:y")
    assert sample(bridge.samples(), "tagged", my_tag_x="v", _9lives="y") == 1


def test_label_values_are_escaped_in_the_exposition(bridge):
    bridge.send('quoted:1|c|#path:C:\\dir\\"x"')
    assert sample(bridge.samples(), "quoted", path='C:\\dir\\"x"') == 1


def test_reserved_le_tag_on_a_histogram_is_dropped_and_counted(bridge):
    bridge.send("lat2:1|h|#le:5,env:prod")
    samples = bridge.samples()
    assert sample(samples, "lat2_count", env="prod") == 1
    assert bridge.stats.tag_errors == 1


def test_bad_lines_never_cost_their_neighbours(bridge):
    bridge.ingest.packet(b"good.a:1|c\nbad\nalso:bad|c\n\xff\xfe:1|c\ngood.b:2|c\nx:1|s\ngood.c:3|g")
    samples = bridge.samples()
    assert sample(samples, "good_a") == 1
    assert sample(samples, "good_b") == 2
    assert sample(samples, "good_c") == 3
    errors = bridge.stats.sample_errors
    assert errors == {"malformed_line": 1, "malformed_value": 1, "invalid_utf8": 1, "set_unsupported": 1}
    assert bridge.stats.lines == 7


def test_negative_scale_makes_a_negative_counter_which_is_rejected():
    bridge = pipeline("mappings:\n- match: neg.*\n  name: neg\n  scale: -1\n")
    bridge.send("neg.x:5|c")
    assert "neg" not in bridge.types()
    assert bridge.stats.event_errors["illegal_negative_counter"] == 1


def test_empty_name_after_substitution_is_an_error():
    bridge = pipeline("mappings:\n- match: (x)?y\\.z\n  match_type: regex\n  name: ${1}\n")
    bridge.send("y.z:1|c")
    assert bridge.stats.event_errors["empty_metric_name"] == 1


def test_ttl_expires_idle_series():
    bridge = pipeline("mappings:\n- match: short.*\n  name: short\n  ttl: 10s\n  labels:\n    k: $1\n")
    bridge.send("short.a:1|c", "short.b:1|c", "forever:1|c")
    bridge.clock.now += 5
    bridge.send("short.b:1|c")
    assert bridge.store.sweep(bridge.clock.now + 4) == 0
    assert bridge.store.sweep(bridge.clock.now + 6) == 1
    samples = bridge.samples()
    assert sample(samples, "short", k="a") is None
    assert sample(samples, "short", k="b") == 2
    assert sample(samples, "forever") == 1


def test_defaults_ttl_applies_to_unmapped_metrics():
    bridge = pipeline("defaults:\n  ttl: 1m\n")
    bridge.send("any:1|c")
    assert bridge.store.sweep(bridge.clock.now + 59) == 0
    assert bridge.store.sweep(bridge.clock.now + 61) == 1
    assert "any" not in bridge.types()


def test_default_observer_type_summary():
    bridge = pipeline("defaults:\n  observer_type: summary\n")
    bridge.send("s:1|ms")
    assert bridge.types()["s"] == "summary"
    assert sample(bridge.samples(), "s", quantile="0.9") == pytest.approx(0.001, rel=0.03)


def test_legacy_timer_type_and_top_level_buckets():
    bridge = pipeline("mappings:\n- match: old.*\n  name: old\n  timer_type: histogram\n  buckets: [1, 2]\n")
    bridge.send("old.x:1500|ms")
    assert sample(bridge.samples(), "old_bucket", le="2") == 1
    assert sample(bridge.samples(), "old_bucket", le="1") == 0


def test_self_metrics_count_what_happened(bridge):
    bridge.send("a:1|c", "b:1|g", "c:1|ms", "bad", "test.dispatcher.P.s.o:1|c")
    samples = bridge.samples()
    assert sample(samples, "statsd_bridge_lines_total") == 5
    assert sample(samples, "statsd_bridge_events_total", type="counter") == 2
    assert sample(samples, "statsd_bridge_events_total", type="gauge") == 1
    assert sample(samples, "statsd_bridge_events_total", type="observer") == 1
    assert sample(samples, "statsd_bridge_sample_errors_total", reason="malformed_line") == 1
    assert sample(samples, "statsd_bridge_events_unmapped_total") == 3
    assert sample(samples, "statsd_bridge_events_actions_total", action="map") == 1
    assert sample(samples, "statsd_bridge_metrics", type="counter") == 2


def test_caches_let_go_of_removed_series_and_keep_live_ones():
    bridge = pipeline("mappings:\n- match: churn.*\n  name: churn_$1\n  ttl: 10s\n")
    for generation in range(20):
        bridge.send(*(f"churn.g{generation}_{i}:1|c" for i in range(50)), "steady:1|c", "level:3|g")
        bridge.clock.now += 6
        bridge.store.sweep(bridge.clock.now)
    bridge.send("steady:1|c")  # the batch that notices the removals
    ingest = bridge.ingest
    # two generations are alive at a time (ttl 10 s, a new one every 6 s), plus steady and level
    assert len(ingest.mapper._cache) <= 2 * 50 + 2
    assert len(ingest._shapes) <= 2 * 50 + 2
    steady = bridge.store.families["steady"].series[()]
    assert any(shape.series is steady for shape in ingest._shapes.values())
    assert sample(bridge.samples(), "steady") == 21
    bridge.send("churn.g0_0:1|c", "churn.g0_0:1|c")  # long gone: comes back fresh, not into a dead series
    assert sample(bridge.samples(), "churn_g0_0") == 2
