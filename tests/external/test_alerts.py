"""deploy/prometheus/alerts.yml: valid, unit-tested with promtool, and firing for real.

A real Prometheus with the rules loaded scrapes a bridge that is made to lose datagrams in the
kernel (stopped with SIGSTOP while datagrams pour in) and to fail a reload: exactly those two
alerts fire, and nothing else.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.conftest import Prometheus, promtool, require

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def test_promtool_checks_the_rules():
    result = subprocess.run([promtool(), "check", "rules", str(RULES / "alerts.yml")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_promtool_unit_tests_of_the_rules():
    # each alert fires on a series that should fire it and stays quiet on healthy and borderline ones
    result = subprocess.run([promtool(), "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def alerts(prometheus: Prometheus) -> dict[str, str]:
    """{alert name: state} of Prometheus's active alerts."""
    with urllib.request.urlopen(prometheus.url + "/api/v1/alerts", timeout=5) as response:
        body = json.load(response)
    return {alert["labels"]["alertname"]: alert["state"] for alert in body["data"]["alerts"]}


def test_kernel_drops_and_a_failed_reload_fire_and_nothing_else(bridge_factory, tmp_path):
    binary = require("prometheus")
    mapping = tmp_path / "mapping.yml"
    mapping.write_text("mappings:\n- match: flood.*\n  name: flood\n")
    bridge = bridge_factory(
        "--statsd.read-buffer=65536", "--web.enable-lifecycle", "--statsd.mapping-config", str(mapping)
    )
    host, port = bridge.addresses["web"]
    (tmp_path / "alerts.yml").write_text((RULES / "alerts.yml").read_text())
    config = (
        "global:\n  scrape_interval: 500ms\n  scrape_timeout: 400ms\n  evaluation_interval: 500ms\n"
        "rule_files: [alerts.yml]\n"
        f"scrape_configs:\n- job_name: statsd-bridge\n  static_configs:\n  - targets: ['{host}:{port}']\n"
    )
    prometheus = Prometheus(binary, config, tmp_path)
    try:
        # Prometheus must have seen the counters at 0 before they move
        assert prometheus.wait_for("statsd_bridge_udp_packet_drops_total == 0", bool)
        assert prometheus.wait_for('statsd_bridge_config_reloads_total{outcome="failure"} == 0', bool)
        # an evaluation before the first scrape saw no target (StatsdBridgeAbsent pending): wait it out
        deadline = time.monotonic() + 10
        while alerts(prometheus) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert alerts(prometheus) == {}

        bridge.process.send_signal(signal.SIGSTOP)
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for i in range(3000):
                    sock.sendto(f"flood.n{i % 10}:1|c".encode(), bridge.addresses["udp"])
        finally:
            bridge.process.send_signal(signal.SIGCONT)
        mapping.write_text("mappings:\n- match: flood.*\n  name: 1nvalid\n")
        request = urllib.request.Request(bridge.web + "/-/reload", method="POST")
        try:
            urllib.request.urlopen(request, timeout=5)
        except urllib.error.HTTPError as error:
            assert error.code == 500  # the reload failed; the old rules keep running

        wanted = {"StatsdBridgeKernelDrops": "firing", "StatsdBridgeReloadFailed": "firing"}
        deadline = time.monotonic() + 30
        while alerts(prometheus) != wanted and time.monotonic() < deadline:
            time.sleep(0.5)
        assert alerts(prometheus) == wanted
        time.sleep(2)  # a few more evaluations: still those two, and nothing else
        assert alerts(prometheus) == wanted
    finally:
        prometheus.stop()
