"""Names escaped as prometheus/common escapes them: model.EscapeName's vectors from its own
model/metric_test.go (TestEscapeName), EscapeMetricFamily's rule for a whole family, and the escaping
scheme read from an Accept header as its expfmt.Negotiate reads it."""

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as text_string_to_families

from bridge.exposition.escaping import escape_name, family_as_served
from bridge.exposition.negotiate import negotiate
from bridge.exposition.openmetrics import OpenMetricsView
from bridge.exposition.protobuf import render
from bridge.exposition.text import render_text
from bridge.mapping.router import Target
from bridge.series.store import Store
from tests.protobuf_scrape import read_delimited

# (input, underscores, dots, values), from TestEscapeName
VECTORS = [
    ("", "", "", ""),
    ("no:escaping_required", "no:escaping_required", "no:escaping__required", "no:escaping_required"),
    (
        "mysystem.prod.west.cpu.load",
        "mysystem_prod_west_cpu_load",
        "mysystem_dot_prod_dot_west_dot_cpu_dot_load",
        "U__mysystem_2e_prod_2e_west_2e_cpu_2e_load",
    ),
    (
        "mysystem.prod.west.cpu.load_total",
        "mysystem_prod_west_cpu_load_total",
        "mysystem_dot_prod_dot_west_dot_cpu_dot_load__total",
        "U__mysystem_2e_prod_2e_west_2e_cpu_2e_load__total",
    ),
    ("http.status:sum", "http_status:sum", "http_dot_status:sum", "U__http_2e_status:sum"),
    ("label with 😱", "label_with__", "label__with____", "U__label_20_with_20__1f631_"),
    ("花火", "__", "____", "U___82b1__706b_"),
    ("label with \u0100", "label_with__", "label__with____", "U__label_20_with_20__100_"),
]


@pytest.mark.parametrize(("name", "underscores", "dots", "values"), VECTORS)
def test_escape_name_matches_prometheus_common(name, underscores, dots, values):
    assert escape_name(name, "underscores") == underscores
    assert escape_name(name, "dots") == dots
    assert escape_name(name, "values") == values
    assert escape_name(name, "allow-utf-8") == name


def test_a_digit_first_and_a_lone_surrogate_as_go_escapes_them():
    assert escape_name("1x", "underscores") == "_x"  # a digit is valid only after the first rune
    assert escape_name("1x", "values") == "U___31_x"
    assert escape_name("a\ud800", "values") == "U__a_FFFD_"  # no valid rune: Go writes U+FFFD's escape


NO_SELF_METRICS = CollectorRegistry()


def _store(name: str, label: str) -> Store:
    store = Store()
    store.wall_clock = lambda: 1_700_000_000.5
    store.series(Target(name=name, type="counter", help="h"), ((label, "v"),), 0).value = 3
    return store


@pytest.mark.parametrize("scheme", ["allow-utf-8", "underscores", "dots", "values"])
def test_a_legacy_valid_family_is_served_as_it_is_under_every_scheme(scheme):
    """EscapeMetricFamily leaves legacy-valid names alone, even under dots (whose EscapeName would double
    the underscores): the family itself is served, no view of it."""
    family = _store("my_metric_total", "some_label").families["my_metric_total"]
    assert family_as_served(family, scheme) is family


@pytest.mark.parametrize(
    ("scheme", "name", "label"),
    [
        ("underscores", "my_metric_total", "some_label"),
        ("dots", "my_dot_metric__total", "some_dot_label"),  # non-legacy: its underscore doubles too
        ("values", "U__my_2e_metric__total", "U__some_2e_label"),
    ],
)
def test_a_family_with_dotted_names_is_escaped_in_every_format(scheme, name, label):
    store = _store("my.metric_total", "some.label")
    text = render_text(store, NO_SELF_METRICS, 0, scheme).decode()
    assert f'# TYPE {name} counter\n{name}{{{label}="v"}} 3\n' in text
    (family,) = read_delimited(render(store, NO_SELF_METRICS, 0, "delimited", scheme))
    assert family.name == name and family.metric[0].label[0].name == label
    assert family.metric[0].counter.created_timestamp.seconds == 1_700_000_000
    assert family.metric[0].counter.created_timestamp.nanos == 500_000_000


def test_openmetrics_escapes_and_quotes_as_asked():
    store = _store("my.metric_total", "some.label")
    view = OpenMetricsView(store, NO_SELF_METRICS, lambda: 0.0)
    dotted = generate_latest(view.escaped("dots"), escaping="allow-utf-8").decode()
    # the whole name is escaped, then _total comes off for the family's name, as Go's OpenMetrics writer does
    assert dotted.startswith(
        '# HELP my_dot_metric_ h\n# TYPE my_dot_metric_ counter\nmy_dot_metric__total{some_dot_label="v"} 3.0\n'
    )
    utf8 = generate_latest(view.escaped("allow-utf-8"), escaping="allow-utf-8").decode()
    (family,) = text_string_to_metric_families(utf8)
    assert family.name == "my.metric" and family.type == "counter"
    assert [(s.name, s.labels, s.value) for s in family.samples] == [
        ("my.metric_total", {"some.label": "v"}, 3.0),
        ("my.metric_created", {"some.label": "v"}, 1_700_000_000.5),
    ]


# Prometheus 3's Accept header (scrape_protocols' default, metric_name_escaping_scheme allow-utf-8)
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)


@pytest.mark.parametrize(
    ("accept", "openmetrics", "expected"),
    [
        ("", False, ("text", "")),  # named none: served as underscores, not named in the Content-Type
        ("text/plain;version=0.0.4", False, ("text", "")),
        ("text/plain;version=0.0.4;escaping=dots", False, ("text", "dots")),
        ("text/plain;version=0.0.4;escaping=bogus", False, ("text", "")),  # an unknown one is ignored
        (PROMETHEUS_3, False, ("text", "allow-utf-8")),  # taken from entries that don't fit, as Go does
        (PROMETHEUS_3, True, ("openmetrics", "allow-utf-8")),
        (PROMETHEUS_3.replace("allow-utf-8", "underscores"), True, ("openmetrics", "underscores")),
        (
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;"
            "escaping=values;q=0.7,text/plain;version=0.0.4;escaping=dots;q=0.3",
            False,
            ("protobuf", "values"),  # the entries after the one that fits don't count
        ),
    ],
)
def test_the_escaping_scheme_read_from_accept(accept, openmetrics, expected):
    assert negotiate(accept, openmetrics) == expected


def test_allow_utf8_text_quotes_names_as_client_golang_writes_them():
    """Under allow-utf-8 a name that is not legacy-valid is written quoted, a metric name inside the
    braces with its suffix (Go's writeNameAndLabelPairs); legacy-valid ones stay bare. prometheus_client's
    parser reads it back."""
    store = Store()
    store.series(
        Target(name="my.metric", type="counter", help="h"), (("env", "prod"), ("some.label", 'a"b')), 0
    ).value = 3.0
    store.series(Target(name="plain", type="gauge", help="g"), (("the.key", "v"),), 0).value = 1.0
    store.series(Target(name="lat.s", type="histogram", help="l", buckets=(0.5,)), (), 0).observe(0.25, 1)
    text = render_text(store, NO_SELF_METRICS, 0, "allow-utf-8").decode()
    assert text == (
        '# HELP "lat.s" l\n# TYPE "lat.s" histogram\n'
        '{"lat.s_bucket",le="0.5"} 1\n{"lat.s_bucket",le="+Inf"} 1\n{"lat.s_sum"} 0.25\n{"lat.s_count"} 1\n'
        '# HELP "my.metric" h\n# TYPE "my.metric" counter\n'
        '{"my.metric",env="prod","some.label"="a\\"b"} 3\n'
        '# HELP plain g\n# TYPE plain gauge\nplain{"the.key"="v"} 1\n'
    )
    families = {family.name: family for family in text_string_to_families(text)}
    assert families["my.metric"].samples[0].labels == {"env": "prod", "some.label": 'a"b'}
    assert [s.name for s in families["lat.s"].samples] == ["lat.s_bucket", "lat.s_bucket", "lat.s_sum", "lat.s_count"]
