"""The real statsd-bridge process, fed over real sockets and read over real HTTP."""

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import free_port, sample, start_bridge

# one process, and two receiving workers: every listener, reload and signal works with both
pytestmark = pytest.mark.usefixtures("each_worker_count")

# what Prometheus 2.42 sends
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


def test_udp_lines_reach_metrics(bridge):
    bridge.send_udp("e2e.hits:1|c|#env:prod", "e2e.hits:2|c|#env:prod", "e2e.temp:21.5|g", "e2e.lat:250|ms")
    samples = bridge.wait_for(lambda s: sample(s, "e2e_lat_count") == 1 and sample(s, "e2e_hits", env="prod") == 3)
    assert samples is not None, bridge.metrics()
    assert sample(samples, "e2e_temp") == 21.5
    # an unmapped timer is a summary, as in statsd_exporter; one observation is every quantile
    assert sample(samples, "e2e_lat", quantile="0.99") == 0.25
    assert sample(samples, "statsd_bridge_udp_packets_total") == 4


def test_many_lines_in_one_datagram_and_a_bad_one_costs_nothing(bridge):
    lines = [f"batch.c{i}:1|c" for i in range(30)]
    lines.insert(10, "this is not statsd")
    lines.insert(20, "batch.bad:x|c")
    bridge.send_udp("\n".join(lines).encode() + b"\n\xff\xfe:1|c\nbatch.after:1|c")
    samples = bridge.wait_for(lambda s: sample(s, "batch_after") == 1)
    assert samples is not None
    assert all(sample(samples, f"batch_c{i}") == 1 for i in range(30))
    assert sample(samples, "statsd_bridge_sample_errors_total", reason="malformed_line") == 1
    assert sample(samples, "statsd_bridge_sample_errors_total", reason="malformed_value") == 1
    assert sample(samples, "statsd_bridge_sample_errors_total", reason="invalid_utf8") == 1
    assert sample(samples, "statsd_bridge_lines_total") == 34


def test_a_64_kib_datagram(bridge):
    line = "big.dgram:1|c\n"
    payload = (line * (65000 // len(line))).encode()
    bridge.send_udp(payload)
    count = payload.count(b"\n")
    assert bridge.wait_for(lambda s: sample(s, "big_dgram") == count) is not None


def test_a_steady_trickle_of_datagrams_is_read_in_batches(bridge_factory):
    """Below saturation the listener waits a few milliseconds after reading the socket dry, so a wake-up reads
    many datagrams (listeners.COALESCE_SECONDS); with a small receive buffer it doesn't wait."""
    datagrams = 1000

    def batches_for(*args: str) -> float:
        bridge = bridge_factory(*args)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(datagrams):
                sock.sendto(b"trickle:1|c", bridge.addresses["udp"])
                time.sleep(0.0001)
        samples = bridge.wait_for(lambda s: sample(s, "trickle") == datagrams)
        assert samples is not None
        return sample(samples, "statsd_bridge_event_queue_flushed_total")

    coalesced, one_by_one = batches_for(), batches_for("--statsd.read-buffer=65536")
    assert coalesced < one_by_one / 2, (coalesced, one_by_one)


def test_reuse_port_spreads_clients_over_bridges_on_one_port(bridge_factory):
    """--statsd.reuse-port: two bridges on one UDP port; each client socket's lines land in one of them,
    and together they count every line."""
    port = free_port()
    shared = ("--statsd.reuse-port", "--statsd-listen-udp", f"127.0.0.1:{port}", "--statsd-listen-tcp", "")
    bridges = [bridge_factory(*shared), bridge_factory(*shared)]
    clients, lines_each = 64, 10
    for client in range(clients):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # a new source port each
            for _ in range(lines_each):
                sock.sendto(f"reuse.lines:1|c|#client:c{client}".encode(), ("127.0.0.1", port))

    def counts() -> list[dict]:
        return [
            {dict(labels)["client"]: value for (name, labels), value in b.samples().items() if name == "reuse_lines"}
            for b in bridges
        ]

    deadline = time.monotonic() + 5
    while sum(sum(c.values()) for c in counts()) < clients * lines_each and time.monotonic() < deadline:
        time.sleep(0.05)
    first, second = counts()
    assert sum(first.values()) + sum(second.values()) == clients * lines_each
    assert first and second  # both got clients: the chance that 64 sources all hash to one is 2**-63
    assert not set(first) & set(second)  # and each client's lines stayed in one bridge
    assert all(value == lines_each for value in [*first.values(), *second.values()])


def test_tcp_lines_from_concurrent_connections(bridge):
    connections = [socket.create_connection(bridge.addresses["tcp"]) for _ in range(20)]
    for i, conn in enumerate(connections):
        conn.sendall(f"tcp.conn:1|c|#n:{i % 2}\ntcp.conn:1|c|#n:{i % 2}\n".encode())
    for conn in connections:
        conn.sendall(b"tcp.last:1|c")  # the final line needs no newline
        conn.close()
    samples = bridge.wait_for(lambda s: sample(s, "tcp_last") == 20)
    assert samples is not None, bridge.metrics()
    assert sample(samples, "tcp_conn", n="0") == 20
    assert sample(samples, "tcp_conn", n="1") == 20
    assert sample(samples, "statsd_bridge_tcp_connections_total") == 20


def test_tcp_line_split_across_writes(bridge):
    with socket.create_connection(bridge.addresses["tcp"]) as conn:
        conn.sendall(b"tcp.split:")
        time.sleep(0.1)
        conn.sendall(b"4|c\n")
    assert bridge.wait_for(lambda s: sample(s, "tcp_split") == 4) is not None


def test_over_long_tcp_line_closes_only_that_connection(bridge):
    good = socket.create_connection(bridge.addresses["tcp"])
    bad = socket.create_connection(bridge.addresses["tcp"])
    bad.sendall(b"x" * 70000)
    samples = bridge.wait_for(lambda s: sample(s, "statsd_bridge_tcp_too_long_lines_total") == 1)
    assert samples is not None
    bad.settimeout(5)
    assert bad.recv(10) == b""  # the bridge closed it
    good.sendall(b"tcp.still:1|c\n")
    assert bridge.wait_for(lambda s: sample(s, "tcp_still") == 1) is not None
    good.close()
    bad.close()


def test_http_endpoints(bridge):
    assert bridge.get("/-/healthy")[0] == 200
    assert bridge.get("/-/ready")[0] == 200
    status, _headers, body = bridge.get("/")
    assert status == 200 and b'href="/metrics"' in body
    assert bridge.get("/nope")[0] == 404
    request = urllib.request.Request(bridge.web + "/metrics", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 405
    assert caught.value.headers["Allow"] == "GET, HEAD"


def test_text_format_unless_openmetrics_is_enabled(bridge):
    bridge.send_udp("neg.c:1|c")
    assert bridge.wait_for(lambda s: sample(s, "neg_c") == 1) is not None
    _status, headers, body = bridge.get(headers={"Accept": PROMETHEUS_ACCEPT})
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"\nneg_c 1\n" in body


def test_content_negotiation_and_gzip(bridge_factory):
    bridge = bridge_factory("--web-enable-openmetrics")
    bridge.send_udp("neg.c:1|c", "neg.d_total:1|c")
    assert bridge.wait_for(lambda s: sample(s, "neg_d_total") == 1) is not None
    _status, headers, body = bridge.get(headers={"Accept": PROMETHEUS_ACCEPT})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")
    assert b"# TYPE neg_d counter\n" in body
    _status, headers, body = bridge.get(headers={"Accept-Encoding": "gzip"})
    assert headers["Content-Encoding"] == "gzip"
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"\nneg_c 1\n" in gzip.decompress(body)


def test_statsd_exporter_flag_spellings(tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text("mappings:\n- match: alias.*\n  name: aliased\n  labels:\n    which: $1\n")
    command = [
        sys.executable,
        "-m",
        "bridge",
        "--statsd.listen-udp=127.0.0.1:0",
        "--statsd.listen-tcp=",
        "--web.listen-address=127.0.0.1:0",
        "--web.telemetry-path=/stats",
        f"--statsd.mapping-config={mapping}",
        "--log.level=debug",
        "--log.format=json",
        "--statsd.read-buffer=1048576",
        "--check-config",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "configuration OK (1 mapping rules)" in result.stdout


def test_renamed_telemetry_path_and_json_logs(bridge_factory):
    bridge = bridge_factory("--web-telemetry-path", "/stats", "--log-format", "json")
    status, _, body = bridge.get("/stats")
    assert status == 200 and b"statsd_bridge_lines_total" in body
    assert bridge.get("/metrics")[0] == 404
    assert any(json.loads(line).get("msg") == "statsd-bridge started" for line in bridge.log if line.startswith("{"))


def test_ttl_sweep_runs_in_the_daemon(bridge_factory, tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text("mappings:\n- match: brief.*\n  name: brief\n  ttl: 1s\n  labels:\n    k: $1\n")
    bridge = bridge_factory("--mapping-config", str(mapping))
    bridge.send_udp("brief.a:1|c", "lasting:1|c")
    assert bridge.wait_for(lambda s: sample(s, "brief", k="a") == 1) is not None
    samples = bridge.wait_for(lambda s: sample(s, "brief", k="a") is None, timeout=6)
    assert samples is not None
    assert sample(samples, "lasting") == 1


def test_sighup_reloads_the_mapping_and_a_bad_file_keeps_the_old_rules(bridge_factory, tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text("mappings:\n- match: r.*\n  name: first\n")
    bridge = bridge_factory("--mapping-config", str(mapping))
    bridge.send_udp("r.x:1|c")
    assert bridge.wait_for(lambda s: sample(s, "first") == 1) is not None
    mapping.write_text("mappings:\n- match: r.*\n  name: second\n")
    bridge.process.send_signal(signal.SIGHUP)
    assert bridge.wait_for(lambda s: sample(s, "statsd_bridge_config_reloads_total", outcome="success") == 1)
    bridge.send_udp("r.y:1|c")
    assert bridge.wait_for(lambda s: sample(s, "second") == 1) is not None
    mapping.write_text("mappings:\n- match: r.*\n  nme: broken\n")
    bridge.process.send_signal(signal.SIGHUP)
    assert bridge.wait_for(lambda s: sample(s, "statsd_bridge_config_reloads_total", outcome="failure") == 1)
    bridge.send_udp("r.z:1|c")
    assert bridge.wait_for(lambda s: sample(s, "second") == 2) is not None


def configmap_update(directory, text: str, version: int) -> None:
    """Change a file as the kubelet changes a mounted ConfigMap: a new directory, then `..data` swapped to it."""
    (directory / f"..v{version}").mkdir()
    (directory / f"..v{version}" / "mapping.yml").write_text(text)
    (directory / "..data_tmp").symlink_to(f"..v{version}")
    os.replace(directory / "..data_tmp", directory / "..data")


def test_a_watched_mapping_file_reloads_when_its_configmap_changes(bridge_factory, tmp_path):
    configmap = tmp_path / "configmap"
    configmap.mkdir()
    configmap_update(configmap, "mappings:\n- match: r.*\n  name: first\n", 1)
    (configmap / "mapping.yml").symlink_to("..data/mapping.yml")
    bridge = bridge_factory("--mapping-config", str(configmap / "mapping.yml"), "--watch-mapping-config")
    bridge.send_udp("r.x:1|c")
    assert bridge.wait_for(lambda s: sample(s, "first") == 1) is not None
    configmap_update(configmap, "mappings:\n- match: r.*\n  name: second\n", 2)  # no signal: the watch sees it
    assert bridge.wait_for(lambda s: sample(s, "statsd_bridge_config_reloads_total", outcome="success") == 1)
    bridge.send_udp("r.y:1|c")
    assert bridge.wait_for(lambda s: sample(s, "second") == 1) is not None
    # a file that fails to load keeps the old rules, and is tried again (after 1 s, 2 s, ...)
    configmap_update(configmap, "mappings:\n- match: r.*\n  nme: broken\n", 3)
    assert bridge.wait_for(lambda s: sample(s, "statsd_bridge_config_reloads_total", outcome="failure") >= 2)
    bridge.send_udp("r.z:1|c")
    assert bridge.wait_for(lambda s: sample(s, "second") == 2) is not None
    assert any("mapping reload failed, keeping the old rules" in line for line in bridge.log)
    configmap_update(configmap, "mappings:\n- match: r.*\n  name: third\n", 4)
    assert bridge.wait_for(lambda s: sample(s, "statsd_bridge_config_reloads_total", outcome="success") == 2)
    bridge.send_udp("r.w:1|c")
    assert bridge.wait_for(lambda s: sample(s, "third") == 1) is not None


def test_unixgram_listener(bridge_factory, tmp_path):
    path = str(tmp_path / "dsd.sock")
    bridge = bridge_factory("--statsd-listen-unixgram", path, "--statsd-unixsocket-mode", "700")
    assert oct(os.stat(path).st_mode & 0o777) == "0o700"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"unix.hits:3|c|#via:uds", path)
    samples = bridge.wait_for(lambda s: sample(s, "unix_hits", via="uds") == 3)
    assert samples is not None
    assert sample(samples, "statsd_bridge_unixgram_packets_total") == 1
    bridge.stop()
    assert not os.path.exists(path)


@pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this host")
def test_ipv6_listen_address():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("::1 cannot be bound here")
    bridge = start_bridge("--statsd-listen-udp", "[::1]:0")
    try:
        host, port = bridge.addresses["udp"]
        assert host == "::1"
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"v6.hits:1|c", ("::1", port))
        assert bridge.wait_for(lambda s: sample(s, "v6_hits") == 1) is not None
    finally:
        bridge.stop()


def test_sigterm_exits_zero_promptly(bridge):
    bridge.send_udp("bye:1|c")
    bridge.wait_for(lambda s: sample(s, "bye") == 1)
    started = time.monotonic()
    assert bridge.stop() == 0
    assert time.monotonic() - started < 5


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=30)


def test_check_config_names_file_line_and_key(tmp_path):
    mapping = tmp_path / "bad.yml"
    mapping.write_text("mappings:\n- match: a.b\n  name: ok\n- match: c.d\n  name: x\n  scale: big\n")
    result = run_cli("--mapping-config", str(mapping), "--check-config")
    assert result.returncode != 0
    assert f"{mapping}:6: scale: must be a number" in result.stderr


def test_check_config_warns_of_unknown_keys_and_passes_as_statsd_exporter_does(tmp_path):
    mapping = tmp_path / "typo.yml"
    mapping.write_text("mappings:\n- match: a.b\n  name: ok\n- match: c.d\n  name: x\n  colour: red\n")
    result = run_cli("--mapping-config", str(mapping), "--check-config")
    assert result.returncode == 0, result.stderr
    assert f"{mapping}:6: warning: unknown key `colour` ignored" in result.stderr


def test_check_config_rejects_a_bad_address():
    result = run_cli("--statsd-listen-udp", "nonsense", "--check-config")
    assert result.returncode == 2
    assert "--statsd-listen-udp" in result.stderr


def test_missing_mapping_file_is_a_clear_start_up_error(tmp_path):
    result = run_cli("--mapping-config", str(tmp_path / "absent.yml"))
    assert result.returncode == 1
    assert f"{tmp_path / 'absent.yml'}: cannot read the file: No such file or directory" in result.stderr


@pytest.mark.parametrize(
    ("listener", "flag", "kind"),
    [
        ("udp", "--statsd.listen-udp", socket.SOCK_DGRAM),
        ("tcp", "--statsd.listen-tcp", socket.SOCK_STREAM),
        ("web", "--web.listen-address", socket.SOCK_STREAM),
    ],
)
def test_an_address_in_use_names_the_listener_the_address_and_the_flag(listener, flag, kind):
    # what a user meets first when trying the bridge next to a running statsd_exporter
    with socket.socket(socket.AF_INET, kind) as taken:
        taken.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        flags = {
            "--statsd.listen-udp": "127.0.0.1:0",
            "--statsd.listen-tcp": "127.0.0.1:0",
            "--web.listen-address": "127.0.0.1:0",
            flag: address,
        }
        result = run_cli(*(f"{name}={value}" for name, value in flags.items()))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "level=error" in line]
    assert len(errors) == 1, result.stderr
    assert f"cannot listen: {listener} on {address} ({flag}): Address already in use" in errors[0]


def test_a_unixgram_socket_that_cannot_be_made_names_its_path(tmp_path):
    path = tmp_path / "missing-directory" / "dsd.sock"
    result = run_cli(
        "--statsd.listen-udp=",
        "--statsd.listen-tcp=",
        "--web.listen-address=127.0.0.1:0",
        f"--statsd.listen-unixgram={path}",
    )
    assert result.returncode == 1
    assert f"cannot listen: unixgram on {path} (--statsd.listen-unixgram): No such file or directory" in result.stderr


@pytest.mark.parametrize("key", ["cert_file", "key_file"])
def test_a_certificate_file_that_cannot_be_read_is_named(tmp_path, key):
    import trustme

    authority = trustme.CA()
    certificate = authority.issue_cert("localhost")
    certificate.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    certificate.private_key_pem.write_to_path(tmp_path / "key.pem")
    files = {"cert_file": tmp_path / "cert.pem", "key_file": tmp_path / "key.pem"}
    files[key] = tmp_path / "absent.pem"
    web_config = tmp_path / "web.yml"
    web_config.write_text("tls_server_config:\n" + "".join(f"  {k}: {v}\n" for k, v in files.items()))
    result = run_cli(f"--web.config.file={web_config}", "--check-config")
    assert result.returncode == 1
    assert f"tls_server_config.{key}: cannot read {files[key]}: No such file or directory" in result.stderr


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--statsd.listen-udp", "nonsense"),
        ("--statsd.read-buffer", "-1"),
        ("--web.telemetry-path", "metrics"),
        ("--statsd.cache-type", "fifo"),
        ("--reap-after", "soon"),
        ("--statsd.unixsocket-mode", "999"),
        ("--statsd.workers", "0"),
        ("--web.read-header-timeout", "0s"),
        ("--max-series-per-metric", "-1"),
        ("--log.level", "loud"),
    ],
)
def test_a_bad_flag_value_names_the_flag(flag, value):
    result = run_cli(f"{flag}={value}", "--check-config")
    assert result.returncode == 2
    assert flag in result.stderr.splitlines()[-1], result.stderr


def test_help_answers():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--statsd-listen-udp" in result.stdout and "--statsd.listen-udp" in result.stdout
