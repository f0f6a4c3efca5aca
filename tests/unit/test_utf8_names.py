"""--statsd.utf8-names through the parser, mapper and store: names and tag keys held as the client sent
them, served per escaping scheme, names two scrapers would read alike refused and counted; the flag
off changes nothing; mapping files may write UTF-8 names only with it, and the lint says what a
Prometheus 2 scraper reads."""

from __future__ import annotations

import pytest
from prometheus_client.openmetrics.exposition import generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families

from bridge.exposition.openmetrics import OpenMetricsView
from bridge.exposition.text import render_text
from bridge.mapping.lint import lint
from bridge.mapping.loader import load_mapping
from bridge.mapping.schema import MappingError
from bridge.series.names import underscored
from tests.conftest import parse_samples, pipeline, sample

LINES = (
    "http.requests.count:3|c|#service.name:checkout,env:prod",
    "db.latency:0.5|ms|#db.system:pg",
    "plain:2|g|#host.name:web-1",
    "héllo.wörld:1|c",
)


def _families(text: str) -> dict:
    return {family.name: family for family in text_families(text)}


def test_the_store_holds_the_names_as_sent_and_a_prometheus_2_scrape_reads_underscores():
    flow = pipeline(utf8_names=True)
    flow.send(*LINES)
    assert sorted(flow.store.families) == ["db.latency", "http.requests.count", "héllo.wörld", "plain"]
    assert not any(family.legacy for family in flow.store.families.values())
    samples = flow.samples()  # no scheme named: underscores
    assert sample(samples, "http_requests_count", env="prod", service_name="checkout") == 3
    assert sample(samples, "db_latency_count", db_system="pg") == 1
    assert sample(samples, "plain", host_name="web-1") == 2
    assert sample(samples, "h_llo_w_rld") == 1
    assert flow.stats.event_errors.total() == 0 and not flow.stats.conflicts


def test_an_allow_utf8_scrape_reads_the_names_as_sent_in_text_and_openmetrics():
    flow = pipeline(utf8_names=True)
    flow.send(*LINES)
    flow.store.fold_pending()
    text = render_text(flow.store, flow.registry, flow.ingest.now, "allow-utf-8").decode()
    assert '{"http.requests.count",env="prod","service.name"="checkout"} 3\n' in text
    assert 'plain{"host.name"="web-1"} 2\n' in text
    families = _families(text)
    assert families["http.requests.count"].samples[0].labels == {"env": "prod", "service.name": "checkout"}
    assert families["db.latency"].samples[-1].labels == {"db.system": "pg"}
    assert families["héllo.wörld"].samples[0].value == 1
    view = OpenMetricsView(flow.store, flow.registry, lambda: flow.ingest.now)
    page = generate_latest(view.escaped("allow-utf-8"), escaping="allow-utf-8").decode()
    families = {family.name: family for family in openmetrics_families(page)}
    assert families["http.requests.count"].samples[0].labels == {"env": "prod", "service.name": "checkout"}
    assert families["plain"].samples[0].labels == {"host.name": "web-1"}


def _series(flow) -> dict:
    return {k: v for k, v in flow.samples().items() if not k[0].startswith(("statsd_bridge_", "process_", "python_"))}


def test_the_flag_off_holds_statsd_exporters_names_and_a_prometheus_2_scrape_reads_the_same_either_way():
    off, on = pipeline(), pipeline(utf8_names=True)
    for flow in (off, on):
        flow.send(*LINES, "a_b:1|c|#env:prod", "g:3|g|#__x:1")
    assert sorted(off.store.families) == ["a_b", "db_latency", "g", "h_llo_w_rld", "http_requests_count", "plain"]
    assert all(family.legacy for family in off.store.families.values())
    assert _series(off) == _series(on) and len(_series(on)) == 10
    assert off.text().count("\n# TYPE ") == on.text().count("\n# TYPE ")


@pytest.mark.parametrize(("first", "second"), [("a.b", "a_b"), ("a_b", "a.b"), ("a.b", "a-b"), ("a.b", "a b")])
def test_a_name_that_reads_as_another_for_prometheus_2_is_a_conflict(first, second):
    """The first of two names a Prometheus 2 scraper would read alike keeps it; the second is refused and
    counted as a conflict, whatever the scraper (else one scrape would hold two families of one name)."""
    flow = pipeline(utf8_names=True)
    flow.send(f"{first}:1|c", f"{second}:5|c", f"{first}:1|c")
    assert list(flow.store.families) == [first]
    assert flow.stats.conflicts == {("counter", second): 1}
    assert sample(flow.samples(), underscored(first)) == 2


def test_sample_names_of_histograms_and_summaries_collide_too():
    flow = pipeline("defaults:\n  observer_type: histogram\n", utf8_names=True)
    flow.send("lat.ms:1|ms", "lat_ms_bucket:1|c", "lat_ms_count:1|g", "lat.ms_sum:1|c")
    assert list(flow.store.families) == ["lat.ms"]
    assert sorted(flow.stats.conflicts) == [
        ("counter", "lat.ms_sum"),
        ("counter", "lat_ms_bucket"),
        ("gauge", "lat_ms_count"),
    ]


def test_a_conflict_ends_with_the_series_that_held_the_name():
    flow = pipeline(utf8_names=True)
    flow.send("a.b:1|c")
    flow.store.clear()
    flow.send("a_b:1|c", "a.b:1|c")
    assert list(flow.store.families) == ["a_b"]
    assert flow.stats.conflicts == {("counter", "a.b"): 1}


def test_two_tag_keys_that_read_alike_for_prometheus_2_are_rejected_and_counted():
    flow = pipeline(utf8_names=True)
    flow.send("x:1|c|#k.x:1,k_x:2", "y:1|c|#k.x:1,k-x:2", "z:1|c|#k.x:1,env:a")
    assert list(flow.store.families) == ["z"]
    assert flow.stats.event_errors == {"label_name_collision": 2}
    off = pipeline()  # without the flag both are k_x, the later value kept, as statsd_exporter does
    off.send("x:1|c|#k.x:1,k_x:2")
    assert sample(off.samples(), "x", k_x="2") == 1


def test_two_series_whose_labels_read_alike_for_prometheus_2_are_not_served_as_one():
    """Lines apart: the first series keeps its reading, the later is a conflict, counted, until the first goes."""
    flow = pipeline(utf8_names=True)
    flow.send("m.lab:1|c|#a.b:x", "m.lab:7|c|#a_b:x", "m.lab:2|c|#a_b:y")
    samples = flow.samples()
    assert sample(samples, "m_lab", a_b="x") == 1 and sample(samples, "m_lab", a_b="y") == 2
    assert sum(flow.stats.conflicts.values()) == 1
    assert flow.store.clear() == 2
    flow.send("m.lab:7|c|#a_b:x")  # the reading is free again
    assert sample(flow.samples(), "m_lab", a_b="x") == 7


def test_a_mapping_label_name_holding_a_colon_or_reading_as_another_is_refused():
    """`:` is legacy in a metric name, so no scheme would escape it in a label name, where it is invalid;
    two label names of a rule that read alike would refuse every line the rule maps."""
    with pytest.raises(MappingError, match="invalid label name"):
        load_mapping('mappings:\n  - match: a.*\n    name: a\n    labels:\n      "x:y": q\n', utf8_names=True)
    with pytest.raises(MappingError, match=r"reads as `service\.name`"):
        load_mapping(
            "mappings:\n  - match: a.*\n    name: a\n    labels:\n      service.name: $1\n      service_name: x\n",
            utf8_names=True,
        )


def test_a_legacy_valid_tag_key_is_kept_as_without_the_flag():
    flow = pipeline(utf8_names=True)
    flow.send("g:3|g|#__meta:1,ok:2")
    assert sample(flow.samples(), "g", __meta="1", ok="2") == 3
    assert all(family.legacy for family in flow.store.families.values())


UTF8_MAPPING = """
mappings:
  - match: "api.*.calls"
    name: "api.calls"
    labels:
      service.name: "$1"
"""


def test_a_mapping_file_writes_utf8_names_only_with_the_flag():
    with pytest.raises(MappingError, match="not a valid metric name"):
        load_mapping(UTF8_MAPPING)
    with pytest.raises(MappingError, match="invalid label name"):
        load_mapping(UTF8_MAPPING.replace('"api.calls"', "api_calls"))
    flow = pipeline(UTF8_MAPPING, utf8_names=True)
    flow.send("api.checkout.calls:2|c")
    assert list(flow.store.families) == ["api.calls"]
    assert sample(flow.samples(), "api_calls", service_name="checkout") == 2


def test_the_lint_names_what_a_prometheus_2_scraper_reads():
    every = lint(load_mapping(UTF8_MAPPING, "m.yml", utf8_names=True))
    # a rollback fails: statsd_exporter refuses both names in a mapping file
    assert [(f.line, f.check) for f in every if f.check.startswith("statsd_exporter")] == [
        (4, "statsd_exporter_refuses"),
        (6, "statsd_exporter_refuses"),
    ]
    findings = [f for f in every if f.check == "utf8_name"]
    assert [(f.severity, f.line, f.message) for f in findings] == [
        ("warning", 4, "`api.calls` is served as written; a Prometheus 2 scraper reads `api_calls`"),
        ("warning", 6, "`service.name` is served as written; a Prometheus 2 scraper reads `service_name`"),
    ]
    assert not [
        f
        for f in lint(
            load_mapping(
                UTF8_MAPPING.replace('"api.calls"', "api_calls").replace("service.name", "service"),
                "m.yml",
                utf8_names=True,
            )
        )
        if f.check == "utf8_name"
    ]


def test_an_empty_label_name_is_refused_even_with_the_flag():
    with pytest.raises(MappingError, match="invalid label name"):
        load_mapping('mappings:\n  - match: a.*\n    name: a\n    labels:\n      "": x\n', utf8_names=True)


def test_parse_samples_of_the_default_page_are_all_legacy():
    flow = pipeline(utf8_names=True)
    flow.send(*LINES)
    assert all(name.isascii() and "." not in name for name, _ in parse_samples(flow.text()))
