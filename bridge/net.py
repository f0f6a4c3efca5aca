"""Listen addresses: `host:port`, `:port` or `[v6]:port`, as statsd_exporter's flags take them."""

from __future__ import annotations

import socket


def parse_address(text: str) -> tuple[str, int]:
    """(host, port) of an address flag; host "" means every interface. Raises ValueError."""
    host, colon, port_text = text.rpartition(":")
    if not colon:
        raise ValueError(f"{text!r} has no port: use host:port, :port or [v6]:port")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"{text!r}: an IPv6 host goes in brackets, e.g. [::1]:9125")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"{text!r}: put an IPv6 host in brackets, e.g. [{host}]:{port_text}")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be a number from 0 to 65535")
    return host, int(port_text)


def format_address(sockaddr: tuple) -> str:
    host, port = sockaddr[0], sockaddr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _ipv6_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::", 0))
        return True
    except OSError:
        return False


def resolve_bind_address(host: str, port: int, kind: int) -> tuple[int, tuple]:
    """(family, sockaddr) to bind; an empty host means every interface, IPv6 and IPv4 where possible."""
    if not host:
        if socket.has_ipv6 and _ipv6_works():
            return socket.AF_INET6, ("::", port, 0, 0)
        return socket.AF_INET, ("0.0.0.0", port)
    infos = socket.getaddrinfo(host, port, type=kind, flags=socket.AI_PASSIVE)
    family, _, _, _, address = infos[0]
    return family, address


def bound_socket(host: str, port: int, kind: int, reuse_port: bool = False) -> socket.socket:
    """A socket bound to host:port (TCP sockets also get SO_REUSEADDR, IPv6 ones serve IPv4 too).

    reuse_port: SO_REUSEPORT, so that several processes bind the same port and the kernel spreads
    datagrams (and connections) over them by a hash of the source address and port."""
    family, address = resolve_bind_address(host, port, kind)
    sock = socket.socket(family, kind)
    try:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def listen_backlog() -> int:
    """The longest accept queue the kernel allows (net.core.somaxconn), which Go's net.Listen asks for too:
    a burst of clients connecting at once waits in it rather than having its SYNs dropped and retried a
    second later."""
    try:
        with open("/proc/sys/net/core/somaxconn") as limit:
            return int(limit.read())
    except (OSError, ValueError):
        return socket.SOMAXCONN


def listen_overflows() -> int | None:
    """The kernel's TcpExt ListenOverflows (/proc/net/netstat): connections dropped because a listening
    socket's accept queue was full, counted for the whole network namespace; None where it is not told."""
    try:
        with open("/proc/net/netstat") as netstat:
            lines = netstat.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            counts = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            if "ListenOverflows" in counts:
                return int(counts["ListenOverflows"])
    return None
