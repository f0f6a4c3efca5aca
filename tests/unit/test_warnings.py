"""Each kind of warning has its own limit in the log: a flood of one never hides another."""

import logging

from tests.conftest import pipeline


def warnings(caplog, text: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == text]


def test_a_flood_of_bad_lines_hides_no_type_conflict(caplog):
    bridge = pipeline()
    bridge.send("m:1|c")
    with caplog.at_level(logging.WARNING):
        bridge.ingest.packet(b"\n".join(b"not statsd %d" % i for i in range(1000)))
        bridge.send("m:1|g")
    assert len(warnings(caplog, "rejected line")) == 10  # the flood is held to its limit
    [conflict] = warnings(caplog, "metric type conflict")
    assert conflict.fields["metric"] == "m"
    assert bridge.stats.sample_errors == {"malformed_line": 1000}
    assert bridge.stats.conflicts == {("gauge", "m"): 1}


def test_a_flood_of_type_conflicts_hides_no_series_cap(caplog):
    bridge = pipeline()
    bridge.send("m:1|c", "grows:1|c|#pod:a")
    with caplog.at_level(logging.WARNING):
        bridge.ingest.packet(b"\n".join(b"m:%d|g" % i for i in range(100)))
        bridge.store.max_series_per_metric = 1
        bridge.send("grows:1|c|#pod:b")
    assert len(warnings(caplog, "metric type conflict")) == 10
    [cap] = warnings(caplog, "per-metric series cap reached: new series of this metric are refused")
    assert cap.fields["metric"] == "grows"
    assert bridge.stats.metric_series_dropped == {"grows": 1}
