"""`make bench`: statsd-bridge against the StatsD daemon, side by side in one run, over loopback UDP.

Prints a table: the highest offered rate (lines/s) each loses fewer than 0.1 % of lines at, for each
load; scrape times at 10k/100k/1M series; lines lost while scrapes run at half the rated load; RSS per
series. Loss is read from what each server exposes (the sum of the benchmark counters), never from
its own counts of what it received.

    python bench/run.py              # the full run, a few minutes
    python bench/run.py --smoke      # seconds: that it runs and reports (CI)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
SENDER = [sys.executable, str(HERE / "sender.py")]
BLAST = HERE / ".build" / "blast"  # the C sender (make bench builds it); the Python one where it is missing
DUMPS = Path(tempfile.mkdtemp(prefix="bench-loads-"))
STATSD_DIR = HERE / ".statsd"  # npm install --prefix bench/.statsd statsd (make bench does it)
LOSS_LIMIT = 0.001


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The production load's values vary (counter increments, gauges), so lines are counted by the servers'
# own count of lines read off the socket: what the kernel dropped is what is missing there.
LINES = ("<lines received>",)


def production_mapping() -> str:
    """The production load's rules amid 40 other teams' globs and 5 regexes it never matches."""
    rules = [f"- match: team{n}.*.*\n  name: team{n}_${{1}}_${{2}}\n" for n in range(40)]
    rules += [f"- match: ^batch-{n}\\.(\\w+)\\.done$\n  match_type: regex\n  name: batch{n}_done_total\n"
              f"  labels:\n    job: $1\n" for n in range(5)]  # fmt: skip
    for metric, name in (("requests", "requests_total"), ("latency", "request_duration_seconds"),
                         ("queue_depth", "queue_depth")):  # fmt: skip
        rules.append(f"- match: app.*.*.{metric}\n  name: {name}\n  labels:\n    service: $1\n    endpoint: $2\n")
    rules.append("- match: debug.*\n  action: drop\n  name: dropped\n")
    return "defaults:\n  observer_type: histogram\nmappings:\n" + "".join(rules)


def mixed_mapping(native: bool = True) -> str:
    """100 glob rules and 10 regex rules, the mixed load's mapping; timers into histograms.

    Braces: `app_$1_$2` would read as the variable `1_` in statsd_exporter (and so here), one empty
    name for everything; the lint says so."""
    rules = [f"- match: app{n}.*.*\n  name: app{n}_${{1}}_${{2}}\n" for n in range(100)]
    rules += [
        f"- match: ^svc-{n}--(\\w+)\\.latency$\n  match_type: regex\n  name: svc{n}_latency_seconds\n"
        f"  labels:\n    op: $1\n"
        for n in range(10)
    ]
    # a loaded mapping file gives every histogram a native part too (factor 1.1), as statsd_exporter;
    # factor 1 turns that off, for the classic-only row
    classic_only = "" if native else "  histogram_options:\n    native_histogram_bucket_factor: 1\n"
    return "defaults:\n  observer_type: histogram\n" + classic_only + "mappings:\n" + "".join(rules)


# statsd_exporter: where STATSD_EXPORTER says, else found on PATH
PEER = Path(os.environ.get("STATSD_EXPORTER") or shutil.which("statsd_exporter") or "statsd_exporter")
READ_BUFFER = 32 * 1024 * 1024  # the bridge's default --statsd.read-buffer, given to statsd_exporter too


class Bridge:
    def __init__(
        self,
        mapping: str | None = None,
        extra: tuple[str, ...] = (),
        regex_engine: str = "re2",
        python: str = "",
        workers: str = "1",
    ) -> None:
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.web_port = free_port(socket.SOCK_STREAM)
        command = [python or sys.executable, "-m", "bridge", "--statsd-listen-udp", f"127.0.0.1:{self.udp_port}",
                   "--statsd-listen-tcp", "", "--web-listen-address", f"127.0.0.1:{self.web_port}",
                   "--log-level", "warn", "--max-series", "0", "--statsd.workers", workers, *extra]  # fmt: skip
        env = dict(os.environ)
        if regex_engine == "re":  # bench/python_re/sitecustomize.py compiles the regex rules with Python's re
            env["PYTHONPATH"] = str(HERE / "python_re")
        self._start(command, mapping, env)

    def _start(self, command: list[str], mapping: str | None, env: dict | None = None) -> None:
        self._mapping_file = write_temp(mapping, ".yml") if mapping else None
        if self._mapping_file:
            command = [*command, f"--statsd.mapping-config={self._mapping_file}"]
        self.process = subprocess.Popen(command, cwd=HERE.parent, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.scrape()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{command[0]} did not start")

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process and its children (receiving workers), all threads."""
        return sum(cpu_seconds(pid) for pid in process_tree(self.process.pid))

    def rss_by_process(self) -> list[int]:
        """RSS of the process, then of each child (a receiving worker)."""
        return [read_rss(pid) for pid in process_tree(self.process.pid)]

    def scrape_bytes(self, accept: str) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}/metrics", headers={"Accept": accept})
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()

    def scrape(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=60) as response:
            return response.read().decode()

    lines_metric = "statsd_bridge_lines_total"

    def total(self, prefixes: tuple[str, ...]) -> float:
        """Sum of counters, gauges and histogram counts whose names start with a prefix (LINES: lines read)."""
        if prefixes == LINES:
            prefixes = (self.lines_metric + " ",)
        total = 0.0
        for line in self.scrape().splitlines():
            if line.startswith("#") or not line.startswith(prefixes):
                continue
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name.endswith(("_bucket", "_sum")):
                continue
            total += float(line.rsplit(" ", 1)[1])
        return total

    def rss(self) -> int:
        return read_rss(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        if self._mapping_file:
            os.unlink(self._mapping_file)


class StatsdExporter(Bridge):
    """statsd_exporter, the Go reference: the same mapping file and the bridge's receive buffer."""

    lines_metric = "statsd_exporter_lines_total"

    def __init__(self, mapping: str | None = None) -> None:
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.web_port = free_port(socket.SOCK_STREAM)
        command = [str(PEER), f"--statsd.listen-udp=127.0.0.1:{self.udp_port}", "--statsd.listen-tcp=",
                   f"--web.listen-address=127.0.0.1:{self.web_port}", f"--statsd.read-buffer={READ_BUFFER}",
                   "--log.level=warn"]  # fmt: skip
        self._start(command, mapping)


class StatsdDaemon:
    """The original StatsD (node), console backend, counters read over its management port."""

    def __init__(self) -> None:
        self.udp_port = free_port(socket.SOCK_DGRAM)
        self.mgmt_port = free_port(socket.SOCK_STREAM)
        # a flush interval longer than the run, so counters are never reset under us
        self.config = write_temp(
            f'{{ port: {self.udp_port}, address: "127.0.0.1", mgmt_port: {self.mgmt_port}, '
            f'mgmt_address: "127.0.0.1", backends: ["./backends/console"], flushInterval: 86400000 }}',
            ".js",
        )
        stats_js = STATSD_DIR / "node_modules" / "statsd" / "stats.js"
        self.process = subprocess.Popen(["node", str(stats_js), self.config], cwd=stats_js.parent,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.total(("bench.",))
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("statsd did not start")

    def total(self, prefixes: tuple[str, ...]) -> float:
        with socket.create_connection(("127.0.0.1", self.mgmt_port), timeout=30) as conn:
            conn.sendall(b"counters\n")
            data = b""
            while not data.rstrip().endswith(b"END"):
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                data += chunk
        return sum(
            float(value)
            for name, value in re.findall(r"'([^']+)': ([0-9.e+]+)", data.decode())
            if name.startswith(prefixes)
        )

    def rss(self) -> int:
        return read_rss(self.process.pid)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        os.unlink(self.config)


def write_temp(text: str, suffix: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False) as handle:
        handle.write(text)
    return handle.name


def process_tree(pid: int) -> list[int]:
    """The process and its children (one level: the bridge's receiving workers)."""
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        children.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return [pid, *sorted(children)]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process, all its threads, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def settled_total(server, prefixes: tuple[str, ...], expected: float, timeout: float = 15.0) -> float:
    """The exposed total once it stops moving (the receiver may still be draining its buffer)."""
    deadline = time.monotonic() + timeout
    previous = -1.0
    while time.monotonic() < deadline:
        total = server.total(prefixes)
        if total >= expected or total == previous:
            return total
        previous = total
        time.sleep(0.3)
    return server.total(prefixes)


@dataclass
class Trial:
    offered: float
    achieved: float
    sent: int
    received: float

    @property
    def loss(self) -> float:
        return 1 - self.received / self.sent if self.sent else 0.0


def send(port: int, load: str, rate: float, seconds: float) -> dict:
    """Offer `rate` lines/s of `load` for `seconds` from another process; what it really sent."""
    if BLAST.exists():
        payloads = DUMPS / f"{load}.bin"
        if not payloads.exists():
            subprocess.run([*SENDER, "--load", load, "--dump", str(payloads)], check=True)
        command = [str(BLAST), str(payloads), "127.0.0.1", str(port), str(rate), str(seconds)]
    else:
        command = [*SENDER, "--port", str(port), "--rate", str(rate), "--seconds", str(seconds), "--load", load]
    return json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def trial(server, load: str, rate: float, seconds: float, prefixes: tuple[str, ...]) -> Trial:
    before = server.total(prefixes)
    sent = send(server.udp_port, load, rate, seconds)
    received = settled_total(server, prefixes, before + sent["lines"]) - before
    return Trial(rate, sent["achieved_rate"], sent["lines"], received)


def load_lines(load: str) -> int:
    """Lines in one pass over a load's datagrams (blast.c's dump: uint32 length, uint32 lines, bytes)."""
    payloads = DUMPS / f"{load}.bin"
    if not payloads.exists():
        return 0
    data, offset, lines = payloads.read_bytes(), 0, 0
    while offset < len(data):
        length, count = struct.unpack_from("<II", data, offset)
        lines += count
        offset += 8 + length
    return lines


def cpu_per_million(server, load: str, rate: float, seconds: float, prefixes: tuple[str, ...]) -> float:
    """The server's CPU seconds per million lines received, offered `rate` lines/s for `seconds`, in the
    steady state: after one whole pass over the load (every series created, every line shape seen), so
    that creating the production load's 50k series is not counted as per-line cost."""
    trial(server, load, rate, min(seconds, 1.0), prefixes)  # the dump is written on the first send
    warm_up = load_lines(load) / rate
    if warm_up > 1.0:
        trial(server, load, rate, warm_up, prefixes)
    before_cpu, before = server.cpu_seconds(), server.total(prefixes)
    sent = send(server.udp_port, load, rate, seconds)
    received = settled_total(server, prefixes, before + sent["lines"]) - before
    return (server.cpu_seconds() - before_cpu) / (received / 1e6) if received else float("nan")


class RateSearch:
    """One server's search for its lossless rate: double the offered rate until lines are lost, then bisect;
    the best rate losing < 0.1 %. A trial at a time, so that several servers' searches can alternate."""

    def __init__(self, start: float, steps: int) -> None:
        self.rate, self.steps = start, steps
        self.best: Trial | None = None
        self.worst: Trial | None = None
        self.trials = 0
        self.sender_bound = False

    @property
    def done(self) -> bool:
        return self.sender_bound or self.trials >= self.steps

    def record(self, result: Trial) -> None:
        self.trials += 1
        if result.loss >= LOSS_LIMIT:
            self.worst = result
        elif result.achieved < 0.95 * result.offered:
            self.best, self.sender_bound = result, True  # the sender could go no faster: the limit lies above
            return
        else:
            self.best = result
        if self.worst is None:
            self.rate *= 2
        else:
            self.rate = ((self.best.offered if self.best else 0.0) + self.worst.offered) / 2

    def result(self) -> dict:
        best, worst = self.best, self.worst
        return {"rate": best.achieved if best else 0.0, "sender_bound": self.sender_bound, "trials": self.trials,
                "loss_above": worst.loss if worst else None}  # fmt: skip


def lossless_rates(
    servers: dict, load: str, prefixes: dict, seconds: float, start: dict, steps: int
) -> dict[str, dict]:
    """Each server's lossless rate, their trials alternating (one trial each in turn), so that a shared,
    noisy machine slows all of them alike rather than whichever runs at the wrong moment."""
    searches = {label: RateSearch(start[label], steps) for label in servers}
    while not all(search.done for search in searches.values()):
        for label, search in searches.items():
            if not search.done:
                search.record(trial(servers[label], load, search.rate, seconds, prefixes[label]))
    return {label: search.result() for label, search in searches.items()}


def lossless_rate(server, load: str, prefixes: tuple[str, ...], seconds: float, start: float, steps: int) -> dict:
    return lossless_rates({"": server}, load, {"": prefixes}, seconds, {"": start}, steps)[""]


PROTOBUF = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"


def scrape_times(server, repeats: int, accept: str = "text/plain;version=0.0.4") -> dict:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        server.scrape_bytes(accept)
        times.append(time.perf_counter() - started)
    times.sort()
    return {"p50": statistics.median(times), "p99": times[min(len(times) - 1, int(len(times) * 0.99))]}


def loss_during_scrapes(server, rate: float, seconds: float, interval: float) -> tuple[Trial, int]:
    """Lines lost at `rate` while /metrics is scraped every `interval` seconds (0: back to back)."""
    stop = threading.Event()
    scrapes = []

    def scrape_loop() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            server.scrape()
            scrapes.append(time.perf_counter() - started)
            stop.wait(max(0.0, interval - scrapes[-1]))

    scraper = threading.Thread(target=scrape_loop)
    scraper.start()
    try:
        result = trial(server, "batched", rate, seconds, ("bench_counter",))
    finally:
        stop.set()
        scraper.join()
    return result, len(scrapes)


def interpreter() -> str:
    """Which CPython build runs the bridge (the one running this script): the build changes the cost per line."""
    with open("/proc/self/maps") as maps:  # linked to libpython (pyenv's default), or built into the executable
        shared = "libpython shared" if "/libpython" in maps.read() else "libpython built in"
    return f"{platform.python_implementation()} {platform.python_version()}, {shared}, {sys.executable}"


def python_version(python: str) -> str:
    return subprocess.run([python, "--version"], capture_output=True, text=True).stdout.split()[-1]


def compare_interpreters(pythons: list[str], seconds: float, steps: int) -> dict:
    """The mixed and production loads on each interpreter, one after the other for each load: the lossless
    rate, then the CPU per million lines at a rate every one of them sustains (half the lowest)."""
    results: dict = {}
    print(f"\n{'load':<12}{'Python':>10}{'lines/s':>12}{'CPU s per million lines':>25}{'at lines/s':>12}")
    for load, prefixes, mapping in (("mixed", ("app", "svc"), mixed_mapping()),
                                    ("production", LINES, production_mapping())):  # fmt: skip
        rates = {}
        for python in pythons:
            bridge = Bridge(mapping, python=python)
            try:
                rates[python] = lossless_rate(bridge, load, prefixes, seconds, 50_000, steps)["rate"]
            finally:
                bridge.stop()
        rate = min(rates.values()) / 2
        for python in pythons:
            bridge = Bridge(mapping, python=python)
            try:
                cost = cpu_per_million(bridge, load, rate, seconds, prefixes)
            finally:
                bridge.stop()
            version = python_version(python)
            results.setdefault(load, {})[version] = {"rate": rates[python], "cpu_per_million": cost, "at": rate}
            print(f"{load:<12}{version:>10}{fmt_rate(rates[python]):>12}{cost:>25.2f}{fmt_rate(rate):>12}", flush=True)
    return results


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def mib(sizes: list[int]) -> str:
    """RSS of a main process and its workers: 45 = 30 + 8 + 7."""
    parts = [f"{size / 2**20:.0f}" for size in sizes]
    return f"{sum(sizes) / 2**20:.0f}" + (f" = {' + '.join(parts)}" if len(parts) > 1 else "")


def usable_workers(setting: str) -> int:
    sys.path.insert(0, str(HERE.parent))
    from bridge.workers.cpus import workers_for

    return workers_for(setting)


# the loads statsd_exporter runs too
COMPARED = ("batched", "single", "mixed", "production")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="a few seconds: check that it runs and reports")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument(
        "--only",
        action="append",
        help="run only this load (batched, single, mixed, mixed-re, relaying); skips the scrape and loss sections",
    )
    parser.add_argument(
        "--with-python-re",
        action="store_true",
        help="also the mixed load with Python's re in place of RE2 (mixed-re), side by side",
    )
    parser.add_argument(
        "--python",
        action="append",
        metavar="INTERPRETER",
        help="compare this interpreter (a venv's python with the bridge installed) with the one running this "
        "script, on the mixed and production loads; repeat for several. Nothing else runs (make bench-pythons)",
    )
    parser.add_argument(
        "--workers",
        default="auto",
        metavar="N|auto",
        help="the --statsd.workers of the bridge measured beside one process (default: auto)",
    )
    args = parser.parse_args()
    smoke = args.smoke
    seconds = 0.5 if smoke else 5.0  # long enough that the socket buffer cannot hide a slow receiver
    steps = 2 if smoke else 9
    have_statsd = (STATSD_DIR / "node_modules" / "statsd" / "stats.js").exists() and shutil.which("node")
    have_peer = os.access(PEER, os.X_OK)
    results: dict = {"date": time.strftime("%Y-%m-%d"), "smoke": smoke, "cores": os.cpu_count(),
                     "interpreter": interpreter()}  # fmt: skip
    print(f"statsd-bridge runs on {results['interpreter']}", flush=True)
    if args.python:
        results["interpreters"] = compare_interpreters([sys.executable, *args.python], seconds, steps)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2))
        return 0
    rows = []

    # the relay's target: a socket nobody reads, so the bridge pays for every send and the kernel drops them
    relay_sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    relay_sink.bind(("127.0.0.1", 0))
    relay = ("--statsd-relay-address", f"127.0.0.1:{relay_sink.getsockname()[1]}")
    workers = args.workers
    for label, load, prefixes, start, extra in (
        ("batched", "batched", ("bench_counter",), 50_000, ()),
        ("single", "single", ("bench_counter",), 20_000, ()),
        ("mixed", "mixed", ("app", "svc"), 50_000, ()),
        ("mixed-re", "mixed", ("app", "svc"), 50_000, ()),
        ("mixed-classic", "mixed", ("app", "svc"), 50_000, ()),
        ("production", "production", LINES, 50_000, ()),
        ("relaying", "batched", ("bench_counter",), 50_000, relay),
    ):
        if (args.only and label not in args.only) or (label == "mixed-re" and not args.with_python_re):
            continue
        engine = "re" if label == "mixed-re" else "re2"
        mapping = mixed_mapping(native=label != "mixed-classic") if load == "mixed" else None
        mapping = production_mapping() if load == "production" else mapping
        factories = {"bridge": functools.partial(Bridge, mapping, extra, regex_engine=engine)}
        if label != "mixed-re":
            factories["workers"] = functools.partial(Bridge, mapping, extra, regex_engine=engine, workers=workers)
        if have_peer and label in COMPARED:
            factories["statsd_exporter"] = functools.partial(StatsdExporter, mapping)
        if have_statsd and label in ("batched", "single"):
            factories["statsd"] = StatsdDaemon
        servers = {}
        try:
            for name, factory in factories.items():
                servers[name] = factory()
            found = lossless_rates(
                servers,
                load,
                {name: ("bench.counter",) if name == "statsd" else prefixes for name in servers},
                seconds,
                {name: start / 2 if name in ("statsd", "statsd_exporter") else start for name in servers},
                steps,
            )
        finally:
            for server in servers.values():
                server.stop()
        results[label] = {name: found.get(name) for name in ("bridge", "workers", "statsd_exporter", "statsd")}
        rows.append((label, results[label]))
    relay_sink.close()

    def shown(result: dict | None) -> str:
        return (fmt_rate(result["rate"]) + ("+" if result["sender_bound"] else "")) if result else "-"

    def ratio(ours: dict | None, theirs: dict | None) -> str:
        return f"{ours['rate'] / theirs['rate']:.2f}x" if ours and theirs and theirs["rate"] else "n/a"

    print("\nLossless rate (< 0.1 % lost), lines/s, loopback UDP, sender in its own process; trials alternate")
    print(f"{'load':<14}{'statsd_exporter':>16}{'one process':>13}{'ratio':>7}{f'workers {workers}':>14}"
          f"{'ratio':>7}{'statsd (node)':>15}")  # fmt: skip
    for load, found in rows:
        go = found["statsd_exporter"]
        print(f"{load:<14}{shown(go):>16}{shown(found['bridge']):>13}{ratio(found['bridge'], go):>7}"
              f"{shown(found['workers']):>14}{ratio(found['workers'], go):>7}{shown(found['statsd']):>15}")  # fmt: skip
    print("(ratio: to statsd_exporter; +: the sender could go no faster, the real limit is higher)")
    print(f"(workers {workers}: --statsd.workers {workers}, {usable_workers(workers)} worker processes here)")
    print("(relaying: the batched load with --statsd-relay-address pointing at a socket nobody reads)")
    if smoke:
        print("smoke run: two short trials per load, so the rates and ratios are floors, not measurements")
    if not have_statsd:
        print("statsd (node) not installed: `make bench` installs it into bench/.statsd")
    if not have_peer:
        print(f"statsd_exporter not found at {PEER} (set STATSD_EXPORTER, or put it on PATH): its columns are empty")

    if have_peer:
        print("\nServer CPU seconds per million lines (all its processes) at a rate all three sustain (half the lowest "
              "lossless rate)")  # fmt: skip
        print(f"{'load':<14}{'rate':>11}{'statsd_exporter':>16}{'one process':>13}{'ratio':>7}"
              f"{f'workers {workers}':>14}{'ratio':>7}")  # fmt: skip
        for load, found in rows:
            if load not in COMPARED or not all(found[name] for name in ("bridge", "workers", "statsd_exporter")):
                continue
            rate = min(found[name]["rate"] for name in ("bridge", "workers", "statsd_exporter")) / 2
            mapping = {"mixed": mixed_mapping(), "production": production_mapping()}.get(load)
            prefixes = {"mixed": ("app", "svc"), "production": LINES}.get(load, ("bench_counter",))
            costs = {}
            for name, server in (("statsd_exporter", StatsdExporter(mapping)), ("bridge", Bridge(mapping)),
                                 ("workers", Bridge(mapping, workers=workers))):  # fmt: skip
                try:
                    costs[name] = cpu_per_million(server, load, rate, seconds, prefixes)
                finally:
                    server.stop()
            results[load]["cpu_per_million"] = {"rate": rate, **costs}
            go = costs["statsd_exporter"]
            print(f"{load:<14}{fmt_rate(rate):>11}{go:>16.2f}{costs['bridge']:>13.2f}{costs['bridge'] / go:>6.2f}x"
                  f"{costs['workers']:>14.2f}{costs['workers'] / go:>6.2f}x")  # fmt: skip

    filled = 10_000 if smoke else 100_000
    print(f"\nRSS by process, MiB: idle, then holding {filled:,} counter series")
    print(f"{'bridge':<22}{'idle':>16}{f'{filled:,} series':>22}")
    for label, option in (("one process", "1"), (f"workers {workers}", workers)):
        bridge = Bridge(workers=option)
        try:
            time.sleep(1.0)
            idle = bridge.rss_by_process()
            fill_range(bridge, 0, filled)
            full = bridge.rss_by_process()
        finally:
            bridge.stop()
        results.setdefault("rss", {})[label] = {"idle": idle, "filled": full}
        print(f"{label:<22}{mib(idle):>16}{mib(full):>22}")
    print("(main process + each worker; each worker holds the series it has received, its share of the lines)")

    if args.only:
        return 0
    sizes = (1_000, 10_000) if smoke else (10_000, 100_000, 1_000_000)
    print("\nScrape time by series held (text format; protobuf beside it, after a first protobuf scrape), "
          "and RSS per counter series")  # fmt: skip
    print(f"{'series':>10}{'p50 s':>10}{'p99 s':>10}{'pb p50 s':>10}{'pb/text':>9}{'RSS/series B':>14}")
    bridge = Bridge()
    try:
        base_rss = bridge.rss()
        filled = 0
        for size in sizes:
            fill_range(bridge, filled, size)
            filled = size
            repeats = 3 if size >= 1_000_000 else 10
            per_series = (bridge.rss() - base_rss) / size  # before protobuf caches the labels' encoding
            times = scrape_times(bridge, repeats)
            bridge.scrape_bytes(PROTOBUF)  # the first protobuf scrape encodes every series' labels once
            protobuf = scrape_times(bridge, repeats, PROTOBUF)
            ratio = protobuf["p50"] / times["p50"]
            results.setdefault("scrape", {})[size] = {**times, "rss_per_series": per_series, "protobuf": protobuf}
            print(f"{size:>10,}{times['p50']:>10.3f}{times['p99']:>10.3f}{protobuf['p50']:>10.3f}{ratio:>8.2f}x"
                  f"{per_series:>14,.0f}")  # fmt: skip
    finally:
        bridge.stop()

    half = results["batched"]["bridge"]["rate"] / 2  # the one process's: the scrape and loss rows are its
    for label, interval in (("every second", 1.0), ("back to back", 0.0)):
        bridge = Bridge()
        try:
            fill_range(bridge, 0, sizes[1])
            during, scrapes = loss_during_scrapes(bridge, half, 2.0 if smoke else 10.0, interval)
        finally:
            bridge.stop()
        results.setdefault("loss_during_scrapes", {})[label] = {
            "rate": during.achieved, "series": sizes[1], "loss": during.loss, "scrapes": scrapes,
        }  # fmt: skip
        print(f"Scraping {sizes[1]:,} series {label} ({scrapes} scrapes) at half the batched rate "
              f"({fmt_rate(during.achieved)} lines/s): {during.loss:.3%} of lines lost")  # fmt: skip

    bridge = Bridge("defaults:\n  observer_type: histogram\n")  # unmapped timers are summaries otherwise
    try:
        base_rss = bridge.rss()
        count = sizes[1]
        fill_range(bridge, 0, count, kind="ms")
        per_histogram = (bridge.rss() - base_rss) / count
    finally:
        bridge.stop()
    results["rss_per_histogram_series"] = per_histogram
    print(f"RSS per histogram series (11 buckets): {per_histogram:,.0f} B")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    return 0


def fill_range(server, start: int, stop: int, kind: str = "c", rate: float = 40_000) -> None:
    """Create series bench_fill{series="<start>"} .. {series="<stop-1>"} of one metric, then wait for them all.

    New series take the full parse, so the fill is paced below that path's speed, and sent again
    until every series is there (resending only bumps values).
    """
    series_line = re.compile(r'^statsd_bridge_metrics\{type="(\w+)"\} (\S+)$', re.M)
    wanted = "counter" if kind == "c" else "histogram"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(5):
            began = time.perf_counter()
            for first in range(start, stop, 30):
                payload = "\n".join(f"bench.fill:1|{kind}|#series:{i}" for i in range(first, min(first + 30, stop)))
                sock.sendto(payload.encode(), ("127.0.0.1", server.udp_port))
                ahead = (first - start) / rate - (time.perf_counter() - began)
                if ahead > 0.001:
                    time.sleep(ahead)
            for _ in range(20):
                counts = dict(series_line.findall(server.scrape()))
                if float(counts.get(wanted, 0)) >= stop:
                    return
                time.sleep(0.5)
    raise RuntimeError(f"the bridge never held {stop} series")


if __name__ == "__main__":
    sys.exit(main())
