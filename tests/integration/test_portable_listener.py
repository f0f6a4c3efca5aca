"""The portable datagram path (asyncio-dgram, for loops without add_reader) against the fast path.

Both bridges get the same datagrams over UDP and unixgram; they must serve the same series and
counts, and drain what they hold on shutdown.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import start_bridge

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
