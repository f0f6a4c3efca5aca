"""Metric and label names as a scraper asks for them: the `escaping` parameter of its Accept header
(allow-utf-8, underscores, dots, values), written exactly as prometheus/common's model.EscapeName and
EscapeMetricFamily write them.

EscapeMetricFamily leaves a name that is legacy-valid ([a-zA-Z_:][a-zA-Z0-9_:]*) as it is under every
scheme (even `dots`, whose EscapeName doubles underscores), so a family whose names are all legacy-valid
is served untouched: the store knows which families those are (Family.legacy), so a render costs
nothing more per series unless a family holds other names.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from bridge.series.names import is_legacy, legacy_rune, underscored
from bridge.series.types import LabelKey, render_labels

ALLOW_UTF8, UNDERSCORES, DOTS, VALUES = "allow-utf-8", "underscores", "dots", "values"
SCHEMES = (ALLOW_UTF8, UNDERSCORES, DOTS, VALUES)
# model.NameEscapingScheme: the scheme of a scraper that names none (Prometheus 2)
DEFAULT = UNDERSCORES

_CACHE_LIMIT = 100_000  # escaped names remembered per scheme; past it the cache starts afresh
_exposed: dict[str, dict[str, str]] = {scheme: {} for scheme in SCHEMES}


def escape_name(name: str, scheme: str) -> str:
    """model.EscapeName: `name` under `scheme`, whatever characters it holds."""
    if not name or scheme == ALLOW_UTF8:
        return name
    if scheme == UNDERSCORES:
        return underscored(name)
    if scheme == DOTS:  # no early return for legacy-valid names: their underscores double
        return "".join(_dots_rune(char, i) for i, char in enumerate(name))
    if scheme == VALUES:
        if is_legacy(name):
            return name
        return "U__" + "".join(_value_rune(char, i) for i, char in enumerate(name))
    raise ValueError(f"unknown escaping scheme {scheme!r}")


def _dots_rune(char: str, index: int) -> str:
    if char == "_":
        return "__"
    if char == ".":
        return "_dot_"
    return char if legacy_rune(char, index) else "__"


def _value_rune(char: str, index: int) -> str:
    if char == "_":
        return "__"
    if legacy_rune(char, index):
        return char
    if 0xD800 <= ord(char) <= 0xDFFF:  # a lone surrogate is no valid rune: Go writes U+FFFD's form
        return "_FFFD_"
    return f"_{ord(char):x}_"


def exposed(name: str, scheme: str) -> str:
    """A metric or label name as EscapeMetricFamily serves it: legacy-valid names as they are, others
    escaped by `scheme` (allow-utf-8: as they are too). Remembered per scheme, the legacy-valid ones too:
    a family's view asks again for every label name of every series at every scrape."""
    known = _exposed[scheme]
    found = known.get(name)
    if found is None:
        if len(known) >= _CACHE_LIMIT:
            known.clear()
        found = known[name] = name if is_legacy(name) else escape_name(name, scheme)
    return found


def family_as_served(family: Any, scheme: str) -> Any:
    """The family itself when the scheme changes none of its names (always under allow-utf-8); else a view
    of it with its name and label names escaped, which every renderer reads as it reads a family."""
    if scheme == ALLOW_UTF8 or family.legacy:
        return family
    return renamed(family, exposed(family.name, scheme), lambda label: exposed(label, scheme))


def renamed(family: Any, name: str, label_name: Callable[[str], str]) -> Any:
    """A view of `family` under another name, each label name replaced by `label_name`'s."""
    series = {}
    for key, one in list(family.series.items()):
        new_key: LabelKey = tuple((label_name(label), value) for label, value in key)
        series[new_key] = _Renamed(one, new_key)
    return SimpleNamespace(name=name, help=family.help, type=family.type, series=series)


class _Renamed:
    """A series seen with other label names; everything else is the series'."""

    def __init__(self, series: Any, key: LabelKey) -> None:
        self._series = series
        self.key = key
        self.label_text = render_labels(key)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._series, attribute)
