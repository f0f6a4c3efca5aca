"""Self-metrics a migrating user can port alerts to: every statsd_exporter_* family has a statsd_bridge_*
counterpart with the same type and labels, and the counts that mean the same agree on the same input."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from tests.conftest import free_port, start_bridge
from tests.differential import pace, parse_families

# one process, and two receiving workers with the same answers
pytestmark = pytest.mark.usefixtures("each_worker_count")

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
    "lines_total", "samples_total", "tags_total", "tag_errors_total", "udp_packets_total", "events_total",
    "events_unmapped_total", "events_actions_total", "events_conflict_total", "events_error_total", "metrics_total",
    "loaded_mappings", "tcp_connections_total", "tcp_connection_errors_total", "tcp_too_long_lines_total",
]  # fmt: skip
# sample_errors_total: where statsd_exporter says malformed_value, illegal_event or malformed_line, the bridge
# may name the problem more closely (a set, a DogStatsD event or service check, invalid UTF-8); the counts
# of the group agree, and every other reason agrees on its own
REASON_GROUP = {
    "malformed_value", "illegal_event", "malformed_line", "set_unsupported", "dogstatsd_event_unsupported",
    "service_check_unsupported", "invalid_utf8",
}  # fmt: skip

MAPPING = """
mappings:
- match: mapped.*
  name: mapped_total
  labels:
    what: $1
- match: dropped.*
  action: drop
  name: dropped
- match: empty.*
  name: $2
"""
# Every kind of input that moves a self-metric, outside the listed divergences (tests/external/test_differential.py)
LINES = [
    "mapped.a:1|c", "mapped.b:2|c|#env:prod", "dropped.x:1|c", "unmapped.gauge:3|g", "unmapped.timer:5|ms",
    "conflict:1|c", "conflict:1|g", "negative:-1|c", "badvalue:x|c", "tagged:1|c|#a:b,c:d", "noval",
    # sampled observers: statsd_exporter makes int(1/rate) events of each, mapped, unmapped, dropped or conflicting
    "mapped.sampled:5|ms|@0.1", "unmapped.sampled:5|h|@0.25", "dropped.sampled:1|ms|@0.5", "conflict:2|ms|@0.5",
    "mapped.hsampled:2|h|@0.2|#env:prod",
    # lines without a colon, empty lines, several samples in one line, sets, unknown types, bad fields (a colon
    # without a |, `nopipe:1`, is a sample in the 0.23.0 reference and none in 0.30.0, whose reading the bridge has)
    "nocolon", "two.lines:1|c\n\nthree:1|g\n", "multi:1|c:2|g:x|c", "multi.tags,k=v:1|c:2|g",
    "set.num:1|s|#a:b", "set.word:u1|s", "badtype:1|x", "emptyfield:1|c||#a:b", "badrate:1|c|@abc",
    "tagerr:1|c|#a,:b,c:d", "influx,a=b,bad:1|c", "mixed,a=b:1|c|#c:d", "_sc|check|0",
    b"\xffbad:1|c", "empty.one:1|c", "empty.two:1|ms|@0.5",
]  # fmt: skip
TCP_LINES = b"tcp.one:1|c\n\ntcp.two:2|g\nnocolon\n"


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
                sock.sendto(line.encode() if isinstance(line, str) else line, target)
                time.sleep(pace())
    for address in (bridge.addresses["tcp"], reference.udp):  # statsd_exporter's TCP port is its UDP one
        with socket.create_connection(address) as connection:
            connection.sendall(TCP_LINES)
    deadline = time.monotonic() + 10
    while True:
        theirs, mine = parse_families(reference.metrics()), parse_families(bridge.metrics())
        counts = {
            name: (_counts(theirs, f"statsd_exporter_{name}"), _counts(mine, f"statsd_bridge_{name}"))
            for name in SAME_COUNTS
        }
        errors = (
            _grouped(_counts(theirs, "statsd_exporter_sample_errors_total")),
            _grouped(_counts(mine, "statsd_bridge_sample_errors_total")),
        )
        if all(a == b for a, b in [*counts.values(), errors]) or time.monotonic() > deadline:
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
            different.append(
                f"{name}: {family.type} {sorted(label_names(family))} there, "
                f"{counterpart.type} {sorted(label_names(counterpart))} here"
            )
    assert not missing, f"no counterpart for {missing}"
    assert not different, "\n".join(different)
    for name, (reference_counts, bridge_counts) in counts.items():
        assert bridge_counts == reference_counts, name
    assert errors[1] == errors[0]


def _counts(families: dict, name: str) -> dict[frozenset, float]:
    """{labels: value} of one family, without the labels the reference predates: series of ours that
    differ only by those are added up."""
    family = families.get(name)
    if family is None:
        return {}
    newer = set().union(*NEWER_LABELS.values())
    counts: dict[frozenset, float] = {}
    for (_, labels), value in family.samples.items():
        key = frozenset((k, v) for k, v in labels if k not in newer)
        counts[key] = counts.get(key, 0) + value
    return counts


def test_a_dogstatsd_event_is_one_rejected_sample_without_a_tag_error(both):
    # statsd_exporter reads the comma of `_e{5,4}` as an InfluxDB tag without a value and counts a tag error;
    # the bridge sees an event, which has no tags to be wrong (docs/migrating.md, self-metrics)
    reference, bridge = both
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for target in (reference.udp, bridge.addresses["udp"]):
            sock.sendto(b"_e{5,4}:title|text", target)
    deadline = time.monotonic() + 10
    while True:
        theirs, mine = reference.metrics(), bridge.metrics()
        if (
            'statsd_exporter_sample_errors_total{reason="malformed_value"} 1' in theirs
            and 'statsd_bridge_sample_errors_total{reason="dogstatsd_event_unsupported"} 1' in mine
        ):
            break
        assert time.monotonic() < deadline, theirs + mine
        time.sleep(0.1)
    assert "statsd_exporter_tag_errors_total 1\n" in theirs and "statsd_bridge_tag_errors_total 0\n" in mine
    assert "statsd_exporter_samples_total 1\n" in theirs and "statsd_bridge_samples_total 1\n" in mine


def _grouped(counts: dict[frozenset, float]) -> dict[str, float]:
    """sample_errors_total's count by reason, with the reasons of REASON_GROUP added up into one."""
    errors = {dict(labels)["reason"]: value for labels, value in counts.items() if value}
    grouped = {reason: count for reason, count in errors.items() if reason not in REASON_GROUP}
    grouped["malformed_value, illegal_event or malformed_line"] = sum(
        count for reason, count in errors.items() if reason in REASON_GROUP
    )
    return grouped


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
