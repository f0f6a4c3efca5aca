"""Soak: half the rated load with series churn, RSS over time. Not part of CI.

    python bench/soak.py --rate 200000 --minutes 10

Every `--churn` seconds the senders move to a fresh set of series, counters and timers with fresh
`pod` tags; a `ttl` in the mapping drops the old ones, so after warm-up RSS should stay flat. Prints one
line per scrape interval.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import Bridge


def churned_datagrams(generation: int, series: int) -> list[bytes]:
    """Counters and timers of fresh names, tagged with fresh pods: every name, label value and vector new."""
    lines = [
        f"soak.c{generation}_{i}:1|c|#host:h{i % 20},pod:p{generation}_{i % 500}"
        if i % 2
        else f"soak.t{generation}_{i}:{i % 300}|ms|#host:h{i % 20},pod:p{generation}_{i % 500}"
        for i in range(series)
    ]
    return ["\n".join(lines[i : i + 30]).encode() for i in range(0, len(lines), 30)]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100_000, help="lines per second (half the rated load)")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--series", type=int, default=20_000, help="series alive at once")
    parser.add_argument("--churn", type=float, default=30, help="seconds between series generations")
    parser.add_argument("--workers", default="1", metavar="N|auto", help="the bridge's --statsd.workers")
    args = parser.parse_args()
    bridge = Bridge("mappings:\n- match: soak.*\n  name: soak_$1\n  ttl: 45s\n", workers=args.workers)
    sent = 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            start = time.monotonic()
            next_report = start
            generation = -1
            datagrams: list[bytes] = []
            index = 0
            print(f"{'seconds':>8}{'RSS MiB':>10}{'series':>10}{'lines sent':>14}")
            while (now := time.monotonic()) - start < args.minutes * 60:
                if int((now - start) // args.churn) != generation:
                    generation = int((now - start) // args.churn)
                    datagrams = churned_datagrams(generation, args.series)
                due = int((now - start) * args.rate / 30)
                while index < due:
                    sock.sendto(datagrams[index % len(datagrams)], ("127.0.0.1", bridge.udp_port))
                    index += 1
                    sent += 30
                if now >= next_report:
                    series = bridge.total(("statsd_bridge_metrics{",))  # held now, not metrics_total
                    rss = sum(bridge.rss_by_process()) / 2**20  # the main process and its workers
                    print(f"{now - start:>8.0f}{rss:>10.1f}{series:>10,.0f}{sent:>14,}", flush=True)
                    next_report = now + 15
                time.sleep(0.001)
    finally:
        bridge.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
