"""What each Prometheus type writes besides its name: the sample names and the label names it owns; and
which names are legacy-valid, the only ones a scraper of the Prometheus 2 formats reads unescaped."""

import re

LEGACY_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")  # a metric name any scraper reads unescaped


def is_legacy(name: str) -> bool:
    """prometheus/common's model.LegacyValidation.IsValidMetricName, which its EscapeMetricFamily also
    applies to label names."""
    return LEGACY_NAME.fullmatch(name) is not None


def legacy_rune(char: str, index: int) -> bool:
    return char.isascii() and (char.isalpha() or char in "_:" or (char.isdigit() and index > 0))


def underscored(name: str) -> str:
    """model.EscapeName under the underscores scheme, what a Prometheus 2 scraper reads: a legacy-valid
    name as it is, else each character no legacy name may hold (there) becomes `_`."""
    if is_legacy(name):
        return name
    return "".join(char if legacy_rune(char, i) else "_" for i, char in enumerate(name))


SAMPLE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": (), "gauge": (), "histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count"),
}  # fmt: skip
# Label names the exposition of a type writes itself.
RESERVED_LABELS = {"histogram": "le", "summary": "quantile"}
