"""How the lossless rate grows with --statsd.workers, on a machine with more cores than the 2 of CI's.

    python bench/scaling.py                        # 1, 2, 4, ... workers up to the usable CPUs, mixed load
    python bench/scaling.py --workers 1 2 3 4 --load batched --senders 2

For each worker count (1 is one process, no workers) it finds the lossless rate (< 0.1 % lost) with
bench/run.py's search, and the CPU per million lines at half that rate, and prints a table. Give it
enough senders (`--senders`, each a process of its own on its own socket) that they are not the limit:
one C sender reaches a few million lines/s. Needs `make bench` to have built bench/.build/blast.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run
from run import LINES, Bridge, RateSearch, Trial, cpu_per_million, fmt_rate, mib, settled_total

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bridge.workers.cpus import usable_cpus

LOADS = {
    "batched": (None, ("bench_counter",)),
    "mixed": (run.mixed_mapping(), ("app", "svc")),
    "production": (run.production_mapping(), LINES),
}


def parallel_trial(server: Bridge, load: str, rate: float, seconds: float, prefixes: tuple, senders: int) -> Trial:
    """`senders` processes offering rate / senders each, from sockets of their own."""
    before = server.total(prefixes)
    with ThreadPoolExecutor(senders) as pool:
        sent = list(pool.map(lambda _: run.send(server.udp_port, load, rate / senders, seconds), range(senders)))
    lines = sum(result["lines"] for result in sent)
    received = settled_total(server, prefixes, before + lines) - before
    return Trial(rate, sum(result["achieved_rate"] for result in sent), lines, received)


def main() -> int:
    parser = argparse.ArgumentParser()
    cpus = usable_cpus()
    counts = [1] + [n for n in (2, 4, 8, 16, 32) if n <= cpus]
    parser.add_argument("--workers", type=int, nargs="+", default=counts, help=f"worker counts (default {counts})")
    parser.add_argument("--load", choices=sorted(LOADS), default="mixed")
    parser.add_argument("--senders", type=int, default=max(1, cpus // 4), help="sender processes")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each trial")
    parser.add_argument("--steps", type=int, default=9, help="trials per search")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    if not run.BLAST.exists():
        print("bench/.build/blast is missing: `make bench` builds it (a C compiler is needed)", file=sys.stderr)
        return 1
    subprocess.run([*run.SENDER, "--load", args.load, "--dump", str(run.DUMPS / f"{args.load}.bin")], check=True)
    mapping, prefixes = LOADS[args.load]
    print(f"{args.load} load, {args.senders} sender(s), {cpus} usable CPUs, {run.interpreter()}")
    print(f"{'workers':>8}{'lines/s':>14}{'speedup':>9}{'CPU s / M lines':>17}{'RSS MiB (main + workers)':>34}")
    results, first = [], None
    for count in args.workers:
        bridge = Bridge(mapping, workers=str(count))
        try:
            search = RateSearch(100_000, args.steps)
            while not search.done:
                search.record(parallel_trial(bridge, args.load, search.rate, args.seconds, prefixes, args.senders))
            found = search.result()
            cost = cpu_per_million(bridge, args.load, found["rate"] / 2, args.seconds, prefixes)
            rss = bridge.rss_by_process()
        finally:
            bridge.stop()
        first = first or found["rate"]
        shown = fmt_rate(found["rate"]) + ("+" if found["sender_bound"] else "")
        print(f"{count:>8}{shown:>14}{found['rate'] / first:>8.2f}x{cost:>17.2f}{mib(rss):>34}", flush=True)
        results.append({"workers": count, **found, "cpu_per_million": cost, "rss": rss})
    print("(1: one process, no workers; +: the senders could go no faster)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
