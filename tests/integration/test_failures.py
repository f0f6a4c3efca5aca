"""Nothing fails silently, nothing stays failed: faults put into a real bridge process (tests/with_faults.py)
are counted in statsd_bridge_internal_errors_total, logged with their traceback, and cost only what they
must; a certificate renewal that meets exhausted file descriptors is served once they come back."""

from __future__ import annotations

import contextlib
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import parse_samples, sample, start_bridge
from tests.integration.test_hardening import post
from tests.integration.test_workers import lines_by_worker as worker_lines

WITH_FAULTS = (str(Path(__file__).resolve().parents[1] / "with_faults.py"),)


@pytest.fixture
def faulty_bridge(monkeypatch):
    started = []

    def start(faults: str, *args: str):
        monkeypatch.setenv("STATSD_BRIDGE_FAULTS", faults)
        bridge = start_bridge(*args, program=WITH_FAULTS)
        started.append(bridge)
        return bridge

    yield start
    for bridge in started:
        bridge.stop()


def internal_errors(samples: dict, component: str) -> float | None:
    return sample(samples, "statsd_bridge_internal_errors_total", component=component)


def test_a_line_that_trips_a_bug_costs_that_line_only(faulty_bridge):
    bridge = faulty_bridge("line")
    bridge.send_udp("good.before:1|c\nfault.line:1|c\ngood.after:2|c", "good.later:3|c")
    samples = bridge.wait_for(lambda s: sample(s, "good_later") == 3)
    assert samples is not None, bridge.metrics()
    assert sample(samples, "good_before") == 1 and sample(samples, "good_after") == 2
    assert internal_errors(samples, "ingest") == 1
    assert sample(samples, "statsd_bridge_lines_total") == 4
    log = "".join(bridge.log)
    assert "a line could not be handled (a bug)" in log and "line=fault.line:1|c" in log
    assert "InjectedFaultError: a bug met 'fault.line:1|c'" in log  # the traceback


def test_a_reaper_pass_that_raises_is_counted_and_the_reaper_goes_on(faulty_bridge):
    bridge = faulty_bridge("reaper", "--reap-label", "worker", "--reap-after", "1s", "--reap-interval", "1s")
    bridge.send_udp("jobs:1|c|#worker:w1")
    assert bridge.wait_for(lambda s: sample(s, "jobs", worker="w1") == 1) is not None
    samples = bridge.wait_for(lambda s: (sample(s, "statsd_bridge_reaped_series_total") or 0) >= 1, timeout=10)
    assert samples is not None, bridge.metrics()
    assert internal_errors(samples, "reaper") == 1
    assert sample(samples, "jobs", worker="w1") is None
    log = "".join(bridge.log)
    assert "background task step failed" in log and "component=reaper" in log
    assert "InjectedFaultError: the reaper's first pass" in log


def test_an_error_in_an_event_loop_callback_is_counted_and_logged(faulty_bridge):
    bridge = faulty_bridge("event_loop")
    samples = bridge.wait_for(lambda s: internal_errors(s, "event_loop") == 1, timeout=10)
    assert samples is not None, bridge.metrics()
    assert "unhandled error in the event loop" in "".join(bridge.log)
    bridge.send_udp("still.serving:1|c")
    assert bridge.wait_for(lambda s: sample(s, "still_serving") == 1) is not None


@contextlib.contextmanager
def tls_connection(port: int, authority) -> Iterator[ssl.SSLSocket]:
    context = ssl.create_default_context()
    authority.configure_trust(context)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        yield tls


def served_certificate(port: int, authority) -> bytes:
    with tls_connection(port, authority) as tls:
        return tls.getpeercert(binary_form=True)


def scrape_over_tls(port: int, authority) -> dict:
    with tls_connection(port, authority) as tls:
        tls.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        response = b""
        while chunk := tls.recv(65536):
            response += chunk
    return parse_samples(response.split(b"\r\n\r\n", 1)[1].decode())


def test_a_renewal_that_meets_exhausted_descriptors_is_served_once_they_come_back(faulty_bridge, tmp_path):
    import trustme

    authority = trustme.CA()
    first, renewed = authority.issue_cert("localhost"), authority.issue_cert("localhost", "renewed.example")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    first.cert_chain_pems[0].write_to_path(cert)
    first.private_key_pem.write_to_path(key)
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    # about 16 descriptors at rest: 24 leave room for a few connections and no more
    bridge = faulty_bridge(
        "nofile=24", f"--web.config.file={web_config}", "--web.read-header-timeout=60s", "--statsd.listen-tcp="
    )
    port = bridge.addresses["web"][1]
    assert served_certificate(port, authority) == ssl.PEM_cert_to_DER_cert(first.cert_chain_pems[0].bytes().decode())
    idle = []
    try:
        for _ in range(40):  # more connections than descriptors: the bridge runs out
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(1.0)
        renewed.cert_chain_pems[0].write_to_path(cert)
        renewed.private_key_pem.write_to_path(key)
        deadline = time.monotonic() + 15
        while "web config reload failed" not in "".join(bridge.log):
            assert time.monotonic() < deadline, "".join(bridge.log[-20:])
            time.sleep(0.2)
        assert "Too many open files" in "".join(bridge.log)
    finally:
        for connection in idle:
            connection.close()
    wanted = ssl.PEM_cert_to_DER_cert(renewed.cert_chain_pems[0].bytes().decode())
    deadline = time.monotonic() + 20  # the backoff: 1, 2, 4, 8 s
    while True:
        try:
            if served_certificate(port, authority) == wanted:
                break
        except OSError:
            pass  # the bridge may still be closing what it could not serve
        assert time.monotonic() < deadline, "the renewed certificate was never served:\n" + "".join(bridge.log[-20:])
        time.sleep(0.5)
    samples = scrape_over_tls(port, authority)
    assert sample(samples, "statsd_bridge_web_config_reloads_total", outcome="failure") >= 1
    assert sample(samples, "statsd_bridge_web_config_reloads_total", outcome="success") == 1


def test_a_reload_that_raises_is_answered_at_once_with_the_reason_and_counted(faulty_bridge, tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text("mappings:\n- match: r.*\n  name: first\n")
    bridge = faulty_bridge("reload", f"--statsd.mapping-config={mapping}", "--web.enable-lifecycle")
    asked = time.monotonic()
    status, body = post(bridge, "/-/reload")  # its timeout is 10 s: a reload that hangs fails the test
    assert time.monotonic() - asked < 5
    assert status == 500
    assert body == "reload failed, the old rules stay: InjectedFaultError: a bug in the reload\n"
    bridge.send_udp("r.x:1|c")
    samples = bridge.wait_for(lambda s: sample(s, "first") == 1)
    assert samples is not None, bridge.metrics()
    assert internal_errors(samples, "reload") == 1
    assert sample(samples, "statsd_bridge_config_reloads_total", outcome="failure") == 1
    log = "".join(bridge.log)
    assert "mapping reload failed (a bug), keeping the old rules" in log and "component=reload" in log
    assert "InjectedFaultError: a bug in the reload" in log  # the traceback


def test_a_page_that_raises_is_answered_500_and_counted_with_the_internal_errors(faulty_bridge):
    bridge = faulty_bridge("http")
    status, _, body = bridge.get("/fault")
    assert status == 500 and body == b"internal error, see the bridge's log\n"
    samples = bridge.samples()
    assert internal_errors(samples, "http") == 1
    assert sample(samples, "statsd_bridge_http_requests_total", code="500") == 1
    log = "".join(bridge.log)
    assert "request failed" in log and "component=http" in log
    assert "InjectedFaultError: a bug in a page" in log  # the traceback
    assert bridge.get("/-/healthy")[0] == 200


def test_500s_are_each_counted_and_their_tracebacks_logged_within_a_limit(faulty_bridge):
    bridge = faulty_bridge("http")
    for _ in range(30):
        assert bridge.get("/fault")[0] == 500
    samples = bridge.samples()
    assert internal_errors(samples, "http") == 30
    assert "".join(bridge.log).count("InjectedFaultError: a bug in a page") == 10


def test_a_response_of_ours_that_h11_refuses_is_counted_as_a_bug(faulty_bridge):
    bridge = faulty_bridge("http")
    with socket.create_connection(bridge.addresses["web"], timeout=5) as connection:
        connection.sendall(b"GET /invalid HTTP/1.1\r\nHost: x\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert connection.recv(1024) == b""  # aborted: nothing half-sent
    samples = bridge.wait_for(lambda s: internal_errors(s, "http") == 1)
    assert samples is not None, bridge.metrics()
    log = "".join(bridge.log)
    assert "cannot send the response" in log and "LocalProtocolError" in log


def test_a_web_config_reload_that_raises_is_a_failed_reload_tried_on_the_backoff_schedule(faulty_bridge, tmp_path):
    web_config = tmp_path / "web.yml"
    web_config.write_text("{}\n")
    bridge = faulty_bridge("web_reload", f"--web.config.file={web_config}")
    web_config.write_text("# changed\n{}\n")
    samples = bridge.wait_for(lambda s: internal_errors(s, "web_config") == 1, timeout=10)
    assert samples is not None, bridge.metrics()
    assert sample(samples, "statsd_bridge_web_config_reloads_total", outcome="failure") == 1
    time.sleep(4.5)  # tried again after 1 s and 2 s more (then 4 s): not every second
    samples = bridge.samples()
    assert internal_errors(samples, "web_config") == 3
    assert sample(samples, "statsd_bridge_web_config_reloads_total", outcome="failure") == 3
    log = "".join(bridge.log)
    assert "web config reload failed (a bug), keeping the old settings" in log
    assert "InjectedFaultError: a bug in the web config reload" in log  # the traceback


def test_an_error_on_a_workers_event_loop_is_counted_in_the_main_process(faulty_bridge):
    bridge = faulty_bridge("worker_event_loop", "--statsd.workers=2")
    samples = bridge.wait_for(lambda s: internal_errors(s, "event_loop") == 2, timeout=10)
    assert samples is not None, bridge.metrics()
    log = "".join(bridge.log)
    assert "InjectedFaultError: a callback on worker 1's event loop" in log
    assert "InjectedFaultError: a callback on worker 2's event loop" in log


def test_a_reload_that_fails_in_one_worker_leaves_every_worker_on_the_old_rules(faulty_bridge, tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text("mappings:\n- match: r.*\n  name: old\n")
    bridge = faulty_bridge("worker_reload", f"--statsd.mapping-config={mapping}", "--web.enable-lifecycle",
                           "--statsd.workers=2")  # fmt: skip
    mapping.write_text("mappings:\n- match: r.*\n  name: new\n")
    status, body = post(bridge, "/-/reload")
    assert status == 500 and "reload failed, the old rules stay: " in body and "worker 1" in body
    sent, deadline = 0, time.monotonic() + 15
    while not all(worker_lines(bridge.samples()).values()):  # whichever worker reads first: until both have
        assert time.monotonic() < deadline, worker_lines(bridge.samples())
        for _ in range(20):
            bridge.send_udp("r.x:1|c")
        sent += 20
        time.sleep(0.05)
    samples = bridge.wait_for(lambda s: (sample(s, "old") or 0) + (sample(s, "new") or 0) == sent)
    assert samples is not None, bridge.metrics()
    assert sample(samples, "old") == sent and sample(samples, "new") is None
    assert sample(samples, "statsd_bridge_config_reloads_total", outcome="failure") == 1
    assert sample(samples, "statsd_bridge_worker_restarts_total") == 0  # taken back by a reload, not a restart


def test_a_workers_supervisor_that_fails_stops_the_bridge_with_exit_1(faulty_bridge):
    bridge = faulty_bridge("pool_supervisor", "--statsd.workers=2")
    assert bridge.process.wait(timeout=20) == 1
    log = "".join(bridge.log)
    assert "a worker's supervisor failed" in log and "component=workers" in log
    assert "InjectedFaultError: a bug in worker 1's supervisor" in log  # the traceback


def test_tcp_lines_too_long_are_each_counted_and_logged_within_a_limit(faulty_bridge):
    bridge = faulty_bridge("")
    for _ in range(15):
        with contextlib.suppress(ConnectionError):  # closed at the limit, perhaps before all was sent
            bridge.send_tcp(b"x" * 70_000 + b"\n")
    samples = bridge.wait_for(lambda s: sample(s, "statsd_bridge_tcp_too_long_lines_total") == 15)
    assert samples is not None, bridge.metrics()
    assert "".join(bridge.log).count("TCP line too long, closing connection") == 10


def test_an_open_files_limit_too_low_for_10000_connections_is_told_and_enforced(faulty_bridge):
    bridge = faulty_bridge("nofile=300", "--web.read-header-timeout=60s")
    # 100 descriptors are kept for all but web connections
    warning = next(line for line in bridge.log if "the open-files limit allows fewer web connections" in line)
    assert "open_files_soft=300" in warning and "connections=200" in warning and "documented=10000" in warning
    assert sample(bridge.samples(), "statsd_bridge_http_max_connections") == 200
    host, port = bridge.addresses["web"]
    idle = []
    try:
        for _ in range(200):
            idle.append(socket.create_connection((host, port), timeout=5))
        with socket.create_connection((host, port), timeout=5) as refused:
            assert refused.recv(1) == b""  # closed at once, not left to run the process out of descriptors
    except ConnectionResetError:
        pass  # closed at once, with a reset
    finally:
        for connection in idle:
            connection.close()
    samples = bridge.wait_for(lambda s: sample(s, "statsd_bridge_http_open_connections") == 1)
    assert samples is not None, bridge.metrics()
    assert sample(samples, "statsd_bridge_http_errors_total", reason="too_many_connections") == 1
    assert internal_errors(samples, "event_loop") is None  # no accept ran out of descriptors
