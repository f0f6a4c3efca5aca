"""The command lines a migrating user already has start the bridge unchanged, and mean what they say."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import parse_samples, sample

# the prometheus-community Helm chart's arguments for statsd_exporter (its deployment template)
HELM_CHART = [
    "--web.listen-address=127.0.0.1:0", "--web.telemetry-path=/metrics", "--statsd.listen-udp=127.0.0.1:0",
    "--statsd.listen-tcp=127.0.0.1:0", "--statsd.cache-size=1000", "--statsd.event-queue-size=10000",
    "--statsd.event-flush-threshold=1000", "--statsd.event-flush-interval=200ms",
]  # fmt: skip
# every flag statsd_exporter 0.30.0 defines, each with a value it accepts; booleans in both forms
EVERY_FLAG = [
    "--web.enable-lifecycle", "--no-web.enable-lifecycle", "--statsd.listen-unixgram=", "--statsd.unixsocket-mode=755",
    "--statsd.read-buffer=1048576", "--statsd.cache-size=0", "--statsd.cache-type=random",
    "--statsd.event-queue-size=5", "--statsd.event-flush-threshold=1", "--statsd.event-flush-interval=1s",
    "--debug.dump-fsm=", "--statsd.parse-dogstatsd-tags", "--no-statsd.parse-dogstatsd-tags",
    "--statsd.parse-influxdb-tags", "--no-statsd.parse-influxdb-tags", "--statsd.parse-librato-tags",
    "--no-statsd.parse-librato-tags", "--statsd.parse-signalfx-tags", "--no-statsd.parse-signalfx-tags",
    "--statsd.relay.packet-length=1400", "--statsd.udp-packet-queue-size=100", "--log.level=warn",
    "--log.format=json", "--no-check-config",
]  # fmt: skip


def check_config(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args, "--check-config"], capture_output=True, text=True, timeout=30
    )


def test_the_helm_charts_arguments_start_the_bridge_and_say_what_is_inert(bridge_factory):
    bridge = bridge_factory(*HELM_CHART)
    bridge.send_udp("helm.hits:1|c")
    assert bridge.wait_for(lambda s: sample(s, "helm_hits") == 1) is not None
    inert = [line for line in bridge.log if "flag has no effect here" in line]
    assert len(inert) == 4
    assert any("flag=--statsd.event-flush-interval" in line and "no flush delay" in line for line in inert)


def test_every_statsd_exporter_flag_is_accepted():
    result = check_config(*EVERY_FLAG)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("flag", "words"),
    [
        ("--statsd.cache-size=-1", "--statsd.cache-size"),
        ("--statsd.cache-type=fifo", "--statsd.cache-type"),
        ("--statsd.event-queue-size=-1", "--statsd.event-queue-size"),
        ("--statsd.event-flush-interval=soon", "--statsd.event-flush-interval"),
        ("--statsd.udp-packet-queue-size=-5", "--statsd.udp-packet-queue-size"),
        ("--statsd.event-flush-threshold=many", "--statsd.event-flush-threshold"),
    ],
)
def test_inert_flags_are_still_checked_as_statsd_exporter_checks_them(flag, words):
    result = check_config(flag)
    assert result.returncode == 2
    assert words in result.stderr


def test_dialect_flags_do_what_they_say(bridge_factory):
    bridge = bridge_factory("--no-statsd.parse-influxdb-tags", "--no-statsd.parse-dogstatsd-tags")
    bridge.send_udp("influx,env=prod:1|c", "dog:1|c|#env:prod", "lib#env=qa:1|c")
    samples = bridge.wait_for(lambda s: sample(s, "lib", env="qa") == 1)
    assert samples is not None, bridge.metrics()
    assert sample(samples, "influx_env_prod") == 1  # the tags stay in the name, escaped
    assert sample(samples, "dog") == 1  # |#... ignored


def test_telemetry_path_at_the_root(bridge_factory):
    bridge = bridge_factory("--web.telemetry-path=/")
    bridge.send_udp("root.hits:1|c")
    samples = bridge.wait_for(lambda s: sample(s, "root_hits") == 1)
    assert samples is not None
    status, headers, body = bridge.get("/")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert sample(parse_samples(body.decode()), "root_hits") == 1
