"""The values the bridge's counts are labelled with, defined once for every stage that counts.

The kinds of StatsD event a line's type code names (statsd_exporter's events_total{type}), and every
reason a line, a sample or an event is rejected, with what it means to a person: the values of
statsd_bridge_sample_errors_total{reason} (the parser's) and statsd_bridge_events_error_total{reason}
(the ingest's), as `statsd-bridge explain` words them."""

COUNTER = "counter"
GAUGE = "gauge"
OBSERVER = "observer"  # a timer, histogram or distribution: what a mapping makes a histogram or a summary
SET = "set"  # a StatsD set's member: a gauge of distinct values where a mapping rule has a set_window

REASONS = {
    "malformed_line": "not a StatsD line: it needs name:value|type",
    "invalid_utf8": "the line is not valid UTF-8",
    "not_enough_parts_after_colon": "no |type after the value",
    "malformed_component": "one of the name:value|type parts is incomplete",
    "malformed_value": "the value is not a number",
    "invalid_sample_factor": "the sample rate (@...) is not a number (counted, and the sample kept unscaled, as "
    "statsd_exporter does), an observer's rate is not in (0, 1], or an extra |field is not understood",
    "malformed_timestamp": "the |T timestamp is not a number of seconds",
    "mixed_tagging_styles": "tags in two dialects on one line (in the name and after |#)",
    "invalid_extended_aggregate_type": "several values (name:1:2|type) are allowed only for ms, h and d",
    "illegal_event": "the type is not one of c, g, ms, h, d",
    "set_unsupported": "sets (|s) count distinct values, which Prometheus has no type for (a mapping "
    "rule's set_window makes them a gauge)",
    "dogstatsd_event_unsupported": "DogStatsD events (_e{...}) have no Prometheus counterpart",
    "service_check_unsupported": "DogStatsD service checks (_sc|...) have no Prometheus counterpart",
    "illegal_negative_counter": "a counter can't go down: a negative increment is rejected (use a gauge)",
    "non_finite_counter": "a counter can't take NaN or infinity",
    "non_finite_observation": "a histogram or summary can't take NaN or infinity",
    "empty_metric_name": "the rule's name template came out empty for this line",
    "label_name_collision": "with --statsd.utf8-names, two label names of the series are one for a scraper "
    "without UTF-8 names (`a.b` and `a_b` both read `a_b`)",
}
