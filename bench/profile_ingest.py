"""In-process cost per line of a bench load through Ingest.packets, with no sockets in the way.

    python -m bench.profile_ingest production|mixed|batched|single [--profile]

The load's datagrams are applied once to warm every cache (series created, line shapes seen), then
timed in batches of 8 datagrams (what a wake-up reads at moderate rates), seven trials of about half a
second; the best and the median are printed in µs per line. --profile adds cProfile's top functions by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time

from bench.run import mixed_mapping, production_mapping
from bench.sender import datagrams, production_datagrams
from bridge.ingest import Ingest
from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Mapper
from bridge.series.store import Store
from bridge.stats import Stats


def timed(work, times: int) -> float:
    started = time.perf_counter()
    for _ in range(times):
        work()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("load", choices=["production", "mixed", "batched", "single"])
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    grams = production_datagrams() if args.load == "production" else datagrams(args.load)
    mapping = {"production": production_mapping(), "mixed": mixed_mapping()}.get(args.load, "")
    ingest = Ingest(Mapper(load_mapping(mapping)), Store(), Stats())
    lines = sum(gram.count(b"\n") + 1 for gram in grams)
    batches = [grams[i : i + 8] for i in range(0, len(grams), 8)]

    def apply_all() -> None:
        for batch in batches:
            ingest.packets(batch)
        ingest.store.fold_pending()  # what a scrape does first: deferred histogram observations count too

    apply_all()
    passes = max(1, round(0.5 / timed(apply_all, 1)))  # trials of about half a second: the machine is noisy
    trials = sorted(timed(apply_all, passes) / passes / lines * 1e6 for _ in range(7))
    print(
        f"{args.load}: {lines:,} lines in {len(grams):,} datagrams, {trials[0]:.2f} µs a line at best, "
        f"{trials[3]:.2f} median of 7 trials"
    )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(apply_all)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
