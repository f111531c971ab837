"""The Origin contract: the same tests against the simulated origin, SQLite and
PostgreSQL (the local server; skipped with the reason if it is unreachable)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import simpy

from lab.aio import AsyncioRuntime
from lab.core import Key, Versioned
from lab.core.errors import OriginUnavailable
from lab.core.runtime import Runtime
from lab.origins import PostgresOrigin, SqliteOrigin, make_origin
from lab.scenario import Distribution, OriginSpec
from lab.sim.origin import SimOrigin
from lab.sim.runtime import SimRuntime

PG_URL = os.environ.get("CACHELAB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
FAST = Distribution(distribution="constant", value=0.001)
SPEC = OriginSpec(read_latency=FAST, write_latency=FAST, concurrency=4)


Body = Callable[[Any, Runtime], Coroutine[Any, Any, None]]


def run_sim(body: Body) -> None:
    env = simpy.Environment()
    rt = SimRuntime(env)
    origin = SimOrigin(
        env, value_size=100, read_latency=lambda: 0.001, write_latency=lambda: 0.001, concurrency=4
    )

    async def main() -> None:
        await body(origin, rt)

    rt.run(main())


def run_real(make: Callable[[], SqliteOrigin | PostgresOrigin]) -> Callable[[Body], None]:
    def run(body: Body) -> None:
        async def main() -> None:
            origin = make()
            try:
                await origin.open()
            except OriginUnavailable as exc:
                pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {exc}")
            try:
                await AsyncioRuntime().run_async(body(origin, AsyncioRuntime()))
            finally:
                await origin.close()

        asyncio.run(main())

    return run


RUNNERS: dict[str, Callable[[Body], None]] = {
    "sim": run_sim,
    "sqlite": run_real(lambda: SqliteOrigin(SPEC, value_size=100)),
    "sqlite-threads": run_real(lambda: SqliteOrigin(SPEC, value_size=100, threads=4)),
    "sqlite-no-latency": run_real(
        lambda: SqliteOrigin(SPEC, value_size=100, emulate_latency=False)
    ),
    "postgresql": run_real(
        lambda: PostgresOrigin(SPEC.model_copy(update={"url": PG_URL}), PG_URL, value_size=100)
    ),
}


@pytest.fixture(params=list(RUNNERS))
def run(request: pytest.FixtureRequest) -> Callable[[Body], None]:
    return RUNNERS[request.param]


async def final_versions(origin: Any) -> dict[Key, int]:
    versions = origin.versions()
    if asyncio.iscoroutine(versions):
        versions = await versions
    assert isinstance(versions, dict)
    return versions


def test_unwritten_keys_have_version_zero(run: Callable[[Body], None]) -> None:
    async def body(origin: Any, rt: Runtime) -> None:
        assert await origin.read(1) == Versioned(0, 100)
        assert await origin.read("other") == Versioned(0, 100)

    run(body)


def test_writes_count_versions_up_per_key(run: Callable[[Body], None]) -> None:
    async def body(origin: Any, rt: Runtime) -> None:
        assert await origin.write(1) == Versioned(1, 100)
        assert await origin.write(1) == Versioned(2, 100)
        assert await origin.write(2) == Versioned(1, 100)
        assert await origin.read(1) == Versioned(2, 100)
        assert await final_versions(origin) == {1: 2, 2: 1}

    run(body)


def test_concurrent_writes_of_one_key_get_distinct_versions(run: Callable[[Body], None]) -> None:
    async def body(origin: Any, rt: Runtime) -> None:
        got: list[int] = []
        done = rt.queue()

        async def writer() -> None:
            got.append((await origin.write(5)).version)
            done.put(None)

        for _ in range(20):
            rt.spawn(writer())
        for _ in range(20):
            await done.get()
        assert sorted(got) == list(range(1, 21))
        assert (await origin.read(5)).version == 20

    run(body)


def next_write_latencies(origin: Any, draws: list[float]) -> bool:
    """Make the origin's next writes take `draws` seconds each; False if it emulates no
    latency (the bare database)."""
    if isinstance(origin, SimOrigin):
        origin._write_latency = iter(draws).__next__
        return True
    emu = origin._emu
    if emu is None or not emu.enabled:
        return False
    emu.write_latency = iter(draws).__next__
    return True


def test_writes_of_one_row_commit_in_arrival_order(run: Callable[[Body], None]) -> None:
    """A slow write, then a fast one of the same row while it is in service: the fast one
    waits for the slow one's commit (a row lock), so versions follow arrival order and
    the two commits are one instant, not two. Another row is not held up."""

    async def body(origin: Any, rt: Runtime) -> None:
        if not next_write_latencies(origin, [0.300, 0.005, 0.005]):
            return
        got: dict[str, tuple[int, float]] = {}
        done = rt.queue()

        async def writer(name: str, key: Key, delay: float) -> None:
            await rt.sleep(delay)
            stored = await origin.write(key)
            got[name] = (stored.version, rt.now())
            done.put(None)

        start = rt.now()
        rt.spawn(writer("slow", 9, 0.0))
        rt.spawn(writer("fast", 9, 0.020))
        rt.spawn(writer("other row", 8, 0.020))
        for _ in range(3):
            await done.get()
        assert got["slow"][0] == 1 and got["fast"][0] == 2
        assert got["fast"][1] - start >= 0.300 - 1e-9  # not before the slow write committed
        assert got["other row"][0] == 1 and got["other row"][1] < got["slow"][1]
        assert (await origin.read(9)).version == 2

    run(body)


def test_emulated_latency_and_concurrency_limit(run: Callable[[Body], None]) -> None:
    """8 reads of 1 ms each through 4 workers take at least 2 ms (sim: exactly)."""

    async def body(origin: Any, rt: Runtime) -> None:
        if getattr(origin, "emulate_latency", True) is False:
            return
        done = rt.queue()
        start = rt.now()

        async def reader() -> None:
            await origin.read(3)
            done.put(None)

        for _ in range(8):
            rt.spawn(reader())
        for _ in range(8):
            await done.get()
        assert rt.now() - start >= 0.002 - 1e-9

    run(body)


def test_make_origin_picks_sqlite_or_postgres() -> None:
    assert isinstance(make_origin(SPEC, value_size=10), SqliteOrigin)
    with_url = SPEC.model_copy(update={"url": PG_URL})
    assert isinstance(make_origin(with_url, value_size=10), PostgresOrigin)
    with pytest.raises(ValueError, match="postgresql://"):
        make_origin(SPEC.model_copy(update={"url": "mysql://x"}), value_size=10)


def test_postgres_table_is_dropped_after_the_run() -> None:
    origin = PostgresOrigin(SPEC, PG_URL, value_size=10)

    async def main() -> bool:
        try:
            await origin.open()
        except OriginUnavailable as exc:
            pytest.skip(f"PostgreSQL unreachable at {PG_URL}: {exc}")
        await origin.write(1)
        await origin.close()
        import psycopg

        async with await psycopg.AsyncConnection.connect(PG_URL) as conn:
            cur = await conn.execute("SELECT to_regclass(%s)", (origin.table,))
            row = await cur.fetchone()
            return row is not None and row[0] is None

    assert asyncio.run(main())


def test_sqlite_file_is_removed_after_the_run() -> None:
    origin = SqliteOrigin(SPEC, value_size=10)

    async def main() -> None:
        await origin.open()
        await origin.write(1)
        assert origin.path is not None and origin.path.exists()
        await origin.close()

    asyncio.run(main())
    assert origin.path is not None and not origin.path.parent.exists()


def test_write_with_a_version_keeps_the_newest(run: Callable[[Body], None]) -> None:
    """Write-behind flushes versions the cache chose: an older one never wins."""

    async def body(origin: Any, rt: Runtime) -> None:
        assert await origin.write(9, Versioned(3, 100)) == Versioned(3, 100)
        assert await origin.write(9, Versioned(2, 100)) == Versioned(3, 100)  # older: kept 3
        assert await origin.write(9, Versioned(5, 100)) == Versioned(5, 100)
        assert await origin.read(9) == Versioned(5, 100)
        assert await origin.write(9) == Versioned(6, 100)  # and counting goes on from there
        assert (await final_versions(origin))[9] == 6

    run(body)
