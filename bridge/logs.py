"""Logging set-up: logfmt-like lines for people, JSON for machines."""

from __future__ import annotations

import json
import logging
import math
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

LEVELS = ("debug", "info", "warn", "warning", "error")


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "msg": record.getMessage(),
    }
    fields.update(getattr(record, "fields", {}))
    if record.exc_info:
        fields["error"] = logging.Formatter().formatException(record.exc_info)
    return fields


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(_fields(record), default=str)


def setup(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel("WARNING" if level == "warn" else level.upper())


def log(logger: logging.Logger, level: int, msg: str, **fields: object) -> None:
    """Log msg with key=value fields, as logfmt or JSON keys."""
    logger.log(level, msg, extra={"fields": fields})


@dataclass(slots=True)
class _Window:
    """One kind of message's current window: when it started, how many went out, how many were held back."""

    started: float
    level: int
    sent: int = 0
    held: int = 0


class RateLimited:
    """Let through at most `burst` messages of each kind per `interval` seconds, and say how many of a kind
    were held back once its window ends. A kind is the message text and the `kind` key the caller names
    (the reason of a rejection, say), so that a flood of one warning never hides another: callers keep
    the text fixed and put what varies in the fields. At most MAX_KINDS kinds have windows of their own at
    once; the rest share one."""

    MAX_KINDS = 64
    OTHERS = ("", "")  # the shared window of the kinds past MAX_KINDS

    def __init__(
        self,
        logger: logging.Logger,
        burst: int = 10,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.burst, self.interval, self.clock = logger, burst, interval, clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self._next_end = math.inf  # when the earliest window ends: nothing to summarise before
        _limiters.add(self)

    def __call__(self, level: int, msg: str, /, kind: str = "", **fields: object) -> None:
        self._emit(level, msg, kind, False, fields)

    def exception(self, msg: str, /, kind: str = "", error: BaseException | None = None, **fields: object) -> None:
        """An error with the traceback of `error`, or of the exception being handled, within the same limit."""
        self._emit(logging.ERROR, msg, kind, error if error is not None else True, fields)

    def summarise(self) -> None:
        """Close the windows that ended, saying how many messages of each were held back."""
        now = self.clock()
        if now < self._next_end:
            return
        self._next_end = math.inf
        for key, window in list(self._windows.items()):
            if now - window.started < self.interval:
                self._next_end = min(self._next_end, window.started + self.interval)
                continue
            del self._windows[key]
            if window.held:
                msg, kind = key
                of = {"of": msg or "kinds past the limit"} | ({"kind": kind} if kind else {})
                log(self.logger, window.level, "suppressed similar messages", count=window.held, **of)

    def _emit(self, level: int, msg: str, kind: str, exc_info: bool | BaseException, fields: dict[str, object]) -> None:
        self.summarise()
        key = (msg, kind)
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self.MAX_KINDS:
                key = self.OTHERS
                window = self._windows.get(key)
            if window is None:
                now = self.clock()
                window = self._windows[key] = _Window(now, level)
                self._next_end = min(self._next_end, now + self.interval)
        if window.sent < self.burst:
            window.sent += 1
            self.logger.log(level, msg, exc_info=exc_info, extra={"fields": fields})
        else:
            window.held += 1
            window.level = max(window.level, level)


_limiters: weakref.WeakSet[RateLimited] = weakref.WeakSet()


def summarise_held_back() -> None:
    """Say what every limiter of this process held back in the windows that ended (the sweep calls it every
    second, so that a flood that stops is summarised without waiting for another message)."""
    for limiter in list(_limiters):
        limiter.summarise()
