"""A flood of half-sent HTTP requests against the bridge, and statsd_exporter through the same test.

2,000 connections opened by 8 clients at once, each sending half a request head, plus 100 that trickle
header bytes; meanwhile UDP lines and scrapes. The bridge must accept every connection within 5 s,
answer every scrape within 1 s, stay under 50 threads, count every UDP line, time out the stalled heads
(408) and serve normally afterwards. statsd_exporter's figures are printed beside the bridge's.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass, field

import pytest

from tests.conftest import parse_samples, sample, start_bridge
from tests.differential import Reference, reference_binary

FLOOD_CONNECTIONS = 2000
FLOOD_CLIENTS = 8
TRICKLERS = 100
HEADER_TIMEOUT = 6.0  # the bridge's --web.read-header-timeout here: past the 5 s acceptance window
HOLD = HEADER_TIMEOUT + 2.5  # how long the flood is held open
UDP_LINES = 2000
HALF_REQUEST = b"GET /metrics HTTP/1.1\r\nHost: flood\r\nUser-Agent: half-sent\r\n"


@dataclass
class Figures:
    accept_seconds: float | None = None  # until the server held every flood connection
    max_threads: int = 0
    scrape_latencies: list[float] = field(default_factory=list)
    failed_scrapes: list[str] = field(default_factory=list)
    timed_out_heads: int = 0  # flood and trickling connections answered 408 or closed by the server
    answered_408: int = 0
    udp_counted: float | None = None
    after_status: int | None = None

    def line(self, name: str) -> str:
        latencies = sorted(self.scrape_latencies) or [float("nan")]
        accept = f"{self.accept_seconds:.2f} s" if self.accept_seconds is not None else "not within 5 s"
        return (
            f"{name:16} accepted {FLOOD_CONNECTIONS + TRICKLERS} in {accept}; threads <= {self.max_threads}; "
            f"{len(latencies)} scrapes during the flood, p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, "
            f"max {latencies[-1] * 1000:.1f} ms, {len(self.failed_scrapes)} failed; stalled heads closed "
            f"{self.timed_out_heads}/{FLOOD_CONNECTIONS + TRICKLERS} ({self.answered_408} with a 408); "
            f"UDP lines counted {self.udp_counted}/{UDP_LINES}"
        )


def _socket_count(pid: int) -> int:
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed since the listing
            count += os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:")
    return count


def _threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("Threads:"))


def _scrape(url: str) -> tuple[int, float]:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=5) as response:
        response.read()
        return response.status, time.monotonic() - started


def _answered_or_closed(connections: list[socket.socket]) -> tuple[int, int]:
    """(answered or closed, answered 408) of the connections; the rest are still open and silent."""
    poller = select.poll()
    by_fd = {sock.fileno(): sock for sock in connections}
    for sock in connections:
        poller.register(sock, select.POLLIN)
    ready = poller.poll(0)
    answered_408 = 0
    for fd, _ in ready:
        by_fd[fd].setblocking(False)
        with contextlib.suppress(OSError):
            answered_408 += by_fd[fd].recv(64).startswith(b"HTTP/1.1 408 Request Timeout")
    return len(ready), answered_408


def flood(pid: int, web: tuple[str, int], udp: tuple[str, int], metrics_url: str) -> tuple[Figures, list]:
    figures = Figures()
    readings = []
    for _ in range(6):
        readings.append(_socket_count(pid))
        time.sleep(0.05)
    baseline = min(readings)  # the lowest: a scrape's connection from start-up may still be closing
    connections: list[socket.socket] = []
    lock = threading.Lock()
    stop = threading.Event()

    def open_half_sent(count: int) -> None:
        mine = []
        for _ in range(count):
            sock = socket.create_connection(web, timeout=10)
            sock.sendall(HALF_REQUEST)
            mine.append(sock)
        with lock:
            connections.extend(mine)

    def trickle() -> None:
        socks = [socket.create_connection(web, timeout=10) for _ in range(TRICKLERS)]
        with lock:
            connections.extend(socks)
        for sock in socks:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        while not stop.wait(0.5):
            for sock in socks:
                with contextlib.suppress(OSError):  # closed by the server: that is the point
                    sock.send(b"a")

    def scrape_all_along() -> None:
        while not stop.is_set():
            try:
                status, seconds = _scrape(metrics_url)
                figures.scrape_latencies.append(seconds)
                if status != 200:
                    figures.failed_scrapes.append(str(status))
            except OSError as error:
                figures.failed_scrapes.append(repr(error))
            time.sleep(0.2)

    def send_udp_lines() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(UDP_LINES):
                sock.sendto(b"flood_udp_lines:1|c", udp)
                if i % 100 == 99:
                    time.sleep((HOLD - 2) / (UDP_LINES / 100))

    started = time.monotonic()
    workers = [
        threading.Thread(target=open_half_sent, args=(FLOOD_CONNECTIONS // FLOOD_CLIENTS,))
        for _ in range(FLOOD_CLIENTS)
    ]
    background = [
        threading.Thread(target=trickle),
        threading.Thread(target=scrape_all_along),
        threading.Thread(target=send_udp_lines),
    ]
    for thread in workers + background:
        thread.start()
    wanted = baseline + FLOOD_CONNECTIONS + TRICKLERS
    while time.monotonic() - started < HOLD:
        figures.max_threads = max(figures.max_threads, _threads(pid))
        if figures.accept_seconds is None and _socket_count(pid) >= wanted:
            figures.accept_seconds = time.monotonic() - started
        time.sleep(0.05)
    for thread in workers:
        thread.join()
    figures.timed_out_heads, figures.answered_408 = _answered_or_closed(connections)
    stop.set()
    for thread in background:
        thread.join()
    return figures, connections


@pytest.fixture(autouse=True)
def _enough_file_descriptors():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * FLOOD_CONNECTIONS:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * FLOOD_CONNECTIONS), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _finish(figures: Figures, connections: list, metrics_url: str) -> dict:
    for sock in connections:
        sock.close()
    deadline = time.monotonic() + 5
    while True:
        samples = parse_samples(urllib.request.urlopen(metrics_url, timeout=5).read().decode())
        figures.udp_counted = sample(samples, "flood_udp_lines")
        if figures.udp_counted == UDP_LINES or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    figures.after_status, seconds = _scrape(metrics_url)
    figures.scrape_latencies.append(seconds)
    return samples


@pytest.mark.timeout(120)
def test_a_flood_of_half_sent_requests_costs_no_scrape_and_no_line(record_property):
    bridge = start_bridge(f"--web.read-header-timeout={HEADER_TIMEOUT:g}s")
    try:
        url = bridge.web + "/metrics"
        figures, connections = flood(bridge.process.pid, bridge.addresses["web"], bridge.addresses["udp"], url)
        samples = _finish(figures, connections, url)
        record_property("summary", figures.line("statsd-bridge"))  # printed at the end of the run (conftest)
        assert figures.accept_seconds is not None and figures.accept_seconds < 5, figures.line("statsd-bridge")
        assert figures.max_threads < 50
        assert not figures.failed_scrapes, figures.failed_scrapes[:5]
        assert max(figures.scrape_latencies) < 1.0, sorted(figures.scrape_latencies)[-5:]
        assert figures.timed_out_heads == FLOOD_CONNECTIONS + TRICKLERS
        assert figures.answered_408 == FLOOD_CONNECTIONS + TRICKLERS  # each had sent part of a head
        assert figures.udp_counted == UDP_LINES
        assert figures.after_status == 200
        assert sample(samples, "statsd_bridge_http_errors_total", reason="header_timeout") >= FLOOD_CONNECTIONS
        assert sample(samples, "statsd_bridge_http_open_connections") <= 2  # the scrapes' own
    finally:
        bridge.stop()


@pytest.mark.timeout(120)
def test_statsd_exporter_through_the_same_flood(record_property):
    """For comparison: Go's net/http as statsd_exporter configures it (no header timeout) holds every stalled
    head open, and still accepts, scrapes and counts every line (what docs/operations.md's table says)."""
    reference = Reference(reference_binary(), [])
    try:
        url = f"http://127.0.0.1:{reference.web_port}/metrics"
        figures, connections = flood(reference.process.pid, ("127.0.0.1", reference.web_port), reference.udp, url)
        samples = _finish(figures, connections, url)
        record_property("summary", figures.line("statsd_exporter"))
        assert figures.accept_seconds is not None and figures.accept_seconds < 5, figures.line("statsd_exporter")
        assert not figures.failed_scrapes, figures.failed_scrapes[:5]
        assert figures.timed_out_heads == figures.answered_408 == 0  # no header timeout: every head held open
        assert figures.udp_counted == UDP_LINES
        assert sample(samples, "statsd_exporter_events_total", type="counter") == UDP_LINES
        assert figures.after_status == 200
    finally:
        reference.stop()
