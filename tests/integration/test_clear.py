"""POST /-/clear through a real socket: every series or those the match[] selectors select, the count it
answers, its refusals (a bad selector, GET, the lifecycle API off, no password), and series made anew by
the next line, with one receiving worker and with two."""

from __future__ import annotations

import base64
import time
import urllib.error
import urllib.parse
import urllib.request

import bcrypt
import pytest

from tests.conftest import BridgeProcess, parse_samples, sample, start_bridge

pytestmark = pytest.mark.usefixtures("each_worker_count")

LINES = (
    "api.hits:2|c|#job:api,code:200",
    "api.hits:3|c|#job:api,code:500",
    "db.queries:4|c|#job:db",
    "db.pool:7|g|#job:db",
    "web.latency:0.2|ms|#job:web",
)
SERIES = 5
PASSWORD = "s3cret"


def clear(
    bridge: BridgeProcess,
    *selectors: str,
    query: tuple[str, ...] = (),
    method: str = "POST",
    headers: dict | None = None,
) -> tuple[int, dict, str]:
    """`selectors` go in a form body, `query` in the query string, both as match[]."""
    url = bridge.web + "/-/clear"
    if query:
        url += "?" + urllib.parse.urlencode([("match[]", text) for text in query])
    data = urllib.parse.urlencode([("match[]", text) for text in selectors]).encode() if selectors else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def names(samples: dict) -> set[str]:
    return {name for name, _ in samples if not name.startswith(("statsd_bridge_", "python_", "process_"))}


def fill(bridge: BridgeProcess) -> dict:
    bridge.send_udp("\n".join(LINES))
    samples = bridge.wait_for(lambda s: series(s) == SERIES, timeout=15)
    assert samples is not None, "".join(bridge.log)
    return samples


def logged(bridge: BridgeProcess, message: str, count: int) -> list[str]:
    """The log lines with `message`, once there are `count` of them (the log is read on a thread of its own,
    so a line can follow the HTTP answer it was written before)."""
    deadline = time.monotonic() + 5
    while len(lines := [line for line in bridge.log if message in line]) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return lines


def series(samples: dict) -> int:
    """The series the bridge holds, as its self-metric counts them."""
    return int(sum(value for (name, _), value in samples.items() if name == "statsd_bridge_metrics"))


def test_clear_drops_the_selected_series_and_answers_how_many(bridge_factory):
    bridge = bridge_factory("--web.enable-lifecycle")
    assert series(fill(bridge)) == SERIES
    assert clear(bridge, 'api_hits{code=~"5.."}')[::2] == (200, "1\n")
    samples = bridge.samples()
    assert sample(samples, "api_hits", job="api", code="200") == 2
    assert sample(samples, "api_hits", job="api", code="500") is None
    # several selectors, in the body and the query string: a series any of them selects goes
    status, headers, body = clear(bridge, '{__name__=~"db_.*"}', query=('{job="web"}',))
    assert (status, body) == (200, "3\n") and headers["Content-Type"].startswith("text/plain")
    assert names(bridge.samples()) == {"api_hits"}
    assert clear(bridge, "no_such_metric")[::2] == (200, "0\n")
    assert clear(bridge, method="PUT")[::2] == (200, "1\n")  # no selector: every series
    samples = bridge.samples()
    assert names(samples) == set() and series(samples) == 0
    assert sample(samples, "statsd_bridge_cleared_series_total") == 5
    assert sample(samples, "statsd_bridge_clear_requests_total", outcome="cleared") == 4
    lines = logged(bridge, "series cleared", 4)
    assert len(lines) == 4 and all("client=127.0.0.1:" in line for line in lines), lines
    assert """match="api_hits{code=~\\"5..\\"}" series=1""" in lines[0], lines[0]
    assert """match="{__name__=~\\"db_.*\\"} {job=\\"web\\"}" series=3""" in lines[1], lines[1]
    assert """match="" series=1""" in lines[3], lines[3]


def test_the_next_line_makes_a_cleared_series_anew(bridge_factory):
    bridge = bridge_factory("--web.enable-lifecycle")
    bridge.send_udp("jobs.done:5|c", "jobs.done:5|c", "queue.depth:+4|g")
    assert bridge.wait_for(lambda s: sample(s, "jobs_done") == 10 and sample(s, "queue_depth") == 4) is not None
    assert clear(bridge)[::2] == (200, "2\n")
    bridge.send_udp("jobs.done:1|c", "queue.depth:+1|g")
    assert bridge.wait_for(lambda s: sample(s, "jobs_done") == 1 and sample(s, "queue_depth") == 1) is not None
    time.sleep(2.5)  # two hand-over rounds: no worker brings its old total back
    bridge.send_udp("jobs.done:1|c")
    samples = bridge.wait_for(lambda s: sample(s, "jobs_done") == 2)
    assert samples is not None and sample(samples, "queue_depth") == 1, bridge.metrics()
    assert series(samples) == 2


BAD_SELECTORS = {
    "{}": "at least one non-empty matcher",
    '{job=""}': "at least one non-empty matcher",
    '{job=~".*"}': "at least one non-empty matcher",
    'api_hits{code="5': "unterminated quoted string",
    "api_hits{code=5}": "expected a quoted string",
    '{a=~"("}': "invalid regular expression",
    "rate(x[1m])": "unexpected '(x[1m])'",
    "": "empty selector",
}


def test_a_bad_selector_is_refused_with_its_reason_and_drops_nothing(bridge_factory):
    bridge = bridge_factory("--web.enable-lifecycle")
    fill(bridge)
    for selector, reason in BAD_SELECTORS.items():
        status, _, body = clear(bridge, "api_hits", selector)  # the good one beside it is not applied either
        assert status == 400 and body.startswith("bad match[] selector: ") and reason in body, (selector, body)
    samples = bridge.samples()
    assert series(samples) == SERIES
    assert sample(samples, "statsd_bridge_clear_requests_total", outcome="bad_selector") == len(BAD_SELECTORS)
    assert sample(samples, "statsd_bridge_cleared_series_total") == 0
    refused = logged(bridge, "clear refused", len(BAD_SELECTORS))
    assert len(refused) == len(BAD_SELECTORS) and "client=127.0.0.1:" in refused[0], refused


def test_a_request_whose_selectors_might_be_lost_drops_nothing(bridge_factory):
    """curl -F sends a multipart body, and a misspelled parameter is no match[]: neither clears everything."""
    bridge = bridge_factory("--web.enable-lifecycle")
    fill(bridge)
    boundary = "x0x0x0"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="match[]"\r\n\r\n{{job="api"}}\r\n--{boundary}--\r\n'
    ).encode()
    request = urllib.request.Request(
        bridge.web + "/-/clear",
        data=multipart,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 400 and b"must be a form" in refused.value.read()
    misspelled = urllib.request.Request(bridge.web + "/-/clear?match=%7Bjob%3D%22api%22%7D", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(misspelled, timeout=10)
    assert refused.value.code == 400 and b"unknown parameter 'match'" in refused.value.read()
    samples = bridge.samples()
    assert series(samples) == SERIES
    assert sample(samples, "statsd_bridge_clear_requests_total", outcome="bad_request") == 2


def test_clear_is_post_or_put_and_off_without_the_lifecycle_api(bridge_factory):
    off = bridge_factory()
    fill(off)
    assert clear(off)[::2] == (403, "Lifecycle API is not enabled (--web-enable-lifecycle).\n")
    status, headers, _ = clear(off, method="GET")
    assert status == 405 and headers["Allow"] == "POST, PUT"
    samples = off.samples()
    assert series(samples) == SERIES
    assert sample(samples, "statsd_bridge_clear_requests_total", outcome="disabled") == 1
    on = bridge_factory("--web.enable-lifecycle")
    fill(on)
    for method in ("GET", "HEAD", "DELETE"):
        status, headers, _ = clear(on, method=method)
        assert status == 405 and headers["Allow"] == "POST, PUT", method
    assert series(on.samples()) == SERIES


def test_clear_is_behind_basic_auth(tmp_path):
    web_config = tmp_path / "web.yml"
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_config.write_text(f"basic_auth_users:\n  ops: {hashed}\n")
    bridge = start_bridge("--web.enable-lifecycle", f"--web.config.file={web_config}")
    try:
        behind_basic_auth(bridge)
    finally:
        bridge.stop()


def behind_basic_auth(bridge: BridgeProcess) -> None:
    bridge.send_udp("\n".join(LINES))
    good = {"Authorization": "Basic " + base64.b64encode(f"ops:{PASSWORD}".encode()).decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ops:guess").decode()}

    def authorised_samples() -> dict:
        status, _, body = bridge.get("/metrics", good)
        assert status == 200
        return parse_samples(body.decode())

    deadline = time.monotonic() + 5
    while series(authorised_samples()) < SERIES:
        assert time.monotonic() < deadline, "".join(bridge.log)
        time.sleep(0.05)
    for headers in ({}, wrong):
        status, response_headers, _ = clear(bridge, headers=headers)
        assert status == 401 and response_headers["WWW-Authenticate"] == "Basic"
    assert series(authorised_samples()) == SERIES
    assert clear(bridge, "{job='db'}", headers=good)[::2] == (200, "2\n")
    assert series(authorised_samples()) == SERIES - 2
