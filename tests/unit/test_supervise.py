"""The supervision of background work: the backoff schedule, the file watch's retries (a reload that
raises included), the event loop's exception handler held to a rate limit, a task's failure reported as
it ends, and the web config reload that raises counted as a failed reload."""

import asyncio
import contextlib
import logging
from collections import Counter

import pytest

from bridge.supervise import Backoff, FileWatch, loop_exception_handler, report_failure
from bridge.web.front import WebFront, raise_open_files_limit
from bridge.web.http import Limits, Server
from bridge.web.tls import Loaded
from bridge.web.web_config import WebConfig
from tests.conftest import FakeClock


def test_the_backoff_doubles_up_to_its_longest_and_a_success_resets_it():
    backoff = Backoff(longest=8.0)
    assert [backoff.failed(100.0) for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert not backoff.due(107.9) and backoff.due(108.0)
    backoff.succeeded()
    assert backoff.due(0.0) and backoff.failed(200.0) == 1


class Reloads:
    """A reload that fails, raises or passes as told, counting its calls."""

    def __init__(self, outcomes: list) -> None:
        self.outcomes, self.calls = outcomes, 0

    async def __call__(self) -> bool:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.mark.parametrize("failure", [False, RuntimeError("a bug in the reload")], ids=["fails", "raises"])
def test_a_reload_that_fails_or_raises_is_tried_again_on_the_backoff_schedule(tmp_path, failure):
    watched = tmp_path / "web.yml"
    watched.write_text("a")
    clock = FakeClock()
    reload = Reloads([failure, failure, True])
    watch = FileWatch("web_config", lambda: [str(watched)], reload, clock=clock)
    watched.write_text("changed")

    async def step() -> None:
        with contextlib.suppress(RuntimeError):  # `periodic` counts and logs it
            await watch.step()

    async def every_second_for(seconds: int) -> None:
        for _ in range(seconds):
            await step()
            clock.now += 1

    asyncio.run(every_second_for(3))  # tries at 0 s and 1 s; the next at 1 + 2 s
    assert reload.calls == 2 and watch.pending
    asyncio.run(every_second_for(1))
    assert reload.calls == 3 and not watch.pending


def test_the_loop_handler_counts_every_error_and_logs_a_few_tracebacks_of_each_component(caplog):
    failures: Counter = Counter()
    handle = loop_exception_handler(failures)
    with caplog.at_level(logging.ERROR):
        for n in range(1000):
            handle(None, {"message": "Exception in callback", "exception": ValueError(n)})
        handle(None, {"message": "datagram listener failed", "exception": ValueError(), "component": "listener"})
    assert failures == {"event_loop": 1000, "listener": 1}
    logged = [record.fields["component"] for record in caplog.records if record.exc_info]
    assert logged == ["event_loop"] * 10 + ["listener"]


def test_a_task_that_ends_on_an_error_is_reported_as_it_ends():
    async def run() -> Counter:
        failures: Counter = Counter()
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(loop_exception_handler(failures))

        async def fails() -> None:
            raise RuntimeError("escaped")

        async def cancelled() -> None:
            await asyncio.sleep(10)

        first, second = loop.create_task(fails()), loop.create_task(cancelled())
        report_failure(first, "introduce", "the early hand-over stopped")
        report_failure(second, "introduce", "the early hand-over stopped")
        await asyncio.sleep(0)
        second.cancel()
        await asyncio.sleep(0.01)
        return failures

    assert asyncio.run(run()) == {"introduce": 1}


def test_a_web_config_reload_that_raises_is_a_failed_reload_and_an_internal_error(monkeypatch, caplog):
    def load_with_a_bug(path):
        raise KeyError("a bug in the web config reload")

    monkeypatch.setattr("bridge.web.front.load", load_with_a_bug)

    async def reload() -> tuple[bool, Counter, Counter]:
        reloads: Counter = Counter({"success": 0, "failure": 0})
        failures: Counter = Counter()
        front = WebFront(None, Loaded(WebConfig()), Limits(), None, reloads, failures)  # type: ignore[arg-type]
        return await front.reload(), reloads, failures

    with caplog.at_level(logging.ERROR):
        passed, reloads, failures = asyncio.run(reload())
    assert not passed
    assert reloads == {"success": 0, "failure": 1} and failures == {"web_config": 1}
    assert "KeyError: 'a bug in the web config reload'" in caplog.text  # the traceback


def test_a_failure_shared_by_several_requests_is_counted_and_logged_once(caplog):
    async def fail_shared() -> Counter:
        failures: Counter = Counter()
        server = Server(lambda request: None, failures=failures)  # type: ignore[arg-type,return-value]
        shared, other = RuntimeError("one failed render"), RuntimeError("another")
        for path in ("/metrics", "/metrics", "/metrics"):  # three scrapers waited on the same render
            server.failed(shared, "request failed", path=path)
        server.failed(other, "request failed", path="/metrics")
        return failures

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(fail_shared()) == {"http": 2}
    assert caplog.text.count("RuntimeError: one failed render") == 1


def test_an_open_files_limit_that_cannot_be_raised_is_told(monkeypatch, caplog):
    import resource

    def refused(which, limits):
        raise ValueError("not allowed")

    monkeypatch.setattr(resource, "getrlimit", lambda which: (1024, 4096))
    monkeypatch.setattr(resource, "setrlimit", refused)
    with caplog.at_level(logging.WARNING):
        raise_open_files_limit()
    [warning] = caplog.records
    assert warning.getMessage() == "the open-files limit could not be raised"
    assert warning.fields == {"soft": 1024, "hard": 4096, "error": "not allowed"}
