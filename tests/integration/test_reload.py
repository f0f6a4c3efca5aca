"""A large mapping reload under a steady load: compiled off the loops that receive and serve, swapped in
at once, with no line lost and no scrape kept waiting."""

from __future__ import annotations

import signal
import socket
import threading
import time

from bench.big_mapping import generate
from tests.conftest import parse_samples, start_bridge

RULES = 3500
RATE = 20_000  # lines/s, 30 a datagram, over 300 names no rule matches: each walks every rule once
NAMES = 300


def steady_load(address: tuple[str, int], stop: threading.Event, sent: list[int]) -> None:
    lines = [f"reload.steady{i}:1|c" for i in range(NAMES)]
    datagrams = ["\n".join(lines[i : i + 30]).encode() for i in range(0, NAMES, 30)]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        started = time.monotonic()
        while not stop.is_set():
            elapsed = time.monotonic() - started
            while sent[0] < elapsed * RATE:
                sock.sendto(datagrams[(sent[0] // 30) % len(datagrams)], address)
                sent[0] += 30
            time.sleep(0.002)


def received(text: str) -> float:
    return sum(value for (name, _), value in parse_samples(text).items() if name.startswith("reload_steady"))


def test_a_large_reload_under_load_loses_no_line_and_keeps_scrapes_prompt(tmp_path, record_property, each_worker_count):
    mapping = tmp_path / "big.yml"
    mapping.write_text(generate(RULES))
    bridge = start_bridge(f"--statsd.mapping-config={mapping}")
    try:
        sent, stop = [0], threading.Event()
        load = threading.Thread(target=steady_load, args=(bridge.addresses["udp"], stop, sent))
        load.start()
        time.sleep(1.5)  # every name seen, routes cached: the steady state
        mapping.write_text(generate(RULES, seed=1))  # another file of the same size
        reload_sent = time.monotonic()
        bridge.process.send_signal(signal.SIGHUP)
        waits = []
        try:
            while not any("mapping reloaded" in line for line in bridge.log):
                assert time.monotonic() - reload_sent < 30, "".join(bridge.log)
                started = time.monotonic()
                bridge.metrics()
                waits.append(time.monotonic() - started)
                time.sleep(0.05)
            reload_took = time.monotonic() - reload_sent
            time.sleep(1.0)  # and the load goes on with the new rules
        finally:
            stop.set()
            load.join()
        assert any(f"rules={RULES}" in line for line in bridge.log if "mapping reloaded" in line)
        deadline = time.monotonic() + 10
        while received(bridge.metrics()) < sent[0] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert received(bridge.metrics()) == sent[0]
        record_property(
            "summary",
            f"reload of {RULES} rules under {RATE:,} lines/s, workers {each_worker_count}: {reload_took:.2f} s, "
            f"{len(waits)} scrapes meanwhile, the slowest {max(waits):.3f} s, {sent[0]:,} lines, none lost",
        )
        assert max(waits) < 0.5, f"the slowest scrape during the reload took {max(waits):.3f} s"
    finally:
        bridge.stop()
