"""--statsd.utf8-names through a running bridge (one process, and workers): names and tag keys sent over
UDP are held as sent; a scraper that names no escaping (Prometheus 2) reads the underscores form, one
that asks for allow-utf-8 (Prometheus 3) the names as sent, in text, OpenMetrics and protobuf, each read
by its parser; names that would read alike for Prometheus 2 are refused and counted."""

from __future__ import annotations

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from tests.conftest import sample
from tests.protobuf_scrape import ACCEPT as PROTOBUF
from tests.protobuf_scrape import read_delimited

pytestmark = pytest.mark.usefixtures("each_worker_count")

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# Prometheus 3's default Accept, and Prometheus 2's
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
LINES = (
    "http.requests.count:3|c|#service.name:checkout,env:prod",
    "db.latency:0.5|ms|#db.system:pg",
    "plain_total:2|c|#host.name:web-1",
    "caf\u00e9.orders:1|g",
)
MAPPING = """
mappings:
  - match: "api.*.calls"
    name: "api.calls"
    labels:
      service.name: "$1"
"""


def _get(bridge, accept: str) -> tuple[str, bytes]:
    status, headers, body = bridge.get(headers={"Accept": accept} if accept else {})
    assert status == 200
    return headers["Content-Type"], body


def _ours(families) -> dict:
    return {f.name: f for f in families if not f.name.startswith(("statsd_", "process_", "python_"))}


def _started(tmp_path, bridge_factory, *args: str):
    mapping = tmp_path / "m.yml"
    mapping.write_text(MAPPING)
    bridge = bridge_factory("--statsd.utf8-names", "--statsd.mapping-config", str(mapping), *args)
    bridge.send_udp(*LINES, "api.checkout.calls:4|c")
    done = bridge.wait_for(
        lambda s: sample(s, "db_latency_count", db_system="pg") == 1 and sample(s, "api_calls", service_name="checkout")
    )
    assert done is not None  # the default page: the underscores form
    return bridge


def test_prometheus_2_reads_underscores_and_prometheus_3_the_names_as_sent_in_text(bridge_factory, tmp_path):
    bridge = _started(tmp_path, bridge_factory)
    for accept in ("", PROMETHEUS_2):
        content_type, body = _get(bridge, accept)
        assert content_type == TEXT
        families = _ours(text_families(body.decode()))
        assert sorted(families) == ["api_calls", "caf__orders", "db_latency", "http_requests_count", "plain"]
        assert families["http_requests_count"].samples[0].labels == {"env": "prod", "service_name": "checkout"}
        assert families["api_calls"].samples[0].labels == {"service_name": "checkout"}
        assert families["api_calls"].samples[0].value == 4
    content_type, body = _get(bridge, PROMETHEUS_3)
    assert content_type == TEXT + "; escaping=allow-utf-8"
    assert b'{"http.requests.count",env="prod","service.name"="checkout"} 3\n' in body
    families = _ours(text_families(body.decode()))
    assert sorted(families) == ["api.calls", "caf\u00e9.orders", "db.latency", "http.requests.count", "plain"]
    assert families["http.requests.count"].samples[0].labels == {"env": "prod", "service.name": "checkout"}
    assert families["db.latency"].samples[-1].name == "db.latency_count"
    assert families["plain"].samples[0].labels == {"host.name": "web-1"}
    assert families["caf\u00e9.orders"].samples[0].value == 1


def test_openmetrics_and_protobuf_carry_the_names_as_sent(bridge_factory, tmp_path):
    bridge = _started(tmp_path, bridge_factory, "--web-enable-openmetrics")
    content_type, body = _get(bridge, PROMETHEUS_3)
    assert content_type == OPENMETRICS + "; escaping=allow-utf-8"
    families = _ours(openmetrics_families(body.decode()))
    assert families["plain"].type == "counter"  # plain_total: the family is named without _total
    assert families["plain"].samples[0].labels == {"host.name": "web-1"}
    assert families["http.requests.count"].samples[0].labels == {"env": "prod", "service.name": "checkout"}
    content_type, body = _get(bridge, PROMETHEUS_2)
    assert content_type == OPENMETRICS + "; escaping=underscores"
    assert "http_requests_count" in _ours(openmetrics_families(body.decode()))
    _, body = _get(bridge, PROTOBUF + ";escaping=allow-utf-8")
    names = {family.name: family for family in read_delimited(body)}
    assert names["http.requests.count"].metric[0].label[1].name == "service.name"
    _, body = _get(bridge, PROTOBUF)
    assert "http_requests_count" in {family.name for family in read_delimited(body)}


def test_names_that_read_alike_for_prometheus_2_are_refused_and_counted(bridge_factory):
    bridge = bridge_factory("--statsd.utf8-names")
    bridge.send_udp("a.b:1|c")
    assert bridge.wait_for(lambda s: sample(s, "a_b") == 1) is not None
    bridge.send_udp("a_b:5|c", "x:1|c|#k.x:1,k_x:2", "a.b:1|c")
    done = bridge.wait_for(
        lambda s: (
            sample(s, "a_b") == 2
            and sample(s, "statsd_bridge_events_conflict_total", type="counter", metric_name="a_b") == 1
            and sample(s, "statsd_bridge_events_error_total", reason="label_name_collision") == 1
        )
    )
    assert done is not None
    assert sample(done, "x") is None
    families = _ours(text_families(_get(bridge, PROMETHEUS_3)[1].decode()))
    assert list(families) == ["a.b"]


def test_without_the_flag_names_are_statsd_exporters_under_every_scheme(bridge_factory):
    bridge = bridge_factory()
    bridge.send_udp(*LINES)
    assert bridge.wait_for(lambda s: sample(s, "db_latency_count", db_system="pg") == 1) is not None
    names = sorted(_ours(text_families(_get(bridge, "")[1].decode())))
    assert names == ["caf__orders", "db_latency", "http_requests_count", "plain"]  # the parser takes _total off
    assert sorted(_ours(text_families(_get(bridge, PROMETHEUS_3)[1].decode()))) == names
