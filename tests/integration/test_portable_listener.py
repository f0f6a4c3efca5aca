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
from collections.abc import Callable
from pathlib import Path

import asyncio_dgram
import pytest

from bridge.receiving.batches import DatagramCounts
from bridge.receiving.datagrams import serve_datagrams
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
    # the web endpoint's counts depend on how many scrapes the wait took; the kernel's accept-queue
    # overflows are counted for the whole network namespace (every program's listeners)
    own = (
        "statsd_bridge_listen_overflows",
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


def listen_portably(
    failures: Counter, fatal: list[str]
) -> tuple[socket.socket, list[bytes], DatagramCounts, Callable[[], None]]:
    """A portable listener on a loopback UDP socket, its failures counted by the loop's exception handler."""
    asyncio.get_running_loop().set_exception_handler(loop_exception_handler(failures))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    received: list[bytes] = []
    counts = DatagramCounts()
    stop = serve_with_asyncio_dgram(sock, received.extend, counts, fatal.append)
    return sock, received, counts, stop


async def soon(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


def test_a_socket_closed_under_the_listener_is_counted_logged_and_fatal(monkeypatch, caplog):
    # reopening in place would need what the socket was made with: the process exits 1 for its supervisor
    streams = []
    from_socket = asyncio_dgram.from_socket

    async def kept(sock):
        streams.append(await from_socket(sock))
        return streams[-1]

    monkeypatch.setattr(asyncio_dgram, "from_socket", kept)

    async def close_under_it() -> tuple[Counter, list[str]]:
        failures: Counter = Counter()
        fatal: list[str] = []
        sock, received, _, _ = listen_portably(failures, fatal)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"a:1|c", sock.getsockname())
            await soon(lambda: received)
        streams[0].close()  # not by the listener's stop
        await soon(lambda: fatal)
        return failures, fatal

    with caplog.at_level(logging.ERROR):
        failures, fatal = asyncio.run(close_under_it())
    assert failures == {"listener": 1}
    assert fatal == [
        "datagram listener's socket closed under it; no longer receiving: exiting, for a supervisor to start "
        "the bridge again"
    ]
    assert "datagram listener's socket closed under it; no longer receiving" in caplog.text


def test_a_listener_that_cannot_start_is_reported_at_once_and_fatal(monkeypatch, caplog):
    async def from_socket_with_a_bug(sock):
        raise RuntimeError("asyncio-dgram could not take the socket")

    monkeypatch.setattr(asyncio_dgram, "from_socket", from_socket_with_a_bug)

    async def start() -> tuple[Counter, list[str]]:
        failures: Counter = Counter()
        fatal: list[str] = []
        sock, _, _, _ = listen_portably(failures, fatal)
        await soon(lambda: fatal)  # not at the loop's teardown
        sock.close()
        return failures, fatal

    with caplog.at_level(logging.ERROR):
        failures, fatal = asyncio.run(start())
    assert failures == {"listener": 1} and len(fatal) == 1
    assert "RuntimeError: asyncio-dgram could not take the socket" in caplog.text  # the traceback


def test_socket_errors_are_counted_as_the_fast_path_counts_them_and_bugs_logged_within_a_limit(monkeypatch, caplog):
    recv = asyncio_dgram.aio.DatagramStream.recv

    async def recv_meeting_faults(self):
        data, address = await recv(self)
        if data.startswith(b"oserror."):
            raise ConnectionRefusedError("an ICMP port unreachable")
        if data.startswith(b"fault."):
            raise RuntimeError(f"a bug met {data!r}")
        return data, address

    monkeypatch.setattr(asyncio_dgram.aio.DatagramStream, "recv", recv_meeting_faults)
    monkeypatch.setattr("bridge.receiving.portable.FIRST_PAUSE", 0.0)

    async def send_faults() -> tuple[Counter, list[bytes], DatagramCounts]:
        failures: Counter = Counter()
        sock, received, counts, stop = listen_portably(failures, [])
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"oserror.a:1|c", sock.getsockname())
            for n in range(30):  # a fault every other datagram
                sender.sendto(b"fault.%d:1|c" % n, sock.getsockname())
                sender.sendto(b"good.%d:1|c" % n, sock.getsockname())
                await asyncio.sleep(0.002)
            await soon(lambda: len(received) == 30)
        stop()
        return failures, received, counts

    with caplog.at_level(logging.WARNING):
        failures, received, counts = asyncio.run(send_faults())
    assert len(received) == 30
    assert counts.socket_errors == 1 and counts.packets == 30
    assert failures == {"listener": 30}  # the OS's error is not a bug
    tracebacks = [record for record in caplog.records if record.getMessage().startswith("datagram listener failed")]
    assert len(tracebacks) == 10


def test_a_bridge_whose_listener_socket_closes_under_it_exits_1_for_its_supervisor(monkeypatch):
    monkeypatch.setenv("STATSD_BRIDGE_FAULTS", "datagram_closed")
    bridge = start_bridge(program=WITHOUT_ADD_READER)
    try:
        assert bridge.process.wait(timeout=15) == 1
    finally:
        bridge.stop()
    log = "".join(bridge.log)
    assert "datagram listener's socket closed under it; no longer receiving: exiting" in log
    assert "TransportClosed" in log  # the traceback


class SocketWithErrors(socket.socket):
    """A UDP socket whose receive meets the OS's error for a datagram starting with `oserror.`."""

    def recv(self, size: int, *args) -> bytes:
        data = super().recv(size, *args)
        if data.startswith(b"oserror."):
            raise ConnectionRefusedError("an ICMP port unreachable")
        return data


def test_the_fast_path_counts_socket_errors_and_logs_them_within_a_limit(caplog):
    async def send_errors() -> tuple[Counter, list[bytes], DatagramCounts]:
        failures: Counter = Counter()
        asyncio.get_running_loop().set_exception_handler(loop_exception_handler(failures))
        sock = SocketWithErrors(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        received: list[bytes] = []
        counts = DatagramCounts()
        listening = serve_datagrams(sock, received.extend, counts)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            for n in range(30):
                sender.sendto(b"oserror.%d:1|c" % n, sock.getsockname())
                sender.sendto(b"good.%d:1|c" % n, sock.getsockname())
            await soon(lambda: len(received) == 30)
        listening.stop()
        return failures, received, counts

    with caplog.at_level(logging.WARNING):
        failures, received, counts = asyncio.run(send_errors())
    assert len(received) == 30 and counts.socket_errors == 30
    assert failures == {}  # the OS's error is not a bug
    assert [record.getMessage() for record in caplog.records].count("datagram socket error") == 10
