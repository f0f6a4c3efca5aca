"""The log's rate limit: each kind of message its own window, a cap on the windows, and the held-back
count told once a window ends, whether or not another message of that kind comes."""

import logging

import pytest

from bridge.logs import RateLimited, summarise_held_back
from tests.conftest import FakeClock

logger = logging.getLogger("tests.rate_limited")


def said(caplog, text: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.getMessage() == text]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_a_flood_of_one_kind_hides_no_other_kind_of_the_same_text(caplog, clock):
    limited = RateLimited(logger, burst=10, interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING):
        for _ in range(1000):
            limited(logging.WARNING, "http request refused", kind="header_timeout", reason="header_timeout")
        limited(logging.WARNING, "http request refused", kind="tls_rejected", reason="tls_rejected")
    reasons = [record.fields["reason"] for record in said(caplog, "http request refused")]
    assert reasons == ["header_timeout"] * 10 + ["tls_rejected"]


def test_the_held_back_count_is_told_at_the_next_message_of_another_kind_once_the_window_ends(caplog, clock):
    limited = RateLimited(logger, burst=2, interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING):
        for _ in range(7):
            limited(logging.WARNING, "rejected line", kind="malformed_line")
        clock.now += 9.9
        limited(logging.WARNING, "rejected line", kind="invalid_value")
        assert said(caplog, "suppressed similar messages") == []  # the window has not ended yet
        clock.now += 0.1
        limited(logging.WARNING, "relay send failed")
    [summary] = said(caplog, "suppressed similar messages")
    assert summary.fields == {"count": 5, "of": "rejected line", "kind": "malformed_line"}
    assert summary.levelno == logging.WARNING


def test_a_flood_that_stops_is_summarised_by_the_sweep_without_another_message(caplog, clock):
    limited = RateLimited(logger, burst=1, interval=10.0, clock=clock)
    with caplog.at_level(logging.ERROR):
        for _ in range(4):
            limited(logging.ERROR, "unhandled error in the event loop", kind="event_loop")
        summarise_held_back()
        assert said(caplog, "suppressed similar messages") == []
        clock.now += 10
        summarise_held_back()
        summarise_held_back()  # told once
    [summary] = said(caplog, "suppressed similar messages")
    assert summary.fields["count"] == 3 and summary.levelno == logging.ERROR
    assert limited._windows == {}  # an ended window is dropped: it holds no slot


def test_past_the_cap_the_other_kinds_share_one_window(caplog, clock):
    limited = RateLimited(logger, burst=10, interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING):
        for kind in range(RateLimited.MAX_KINDS + 16):
            limited(logging.WARNING, "rejected line", kind=str(kind))
        clock.now += 10
        summarise_held_back()
    assert len(said(caplog, "rejected line")) == RateLimited.MAX_KINDS + 10
    [summary] = said(caplog, "suppressed similar messages")
    assert summary.fields == {"count": 6, "of": "kinds past the limit"}


def test_a_window_that_ended_without_holding_back_says_nothing(caplog, clock):
    limited = RateLimited(logger, burst=10, interval=10.0, clock=clock)
    with caplog.at_level(logging.WARNING):
        limited(logging.WARNING, "metric type conflict")
        clock.now += 11
        limited(logging.WARNING, "metric type conflict")
    assert len(said(caplog, "metric type conflict")) == 2
    assert said(caplog, "suppressed similar messages") == []


def test_exception_logs_the_traceback_of_the_error_given(caplog, clock):
    limited = RateLimited(logger, burst=1, clock=clock)
    error = ValueError("in a callback")
    with caplog.at_level(logging.ERROR):
        limited.exception("unhandled error in the event loop", kind="event_loop", error=error, component="event_loop")
        limited.exception("unhandled error in the event loop", kind="event_loop", error=error, component="event_loop")
    [record] = said(caplog, "unhandled error in the event loop")
    assert record.exc_info[1] is error and record.fields == {"component": "event_loop"}
