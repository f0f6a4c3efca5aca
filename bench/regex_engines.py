"""RE2 against Python's re for the regex rules of the mixed load, side by side in one process.

The mapper resolves each distinct StatsD name once (then its cache answers), so this times that
resolution over the mixed load's distinct names, with the same rules compiled by each engine.

    python -m bench.regex_engines
"""

from __future__ import annotations

import re
import time

from bench.run import mixed_mapping
from bench.sender import mixed_lines
from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Mapper
from bridge.parsing.line import COUNTER, GAUGE, OBSERVER

KINDS = {"c": COUNTER, "g": GAUGE, "ms": OBSERVER}


def resolutions(engine: str) -> tuple[float, float]:
    """(µs per resolution over every distinct name, µs per resolution of names the regex rules take)."""
    config = load_mapping(mixed_mapping())
    if engine == "re":
        for rule in config.rules:
            if rule.match_type == "regex":
                rule.pattern = re.compile(rule.match)
    names = sorted({(line.split(":")[0], KINDS[line.split("|")[1]]) for line in mixed_lines(20_000)})
    regex_names = [item for item in names if item[0].startswith("svc-")]
    timings = []
    for subset in (names, regex_names):
        best = float("inf")
        for _ in range(5):
            mapper = Mapper(config)  # an empty cache: every name resolved once
            start = time.perf_counter()
            for name, kind in subset:
                mapper.map(name, kind)
            best = min(best, (time.perf_counter() - start) / len(subset) * 1e6)
        timings.append(best)
    return timings[0], timings[1]


def main() -> None:
    for engine in ("re2", "re", "re2", "re"):
        every, regex_only = resolutions(engine)
        print(f"{engine:4}: {every:6.2f} us per distinct name, {regex_only:6.2f} us per name a regex rule takes")


if __name__ == "__main__":
    main()
