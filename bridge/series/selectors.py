"""Prometheus series selectors (`http_requests_total{code=~"5.."}`, `{__name__=~"db_.*"}`), as its
parser reads them for the admin API's `match[]`: what `POST /-/clear` takes to say which series go.

The grammar, the string escapes and the checks are promql/parser's (lex.go, generated_parser.y,
parse.go's checkAST): a metric name, or braces, or both; matchers `=`, `!=`, `=~`, `!~`; label names
as identifiers or quoted (Prometheus 3's UTF-8 names, and `{"metric.name"}` alone for the metric
name); strings in double or single quotes with Go's escapes, or in backticks with none; regexes fully
anchored, with `.` matching a newline, in RE2's dialect as Go's regexp; and at least one matcher
that does not match the empty string, so that a typo never selects everything.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial

import re2

from bridge.series.names import LEGACY_NAME
from bridge.series.types import LabelKey

METRIC_NAME_LABEL = "__name__"
OPERATORS = ("=~", "!~", "!=", "=")  # the two-character ones first
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SPACE = re.compile(r"[ \t\r\n]*")
_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}
# escape letter -> (digits, digits allowed, largest value); an octal escape's first digit is its letter
_OCTAL = "01234567"
_HEX = "0123456789abcdefABCDEF"
_NUMERIC_ESCAPES = {"x": (2, _HEX, 0xFF), "u": (4, _HEX, 0x10FFFF), "U": (8, _HEX, 0x10FFFF)}
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad regex comes back as SelectorError, not as a line on stderr


class SelectorError(ValueError):
    """A selector Prometheus would refuse; the message says why."""


@dataclass(frozen=True)
class Matcher:
    label: str
    operator: str  # =, !=, =~ or !~
    value: str
    regex: re2._Regexp | None = None  # compiled, anchored, for =~ and !~

    def matches(self, value: str) -> bool:
        if self.regex is None:
            return (value == self.value) == (self.operator == "=")
        return (self.regex.fullmatch(value) is not None) == (self.operator == "=~")


Selector = tuple[Matcher, ...]


def parse_selector(text: str) -> Selector:
    """The matchers of one series selector; raises SelectorError saying what is wrong."""
    reader = _Reader(text)
    matchers: list[Matcher] = []
    name = reader.take(LEGACY_NAME)
    if reader.peek("{"):
        matchers = reader.braces()
    if reader.position < len(text):
        raise SelectorError(f"unexpected {text[reader.position :]!r} at position {reader.position + 1}")
    if name:
        if any(matcher.label == METRIC_NAME_LABEL for matcher in matchers):
            other = next(matcher.value for matcher in matchers if matcher.label == METRIC_NAME_LABEL)
            raise SelectorError(f'metric name must not be set twice: "{name}" or "{other}"')
        return (_matcher(METRIC_NAME_LABEL, "=", name), *matchers)
    if not matchers and not text.strip():
        raise SelectorError("empty selector")
    if all(matcher.matches("") for matcher in matchers):
        raise SelectorError("vector selector must contain at least one non-empty matcher")
    return tuple(matchers)


def for_family(selectors: Iterable[Selector], name: str) -> Callable[[LabelKey], bool] | None:
    """The test of the labels of the metric `name`'s series against the selectors, or None when none of
    them can select a series of it: the name's matchers are read once a metric, not once a series."""
    left = [
        tuple(matcher for matcher in selector if matcher.label != METRIC_NAME_LABEL)
        for selector in selectors
        if all(matcher.matches(name) for matcher in selector if matcher.label == METRIC_NAME_LABEL)
    ]
    return partial(_selects_labels, left) if left else None


def _selects_labels(selectors: list[Selector], key: LabelKey) -> bool:
    labels = dict(key)  # a missing label is empty
    return any(all(matcher.matches(labels.get(matcher.label, "")) for matcher in selector) for selector in selectors)


def selects(selectors: Iterable[Selector], name: str, key: LabelKey) -> bool:
    """Whether any of the selectors selects the series `name` with labels `key`."""
    test = for_family(selectors, name)
    return test is not None and test(key)


class _Reader:
    """The selector's text, read from `position` on, spaces between tokens skipped."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self.skip_spaces()

    def skip_spaces(self) -> None:
        self.position = _SPACE.match(self.text, self.position).end()  # type: ignore[union-attr]

    def take(self, pattern: re.Pattern[str]) -> str:
        found = pattern.match(self.text, self.position)
        if found is None:
            return ""
        self.position = found.end()
        self.skip_spaces()
        return found.group()

    def peek(self, token: str) -> bool:
        return self.text.startswith(token, self.position)

    def expect(self, token: str, what: str) -> None:
        if not self.peek(token):
            raise self.unexpected(what)
        self.position += len(token)
        self.skip_spaces()

    def unexpected(self, expected: str) -> SelectorError:
        rest = self.text[self.position : self.position + 20]
        found = repr(rest) if rest else "end of input"
        return SelectorError(f"unexpected {found} at position {self.position + 1}, expected {expected}")

    def braces(self) -> list[Matcher]:
        self.expect("{", '"{"')
        matchers: list[Matcher] = []
        while not self.peek("}"):
            matchers.append(self.matcher())
            if not self.peek("}"):
                self.expect(",", '"," or "}"')
        self.expect("}", '"}"')
        return matchers

    def matcher(self) -> Matcher:
        quoted = self.peek('"') or self.peek("'") or self.peek("`")
        label = self.string() if quoted else self.take(_LABEL_NAME)
        if not quoted and not label:
            raise self.unexpected('a label name or "}"')
        operator = next((op for op in OPERATORS if self.peek(op)), "")
        if not operator:
            if quoted:  # {"metric.name"}: a quoted name alone is the metric's
                return _matcher(METRIC_NAME_LABEL, "=", label)
            raise self.unexpected("a label matching operator (=, !=, =~, !~)")
        self.expect(operator, operator)
        if not (self.peek('"') or self.peek("'") or self.peek("`")):
            raise self.unexpected("a quoted string")
        return _matcher(label, operator, self.string())

    def string(self) -> str:
        """A quoted string, unquoted as PromQL's lexer and strutil.Unquote do."""
        quote, start = self.text[self.position], self.position
        end = self.text.find(quote, start + 1) if quote == "`" else self._closing(quote, start)
        if end < 0:
            raise SelectorError(f"unterminated quoted string at position {start + 1}")
        body = self.text[start + 1 : end]
        self.position = end + 1
        self.skip_spaces()
        return body if quote == "`" else _unescape(body, quote)

    def _closing(self, quote: str, start: int) -> int:
        position = start + 1
        while position < len(self.text):
            char = self.text[position]
            if char == "\n":
                break
            if char == quote:
                return position
            position += 2 if char == "\\" else 1
        return -1


def _unescape(body: str, quote: str) -> str:
    """Go's escapes, as PromQL takes them: \\a \\b \\f \\n \\r \\t \\v \\\\, the string's own quote, octal
    \\ooo and \\xhh (bytes), \\uhhhh and \\Uhhhhhhhh (code points)."""
    out = bytearray()
    position = 0
    while position < len(body):
        char = body[position]
        position += 1
        if char != "\\":
            out += char.encode("utf-8", "surrogatepass")
            continue
        letter = body[position] if position < len(body) else ""
        position += 1
        if letter in _SIMPLE_ESCAPES or letter == quote:
            out += _SIMPLE_ESCAPES.get(letter, quote).encode()
            continue
        if not letter:
            raise SelectorError("escape sequence not terminated")
        if letter in _OCTAL:
            digits, allowed, largest, position = 3, _OCTAL, 0xFF, position - 1
        elif letter in _NUMERIC_ESCAPES:
            digits, allowed, largest = _NUMERIC_ESCAPES[letter]
        else:
            raise SelectorError(f"unknown escape sequence \\{letter}")
        text = body[position : position + digits]
        if len(text) < digits or any(digit not in allowed for digit in text):
            raise SelectorError(f"illegal character in escape sequence \\{letter}{text}")
        value = int(text, 8 if allowed is _OCTAL else 16)
        position += digits
        if value > largest or 0xD800 <= value < 0xE000:
            raise SelectorError(f"escape sequence \\{letter}{text} is an invalid Unicode code point")
        out += bytes([value]) if largest == 0xFF else chr(value).encode()
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise SelectorError("invalid UTF-8 in a quoted string") from None


def _matcher(label: str, operator: str, value: str) -> Matcher:
    if operator in ("=", "!="):
        return Matcher(label, operator, value)
    try:
        regex = re2.compile(f"(?s:{value})", _RE2_OPTIONS)
    except re2.error as error:
        reason = error.args[0].decode() if error.args and isinstance(error.args[0], bytes) else str(error)
        raise SelectorError(f"invalid regular expression {value!r} for {label}: {reason}") from None
    return Matcher(label, operator, value, regex)
