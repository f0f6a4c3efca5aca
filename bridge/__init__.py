"""statsd-bridge: StatsD and DogStatsD in, Prometheus out."""

__version__ = "0.1.0"
