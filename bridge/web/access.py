"""Who may ask and how often, checked on each request: the basic auth users and the rate limit of
--web.config.file, enforced as exporter-toolkit enforces them."""

from __future__ import annotations

import base64
import binascii
import threading
import time
from collections.abc import Callable

import bcrypt

# exporter-toolkit compares against this hash when the user is unknown, so a wrong name costs the same
# time as a wrong password; it is bcrypt("fakepassword").
UNKNOWN_USER_HASH = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"


class Authenticator:
    """basic_auth_users, checked as exporter-toolkit checks them: bcrypt one at a time, answers cached."""

    CACHE_SIZE = 100

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self._lock = threading.Lock()  # bcrypt is built to be slow: one at a time, as exporter-toolkit
        self._cache: dict[tuple[str, bytes, bytes], bool] = {}

    def allowed(self, authorization: str | None) -> bool:
        """Whether an Authorization header names a user and their password. Slow (bcrypt): call it on a
        worker thread."""
        if not self.users:
            return True
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        known = user in self.users
        hashed = self.users.get(user, UNKNOWN_USER_HASH)
        key = (user, hashed, password)
        cached = self._cache.get(key)
        if cached is None:
            with self._lock:
                try:
                    cached = bcrypt.checkpw(password, hashed) and known
                except ValueError:
                    cached = False
            if len(self._cache) >= self.CACHE_SIZE:
                self._cache.clear()
            self._cache[key] = cached
        return cached


def _basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user.decode("utf-8", "replace"), password


class RateLimiter:
    """A token bucket, as golang.org/x/time/rate: one token per `interval`, at most `burst` saved."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.burst, self.clock = interval, burst, clock
        self.tokens = float(burst)
        self.last = clock()

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(float(self.burst), self.tokens + (now - self.last) / self.interval)
        self.last = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
