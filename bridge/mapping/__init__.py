"""Mapping: mapping files (loader), the rules that turn a StatsD name and kind into Prometheus metrics
(router), the lint, and what statsd_exporter would do with the same file (compat). Knows nothing of sockets."""
