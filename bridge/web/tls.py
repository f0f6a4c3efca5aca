"""The TLS of the web endpoint: the server context built from tls_server_config (once per load of the
file, and that context is the one served), and the check of a client certificate's SANs."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import ssl
import tempfile
from collections.abc import Iterator
from typing import NamedTuple

from bridge.web.web_config import CIPHER_SUITES, CLIENT_AUTH, TLS_VERSIONS, TLSSettings, WebConfig, WebConfigError, read


class Loaded(NamedTuple):
    """A web config file read and checked, with the TLS context of its certificates (None without TLS)."""

    config: WebConfig
    context: ssl.SSLContext | None = None


def load(path: str) -> Loaded:
    """Read and check the file and, with TLS, load its certificates. Raises WebConfigError."""
    config = read(path)
    return Loaded(config, server_context(config.tls) if config.tls is not None else None)


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


def server_context(tls: TLSSettings) -> ssl.SSLContext:
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
