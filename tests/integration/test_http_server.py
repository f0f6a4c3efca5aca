"""The web endpoint's HTTP/1.1 behaviour, through real sockets against a real bridge process."""

from __future__ import annotations

import gzip
import http.client
import re
import socket
import time

import pytest

from tests.conftest import parse_samples, sample


def _raw(address: tuple[str, int], data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes, read until the server closes."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_kept_alive_connection_serves_many_scrapes(bridge):
    connection = http.client.HTTPConnection(*bridge.addresses["web"], timeout=5)
    for _ in range(5):
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        assert response.status == 200 and b"statsd_bridge_lines_total" in response.read()
    samples = bridge.samples()
    # the five requests came over one connection (plus this scrape's own)
    assert sample(samples, "statsd_bridge_http_connections_total") == 2
    connection.close()


def test_head_answers_the_headers_of_get_without_a_body(bridge):
    connection = http.client.HTTPConnection(*bridge.addresses["web"], timeout=5)
    connection.request("HEAD", "/metrics")
    response = connection.getresponse()
    assert response.status == 200 and response.read() == b""
    assert int(response.getheader("Content-Length")) > 1000
    connection.request("GET", "/-/healthy")  # the connection is still in step after a HEAD
    assert connection.getresponse().read() == b"OK\n"


def test_gzip_when_asked(bridge):
    status, headers, body = bridge.get("/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200 and headers["Content-Encoding"] == "gzip"
    assert b"statsd_bridge_lines_total" in gzip.decompress(body)
    status, headers, body = bridge.get("/metrics")
    assert "Content-Encoding" not in headers and b"statsd_bridge_lines_total" in body


def test_malformed_requests_get_400_and_are_counted(bridge):
    address = bridge.addresses["web"]
    assert _raw(address, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request")
    assert _raw(address, b"GET /metrics HTTP/1.1\r\nNo colon here\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    samples = bridge.samples()
    assert sample(samples, "statsd_bridge_http_errors_total", reason="malformed_request") == 2
    assert sample(samples, "statsd_bridge_http_requests_total", code="400") == 2


def test_an_oversized_head_gets_431(bridge):
    head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"
    answer = _raw(bridge.addresses["web"], head)
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large")
    # the same head still arriving (no blank line yet) is refused once it passes the cap
    with socket.create_connection(bridge.addresses["web"], timeout=5) as sock:
        sock.sendall(head[:-4])
        assert sock.recv(100).startswith(b"HTTP/1.1 431 ")
    assert sample(bridge.samples(), "statsd_bridge_http_errors_total", reason="header_too_large") == 2


def test_a_body_over_the_limit_gets_413(bridge):
    request = b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000
    assert _raw(bridge.addresses["web"], request).startswith(b"HTTP/1.1 413 ")


def test_a_head_that_stalls_gets_408(bridge_factory):
    bridge = bridge_factory("--web.read-header-timeout=500ms")
    started = time.monotonic()
    answer = _raw(bridge.addresses["web"], b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert 0.4 < time.monotonic() - started < 3
    # a connection that never sends a byte is closed without an answer, as Go's server does
    assert _raw(bridge.addresses["web"], b"") == b""
    assert sample(bridge.samples(), "statsd_bridge_http_errors_total", reason="header_timeout") == 2


def test_a_trickled_head_is_timed_from_its_first_byte(bridge_factory):
    """Bytes arriving one at a time don't extend the deadline (Go's ReadHeaderTimeout, not an idle one)."""
    bridge = bridge_factory("--web.read-header-timeout=1s")
    with socket.create_connection(bridge.addresses["web"], timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Slow: ")
        answer = b""
        while not answer and time.monotonic() - started < 4:
            time.sleep(0.2)
            try:
                sock.sendall(b"a")
                sock.settimeout(0.01)
                answer = sock.recv(100)
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                break
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert time.monotonic() - started < 2


def test_pipelined_requests_are_answered_in_order(bridge):
    answer = _raw(
        bridge.addresses["web"],
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nGET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert statuses == [b"200", b"404", b"200"]


def test_http_1_0_gets_its_answer_and_a_close(bridge):
    answer = _raw(bridge.addresses["web"], b"GET /-/healthy HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"\r\n\r\nOK\n")


def test_a_client_that_shuts_its_side_after_the_request_still_gets_the_answer(bridge):
    with socket.create_connection(bridge.addresses["web"], timeout=5) as sock:
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"OK\n")


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_other_methods_get_405_with_allow(bridge, method):
    connection = http.client.HTTPConnection(*bridge.addresses["web"], timeout=5)
    connection.request(method, "/metrics")
    response = connection.getresponse()
    assert response.status == 405 and response.getheader("Allow") == "GET, HEAD"


def test_scrapes_from_many_clients_at_once_all_get_whole_pages(bridge):
    """Concurrent scrapes share renders; each still gets a whole, fresh page."""
    bridge.send_udp(*(f"shared.render.{i}:1|c" for i in range(2000)))
    assert bridge.wait_for(lambda s: sample(s, "shared_render_1999") == 1)
    connections = [http.client.HTTPConnection(*bridge.addresses["web"], timeout=10) for _ in range(40)]
    for connection in connections:
        connection.request("GET", "/metrics")
    bodies = [connection.getresponse().read().decode() for connection in connections]
    for body in bodies:
        samples = parse_samples(body)
        assert all(sample(samples, f"shared_render_{i}") == 1 for i in range(2000))
        assert body.endswith("\n") and "statsd_bridge_build_info" in body
    # the next scrape after a line arrived sees it: a shared render never started before the request
    bridge.send_udp("shared.render.late:1|c")
    assert bridge.wait_for(lambda s: sample(s, "shared_render_late") == 1, timeout=5)
