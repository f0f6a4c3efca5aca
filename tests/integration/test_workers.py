"""--statsd.workers: receiving processes that share the sockets, one store, supervision and shutdown,
through a real bridge process and real sockets."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from tests.conftest import sample, start_bridge


def worker_pids(bridge) -> list[int]:
    """The bridge's worker processes, as `ps` shows them (children running `-m bridge.workers`)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                command = cmdline.read().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == bridge.process.pid and b"bridge.workers" in command:
            pids.append(int(entry))
    return sorted(pids)


def lines_by_worker(samples) -> dict[str, float]:
    return {
        dict(labels)["worker"]: value
        for (name, labels), value in samples.items()
        if name == "statsd_bridge_worker_lines_total"
    }


def test_workers_show_in_ps_and_one_busy_client_uses_both(bridge_factory):
    bridge = bridge_factory("--statsd.workers=2")
    pids = worker_pids(bridge)
    assert len(pids) == 2
    commands = []
    for pid in pids:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            commands.append(cmdline.read().split(b"\0"))
    assert sorted(command[command.index(b"--worker") + 1] for command in commands) == [b"1/2", b"2/2"]
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # one client: one source port
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            for _ in range(200):
                sock.sendto(b"busy:1|c", bridge.addresses["udp"])
                sent += 1
            time.sleep(0.001)
    samples = bridge.wait_for(lambda s: sample(s, "busy") == sent, timeout=10)
    assert samples is not None, f"not every line arrived: {sample(bridge.samples(), 'busy')} of {sent}"
    by_worker = lines_by_worker(samples)
    assert set(by_worker) == {"1", "2"} and all(count > 0 for count in by_worker.values()), by_worker
    assert sum(by_worker.values()) == sent == sample(samples, "statsd_bridge_lines_total")
    assert sample(samples, "statsd_bridge_workers") == 2


def test_a_line_sent_before_a_scrape_is_in_that_scrape(bridge_factory):
    bridge = bridge_factory("--statsd.workers=2")
    for round_number in range(1, 21):
        bridge.send_udp(f"fresh:{round_number}|g", f"count:1|c|#round:{round_number}")
        samples = bridge.samples()  # no waiting: the scrape asks the workers first
        assert sample(samples, "fresh") == round_number
        assert sample(samples, "count", round=str(round_number)) == 1


def test_order_of_one_clients_gauge_updates(bridge_factory):
    """In one datagram and on one TCP connection, lines apply in order. Datagrams read by different workers:
    changes (+N, -N) add up whatever the order, and of two sets the later read wins."""
    bridge = bridge_factory("--statsd.workers=2")
    bridge.send_udp("\n".join(f"in_one:{value}|g" for value in range(1, 101)))
    bridge.send_tcp("".join(f"on_tcp:{value}|g\n" for value in range(1, 101)))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(500):
            sock.sendto(b"changed:+2|g", bridge.addresses["udp"])
            sock.sendto(b"changed:-1|g", bridge.addresses["udp"])
        for value in range(1, 200):
            sock.sendto(f"set:{value}|g".encode(), bridge.addresses["udp"])
        time.sleep(0.05)  # the last set, read well after the others
        sock.sendto(b"set:1000|g", bridge.addresses["udp"])
    samples = bridge.wait_for(lambda s: sample(s, "set") == 1000 and sample(s, "changed") == 500, timeout=10)
    assert samples is not None, bridge.metrics()
    assert sample(samples, "in_one") == 100
    assert sample(samples, "on_tcp") == 100
    by_worker = lines_by_worker(samples)
    assert all(count > 0 for count in by_worker.values()), by_worker


def test_tcp_and_unixgram_with_workers(bridge_factory, tmp_path):
    path = str(tmp_path / "dsd.sock")
    bridge = bridge_factory("--statsd.workers=2", f"--statsd.listen-unixgram={path}")
    for connection in range(8):
        bridge.send_tcp(f"tcp.lines:1|c|#conn:{connection % 2}\n" * 50)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        for _ in range(100):
            sock.sendto(b"unix.lines:1|c", path)
    samples = bridge.wait_for(lambda s: sample(s, "unix_lines") == 100, timeout=10)
    assert samples is not None
    assert sample(samples, "tcp_lines", conn="0") == sample(samples, "tcp_lines", conn="1") == 200
    assert sample(samples, "statsd_bridge_tcp_connections_total") == 8
    assert sample(samples, "statsd_bridge_unixgram_packets_total") == 100


def test_a_killed_worker_is_started_again_counted_and_logged_and_the_socket_keeps_queueing(bridge_factory):
    bridge = bridge_factory("--statsd.workers=2")
    bridge.send_udp("before:1|c")
    assert bridge.wait_for(lambda s: sample(s, "before") == 1) is not None
    victim = worker_pids(bridge)[0]
    os.kill(victim, signal.SIGKILL)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(100):  # while one worker is dead, and while it starts again
            sock.sendto(b"during:1|c", bridge.addresses["udp"])
            time.sleep(0.002)
    samples = bridge.wait_for(
        lambda s: sample(s, "statsd_bridge_worker_restarts_total") == 1 and len(worker_pids(bridge)) == 2,
        timeout=10,
    )
    assert samples is not None, "".join(bridge.log)
    assert victim not in worker_pids(bridge)
    assert any("worker exited; starting it again" in line and "signal 9" in line for line in bridge.log)
    assert bridge.wait_for(lambda s: sample(s, "during") == 100, timeout=10) is not None
    assert sample(bridge.samples(), "before") == 1  # handed over before the kill: kept in the store


def test_workers_that_keep_dying_stop_the_bridge_with_a_reason():
    bridge = start_bridge("--statsd.workers=2")
    try:
        killed: set[int] = set()
        deadline = time.monotonic() + 60
        while bridge.process.poll() is None and time.monotonic() < deadline:
            for pid in set(worker_pids(bridge)) - killed:
                killed.add(pid)
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        assert bridge.process.wait(timeout=10) == 1
        # five restarts are tolerated within a minute, the sixth death is not
        assert any("workers keep dying: 6 restarts in 60 s" in line for line in bridge.log), "".join(bridge.log)
        assert 6 <= len(killed) <= 7  # the two first workers and those started again
    finally:
        if bridge.process.poll() is None:
            bridge.process.kill()


@pytest.mark.parametrize("whole_group", [False, True], ids=["main-process", "every-process"])
def test_sigterm_drains_every_worker(whole_group):
    """What the workers read before the signal reaches the relay before the bridge exits, whether the signal
    reaches the main process only or every process of the bridge (systemd's stop, a terminal's Ctrl-C)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(5)
    relay = f"127.0.0.1:{receiver.getsockname()[1]}"
    bridge = start_bridge("--statsd.workers=2", f"--statsd.relay.address={relay}")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for index in range(300):
                sock.sendto(f"drained.{index}:1|c".encode(), bridge.addresses["udp"])
        if whole_group:
            for pid in worker_pids(bridge):
                os.kill(pid, signal.SIGTERM)
        bridge.process.send_signal(signal.SIGTERM)
        assert bridge.process.wait(timeout=15) == 0
        relayed = set()
        try:
            while len(relayed) < 300:
                relayed.update(receiver.recv(65535).split(b"\n"))
        except TimeoutError:
            pass
        assert len(relayed - {b""}) == 300
    finally:
        receiver.close()
        if bridge.process.poll() is None:
            bridge.process.kill()


def test_a_bad_worker_count_names_the_flag():
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "bridge", "--statsd.workers=many", "--check-config"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "--statsd.workers" in result.stderr and "auto" in result.stderr
