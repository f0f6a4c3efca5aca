"""The soak's series churn in-process, with a fake clock: RSS and Python's allocated blocks per generation.

    python bench/churn_memory.py --generations 150

Each generation sends 20k new counter names (as bench/soak.py does) for 30 simulated seconds with a
45 s ttl, sweeping every second and rendering every 10. Flat allocated blocks with moving RSS means
the allocator's fragmentation, not objects piling up. Not part of CI.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import pipeline  # the same in-process pipeline the tests use

MAPPING = "mappings:\n- match: soak.*\n  name: soak_$1\n  ttl: 45s\n"


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--generations", type=int, default=60)
    parser.add_argument("--series", type=int, default=20_000)
    args = parser.parse_args()
    bridge = pipeline(MAPPING)
    print(f"{'generation':>10}{'RSS MiB':>10}{'blocks':>12}{'series':>10}")
    for generation in range(args.generations):
        lines = [f"soak.c{generation}_{i}:1|c|#host:h{i % 20}".encode() for i in range(args.series)]
        datagrams = [b"\n".join(lines[i : i + 30]) for i in range(0, len(lines), 30)]
        for second in range(30):
            bridge.clock.now += 1
            bridge.ingest.packets(datagrams)
            bridge.store.sweep(bridge.clock.now)
            if second % 10 == 0:
                bridge.text()
        print(f"{generation:>10}{rss_mib():>10.1f}{sys.getallocatedblocks():>12,}{bridge.store.series_count:>10,}",
              flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
