"""The server of one bridge process, after uvicorn's Server: it owns start-up (the listeners or the
receiving workers, the web endpoint, the background tasks), the signals, the mapping's reload and the
graceful shutdown. Its parts: the listeners (bridge/listeners.py), the web endpoint
(bridge/web/front.py), the housekeeping (bridge/housekeeping.py) and the file watches
(bridge/supervise.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterable

from bridge import __version__
from bridge.config import FLAGS, Config, reaper_settings
from bridge.exposition.self_metrics import Sources, reserved_names, self_registry
from bridge.housekeeping import Housekeeping
from bridge.ingest import Ingest
from bridge.listeners import Listeners, StartupError, listening
from bridge.logs import log
from bridge.mapping.loader import load_mapping
from bridge.mapping.router import Mapper, warmed
from bridge.mapping.schema import MappingConfig, MappingError
from bridge.mapping.yaml_reading import read_mapping_file
from bridge.net import listen_overflows
from bridge.receiving.relay import Relay, RelayStats, relayed
from bridge.series.store import Store
from bridge.stats import Stats, rejections
from bridge.supervise import FileWatch, count_bug, loop_exception_handler, periodic
from bridge.web.app import App
from bridge.web.front import WebFront, connection_limit, raise_open_files_limit
from bridge.web.http import Limits
from bridge.web.status import Status
from bridge.web.tls import Loaded
from bridge.web.web_config import WebConfig
from bridge.workers.pool import Pool, WorkerStartError

logger = logging.getLogger("bridge.server")
WORKERS_FLAG = FLAGS["statsd_workers"].dotted


def compile_mapping(config: Config) -> tuple[str | None, MappingConfig]:
    """The mapping file's text (None without one) and its rules; MappingError names the file, line and key."""
    if not config.mapping_config:
        return None, MappingConfig(utf8_names=config.statsd_utf8_names)
    text = read_mapping_file(config.mapping_config)
    return text, load_mapping(text, config.mapping_config, config.statsd_utf8_names)


class Bridge:
    """The running parts of one process, built from a Config."""

    def __init__(
        self, config: Config, mapping: MappingConfig, web: Loaded | None = None, mapping_text: str | None = None
    ) -> None:
        self.config = config
        self.web = web or Loaded(WebConfig())
        self.stats = Stats()
        self.store = Store()
        self.ingest = Ingest(Mapper(mapping), self.store, self.stats, dialects=config.dialects)
        self.listeners = Listeners(config)
        self.addresses: dict[str, str] = {}  # by listener as bound, the web endpoint's included
        self.relays: list[Relay] = []
        self.front: WebFront | None = None
        self.pool: Pool | None = None  # the receiving workers, with --statsd.workers above 1
        self.mapping_text = mapping_text  # what the workers compile: the file as read at start or reload
        self.exit_code = 0
        listeners = self.listeners
        self.self_metrics = Sources(
            self.stats,
            self.store,
            listeners.udp,
            listeners.unixgram,
            listeners.tcp,
            lambda: self.pool.mapper_counts if self.pool is not None else self.ingest.mapper,
            listeners.kernel_drops,
            max_series=config.max_series,
            http=lambda: self.front.http.stats if self.front is not None else None,
            listen_overflows=listen_overflows,
        )
        self.registry = self_registry(self.self_metrics)
        self.store.reserve(reserved_names(self.registry))
        self.reaper = reaper_settings(config, mapping)
        self.store.reap_label = self.reaper.label
        self.store.max_series = config.max_series or math.inf
        self.store.max_series_per_metric = config.max_series_per_metric or math.inf
        self.housekeeping = Housekeeping(self.store, self.stats, self.reaper, listeners.kernel_drops)
        self.stop_requested = asyncio.Event()
        self.stats.loaded_mappings = len(mapping.rules)
        self.ready = False
        self.tasks: list[asyncio.Task] = []
        # failures of the background tasks, the reloads, the HTTP handler and the event loop, by component
        self.failures = self.stats.internal_errors
        self.reload_lock = asyncio.Lock()
        self.reloads: set[asyncio.Task] = set()  # reloads a signal started, held until done
        # renders and bcrypt checks run here, off the event loop; a scrape needs one thread
        self.web_pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="web")
        self.started = time.monotonic()
        self.mapping_loaded = time.time()

    async def serve(self) -> int:
        """Run until SIGTERM or SIGINT; SIGHUP reloads the mapping file. Returns the exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop_requested.set)
        loop.add_signal_handler(signal.SIGHUP, self.reload_soon)
        try:
            await self.start()
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
            mapping=self.config.mapping_config or "none",
        )
        await self.stop_requested.wait()
        log(logger, logging.INFO, "shutting down")
        await self.stop()
        return self.exit_code

    async def start(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        # before anything starts, so that a failure in a callback of the start-up is counted too
        loop.set_exception_handler(loop_exception_handler(self.failures))
        try:
            self.relays = [Relay(target, config.statsd_relay_packet_length) for target in config.statsd_relay_address]
        except OSError as error:
            raise StartupError(f"cannot relay: {error}") from None
        self.self_metrics.relays = [relay.stats for relay in self.relays]
        try:
            if config.statsd_workers > 1:
                await self._start_workers()
            else:
                await self.listeners.serve(relayed(self.relays, self.ingest.packets), self._fatal)
            self.addresses.update(self.listeners.addresses)
            with listening("web", "web_listen_address", config.web_listen_address):
                self.addresses["web"] = await self._start_web()
        except StartupError:
            await self.stop()
            raise
        self.tasks.extend(self.housekeeping.start(self.failures))
        if config.web_config_file:
            assert self.front is not None  # started above
            self._watch("web_config", self.front.watched_files, self.front.reload)
        if config.watch_mapping_config and config.mapping_config:
            self._watch("mapping_watch", lambda: [config.mapping_config], self._reload_mapping_file)
        self.ready = True
        for name, address in self.addresses.items():
            log(logger, logging.INFO, "listening", listener=name, address=address)

    def _watch(self, name: str, files: Callable[[], Iterable[str]], reload: Callable[[], Awaitable[bool]]) -> None:
        """Reload when the files change on disk, checked every second (a failure counted under `name`)."""
        watch = FileWatch(name, files, reload)
        self.tasks.append(asyncio.get_running_loop().create_task(periodic(name, 1.0, watch.step, self.failures)))

    async def _start_workers(self) -> None:
        """Bind every listener here, then start the workers that read them; the sockets stay open here."""
        config = self.config
        if not readiness_callbacks(asyncio.get_running_loop()):
            raise StartupError(
                f"{WORKERS_FLAG} needs an event loop with readiness callbacks (uvloop, or asyncio's selector "
                f"loop), and this one has none: run one process ({WORKERS_FLAG}=1)"
            )
        sockets = self.listeners.bind_for_workers()
        for relay in self.relays:  # each worker relays what it reads; these count it all
            relay.close()
        self.relays = []
        self.self_metrics.relays = [RelayStats(target) for target in config.statsd_relay_address]
        start = {
            "mapping": self.mapping_text,
            "mapping_path": config.mapping_config,
            "utf8_names": config.statsd_utf8_names,
            "reserved": sorted(reserved_names(self.registry)),
            "dialects": config.dialects,
            "relays": list(config.statsd_relay_address),
            "relay_packet_length": config.statsd_relay_packet_length,
            "log": (config.log_level, config.log_format),
        }
        self.pool = self.housekeeping.pool = Pool(
            config.statsd_workers,
            sockets,
            start,
            self.store,
            self.stats,
            self.listeners.counts,
            self.self_metrics.relays,
            self._fatal,
        )
        try:
            await self.pool.start()
        except (WorkerStartError, OSError) as error:
            raise StartupError(f"cannot start the receiving workers ({WORKERS_FLAG}): {error}") from None
        log(logger, logging.INFO, "receiving workers", workers=config.statsd_workers)

    def _fatal(self, reason: str) -> None:
        """The bridge can't go on (its workers keep dying, a listener's socket closed under it): stop, and
        exit non-zero saying why."""
        log(logger, logging.ERROR, reason)
        self.ready = False
        self.exit_code = 1
        self.stop_requested.set()

    async def _start_web(self) -> str:
        """The web endpoint, listening; its address. Raises OSError."""
        config = self.config
        lifecycle: dict[str, Callable[[], Awaitable[tuple[bool, str]]]] = {
            "/-/reload": self.reload,
            "/-/quit": self._quit,
        }
        app = App(
            self.store,
            self.registry,
            time.monotonic,
            self.web_pool,
            config.web_telemetry_path,
            lambda: self.ready,
            lifecycle if config.web_enable_lifecycle else None,
            config.web_enable_openmetrics,
            self.status,
            self.web.config,
            prepare=self.housekeeping.collect if self.pool is not None else None,
            clear=self.housekeeping.clear,
            clear_requests=self.stats.clear_requests,
        )
        limits = Limits(
            header_timeout=config.web_read_header_timeout,
            max_connections=connection_limit(Limits.max_connections),
        )
        self.front = WebFront(app, self.web, limits, self.web_pool, self.stats.web_config_reloads, self.failures)
        return await self.front.listen(config.web_listen_address)

    async def reload(self) -> tuple[bool, str]:
        """Re-read the mapping file; a bad one keeps the old rules. Returns whether it was swapped in and what
        to tell the asker; never raises: a bug is counted (component "reload") and logged with its traceback."""
        async with self.reload_lock:
            try:
                rules = await self._swap_mapping()
            except MappingError as error:
                log(logger, logging.ERROR, "mapping reload failed, keeping the old rules", error=str(error))
                reason = str(error)
            except Exception as error:
                count_bug(self.failures, "reload", "mapping reload failed (a bug), keeping the old rules", logger)
                reason = f"{type(error).__name__}: {error}"
            else:
                self.stats.loaded_mappings = rules
                self.mapping_loaded = time.time()
                self.stats.config_reloads["success"] += 1
                log(logger, logging.INFO, "mapping reloaded", file=self.config.mapping_config, rules=rules)
                return True, "mapping reloaded"
        self.stats.config_reloads["failure"] += 1
        return False, f"reload failed, the old rules stay: {reason}"

    async def _swap_mapping(self) -> int:
        """Compile the mapping file on a thread, so that the loop goes on receiving and serving, then swap it
        in at once (in every worker, each compiling the same text); the number of rules."""
        loop = asyncio.get_running_loop()
        text, mapping = await loop.run_in_executor(None, compile_mapping, self.config)
        mapper = await loop.run_in_executor(None, warmed, mapping, self.ingest.mapper.routes_known())
        if self.pool is not None:
            failed = await self.pool.reload(text, self.config.mapping_config)
            if failed:
                raise MappingError("; ".join(failed), self.config.mapping_config)
        self.mapping_text = text
        self.ingest.set_mapper(mapper)
        return len(mapping.rules)

    async def _reload_mapping_file(self) -> bool:
        done, _ = await self.reload()
        return done

    async def _quit(self) -> tuple[bool, str]:
        self.stop_requested.set()
        return True, "shutting down"

    def reload_soon(self) -> None:
        """SIGHUP: a reload, on its own task so that the signal handler returns at once."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self.reloads.add(task)
        task.add_done_callback(self.reloads.discard)

    def status(self) -> Status:
        """What the page at / shows. Runs on a web worker thread: it only reads, copying what it walks."""
        stats, store = self.stats, self.store
        rejected = rejections(stats)
        rejected["tcp_line_too_long"] += self.listeners.tcp.too_long_lines
        families = sorted(((len(f.series), f.name, f.type) for f in list(store.families.values())), reverse=True)
        housekeeping = self.housekeeping
        lines_per_second, errors_per_second = housekeeping.rates.per_second()
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
            reaper_last_sweep=housekeeping.reaper_last_sweep,
            reaper_last_removed=housekeeping.reaper_last_removed,
            relays=[(r.target, r.lines, sum(dict(r.dropped).values())) for r in self.self_metrics.relays],
            trends=housekeeping.trends.series(),
        )

    async def stop(self) -> None:
        self.ready = False
        if self.pool is not None:
            await self.pool.stop()  # the workers read their sockets dry and hand over all they hold
        await self.listeners.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for relay in self.relays:
            relay.close()  # after the listeners drained: what they read goes out too
        if self.front is not None:
            await self.front.close()
        self.web_pool.shutdown(wait=False, cancel_futures=True)


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


async def run(
    config: Config, mapping: MappingConfig, web: Loaded | None = None, mapping_text: str | None = None
) -> int:
    """Run until SIGTERM or SIGINT; SIGHUP reloads the mapping file. Returns the exit code."""
    # A scrape renders on a web worker thread; a short switch interval lets the receive loop take the GIL
    # back every millisecond rather than every five while it does.
    sys.setswitchinterval(0.001)
    raise_open_files_limit()
    return await Bridge(config, mapping, web, mapping_text).serve()


def main(config: Config, mapping: MappingConfig, web: Loaded | None = None, mapping_text: str | None = None) -> int:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(config, mapping, web, mapping_text))
    return uvloop.run(run(config, mapping, web, mapping_text))
