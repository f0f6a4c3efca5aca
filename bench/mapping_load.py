"""A mapping file's load, reload and lint, timed in process.

    python -m bench.mapping_load FILE [--trials 5]

load: load_mapping_file then Mapper, as at start-up (no pattern kept from a load before); reload: the
same with the patterns of the load before, as the bridge reloads an unchanged file; lint: the lint of
the loaded file, what --check-config adds. Each is timed --trials times; the best and the median are
printed in seconds. `python -m bench.big_mapping --rules 3500 OUT` writes a big file to time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from bridge.mapping import loader
from bridge.mapping.lint import lint
from bridge.mapping.router import Mapper


def trials(work: Callable[[], object], count: int, before: Callable[[], object] = lambda: None) -> list[float]:
    times = []
    for _ in range(count):
        before()
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return times


def forget_patterns() -> None:
    """A start-up's load: no compiled pattern of an earlier load to take (a loader that keeps none has nothing
    to clear)."""
    kept = getattr(loader, "_last_patterns", None)
    if kept is not None:
        kept.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", help="the mapping file")
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()

    def load() -> object:
        return Mapper(loader.load_mapping_file(args.file))

    config = loader.load_mapping_file(args.file)
    print(f"{args.file}: {len(config.rules)} rules")
    for what, times in (
        ("load", trials(load, args.trials, before=forget_patterns)),
        ("reload", trials(load, args.trials)),
        ("lint", trials(lambda: lint(config), args.trials)),
    ):
        print(f"{what:7} best {min(times):.3f} s, median {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
