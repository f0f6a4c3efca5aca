"""Self-metrics a migrating user can port alerts to: every statsd_exporter_* family has a statsd_bridge_*
counterpart with the same type and labels, and the counts that mean the same agree on the same input."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from tests.conftest import free_port, start_bridge
from tests.differential import parse_families

# statsd_exporter's family -> ours, where the name is more than the prefix swapped
RENAMED = {
    "statsd_metric_mapper_cache_length": "statsd_bridge_metric_mapper_cache_length",
    "statsd_metric_mapper_cache_gets_total": "statsd_bridge_metric_mapper_cache_gets_total",
    "statsd_metric_mapper_cache_hits_total": "statsd_bridge_metric_mapper_cache_hits_total",
}
# build_info describes the build: Go's version, OS and architecture there, Python's here
BUILD_INFO_LABELS = {"version", "revision", "branch", "pythonversion", "os", "arch"}
# labels statsd_exporter added after the reference build (0.23.0): metric_name arrived in 0.29.0
NEWER_LABELS = {"statsd_exporter_events_conflict_total": {"metric_name"}}
# Counts that mean the same on both sides, so they must agree on the same datagrams
SAME_COUNTS = [
    "lines_total", "udp_packets_total", "events_total", "events_unmapped_total", "events_actions_total",
    "events_conflict_total", "events_error_total", "metrics_total", "loaded_mappings", "tags_total",
    "tcp_connections_total",
]  # fmt: skip

MAPPING = """
mappings:
- match: mapped.*
  name: mapped_total
  labels:
    what: $1
- match: dropped.*
  action: drop
  name: dropped
"""
LINES = [
    "mapped.a:1|c", "mapped.b:2|c|#env:prod", "dropped.x:1|c", "unmapped.gauge:3|g", "unmapped.timer:5|ms",
    "conflict:1|c", "conflict:1|g", "negative:-1|c", "badvalue:x|c", "tagged:1|c|#a:b,c:d", "noval",
]  # fmt: skip


def ours(name: str) -> str:
    return RENAMED.get(name) or "statsd_bridge_" + name.removeprefix("statsd_exporter_")


def label_names(family) -> set[str]:
    return {name for _, labels in family.samples for name, _ in labels} - {"le", "quantile"}


@pytest.fixture
def both(tmp_path):
    from tests.differential import Reference, reference_binary

    mapping = tmp_path / "m.yml"
    mapping.write_text(MAPPING)
    relay = f"127.0.0.1:{free_port()}"  # nobody listens: the relay families still appear
    args = [f"--statsd.mapping-config={mapping}", f"--statsd.relay.address={relay}"]
    reference = Reference(reference_binary(), args)
    bridge = start_bridge(*args)
    yield reference, bridge
    reference.stop()
    bridge.stop()


def test_every_statsd_exporter_self_metric_has_a_counterpart(both):
    reference, bridge = both
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for target in (reference.udp, bridge.addresses["udp"]):
            for line in LINES:
                sock.sendto(line.encode(), target)
    with socket.create_connection(bridge.addresses["tcp"]), socket.create_connection(reference.udp):
        pass  # one TCP connection each
    deadline = time.monotonic() + 10
    while True:
        theirs, mine = parse_families(reference.metrics()), parse_families(bridge.metrics())
        done = all(ours(f"statsd_exporter_{n}") in mine and f"statsd_exporter_{n}" in theirs for n in SAME_COUNTS)
        counts = {n: (theirs[f"statsd_exporter_{n}"].samples, mine[ours(f"statsd_exporter_{n}")].samples)
                  for n in SAME_COUNTS if done}  # fmt: skip
        if (done and all(a == b for a, b in counts.values())) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing, different = [], []
    for name, family in theirs.items():
        if not name.startswith(("statsd_exporter_", "statsd_metric_mapper_cache_")):
            continue
        counterpart = mine.get(ours(name))
        if counterpart is None:
            missing.append(name)
            continue
        expected_labels = BUILD_INFO_LABELS if name.endswith("build_info") else label_names(family)
        expected_labels |= NEWER_LABELS.get(name, set())
        if counterpart.type != family.type or label_names(counterpart) != expected_labels:
            different.append(f"{name}: {family.type} {sorted(label_names(family))} there, "
                             f"{counterpart.type} {sorted(label_names(counterpart))} here")  # fmt: skip
    assert not missing, f"no counterpart for {missing}"
    assert not different, "\n".join(different)
    for name, (reference_samples, bridge_samples) in counts.items():
        newer = NEWER_LABELS.get(f"statsd_exporter_{name}", set())
        bridge_samples = {(sample, frozenset((k, v) for k, v in labels if k not in newer)): value
                          for (sample, labels), value in bridge_samples.items()}  # fmt: skip
        mine = {(n.removeprefix("statsd_bridge_"), labels): v for (n, labels), v in bridge_samples.items()}
        theirs = {(n.removeprefix("statsd_exporter_"), labels): v for (n, labels), v in reference_samples.items()}
        assert mine == theirs, name


def test_kernel_drops_on_the_udp_socket_are_counted(bridge_factory):
    # a small receive buffer, the bridge stopped while datagrams pour in: the kernel drops what
    # doesn't fit, and the bridge must count exactly that
    bridge = bridge_factory("--statsd.read-buffer=65536")
    sent = 3000
    bridge.process.send_signal(signal.SIGSTOP)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(sent):
                sock.sendto(f"flood.n{i % 10}:1|c".encode(), bridge.addresses["udp"])
    finally:
        bridge.process.send_signal(signal.SIGCONT)
    samples = bridge.wait_for(
        lambda s: (
            s.get(("statsd_bridge_udp_packets_total", frozenset()), 0)
            + s.get(("statsd_bridge_udp_packet_drops_total", frozenset()), 0)
            == sent
        ),
        timeout=10,
    )
    assert samples is not None, bridge.metrics()
    received = samples[("statsd_bridge_udp_packets_total", frozenset())]
    dropped = samples[("statsd_bridge_udp_packet_drops_total", frozenset())]
    assert dropped > 0 and received > 0
    counted = sum(v for (name, _), v in samples.items() if name == "flood_n0" or name.startswith("flood_n"))
    assert counted == received  # every datagram that got in became a series update
    assert os.path.exists("/proc/net/udp")


def test_build_info(bridge):
    from bridge import __version__

    samples = bridge.samples()
    ((labels, value),) = [(dict(k[1]), v) for k, v in samples.items() if k[0] == "statsd_bridge_build_info"]
    assert value == 1 and labels["version"] == __version__ and set(labels) == BUILD_INFO_LABELS
