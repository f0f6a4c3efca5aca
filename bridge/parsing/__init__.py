"""Parsing: StatsD and DogStatsD lines into samples (name, kind, value, tags). Knows nothing of Prometheus."""
