"""What the lint says statsd_exporter would do with a mapping file, held against statsd_exporter itself.

Two kinds of finding, each checked through the reference build: what statsd_exporter refuses (a rollback
to it would fail at start-up: `--check-config` warns, `--lint-strict` fails), and where statsd_exporter's
behaviour is a defect the bridge does not copy (the lint says what statsd_exporter does instead, and it does).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest

from bridge.mapping.compat import differences
from bridge.mapping.lint import lint, rollback
from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Mapper
from bridge.mapping.semantics import go_format
from tests.differential import Reference, accepts, parse_families, reference_binary

BRIDGE = [sys.executable, "-m", "bridge"]


def check_config(path, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*BRIDGE, "--check-config", f"--statsd.mapping-config={path}", *flags],
        capture_output=True,
        text=True,
        timeout=30,
    )


# (what, mapping file, the line the finding names): each loads in the bridge and not in statsd_exporter
REFUSED = [
    ("a drop rule without a name", "mappings:\n- match: noisy.*\n  action: drop\n", 2),
    ("a one-character label name", "mappings:\n- match: a.*\n  name: aa\n  labels:\n    x: $1\n", 5),
    ("a ttl in days", "mappings:\n- match: a.*\n  name: aa\n  ttl: 1d\n", 4),
    ("a max_age in weeks", "mappings:\n- match: a.*\n  name: aa\n  summary_options:\n    max_age: 1w\n", 5),
    ("a wildcard inside a part", "mappings:\n- match: api.pool*.*\n  name: pool\n", 2),
    ("a glob part starting with a digit", "mappings:\n- match: 9api.*\n  name: api\n", 2),
    ("a colon in a glob", "mappings:\n- match: api:v1.*\n  name: api\n", 2),
    ("summary options where the default observer is a histogram",
     "defaults:\n  observer_type: histogram\nmappings:\n- match: a.*\n  name: aa\n  summary_options:\n"
     "    max_age: 1m\n", 6),
    ("histogram options where the default observer is a summary",
     "defaults:\n  observer_type: summary\nmappings:\n- match: a.*\n  name: aa\n  histogram_options:\n"
     "    buckets: [1]\n", 6),
    ("outputs, an extension without a name", "mappings:\n- match: a.*\n  outputs:\n  - {name: aa}\n", 3),
]  # fmt: skip


@pytest.mark.parametrize(("what", "text", "line"), REFUSED, ids=[case[0] for case in REFUSED])
def test_what_statsd_exporter_refuses_is_said_before_a_rollback_needs_it(tmp_path, what, text, line):
    path = tmp_path / "mapping.yml"
    path.write_text(text)
    assert not accepts([reference_binary()], path), f"statsd_exporter loads {what} now: drop the check"
    result = check_config(path)
    assert result.returncode == 0, result.stderr  # the bridge reads it, as it always did
    warnings = [row for row in result.stderr.splitlines() if f"{path}:{line}: warning: statsd_exporter" in row]
    assert len(warnings) == 1, result.stderr
    assert check_config(path, "--lint-strict").returncode == 1  # for teams that want to be able to roll back


# (mapping file, the line): UTF-8 names, which the bridge reads only with --statsd.utf8-names
UTF8_REFUSED = [
    ('mappings:\n- match: api.*\n  name: "api.calls"\n', 3),
    ('mappings:\n- match: api.*\n  name: api_calls\n  labels:\n    service.name: "$1"\n', 5),
]


@pytest.mark.parametrize(("text", "line"), UTF8_REFUSED, ids=["name", "label"])
def test_a_utf8_name_statsd_exporter_refuses_is_said_with_the_form_it_would_expose(tmp_path, text, line):
    path = tmp_path / "mapping.yml"
    path.write_text(text)
    assert not accepts([reference_binary()], path), "statsd_exporter loads UTF-8 names now: drop the check"
    assert check_config(path).returncode == 1  # without the flag the bridge refuses the file too
    result = check_config(path, "--statsd.utf8-names")
    assert result.returncode == 0, result.stderr
    found = [row.rsplit("[", 1)[1] for row in result.stderr.splitlines() if f"{path}:{line}: warning:" in row]
    assert sorted(found) == ["statsd_exporter_refuses]", "utf8_name]"], result.stderr


EXTENSIONS = "mappings:\n- match: build.*\n  name: builds_total\n  type: counter\n  value: count\n  tags: {}\n"


def test_an_extension_statsd_exporter_ignores_is_said_and_a_declared_file_is_left_alone(tmp_path):
    path = tmp_path / "mapping.yml"
    path.write_text(EXTENSIONS)
    assert accepts([reference_binary()], path)  # it loads there, and counts each line's own kind and tags
    result = check_config(path)
    flagged = [row for row in result.stderr.splitlines() if "[statsd_exporter_extension]" in row]
    assert [row.split(": warning: ")[0] for row in flagged] == [f"{path}:{n}" for n in (4, 5, 6)], result.stderr
    assert check_config(path, "--lint-strict").returncode == 1
    path.write_text("statsd_bridge_extensions: true\n" + EXTENSIONS)
    declared = check_config(path, "--lint-strict")
    # no finding a rule: one line, which the reference build bears out (it loaded the file above)
    assert declared.returncode == 0, declared.stderr
    assert declared.stderr.splitlines() == [
        f"{path}: statsd_exporter would load this file but ignore the bridge's mapping extensions `tags`, `type`, "
        "`value`; a rollback to statsd_exporter needs another mapping file"
    ]
    path.write_text("statsd_bridge_extensions: true\nmappings:\n- match: a.*\n  name: aa\n")
    stale = check_config(path)
    assert "declares the bridge's mapping extensions but uses none" in stale.stderr


@pytest.mark.parametrize(
    "text",
    [
        "mappings:\n- match: a.*\n  name: aa\n  ttl: 30\n",  # 30 nanoseconds, in both
        "mappings:\n- match: a.*\n  name: aa\n  ttl: 1.5\n",
        "mappings:\n- match: a.*\n  name: aa\n  ttl: 10μs\n",
        "mappings:\n- match: ''\n  match_type: regex\n  name: everything\n",
    ],
)
def test_what_statsd_exporter_accepts_the_bridge_accepts(tmp_path, text):
    path = tmp_path / "mapping.yml"
    path.write_text(text)
    assert accepts([reference_binary()], path)
    result = check_config(path)
    assert result.returncode == 0, result.stderr
    assert "statsd_exporter refuses" not in result.stderr


def test_a_bare_number_of_a_duration_is_nanoseconds_as_there_and_the_lint_says_so(tmp_path):
    path = tmp_path / "mapping.yml"
    path.write_text("mappings:\n- match: a.*\n  name: aa\n  ttl: 30\n")
    assert load_mapping(path.read_text()).rules[0].outputs[0].ttl == pytest.approx(30e-9)
    assert "`ttl: 30` is 30 nanoseconds" in check_config(path).stderr


def test_a_help_that_is_no_string_is_refused_by_both(tmp_path):
    path = tmp_path / "mapping.yml"
    path.write_text("mappings:\n- match: a.*\n  name: aa\n  help: [x]\n")
    assert not accepts([reference_binary()], path)
    result = check_config(path)
    assert result.returncode == 1 and f"{path}:4: help: must be a string" in result.stderr


def serve(mapping: str, lines: list[str], tmp_path) -> str:
    """statsd_exporter's page after these lines, or the error of its scrape."""
    path = tmp_path / "mapping.yml"
    path.write_text(mapping)
    reference = Reference(reference_binary(), [f"--statsd.mapping-config={path}"])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for line in lines:
                sock.sendto(line.encode(), reference.udp)
        deadline = time.monotonic() + 10
        while True:
            try:
                text = reference.metrics()
            except urllib.error.HTTPError as error:
                return f"HTTP {error.code}"
            if f"statsd_exporter_lines_total {len(lines)}\n" in text or time.monotonic() > deadline:
                time.sleep(0.4)  # its events are applied in batches, every 200 ms at the latest
                try:
                    return reference.metrics()
                except urllib.error.HTTPError as error:
                    return f"HTTP {error.code}"
            time.sleep(0.05)
    finally:
        reference.stop()


TEMPLATES = ["$1%", "50%_$1", "100%", "$1 %d $1", "%%$1", "$1 $12", "$1 $1}", "${1}$1", "a%5s|$1", "%-4s|$1",
             "%.1s$1", "%x$1", "%v-$1", "%!$1", "$2/$1", "x$1y$2z"]  # fmt: skip


def test_go_formatter_model_writes_what_statsd_exporter_writes(tmp_path):
    labels = {f"l{i:02d}": template for i, template in enumerate(TEMPLATES)}
    mapping = "mappings:\n- match: t.*.*\n  name: templated\n  labels:\n" + "".join(
        f"    {label}: '{template}'\n" for label, template in labels.items()
    )
    page = serve(mapping, ["t.first.second:1|c"], tmp_path)
    (_, served), *_ = parse_families(page)["templated"].samples
    served = dict(served)
    for label, template in labels.items():
        assert go_format(template, ["first", "second"]) in (served[label], None), template


# (match, match_type, the line's name, {run-on template: what its advised fix gives})
RUN_ONS = [
    ("t.*.*", "glob", "t.first.second", {"$1_x": "first_x", "$1$2": "firstsecond", "$01_x": "first_x"}),
    (r"^t\.(\w+)\.(\w+)$", "regex", "t.first.second",
     {"$1_x": "first_x", "$01_x": "first_x", "$0_x": "t.first.second_x"}),
]  # fmt: skip


@pytest.mark.parametrize(("match", "match_type", "name", "meant"), RUN_ONS, ids=[case[1] for case in RUN_ONS])
def test_a_run_on_is_empty_in_statsd_exporter_and_the_lints_advice_gives_what_was_meant(
    tmp_path, match, match_type, name, meant
):
    run_ons = {f"r{i}": template for i, template in enumerate(meant)}
    mapping = f"mappings:\n- match: '{match}'\n  match_type: {match_type}\n  name: runs\n  labels:\n" + "".join(
        f"    {label}: '{template}'\n" for label, template in run_ons.items()
    )
    advice = {}
    for finding in lint(load_mapping(mapping, "m.yml")):
        label = re.match(r"label (r\d+): ", finding.message)
        assert finding.check == "run_on_reference" and label, finding
        advice[label.group(1).replace("r", "f")] = re.search(r"write `(.*)`$", finding.message).group(1)
    assert len(advice) == len(run_ons)
    fixed = mapping + "".join(f"    {label}: '{template}'\n" for label, template in advice.items())
    page = serve(fixed, [f"{name}:1|c"], tmp_path)
    (_, served), *_ = parse_families(page)["runs"].samples
    served = dict(served)
    for label, template in run_ons.items():
        assert served[label] == "", (template, served)
        assert served[label.replace("r", "f")] == meant[template], (template, advice, served)
    targets = Mapper(load_mapping(fixed)).map(name, "counter").targets
    assert targets[0].labels == served  # and the bridge makes the same of both


def test_a_twelfth_capture_is_no_run_on_and_statsd_exporter_fills_it(tmp_path):
    parts = [f"p{i}" for i in range(1, 13)]
    mapping = f"mappings:\n- match: '{'.'.join(['*'] * 12)}'\n  name: twelve\n  labels:\n    last: '$12'\n"
    assert [finding.check for finding in lint(load_mapping(mapping, "m.yml"))] == []
    page = serve(mapping, [".".join(parts) + ":1|c"], tmp_path)
    (_, served), *_ = parse_families(page)["twelve"].samples
    assert dict(served) == {"last": "p12"}


# (check, mapping, lines, what statsd_exporter's page shows, what the bridge's shows)
DEFECTS = [
    ("statsd_exporter_unreachable", "mappings:\n- match: a.b.c\n  name: long\n- match: a.b\n  name: short\n",
     ["a.b:1|c"], "a_b 1", "short 1"),
    ("statsd_exporter_order",
     "mappings:\n- match: a.*\n  name: first\n- match: '*.b'\n  name: middle\n- match: a.*\n  name: again\n",
     ["a.b:1|c"], "middle 1", "first 1"),
    ("statsd_exporter_unreachable",
     "defaults:\n  glob_disable_ordering: true\nmappings:\n- match: a.b.x\n  name: lx\n- match: a.b.y.z.w\n"
     "  name: ly\n- match: a.*.q.r\n  name: star\n", ["a.b.q.r:1|c"], "a_b_q_r 1", "star 1"),
    ("statsd_exporter_template", "mappings:\n- match: p.*\n  name: pct\n  labels:\n    share: '$1%'\n",
     ["p.q:1|c"], 'pct{share="q%!(NOVERB)"} 1', 'pct{share="q%"} 1'),
    ("statsd_exporter_scrape_error",
     "mappings:\n- match: h.*\n  name: hh\n  help: one\n- match: k.*\n  name: hh\n  help: two\n",
     ["h.a:1|c", "k.b:1|c|#tag:v"], "HTTP 500", 'hh{tag="v"} 1'),
    ("statsd_exporter_scrape_error",
     "defaults:\n  observer_type: histogram\nmappings:\n- match: a.*\n  name: lat_count\n- match: b.*\n"
     "  name: lat\n", ["a.x:1|h", "b.x:1|h"], "HTTP 500", "lat_count_count 1"),
    ("statsd_exporter_conflict",
     "mappings:\n- match: a.*\n  name: depth\n  match_metric_type: gauge\n- match: b.*\n  name: depth_count\n"
     "  match_metric_type: counter\n", ["a.x:1|g", "b.x:1|c"],
     'statsd_exporter_events_conflict_total{type="counter"} 1', "depth_count 1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("check", "mapping", "lines", "theirs", "ours"), DEFECTS, ids=[f"{case[0]}-{i}" for i, case in enumerate(DEFECTS)]
)
def test_each_statsd_exporter_defect_is_flagged_and_is_what_statsd_exporter_does(
    tmp_path, bridge_factory, check, mapping, lines, theirs, ours
):
    found = [d for d in differences(load_mapping(mapping, "m.yml")) if d.check == check]
    assert found and all("statsd_exporter" in d.message for d in found)
    assert theirs in serve(mapping, lines, tmp_path)
    path = tmp_path / "ours.yml"
    path.write_text(mapping)
    bridge = bridge_factory(f"--statsd.mapping-config={path}")
    bridge.send_udp("\n".join(lines))
    deadline = time.monotonic() + 5
    while ours not in bridge.metrics():
        assert time.monotonic() < deadline, bridge.metrics()
        time.sleep(0.05)


def test_a_file_without_these_constructs_gets_no_statsd_exporter_finding():
    text = (
        "defaults:\n  observer_type: histogram\nmappings:\n- match: api.*.latency\n  name: api_latency_seconds\n"
        "  labels:\n    route: $1\n- match: api.*.hits\n  name: api_hits_total\n  labels:\n    route: $1\n"
        "- match: (\\w+)\\.deploys\\.(\\w+)$\n  match_type: regex\n  name: deploys_total\n  labels:\n"
        "    service: $1\n    env: $2\n- match: debug.*\n  action: drop\n  name: dropped\n"
    )
    assert [f for f in lint(load_mapping(text, "m.yml")) if "statsd_exporter" in f.check] == []


ROOT = Path(__file__).resolve().parents[2]


def mapping_examples() -> list[tuple[str, str]]:
    """(where, text) of every shipped mapping file and every mapping file shown in README.md and docs/."""
    examples = [(f"mappings/{path.name}", path.read_text()) for path in sorted((ROOT / "mappings").glob("*.yml"))]
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for number, block in enumerate(re.findall(r"```yaml\n(.*?)```", doc.read_text(), re.S)):
            if re.search(r"^mappings:", block, re.M):
                examples.append((f"{doc.name} block {number}", block))
    return examples


@pytest.mark.parametrize(("where", "text"), mapping_examples(), ids=[where for where, _ in mapping_examples()])
def test_every_shipped_and_documented_mapping_loads_in_statsd_exporter_or_says_it_cannot(tmp_path, where, text):
    path = tmp_path / "mapping.yml"
    path.write_text(text)
    config = load_mapping(text, str(path))
    if config.extensions_declared:
        # what --check-config says of a rollback with it, as the reference build has it
        refused = "statsd_exporter refuses this file" in rollback(config)
        assert refused == (not accepts([reference_binary()], path)), (where, rollback(config))
        return
    assert accepts([reference_binary()], path), where
    assert not [f for f in lint(config) if f.check in ("statsd_exporter_refuses", "statsd_exporter_extension")]


def test_the_migration_guides_example_prints_what_the_guide_shows(tmp_path):
    guide = (ROOT / "docs" / "migrating.md").read_text()
    section = guide.split("For\nthis `mapping.yml`:", 1)[1]
    mapping, output = re.findall(r"```(?:yaml)?\n(.*?)```", section, re.S)[:2]
    (tmp_path / "mapping.yml").write_text(mapping)
    result = subprocess.run(
        [*BRIDGE, "--check-config", "--statsd.mapping-config", "mapping.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert result.stdout == "configuration OK (2 mapping rules, 1 lint warning)\n"
    assert result.stderr == output
