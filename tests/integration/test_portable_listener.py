"""The portable datagram path (asyncio-dgram, for loops without add_reader) against the fast path.

Both bridges get the same datagrams over UDP and unixgram; they must serve the same series and
counts, and drain what they hold on shutdown. A failure of the portable listener's receive task is
counted, logged, and costs only the datagram it met.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import asyncio_dgram
import pytest

from bridge.receiving.batches import DatagramCounts
from bridge.receiving.portable import serve_with_asyncio_dgram
from bridge.supervise import loop_exception_handler
from tests.conftest import sample, start_bridge

WITHOUT_ADD_READER = (str(Path(__file__).resolve().parents[1] / "without_add_reader.py"),)
DATAGRAMS = [
    b"p.hits:1|c|#env:prod", b"p.hits:2|c|#env:prod\np.temp:21.5|g\np.lat:250|ms",
    b"not statsd\np.after.bad:1|c", b"p.bad\xffutf:1|c\np.good:1|c", b"p.multi:1|c:2|g",
]  # fmt: skip


def serve_the_same(program: tuple[str, ...], tmp_path: Path) -> tuple[dict, list[str]]:
    unixgram = str(tmp_path / f"{len(program)}.socket")
    bridge = start_bridge("--statsd-listen-unixgram", unixgram, program=program)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for datagram in DATAGRAMS:
                sock.sendto(datagram, bridge.addresses["udp"])
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"p.unix:5|c", unixgram)
        samples = bridge.wait_for(lambda s: ("p_unix", frozenset()) in s and ("p_multi", frozenset()) in s)
        assert samples is not None, bridge.metrics()
        return samples, bridge.log
    finally:
        bridge.stop()


def user_samples(samples: dict) -> dict:
    # the web endpoint's counts depend on how many scrapes the wait took
    own = (
        "statsd_bridge_build_info",
        "statsd_bridge_metric_mapper",
        "statsd_bridge_event_queue",
        "statsd_bridge_http_",
    )
    return {key: value for key, value in samples.items() if not key[0].startswith(("process_", "python_", *own))}


def test_the_portable_path_serves_what_the_fast_path_serves(tmp_path):
    fast, fast_log = serve_the_same(("-m", "bridge"), tmp_path)
    portable, portable_log = serve_the_same(WITHOUT_ADD_READER, tmp_path)
    assert any("asyncio-dgram" in line for line in portable_log)
    assert not any("asyncio-dgram" in line for line in fast_log)
    assert user_samples(portable) == user_samples(fast)
    assert portable[("statsd_bridge_udp_packets_total", frozenset())] == len(DATAGRAMS)
    assert portable[("statsd_bridge_unixgram_packets_total", frozenset())] == 1


@pytest.mark.parametrize("program", [("-m", "bridge"), WITHOUT_ADD_READER], ids=["fast", "portable"])
def test_shutdown_handles_what_arrived_before_it(tmp_path, program):
    # datagrams sent right before SIGTERM are applied and relayed, not dropped with the socket
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(5)
    bridge = start_bridge("--statsd.relay.address", f"127.0.0.1:{sink.getsockname()[1]}", program=program)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(200):
                sock.sendto(f"late.n{i}:1|c".encode(), bridge.addresses["udp"])
        assert bridge.stop() == 0
        relayed = set()
        while len(relayed) < 200:
            relayed.update(line for line in sink.recv(65535).decode().split("\n") if line)
        assert relayed == {f"late.n{i}:1|c" for i in range(200)}
    finally:
        sink.close()


def test_workers_need_readiness_callbacks_and_say_so():
    result = subprocess.run(
        [sys.executable, *WITHOUT_ADD_READER, "--statsd.workers=2", "--statsd.listen-udp=127.0.0.1:0",
         "--statsd.listen-tcp=127.0.0.1:0", "--web.listen-address=127.0.0.1:0"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 1
    assert "--statsd.workers needs an event loop with readiness callbacks" in result.stderr


def test_a_failing_receive_is_counted_logged_and_receiving_goes_on(monkeypatch):
    monkeypatch.setenv("STATSD_BRIDGE_FAULTS", "datagram_recv")
    bridge = start_bridge(program=WITHOUT_ADD_READER)
    try:
        bridge.send_udp("before:1|c", "fault.first:1|c", "fault.second:1|c", "after:1|c")
        samples = bridge.wait_for(lambda s: sample(s, "after") == 1)
        assert samples is not None, bridge.metrics()
        assert sample(samples, "before") == 1
        assert sample(samples, "fault_first") is None and sample(samples, "fault_second") is None
        assert sample(samples, "statsd_bridge_internal_errors_total", component="listener") == 2
        log = "".join(bridge.log)
        assert log.count("datagram listener failed; receiving goes on") == 2
        assert "InjectedFaultError: receiving b'fault.first:1|c'" in log  # the traceback
    finally:
        bridge.stop()


def test_a_socket_closed_under_the_listener_is_counted_and_logged(monkeypatch, caplog):
    streams = []
    from_socket = asyncio_dgram.from_socket

    async def kept(sock):
        streams.append(await from_socket(sock))
        return streams[-1]

    monkeypatch.setattr(asyncio_dgram, "from_socket", kept)

    async def close_under_it() -> Counter:
        failures: Counter = Counter()
        asyncio.get_running_loop().set_exception_handler(loop_exception_handler(failures))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        received = []
        serve_with_asyncio_dgram(sock, received.extend, DatagramCounts())
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"a:1|c", sock.getsockname())
            while not received:
                await asyncio.sleep(0.01)
        streams[0].close()  # not by the listener's stop
        for _ in range(500):
            if failures:
                break
            await asyncio.sleep(0.01)
        return failures

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(close_under_it()) == {"listener": 1}
    assert "datagram listener's socket closed under it; no longer receiving" in caplog.text
