"""What an app instance does when the cache fails: time out, retry with backoff,
fall back to the origin, and stop calling a dead cache for a while (a circuit breaker).

`ResilientCache` wraps the Cache every part of a strategy uses, so the parts
stay written for the happy path, as most production code is: with
`fallback`, a failed `get` is a miss (the read goes to the origin) and a
failed `set`/`delete` is skipped, which is exactly how a cache outage turns
into origin load, and a skipped invalidation into stale reads later. Counted:
`cache_errors`, `degraded` (operations answered by the fallback),
`breaker_opened`; the timeseries gets them per interval.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from pydantic import Field

from lab.core import Cache, Key, Metrics, Runtime, Versioned
from lab.core.errors import CacheRefused, CacheUnavailable
from lab.core.settings import Settings
from lab.core.units import Duration, PositiveDuration
from lab.patterns.registry import cache_wrapper

T = TypeVar("T")


class Breaker(Settings):
    """Circuit breaker: after `failures` cache errors in a row, skip the cache for `reset`."""

    failures: Annotated[int, Field(ge=1)] = 5
    reset: PositiveDuration = 1.0


class ClientSpec(Settings):
    """How an app instance treats a failing cache."""

    timeout: PositiveDuration = 0.1
    fallback: bool = True
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    backoff: Duration = 0.01
    breaker: Breaker | None = None


@cache_wrapper("client", settings=ClientSpec)
class ResilientCache:
    """A Cache that applies the strategy's client behaviour to cache failures. It wraps
    every method of the Cache protocol explicitly: nothing else is forwarded."""

    summary = "time out, retry with backoff, fall back to the origin, open a circuit breaker"

    def __init__(self, cache: Cache, rt: Runtime, client: ClientSpec, metrics: Metrics) -> None:
        self._cache = cache
        self._rt = rt
        self._client = client
        self._metrics = metrics
        self._failures = 0  # consecutive
        self._open_until = -1.0

    async def _call(self, attempt: Callable[[], Awaitable[T]], fallback: T) -> T:
        client, rt, metrics = self._client, self._rt, self._metrics
        if self._open_until > rt.now():  # the breaker is open: do not even try
            if client.fallback:
                metrics.count("degraded")
                return fallback
            raise CacheUnavailable("circuit breaker open")
        tries = 0
        while True:
            try:
                result = await attempt()
            except CacheUnavailable:
                tries += 1
                self._failures += 1
                metrics.count("cache_errors")
                breaker = client.breaker
                if breaker is not None and self._failures >= breaker.failures:
                    self._open_until = rt.now() + breaker.reset
                    self._failures = 0
                    metrics.count("breaker_opened")
                elif tries <= client.retries:
                    await rt.sleep(client.backoff * 2 ** (tries - 1))
                    continue
                if client.fallback:
                    metrics.count("degraded")
                    return fallback
                raise
            self._failures = 0
            return result

    def get(self, key: Key) -> Awaitable[Versioned | None]:
        return self._call(lambda: self._cache.get(key), None)

    def set(
        self, key: Key, value: Versioned, ttl: float | None = None, nx: bool = False
    ) -> Awaitable[bool]:
        return self._call(lambda: self._cache.set(key, value, ttl, nx), False)

    def delete(self, key: Key) -> Awaitable[None]:
        return self._call(lambda: self._cache.delete(key), None)

    def set_if_equal(
        self, key: Key, value: Versioned, ttl: float | None, check: Key, expected: Versioned
    ) -> Awaitable[bool]:
        return self._call(lambda: self._cache.set_if_equal(key, value, ttl, check, expected), False)

    def delete_if_equal(self, key: Key, expected: Versioned) -> Awaitable[bool]:
        return self._call(lambda: self._cache.delete_if_equal(key, expected), False)

    def incr(self, key: Key, amount: int = 1) -> Awaitable[int]:
        return self._call(lambda: self._cache.incr(key, amount), 0)


class RefusedFills:
    """The cache as a strategy sees it when the run asks for no failure handling: a fill
    the cache refuses (out of memory and nothing to evict, `noeviction`) is what any
    production client does with it, not a failed request: counted in `cache_errors`
    and the read still returns the origin's value. Everything else is the cache's own
    method (no wrapper on the hot path)."""

    def __init__(self, cache: Cache, metrics: Metrics) -> None:
        self._cache = cache
        self._metrics = metrics
        self.get = cache.get
        self.delete = cache.delete
        if getattr(cache, "never_refuses", False):  # no wrapper coroutine on every fill
            self.set = cache.set  # type: ignore[method-assign,assignment]
            self.set_if_equal = cache.set_if_equal  # type: ignore[method-assign,assignment]

    def delete_if_equal(self, key: Key, expected: Versioned) -> Awaitable[bool]:
        return self._cache.delete_if_equal(key, expected)

    def incr(self, key: Key, amount: int = 1) -> Awaitable[int]:
        return self._cache.incr(key, amount)

    async def set(
        self, key: Key, value: Versioned, ttl: float | None = None, nx: bool = False
    ) -> bool:
        try:
            return await self._cache.set(key, value, ttl, nx)
        except CacheRefused:
            self._metrics.count("cache_errors")
            return False

    async def set_if_equal(
        self, key: Key, value: Versioned, ttl: float | None, check: Key, expected: Versioned
    ) -> bool:
        try:
            return await self._cache.set_if_equal(key, value, ttl, check, expected)
        except CacheRefused:
            self._metrics.count("cache_errors")
            return False
