"""Logging set-up: logfmt-like lines for people, JSON for machines."""

from __future__ import annotations

import json
import logging
import time

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


class RateLimited:
    """Let through at most `burst` messages of each text per `interval` seconds, then say how many of it
    were held back. Each text has its own limit, so that a flood of one warning never hides another:
    callers keep the text fixed and put what varies in the fields."""

    def __init__(self, logger: logging.Logger, burst: int = 10, interval: float = 10.0) -> None:
        self.logger, self.burst, self.interval = logger, burst, interval
        self._windows: dict[str, list] = {}  # text -> [window start, sent, suppressed]

    def __call__(self, level: int, msg: str, **fields: object) -> None:
        self._emit(level, msg, False, fields)

    def exception(self, msg: str, **fields: object) -> None:
        """An error with the traceback being handled, within the same limit."""
        self._emit(logging.ERROR, msg, True, fields)

    def _emit(self, level: int, msg: str, exc_info: bool, fields: dict[str, object]) -> None:
        now = time.monotonic()
        window = self._windows.get(msg)
        if window is None:
            window = self._windows[msg] = [now, 0, 0]
        elif now - window[0] >= self.interval:
            if window[2]:
                log(self.logger, level, "suppressed similar messages", count=window[2], of=msg)
            window[:] = [now, 0, 0]
        if window[1] < self.burst:
            window[1] += 1
            self.logger.log(level, msg, exc_info=exc_info, extra={"fields": fields})
        else:
            window[2] += 1
