"""Hostile input, the series cap, lifecycle endpoints, slow HTTP clients."""

import socket
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import assert_exposition_parses, pipeline, sample

HOSTILE = [
    b"n" * 5000 + b":1|c",
    b"long.tag:1|c|#k:" + b"v" * 3000,
    b"empty.tags:1|c|#" + b"," * 300,
    b"big.number:" + b"9" * 400 + b"|g",
    b"nul\x00name:1|c",
    b"nul.value:1\x00|c",
    b"nul.tag:1|c|#k:v\x00w",
    b"\x00\x00\x00",
    b":::|||###",
    b"nan.counter:NaN|c",
    b"inf.counter:Inf|c",
    b"neg.counter:-1|c",
    b"nan.gauge:NaN|g",
    b"x:1|c|@nan",
    b"x:1|ms|@1e-300",
    b"|" * 1000,
    b"a:" + b":" * 1000 + b"|ms",
    b"\xff\xfe\xfd:1|c",
]


def test_hostile_lines_never_cost_a_good_one():
    bridge = pipeline()
    for hostile in HOSTILE:
        bridge.ingest.packet(b"good.before:1|c\n" + hostile + b"\ngood.after:1|c")
    samples = bridge.samples()
    assert sample(samples, "good_before") == len(HOSTILE)
    assert sample(samples, "good_after") == len(HOSTILE)
    assert_exposition_parses(bridge.text())


def test_a_long_name_and_a_long_tag_value_are_kept_whole():
    bridge = pipeline()
    bridge.ingest.packet(b"n" * 5000 + b":1|c|#k:" + b"v" * 3000)
    assert sample(bridge.samples(), "n" * 5000, k="v" * 3000) == 1


def test_series_cap_refuses_new_series_and_keeps_updating_old_ones():
    bridge = pipeline()
    bridge.store.max_series = 3
    bridge.send("capped:1|c|#i:0", "capped:1|c|#i:1", "other:1|g", "capped:1|c|#i:2", "fresh:1|c")
    bridge.send("capped:1|c|#i:0", "other:5|g")
    samples = bridge.samples()
    assert sample(samples, "capped", i="0") == 2
    assert sample(samples, "capped", i="1") == 1
    assert sample(samples, "other") == 5
    assert sample(samples, "capped", i="2") is None
    assert "fresh" not in bridge.types()
    assert sample(samples, "statsd_bridge_series_dropped_total", metric_name="capped") == 1
    assert sample(samples, "statsd_bridge_series_dropped_total", metric_name="fresh") == 1


def test_series_cap_flag_end_to_end(bridge_factory):
    bridge = bridge_factory("--max-series", "2")
    bridge.send_udp("a:1|c", "b:1|c", "c:1|c", "a:1|c")
    samples = bridge.wait_for(lambda s: sample(s, "statsd_bridge_series_dropped_total", metric_name="c") == 1)
    assert samples is not None
    assert sample(samples, "statsd_bridge_max_series") == 2
    assert sample(samples, "a") == 2
    assert any("series cap reached" in line and "fastest_growing=c" in line for line in bridge.log)


def test_per_metric_cap_stops_one_runaway_metric_and_leaves_room_for_the_rest(bridge_factory):
    bridge = bridge_factory("--max-series-per-metric", "5", "--max-series", "100")
    bridge.send_udp("\n".join(f"runaway:1|c|#request_id:{i}" for i in range(50)))
    bridge.send_udp("steady:1|c|#host:a", "steady:1|c|#host:b", "runaway:1|c|#request_id:0")
    # the last datagram's runaway line updates an existing series, which the cap lets through
    samples = bridge.wait_for(
        lambda s: sample(s, "steady", host="b") == 1 and sample(s, "runaway", request_id="0") == 2
    )
    assert samples is not None, bridge.metrics()
    assert sum(1 for name, _ in samples if name == "runaway") == 5
    assert sample(samples, "statsd_bridge_metric_series_dropped_total", metric_name="runaway") == 45
    assert sample(samples, "statsd_bridge_series_dropped_total", metric_name="runaway") is None
    assert any("per-metric series cap reached" in line and "metric=runaway" in line for line in bridge.log)


def post(bridge, path: str, method: str = "POST") -> tuple[int, str]:
    request = urllib.request.Request(bridge.web + path, method=method, data=b"" if method != "GET" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_lifecycle_endpoints_are_off_by_default(bridge):
    assert post(bridge, "/-/reload")[0] == 403
    assert post(bridge, "/-/quit")[0] == 403
    assert post(bridge, "/-/reload", "GET")[0] == 405
    assert bridge.process.poll() is None


def test_reload_over_http(bridge_factory, tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text("mappings:\n- match: r.*\n  name: first\n")
    bridge = bridge_factory("--mapping-config", str(mapping), "--web-enable-lifecycle")
    mapping.write_text("mappings:\n- match: r.*\n  name: second\n")
    assert post(bridge, "/-/reload") == (200, "mapping reloaded\n")
    bridge.send_udp("r.x:1|c")
    assert bridge.wait_for(lambda s: sample(s, "second") == 1) is not None
    mapping.write_text("mappings:\n- match: r.*\n  name: [broken\n")
    status, body = post(bridge, "/-/reload")
    assert status == 500 and "old rules stay" in body
    bridge.send_udp("r.y:1|c")
    samples = bridge.wait_for(lambda s: sample(s, "second") == 2)
    assert sample(samples, "statsd_bridge_config_reloads_total", outcome="failure") == 1
    assert sample(samples, "statsd_bridge_config_reloads_total", outcome="success") == 1


def test_quit_over_http(bridge_factory):
    bridge = bridge_factory("--web.enable-lifecycle")
    assert post(bridge, "/-/quit") == (200, "shutting down\n")
    assert bridge.process.wait(timeout=5) == 0


def test_idle_and_slow_http_clients_do_not_delay_a_scrape(bridge):
    host, port = bridge.addresses["web"]
    idle = [socket.create_connection((host, port)) for _ in range(50)]
    for i, conn in enumerate(idle):
        if i % 2:
            conn.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # a request that never ends
    try:
        started = time.monotonic()
        status, _, _ = bridge.get("/metrics")
        assert status == 200
        assert time.monotonic() - started < 2
    finally:
        for conn in idle:
            conn.close()


@pytest.mark.parametrize(
    "flag", ["--max-series=-1", "--max-series-per-metric=-2", "--reap-after=0s", "--reap-interval=soon"]
)
def test_bad_flags_exit_with_the_flag_named(flag):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "bridge", flag, "--check-config"], capture_output=True, text=True)
    assert result.returncode == 2
    assert flag.split("=")[0] in result.stderr


def test_sigint_handles_what_was_received_and_exits_zero(bridge):
    import signal

    bridge.send_udp(*[f"late.c{i}:1|c" for i in range(200)])
    bridge.process.send_signal(signal.SIGINT)
    assert bridge.process.wait(timeout=5) == 0
    assert not any("Traceback" in line for line in bridge.log)


def test_a_backtracking_regex_cannot_stall_the_bridge(bridge_factory, tmp_path):
    # with Python's re, `^(a+)+$` against 40 a's and a "!" backtracks for hours; RE2 (as Go) is linear
    mapping = tmp_path / "redos.yml"
    mapping.write_text("mappings:\n- match: ^(a+)+$\n  match_type: regex\n  name: all_a\n")
    bridge = bridge_factory("--statsd.mapping-config", str(mapping))
    bridge.send_udp("a" * 40 + "!:1|c", "a" * 40 + ":1|c", "after:1|c")
    samples = bridge.wait_for(lambda s: ("after", frozenset()) in s)
    assert samples is not None, "the bridge stalled on one datagram"
    assert samples[("all_a", frozenset())] == 1
    assert samples[("a" * 40 + "_", frozenset())] == 1  # unmapped: the regex did not match it


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        (r"^x\z", "x", True),
        (r"^\pL+$", "Ωméga", True),
        (r"^[[:alpha:]]+$", "abc", True),
        (r"^\w+$", "abΩ", False),  # Go's \w is ASCII
        (r"^(?P<n>a)$", "a", True),
    ],
)
def test_regex_rules_speak_gos_dialect(pattern, name, matches):
    from bridge.mapping.loader import load_mapping
    from bridge.mapping.router import Mapper

    mapper = Mapper(load_mapping(f"mappings:\n- match: '{pattern}'\n  match_type: regex\n  name: hit\n"))
    assert mapper.map(name, "counter").mapped is matches
