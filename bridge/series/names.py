"""What each Prometheus type writes besides its name: the sample names and the label names it owns; and
which names are legacy-valid, the only ones a scraper of the Prometheus 2 formats reads unescaped."""

import re

_LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def is_legacy(name: str) -> bool:
    """prometheus/common's model.LegacyValidation.IsValidMetricName, which its EscapeMetricFamily also
    applies to label names."""
    return _LEGACY_NAME.fullmatch(name) is not None


SAMPLE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": (), "gauge": (), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count"),
}  # fmt: skip
# Label names the exposition of a type writes itself.
RESERVED_LABELS = {"histogram": "le", "summary": "quantile"}
