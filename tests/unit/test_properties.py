"""Property tests: arbitrary bytes never raise, and never cost a good line its count.

The ingest catches what raises on a line (a bug costs that line only), so "never raises" would hold
whatever happened: each test also checks that nothing was caught (internal_errors stays empty), that every
line was counted, and that each rejection was counted under a reason the bridge documents.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from bridge.exposition.text import render_text
from bridge.reasons import REASONS
from tests.conftest import Pipeline, pipeline, sample

garbage_line = st.binary(max_size=200).filter(lambda b: b"\n" not in b and not b.lstrip().startswith(b"good"))
statsd_ish = st.text(alphabet=":|#@,.=[]cgmshd0123456789-+eE naINf\x00é", max_size=60).map(str.encode)
noise = st.one_of(garbage_line, statsd_ish.filter(lambda b: b"\n" not in b and not b.startswith(b"good")))


def assert_nothing_swallowed(bridge: Pipeline, *datagrams: bytes) -> None:
    stats = bridge.stats
    assert not stats.internal_errors, "the ingest caught an exception: a bug, not a rejected line"
    assert stats.lines == sum(len(datagram.split(b"\n")) for datagram in datagrams)
    assert set(stats.sample_errors) | set(stats.event_errors) <= set(REASONS)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 1000)), max_size=20), st.lists(noise, max_size=20))
def test_good_lines_survive_any_neighbours(good, bad):
    bridge = pipeline("mappings:\n- match: 'x.*'\n  name: x_$1\n")
    lines = [f"good.m{metric}:{value}|c".encode() for metric, value in good]
    mixed = []
    for i in range(max(len(lines), len(bad))):
        if i < len(bad):
            mixed.append(bad[i])
        if i < len(lines):
            mixed.append(lines[i])
    bridge.ingest.packet(b"\n".join(mixed))
    assert_nothing_swallowed(bridge, b"\n".join(mixed))
    samples = bridge.samples()  # also proves the exposition still renders and parses
    expected: dict[int, int] = {}
    for metric, value in good:
        expected[metric] = expected.get(metric, 0) + value
    for metric, total in expected.items():
        assert sample(samples, f"good_m{metric}") == total


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_datagrams_never_raise(data):
    bridge = pipeline()
    bridge.ingest.packet(data)
    assert_nothing_swallowed(bridge, data)
    bridge.samples()


@settings(max_examples=300, deadline=None)
@given(statsd_ish)
def test_statsd_shaped_noise_never_raises(data):
    bridge = pipeline("defaults:\n  observer_type: summary\n")
    bridge.ingest.packet(data + b"\n" + data)
    assert_nothing_swallowed(bridge, data + b"\n" + data)
    bridge.samples()


line_values = st.one_of(
    st.integers(-5, 1000).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["+3", "-2.5", "1e3", "nan", "Inf", "1_0", " 1", "", "x", "0", "-0", "1:2"]),
)
line_suffixes = st.sampled_from(
    ["|c", "|g", "|ms", "|h", "|d", "|c|@0.5", "|ms|@0.25", "|c|#a:b", "|g|#a:b,c:d", "|h|#le:1", "|c|#bad",
     "|c|T123", "|ms|#x:y|c:ctr"]
)  # fmt: skip
line_names = st.sampled_from(["m", "m.a", "x.y", "scaled.q", "m,k=v", "m[k=v]", "clash"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(line_names, line_values, line_suffixes), min_size=1, max_size=30))
def test_cached_line_shapes_give_the_same_result_as_full_parsing(parts):
    mapping = "mappings:\n- match: scaled.*\n  name: scaled\n  scale: 0.5\n- match: x.*\n  name: x_$1\n"
    cached, uncached = pipeline(mapping), pipeline(mapping)
    uncached.ingest.shape_limit = 0
    datagram = "\n".join(f"{name}:{value}{suffix}" for name, value, suffix in parts).encode()
    for bridge in (cached, uncached):
        for _ in range(3):  # the first pass fills the cache, the next ones use it
            bridge.ingest.packet(datagram)
        assert_nothing_swallowed(bridge, datagram, datagram, datagram)
    no_self_metrics = CollectorRegistry()
    cached.store.fold_pending()  # as the server does before each render
    uncached.store.fold_pending()
    assert render_text(cached.store, no_self_metrics, 0) == render_text(uncached.store, no_self_metrics, 0)
    # the same counts; each keeps its own mapper (whose cache the shape cache spares)
    assert {**vars(cached.stats), "mapper": None} == {**vars(uncached.stats), "mapper": None}
