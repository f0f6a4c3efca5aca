"""`--web.config.file`: TLS, basic auth, response headers and a rate limit, in exporter-toolkit's format.

The file is the one node_exporter and the other Prometheus exporters read (exporter-toolkit's web/
package): the same keys, the same defaults (TLS 1.2 to 1.3), the same checks (only five response
headers, bcrypt hashes, a client CA needs a client_auth_type). Where Python's ssl module cannot do what
Go's crypto/tls does, the key is refused at start-up with the reason rather than quietly weakened.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import os
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml

from bridge.durations import parse_duration
from bridge.supervise import file_marks


class WebConfigError(ValueError):
    """A bad web config file; the message names the key."""


# exporter-toolkit's extraHTTPHeaders: the only headers the file may set, and their allowed values
ALLOWED_HEADERS: dict[str, tuple[str, ...]] = {
    "Strict-Transport-Security": (),
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": (),
    "Content-Security-Policy": (),
}

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

# Go's tls.CipherSuites() names -> OpenSSL's. The TLS 1.3 suites are accepted and, as in Go, change
# nothing: cipher_suites governs TLS 1.2 and older. tests/external/test_web_security.py checks this table against
# `openssl ciphers -stdname`.
CIPHER_SUITES = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_SUITES = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")

CLIENT_AUTH = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Go can ask for a certificate without checking it; Python's ssl verifies every certificate it takes.
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")

TLS_KEYS = {
    "cert", "key", "client_ca", "cert_file", "key_file", "client_auth_type", "client_ca_file", "cipher_suites",
    "curve_preferences", "min_version", "max_version", "prefer_server_cipher_suites", "client_allowed_sans",
}  # fmt: skip

# exporter-toolkit compares against this hash when the user is unknown, so a wrong name costs the same
# time as a wrong password; it is bcrypt("fakepassword").
UNKNOWN_USER_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"


@dataclass(frozen=True)
class TLSSettings:
    cert_file: str = ""
    key_file: str = ""
    cert: str = ""
    key: str = ""
    client_ca_file: str = ""
    client_ca: str = ""
    client_auth_type: str = ""
    cipher_suites: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True
    client_allowed_sans: tuple[str, ...] | None = None


@dataclass(frozen=True)
class WebConfig:
    path: str = ""
    tls: TLSSettings | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # name -> bcrypt hash
    headers: dict[str, str] = field(default_factory=dict)
    rate_limit: tuple[float, int] | None = None  # (seconds per token, burst)

    def watched_files(self) -> list[str]:
        """The files whose change on disk means reading everything again."""
        files = [self.path] if self.path else []
        if self.tls is not None:
            files += [f for f in (self.tls.cert_file, self.tls.key_file, self.tls.client_ca_file) if f]
        return files


def _mapping(value: object, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{key}: must be a mapping, not {type(value).__name__}")
    return value


def _strings(value: object, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise WebConfigError(f"{key}: must be a list of strings")
    return tuple(value)


def _unknown(section: dict, known: set[str], where: str) -> None:
    for key in section:
        if key not in known:
            raise WebConfigError(f"{where}{key}: unknown key (exporter-toolkit's format has no such field)")


def _relative(directory: Path, path: object, key: str) -> str:
    if path is None or path == "":
        return ""
    if not isinstance(path, str):
        raise WebConfigError(f"{key}: must be a file path")
    return str(directory / path)


def _tls_settings(raw: dict, directory: Path) -> TLSSettings | None:
    _unknown(raw, TLS_KEYS, "tls_server_config.")
    if raw.get("curve_preferences"):
        raise WebConfigError(
            "tls_server_config.curve_preferences: Python's ssl module cannot order key "
            "exchange groups; remove the key to use OpenSSL's (X25519, P-256, P-384, P-521)"
        )
    client_auth = raw.get("client_auth_type") or ""
    if client_auth in UNVERIFIED_CLIENT_AUTH:
        raise WebConfigError(
            f"tls_server_config.client_auth_type: {client_auth} takes certificates without "
            "verifying them, which Python's ssl module cannot do; use VerifyClientCertIfGiven "
            "or RequireAndVerifyClientCert with a client_ca_file"
        )
    if client_auth not in CLIENT_AUTH:
        raise WebConfigError(f"tls_server_config.client_auth_type: invalid ClientAuth: {client_auth}")
    for key in ("min_version", "max_version"):
        if key in raw and raw[key] not in TLS_VERSIONS:
            raise WebConfigError(f"tls_server_config.{key}: unknown TLS version: {raw[key]}")
    suites = _strings(raw.get("cipher_suites"), "tls_server_config.cipher_suites")
    for suite in suites:
        if suite not in CIPHER_SUITES and suite not in TLS13_SUITES:
            raise WebConfigError(f"tls_server_config.cipher_suites: unknown cipher: {suite}")
    sans = raw.get("client_allowed_sans")
    settings = TLSSettings(
        cert_file=_relative(directory, raw.get("cert_file"), "tls_server_config.cert_file"),
        key_file=_relative(directory, raw.get("key_file"), "tls_server_config.key_file"),
        cert=str(raw.get("cert") or ""),
        key=str(raw.get("key") or ""),
        client_ca_file=_relative(directory, raw.get("client_ca_file"), "tls_server_config.client_ca_file"),
        client_ca=str(raw.get("client_ca") or ""),
        client_auth_type=client_auth,
        cipher_suites=suites,
        min_version=raw.get("min_version", "TLS12"),
        max_version=raw.get("max_version", "TLS13"),
        prefer_server_cipher_suites=bool(raw.get("prefer_server_cipher_suites", True)),
        client_allowed_sans=None if sans is None else _strings(sans, "tls_server_config.client_allowed_sans"),
    )
    enabled = any(
        (
            settings.cert_file,
            settings.cert,
            settings.key_file,
            settings.key,
            settings.client_ca_file,
            settings.client_ca,
            settings.client_auth_type,
        )
    )
    if not enabled:
        return None  # as exporter-toolkit: no TLS key set, plain HTTP
    if not (settings.cert_file or settings.cert):
        raise WebConfigError("tls_server_config: missing one of cert or cert_file")
    if not (settings.key_file or settings.key):
        raise WebConfigError("tls_server_config: missing one of key or key_file")
    if (settings.client_ca_file or settings.client_ca) and CLIENT_AUTH[client_auth] == ssl.CERT_NONE:
        raise WebConfigError(
            "tls_server_config.client_ca_file: client CA's have been configured without a "
            "Client Auth Policy (client_auth_type)"
        )
    return settings


def _users(raw: object) -> dict[str, bytes]:
    users = {}
    for name, hashed in _mapping(raw, "basic_auth_users").items():
        if not isinstance(hashed, str):
            raise WebConfigError(f"basic_auth_users.{name}: must be a bcrypt hash")
        encoded = hashed.encode()
        try:
            bcrypt.checkpw(b"", encoded)  # as bcrypt.Cost in exporter-toolkit: is it a bcrypt hash at all
        except ValueError:
            raise WebConfigError(
                f'basic_auth_users.{name}: not a bcrypt hash (htpasswd -nBC 10 "" prints one)'
            ) from None
        users[str(name)] = encoded
    return users


def _headers(raw: object) -> dict[str, str]:
    headers = {}
    for name, value in _mapping(raw, "http_server_config.headers").items():
        if name not in ALLOWED_HEADERS:
            raise WebConfigError(f"http_server_config.headers: HTTP header {name!r} can not be configured")
        allowed = ALLOWED_HEADERS[name]
        if allowed and value not in allowed:
            raise WebConfigError(f"http_server_config.headers.{name}: expected one of {list(allowed)}, got {value!r}")
        headers[name] = str(value)
    return headers


def _rate_limit(raw: object) -> tuple[float, int] | None:
    section = _mapping(raw, "rate_limit")
    _unknown(section, {"interval", "burst"}, "rate_limit.")
    if not section.get("interval"):
        return None
    try:
        interval = parse_duration(str(section["interval"]))
    except ValueError as error:
        raise WebConfigError(f"rate_limit.interval: {error}") from None
    burst = section.get("burst", 0)
    if not isinstance(burst, int) or burst < 0:
        raise WebConfigError("rate_limit.burst: must be a whole number of requests")
    return interval, burst


def parse(text: str, path: str = "") -> WebConfig:
    """The web config in `text`; relative file paths are taken from `path`'s directory."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise WebConfigError(f"not YAML: {error}") from None
    raw = _mapping(raw, "the file")
    _unknown(raw, {"tls_server_config", "http_server_config", "basic_auth_users", "rate_limit"}, "")
    http_section = _mapping(raw.get("http_server_config"), "http_server_config")
    # http2 is accepted and changes nothing: the bridge speaks HTTP/1.1, which every scraper offers
    _unknown(http_section, {"http2", "headers"}, "http_server_config.")
    directory = Path(path).parent if path else Path(".")
    return WebConfig(
        path=path,
        tls=_tls_settings(_mapping(raw.get("tls_server_config"), "tls_server_config"), directory),
        users=_users(raw.get("basic_auth_users")),
        headers=_headers(http_section.get("headers")),
        rate_limit=_rate_limit(raw.get("rate_limit")),
    )


def load(path: str) -> WebConfig:
    """Read and check the file and, with TLS, its certificates. Raises WebConfigError."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise WebConfigError(f"cannot read {path}: {error.strerror or error}") from None
    config = parse(text, path)
    if config.tls is not None:
        ssl_context(config.tls)
    return config


@contextlib.contextmanager
def _as_file(pem: str) -> Iterator[str]:
    """An inline PEM as a private file for the ssl module, which loads keys only from files."""
    descriptor, name = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(pem)
        yield name
    finally:
        os.unlink(name)


def ssl_context(tls: TLSSettings) -> ssl.SSLContext:
    """The server context for these settings. Raises WebConfigError naming what failed to load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    legacy_suites = [CIPHER_SUITES[suite] for suite in tls.cipher_suites if suite in CIPHER_SUITES]
    if legacy_suites:
        context.set_ciphers(":".join(legacy_suites))
    _readable("cert_file", tls.cert_file)
    _readable("key_file", tls.key_file)
    with contextlib.ExitStack() as files:
        cert = tls.cert_file or files.enter_context(_as_file(tls.cert))
        key = tls.key_file or files.enter_context(_as_file(tls.key))
        try:
            context.load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as error:
            which = f"cert_file/key_file ({tls.cert_file}, {tls.key_file})" if tls.cert_file else "cert/key"
            raise WebConfigError(f"tls_server_config.{which}: failed to load the key pair: {error}") from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        _readable("client_ca_file", tls.client_ca_file)
        try:
            if tls.client_ca_file:
                context.load_verify_locations(cafile=tls.client_ca_file)
            elif tls.client_ca:
                context.load_verify_locations(cadata=tls.client_ca)
            else:
                context.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # as Go: the system's roots
        except (OSError, ssl.SSLError) as error:
            raise WebConfigError(f"tls_server_config.client_ca_file ({tls.client_ca_file}): {error}") from None
    return context


def _readable(key: str, path: str) -> None:
    """A file named by tls_server_config.<key> must be readable; else an error naming the key and the path."""
    if not path:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise WebConfigError(f"tls_server_config.{key}: cannot read {path}: {error.strerror or error}") from None


def _san_values(certificate: dict) -> list[str]:
    values = []
    for kind, value in certificate.get("subjectAltName", ()):
        if kind == "IP Address":
            with contextlib.suppress(ValueError):
                value = str(ipaddress.ip_address(value.strip()))  # Go's canonical form
        values.append(value)
    return values


def peer_allowed(tls: TLSSettings | None, certificate: dict | None) -> bool:
    """client_allowed_sans: the client certificate must name one of them (DNS, email, IP or URI)."""
    if tls is None or tls.client_allowed_sans is None:
        return True
    if not certificate:
        return False
    return any(value in tls.client_allowed_sans for value in _san_values(certificate))


def fingerprint(config: WebConfig) -> tuple:
    """Changes when any watched file changes on disk."""
    return file_marks(config.watched_files())


class Authenticator:
    """basic_auth_users, checked as exporter-toolkit checks them: bcrypt one at a time, answers cached."""

    CACHE_SIZE = 100

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self._lock = threading.Lock()  # bcrypt is built to be slow: one at a time, as exporter-toolkit
        self._cache: dict[tuple[str, bytes, bytes], bool] = {}

    def allowed(self, authorization: str | None) -> bool:
        """Whether an Authorization header names a user and their password. Slow (bcrypt): call it on a
        worker thread."""
        if not self.users:
            return True
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        known = user in self.users
        hashed = self.users.get(user, UNKNOWN_USER_HASH)
        key = (user, hashed, password)
        cached = self._cache.get(key)
        if cached is None:
            with self._lock:
                try:
                    cached = bcrypt.checkpw(password, hashed) and known
                except ValueError:
                    cached = False
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = cached
        return cached


def _basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user.decode("utf-8", "replace"), password


class RateLimiter:
    """A token bucket, as golang.org/x/time/rate: one token per `interval`, at most `burst` saved."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.burst, self.clock = interval, burst, clock
        self.tokens = float(burst)
        self.last = clock()

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) / self.interval)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
