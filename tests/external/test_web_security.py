"""--web.config.file: TLS, client certificates, basic auth, headers and a rate limit, through real clients
(curl, Python's ssl and urllib, a real Prometheus) against a real bridge. Certificates are made here."""

from __future__ import annotations

import base64
import http.client
import re
import ssl
import subprocess
import sys
import time
from pathlib import Path

import bcrypt
import pytest
import trustme

from bridge.web.access import UNKNOWN_USER_HASH
from bridge.web.web_config import CIPHER_SUITES, WebConfigError, parse
from tests.conftest import Prometheus, parse_samples, require, sample, start_bridge

PASSWORD = "correct horse"


def _hash(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


class Certificates:
    """A CA, a server certificate for localhost and 127.0.0.1, and client certificates, as files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ca = trustme.CA()
        self.ca_file = self._write("ca.pem", self.ca.cert_pem.bytes())
        self.server(self.ca.issue_cert("localhost", "127.0.0.1"))
        self.client_cert, self.client_key = self._pair("client", self.ca.issue_cert("scraper.example"))
        other = trustme.CA()  # a client certificate from a CA the bridge doesn't trust
        self.stranger_cert, self.stranger_key = self._pair("stranger", other.issue_cert("scraper.example"))

    def _write(self, name: str, data: bytes) -> str:
        path = self.directory / name
        path.write_bytes(data)
        return str(path)

    def _pair(self, name: str, issued: trustme.LeafCert) -> tuple[str, str]:
        chain = b"".join(blob.bytes() for blob in issued.cert_chain_pems)
        return self._write(f"{name}.crt", chain), self._write(f"{name}.key", issued.private_key_pem.bytes())

    def server(self, issued: trustme.LeafCert) -> None:
        """(Re)write the server's certificate and key files."""
        self.server_leaf = issued.cert_chain_pems[0].bytes()
        self.cert_file, self.key_file = self._pair("server", issued)

    def client_context(self, with_certificate: bool = True, stranger: bool = False) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file)
        if with_certificate:
            context.load_cert_chain(
                *((self.stranger_cert, self.stranger_key) if stranger else (self.client_cert, self.client_key))
            )
        return context


@pytest.fixture
def certs(tmp_path) -> Certificates:
    return Certificates(tmp_path)


def _bridge(bridge_factory, tmp_path: Path, config: str, *args: str):
    web_config = tmp_path / "web.yml"
    web_config.write_text(config)
    return bridge_factory(f"--web.config.file={web_config}", *args), web_config


def _https(bridge, context: ssl.SSLContext, path: str = "/metrics", headers: dict | None = None):
    host, port = bridge.addresses["web"]
    connection = http.client.HTTPSConnection(host, port, context=context, timeout=5)
    connection.request("GET", path, headers=headers or {})
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def _basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _curl(*args: str) -> subprocess.CompletedProcess:
    curl = require("curl")
    return subprocess.run([curl, "--silent", "--show-error", "--max-time", "5", *args], capture_output=True, text=True)


@pytest.fixture
def bridge_factory():
    started = []

    def factory(*args: str):
        bridge = start_bridge(*args)
        started.append(bridge)
        return bridge

    yield factory
    for bridge in started:
        bridge.stop()


def test_tls_serves_https_and_refuses_plain_http(bridge_factory, tmp_path, certs):
    bridge, _ = _bridge(
        bridge_factory, tmp_path, f"tls_server_config:\n  cert_file: {certs.cert_file}\n  key_file: {certs.key_file}\n"
    )
    status, _, body = _https(bridge, certs.client_context(with_certificate=False))
    assert status == 200 and b"statsd_bridge_lines_total" in body
    port = bridge.addresses["web"][1]
    ok = _curl("--cacert", certs.ca_file, f"https://localhost:{port}/metrics")
    assert ok.returncode == 0 and "statsd_bridge_lines_total" in ok.stdout
    unknown_ca = _curl(f"https://localhost:{port}/metrics")
    assert unknown_ca.returncode == 60, unknown_ca.stderr  # curl: peer certificate cannot be authenticated
    plain = _curl(f"http://127.0.0.1:{port}/metrics")
    assert plain.returncode != 0 or "statsd_bridge" not in plain.stdout
    assert "tls=True" in "".join(bridge.log)


def test_inline_certificate_key_and_client_ca(bridge_factory, tmp_path, certs):
    def indented(path: str) -> str:
        return "".join("    " + line for line in Path(path).read_text().splitlines(keepends=True))

    bridge, _ = _bridge(
        bridge_factory,
        tmp_path,
        f"""tls_server_config:
  cert: |
{indented(certs.cert_file)}  key: |
{indented(certs.key_file)}  client_auth_type: RequireAndVerifyClientCert
  client_ca: |
{indented(certs.ca_file)}""",
    )
    assert _https(bridge, certs.client_context())[0] == 200
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _https(bridge, certs.client_context(stranger=True))


def test_tls_versions_follow_min_version(bridge_factory, tmp_path, certs):
    bridge, _ = _bridge(
        bridge_factory,
        tmp_path,
        f"tls_server_config:\n  cert_file: {certs.cert_file}\n  key_file: {certs.key_file}\n  min_version: TLS13\n",
    )
    context = certs.client_context(with_certificate=False)
    assert _https(bridge, context)[0] == 200
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(ssl.SSLError):
        _https(bridge, context)


def test_client_certificates_required_and_verified(bridge_factory, tmp_path, certs):
    bridge, _ = _bridge(
        bridge_factory,
        tmp_path,
        f"""tls_server_config:
  cert_file: {certs.cert_file}
  key_file: {certs.key_file}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {certs.ca_file}
""",
    )
    assert _https(bridge, certs.client_context())[0] == 200
    for context in (certs.client_context(with_certificate=False), certs.client_context(stranger=True)):
        with pytest.raises((ssl.SSLError, ConnectionError)):
            _https(bridge, context)
    port = bridge.addresses["web"][1]
    with_cert = _curl(
        "--cacert",
        certs.ca_file,
        "--cert",
        certs.client_cert,
        "--key",
        certs.client_key,
        f"https://localhost:{port}/metrics",
    )
    assert with_cert.returncode == 0 and "statsd_bridge_lines_total" in with_cert.stdout
    without = _curl("--cacert", certs.ca_file, f"https://localhost:{port}/metrics")
    # TLS 1.3 checks the client's certificate after the client's side of the handshake is done, so curl
    # sees a handshake failure (35), the alert as a receive error (56) or the close as an empty reply (52)
    assert without.returncode in (35, 52, 56) and not without.stdout, without


def test_client_allowed_sans(bridge_factory, tmp_path, certs):
    config = f"""tls_server_config:
  cert_file: {certs.cert_file}
  key_file: {certs.key_file}
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: {certs.ca_file}
  client_allowed_sans: [%s]
"""
    allowed, _ = _bridge(bridge_factory, tmp_path, config % "scraper.example")
    assert _https(allowed, certs.client_context())[0] == 200
    (tmp_path / "other").mkdir()
    refused, _ = _bridge(bridge_factory, tmp_path / "other", config % "someone.else.example")
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        _https(refused, certs.client_context())


def test_basic_auth(bridge_factory, tmp_path):
    bridge, _ = _bridge(
        bridge_factory,
        tmp_path,
        f"basic_auth_users:\n  alice: {_hash(PASSWORD)}\n"
        # the htpasswd form ($2y$), as exporter-toolkit's docs show it
        f"  bob: {UNKNOWN_USER_HASH.decode()}\n",
    )
    assert bridge.get("/metrics", _basic("alice", PASSWORD))[0] == 200
    assert bridge.get("/metrics", _basic("bob", "fakepassword"))[0] == 200
    for headers in ({}, _basic("alice", "wrong"), _basic("mallory", PASSWORD), {"Authorization": "Basic !!"}):
        status, response_headers, _ = bridge.get("/metrics", headers)
        assert status == 401 and response_headers["WWW-Authenticate"] == "Basic", headers
    port = bridge.addresses["web"][1]
    assert _curl("--fail", "-u", f"alice:{PASSWORD}", f"http://127.0.0.1:{port}/metrics").returncode == 0
    refused = _curl("-o", "/dev/null", "-w", "%{http_code}", "-u", "alice:nope", f"http://127.0.0.1:{port}/")
    assert refused.stdout == "401"
    # health and readiness are behind the password too, as exporter-toolkit wraps every handler
    assert bridge.get("/-/healthy")[0] == 401


def test_headers_are_added_to_every_answer(bridge_factory, tmp_path):
    bridge, _ = _bridge(
        bridge_factory,
        tmp_path,
        f"""basic_auth_users:
  alice: {_hash(PASSWORD)}
http_server_config:
  headers:
    X-Frame-Options: deny
    Content-Security-Policy: default-src 'self'
    Strict-Transport-Security: max-age=31536000
""",
    )
    for headers in (_basic("alice", PASSWORD), {}):
        _, response_headers, _ = bridge.get("/metrics", headers)
        assert response_headers["X-Frame-Options"] == "deny"
        assert response_headers["Content-Security-Policy"] == "default-src 'self'"


def test_rate_limit_answers_429(bridge_factory, tmp_path):
    bridge, _ = _bridge(bridge_factory, tmp_path, "rate_limit:\n  interval: 1h\n  burst: 2\n")
    assert [bridge.get("/-/healthy")[0] for _ in range(3)] == [200, 200, 429]


def test_certificates_are_reread_when_they_change(bridge_factory, tmp_path, certs):
    bridge, _ = _bridge(
        bridge_factory, tmp_path, f"tls_server_config:\n  cert_file: {certs.cert_file}\n  key_file: {certs.key_file}\n"
    )

    def served_certificate() -> bytes:
        host, port = bridge.addresses["web"]
        der = ssl.get_server_certificate((host, port), ca_certs=certs.ca_file)
        return der.encode()

    first = served_certificate()
    assert ssl.PEM_cert_to_DER_cert(first.decode()) == ssl.PEM_cert_to_DER_cert(certs.server_leaf.decode())
    certs.server(certs.ca.issue_cert("localhost", "127.0.0.1", "renewed.example"))
    deadline = time.monotonic() + 10
    while ssl.PEM_cert_to_DER_cert(served_certificate().decode()) != ssl.PEM_cert_to_DER_cert(
        certs.server_leaf.decode()
    ):
        assert time.monotonic() < deadline, "the renewed certificate was not served within 10 s"
        time.sleep(0.2)
    # a broken renewal keeps the old certificate and says why
    Path(certs.key_file).write_text("not a key")
    deadline = time.monotonic() + 10
    while "web config reload failed" not in "".join(bridge.log):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert _https(bridge, certs.client_context(with_certificate=False))[0] == 200
    _, _, body = _https(bridge, certs.client_context(with_certificate=False))
    reloads = {
        outcome: sample(parse_samples(body.decode()), "statsd_bridge_web_config_reloads_total", outcome=outcome)
        for outcome in ("success", "failure")
    }
    assert reloads["success"] >= 1 and reloads["failure"] >= 1


BAD_CONFIGS = [
    ("tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n", "cert_file"),
    ("tls_server_config:\n  cert_file: {cert}\n", "missing one of key or key_file"),
    (
        "tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_ca_file: {ca}\n",
        "without a Client Auth Policy",
    ),
    (
        "tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: RequireAnyClientCert\n",
        "client_auth_type: RequireAnyClientCert",
    ),
    (
        "tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  client_auth_type: Sometimes\n",
        "invalid ClientAuth: Sometimes",
    ),
    ("tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  min_version: TLS14\n", "unknown TLS version"),
    (
        "tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  cipher_suites: [TLS_NOPE]\n",
        "unknown cipher: TLS_NOPE",
    ),
    (
        "tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n  curve_preferences: [X25519]\n",
        "curve_preferences",
    ),
    ("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice: not a bcrypt hash"),
    ("http_server_config:\n  headers:\n    X-Powered-By: me\n", "'X-Powered-By' can not be configured"),
    ("http_server_config:\n  headers:\n    X-Frame-Options: allow\n", "X-Frame-Options: expected one of"),
    ("tls_server_config:\n  cert_flie: x\n", "tls_server_config.cert_flie: unknown key"),
    ("basic_auth_user:\n  alice: x\n", "basic_auth_user: unknown key"),
    ("rate_limit:\n  interval: soon\n", "rate_limit.interval"),
    ("[not, a, mapping]\n", "must be a mapping"),
]


@pytest.mark.parametrize(("config", "named"), BAD_CONFIGS, ids=[named for _, named in BAD_CONFIGS])
def test_a_bad_web_config_stops_start_up_and_fails_check_config(tmp_path, certs, config, named):
    web_config = tmp_path / "web.yml"
    web_config.write_text(config.format(cert=certs.cert_file, key=certs.key_file, ca=certs.ca_file))
    for extra in ((), ("--check-config",)):
        command = [
            sys.executable,
            "-m",
            "bridge",
            f"--web.config.file={web_config}",
            "--web.listen-address=127.0.0.1:0",
            "--statsd.listen-udp=127.0.0.1:0",
            "--statsd.listen-tcp=",
            *extra,
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        assert result.returncode == 1, result
        assert f"bad web config file {web_config}" in result.stderr and named in result.stderr, result.stderr


def test_a_good_web_config_passes_check_config(tmp_path, certs):
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        f"tls_server_config:\n  cert_file: {certs.cert_file}\n  key_file: {certs.key_file}\n"
        f"basic_auth_users:\n  alice: {_hash(PASSWORD)}\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "bridge", f"--web.config.file={web_config}", "--check-config"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "web config OK (TLS, 1 basic auth user)" in result.stdout


def test_relative_paths_are_taken_from_the_config_files_directory(tmp_path, certs):
    config = parse("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n", str(tmp_path / "web.yml"))
    assert config.tls.cert_file == str(tmp_path / "server.crt")


def test_an_empty_file_means_plain_http_without_auth():
    config = parse("")
    assert config.tls is None and not config.users
    with pytest.raises(WebConfigError):
        parse("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n")


def test_the_cipher_table_matches_openssls_standard_names():
    openssl = require("openssl")
    listed = subprocess.run([openssl, "ciphers", "-stdname", "ALL:@SECLEVEL=0"], capture_output=True, text=True)
    pairs = dict(re.findall(r"^(TLS_\w+)\s+-\s+(\S+)", listed.stdout, re.MULTILINE))
    for go_name, openssl_name in CIPHER_SUITES.items():
        assert pairs.get(go_name) == openssl_name, go_name


def test_prometheus_scrapes_over_tls_with_basic_auth(bridge_factory, tmp_path, certs):
    binary = require("prometheus")
    bridge, _ = _bridge(
        bridge_factory,
        tmp_path,
        f"""tls_server_config:
  cert_file: {certs.cert_file}
  key_file: {certs.key_file}
basic_auth_users:
  prometheus: {_hash(PASSWORD)}
""",
    )
    host, port = bridge.addresses["web"]
    bridge.send_udp("secure.scrapes:7|c")
    (tmp_path / "password").write_text(PASSWORD)

    def job(name: str, password: str) -> str:
        return f"""  - job_name: {name}
    scheme: https
    tls_config: {{ca_file: {certs.ca_file}, server_name: localhost}}
    basic_auth: {{username: prometheus, {password}}}
    static_configs: [{{targets: ["{host}:{port}"]}}]
"""

    right, wrong = job("bridge", f"password_file: {tmp_path / 'password'}"), job("wrong_password", "password: wrong")
    config = "global:\n  scrape_interval: 1s\nscrape_configs:\n" + right + wrong
    prometheus = Prometheus(binary, config, tmp_path)
    try:
        found = prometheus.wait_for('secure_scrapes{job="bridge"}', lambda r: r, timeout=20)
        assert list(found.values()) == [7.0]
        up = prometheus.wait_for("up", lambda r: len(r) == 2, timeout=20)
        assert {dict(labels)["job"]: value for labels, value in up.items()} == {"bridge": 1.0, "wrong_password": 0.0}
        # Prometheus keeps one connection per target: many scrapes, few connections
        prometheus.wait_for("count_over_time(up[1m])", lambda r: len(r) == 2 and min(r.values()) >= 5)
        auth = _basic("prometheus", PASSWORD)
        _, _, body = _https(bridge, certs.client_context(with_certificate=False), headers=auth)
        samples = parse_samples(body.decode())
        assert sample(samples, "statsd_bridge_http_requests_total", code="200") >= 5
        assert sample(samples, "statsd_bridge_http_requests_total", code="401") >= 5
        assert sample(samples, "statsd_bridge_http_connections_total") <= 4  # two jobs, this scrape, slack
    finally:
        prometheus.stop()
