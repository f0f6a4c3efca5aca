"""The mapping-language extensions, stage by stage without sockets, and the reaper's store index."""

import pytest

from bridge.mapping.loader import MappingError, load_mapping
from tests.conftest import pipeline, sample

EVENTS = """
mappings:
- match: deploy
  outputs:
  - name: deploys_total
    type: counter
    value: count
    tags: {}
  - name: deploy_seconds
    type: histogram
    scale: 0.001
    histogram_options: {buckets: [1, 10]}
    tags: {service: svc}
    required: [svc]
  - name: deploys_failed_total
    type: counter
    value: count
    tags: {service: svc}
    when: {outcome: [failed, errored]}
  - name: last_deploy_size
    type: gauge
    tags: {service: svc, region: region}
    non_empty: [region]
- match: lock
  name: lock
  type: gauge
  value: up_down
  tags: {kind: type}
- match: bytes
  name: bytes
  type: counter
  value: add
  labels: {unit: bytes}
  tags: {host: h}
- match: temp
  name: temp
  type: gauge
  value: add
"""


@pytest.fixture
def bridge():
    return pipeline(EVENTS)


def test_one_event_feeds_several_metrics(bridge):
    bridge.send("deploy:2500|g|#svc:api,outcome:ok,region:eu,event_host:x")
    samples = bridge.samples()
    assert sample(samples, "deploys_total") == 1
    assert sample(samples, "deploy_seconds_count", service="api") == 1
    assert sample(samples, "deploy_seconds_sum", service="api") == 2.5
    assert sample(samples, "deploy_seconds_bucket", service="api", le="10") == 1
    assert sample(samples, "last_deploy_size", service="api", region="eu") == 2500
    assert "deploys_failed_total" not in bridge.types()


def test_count_ignores_the_value(bridge):
    bridge.send("deploy:2500|g", "deploy:0|g", "deploy:7|g")
    assert sample(bridge.samples(), "deploys_total") == 3


def test_when_selects_an_output_by_tag_value(bridge):
    bridge.send(
        "deploy:1|g|#svc:api,outcome:failed", "deploy:1|g|#svc:api,outcome:errored", "deploy:1|g|#svc:api,outcome:ok"
    )
    assert sample(bridge.samples(), "deploys_failed_total", service="api") == 2


def test_required_and_non_empty_skip_the_output_and_count(bridge):
    bridge.send("deploy:1|g|#outcome:ok", "deploy:1|g|#svc:api")
    samples = bridge.samples()
    assert sample(samples, "deploys_total") == 2  # the other outputs still happen
    assert sample(samples, "deploy_seconds_count", service="api") == 1
    assert bridge.stats.output_skips == {("deploy_seconds", "svc"): 1, ("last_deploy_size", "region"): 2}
    assert sample(samples, "statsd_bridge_events_skipped_total", metric_name="deploy_seconds", tag="svc") == 1


def test_tags_map_renames_and_drops_every_other_tag(bridge):
    bridge.send("bytes:10|c|#h:web1,noise:1,event_host:x")
    assert sample(bridge.samples(), "bytes", unit="bytes", host="web1") == 10


def test_absent_optional_tag_is_an_empty_label(bridge):
    bridge.send("bytes:10|c")
    assert sample(bridge.samples(), "bytes", unit="bytes", host="") == 10


def test_up_down(bridge):
    bridge.send("lock:1|g|#type:db", "lock:1|g|#type:db", "lock:0|g|#type:db", "lock:5|g|#type:db")
    assert sample(bridge.samples(), "lock", kind="db") == 0


def test_gauge_add_accumulates(bridge):
    bridge.send("temp:3|g", "temp:4|g")
    assert sample(bridge.samples(), "temp") == 7


def test_extended_lines_take_the_full_path_every_time(bridge):
    for _ in range(3):
        bridge.send("deploy:1|g|#svc:api,outcome:failed")
    assert sample(bridge.samples(), "deploys_failed_total", service="api") == 3
    assert sample(bridge.samples(), "deploys_total") == 3


def test_a_plain_statsd_exporter_rule_keeps_every_tag():
    bridge = pipeline("mappings:\n- match: a.*\n  name: a\n  labels: {x: $1}\n")
    bridge.send("a.b:1|c|#keep:me")
    assert sample(bridge.samples(), "a", x="b", keep="me") == 1


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("mappings:\n- match: a\n  name: x\n  outputs: [{name: y}]\n", "name", "goes in each of `outputs`"),
        ("mappings:\n- match: a\n  outputs: []\n", "outputs", "non-empty list"),
        ("mappings:\n- match: a\n  outputs: [{type: counter}]\n", "", "needs a `name`"),
        ("mappings:\n- match: a\n  name: y\n  value: count\n", "value", "needs a `type`"),
        ("mappings:\n- match: a\n  name: y\n  type: counter\n  value: set\n", "value", "must be one of"),
        ("mappings:\n- match: a\n  name: y\n  type: set\n", "type", "must be one of"),
        ("mappings:\n- match: a\n  name: y\n  tags: {bad-label: t}\n", "bad-label", "invalid label name"),
        ("mappings:\n- match: a\n  name: y\n  required: team\n", "required", "list of tag names"),
        ("mappings:\n- match: a\n  name: y\n  when: {s: [{}]}\n", "s", "tag value"),
        (
            "mappings:\n- match: a\n  name: y\n  type: histogram\n  observer_type: summary\n",
            "observer_type",
            "contradicts",
        ),
        ("reaper:\n  label: 1x\n", "label", "not a label name"),
        ("reaper:\n  after: soon\n", "after", "not a duration"),
    ],
)
def test_extension_errors_name_the_key(text, key, words):
    with pytest.raises(MappingError) as caught:
        load_mapping(text, "x.yml")
    assert caught.value.key == key
    assert words in caught.value.message
    assert caught.value.line is not None


def test_reaper_block():
    reaper = load_mapping("reaper:\n  label: worker\n  after: 90s\n  interval: 250ms\n").reaper
    assert (reaper.label, reaper.after, reaper.interval) == ("worker", 90, 0.25)


def test_store_reap_drops_only_silent_sources():
    bridge = pipeline()
    bridge.store.reap_label = "worker"
    bridge.send("a:1|g|#worker:w1", "b:1|c|#worker:w1", "c:1|ms|#worker:w1", "a:1|g|#worker:w2", "free:1|c")
    bridge.clock.now += 10
    bridge.send("b:1|c|#worker:w2")
    assert bridge.store.reap(bridge.clock.now, 5) == 3
    samples = bridge.samples()
    assert {name for name, labels in samples if ("worker", "w1") in labels} == set()
    assert sample(samples, "a", worker="w2") == 1
    assert sample(samples, "free") == 1
    assert bridge.store.reap(bridge.clock.now + 4, 5) == 0
    bridge.send("b:1|c|#worker:w1")  # back, afresh; the cached line shape must not write to a reaped series
    assert sample(bridge.samples(), "b", worker="w1") == 1


def test_ttl_removal_keeps_the_source_index_consistent():
    bridge = pipeline("mappings:\n- match: t\n  name: t\n  ttl: 1s\n")
    bridge.store.reap_label = "worker"
    bridge.send("t:1|c|#worker:w1")
    assert bridge.store.sweep(bridge.clock.now + 2) == 1
    assert bridge.store.reap(bridge.clock.now + 10, 5) == 0
