"""`--web.config.file` read and checked: TLS, basic auth, response headers and a rate limit, in
exporter-toolkit's format. (bridge/web/tls.py builds the TLS context; bridge/web/access.py enforces the
users and the rate limit.)

The file is the one node_exporter and the other Prometheus exporters read (exporter-toolkit's web/
package): the same keys, the same defaults (TLS 1.2 to 1.3), the same checks (only five response
headers, bcrypt hashes, a client CA needs a client_auth_type). Where Python's ssl module cannot do what
Go's crypto/tls does, the key is refused at start-up with the reason rather than quietly weakened.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
import yaml

from bridge.durations import parse_duration


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


def read(path: str) -> WebConfig:
    """Read and check the file (its certificates are loaded by bridge/web/tls.py). Raises WebConfigError."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise WebConfigError(f"cannot read {path}: {error.strerror or error}") from None
    return parse(text, path)
