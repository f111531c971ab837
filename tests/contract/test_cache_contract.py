"""The Cache contract: the same test functions against every backend.

Each test is one `async def` body written only against `Cache` and `Runtime`
(like strategy code), run by the simulator (SimPy, virtual time) and by
asyncio against real servers (wall time): a backend that passes these can
run every strategy in the lab.
"""

from __future__ import annotations

import pytest

from lab.core import Cache, Runtime, Versioned
from lab.core.errors import CacheUnavailable
from tests.contract.conftest import MemcachedUnderTest, RedisUnderTest, SimUnderTest

Backend = SimUnderTest | RedisUnderTest | MemcachedUnderTest

V1 = Versioned(1, 1024)
V2 = Versioned(2, 1024)


def test_get_of_a_missing_key_is_none(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        assert await cache.get(1) is None
        assert await cache.get("some:name") is None

    cache_backend.run(body)


def test_set_then_get_returns_the_value(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        assert await cache.set(1, V1) is True
        assert await cache.get(1) == V1
        assert await cache.get(2) is None
        assert await cache.set("lock:key:1", Versioned(0, 1)) is True
        assert await cache.get("lock:key:1") == Versioned(0, 1)

    cache_backend.run(body)


def test_value_fields_survive_the_round_trip(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        value = Versioned(12345678901, 64, expiry=1.25 + 1e-9, delta=0.003141592653589793)
        await cache.set(7, value)
        got = await cache.get(7)
        assert got == value
        assert got is not None and (got.expiry, got.delta) == (value.expiry, value.delta)
        tiny = Versioned(99, 3)  # smaller than any header: still round-trips
        await cache.set(8, tiny)
        assert await cache.get(8) == tiny

    cache_backend.run(body)


def test_overwrite_replaces_the_value(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        await cache.set(1, V1)
        assert await cache.set(1, V2) is True
        assert await cache.get(1) == V2

    cache_backend.run(body)


def test_delete_removes_and_is_idempotent(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        await cache.set(1, V1)
        await cache.set(2, V2)
        await cache.delete(1)
        assert await cache.get(1) is None
        assert await cache.get(2) == V2
        await cache.delete(1)  # absent: no error
        await cache.delete(12345)

    cache_backend.run(body)


def test_ttl_expires_the_key(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        await cache.set(1, V1, ttl=0.05)
        await cache.set(2, V2)  # no TTL: never expires
        assert await cache.get(1) == V1
        await rt.sleep(cache_backend.expired_after)
        assert await cache.get(1) is None
        assert await cache.get(2) == V2

    cache_backend.run(body)


def test_set_without_ttl_clears_a_previous_ttl(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        await cache.set(1, V1, ttl=0.05)
        await cache.set(1, V2)
        await rt.sleep(cache_backend.expired_after)
        assert await cache.get(1) == V2

    cache_backend.run(body)


def test_tiny_ttl_is_still_a_ttl(cache_backend: Backend) -> None:
    """A TTL below the server's resolution must not become "no TTL" (or an error)."""

    async def body(cache: Cache, rt: Runtime) -> None:
        assert await cache.set(1, V1, ttl=0.0001) is True
        await rt.sleep(cache_backend.tiny_ttl_gone_after)
        assert await cache.get(1) is None

    cache_backend.run(body)


def test_nx_sets_only_when_absent(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        assert await cache.set(1, V1, nx=True) is True
        assert await cache.set(1, V2, nx=True) is False
        assert await cache.get(1) == V1  # the failed NX changed nothing
        await cache.delete(1)
        assert await cache.set(1, V2, nx=True) is True
        assert await cache.get(1) == V2

    cache_backend.run(body)


def test_nx_succeeds_once_the_key_expired(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        assert await cache.set("lock", V1, ttl=0.05, nx=True) is True
        assert await cache.set("lock", V2, ttl=0.05, nx=True) is False
        await rt.sleep(cache_backend.expired_after)
        assert await cache.set("lock", V2, ttl=0.05, nx=True) is True
        assert await cache.get("lock") == V2

    cache_backend.run(body)


def test_concurrent_nx_has_exactly_one_winner(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        results: list[bool] = []
        done = rt.queue()

        async def contender(i: int) -> None:
            results.append(await cache.set("lock", Versioned(i, 8), ttl=5, nx=True))
            done.put(None)

        for i in range(10):
            rt.spawn(contender(i))
        for _ in range(10):
            await done.get()
        assert sorted(results) == [False] * 9 + [True]

    cache_backend.run(body)


def test_crashed_node_raises_cache_unavailable(cache_backend: Backend) -> None:
    cache_backend.crash()  # sim: the node refuses; real: SIGKILL

    async def body(cache: Cache, rt: Runtime) -> None:
        with pytest.raises(CacheUnavailable):
            await cache.get(1)
        with pytest.raises(CacheUnavailable):
            await cache.set(1, V1, ttl=1.0)
        with pytest.raises(CacheUnavailable):
            await cache.delete(1)

    cache_backend.run(body)


def test_hung_node_times_out_as_cache_unavailable(cache_backend: Backend) -> None:
    cache_backend.pause()  # sim: the node answers nothing; real: SIGSTOP

    async def body(cache: Cache, rt: Runtime) -> None:
        started = rt.now()
        with pytest.raises(CacheUnavailable):
            await cache.get(1)
        assert rt.now() - started < 2.0  # bounded by the client timeout

    cache_backend.run(body)


def test_incr_counts_from_zero(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        assert await cache.incr("counter") == 1
        assert await cache.incr("counter") == 2
        assert await cache.incr("other") == 1
        await cache.delete("counter")
        assert await cache.incr("counter") == 1

    cache_backend.run(body)


def test_incr_by_an_amount_and_read_with_zero(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        assert await cache.incr("n", 5) == 5
        assert await cache.incr("n", 0) == 5
        assert await cache.incr("n", -2) == 3

    cache_backend.run(body)


def test_set_if_equal_fills_only_for_the_token_holder(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        token, other = Versioned(41, 1), Versioned(42, 1)
        check = "lease:{key:1}"
        assert await cache.set_if_equal(1, V1, None, check, token) is False  # no lease
        assert await cache.get(1) is None
        await cache.set(check, token, ttl=5)
        assert await cache.set_if_equal(1, V1, None, check, other) is False  # not ours
        assert await cache.get(1) is None
        assert await cache.set_if_equal(1, V1, 0.05, check, token) is True
        assert await cache.get(1) == V1
        assert await cache.get(check) is None  # the lease is used up
        await rt.sleep(cache_backend.expired_after)
        assert await cache.get(1) is None  # with its TTL

    cache_backend.run(body)


def test_delete_if_equal_releases_only_the_holders_lock(cache_backend: Backend) -> None:
    async def body(cache: Cache, rt: Runtime) -> None:
        mine, theirs = Versioned(41, 1), Versioned(42, 1)
        assert await cache.delete_if_equal("lock:key:1", mine) is False  # nothing there
        await cache.set("lock:key:1", theirs, ttl=5)
        assert await cache.delete_if_equal("lock:key:1", mine) is False  # not ours
        assert await cache.get("lock:key:1") == theirs
        assert await cache.delete_if_equal("lock:key:1", theirs) is True
        assert await cache.get("lock:key:1") is None

    cache_backend.run(body)
