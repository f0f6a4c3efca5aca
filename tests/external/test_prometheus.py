"""A real Prometheus server (Debian's `prometheus` package) scraping a real bridge.

Checked through Prometheus's own HTTP query API: the target is up, values and histogram buckets
arrive as sent, and a series the reaper drops goes stale in Prometheus at the next scrape.
"""

import time

import pytest

from tests.conftest import Prometheus, require, sample

MAPPING = """
reaper:
  label: worker
  after: 1s
  interval: 200ms
mappings:
- match: app.latency
  name: app_latency_seconds
  observer_type: histogram
  histogram_options:
    buckets: [0.1, 0.5, 1]
- match: app.tasks.*
  name: app_tasks
  labels:
    worker: $1
"""


@pytest.fixture
def prometheus_for(tmp_path):
    binary = require("prometheus")
    started = []

    def start(bridge) -> Prometheus:
        host, port = bridge.addresses["web"]
        config = (
            "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n"
            f"scrape_configs:\n- job_name: bridge\n  static_configs:\n  - targets: ['{host}:{port}']\n"
        )
        server = Prometheus(binary, config, tmp_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def only_value(result: dict) -> float | None:
    return next(iter(result.values())) if len(result) == 1 else None


def test_prometheus_scrapes_values_and_histogram_buckets(bridge_factory, tmp_path, prometheus_for):
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(MAPPING)
    bridge = bridge_factory("--mapping-config", str(mapping))
    prometheus = prometheus_for(bridge)
    bridge.send_udp(
        "app.requests:3|c|#route:home",
        "app.requests:4|c|#route:home",
        "app.queue:12|g",
        "app.latency:50|ms",
        "app.latency:300|ms",
        "app.latency:2000|ms",
    )
    assert bridge.wait_for(lambda s: sample(s, "app_latency_seconds_count") == 3) is not None
    up = prometheus.wait_for('up{job="bridge"}', lambda r: only_value(r) == 1)
    assert only_value(up) == 1, up
    requests = prometheus.wait_for("app_requests", lambda r: r)
    assert requests == {frozenset({("job", "bridge"), ("instance", bridge_target(bridge)), ("route", "home")}): 7}
    assert only_value(prometheus.query("app_queue")) == 12
    buckets = prometheus.wait_for("app_latency_seconds_bucket", lambda r: len(r) == 4)
    by_le = {dict(labels)["le"]: value for labels, value in buckets.items()}
    assert by_le == {"0.1": 1, "0.5": 2, "1": 2, "+Inf": 3}  # le as the text format writes it, as statsd_exporter
    assert only_value(prometheus.query("app_latency_seconds_sum")) == pytest.approx(2.35)
    median = prometheus.query("histogram_quantile(0.5, app_latency_seconds_bucket)")
    assert only_value(median) == pytest.approx(0.3)  # rank 1.5 of 3: halfway through the (0.1, 0.5] bucket


def bridge_target(bridge) -> str:
    host, port = bridge.addresses["web"]
    return f"{host}:{port}"


def test_a_reaped_series_goes_stale_in_prometheus(bridge_factory, tmp_path, prometheus_for):
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(MAPPING)
    bridge = bridge_factory("--mapping-config", str(mapping))
    prometheus = prometheus_for(bridge)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:  # both report until Prometheus has scraped both
        bridge.send_udp("app.tasks.w1:1|c", "app.tasks.w2:1|c")
        if len(prometheus.query("app_tasks")) == 2:
            break
        time.sleep(0.2)
    assert {dict(labels)["worker"] for labels in prometheus.query("app_tasks")} == {"w1", "w2"}
    # w2 keeps reporting; w1 goes silent, the reaper drops it and the next scrape misses it
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        bridge.send_udp("app.tasks.w2:1|c")
        if {dict(labels)["worker"] for labels in prometheus.query("app_tasks")} == {"w2"}:
            break
        time.sleep(0.2)
    assert {dict(labels)["worker"] for labels in prometheus.query("app_tasks")} == {"w2"}
    assert sample(bridge.samples(), "app_tasks", worker="w1") is None
    # stale, not merely old: the lookback window (5 minutes) would still show it otherwise
    assert only_value(prometheus.query('count_over_time(app_tasks{worker="w1"}[1m])')) >= 1


def test_openmetrics_when_enabled_and_why_it_is_not_the_default(bridge_factory, tmp_path, prometheus_for):
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(MAPPING)
    bridge = bridge_factory("--mapping-config", str(mapping), "--web-enable-openmetrics")
    prometheus = prometheus_for(bridge)
    bridge.send_udp("app.latency:300|ms")
    buckets = prometheus.wait_for("app_latency_seconds_bucket", lambda r: len(r) == 4)
    # Prometheus 2 negotiates OpenMetrics and stores le as written there: "1.0", not the text format's "1"
    assert {dict(labels)["le"] for labels in buckets} == {"0.1", "0.5", "1.0", "+Inf"}


UTF8_MAPPING = """
mappings:
- match: api.*.calls
  name: "api.calls"
  labels:
    service.name: $1
"""


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_prometheus_2_keeps_scraping_with_utf8_names_and_reads_them_underscored(
    bridge_factory, tmp_path, prometheus_for, openmetrics
):
    """Prometheus 2.42 names no escaping scheme: with --statsd.utf8-names it reads every name the bridge
    holds as sent in the underscores form, dotted names and tag keys and a mapping's UTF-8 names alike."""
    mapping = tmp_path / "mapping.yml"
    mapping.write_text(UTF8_MAPPING)
    flags = ["--statsd.utf8-names", "--mapping-config", str(mapping)]
    bridge = bridge_factory(*flags, *(["--web-enable-openmetrics"] if openmetrics else []))
    prometheus = prometheus_for(bridge)
    bridge.send_udp(
        "http.requests.count:3|c|#service.name:checkout",
        "api.checkout.calls:4|c",
        "db.latency:500|ms|#db.system:pg",
    )
    assert bridge.wait_for(lambda s: sample(s, "db_latency_count", db_system="pg") == 1) is not None
    up = prometheus.wait_for('up{job="bridge"}', lambda r: only_value(r) == 1)
    assert only_value(up) == 1, up
    target = {("job", "bridge"), ("instance", bridge_target(bridge))}
    requests = prometheus.wait_for("http_requests_count", lambda r: r)
    assert requests == {frozenset({*target, ("service_name", "checkout")}): 3}
    assert prometheus.query("api_calls") == {frozenset({*target, ("service_name", "checkout")}): 4}
    assert prometheus.query("db_latency_count") == {frozenset({*target, ("db_system", "pg")}): 1}
    assert only_value(prometheus.query('scrape_samples_post_metric_relabeling{job="bridge"}')) > 0
