"""What each Prometheus type writes besides its name: the sample names and the label names it owns."""

SAMPLE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": (), "gauge": (), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count"),
}  # fmt: skip
# Label names the exposition of a type writes itself.
RESERVED_LABELS = {"histogram": "le", "summary": "quantile"}
