"""Exposition: the store written for Prometheus (text format, OpenMetrics, protobuf), the format a scraper
asked for, and the bridge's self-metrics. Knows nothing of HTTP or of the process wiring."""
