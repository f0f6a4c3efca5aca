"""Start-up, signals and graceful shutdown of one bridge process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator

from bridge import __version__
from bridge.config import Config, reaper_settings
from bridge.exposition.self_metrics import Sources, reserved_names, self_registry
from bridge.ingest import Ingest
from bridge.logs import log
from bridge.mapping.loader import MappingConfig, MappingError, load_mapping, read_mapping_file
from bridge.mapping.router import Mapper, warmed
from bridge.net import bound_socket, format_address, parse_address
from bridge.receiving.batches import DatagramCounts
from bridge.receiving.datagrams import serve_datagrams, udp_drops, udp_socket, unixgram_socket
from bridge.receiving.relay import Relay, RelayStats, relayed
from bridge.receiving.tcp import TCPCounts, serve_tcp, tcp_socket
from bridge.series.store import Store
from bridge.stats import Stats, rejections
from bridge.supervise import Backoff, file_marks, loop_exception_handler, periodic
from bridge.web.app import App
from bridge.web.http import Limits
from bridge.web.http import Server as HTTPServer
from bridge.web.status import Rates, Status, Trends
from bridge.web.web_config import WebConfig, WebConfigError, fingerprint, peer_allowed, ssl_context
from bridge.web.web_config import load as load_web_config
from bridge.workers.pool import Pool, WorkerStartError

logger = logging.getLogger("bridge.server")

SWEEP_INTERVAL = 1.0  # seconds between TTL sweeps, as statsd_exporter, and between the workers' hand-overs
RELOAD_TIMEOUT = 90.0  # how long /-/reload waits for a reload: compiling, then every worker's (pool.RELOAD_TIMEOUT)


class StartupError(Exception):
    """Start-up cannot go on; the message is the one line the operator sees."""


@contextlib.contextmanager
def _listening(listener: str, flag: str, address: str) -> Iterator[None]:
    """Turn a failure to bind or start a listener into a StartupError naming the listener, address and flag."""
    try:
        yield
    except OSError as error:
        reason = error.strerror or str(error)
        raise StartupError(f"cannot listen: {listener} on {address} ({flag}): {reason}") from None
    except WebConfigError as error:
        raise StartupError(f"cannot serve the web endpoint on {address}: {error}") from None


def compile_mapping(config: Config) -> tuple[str | None, MappingConfig]:
    """The mapping file's text (None without one) and its rules; MappingError names the file, line and key."""
    if not config.mapping_config:
        return None, MappingConfig()
    text = read_mapping_file(config.mapping_config)
    return text, load_mapping(text, config.mapping_config)


class Bridge:
    """The running parts of one process, built from a Config."""

    def __init__(
        self, config: Config, mapping: MappingConfig, web: WebConfig | None = None, mapping_text: str | None = None
    ) -> None:
        self.config = config
        self.web = web or WebConfig()
        self.stats = Stats()
        self.store = Store()
        self.ingest = Ingest(Mapper(mapping), self.store, self.stats, dialects=config.dialects)
        self.udp_inodes: list[int] = []  # the UDP sockets' inodes, to read their kernel drop counts
        self.relays: list[Relay] = []
        self.http: HTTPServer | None = None
        self.udp, self.unixgram, self.tcp = DatagramCounts(), DatagramCounts(), TCPCounts()
        self.pool: Pool | None = None  # the receiving workers, with --statsd.workers above 1
        self.mapping_text = mapping_text  # what the workers compile: the file as read at start or reload
        self.exit_code = 0
        self.self_metrics = Sources(
            self.stats,
            self.store,
            self.udp,
            self.unixgram,
            self.tcp,
            lambda: self.pool.mapper_counts if self.pool is not None else self.ingest.mapper,
            self.kernel_drops,
            max_series=config.max_series,
            http=lambda: self.http.stats if self.http is not None else None,
        )
        self.registry = self_registry(self.self_metrics)
        self.store.reserve(reserved_names(self.registry))
        self.reaper = reaper_settings(config, mapping)
        self.store.reap_label = self.reaper.label
        self.store.max_series = config.max_series or math.inf
        self.store.max_series_per_metric = config.max_series_per_metric or math.inf
        self.stop_requested = asyncio.Event()
        self.stats.loaded_mappings = len(mapping.rules)
        self.ready = False
        self.tasks: list[asyncio.Task] = []
        # failures of the background tasks and of the event loop's own callbacks, by component
        self.failures = self.stats.internal_errors
        self.web_marks: tuple = ()  # the web config's files as last seen (size, mtime, inode)
        self.web_pending = False  # a change not yet loaded: the last try failed
        self.web_backoff = Backoff()
        self.mapping_marks: tuple = ()  # the mapping file as last seen, when --watch-mapping-config
        self.mapping_pending = False
        self.mapping_backoff = Backoff()
        self.reload_lock = asyncio.Lock()
        self.reloads: set[asyncio.Task] = set()  # reloads a signal started, held until done
        self.servers: list[asyncio.Server] = []
        self.closers: list[Callable[[], None]] = []  # stop the datagram listeners
        self.http_listener: asyncio.Server | None = None
        self.app: App | None = None
        # renders, bcrypt checks and reloads run here, off the event loop; a scrape needs one thread
        self.web_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="web")
        self.addresses: dict[str, str] = {}
        self.started = time.monotonic()
        self.mapping_loaded = time.time()
        self.rates = Rates()
        self.trends = Trends()
        self.reaper_last_sweep: float | None = None
        self.reaper_last_removed = 0

    def kernel_drops(self) -> int:
        """Datagrams the kernel dropped on the UDP sockets, their receive buffers full."""
        return udp_drops(self.udp_inodes) if self.udp_inodes else 0

    async def reload(self) -> bool:
        """Re-read the mapping file, compiled on a thread so that the loop goes on receiving and serving, then
        swapped in at once (in every worker, each compiling the same text); a bad one keeps the old rules."""
        async with self.reload_lock:
            loop = asyncio.get_running_loop()
            try:
                text, mapping = await loop.run_in_executor(None, compile_mapping, self.config)
                mapper = await loop.run_in_executor(None, warmed, mapping, self.ingest.mapper.routes_known())
                if self.pool is not None:
                    failed = await self.pool.reload(text, self.config.mapping_config)
                    if failed:
                        raise MappingError("; ".join(failed), self.config.mapping_config)
            except MappingError as error:
                self.stats.config_reloads["failure"] += 1
                log(logger, logging.ERROR, "mapping reload failed, keeping the old rules", error=str(error))
                return False
            self.mapping_text = text
            self.ingest.set_mapper(mapper)
        self.stats.loaded_mappings = len(mapping.rules)
        self.mapping_loaded = time.time()
        self.stats.config_reloads["success"] += 1
        log(logger, logging.INFO, "mapping reloaded", file=self.config.mapping_config, rules=len(mapping.rules))
        return True

    async def start(self) -> None:
        config = self.config
        loop = self.loop = asyncio.get_running_loop()
        try:
            self.relays = [Relay(target, config.statsd_relay_packet_length) for target in config.statsd_relay_address]
        except OSError as error:
            raise StartupError(f"cannot relay: {error}") from None
        self.self_metrics.relays = [relay.stats for relay in self.relays]
        self.receive = relayed(self.relays, self.ingest.packets)
        try:
            if config.statsd_workers > 1:
                await self._start_workers()
            else:
                await self._start_listeners()
            with _listening("web", "--web.listen-address", config.web_listen_address):
                await self._start_web()
        except StartupError:
            await self.stop()
            raise
        loop.set_exception_handler(loop_exception_handler(self.failures))
        self.tasks.append(loop.create_task(periodic("sweep", SWEEP_INTERVAL, self._sweep, self.failures)))
        if config.web_config_file:
            self.web_marks = fingerprint(self.web)
            self.tasks.append(loop.create_task(periodic("web_config", 1.0, self._reload_web_config, self.failures)))
        if config.watch_mapping_config and config.mapping_config:
            self.mapping_marks = file_marks([config.mapping_config])
            self.tasks.append(loop.create_task(periodic("mapping_watch", 1.0, self._watch_mapping, self.failures)))
        if self.reaper.label:
            self.tasks.append(loop.create_task(periodic("reaper", self.reaper.interval, self._reap, self.failures)))
            log(
                logger,
                logging.INFO,
                "reaper on",
                label=self.reaper.label,
                after=f"{self.reaper.after:g}s",
                interval=f"{self.reaper.interval:g}s",
            )
        self.ready = True
        for name, address in self.addresses.items():
            log(logger, logging.INFO, "listening", listener=name, address=address)

    def _bind(self) -> dict[str, socket.socket]:
        """Every listener's socket, bound (and TCP's listening), by kind; a failure names the flag."""
        config = self.config
        sockets: dict[str, socket.socket] = {}
        if config.statsd_listen_udp:
            with _listening("udp", "--statsd.listen-udp", config.statsd_listen_udp):
                host, port = parse_address(config.statsd_listen_udp)
                sockets["udp"] = udp_socket(host, port, config.statsd_read_buffer, config.statsd_reuse_port)
            self.addresses["udp"] = format_address(sockets["udp"].getsockname())
            self.udp_inodes.append(os.fstat(sockets["udp"].fileno()).st_ino)
        if config.statsd_listen_tcp:
            with _listening("tcp", "--statsd.listen-tcp", config.statsd_listen_tcp):
                host, port = parse_address(config.statsd_listen_tcp)
                sockets["tcp"] = tcp_socket(host, port, config.statsd_reuse_port)
            self.addresses["tcp"] = format_address(sockets["tcp"].getsockname())
        if config.statsd_listen_unixgram:
            with _listening("unixgram", "--statsd.listen-unixgram", config.statsd_listen_unixgram):
                sockets["unixgram"] = unixgram_socket(
                    config.statsd_listen_unixgram, config.statsd_unixsocket_mode, config.statsd_read_buffer
                )
            self.addresses["unixgram"] = config.statsd_listen_unixgram
        return sockets

    async def _start_listeners(self) -> None:
        """Every listener read on this process's event loop: one process does it all."""
        counts = {"udp": self.udp, "unixgram": self.unixgram}
        for kind, sock in self._bind().items():
            if kind == "tcp":
                with _listening("tcp", "--statsd.listen-tcp", self.config.statsd_listen_tcp):
                    self.servers.append(await serve_tcp(sock, self.receive, self.tcp))
            else:
                self.closers.append(serve_datagrams(sock, self.receive, counts[kind]).stop)

    async def _start_workers(self) -> None:
        """Bind every listener here, then start the workers that read them; the sockets stay open here."""
        config = self.config
        if not readiness_callbacks(asyncio.get_running_loop()):
            raise StartupError(
                "--statsd.workers needs an event loop with readiness callbacks (uvloop, or asyncio's selector "
                "loop), and this one has none: run one process (--statsd.workers=1)"
            )
        sockets = self._bind()
        for relay in self.relays:  # each worker relays what it reads; these count it all
            relay.close()
        self.relays = []
        self.self_metrics.relays = [RelayStats(target) for target in config.statsd_relay_address]
        self.closers.extend(sock.close for sock in sockets.values())  # once the workers have stopped
        if self.mapping_text is None and config.mapping_config:
            try:
                self.mapping_text = read_mapping_file(config.mapping_config)
            except MappingError as error:
                raise StartupError(str(error)) from None
        start = {
            "mapping": self.mapping_text,
            "mapping_path": config.mapping_config,
            "reserved": sorted(reserved_names(self.registry)),
            "dialects": config.dialects,
            "relays": list(config.statsd_relay_address),
            "relay_packet_length": config.statsd_relay_packet_length,
            "log": (config.log_level, config.log_format),
        }
        counts = {"udp": self.udp, "unixgram": self.unixgram, "tcp": self.tcp}
        self.pool = Pool(
            config.statsd_workers, sockets, start, self.store, self.stats, counts, self.self_metrics.relays, self._fatal
        )
        try:
            await self.pool.start()
        except (WorkerStartError, OSError) as error:
            raise StartupError(f"cannot start the receiving workers (--statsd.workers): {error}") from None
        log(logger, logging.INFO, "receiving workers", workers=config.statsd_workers)

    def _fatal(self, reason: str) -> None:
        """The bridge can't go on (its workers keep dying): stop, and exit non-zero saying why."""
        log(logger, logging.ERROR, reason)
        self.exit_code = 1
        self.stop_requested.set()

    async def _collect(self) -> float:
        """Every line read before the returned time is in the store: the workers' hand-over first, if any."""
        if self.pool is None:
            return time.monotonic()
        await self.pool.collect()
        return self.pool.collected_until

    async def _start_web(self) -> None:
        config = self.config
        lifecycle = {"/-/reload": self._reload_from_http, "/-/quit": self._quit_from_http}
        self.app = App(
            self.store,
            self.registry,
            time.monotonic,
            self.web_pool,
            config.web_telemetry_path,
            lambda: self.ready,
            lifecycle if config.web_enable_lifecycle else None,
            config.web_enable_openmetrics,
            self.status,
            self.web,
            prepare=self._collect if self.pool is not None else None,
        )
        limits = Limits(header_timeout=config.web_read_header_timeout)
        self.http = HTTPServer(self.app, limits, lambda certificate: peer_allowed(self.web.tls, certificate))
        host, port = parse_address(config.web_listen_address)
        sock = bound_socket(host, port, socket.SOCK_STREAM)
        sock.listen(4096)
        self.http_listener = await self.http.listen(sock, self._ssl_context(self.web))
        self.addresses["web"] = format_address(sock.getsockname())
        log(
            logger,
            logging.INFO,
            "web endpoint",
            tls=self.web.tls is not None,
            basic_auth=bool(self.web.users),
            config=config.web_config_file or "none",
        )

    @staticmethod
    def _ssl_context(web: WebConfig) -> ssl.SSLContext | None:
        return ssl_context(web.tls) if web.tls is not None else None

    async def _reload_web_config(self) -> None:
        """Re-read the web config file when it or a certificate it names changed, as exporter-toolkit does on
        each connection: new certificates and TLS settings apply to connections from then on. A reload that
        fails is tried again, after 1 s and then twice as long each time (at most a minute), until it passes
        or the files change again: a transient fault (descriptors used up while a renewed certificate
        lands) must not leave the old certificate in service until it expires."""
        now = time.monotonic()
        marks = fingerprint(self.web)
        if marks != self.web_marks:
            self.web_marks, self.web_pending = marks, True
            self.web_backoff.succeeded()  # new files: try them now
        if not self.web_pending or not self.web_backoff.due(now):
            return
        try:
            web = await self.loop.run_in_executor(self.web_pool, load_web_config, self.config.web_config_file)
            if (web.tls is None) != (self.web.tls is None):
                raise WebConfigError("turning TLS on or off takes a restart")
            context = self._ssl_context(web)
            if context is not None and self.http_listener is not None:
                # the same listening socket, served with the new context; open connections keep theirs
                old = self.http_listener
                sock = old.sockets[0]
                duplicate = socket.socket(sock.family, sock.type, fileno=os.dup(sock.fileno()))
                assert self.http is not None  # it listens, as http_listener says
                self.http_listener = await self.http.listen(duplicate, context)
                old.close()
        except (WebConfigError, OSError) as error:
            self.stats.web_config_reloads["failure"] += 1
            retry = self.web_backoff.failed(now)
            log(
                logger,
                logging.ERROR,
                "web config reload failed, keeping the old settings",
                retry_in=f"{retry:g}s",
                file=self.config.web_config_file,
                error=str(error),
            )
            return
        self.web = web
        assert self.app is not None  # the task starts after the web endpoint
        self.app.use(web)
        self.web_marks, self.web_pending = fingerprint(web), False
        self.web_backoff.succeeded()
        self.stats.web_config_reloads["success"] += 1
        log(logger, logging.INFO, "web config reloaded", file=self.config.web_config_file)

    async def _watch_mapping(self) -> None:
        """Reload the mapping file when it changed on disk; one that fails to load is tried again, after 1 s
        and then twice as long each time (at most a minute), until it loads or changes again."""
        now = time.monotonic()
        marks = file_marks([self.config.mapping_config])
        if marks != self.mapping_marks:
            self.mapping_marks, self.mapping_pending = marks, True
            self.mapping_backoff.succeeded()  # a new file: try it now
        if not self.mapping_pending or not self.mapping_backoff.due(now):
            return
        if await self.reload():
            self.mapping_pending = False
            self.mapping_backoff.succeeded()
        else:
            self.mapping_backoff.failed(now)

    def _reload_from_http(self) -> tuple[bool, str]:
        """Runs on a web worker thread: the reload itself runs on the event loop, which owns the mapper."""
        ok = asyncio.run_coroutine_threadsafe(self.reload(), self.loop).result(timeout=RELOAD_TIMEOUT)
        return ok, "mapping reloaded" if ok else "reload failed, the old rules stay: see the log"

    def _quit_from_http(self) -> tuple[bool, str]:
        self.loop.call_soon_threadsafe(self.stop_requested.set)
        return True, "shutting down"

    def reload_soon(self) -> None:
        """SIGHUP: a reload, on its own task so that the signal handler returns at once."""
        task = self.loop.create_task(self.reload())
        self.reloads.add(task)
        task.add_done_callback(self.reloads.discard)

    async def _sweep(self) -> None:
        """Every second: the workers' hand-over, the rates and trends of the status page, and the series past
        their ttl (as of the hand-over: a series a worker still holds an update of is not past it)."""
        collected = await self._collect()
        now = time.monotonic()
        errors = sum(rejections(self.stats).values())
        self.rates.record(now, self.stats.lines, errors)
        self.trends.record(now, self.stats.lines, errors, self.kernel_drops(), self.store.series_count)
        removed = self.store.sweep(collected)
        if removed:
            log(logger, logging.DEBUG, "expired series removed", count=removed)

    def _reap(self) -> None:
        removed = self.store.reap(self.pool.collected_until if self.pool else time.monotonic(), self.reaper.after)
        self.reaper_last_sweep, self.reaper_last_removed = time.time(), removed
        if removed:
            log(logger, logging.INFO, "reaped the series of silent sources", series=removed, label=self.reaper.label)

    def status(self) -> Status:
        """What the page at / shows. Runs on a web worker thread: it only reads, copying what it walks."""
        stats, store = self.stats, self.store
        rejected = rejections(stats)
        rejected["tcp_line_too_long"] += self.tcp.too_long_lines
        families = sorted(((len(f.series), f.name, f.type) for f in list(store.families.values())), reverse=True)
        lines_per_second, errors_per_second = self.rates.per_second()
        return Status(
            version=__version__,
            uptime=time.monotonic() - self.started,
            listeners=dict(self.addresses),
            telemetry_path=self.config.web_telemetry_path,
            lines_per_second=lines_per_second,
            errors_per_second=errors_per_second,
            lines_total=stats.lines,
            rejections={reason: count for reason, count in rejected.items() if count},
            series_total=store.series_count,
            max_series=self.config.max_series,
            largest=[(name, kind, count) for count, name, kind in families[:20]],
            mapping_file=self.config.mapping_config,
            mapping_rules=stats.loaded_mappings,
            mapping_loaded=self.mapping_loaded,
            reaper_label=self.reaper.label,
            reaper_after=self.reaper.after,
            reaper_interval=self.reaper.interval,
            reaper_sources=store.sources,
            reaper_last_sweep=self.reaper_last_sweep,
            reaper_last_removed=self.reaper_last_removed,
            relays=[(r.target, r.lines, sum(dict(r.dropped).values())) for r in self.self_metrics.relays],
            trends=self.trends.series(),
        )

    async def stop(self) -> None:
        self.ready = False
        if self.pool is not None:
            await self.pool.stop()  # the workers read their sockets dry and hand over all they hold
        for close in self.closers:
            close()
        for server in self.servers:
            server.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        for relay in self.relays:
            relay.close()  # after the listeners drained: what they read goes out too
        if self.http is not None:
            await self.http.close()
        self.web_pool.shutdown(wait=False, cancel_futures=True)
        if self.config.statsd_listen_unixgram:
            with contextlib.suppress(OSError):
                os.unlink(self.config.statsd_listen_unixgram)


def readiness_callbacks(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether the loop calls back when a socket is readable (Windows' Proactor loop does not): a worker
    reads its sockets dry when asked for its hand-over, which needs them."""
    probe, other = socket.socketpair()
    try:
        loop.add_reader(probe.fileno(), lambda: None)
        loop.remove_reader(probe.fileno())
        return True
    except NotImplementedError:
        return False
    finally:
        probe.close()
        other.close()


def raise_open_files_limit() -> None:
    """As Go does at start-up: the soft limit on open files up to the hard one, for many connections."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def run(
    config: Config, mapping: MappingConfig, web: WebConfig | None = None, mapping_text: str | None = None
) -> int:
    """Run until SIGTERM or SIGINT; SIGHUP reloads the mapping file. Returns the exit code."""
    # A scrape renders on a web worker thread; a short switch interval lets the receive loop take the GIL
    # back every millisecond rather than every five while it does.
    sys.setswitchinterval(0.001)
    raise_open_files_limit()
    bridge = Bridge(config, mapping, web, mapping_text)
    stop = bridge.stop_requested
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, bridge.reload_soon)
    try:
        await bridge.start()
    except StartupError as error:
        log(logger, logging.ERROR, str(error))
        return 1
    log(
        logger,
        logging.INFO,
        "statsd-bridge started",
        version=__version__,
        pid=os.getpid(),
        host=socket.gethostname(),
        mapping=config.mapping_config or "none",
    )
    await stop.wait()
    log(logger, logging.INFO, "shutting down")
    await bridge.stop()
    return bridge.exit_code


def main(config: Config, mapping: MappingConfig, web: WebConfig | None = None, mapping_text: str | None = None) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(config, mapping, web, mapping_text))
    return uvloop.run(run(config, mapping, web, mapping_text))
