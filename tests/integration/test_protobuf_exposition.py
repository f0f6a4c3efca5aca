"""Every family type through the protobuf exposition of a running bridge."""

from __future__ import annotations

import urllib.request

from bridge.exposition import metrics_pb2 as pb
from tests.protobuf_scrape import ACCEPT, scrape_protobuf

# --- the arithmetic, without sockets ---


# --- against statsd_exporter ---


def test_every_family_type_round_trips_through_protobuf(bridge_factory, tmp_path):
    mapping = tmp_path / "m.yml"
    mapping.write_text(
        "defaults:\n  observer_type: histogram\nmappings:\n- match: s.*\n  name: s_$1\n  observer_type: summary\n"
    )
    bridge = bridge_factory("--statsd.mapping-config", str(mapping))
    bridge.send_udp("c.hits:3|c|#env:prod", "g.temp:-2.5|g", "h.lat:0.3|h", "s.q:1|h", "s.q:3|h")
    assert bridge.wait_for(lambda s: ("s_q_count", frozenset()) in s) is not None
    families = scrape_protobuf(bridge.web + "/metrics")
    assert families["c_hits"].type == pb.COUNTER and families["c_hits"].metric[0].counter.value == 3
    assert [(label.name, label.value) for label in families["c_hits"].metric[0].label] == [("env", "prod")]
    assert families["g_temp"].metric[0].gauge.value == -2.5
    histogram = families["h_lat"].metric[0].histogram
    assert histogram.sample_count == 1 and histogram.schema == 3 and histogram.positive_delta == [1]
    summary = families["s_q"].metric[0].summary
    assert (summary.sample_count, summary.sample_sum) == (2, 4)
    assert [q.quantile for q in summary.quantile] == [0.5, 0.9, 0.99]
    assert families["statsd_bridge_lines_total"].type == pb.COUNTER  # self-metrics too
    assert families["statsd_bridge_lines_total"].metric[0].counter.value == 5
    # the protobuf text form, for people, says the same
    request = urllib.request.Request(bridge.web + "/metrics", headers={"Accept": ACCEPT.replace("delimited", "text")})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert 'name: "c_hits"' in response.read().decode()


# --- a real Prometheus with native histograms on, scraping both ---


# --- the hand-written encoder for counters and gauges writes what the protobuf library writes ---
