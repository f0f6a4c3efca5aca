"""promtool (Prometheus's own parser) reads what the bridge exposes: the text format of every kind of
series, and a real scrape; and it does refuse a broken exposition, so that its word means something."""

import pytest

from tests.conftest import assert_promtool_parses, pipeline, sample
from tests.unit.test_exposition import EVERYTHING, MAPPING


def test_promtool_accepts_the_text_format():
    bridge = pipeline(MAPPING)
    bridge.send(*EVERYTHING)
    assert_promtool_parses(bridge.text())


def test_promtool_catches_a_broken_exposition():
    with pytest.raises(AssertionError):
        assert_promtool_parses('foo{a="b} 1\n')


def test_promtool_parses_a_real_scrape(bridge_factory, tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text(
        "mappings:\n- match: svc.*.time\n  name: svc_seconds\n  observer_type: summary\n  labels:\n    svc: $1\n"
    )
    bridge = bridge_factory("--mapping-config", str(mapping))
    bridge.send_udp(
        "svc.api.time:10|ms",
        "svc.db.time:30|ms|#shard:1",
        "plain:1|c",
        "gauge.neg:-1|g",
        "h:5|h|#k:v",
        'odd:1|c|#q:a"b,bs:a\\b',
        "clash:1|c",
        "clash:1|g",
        "h_count:1|c",
    )
    assert bridge.wait_for(lambda s: sample(s, "h_count", k="v") == 1) is not None
    assert_promtool_parses(bridge.metrics())
