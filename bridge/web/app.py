"""The pages the bridge serves: metrics, landing or status page, health, readiness and lifecycle (reload,
quit, clear).

Requests arrive from bridge/web/http.py; anything slow (a render, a bcrypt check) runs on the worker
pool, never on the event loop that reads datagrams. Scrapes of one format that arrive while
another is being rendered share the next render, so a thousand scrapers cost one render at a time and
hold one copy of its bytes.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import html
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from urllib.parse import parse_qsl

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from bridge.exposition import protobuf as protobuf_format
from bridge.exposition.escaping import ALLOW_UTF8, DEFAULT
from bridge.exposition.negotiate import negotiate
from bridge.exposition.openmetrics import OpenMetricsView
from bridge.exposition.text import TEXT_CONTENT_TYPE, render_text
from bridge.logs import log
from bridge.series.selectors import Selector, SelectorError, parse_selector
from bridge.series.store import Store
from bridge.web.access import Authenticator, RateLimiter
from bridge.web.http import Request, Response
from bridge.web.status import Status
from bridge.web.status import render as render_status
from bridge.web.web_config import WebConfig

logger = logging.getLogger("bridge.web")

LANDING_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>statsd-bridge</title></head>
<body><h1>statsd-bridge</h1><p>StatsD in, Prometheus out.</p>
<p><a href="{path}">Metrics ({path})</a></p></body></html>
"""

Rendered = tuple[str, bytes]  # content type, body
LIFECYCLE_OFF = "Lifecycle API is not enabled (--web-enable-lifecycle).\n"
FORM = "application/x-www-form-urlencoded"
# each selector is tried against every series the store holds, on the event loop: a few at a time
MAX_SELECTORS = 16


def page(status: int, text: str, content_type: str = "text/plain") -> Response:
    return Response(status, [("Content-Type", f"{content_type}; charset=utf-8")], text.encode("utf-8"))


def _with_escaping(content_type: str, escaping: str) -> str:
    """The Content-Type with `escaping` as its escaping term (prometheus_client's OpenMetrics writer names
    one of its own, read its way); unchanged when the scraper named no scheme."""
    if not escaping:
        return content_type
    terms = [term for term in content_type.split("; ") if not term.startswith("escaping=")]
    return "; ".join([*terms, f"escaping={escaping}"])


class SharedRenders:
    """At most one render running and one waiting per kind of output. A request joins the waiting one,
    which starts only after the request arrived, so nobody is answered with data older than their
    request; when none waits, a new one is queued behind the running one."""

    def __init__(
        self,
        pool: Executor,
        before: Callable[[], None] = lambda: None,
        prepare: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        self.pool = pool
        self.before = before  # run on the event loop as each render starts: the store's fold_pending
        # awaited before that: the receiving workers' hand-over, so that a line sent before a scrape is in it
        self.prepare = prepare
        self._running: dict[tuple, asyncio.Future] = {}
        self._waiting: dict[tuple, asyncio.Future] = {}

    async def get(self, key: tuple, render: Callable[[], Rendered]) -> Rendered:
        waiting = self._waiting.get(key)
        if waiting is None:
            waiting = self._waiting[key] = asyncio.ensure_future(self._after_running(key, render))
        return await asyncio.shield(waiting)

    async def _after_running(self, key: tuple, render: Callable[[], Rendered]) -> Rendered:
        running = self._running.get(key)
        if running is not None:
            await asyncio.wait([running])
        del self._waiting[key]
        task = self._running[key] = asyncio.ensure_future(self._prepared(render))
        try:
            return await task
        finally:
            if self._running.get(key) is task:
                del self._running[key]

    async def _prepared(self, render: Callable[[], Rendered]) -> Rendered:
        """The render, once the workers have handed over (prepare) and pending observations are folded."""
        if self.prepare is not None:
            await self.prepare()
        self.before()
        return await asyncio.get_running_loop().run_in_executor(self.pool, render)


class App:
    """The request handler: web config (rate limit, basic auth, headers), then the page asked for."""

    def __init__(
        self,
        store: Store,
        self_metrics: Collector,
        clock: Callable[[], float],
        pool: Executor,
        telemetry_path: str = "/metrics",
        ready: Callable[[], bool] = lambda: True,
        lifecycle: dict[str, Callable[[], Awaitable[tuple[bool, str]]]] | None = None,
        openmetrics: bool = False,
        status: Callable[[], Status] | None = None,
        web_config: WebConfig | None = None,
        prepare: Callable[[], Awaitable[object]] | None = None,
        clear: Callable[[list[Selector]], Awaitable[int]] | None = None,
        clear_requests: Counter[str] | None = None,
    ) -> None:
        self.store = store
        self.self_metrics = self_metrics
        self.clock = clock
        self.pool = pool
        self.telemetry_path = telemetry_path
        self.ready = ready
        # "/-/reload" and "/-/quit" -> what they do, answering (ok, message); None: the endpoints are off
        self.lifecycle = lifecycle
        # POST /-/clear: drops the series selected (all, with no selector), how many; on with the lifecycle API
        self.clear = clear
        self.clear_requests: Counter[str] = Counter() if clear_requests is None else clear_requests  # by outcome
        # Off by default, as in statsd_exporter: OpenMetrics writes le="1.0" where the text format writes
        # le="1", and Prometheus 2 stores either as sent, so dashboards written against statsd_exporter
        # would lose their buckets.
        self.openmetrics = OpenMetricsView(store, self_metrics, clock) if openmetrics else None
        self.status = status  # what the page at / shows; None: a plain landing page
        # pending histogram observations are folded in on the loop, the only thread that writes series
        self.renders = SharedRenders(pool, before=store.fold_pending, prepare=prepare)
        self.use(web_config or WebConfig())

    def use(self, web_config: WebConfig) -> None:
        """Take a (re-read) web config: users, headers and rate limit apply from the next request."""
        self.web_config = web_config
        self.authenticator = Authenticator(web_config.users)
        self.limiter = RateLimiter(*web_config.rate_limit) if web_config.rate_limit else None

    async def __call__(self, request: Request) -> Response:
        response = await self._guarded(request)
        response.headers.extend(self.web_config.headers.items())
        return response

    async def _guarded(self, request: Request) -> Response:
        if self.limiter is not None and not self.limiter.allow():
            return page(429, "Too Many Requests\n")
        if self.authenticator.users:
            loop = asyncio.get_running_loop()
            allowed = await loop.run_in_executor(
                self.pool, self.authenticator.allowed, request.headers.get("authorization")
            )
            if not allowed:
                response = page(401, "Unauthorized\n")
                response.headers.append(("WWW-Authenticate", "Basic"))
                return response
        return await self.route(request)

    async def route(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path in ("/-/reload", "/-/quit"):
            return await self._lifecycle(path, method)
        if path == "/-/clear":
            return await self._clear(request)
        if path not in ("/", self.telemetry_path, "/-/healthy", "/-/ready"):
            return page(404, f"404 page not found: {path}\n")
        if method not in ("GET", "HEAD"):
            response = page(405, f"{method} is not allowed on {path}\n")
            response.headers.append(("Allow", "GET, HEAD"))
            return response
        if path == self.telemetry_path:  # before "/": --web.telemetry-path=/ serves metrics there
            return await self.metrics(request)
        if path == "/":
            content_type, body = await self.renders.get(("/",), self._landing_page)
            return Response(200, [("Content-Type", content_type)], body)
        if path == "/-/ready" and not self.ready():
            return page(503, "not ready\n")
        return page(200, "OK\n")

    async def metrics(self, request: Request) -> Response:
        accept = request.headers.get("accept", "")
        chosen, escaping = negotiate(accept, openmetrics=self.openmetrics is not None)
        compress = "gzip" in request.headers.get("accept-encoding", "")
        if chosen == "openmetrics":
            _, content_type = choose_encoder(accept)
            key: tuple = (chosen, content_type, escaping, compress)
        else:
            key = (chosen, escaping, compress)
        content_type, body = await self.renders.get(key, lambda: self._render(chosen, accept, escaping, compress))
        headers = [("Content-Type", content_type), ("Vary", "Accept-Encoding")]
        if compress:
            headers.append(("Content-Encoding", "gzip"))
        return Response(200, headers, body)

    def _render(self, chosen: str, accept: str, escaping: str, compress: bool) -> Rendered:
        """Runs on a worker thread. Names are escaped by the scheme the scraper named, which the Content-Type
        echoes; a scraper that named none (Prometheus 2) gets underscores and the Content-Type of before."""
        scheme = escaping or DEFAULT
        if chosen == "openmetrics":
            assert self.openmetrics is not None  # negotiate offers it only when enabled
            encoder, content_type = choose_encoder(accept)
            if isinstance(encoder, functools.partial) and "escaping" in encoder.keywords:
                # the view escapes as prometheus/common does; prometheus_client must not again (its `dots`
                # doubles the underscores of every name), only quote what allow-utf-8 leaves unescaped
                encoder = functools.partial(encoder, escaping=ALLOW_UTF8)
            content_type = _with_escaping(content_type, escaping)
            body = encoder(self.openmetrics.escaped(scheme))
        elif chosen in ("protobuf", "protobuf-text"):
            encoding = "delimited" if chosen == "protobuf" else "text"
            content_type = protobuf_format.DELIMITED if chosen == "protobuf" else protobuf_format.TEXT
            content_type = _with_escaping(content_type, escaping)
            body = protobuf_format.render(self.store, self.self_metrics, self.clock(), encoding, scheme)
        else:
            content_type = _with_escaping(TEXT_CONTENT_TYPE, escaping)
            body = render_text(self.store, self.self_metrics, self.clock(), scheme)
        if compress:
            body = gzip.compress(body, compresslevel=1)
        return content_type, body

    def _landing_page(self) -> Rendered:
        """Runs on a worker thread: the status page reads the store, copying what it walks."""
        if self.status is not None:
            return "text/html; charset=utf-8", render_status(self.status()).encode()
        return "text/html; charset=utf-8", LANDING_PAGE.format(path=html.escape(self.telemetry_path)).encode()

    async def _lifecycle(self, path: str, method: str) -> Response:
        if method not in ("POST", "PUT"):
            return _post_only(method, path)
        if self.lifecycle is None:
            return page(403, LIFECYCLE_OFF)
        ok, message = await self.lifecycle[path]()
        return page(200 if ok else 500, message + "\n")

    async def _clear(self, request: Request) -> Response:
        """Drop the series any `match[]` selector selects (form body or query string, as Prometheus's
        delete_series takes them), or every series without one; answers how many went, as a number."""
        if request.method not in ("POST", "PUT"):
            return _post_only(request.method, request.path)
        if self.lifecycle is None or self.clear is None:
            self.clear_requests["disabled"] += 1
            return page(403, LIFECYCLE_OFF)
        texts: list[str] = []
        try:
            texts = match_parameters(request)
        except ClearRequestError as error:
            self.clear_requests["bad_request"] += 1
            log(logger, logging.WARNING, "clear refused", client=request.peer, error=str(error))
            return page(400, f"{error}\n")
        shown = " ".join(texts)  # "": every series
        try:
            selectors = [parse_selector(text) for text in texts]
        except SelectorError as error:
            self.clear_requests["bad_selector"] += 1
            log(logger, logging.WARNING, "clear refused", client=request.peer, match=shown, error=str(error))
            return page(400, f"bad match[] selector: {error}\n")
        cleared = await self.clear(selectors)
        self.clear_requests["cleared"] += 1
        log(logger, logging.INFO, "series cleared", client=request.peer, match=shown, series=cleared)
        return page(200, f"{cleared}\n")


def _post_only(method: str, path: str) -> Response:
    response = page(405, f"{method} is not allowed on {path}\n")
    response.headers.append(("Allow", "POST, PUT"))
    return response


class ClearRequestError(ValueError):
    """A /-/clear request whose selectors can't be read for sure; the message says why."""


def match_parameters(request: Request) -> list[str]:
    """The `match[]` values of a request: those of a form body (application/x-www-form-urlencoded), then
    those of the query string, as Go's Request.ParseForm orders them. No selector means every series, so a
    request whose selectors might be lost (another kind of body, another parameter, more than
    MAX_SELECTORS) raises ClearRequestError rather than clear everything."""
    form = request.query
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.body and content_type != FORM:
        raise ClearRequestError(f"the body must be a form ({FORM}), not {content_type or 'untyped'}")
    try:
        if request.body:
            form = request.body.decode("utf-8") + "&" + form
        pairs = parse_qsl(form, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise ClearRequestError("the form is not UTF-8") from None
    unknown = sorted({name for name, _ in pairs} - {"match[]"})
    if unknown:
        raise ClearRequestError(f"unknown parameter {unknown[0]!r}: only match[] is read")
    texts = [value for _, value in pairs]
    if len(texts) > MAX_SELECTORS:
        raise ClearRequestError(f"{len(texts)} selectors: at most {MAX_SELECTORS} a request")
    return texts
