"""Listening sockets: StatsD TCP and the web endpoint listen with the kernel's longest accept queue, so a
crowd connecting at once waits in it rather than having SYNs dropped; the kernel's accept-queue overflows
are a self-metric; and a web endpoint that swaps its TLS context on each certificate renewal keeps one
listener and no more descriptors."""

from __future__ import annotations

import asyncio
import gc
import os
import selectors
import socket
import ssl
import struct
import time
import weakref

import pytest

from bridge.net import bound_socket, listen_backlog
from bridge.web.http import Response, Server
from tests.conftest import sample, start_bridge

TOTAL_RETRANS = 100  # struct tcp_info: the offset of tcpi_total_retrans (a u32), SYNs resent included


def connect_at_once(address: tuple[str, int], clients: int, payload: bytes) -> int:
    """Open `clients` connections at once, send each the payload and close them; the SYNs the kernel had to
    resend (a full accept queue drops a SYN, resent a second later)."""
    sockets = []
    selector = selectors.DefaultSelector()
    try:
        for _ in range(clients):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(client)
            client.setblocking(False)
            client.connect_ex(address)
            selector.register(client, selectors.EVENT_WRITE)
        waiting = len(sockets)
        deadline = time.monotonic() + 60
        while waiting:
            assert time.monotonic() < deadline, f"{waiting} of {clients} clients still connecting"
            for key, _ in selector.select(1.0):
                client = key.fileobj
                selector.unregister(client)
                waiting -= 1
                client.setblocking(True)
                client.sendall(payload)
        info = [client.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TOTAL_RETRANS + 4) for client in sockets]
        return sum(struct.unpack_from("I", raw, TOTAL_RETRANS)[0] for raw in info)
    finally:
        for client in sockets:
            client.close()
        selector.close()


@pytest.mark.parametrize(("listener", "workers"), [("tcp", 1), ("tcp", 2), ("web", 1)])
def test_a_crowd_connecting_at_once_waits_in_the_accept_queue(listener, workers):
    """asyncio's default backlog (100) dropped the SYNs of the 101st client on: each waited a second for its
    retry, and 5,000 clients took 46 s."""
    backlog = listen_backlog()
    if backlog < 200:
        pytest.skip(f"net.core.somaxconn is {backlog}: too short an accept queue to tell from asyncio's 100")
    clients = min(1000, backlog - 50)
    bridge = start_bridge(f"--statsd.workers={workers}", "--web.read-header-timeout=60s")
    try:
        resent = connect_at_once(bridge.addresses[listener], clients, b"crowd:1|c\n" if listener == "tcp" else b"")
        assert resent == 0, f"{resent} SYNs resent: the accept queue overflowed"
        if listener == "tcp":
            samples = bridge.wait_for(lambda s: sample(s, "crowd") == clients, timeout=30)
        else:
            samples = bridge.wait_for(lambda s: sample(s, "statsd_bridge_http_connections_total") > clients)
        assert samples is not None, bridge.metrics()
    finally:
        bridge.stop()


def test_accept_queue_overflows_are_a_self_metric(bridge):
    """The kernel's count is the network namespace's, which the test shares with the bridge: an overflow of a
    listener of the test's own shows in it."""
    before = sample(bridge.samples(), "statsd_bridge_listen_overflows_total")
    assert before is not None
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)  # an accept queue of one, never accepted from
        clients = [socket.socket() for _ in range(4)]
        try:
            for client in clients:
                client.setblocking(False)
                client.connect_ex(full.getsockname())
            samples = bridge.wait_for(lambda s: sample(s, "statsd_bridge_listen_overflows_total") > before)
        finally:
            for client in clients:
                client.close()
    assert samples is not None, bridge.metrics()


def open_files(pid: int) -> list[str]:
    return sorted(os.readlink(f"/proc/{pid}/fd/{name}") for name in os.listdir(f"/proc/{pid}/fd"))


def test_certificate_renewals_leave_one_listener_and_no_more_descriptors(tmp_path):
    import trustme

    authority = trustme.CA()
    certificate = authority.issue_cert("localhost")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    certificate.cert_chain_pems[0].write_to_path(cert)
    certificate.private_key_pem.write_to_path(key)
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
    bridge = start_bridge(f"--web.config.file={web_config}")
    try:
        pid = bridge.process.pid
        time.sleep(1.0)
        before = open_files(pid)
        for renewal in range(1, 6):
            stamp = time.time() + renewal  # a new modification time: a renewal, as the watch sees it
            os.utime(cert, (stamp, stamp))
            deadline = time.monotonic() + 10
            while sum("web config reloaded" in line for line in bridge.log) < renewal:
                assert time.monotonic() < deadline, "".join(bridge.log[-10:])
                time.sleep(0.1)
        context = ssl.create_default_context()
        authority.configure_trust(context)
        with (
            socket.create_connection(bridge.addresses["web"], timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.getpeercert() is not None  # served with the context of the last renewal
        deadline = time.monotonic() + 5
        while open_files(pid) != before:  # the connection just closed may take a moment to go
            assert time.monotonic() < deadline, (before, open_files(pid))
            time.sleep(0.1)
    finally:
        bridge.stop()


async def _listeners_alive_after_swaps(context: ssl.SSLContext, swaps: int) -> list[bool]:
    """Whether each listener the server had is still in memory, its last one serving."""

    async def answer(_request):
        return Response(200, [], b"")

    server = Server(answer)
    await server.listen(bound_socket("127.0.0.1", 0, socket.SOCK_STREAM), context)
    listeners = [weakref.ref(server.listener)]
    for _ in range(swaps):
        await server.serve_with(context)
        listeners.append(weakref.ref(server.listener))
    await asyncio.sleep(0.1)  # the closed ones' callbacks run
    gc.collect()
    try:
        return [listener() is not None for listener in listeners]
    finally:
        await server.close()


def test_a_server_that_swaps_its_tls_context_holds_no_closed_listener():
    import trustme

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert("localhost").configure_cert(context)
    assert asyncio.run(_listeners_alive_after_swaps(context, 5)) == [False] * 5 + [True]
