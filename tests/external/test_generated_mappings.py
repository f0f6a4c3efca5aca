"""Generated mapping files, run through statsd_exporter and the bridge side by side.

Each seed gives a whole mapping file whose rules overlap, shadow, duplicate and prefix each other
(tests/mapping_generator.py) and lines that fill and miss them. The lint names every way statsd_exporter
would serve the file otherwise (bridge/mapping/compat.py); the suite holds it to that, both ways:

- a line whose rule and metric the lint does not flag gives the same series in both, value for value;
- every flag is true: its example, sent afterwards, makes the two differ (or statsd_exporter's scrape fail);
- statsd_exporter refuses the file exactly when the lint says it would.

`make test` runs GENERATED_MAPPINGS files (12); set it higher for a longer run, e.g.
`GENERATED_MAPPINGS=300 .venv/bin/python -m pytest tests/external/test_generated_mappings.py -n 4`.
"""

from __future__ import annotations

import os
import urllib.error
from collections import Counter

import pytest

from bridge.mapping.compat import differences
from bridge.mapping.lint import ERROR, lint
from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Mapper
from bridge.parsing.line import TagStats, parse_line
from tests.differential import accepts, compare, reference_binary, start_pair
from tests.mapping_generator import REFUSED, generate

# one process, and two receiving workers with the same answers
pytestmark = pytest.mark.usefixtures("each_worker_count")

GENERATED_MAPPINGS = int(os.environ.get("GENERATED_MAPPINGS", "12"))
REFUSING = ("statsd_exporter_refuses", "statsd_exporter_extension")


def excused(line: str, mapper: Mapper, rules: set[int], metrics: set[str]) -> bool:
    """Whether a line goes through a rule, or into a metric, that the lint says statsd_exporter treats otherwise."""
    try:
        samples = parse_line(line, TagStats())[0]
    except ValueError:
        return False
    for sample in samples:
        route = mapper.map(sample.name, sample.kind)
        if route.rule is not None and route.rule.line in rules:
            return True
        if any(target.name in metrics for target in route.targets):
            return True
    return False


def problems(pair) -> list[str]:
    """What differs between the two now; a failing statsd_exporter scrape is a difference of its own."""
    try:
        reference, bridge = pair.families()
    except urllib.error.HTTPError as error:
        return [f"statsd_exporter's scrape fails: HTTP {error.code}"]
    return compare(reference, bridge, pair.sampled())


@pytest.mark.parametrize("seed", range(GENERATED_MAPPINGS))
def test_a_generated_mapping_file(seed, tmp_path, record_property):
    generated = generate(seed)
    path = tmp_path / "mapping.yml"
    path.write_text(generated.text)
    config = load_mapping(generated.text, str(path))  # the bridge reads every generated file
    findings = lint(config)
    refusals = [f for f in findings if f.check in REFUSING and f.severity == ERROR]
    reference_accepts = accepts([reference_binary()], path)
    replay = f"seed {seed}: `python -m tests.mapping_generator {seed}` prints the file and its lines"
    assert reference_accepts == (not refusals), f"{replay}\n" + "\n".join(map(str, refusals))
    if generated.refused:
        assert {f.check for f in refusals} == {REFUSED[generated.refused]}, replay
        record_property(
            "summary", f"generated mapping {seed}: statsd_exporter refuses it ({generated.refused}), as the lint says"
        )
        return

    found = differences(config)
    rules = {d.line for d in found if not d.metric}
    metrics = {d.metric for d in found if d.metric}
    mapper = Mapper(config)
    clean = [line for line in generated.lines if not excused(line, mapper, rules, metrics)]
    pair = start_pair([], generated.text, tmp_path)
    try:
        for start in range(0, len(clean), 20):
            pair.send(["\n".join(clean[start : start + 20])])
        unflagged = problems(pair)
        assert not unflagged, f"{replay}\n" + "\n".join(unflagged)
    finally:
        pair.stop()
    for example in sorted({d.example for d in found if d.example}):
        # each flag, shown on a pair of its own: what the file's other lines made (a type, a label set) can hide it
        pair = start_pair([], generated.text, tmp_path)
        try:
            pair.send(list(example))
            assert problems(pair), f"{replay}\nno difference from {example}: " + "\n".join(
                str(d) for d in found if d.example == example
            )
        finally:
            pair.stop()
    checks = Counter(d.check.removeprefix("statsd_exporter_") for d in found)
    record_property(
        "summary",
        f"generated mapping {seed}: {len(config.rules)} rules, {len(generated.lines)} lines "
        f"({len(generated.lines) - len(clean)} through flagged rules or names), "
        f"flags {dict(sorted(checks.items())) or 'none'}",
    )
