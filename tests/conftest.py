"""Shared helpers: an in-process pipeline for stage tests, a real bridge process for end-to-end tests."""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.exposition.self_metrics import Sources, reserved_names, self_registry
from bridge.exposition.text import render_text
from bridge.ingest import Ingest
from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Mapper
from bridge.receiving.batches import DatagramCounts
from bridge.receiving.tcp import TCPCounts
from bridge.series.store import Store
from bridge.stats import Stats


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Pipeline:
    ingest: Ingest
    store: Store
    stats: Stats
    registry: object
    clock: FakeClock

    def send(self, *lines: str) -> None:
        self.ingest.packet("\n".join(lines).encode())

    def text(self) -> str:
        self.store.fold_pending()  # as the server does before each render
        return render_text(self.store, self.registry, self.ingest.now).decode()

    def samples(self) -> dict[tuple[str, frozenset], float]:
        return parse_samples(self.text())

    def types(self) -> dict[str, str]:
        return parse_types(self.text())


def pipeline(mapping_yaml: str = "", utf8_names: bool = False) -> Pipeline:
    config = load_mapping(mapping_yaml, "test.yml", utf8_names)
    clock = FakeClock()
    stats, store = Stats(), Store(clock)
    ingest = Ingest(Mapper(config), store, stats, clock)
    registry = self_registry(
        Sources(stats, store, DatagramCounts(), DatagramCounts(), TCPCounts(), lambda: ingest.mapper)
    )
    store.reserve(reserved_names(registry))
    return Pipeline(ingest, store, stats, registry, clock)


_SAMPLE_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def _parse_labels(text: str, i: int) -> tuple[dict[str, str], int]:
    """Labels from text[i] == "{" to the matching "}", honouring escapes; returns (labels, index after)."""
    labels: dict[str, str] = {}
    i += 1
    while text[i] != "}":
        name = _SAMPLE_NAME.match(text, i)
        assert name and text[name.end()] == "=" and text[name.end() + 1] == '"', text
        i, value = name.end() + 2, []
        while text[i] != '"':
            if text[i] == "\\":
                value.append(_LABEL_ESCAPES[text[i + 1]])
                i += 2
            else:
                value.append(text[i])
                i += 1
        labels[name.group()] = "".join(value)
        i += 1
        if text[i] == ",":
            i += 1
    return labels, i + 1


def parse_samples(text: str) -> dict[tuple[str, frozenset], float]:
    """{(sample name, frozenset of label pairs): value} of a text exposition, names exactly as written.

    prometheus_client's parser renames counter samples to *_total, which would hide
    the very thing under test, so this reads the lines itself.
    """
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, labels, value = parse_sample_line(line)
        key = (name, frozenset(labels.items()))
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = value
    return samples


def parse_sample_line(line: str) -> tuple[str, dict[str, str], float]:
    """(sample name, labels, value) of one sample line of the text format."""
    name = _SAMPLE_NAME.match(line)
    assert name, line
    labels, i = ({}, name.end())
    if line[i] == "{":
        labels, i = _parse_labels(line, i)
    return name.group(), labels, float(line[i:].split()[0])


def parse_types(text: str) -> dict[str, str]:
    return {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE ")}


def sample(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@dataclass
class BridgeProcess:
    process: subprocess.Popen
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    telemetry_path: str = "/metrics"

    @property
    def web(self) -> str:
        host, port = self.addresses["web"]
        return f"http://{host}:{port}"

    def get(self, path: str = "/metrics", headers: dict | None = None) -> tuple[int, dict, bytes]:
        request = urllib.request.Request(self.web + path, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def metrics(self) -> str:
        status, _, body = self.get(self.telemetry_path)
        assert status == 200
        return body.decode()

    def samples(self) -> dict:
        return parse_samples(self.metrics())

    def wait_for(self, predicate, timeout: float = 5.0):
        """Scrape until predicate(samples) is truthy; UDP gives no receipt, so poll."""
        deadline = time.monotonic() + timeout
        while True:
            samples = self.samples()
            if predicate(samples):
                # A scrape renders the series, then the self-metrics, while the event loop keeps
                # going: a count can run ahead of the series of the same datagram. Once it holds,
                # one more scrape sees the whole datagram.
                return self.samples()
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def send_udp(self, *payloads: bytes | str) -> None:
        host, port = self.addresses["udp"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for payload in payloads:
                sock.sendto(payload.encode() if isinstance(payload, str) else payload, (host, port))

    def send_tcp(self, payload: bytes | str) -> None:
        with socket.create_connection(self.addresses["tcp"], timeout=5) as sock:
            sock.sendall(payload.encode() if isinstance(payload, str) else payload)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout=10)


_LISTENING = re.compile(r"msg=listening listener=(\w+) address=(\S+)")


def _listening(line: str) -> tuple[str, str]:
    """(listener, address) of a 'listening' log line, logfmt or JSON; ("", "") for other lines."""
    if line.startswith("{"):
        fields = json.loads(line)
        return (fields["listener"], fields["address"]) if fields.get("msg") == "listening" else ("", "")
    found = _LISTENING.search(line)
    return (found.group(1), found.group(2)) if found else ("", "")


# The receiving worker counts the suites that promise one process's answers run with: a module that
# says `pytestmark = pytest.mark.usefixtures("each_worker_count")` runs every test once per count, and
# start_bridge gives the bridges it starts meanwhile that --statsd.workers.
WORKER_COUNTS = (1, 2)
_workers = [1]


@pytest.fixture(scope="module", params=WORKER_COUNTS, ids=[f"workers{n}" for n in WORKER_COUNTS])
def each_worker_count(request: pytest.FixtureRequest):
    _workers[0] = request.param
    yield request.param
    _workers[0] = 1


def worker_count() -> int:
    """The --statsd.workers the bridges of the running test get (each_worker_count)."""
    return _workers[0]


def start_bridge(*args: str, program: tuple[str, ...] = ("-m", "bridge")) -> BridgeProcess:
    if _workers[0] > 1 and not any(arg.startswith(("--statsd.workers", "--statsd-workers")) for arg in args):
        args = (*args, f"--statsd.workers={_workers[0]}")
    command = [
        sys.executable,
        *program,
        "--statsd-listen-udp",
        "127.0.0.1:0",
        "--statsd-listen-tcp",
        "127.0.0.1:0",
        "--web-listen-address",
        "127.0.0.1:0",
        *args,
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    bridge = BridgeProcess(process)
    for flag, value in itertools.pairwise(args):
        if flag in ("--web-telemetry-path", "--web.telemetry-path"):
            bridge.telemetry_path = value
    for arg in args:
        if arg.startswith(("--web-telemetry-path=", "--web.telemetry-path=")):
            bridge.telemetry_path = arg.partition("=")[2]
    started = threading.Event()

    def read_log() -> None:
        for line in process.stderr:
            bridge.log.append(line)
            listener, address = _listening(line)
            if listener and listener != "unixgram":
                host, _, port = address.rpartition(":")
                bridge.addresses[listener] = (host.strip("[]"), int(port))
            if "statsd-bridge started" in line:
                started.set()
        started.set()

    threading.Thread(target=read_log, daemon=True).start()
    if not started.wait(15) or process.poll() is not None:
        process.kill()
        raise AssertionError("bridge did not start:\n" + "".join(bridge.log))
    return bridge


@pytest.fixture
def bridge_factory(request: pytest.FixtureRequest):
    started: list[BridgeProcess] = []
    # promtool where other programs may run (tests/external); a parser in this process elsewhere
    check = assert_promtool_parses if request.node.get_closest_marker("external") else assert_exposition_parses

    def factory(*args: str) -> BridgeProcess:
        bridge = start_bridge(*args)
        started.append(bridge)
        return bridge

    yield factory
    try:
        for bridge in started:
            if bridge.process.poll() is None:
                # whatever a test sent and whatever its mapping made of it, the page stays valid
                check(bridge.metrics())
    finally:
        for bridge in started:
            bridge.stop()


@pytest.fixture
def bridge(bridge_factory) -> BridgeProcess:
    return bridge_factory()


PROGRAMS = Path(__file__).resolve().parent / "external" / "programs.txt"


def programs() -> dict[str, list[str]]:
    """The programs of tests/external/programs.txt, each with the Debian packages that provide it."""
    listed = {}
    for line in PROGRAMS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            tool, packages, _ = line.split(maxsplit=2)
            listed[tool] = [package for package in packages.split(",") if package != "-"]
    return listed


def require(tool: str, how: str = "") -> str:
    """The path of `tool`, a program tests/external/programs.txt lists (unless `how` says how to get it); in CI
    (CI=true) its absence fails the test rather than skipping it."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is missing: {how or 'apt-get install ' + ' '.join(programs()[tool])}"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run provides it)")
        pytest.skip(message + "; CI runs this test")
    return path


def extra_distributions() -> set[str]:
    """Every distribution an extra of pyproject.toml names (the test, lint, release and proto tools), in PEP 503's
    normal form: none of them belongs where the bridge only runs."""
    requirements = importlib.metadata.requires("statsd-bridge") or []
    return {
        re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", requirement)[0]).lower()
        for requirement in requirements
        if "extra ==" in requirement
    }


def promtool() -> str:
    return require("promtool")


def assert_promtool_parses(text: str) -> None:
    """promtool exits 1 on a parse error and 3 on lint advice (such as a counter without _total), which we allow."""
    result = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode in (0, 3), result.stdout + result.stderr
    assert "error while linting" not in result.stdout + result.stderr


def assert_exposition_parses(text: str) -> None:
    """The text format as prometheus_client's parser reads it, each sample once (promtool's stricter
    word: assert_promtool_parses, for tests/external)."""
    families = list(text_string_to_metric_families(text))
    assert families or not text.strip()
    parse_samples(text)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_udp_and_tcp_port() -> int:
    """A port free for UDP and for TCP both, for a StatsD listener of each on one number (free_port asks
    TCP alone, and a UDP socket of another test may hold the number)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            try:
                tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


class Prometheus:
    """A Prometheus server on a free loopback port, with its own config and storage under `workdir`."""

    def __init__(self, binary: str, config_text: str, workdir: Path, flags: tuple[str, ...] = ()) -> None:
        config = workdir / "prometheus.yml"
        config.write_text(config_text)
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
                "--log.level=warn",
                *flags,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError("prometheus did not start: " + (self.process.stderr.read() or ""))
            time.sleep(0.2)

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def query(self, expression: str) -> dict[frozenset, float]:
        """Instant query: {labels without __name__: value}."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return {
            frozenset((k, v) for k, v in item["metric"].items() if k != "__name__"): float(item["value"][1])
            for item in body["data"]["result"]
        }

    def wait_for(self, expression: str, predicate, timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expression)
            if predicate(result) or time.monotonic() > deadline:
                return result
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


KINDS = ("unit", "integration", "external")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by its folder: tests/unit, tests/integration or tests/external."""
    for item in items:
        kind = Path(str(item.fspath)).parent.name
        if kind in KINDS:
            item.add_marker(getattr(pytest.mark, kind))


def pytest_terminal_summary(terminalreporter) -> None:
    """Print what tests recorded as record_property("summary", ...): figures worth reading in every run
    (the web flood against statsd_exporter), which xdist would otherwise swallow with the test's output."""
    lines = []
    for outcome in ("passed", "failed"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") == "call":
                lines += [f"{value}  [{outcome}]" for key, value in report.user_properties if key == "summary"]
    if lines:
        terminalreporter.section("figures")
        for line in lines:
            terminalreporter.write_line(line)
