"""The pages on their own, without a socket: the app answers Requests on an event loop of the test's."""

import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor

import bcrypt
from prometheus_client import CollectorRegistry

from bridge.web.app import App
from bridge.web.http import Request
from bridge.web.web_config import WebConfig
from tests.conftest import pipeline


def ask(app: App, path: str, method: str = "GET", **headers: str):
    return asyncio.run(app(Request(method, path, "", {k.replace("_", "-"): v for k, v in headers.items()})))


def app_for(**options) -> App:
    bridge = pipeline()
    bridge.send("hits:1|c")
    return App(bridge.store, CollectorRegistry(), lambda: 0.0, ThreadPoolExecutor(1), **options)


def test_metrics_health_and_unknown_pages():
    app = app_for()
    response = ask(app, "/metrics")
    assert response.status == 200 and b"hits 1\n" in response.body
    assert ask(app, "/-/healthy").status == 200
    assert ask(app, "/nope").status == 404
    assert ask(app, "/metrics", method="POST").status == 405


def test_readiness_follows_the_listeners():
    ready = []
    app = app_for(ready=lambda: bool(ready))
    assert ask(app, "/-/ready").status == 503
    ready.append(True)
    assert ask(app, "/-/ready").status == 200


def test_lifecycle_endpoints_answer_403_unless_enabled():
    assert ask(app_for(), "/-/reload", method="POST").status == 403

    async def reload() -> tuple[bool, str]:
        return False, "reload failed: the reason"

    async def quit_() -> tuple[bool, str]:
        return True, "bye"

    enabled = app_for(lifecycle={"/-/reload": reload, "/-/quit": quit_})
    failed = ask(enabled, "/-/reload", method="POST")
    assert failed.status == 500 and failed.body == b"reload failed: the reason\n"
    assert ask(enabled, "/-/quit", method="POST").status == 200


def test_basic_auth_covers_every_page():
    users = {"prometheus": bcrypt.hashpw(b"secret", bcrypt.gensalt(4))}
    app = app_for(web_config=WebConfig(users=users))
    refused = ask(app, "/-/healthy")
    assert refused.status == 401 and ("WWW-Authenticate", "Basic") in refused.headers
    good = base64.b64encode(b"prometheus:secret").decode()
    assert ask(app, "/metrics", authorization=f"Basic {good}").status == 200


def test_clear_takes_match_from_the_form_body_then_the_query_string():
    asked: list[list] = []

    async def clear(selectors: list) -> int:
        asked.append(selectors)
        return 7

    async def quit_() -> tuple[bool, str]:
        return True, "bye"

    app = app_for(lifecycle={"/-/quit": quit_}, clear=clear)
    form = {"content-type": "application/x-www-form-urlencoded; charset=utf-8"}
    body = b"match[]=%7Bjob%3D%22a%22%7D&match[]=b"
    answer = asyncio.run(app(Request("POST", "/-/clear", "match[]=c{x=~'1'}", form, body=body)))
    assert answer.status == 200 and answer.body == b"7\n"
    assert [[matcher.value for matcher in selector] for selector in asked[0]] == [["a"], ["b"], ["c", "1"]]
    assert asyncio.run(app(Request("PUT", "/-/clear", "", {}))).status == 200  # no match[] at all: every series
    assert asked[1] == []
    # what might hide a selector is refused, never read as "every series": another kind of body, another
    # parameter, more selectors than are tried at once, a form that is not UTF-8
    for request, reason in (
        (Request("PUT", "/-/clear", "", {"content-type": "text/plain"}, body=b"match[]=b"), b"must be a form"),
        (Request("POST", "/-/clear", "match=b", {}), b"unknown parameter 'match'"),
        (Request("POST", "/-/clear", "match[]=a&other=1", {}), b"unknown parameter 'other'"),
        (Request("POST", "/-/clear", "&".join(["match[]=a"] * 17), {}), b"at most 16"),
        (Request("POST", "/-/clear", "", form, body=b"match[]=%ff"), b"not UTF-8"),
    ):
        refused = asyncio.run(app(request))
        assert refused.status == 400 and reason in refused.body, refused.body
    assert app.clear_requests == {"cleared": 2, "bad_request": 5}
    assert len(asked) == 2
