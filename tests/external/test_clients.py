"""Real StatsD client libraries, unmodified, sending to a real bridge process.

Python's `statsd` and `datadog` packages come with the test extras; Node's hot-shots is
installed by `make test` into tests/clients/node_modules (npm ci, pinned by its lock file).
"""

import os
import stat
import subprocess
from pathlib import Path

import pytest
import statsd
from datadog.dogstatsd import DogStatsd

from tests.conftest import assert_promtool_parses, require, sample

CLIENTS = Path(__file__).resolve().parents[1] / "clients"


def test_python_statsd_over_udp(bridge):
    host, port = bridge.addresses["udp"]
    client = statsd.StatsClient(host, port, prefix="py")
    client.incr("hits")
    client.incr("hits", 5)
    client.decr("left", 2)  # a negative counter increment: StatsD daemons take it, Prometheus counters can't
    client.gauge("level", 10)
    client.gauge("level", 3, delta=True)
    client.gauge("level", -4, delta=True)
    client.gauge("temp", -12)  # sent as "temp:0|g" then "temp:-12|g": absolute negatives need the reset
    client.timing("query", 320)
    with client.timer("block"):
        pass
    with client.pipeline() as pipe:  # one datagram of several lines
        for _ in range(3):
            pipe.incr("piped")
        pipe.gauge("piped_gauge", 1)
    client.set("users", "u1")
    samples = bridge.wait_for(lambda s: sample(s, "statsd_bridge_sample_errors_total", reason="set_unsupported") == 1)
    assert samples is not None, bridge.metrics()
    assert sample(samples, "py_hits") == 6
    assert sample(samples, "py_left") is None
    assert sample(samples, "statsd_bridge_events_error_total", reason="illegal_negative_counter") == 1
    assert sample(samples, "py_level") == 9
    assert sample(samples, "py_temp") == -12
    assert sample(samples, "py_query_count") == 1
    assert sample(samples, "py_query_sum") == pytest.approx(0.32)
    assert sample(samples, "py_query", quantile="0.5") == pytest.approx(0.32)  # a summary, as statsd_exporter
    assert sample(samples, "py_block_count") == 1
    assert sample(samples, "py_piped") == 3
    assert sample(samples, "py_piped_gauge") == 1
    assert_promtool_parses(bridge.metrics())


def test_python_statsd_over_tcp(bridge):
    host, port = bridge.addresses["tcp"]
    client = statsd.TCPStatsClient(host, port, prefix="pytcp")
    client.incr("hits", 2)
    client.gauge("level", 4)
    client.timing("query", 120)
    client.close()
    samples = bridge.wait_for(lambda s: sample(s, "pytcp_query_count") == 1)
    assert samples is not None, bridge.metrics()
    assert sample(samples, "pytcp_hits") == 2
    assert sample(samples, "pytcp_level") == 4


def send_with_dogstatsd(client: DogStatsd) -> None:
    client.increment("dd.hits", tags=["env:prod"])
    client.increment("dd.hits", 2, tags=["env:prod"])
    client.gauge("dd.temp", 21.5)
    client.histogram("dd.size", 42, tags=["k:v"])
    client.distribution("dd.render", 0.5)
    client.timing("dd.t", 12)
    client.set("dd.users", "u1")
    client.event("deployed", "v2 is out")
    client.service_check("dd.svc", 0)
    client.flush()  # sends the buffered lines, then the client's own telemetry


def check_dogstatsd_samples(samples: dict, transport: str, **container: str) -> None:
    assert sample(samples, "dd_hits", env="prod", team="core", **container) == 3
    assert sample(samples, "dd_temp", team="core", **container) == 21.5
    assert sample(samples, "dd_size_count", k="v", team="core", **container) == 1  # |h is observed as sent
    assert sample(samples, "dd_size_sum", k="v", team="core", **container) == 42
    assert sample(samples, "dd_render_sum", team="core", **container) == 0.5
    assert sample(samples, "dd_t_sum", team="core", **container) == 0.012
    for reason in ("set_unsupported", "dogstatsd_event_unsupported", "service_check_unsupported"):
        assert sample(samples, "statsd_bridge_sample_errors_total", reason=reason) == 1
    # the container id field (|c:...) is a container_id label, as statsd_exporter 0.29 and later make it
    ids = {dict(labels).get("container_id") for name, labels in samples if name.startswith("dd_")}
    assert ids == {container.get("container_id")}
    telemetry = {
        dict(labels).get("client_transport") for name, labels in samples if name == "datadog_dogstatsd_client_metrics"
    }
    assert telemetry == {transport}


def test_datadog_dogstatsd_over_udp_with_container_id_and_telemetry(bridge):
    host, port = bridge.addresses["udp"]
    client = DogStatsd(
        host=host,
        port=port,
        constant_tags=["team:core"],
        container_id="4f9c0e2a",
        telemetry_min_flush_interval=0,
        disable_buffering=False,
    )
    send_with_dogstatsd(client)
    samples = bridge.wait_for(
        lambda s: (
            sample(s, "dd_t_count", team="core", container_id="4f9c0e2a") == 1
            and any(name == "datadog_dogstatsd_client_metrics" for name, _ in s)
        )
    )
    assert samples is not None, bridge.metrics()
    check_dogstatsd_samples(samples, "udp", container_id="4f9c0e2a")
    assert_promtool_parses(bridge.metrics())


def test_datadog_dogstatsd_over_unixgram_with_socket_mode(bridge_factory, tmp_path):
    path = str(tmp_path / "dsd.socket")
    bridge = bridge_factory("--statsd-listen-unixgram", path, "--statsd-unixsocket-mode", "660")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    client = DogStatsd(
        socket_path=path, constant_tags=["team:core"], telemetry_min_flush_interval=0, disable_buffering=False
    )
    send_with_dogstatsd(client)
    samples = bridge.wait_for(
        lambda s: (
            sample(s, "dd_t_count", team="core") == 1
            and any(name == "datadog_dogstatsd_client_metrics" for name, _ in s)
        )
    )
    assert samples is not None, bridge.metrics()
    check_dogstatsd_samples(samples, "uds")
    assert sample(samples, "statsd_bridge_unixgram_packets_total") >= 2
    assert sample(samples, "statsd_bridge_udp_packets_total") == 0


def hot_shots(bridge, style: str) -> None:
    node = require("node")
    if not (CLIENTS / "node_modules" / "hot-shots").is_dir():
        require("tests/clients/node_modules/hot-shots", "run `make test`, which runs npm ci in tests/clients")
    host, port = bridge.addresses["udp"]
    result = subprocess.run(
        [node, str(CLIENTS / "hot_shots_send.js"), host, str(port), style], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("style", ["dogstatsd", "telegraf"])
def test_node_hot_shots(bridge, style):
    hot_shots(bridge, style)
    samples = bridge.wait_for(lambda s: sample(s, "hs_render_count", team="web", route="/home") == 1)
    assert samples is not None, bridge.metrics()
    assert sample(samples, "hs_requests", team="web", route="/home") == 3
    assert sample(samples, "hs_inflight", team="web", route="/home") is None  # decrement: a negative counter
    assert sample(samples, "statsd_bridge_events_error_total", reason="illegal_negative_counter") == 1
    assert sample(samples, "hs_queue", team="web", queue="mail") == 5
    assert sample(samples, "hs_latency_sum", team="web", route="/home") == 0.25
    assert sample(samples, "hs_payload_sum", team="web", route="/home") == 512
    assert sample(samples, "hs_render_sum", team="web", route="/home") == 40
    assert sample(samples, "statsd_bridge_tags_total") == 8
    assert_promtool_parses(bridge.metrics())
