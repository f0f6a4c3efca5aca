"""The web endpoint as the daemon runs it: the HTTP server on its listening socket, the web config and
TLS context it serves with, and their reload when the files change (new certificates apply to the
connections accepted from then on, as exporter-toolkit applies them)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import Counter
from concurrent.futures import Executor

from bridge.logs import log
from bridge.net import bound_socket, format_address, parse_address
from bridge.supervise import count_bug
from bridge.web.app import App
from bridge.web.http import Limits, Server
from bridge.web.tls import Loaded, load, peer_allowed
from bridge.web.web_config import WebConfigError

logger = logging.getLogger("bridge.web")

# Descriptors left for all but web connections (listeners, StatsD TCP clients, the workers' channels,
# files read by a reload) when the open-files limit is too low for Limits.max_connections; half the
# limit when it is lower still.
OTHER_FILES = 100


def raise_open_files_limit() -> None:
    """As Go does at start-up: the soft limit on open files up to the hard one, for many connections
    (`connection_limit` then tells what is left for the web endpoint). A failure is logged: the limit
    stays as it was."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as error:
        log(logger, logging.WARNING, "the open-files limit could not be raised", soft=soft, hard=hard, error=str(error))


def connection_limit(wanted: int = Limits.max_connections) -> int:
    """The web connections this process can hold: `wanted`, or fewer when the open-files limit (as raised
    at start-up by `raise_open_files_limit`) is too low for that many, which is logged with the numbers."""
    try:
        import resource
    except ImportError:  # Windows: no such limit
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted + OTHER_FILES:
        return wanted
    allowed = soft - min(OTHER_FILES, soft // 2)
    log(
        logger,
        logging.WARNING,
        "the open-files limit allows fewer web connections: raise it (LimitNOFILE, ulimit -n) for more",
        open_files_soft=soft,
        open_files_hard=hard,
        connections=allowed,
        documented=wanted,
    )
    return allowed


class WebFront:
    """The HTTP server and the web config it serves with; `reload` reads the config file again."""

    def __init__(
        self, app: App, web: Loaded, limits: Limits, pool: Executor, reloads: Counter[str], failures: Counter[str]
    ) -> None:
        self.app = app
        self.web = web
        self.pool = pool  # the file and its certificates are read there, off the event loop
        self.reloads = reloads  # by outcome: statsd_bridge_web_config_reloads_total
        self.failures = failures  # a reload that raised (a bug), as component "web_config"
        self.http = Server(app, limits, lambda certificate: peer_allowed(self.web.config.tls, certificate), failures)

    async def listen(self, address: str) -> str:
        """Bind `address` and serve on it; returns the address bound. Raises OSError."""
        host, port = parse_address(address)
        sock = bound_socket(host, port, socket.SOCK_STREAM)
        try:
            await self.http.listen(sock, self.web.context)
        except BaseException:
            sock.close()
            raise
        config = self.web.config
        log(
            logger,
            logging.INFO,
            "web endpoint",
            tls=config.tls is not None,
            basic_auth=bool(config.users),
            config=config.path or "none",
        )
        return format_address(sock.getsockname())

    def watched_files(self) -> list[str]:
        return self.web.config.watched_files()

    async def reload(self) -> bool:
        """Read the web config file again: users, headers and rate limit apply from the next request, a new
        TLS context from the next connection. One that fails keeps the old settings; False then. Never
        raises: a bug is counted (component "web_config") and logged with its traceback, a failure too."""
        path = self.web.config.path
        try:
            web = await asyncio.get_running_loop().run_in_executor(self.pool, load, path)
            if (web.context is None) != (self.web.context is None):
                raise WebConfigError("turning TLS on or off takes a restart")
            if web.context is not None:
                await self.http.serve_with(web.context)
        except (WebConfigError, OSError) as error:
            self.reloads["failure"] += 1
            log(
                logger, logging.ERROR, "web config reload failed, keeping the old settings", file=path, error=str(error)
            )
            return False
        except Exception:
            self.reloads["failure"] += 1
            count_bug(
                self.failures,
                "web_config",
                "web config reload failed (a bug), keeping the old settings",
                logger,
                file=path,
            )
            return False
        self.web = web
        self.app.use(web.config)
        self.reloads["success"] += 1
        log(logger, logging.INFO, "web config reloaded", file=path)
        return True

    async def close(self) -> None:
        await self.http.close()
