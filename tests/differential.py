"""Run statsd_exporter (the reference) and the bridge side by side and compare what they serve.

Both get the same flags and mapping file and the same datagrams, in the same order, from one
socket each. The comparison covers every family either serves, except each one's own
self-metrics: names, TYPE, HELP, label sets, values (quantiles within their error) and buckets.
"""

from __future__ import annotations

import math
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Mapper
from bridge.mapping.schema import MappingConfig
from bridge.parsing.line import TagStats, parse_line
from bridge.series.quantiles import RELATIVE_ACCURACY
from tests.conftest import (
    BridgeProcess,
    free_port,
    free_udp_and_tcp_port,
    parse_sample_line,
    require,
    start_bridge,
    worker_count,
)

# The families each side keeps about itself: never part of the comparison (tests/external/test_self_metrics.py
# checks the counterparts instead).
OWN_PREFIXES = (
    "statsd_exporter_", "statsd_metric_mapper_cache_", "statsd_bridge_", "go_", "process_", "promhttp_", "python_",
)  # fmt: skip
# Sent after each batch; once both serve it, both have handled everything before it
# (one socket each, loopback keeps the order).
SENTINEL = "differential_sentinel"


def pace() -> float:
    """Seconds between two datagrams of a test: with receiving workers, datagrams closer than a few
    milliseconds may be read by two workers in either order (docs/deployment.md), which would make the
    first type of a conflict a toss-up."""
    return 0.003 if worker_count() > 1 else 0.0


def accepts(binary: list[str], mapping: Path) -> bool:
    """Whether a program's --check-config accepts a mapping file."""
    result = subprocess.run(
        [*binary, "--check-config", f"--statsd.mapping-config={mapping}"], capture_output=True, timeout=30
    )
    return result.returncode == 0


def reference_binary() -> str:
    """statsd_exporter's path: STATSD_EXPORTER, else found on PATH; skip without it, fail in CI."""
    return require(
        os.environ.get("STATSD_EXPORTER") or "statsd_exporter", "set STATSD_EXPORTER to its path, or put it on PATH"
    )


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str = ""
    # (sample name, frozenset of labels) -> value
    samples: dict[tuple[str, frozenset], float] = field(default_factory=dict)


def parse_families(text: str) -> dict[str, Family]:
    """Families of a text exposition (0.0.4), sample names exactly as written."""
    families: dict[str, Family] = {}
    current: Family | None = None
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, keyword, name, *rest = line.split(" ", 3)
            current = families.setdefault(name, Family(name))
            if keyword == "HELP":
                current.help = rest[0] if rest else ""
            else:
                current.type = rest[0]
            continue
        if not line or line.startswith("#"):
            continue
        name, labels, value = parse_sample_line(line)
        owner = current if current is not None and name.startswith(current.name) else None
        if owner is None:
            owner = families.setdefault(name, Family(name))
        owner.samples[(name, frozenset(labels.items()))] = value
    return families


def user_families(text: str) -> dict[str, Family]:
    return {n: f for n, f in parse_families(text).items() if not n.startswith(OWN_PREFIXES) and n != SENTINEL}


class Reference:
    """A statsd_exporter process on free loopback ports."""

    def __init__(self, binary: str, args: list[str]) -> None:
        # a port found free may be taken before statsd_exporter binds it (other tests run beside this one):
        # then it is started again on other ports
        for attempt in range(3):
            output = self._start(binary, args)
            if output is None:
                return
            if "address already in use" not in output or attempt == 2:
                raise AssertionError("statsd_exporter did not start: " + output)

    def _start(self, binary: str, args: list[str]) -> str | None:
        """Start it on free ports; None once it serves, else what it printed before it ended."""
        self.udp_port = free_udp_and_tcp_port()
        self.web_port = free_port()
        while self.web_port == self.udp_port:  # its TCP listener takes the UDP port's number too
            self.web_port = free_port()
        self.process = subprocess.Popen(
            [
                binary,
                f"--statsd.listen-udp=127.0.0.1:{self.udp_port}",
                f"--statsd.listen-tcp=127.0.0.1:{self.udp_port}",
                f"--web.listen-address=127.0.0.1:{self.web_port}",
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                self.metrics()
                return None
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    return self.process.stdout.read()
                time.sleep(0.05)

    @property
    def udp(self) -> tuple[str, int]:
        return ("127.0.0.1", self.udp_port)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=10) as response:
            return response.read().decode()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def sampled_families(lines: list[str], mapping: MappingConfig | None = None) -> frozenset[str]:
    """The families that take sampled observations (`|ms|@0.1`) from these lines, by the bridge's own
    parser and mapper: their `_sum` is compared with a tolerance (see compare)."""
    mapper = Mapper(mapping)
    names: set[str] = set()
    for line in lines:
        try:
            samples = parse_line(line, TagStats())[0]
        except ValueError:
            continue
        for sample in samples:
            if sample.weight > 1:
                names.update(target.name for target in mapper.map(sample.name, sample.kind).targets)
    return frozenset(names)


@dataclass
class Pair:
    reference: Reference
    bridge: BridgeProcess
    # False where the mapping drops or reshapes the sentinel: then wait on packet counts and a flush
    sentinel: bool = True
    mapping: MappingConfig | None = None
    sent: int = 0
    packets: int = 0
    lines: list[str] = field(default_factory=list)  # every line sent, for sampled()

    def sampled(self) -> frozenset[str]:
        return sampled_families(self.lines, self.mapping)

    def send(self, datagrams: list[str | bytes]) -> None:
        """Send the datagrams to both, then wait until both have handled them."""
        for datagram in datagrams:
            text = datagram if isinstance(datagram, str) else datagram.decode("utf-8", "replace")
            self.lines.extend(text.split("\n"))
        self.sent += 1
        marker = f"{SENTINEL}:{self.sent}|g".encode()
        payloads = [d.encode() if isinstance(d, str) else d for d in datagrams] + [marker]
        self.packets += len(payloads)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for target in (self.reference.udp, self.bridge.addresses["udp"]):
                for payload in payloads:
                    sock.sendto(payload, target)
                    # let a slow peer keep up (loopback drops what the buffer can't hold); with workers, datagrams
                    # apart as a client's are, so that the order of a type conflict is the sender's
                    time.sleep(pace())
        self._wait(self.reference.metrics, "statsd_exporter_udp_packets_total")
        self._wait(self.bridge.metrics, "statsd_bridge_udp_packets_total")
        if not self.sentinel:
            time.sleep(0.6)  # statsd_exporter applies events in batches, at least every 200 ms

    def _wait(self, scrape, packets_metric: str) -> None:
        deadline = time.monotonic() + 10
        sentinel = re.compile(rf"^{SENTINEL}(\{{.*\}})? {self.sent}$", re.M)
        packets = f"\n{packets_metric} {self.packets}\n"
        while True:
            try:
                text = scrape()
            except urllib.error.HTTPError as error:
                if error.code == 500:
                    return  # statsd_exporter fails every scrape from now on: families() says so
                raise
            if packets in text and (not self.sentinel or sentinel.search(text)):
                return
            assert time.monotonic() < deadline, f"a peer never handled the datagrams: {packets.strip()}"
            time.sleep(0.05)

    def families(self) -> tuple[dict[str, Family], dict[str, Family]]:
        return user_families(self.reference.metrics()), user_families(self.bridge.metrics())

    def stop(self) -> None:
        self.reference.stop()
        self.bridge.stop()


def start_pair(args: list[str], mapping: str | None = None, workdir: Path | None = None, sentinel: bool = True) -> Pair:
    """Both processes with the same flags (statsd_exporter's spelling) and mapping file."""
    args = list(args)
    if mapping is not None:
        assert workdir is not None
        path = workdir / "mapping.yml"
        path.write_text(mapping)
        args.append(f"--statsd.mapping-config={path}")
    reference = Reference(reference_binary(), args)
    try:
        bridge = start_bridge(*args)
    except BaseException:
        reference.stop()
        raise
    return Pair(reference, bridge, sentinel, load_mapping(mapping) if mapping is not None else None)


def compare(
    reference: dict[str, Family], bridge: dict[str, Family], sampled: frozenset[str] = frozenset()
) -> list[str]:
    """Differences as readable lines; [] when both serve the same.

    Every value must be the same to the last bit, but for two: quantiles (statsd_exporter's CKMS
    stream against the bridge's sketch, both at the same rank), and the `_sum` of the families in
    `sampled`, which took sampled observations: statsd_exporter adds a value int(1/rate) times, the
    bridge multiplies it once. With receiving workers, every `_sum`, counter and gauge too: each worker
    adds its own values first, so floats are added in another order (whole numbers stay exact)."""
    problems = []
    for name in sorted(set(reference) | set(bridge)):
        ours, theirs = bridge.get(name), reference.get(name)
        if theirs is None:
            problems.append(f"{name}: only the bridge serves it ({ours.type})")
            continue
        if ours is None:
            problems.append(f"{name}: only statsd_exporter serves it ({theirs.type})")
            continue
        if ours.type != theirs.type:
            problems.append(f"{name}: TYPE {ours.type} here, {theirs.type} in statsd_exporter")
        if ours.help != theirs.help:
            problems.append(f"{name}: HELP {ours.help!r} here, {theirs.help!r} in statsd_exporter")
        for key in sorted(set(ours.samples) | set(theirs.samples), key=repr):
            mine, reference_value = ours.samples.get(key), theirs.samples.get(key)
            if mine is None or reference_value is None:
                side = "statsd_exporter" if mine is None else "the bridge"
                problems.append(f"{name}: sample {key[0]}{dict(key[1])} only in {side}")
                continue
            floor = 1e-300
            if "quantile" in dict(key[1]):
                tolerance = RELATIVE_ACCURACY * 1.01
            elif key[0] == name + "_sum" and name in sampled:
                tolerance = 1e-12
            elif worker_count() > 1 and (key[0] == name + "_sum" or ours.type in ("counter", "gauge")):
                # each worker adds its own values first: floats are added in another order (whole numbers stay
                # exact), and a sum that cancels to almost nothing keeps rounding of its terms' size
                tolerance, floor = 1e-12, 1e-12
            else:
                tolerance = 0.0
            if not _same(mine, reference_value, tolerance, floor):
                problems.append(
                    f"{name}: {key[0]}{dict(key[1])} = {mine!r} here, {reference_value!r} in statsd_exporter"
                )
    return problems


def _same(a: float, b: float, tolerance: float, floor: float = 1e-300) -> bool:
    """Equal to the last bit, or within a relative tolerance. A quantile's is the sketch's relative
    accuracy: both pick the observation at the same rank (quantiles.py), the bridge reports it to within
    RELATIVE_ACCURACY. The suite keeps streams short enough that client_golang's summaries answer
    exactly (no compression below a few hundred observations)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or (tolerance > 0 and math.isclose(a, b, rel_tol=tolerance, abs_tol=floor))
