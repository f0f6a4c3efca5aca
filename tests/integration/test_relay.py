"""The relay: every received line, unchanged, forwarded over UDP in packets of bounded size."""

import socket
import subprocess
import sys
import time

from hypothesis import given
from hypothesis import strategies as st

from bridge.receiving.relay import RelayStats, pack
from tests.conftest import sample


def packets_of(datagrams: list[bytes], limit: int) -> tuple[list[bytes], RelayStats]:
    buffer, stats = bytearray(), RelayStats("t")
    packets = list(pack(datagrams, limit, buffer, stats))
    return packets + ([bytes(buffer)] if buffer else []), stats


def test_lines_are_packed_up_to_the_limit_in_order():
    lines = [f"relay.c{i}:1|c".encode() for i in range(100)]
    packets, stats = packets_of([b"\n".join(lines[i : i + 7]) for i in range(0, 100, 7)], limit=60)
    assert all(len(packet) <= 60 for packet in packets)
    assert b"\n".join(packets).split(b"\n") == lines
    assert len(packets) < 100  # several lines share a packet
    assert stats.lines == 100


def test_too_long_lines_are_dropped_and_counted_their_neighbours_kept():
    packets, stats = packets_of([b"ok.a:1|c\n" + b"x" * 60 + b":1|c\n\nok.b:1|c\n"], limit=20)
    assert b"\n".join(packets).split(b"\n") == [b"ok.a:1|c", b"ok.b:1|c"]
    assert stats.dropped["too_long"] == 1
    assert stats.lines == 2


lines_strategy = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30)


@given(st.lists(lines_strategy, max_size=10), st.integers(min_value=2, max_value=100))
def test_packing_keeps_every_line_that_fits_unchanged_and_in_order(datagrams, limit):
    packets, stats = packets_of([b"\n".join(lines) for lines in datagrams], limit)
    expected = [line for lines in datagrams for line in lines if line.rstrip(b"\n") and len(line) < limit]
    assert [line for packet in packets for line in packet.split(b"\n")] == expected
    assert all(0 < len(packet) <= limit for packet in packets)
    assert stats.lines == len(expected)


def receive_all(sock: socket.socket, count: int, timeout: float = 5.0) -> list[bytes]:
    packets, lines = [], 0
    deadline = time.monotonic() + timeout
    while lines < count and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            packet = sock.recv(65535)
        except TimeoutError:
            break
        packets.append(packet)
        lines += len(packet.split(b"\n"))
    return packets


def test_relay_forwards_udp_and_tcp_lines_unchanged_and_still_maps_them(bridge_factory):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as backend:
        backend.bind(("127.0.0.1", 0))
        target = f"127.0.0.1:{backend.getsockname()[1]}"
        bridge = bridge_factory("--statsd.relay.address", target, "--statsd-relay-packet-length", "100")
        udp_lines = [f"relay.hits:{i}|c|#env:prod,host:h{i}" for i in range(40)] + ["not statsd at all"]
        bridge.send_udp("\n".join(udp_lines[:20]), "\n".join(udp_lines[20:]))
        bridge.send_tcp("relay.tcp:5|g\nrelay.long:" + "9" * 200 + "|c\n")
        packets = receive_all(backend, count=len(udp_lines) + 1)
        received = [line for packet in packets for line in packet.split(b"\n")]
        assert sorted(received) == sorted(line.encode() for line in [*udp_lines, "relay.tcp:5|g"])
        assert all(len(packet) <= 100 for packet in packets)
        samples = bridge.wait_for(
            lambda s: sample(s, "statsd_bridge_relay_packets_total", target=target) == len(packets)
        )
        assert samples is not None, bridge.metrics()
        assert sample(samples, "relay_hits", env="prod", host="h39") == 39
        assert sample(samples, "relay_tcp") == 5
        assert sample(samples, "statsd_bridge_relay_lines_relayed_total", target=target) == 42
        assert sample(samples, "statsd_bridge_relay_dropped_lines_total", target=target, reason="too_long") == 1


def test_relay_flushes_what_is_waiting_on_shutdown(bridge_factory):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as backend:
        backend.bind(("127.0.0.1", 0))
        bridge = bridge_factory("--statsd-relay-address", f"127.0.0.1:{backend.getsockname()[1]}")
        bridge.send_udp("last.words:1|c")
        assert bridge.wait_for(lambda s: sample(s, "last_words") == 1) is not None
        assert bridge.stop() == 0
        assert b"last.words:1|c" in b"\n".join(receive_all(backend, 1))


def test_relay_to_a_silent_port_costs_no_line(bridge_factory):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    bridge = bridge_factory("--statsd-relay-address", f"127.0.0.1:{closed_port}")
    for i in range(20):
        bridge.send_udp(f"lonely:1|c|#i:{i}")
        time.sleep(0.02)
    samples = bridge.wait_for(lambda s: sum(v for (name, _), v in s.items() if name == "lonely") == 20)
    assert samples is not None, bridge.metrics()
    # the connected relay socket hears the target's refusals, and says so
    target = f"127.0.0.1:{closed_port}"
    refused = bridge.wait_for(
        lambda s: sample(s, "statsd_bridge_relay_dropped_lines_total", target=target, reason="send_error")
    )
    assert refused is not None, bridge.metrics()


def test_bad_relay_settings_exit_non_zero_naming_the_flag():
    for args, flag in (
        (["--statsd-relay-address", "nowhere"], "--statsd-relay-address"),
        (["--statsd-relay-address", "127.0.0.1:0"], "--statsd-relay-address"),
        (["--statsd-relay-packet-length", "1"], "--statsd-relay-packet-length"),
    ):
        result = subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=30)
        assert result.returncode != 0
        assert flag in result.stderr, result.stderr
