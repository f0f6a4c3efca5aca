"""What a Prometheus 3 scraper asks of a target, through a running bridge: the escaping scheme named in
its Accept header, applied and echoed in the Content-Type; and start timestamps (protobuf
created_timestamp, OpenMetrics _created) that move when a series is made again."""

from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from tests.conftest import sample
from tests.protobuf_scrape import ACCEPT as PROTOBUF
from tests.protobuf_scrape import read_delimited

pytestmark = pytest.mark.usefixtures("each_worker_count")

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
PROTOBUF_DELIMITED = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)

# (Accept in, --web.enable-openmetrics, Content-Type out)
NEGOTIATION = [
    ("", False, TEXT),  # named none (Prometheus 2): underscores, and the Content-Type of before
    (PROMETHEUS_2, False, TEXT),
    (PROMETHEUS_2, True, OPENMETRICS + "; escaping=underscores"),  # prometheus_client's own, as before
    (PROMETHEUS_3, False, TEXT + "; escaping=allow-utf-8"),
    (PROMETHEUS_3, True, OPENMETRICS + "; escaping=allow-utf-8"),
    (PROMETHEUS_3.replace("allow-utf-8", "underscores"), False, TEXT + "; escaping=underscores"),
    ("text/plain;version=0.0.4;escaping=dots", False, TEXT + "; escaping=dots"),
    ("text/plain;version=0.0.4;escaping=values", False, TEXT + "; escaping=values"),
    ("text/plain;version=1.0.0;escaping=allow-utf-8", False, TEXT + "; escaping=allow-utf-8"),
    ("text/plain;version=0.0.4;escaping=bogus", False, TEXT),  # an unknown scheme is none
    ("application/openmetrics-text", True, OPENMETRICS),
    ("application/openmetrics-text;version=1.0.0;escaping=dots", True, OPENMETRICS + "; escaping=dots"),
    ("application/openmetrics-text;version=1.0.0;escaping=values", True, OPENMETRICS + "; escaping=values"),
    (PROTOBUF, False, PROTOBUF_DELIMITED),
    (PROTOBUF + ";escaping=allow-utf-8", False, PROTOBUF_DELIMITED + "; escaping=allow-utf-8"),
    (PROTOBUF + ";escaping=dots", False, PROTOBUF_DELIMITED + "; escaping=dots"),
    (
        PROTOBUF.replace("delimited", "text") + ";escaping=values",
        False,
        PROTOBUF_DELIMITED.replace("delimited", "text") + "; escaping=values",
    ),
]


def _openmetrics(body: bytes, *prefixes: str) -> dict:
    """The families of these prefixes, the whole page parsed by prometheus_client's OpenMetrics parser
    (which refuses a page where two families' samples clash, self-metrics included)."""
    assert body.endswith(b"# EOF\n")
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}
    found = {name: family for name, family in families.items() if name.startswith(prefixes)}
    assert found and any(name.startswith("statsd_bridge_") for name in families)
    return found


def _get(bridge, accept: str) -> tuple[str, bytes]:
    status, headers, body = bridge.get(headers={"Accept": accept} if accept else {})
    assert status == 200
    return headers["Content-Type"], body


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text", "openmetrics"])
def test_the_negotiation_table(bridge_factory, openmetrics):
    """Every Accept gets the Content-Type of the table, and names as prometheus/common escapes them:
    all the bridge holds is legacy-valid, which no scheme changes (not even dots)."""
    bridge = bridge_factory(*(["--web-enable-openmetrics"] if openmetrics else []))
    bridge.send_udp("esc.hits:3|c|#env_name:prod", "esc.level:2|g", "esc.lat:0.5|ms")
    assert bridge.wait_for(lambda s: sample(s, "esc_lat_count") == 1) is not None
    plain = _get(bridge, "")[1]
    assert b'\nesc_hits{env_name="prod"} 3\n' in plain
    for accept, with_openmetrics, content_type in NEGOTIATION:
        if with_openmetrics != openmetrics:
            continue
        got, body = _get(bridge, accept)
        assert got == content_type, accept
        if content_type.startswith(
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
        ):
            families = {family.name: family for family in read_delimited(body)}
            assert families["esc_hits"].metric[0].label[0].name == "env_name"
            assert "esc_level" in families and "statsd_bridge_lines_total" in families
        elif content_type.startswith(TEXT):
            # the same lines as a scrape that names no scheme
            ours = [line for line in body.split(b"\n") if line.startswith((b"esc_", b"# HELP esc_", b"# TYPE esc_"))]
            assert ours == [
                line for line in plain.split(b"\n") if line.startswith((b"esc_", b"# HELP esc_", b"# TYPE esc_"))
            ]
            assert len(ours) > 10
        elif content_type.startswith(OPENMETRICS):
            families = _openmetrics(body, "esc_")
            hits = families["esc_hits"].samples[0]
            assert (hits.name, hits.labels, hits.value) == ("esc_hits", {"env_name": "prod"}, 3)
        else:
            assert b'name: "esc_hits"' in body and b'name: "env_name"' in body


def _starts(bridge) -> dict[str, float]:
    """Each series' start timestamp in the protobuf exposition, by metric name; 0: none."""
    request = urllib.request.Request(bridge.web + "/metrics", headers={"Accept": PROTOBUF})
    with urllib.request.urlopen(request, timeout=10) as response:
        families = read_delimited(response.read())
    starts = {}
    for family in families:
        if family.name.startswith(("st_", "om_")):
            metric = family.metric[0]
            kind = next(kind for kind in ("counter", "summary", "histogram", "gauge") if metric.HasField(kind))
            part = getattr(metric, kind)
            has = kind != "gauge" and part.HasField("created_timestamp")
            starts[family.name] = part.created_timestamp.ToNanoseconds() / 1e9 if has else 0.0
    return starts


MAPPING = """
mappings:
- match: st.c
  name: st_c
  ttl: 1s
- match: st.h
  name: st_h
  observer_type: histogram
  ttl: 1s
- match: st.s
  name: st_s
  observer_type: summary
  ttl: 1s
- match: st.g
  name: st_g
  ttl: 1s
"""
LINES = ("st.c:1|c", "st.h:0.2|ms", "st.s:0.2|ms", "st.g:5|g")


def test_start_timestamps_are_when_the_series_was_made_and_move_when_it_is_made_again(bridge_factory, tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text(MAPPING)
    bridge = bridge_factory("--statsd.mapping-config", str(mapping))
    before = time.time()
    bridge.send_udp(*LINES)
    assert bridge.wait_for(lambda s: sample(s, "st_s_count") == 1 and sample(s, "st_g") == 5) is not None
    first = _starts(bridge)
    after = time.time()
    assert set(first) == {"st_c", "st_h", "st_s", "st_g"}
    assert first["st_g"] == 0  # a gauge has no start
    for name in ("st_c", "st_h", "st_s"):
        assert before - 0.01 <= first[name] <= after, name
    bridge.send_udp(*LINES)  # the same series: the same start
    assert bridge.wait_for(lambda s: sample(s, "st_c") == 2) is not None
    assert _starts(bridge) == first
    # expired by the ttl, then made again by the next line: a new start, later than the scrape above
    assert bridge.wait_for(lambda s: sample(s, "st_c") is None and sample(s, "st_s_count") is None, timeout=8)
    bridge.send_udp(*LINES)
    assert bridge.wait_for(lambda s: sample(s, "st_c") == 1 and sample(s, "st_s_count") == 1) is not None
    again = _starts(bridge)
    for name in ("st_c", "st_h", "st_s"):
        assert again[name] > after, name
    assert again["st_g"] == 0
    # the text format 0.0.4 has no _created, as before
    assert b"_created" not in _get(bridge, "")[1]


def test_openmetrics_carries_created_samples(bridge_factory, tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text(MAPPING)
    bridge = bridge_factory("--statsd.mapping-config", str(mapping), "--web-enable-openmetrics")
    bridge.send_udp("om.c_total:2|c", *LINES)
    assert bridge.wait_for(lambda s: sample(s, "st_s_count") == 1 and sample(s, "om_c_total") == 2) is not None
    starts = _starts(bridge)
    content_type, body = _get(bridge, PROMETHEUS_3)
    assert content_type == OPENMETRICS + "; escaping=allow-utf-8"
    families = _openmetrics(body, "st_", "om_")
    created = {
        family: {s.name: s.value for s in families[family].samples if s.name.endswith("_created")}
        for family in ("om_c", "st_c", "st_h", "st_s", "st_g")
    }
    assert created["om_c"] == {"om_c_created": pytest.approx(starts["om_c_total"], abs=1e-6)}
    assert created["st_h"] == {"st_h_created": pytest.approx(starts["st_h"], abs=1e-6)}
    assert created["st_s"] == {"st_s_created": pytest.approx(starts["st_s"], abs=1e-6)}
    assert created["st_g"] == {}
    # st_c has no _total: OpenMetrics serves it as unknown, which has no start; protobuf has it
    assert families["st_c"].type == "unknown" and created["st_c"] == {} and starts["st_c"] > 0


def test_a_cleared_series_starts_anew(bridge_factory, tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text(MAPPING)
    bridge = bridge_factory("--statsd.mapping-config", str(mapping), "--web.enable-lifecycle")
    bridge.send_udp(*LINES)
    assert bridge.wait_for(lambda s: sample(s, "st_s_count") == 1 and sample(s, "st_g") == 5) is not None
    first = _starts(bridge)
    request = urllib.request.Request(bridge.web + "/-/clear", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    bridge.send_udp(*LINES)
    assert bridge.wait_for(lambda s: sample(s, "st_s_count") == 1 and sample(s, "st_g") == 5) is not None
    again = _starts(bridge)
    for name in ("st_c", "st_h", "st_s"):
        assert again[name] > first[name], name
