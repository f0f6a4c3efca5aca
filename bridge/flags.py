"""What a setting's flag is (spellings, help, default as written, parser, check) and the parsers and checks
of flag values; config.py defines each setting with these, main.py builds the command line from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, dataclass, field, replace
from functools import partial
from typing import Any

from bridge.mapping.schema import LABEL_NAME
from bridge.net import parse_address
from bridge.workers.cpus import MAX_WORKERS, workers_for

RESERVED_PATHS = ("/-/healthy", "/-/ready", "/-/reload", "/-/quit", "/-/clear")
WORKER_COUNTS = f"give auto or a number from 1 to {MAX_WORKERS}"


class ConfigError(ValueError):
    """A bad setting; `spellings` are its flag's, `reason` says what is wrong."""

    def __init__(self, spellings: tuple[str, ...], reason: str) -> None:
        super().__init__(f"{spellings[0]}: {reason}")
        self.spellings = spellings
        self.flag = spellings[0]
        self.reason = reason


@dataclass(frozen=True)
class Flag:
    """How one Config field is given on the command line."""

    help: str
    default: Any  # as written on the command line ("10s", "755"); the field holds it parsed
    shown: str  # the default as --help and the docs show it
    dotted: str = ""  # statsd_exporter's spelling, where there is one
    metavar: str = ""
    parse: Callable[[Any], Any] | None = None  # command-line text -> the field's value; ValueError says why not
    check: Callable[[Any], None] | None = None  # the field's value -> None; ValueError says why not
    choices: tuple[str, ...] = ()
    inert: str = ""  # a statsd_exporter flag for machinery the bridge doesn't have: why it changes nothing
    name: str = ""  # the dashed spelling, the field's name: --statsd-listen-udp

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, self.dotted) if self.dotted else (self.name,)


def flag(
    default: Any,
    help: str,
    *,
    dotted: str = "",
    metavar: str = "",
    parse: Callable[[Any], Any] | None = None,
    check: Callable[[Any], None] | None = None,
    choices: tuple[str, ...] = (),
    shown: str = "",
    inert: str = "",
) -> Any:
    """A Config field and its flag (see Flag); the field's default is `default` parsed."""
    if inert:
        help = f"statsd_exporter's {help}; accepted and checked, no effect here: {inert}."
    if choices:
        check = partial(_choice, choices=choices)
    spec = Flag(help, default, shown or _shown(default), dotted, metavar, parse, check, choices, inert)
    value = parse(default) if parse is not None and default is not None else default
    return field(default=value, metadata={"flag": spec})


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    return "none" if default in ("", (), None) else str(default)


def _choice(value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"must be one of {', '.join(choices)}")


# parsers: the text of a command line -> the field's value; ValueError says why not


def integer(text: str | int) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None


def octal(text: str | int) -> int:
    try:
        return int(str(text), 8)
    except ValueError:
        raise ValueError(f"{text!r} is not an octal mode") from None


def worker_count(text: str | int) -> int:
    text = str(text)
    if text != "auto" and not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r}: {WORKER_COUNTS}")
    return workers_for(text)


# checks: the field's value -> None; ValueError says why not


def at_least(low: int, meaning: str) -> Callable[[int], None]:
    def check(value: int) -> None:
        if value < low:
            raise ValueError(f"must be {meaning}")

    return check


def between(low: int, high: int, meaning: str) -> Callable[[int], None]:
    def check(value: int) -> None:
        if not low <= value <= high:
            raise ValueError(meaning)

    return check


def positive_duration(seconds: float) -> None:
    if seconds <= 0:
        raise ValueError(f"{seconds:g}s: must be longer than 0")


def address(text: str) -> None:
    parse_address(text)


def listener_address(text: str) -> None:
    """An address, or "" to turn the listener off."""
    if text:
        parse_address(text)


def telemetry_path(path: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"{path!r} must start with /")
    if path in RESERVED_PATHS:
        raise ValueError(f"{path} is taken by another page")


def label_name(name: str) -> None:
    if name and not LABEL_NAME.match(name):
        raise ValueError(f"{name!r} is not a label name")


def relay_targets(targets: tuple[str, ...]) -> None:
    for target in targets:
        if parse_address(target)[1] == 0:
            raise ValueError(f"{target!r}: port 0 is no place to send to")


def flags_of(settings: tuple[Field, ...]) -> dict[str, Flag]:
    """Each field's flag by field name, named after the field: statsd_listen_udp is --statsd-listen-udp."""
    return {each.name: replace(each.metadata["flag"], name="--" + each.name.replace("_", "-")) for each in settings}
