"""Render the store for Prometheus and serve it over HTTP. The only module that knows HTTP.

The text format (0.0.4) is written directly: prometheus_client's writer renames
every counter to `<name>_total`, and statsd_exporter users expect the exact
mapped name. OpenMetrics, when the scraper asks for it, goes through
prometheus_client's own writer.
"""

from __future__ import annotations

import gzip
import html
import logging
import math
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from bridge import protobuf_format
from bridge.net import resolve_bind_address
from bridge.status import Status
from bridge.status import render as render_status
from bridge.store import Family, Store

logger = logging.getLogger("bridge.exposition")

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def format_value(value: float) -> str:
    """A float as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it, as client_golang does."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and -1e6 < value < 1e6:
        return str(int(value))
    sign = "-" if value < 0 else ""
    mantissa, _, exponent = repr(abs(value)).partition("e")  # repr gives the shortest digits
    whole, _, fraction = mantissa.partition(".")
    digits = whole + fraction
    point = len(whole) + int(exponent or 0)  # value = 0.<digits> * 10**point
    significant = digits.lstrip("0")
    point -= len(digits) - len(significant)
    digits = significant.rstrip("0") or "0"
    exp = point - 1
    if exp < -4 or exp >= 6:  # Go switches to %e here when asked for the shortest form
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _with(label_text: str, extra: str) -> str:
    return f"{{{label_text},{extra}}}" if label_text else f"{{{extra}}}"


def _braced(label_text: str) -> str:
    return f"{{{label_text}}}" if label_text else ""


def _render_family(family: Family, now: float, out: list[str]) -> None:
    series_list = list(family.series.values())
    if not series_list:
        return
    name = family.name
    out.append(f"# HELP {name} {_escape_help(family.help)}\n# TYPE {name} {family.type}\n")
    if family.type in ("counter", "gauge"):
        out.extend(f"{name}{_braced(s.label_text)} {format_value(s.value)}\n" for s in series_list)
    elif family.type == "histogram":
        bounds = [f'le="{format_value(b)}"' for b in family.buckets] + ['le="+Inf"']
        for s in series_list:
            cumulative = 0
            for bound, count in zip(bounds, s.counts, strict=True):
                cumulative += count
                out.append(f"{name}_bucket{_with(s.label_text, bound)} {cumulative}\n")
            labels = _braced(s.label_text)
            # _count is the +Inf bucket, so the two agree even if an update lands mid-render
            out.append(f"{name}_sum{labels} {format_value(s.sum)}\n{name}_count{labels} {cumulative}\n")
    else:
        wanted = tuple(q for q, _ in family.summary.quantiles)
        quantile_labels = [f'quantile="{format_value(q)}"' for q in wanted]
        for s in series_list:
            for label, value in zip(quantile_labels, s.window.quantiles(wanted, now), strict=True):
                out.append(f"{name}{_with(s.label_text, label)} {format_value(value)}\n")
            labels = _braced(s.label_text)
            out.append(f"{name}_sum{labels} {format_value(s.sum)}\n{name}_count{labels} {s.count}\n")


def render_text(store: Store, extra: Collector, now: float) -> bytes:
    """The Prometheus text format 0.0.4 of every series, then of `extra` (the self-metrics)."""
    out: list[str] = []
    for family in sorted(list(store.families.values()), key=lambda f: f.name):
        _render_family(family, now, out)
    for metric in extra.collect():
        _render_metric(metric, out)
    return "".join(out).encode("utf-8")


def _render_metric(metric: Metric, out: list[str]) -> None:
    """A prometheus_client metric family, with its sample names exactly as they are."""
    kind = {"unknown": "untyped", "info": "gauge", "stateset": "gauge"}.get(metric.type, metric.type)
    name = metric.name + "_total" if metric.type == "counter" else metric.name
    out.append(f"# HELP {name} {_escape_help(metric.documentation)}\n# TYPE {name} {kind}\n")
    for sample in metric.samples:
        if sample.name.endswith("_created"):
            continue
        labels = ",".join(f'{k}="{_escape_value(v)}"' for k, v in sorted(sample.labels.items()))
        out.append(f"{sample.name}{_braced(labels)} {format_value(float(sample.value))}\n")


def _escape_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class OpenMetricsView:
    """The store as prometheus_client Metric objects, for the OpenMetrics writer."""

    def __init__(self, store: Store, extra: Collector, clock: Callable[[], float]) -> None:
        self.store, self.extra, self.clock = store, extra, clock

    def collect(self) -> Iterator[Metric]:
        families = sorted(list(self.store.families.values()), key=lambda f: f.name)
        names = {f.name for f in families}
        now = self.clock()
        for family in families:
            metric = _openmetrics_family(family, names, now)
            if metric is not None:
                yield metric
        yield from self.extra.collect()


def _openmetrics_family(family: Family, names: set[str], now: float) -> Metric | None:
    series_list = list(family.series.values())
    if not series_list:
        return None
    name = family.name
    if family.type == "counter":
        base = name[: -len("_total")] if name.endswith("_total") else ""
        # OpenMetrics counters must end in _total; others keep their exact name as "unknown"
        if base and base not in names:
            metric = Metric(base, family.help, "counter")
        else:
            metric = Metric(name, family.help, "unknown")
        for s in series_list:
            metric.add_sample(name, dict(s.key), s.value)
        return metric
    metric = Metric(name, family.help, family.type)
    if family.type == "gauge":
        for s in series_list:
            metric.add_sample(name, dict(s.key), s.value)
    elif family.type == "histogram":
        bounds = [floatToGoString(b) for b in family.buckets] + ["+Inf"]
        for s in series_list:
            labels = dict(s.key)
            cumulative = 0
            for bound, count in zip(bounds, s.counts, strict=True):
                cumulative += count
                metric.add_sample(name + "_bucket", {**labels, "le": bound}, cumulative)
            metric.add_sample(name + "_count", labels, cumulative)
            metric.add_sample(name + "_sum", labels, s.sum)
    else:
        wanted = tuple(q for q, _ in family.summary.quantiles)
        for s in series_list:
            labels = dict(s.key)
            for quantile, value in zip(wanted, s.window.quantiles(wanted, now), strict=True):
                metric.add_sample(name, {**labels, "quantile": floatToGoString(quantile)}, value)
            metric.add_sample(name + "_count", labels, s.count)
            metric.add_sample(name + "_sum", labels, s.sum)
    return metric


def negotiate(accept: str, openmetrics: bool = False) -> str:
    """The format to answer an Accept header with, as client_golang's promhttp picks it: the first
    format it serves in order of q. "protobuf" (delimited), "protobuf-text", "openmetrics" (only when
    enabled) or "text", which is also the answer when nothing else fits."""
    offers = []
    for position, entry in enumerate(accept.split(",")):
        media, *parameters = (part.strip() for part in entry.split(";"))
        params = dict(p.partition("=")[::2] for p in parameters if "=" in p)
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 0.0
        offers.append((-quality, position, media.lower(), params))
    for _, _, media, params in sorted(offers):
        if media == protobuf_format.MEDIA_TYPE and params.get("proto") == protobuf_format.PROTO:
            encoding = params.get("encoding", "")
            if encoding in ("delimited", "text"):
                return "protobuf" if encoding == "delimited" else "protobuf-text"
        elif media == "text/plain" and params.get("version", "0.0.4") == "0.0.4":
            return "text"
        elif media == "application/openmetrics-text" and openmetrics:
            return "openmetrics"
    return "text"


LANDING_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>statsd-bridge</title></head>
<body><h1>statsd-bridge</h1><p>StatsD in, Prometheus out.</p>
<p><a href="{path}">Metrics ({path})</a></p></body></html>
"""


class App:
    """The WSGI application: telemetry path, landing page, health and readiness."""

    def __init__(
        self,
        store: Store,
        self_metrics: Collector,
        clock: Callable[[], float],
        telemetry_path: str = "/metrics",
        ready: Callable[[], bool] = lambda: True,
        lifecycle: dict[str, Callable[[], tuple[bool, str]]] | None = None,
        openmetrics: bool = False,
        status: Callable[[], Status] | None = None,
    ) -> None:
        self.store = store
        # "/-/reload" and "/-/quit" -> what they do, answering (ok, message); None: the endpoints are off
        self.lifecycle = lifecycle
        self.self_metrics = self_metrics
        self.clock = clock
        self.telemetry_path = telemetry_path
        self.ready = ready
        # Off by default, as in statsd_exporter: OpenMetrics writes le="1.0" where the text format writes
        # le="1", and Prometheus 2 stores either as sent, so dashboards written against statsd_exporter
        # would lose their buckets.
        self.openmetrics = OpenMetricsView(store, self_metrics, clock) if openmetrics else None
        self.status = status  # what the page at / shows; None: a plain landing page

    def metrics(self, environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
        chosen = negotiate(environ.get("HTTP_ACCEPT", ""), openmetrics=self.openmetrics is not None)
        if chosen == "openmetrics":
            encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
            body = encoder(self.openmetrics)
        elif chosen in ("protobuf", "protobuf-text"):
            encoding = "delimited" if chosen == "protobuf" else "text"
            content_type = protobuf_format.DELIMITED if chosen == "protobuf" else protobuf_format.TEXT
            body = protobuf_format.render(self.store, self.self_metrics, self.clock(), encoding)
        else:
            content_type, body = TEXT_CONTENT_TYPE, render_text(self.store, self.self_metrics, self.clock())
        headers = [("Content-Type", content_type)]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", ""):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        return "200 OK", headers, body

    def _ready_page(self, _environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
        return _page("200 OK", "OK\n") if self.ready() else _page("503 Service Unavailable", "not ready\n")

    def _landing_page(self, _environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
        if self.status is not None:
            return _page("200 OK", render_status(self.status()), "text/html")
        return _page("200 OK", LANDING_PAGE.format(path=html.escape(self.telemetry_path)), "text/html")

    def _lifecycle(self, path: str, method: str) -> tuple[str, list[tuple[str, str]], bytes]:
        if method not in ("POST", "PUT"):
            status, headers, body = _page("405 Method Not Allowed", f"{method} is not allowed on {path}\n")
            return status, [*headers, ("Allow", "POST, PUT")], body
        if self.lifecycle is None:
            return _page("403 Forbidden", "Lifecycle API is not enabled (--web-enable-lifecycle).\n")
        ok, message = self.lifecycle[path]()
        return _page("200 OK" if ok else "500 Internal Server Error", message + "\n")

    def route(self, environ: dict) -> tuple[str, list[tuple[str, str]], bytes]:
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if path in ("/-/reload", "/-/quit"):
            return self._lifecycle(path, method)
        pages = {
            "/": self._landing_page,
            self.telemetry_path: self.metrics,  # after "/": --web.telemetry-path=/ serves metrics there
            "/-/healthy": lambda _: _page("200 OK", "OK\n"),
            "/-/ready": self._ready_page,
        }
        handler = pages.get(path)
        if handler is None:
            return _page("404 Not Found", f"404 page not found: {path}\n")
        if method not in ("GET", "HEAD"):
            status, headers, body = _page("405 Method Not Allowed", f"{method} is not allowed on {path}\n")
            return status, [*headers, ("Allow", "GET, HEAD")], body
        return handler(environ)

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            status, headers, body = self.route(environ)
        except Exception:
            logger.exception("request failed")
            status, headers, body = _page("500 Internal Server Error", "internal error, see the bridge's log\n")
        start_response(status, [*headers, ("Content-Length", str(len(body)))])
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]


def _page(status: str, text: str, content_type: str = "text/plain") -> tuple[str, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", f"{content_type}; charset=utf-8")], text.encode("utf-8")


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        logger.debug("http request", extra={"fields": {"request": format % args}})


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow client never holds up shutdown
    allow_reuse_address = True

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6:
            # "[::]:port" and ":port" serve IPv4 too, as Go's listeners do
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()


def serve(app: App, host: str, port: int) -> tuple[_Server, threading.Thread]:
    """Start the HTTP server on its own thread; returns it bound (port 0 resolved)."""
    family, address = resolve_bind_address(host, port, socket.SOCK_STREAM)
    server_class = type("Server", (_Server,), {"address_family": family})
    server = server_class(address[:2], _QuietHandler)
    server.set_app(app)
    thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    thread.start()
    return server, thread
