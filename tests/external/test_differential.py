"""The drop-in promise, checked: statsd_exporter and the bridge, same flags, same mapping, same datagrams.

Every family either serves is compared (tests/differential.py), except each one's own self-metrics.
Inputs whose handling differs on purpose are listed once, in DIVERGENCES, with both behaviours and
the reason; the README's "Differences from statsd_exporter" table says the same. Each entry is
itself tested: its example must still differ, the way the entry says, or the entry goes.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import BridgeProcess, start_bridge
from tests.differential import Pair, Reference, accepts, compare, reference_binary, sampled_families, start_pair

# one process, and two receiving workers with the same answers
pytestmark = pytest.mark.usefixtures("each_worker_count")

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Divergence:
    name: str
    example: str  # a line that shows it
    statsd_exporter: str
    bridge: str
    why: str
    pattern: str  # a regex: the lines of this class, which the fuzz leaves out
    error: str = ""  # where both make no series: the reason the bridge counts, and the reference doesn't

    def covers(self, line: str) -> bool:
        return re.search(self.pattern, line) is not None


# What the reference build (0.23.0) does differently from the bridge, and why. The first group are
# features statsd_exporter added after 0.23.0, where the bridge follows 0.30.0 (its source and tests).
DIVERGENCES = [
    Divergence(
        "container id",
        "cid:1|c|#env:prod|c:4f9c0e2a",
        "0.23.0: no label (0.29.0 and later: a container_id label)",
        "a container_id label, as 0.29.0 and later",
        "the reference predates DogStatsD 1.2 support (0.29.0)",
        r"\|c:",
    ),
    Divergence(
        "extended aggregation",
        "ext:1:2:3|ms",
        "0.23.0: one odd observation (0.27.1 and later: three)",
        "three observations, as 0.27.1 and later",
        "the reference predates extended aggregation (0.27.1)",
        r"^[^|]*:[^|]*:",
    ),
    Divergence(
        "five components",
        "five:1|c|@0.5|#a:b|#c:d",
        "0.23.0: malformed_component beyond 4 (0.29.0 and later: beyond 5)",
        "up to 5, as 0.29.0 and later",
        "0.29.0 made room for the container id field",
        r"^(?:[^|]*\|){4}",
    ),
    Divergence(
        "non-finite observation",
        "nanobs:NaN|h",
        "observed: the sum is NaN from then on",
        "rejected (non_finite_observation), counted and logged",
        "one NaN would poison the series' sum and every rate() over it until a restart",
        r"(?i):[+-]?(nan|inf)",
    ),
    Divergence(
        "observer rate outside (0, 1]",
        "bigrate:5|ms|@2",
        "int(1/rate) observations: none, silently",
        "rejected (invalid_sample_factor), counted and logged",
        "a line that silently does nothing is a bug nobody finds; a client sending it wants to know",
        r"\|(ms|h|d)\|.*@(-|[1-9]|0*1\.0*[1-9])",
        error="invalid_sample_factor",
    ),
    Divergence(
        "container id without tags",
        "cidonly:1|c|c:4f9c0e2a",
        "0.23.0 counts an invalid_sample_factor and keeps it unlabelled; 0.30.0 splits the line at the id's "
        "colon as the old multi-metric form and loses it",
        "read as DogStatsD: container_id label",
        "the datadog client sends exactly this when a container id is set and a metric has no tags",
        r"\|c:",
    ),
]
DIVERGENCES.append(
    Divergence(
        "unknown field",
        "odd.field:1|c|zz",
        "0.23.0 counts an invalid_sample_factor and keeps the sample; 0.30.0 counts it and drops the sample",
        "as 0.30.0: counted (invalid_sample_factor), the sample dropped",
        "the reference predates 0.30.0's stricter reading; a field nobody knows may change the meaning",
        r"^[^|]*\|[^|]*\|(?![@#T]|c:|e:|card:)",
    )
)
# Inputs the reference can't be sent at all: a `quantile` tag on a summary or `le` on a histogram
# makes statsd_exporter panic and exit (0.23.0 checked; 0.30.0 builds the vector the same way).
# The bridge drops that tag, counts a tag error and keeps the line: tests/integration/test_hardening.py.
CRASHES_REFERENCE = r"#(?:[^|]*,)?(le|quantile):|[,#\[](le|quantile)="


def assert_same(pair: Pair, context: str = "") -> None:
    reference, bridge = pair.families()
    problems = compare(reference, bridge, pair.sampled())
    assert not problems, f"{context}\n" + "\n".join(problems)


@pytest.fixture
def pair_factory(tmp_path):
    started: list[Pair] = []

    def factory(args: list[str] | None = None, mapping: str | None = None, sentinel: bool = True) -> Pair:
        pair = start_pair(args or [], mapping, tmp_path, sentinel)
        started.append(pair)
        return pair

    yield factory
    for pair in started:
        pair.stop()


# Every line form both know, one metric name each, so a line one side rejects shows as a family
# the other serves.
CORPUS = [
    "plain.counter:1|c", "plain.counter:2|c", "rated.counter:1|c|@0.1", "big.rate.counter:3|c|@2",
    "zero.rate:1|c|@0", "bad.rate:1|c|@abc", "gauge.abs:42|g", "gauge.rel:10|g", "gauge.rel:+5|g",
    "gauge.rel:-3|g", "gauge.neg:-7|g", "gauge.rated:4|g|@0.5", "timer.ms:320|ms", "timer.ms:100|ms",
    "timer.rated:50|ms|@0.25", "hist.h:0.5|h", "dist.d:0.7|d", "dist.d:0.9|d|#k:v",
    "dog.tags:1|c|#env:prod,region:eu", "dog.hash:1|c|#env:prod,#region:eu", "dog.bare:1|c|#solo",
    "dog.emptyv:1|c|#a:,b:c", "dog.emptyk:1|c|#:x,b:c", "dog.dup:1|c|#a:b,a:c", "dog.keyesc:1|c|#my-key:v,my.key:w",
    "influx.tags,env=prod,region=us:1|c", "librato.tags#env=qa,zone=z1:1|c", "signalfx[env=stage,zone=z2]:1|c",
    "signalfx.mid[env=stage].tail:1|c", "lone[bracket:1|c", "multi.value:1|c:2|c", "multi.mixed:1|g:2|c:3|ms",
    "dotted.name.here:3|c", "with-dash--name:1|c", "1starts.digit:1|c", "neg.counter:-1|c",
    "bad.value:abc|c", "set.metric:5|s", "set.member:alice|s|#env:prod", "set.bad:bob|s||x",
    "noval", "nopipe:1", "emptytype:1|", "badtype:1|x",
    "empty.comp:1|c||#a:b", "timestamped:1|c|T1700000000", "under.value:1_000|c", "hex.value:0x1p-2|g",
    "hex.nop:0x10|c", "exp.value:1e3|c", "inf.gauge:+Inf|g", "nan.gauge:NaN|g", "mixed,a=b:1|c|#c:d",
    "unicode.näme:1|c", "tag.value.unicode:1|c|#name:héllo wörld", "quote.value:1|c|#q:say \"hi\"",
    "backslash.value:1|c|#p:C:\\dir", "type.conflict:1|c", "type.conflict:2|g", "label.sets:1|c|#a:b",
    "label.sets:1|c|#c:d", "label.sets:1|c", "_e{5,4}:title|text", "_sc|check|0",
    # values to the last bit: client_golang sums whole and fractional increments apart (1.3 here, where
    # one float sum gives 1.3000000000000003), and divides by 1000 and by the rate
    "split.sum:0.1|c", "split.sum:1|c", "split.sum:0.2|c", "split.sum:7|c|@0.5", "timer.exact:2300|ms",
    "timer.exact:0.7|ms", "hist.exact:0.1|h", "hist.exact:0.2|h", "rated.third:3|c|@0.3", "rated.third:1|c|@0.7",
    "gauge.delta:0.1|g", "gauge.delta:+0.2|g", "gauge.delta:-0.3|g", "negzero.gauge:-0|g", "trailing.newline:1|c\n",
    # digits of other scripts, which Python's float() reads and Go's ParseFloat does not
    "arabic.digit:\u0663|c", "fullwidth.digit:\uff13|g", "arabic.rate:1|c|@0.\u0665", "arabic.stamp:1|c|T\u0661\u0662",
]  # fmt: skip


def test_every_line_form_gives_the_same_series(pair_factory):
    pair = pair_factory()
    pair.send(CORPUS)
    assert_same(pair)


def test_invalid_utf8_costs_only_its_line(pair_factory):
    pair = pair_factory()
    pair.send([b"bad\xffname:1|c\ngood.neighbour:1|c", b"value:1\xfe|c"])
    assert_same(pair)


MAPPING = r"""
defaults:
  observer_type: histogram
  buckets: [0.01, 0.1, 1]
mappings:
- match: app.*.requests
  name: app_requests_total
  help: Requests by app.
  labels:
    app: $1
    kind: web
- match: app.*.latency
  name: app_latency_seconds
  labels:
    app: $1
- match: app.*.summary
  name: app_summary_seconds
  observer_type: summary
  summary_options:
    quantiles: [{quantile: 0.5, error: 0.05}, {quantile: 0.75, error: 0.01}]
  labels:
    app: $1
- match: jobs.*.*
  match_metric_type: gauge
  name: jobs_$2
  labels:
    queue: $1
- match: jobs.*.*
  name: jobs_$2_total
  labels:
    queue: $1
- match: drop.*
  action: drop
  name: dropped
- match: (\w+)\.deploys\.(\w+)$
  match_type: regex
  name: deploys_total
  labels:
    service: $1
    env: $2
- match: ^rx\.(?P<svc>[a-z]+)\.(\d+)$
  match_type: regex
  name: rx_${2}
  labels:
    svc: ${svc}
    code: $2
    whole: $0
- match: old.timer.*
  timer_type: histogram
  buckets: [0.5, 5]
  name: old_timer_seconds
  labels:
    which: $1
- match: ttl.*
  name: with_ttl
  ttl: 1h
  labels:
    which: $1
"""


def test_a_mapping_with_every_key_both_know(pair_factory):
    pair = pair_factory(mapping=MAPPING)
    lines = [
        "app.web.requests:1|c|#env:prod",
        "app.api.requests:2|c",
        "app.web.latency:20|ms",
        "app.web.latency:0.5|h",
        "app.api.latency:3|d|#region:eu",
        "app.web.summary:1|h",
        "app.web.summary:2|h",
        "app.web.summary:3|h",
        "jobs.mail.depth:4|g",
        "jobs.mail.done:1|c",
        "drop.me:1|c",
        "web.deploys.prod:1|c",
        "rx.auth.200:1|c",
        "rx.auth.abc:1|c",
        "old.timer.a:300|ms",
        "ttl.a:1|c",
        "unmapped.thing:1|ms",
        "app.web.requests:1|g",
    ]
    pair.send(lines)
    assert_same(pair)


def readme_mapping_blocks() -> list[str]:
    """The mapping examples of statsd_exporter's README (0.30.0), checked in as test data."""
    text = (ROOT / "tests" / "data" / "statsd_exporter_readme_mappings.yml").read_text()
    return [block for block in text.split("\n---\n") if "mappings:" in block]


def lines_for(mapping: str) -> list[str]:
    """Lines that exercise each glob rule of a mapping (each * a word), and some that match none, as every kind."""
    names = [
        "test.timing.a.b.c",
        "foo.bar.baz",
        "web.signup.google.ok",
        "test.dispatcher.p.a.o",
        "test.x.y.counter",
        "myhost.exec--http.status.200.count",
        "http.request.404",
        "a.b",
        "x",
        "foo.latency_ms",
        "bar.processed_kb",
        "baz.latency_us",
    ]
    for match in re.findall(r"match: \"?([^\"\n]+)\"?", mapping):
        if "\\" not in match and "(" not in match:
            names.append(match.replace("*", "w1", 1).replace("*", "w2", 1).replace("*", "w3"))
    return [f"{name}:{value}|{kind}" for name in names for value, kind in (("1", "c"), ("7", "g"), ("12", "ms"))]


# `scale` arrived in 0.24.0, after the reference build: test_scale_as_0_24_defines_it checks that block
MAPPING_EXAMPLES = [
    *[block for block in readme_mapping_blocks() if "scale:" not in block],
    (ROOT / "tests/data/statsd_exporter_config.example.yml").read_text(),
]


@pytest.mark.parametrize("mapping", MAPPING_EXAMPLES, ids=[f"example{i}" for i in range(len(MAPPING_EXAMPLES))])
def test_statsd_exporters_own_example_mappings(pair_factory, tmp_path, mapping):
    path = tmp_path / "example.yml"
    path.write_text(mapping)
    reference_accepts = accepts([reference_binary()], path)
    assert accepts([sys.executable, "-m", "bridge"], path) == reference_accepts, mapping
    if not reference_accepts:
        return  # both refuse it (two README blocks have escapes YAML doesn't allow in double quotes)
    pair = pair_factory(mapping=mapping, sentinel="action: drop" not in mapping)
    pair.send(lines_for(mapping))
    assert_same(pair, mapping)


@pytest.mark.parametrize("divergence", DIVERGENCES, ids=[d.name for d in DIVERGENCES])
def test_each_listed_divergence_still_differs(pair_factory, divergence):
    assert divergence.covers(divergence.example), "an entry's pattern must cover its own example"
    pair = pair_factory()
    pair.send([divergence.example])
    reference, bridge = pair.families()
    if divergence.error:
        assert not reference and not bridge
        assert f'statsd_bridge_sample_errors_total{{reason="{divergence.error}"}} 1\n' in pair.bridge.metrics()
        assert "statsd_exporter_sample_errors_total{" not in pair.reference.metrics()
        return
    assert compare(reference, bridge), f"{divergence.name}: both now agree; drop the entry (and the README row)"


def test_the_newer_features_behave_as_statsd_exporter_0_30_defines_them(bridge_factory):
    # where the reference (0.23.0) is older than the target (0.30.0), the bridge is checked against
    # 0.30.0's own tests: pkg/line/line_test.go (extended aggregation, container id, five components)
    bridge = bridge_factory()
    bridge.send_udp(
        "cid:1|c|#env:prod|c:4f9c0e2a", "ext:1:2:3|ms", "five:1|c|@0.5|#a:b|#c:d", "six:1|c|@1|#a:b|#c:d|#e:f"
    )
    samples = bridge.wait_for(
        lambda s: ("ext_count", frozenset()) in s and ("five", frozenset({("a", "b"), ("c", "d")})) in s
    )
    assert samples is not None, bridge.metrics()
    assert samples[("cid", frozenset({("env", "prod"), ("container_id", "4f9c0e2a")}))] == 1
    assert samples[("ext_count", frozenset())] == 3
    assert samples[("ext_sum", frozenset())] == pytest.approx(0.006)
    assert samples[("five", frozenset({("a", "b"), ("c", "d")}))] == 2
    assert not any(name == "six" for name, _ in samples)


def test_scale_as_0_24_defines_it(bridge_factory, tmp_path):
    # statsd_exporter's README example for `scale` (0.24.0, after the reference build)
    (mapping,) = [block for block in readme_mapping_blocks() if "scale:" in block]
    path = tmp_path / "scale.yml"
    path.write_text(mapping)
    bridge = bridge_factory("--statsd.mapping-config", str(path))
    bridge.send_udp("foo.latency_ms:250|g", "bar.processed_kb:3|c", "baz.latency_us:1500|g")
    samples = bridge.wait_for(lambda s: ("baz_latency_seconds", frozenset()) in s)
    assert samples is not None, bridge.metrics()
    assert samples[("foo_latency_seconds", frozenset())] == pytest.approx(0.25)
    assert samples[("bar_processed_bytes", frozenset())] == 3072
    assert samples[("baz_latency_seconds", frozenset())] == pytest.approx(0.0015)


@pytest.fixture
def unmapped_pair():
    """statsd_exporter and the bridge without a mapping, for inputs that leave the reference unable to compare."""
    reference = Reference(reference_binary(), [])
    try:
        bridge = start_bridge()
    except BaseException:
        reference.stop()
        raise
    yield reference, bridge
    reference.stop()
    bridge.stop()


def send_to_both(pair: tuple[Reference, BridgeProcess], payload: bytes) -> None:
    reference, bridge = pair
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for target in (reference.udp, bridge.addresses["udp"]):
            sock.sendto(payload, target)


def test_a_reserved_tag_crashes_the_reference_and_costs_the_bridge_nothing(unmapped_pair):
    reference, bridge = unmapped_pair
    send_to_both(unmapped_pair, b"crash.q:1|ms|#quantile:5\nafter:1|c")
    assert reference.process.wait(timeout=10) != 0
    assert "is not allowed as label name in summaries" in reference.process.stdout.read()
    samples = bridge.wait_for(lambda s: ("after", frozenset()) in s)
    assert samples is not None and samples[("crash_q_count", frozenset())] == 1


def test_an_empty_metric_name_breaks_the_references_scrapes_and_costs_the_bridge_one_line(unmapped_pair):
    # `,a=b:1|c` is a name of tags only: statsd_exporter makes a metric named "" and fails every scrape
    # from then on; the bridge rejects the line (malformed_line) and keeps the rest
    reference, bridge = unmapped_pair
    send_to_both(unmapped_pair, b",a=b:1|c\nafter.empty:1|c")
    deadline = time.monotonic() + 10
    while True:
        try:
            reference.metrics()
        except urllib.error.HTTPError as error:
            assert error.code == 500 and '"" is not a valid metric name' in error.read().decode()
            break
        assert time.monotonic() < deadline, "statsd_exporter kept serving"
        time.sleep(0.05)
    samples = bridge.wait_for(lambda s: ("after_empty", frozenset()) in s)
    assert samples is not None
    assert samples[("statsd_bridge_sample_errors_total", frozenset({("reason", "malformed_line")}))] == 1


DIALECT_LINES = [
    "d.tags:1|c|#env:prod,region:eu", "i.tags,env=prod:1|c", "l.tags#env=qa:1|c", "s.tags[env=stage]:1|c",
    "s.lone[x:1|c", "mixed,a=b:1|c|#c:d", "plain:1|c", "dog.colon:1|c|#a:b:2,c:d",
]  # fmt: skip


@pytest.mark.parametrize("dialect", ["dogstatsd", "influxdb", "librato", "signalfx", "all"])
def test_tag_dialects_switched_off(pair_factory, dialect):
    dialects = ["dogstatsd", "influxdb", "librato", "signalfx"] if dialect == "all" else [dialect]
    pair = pair_factory([f"--no-statsd.parse-{name}-tags" for name in dialects])
    pair.send(DIALECT_LINES)
    assert_same(pair, dialect)


# The fuzz: a grammar of StatsD lines, every example a datagram or two sent to both.
_WORDS = st.sampled_from(["a", "b", "req", "db-1", "x_y", "9", "Ab", "é"])
NAMES = st.lists(_WORDS, min_size=1, max_size=3).map(".".join)
TAG_KEYS = st.sampled_from(["env", "region", "k", "dash-key", "dot.key", "9k", ""])
TAG_VALUES = st.sampled_from(["prod", "eu-1", "v", "", "a=b", "x:y", "s p"])
VALUES = st.one_of(
    st.integers(-5, 1000).map(str),
    st.sampled_from(["0.5", "+3", "-2", "1e3", ".25", "1.", "abc", "", "1_0", "0x1p1"]),
)
TYPES = st.sampled_from(["c", "c", "g", "ms", "h", "d", "s", "x"])
RATES = st.sampled_from(["", "", "", "|@0.5", "|@0.1", "|@1", "|@0", "|@abc", "|@2"])


@st.composite
def statsd_lines(draw) -> str:
    name = draw(NAMES)
    tags = draw(st.lists(st.tuples(TAG_KEYS, TAG_VALUES), max_size=3))
    style = draw(st.sampled_from(["none", "dogstatsd", "influxdb", "librato", "signalfx"]))
    suffix = ""
    if tags and style == "dogstatsd":
        suffix = "|#" + ",".join(f"{k}:{v}" if v else k for k, v in tags)
    elif tags and style != "none":
        joined = ",".join(f"{k}={v}" for k, v in tags)
        name = {"influxdb": f"{name},{joined}", "librato": f"{name}#{joined}", "signalfx": f"{name}[{joined}]"}[style]
    values = draw(st.lists(st.tuples(VALUES, TYPES), min_size=1, max_size=2))
    if suffix:  # DogStatsD: one value, suffix after the rate
        value, kind = values[0]
        return f"{name}:{value}|{kind}{draw(RATES)}{suffix}"
    return name + ":" + ":".join(f"{value}|{kind}{draw(RATES)}" for value, kind in values)


_EXAMPLE = itertools.count()
FUZZ_EXAMPLES = int(os.environ.get("DIFFERENTIAL_FUZZ_EXAMPLES", "60"))


@pytest.fixture(scope="module")
def fuzz_pair(tmp_path_factory):
    pair = start_pair([], None, tmp_path_factory.mktemp("fuzz"))
    yield pair
    pair.stop()


@pytest.mark.timeout(max(120, FUZZ_EXAMPLES))  # about 0.25 s an example: both peers answer each one
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(lines=st.lists(statsd_lines(), min_size=1, max_size=12))
def test_generated_lines_give_the_same_series(fuzz_pair, lines):
    # each example has names of its own, so a failing one replays alone as hypothesis shrinks it
    prefix = f"f{next(_EXAMPLE)}_"
    lines = [prefix + line for line in lines]
    kept = [
        line
        for line in lines
        if not any(d.covers(line) for d in DIVERGENCES) and not re.search(CRASHES_REFERENCE, line)
    ]
    fuzz_pair.send(["\n".join(kept)] if kept else [])
    reference, bridge = fuzz_pair.families()
    mine = {name: family for name, family in bridge.items() if name.startswith(prefix)}
    theirs = {name: family for name, family in reference.items() if name.startswith(prefix)}
    problems = compare(theirs, mine, sampled_families(kept))
    assert not problems, "\n".join(kept) + "\n" + "\n".join(problems)


GO_REGEX_MAPPING = r"""
mappings:
- match: ^end\.(\w+)\z
  match_type: regex
  name: end_anchor
  labels:
    word: $1
- match: ^letters\.(\pL+)$
  match_type: regex
  name: unicode_letters
  labels:
    word: $1
- match: ^posix\.([[:alpha:]]+)$
  match_type: regex
  name: posix_class
  labels:
    word: $1
- match: ^ascii\.(\w+)
  match_type: regex
  name: ascii_word
  labels:
    word: $1
- match: ^(?i)CASE\.(x+)$
  match_type: regex
  name: case_insensitive
  labels:
    word: $1
"""


def test_go_regex_dialect(pair_factory):
    pair = pair_factory(mapping=GO_REGEX_MAPPING)
    pair.send(
        [
            "end.abc:1|c",
            "end.abc.x:1|c",
            "letters.Ωméga:1|c",
            "posix.abc:1|c",
            "posix.ab1:1|c",
            "ascii.abΩ:1|c",
            "case.xx:1|c",
            "CASE.XX:1|c",
        ]
    )
    assert_same(pair)


def test_buckets_out_of_order_are_refused_at_load_where_the_reference_panics_later(tmp_path):
    mapping = tmp_path / "bad.yml"
    mapping.write_text(
        "mappings:\n- match: a.*\n  name: aa\n  observer_type: histogram\n  histogram_options:\n    buckets: [1, 0.5]\n"
    )
    assert accepts([reference_binary()], mapping)  # its --check-config passes...
    reference = Reference(reference_binary(), [f"--statsd.mapping-config={mapping}"])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"a.x:1|h", reference.udp)
        assert reference.process.wait(timeout=10) != 0  # ...and the first observation kills it
        assert "histogram buckets must be in increasing order" in reference.process.stdout.read()
    finally:
        reference.stop()
    assert not accepts([sys.executable, "-m", "bridge"], mapping)  # refused at load, naming file:line


@pytest.mark.parametrize("accept", ["", "text/plain;version=0.0.4;escaping=allow-utf-8"], ids=["none", "allow-utf-8"])
def test_a_scrape_naming_no_scheme_gets_the_content_type_of_the_reference(unmapped_pair, accept):
    """Without `escaping=` both name no scheme; with one, the bridge echoes it where the reference build
    ignores it (docs/prometheus3.md, docs/migrating.md)."""
    reference, bridge = unmapped_pair
    headers = {"Accept": accept} if accept else {}
    request = urllib.request.Request(f"http://127.0.0.1:{reference.web_port}/metrics", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        theirs = response.headers["Content-Type"]
    _, ours_headers, _ = bridge.get(headers=headers)
    assert "escaping" not in theirs
    if accept:
        assert ours_headers["Content-Type"].endswith("; escaping=allow-utf-8")
    else:
        assert ours_headers["Content-Type"] == theirs
