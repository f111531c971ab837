"""The Origin protocol on a real SQL database: SQLite by default, PostgreSQL by URL.

One table `(key, version, value)`: a read returns the committed version
(0 for a key never written) and a write is one atomic upsert that bumps the
version and returns it (`version = version + 1 ... RETURNING version`), so
concurrent writers of one key always get distinct, increasing versions. A
write that brings its own version (write-behind flushing what the cache
acknowledged) is stored only if it is newer than the row, atomically.

Emulated remote latency (on by default, so the sim and real backends see a
database of the same speed): each call also takes a latency sampled from
the scenario's `origin.read_latency` / `write_latency`, and at most
`origin.concurrency` calls are in service at once (first come, first
served), like the simulator's M/G/c origin. As in the simulator, a read sees
the data as of the start of its service, a write commits at its end. Turn
it off with `emulate_latency=False` (or `CACHELAB_ORIGIN_LATENCY=off` for the
CLI) to measure the bare database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from lab.core import Key, Versioned
from lab.core.errors import OriginUnavailable
from lab.sampling import Sampler, rng_for, sampler
from lab.scenario import OriginSpec
from lab.sharding import key_name

T = TypeVar("T")

LATENCY_ENV = "CACHELAB_ORIGIN_LATENCY"


def latency_from_env(default: bool = True) -> bool:
    """`CACHELAB_ORIGIN_LATENCY=off|0|no|false` turns emulated origin latency off."""
    value = os.environ.get(LATENCY_ENV, "").strip().lower()
    if not value:
        return default
    return value not in ("off", "0", "no", "false")


class RealOrigin(Protocol):
    """An Origin with a lifecycle and an end-of-run view of every row."""

    kind: str
    server_version: str

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def read(self, key: Key) -> Versioned: ...

    async def write(self, key: Key, value: Versioned | None = None) -> Versioned: ...

    def slow(self, factor: float) -> None: ...

    def go_down(self) -> None: ...

    def recover(self) -> None: ...

    async def versions(self) -> dict[Key, int]: ...


class _Emulation:
    """Sampled service time plus a concurrency limit (the M/G/c part of the sim origin)."""

    def __init__(self, spec: OriginSpec, seed: int, enabled: bool) -> None:
        self.enabled = enabled
        self.read_latency: Sampler = sampler(spec.read_latency, rng_for(seed, "origin.read"))
        self.write_latency: Sampler = sampler(spec.write_latency, rng_for(seed, "origin.write"))
        self.slots = asyncio.Semaphore(spec.concurrency)
        self.factor = 1.0  # origin_slow multiplies the emulated latency
        self.down = False  # origin_down refuses every request

    def check(self) -> None:
        if self.down:
            raise OriginUnavailable("origin: connection refused")


class _Names:
    """Maps stored key names back to the harness's keys (for `versions()`)."""

    def __init__(self) -> None:
        self._keys: dict[str, Key] = {}

    def name(self, key: Key) -> str:
        name = key_name(key)
        if name not in self._keys:
            self._keys[name] = key
        return name

    def key(self, name: str) -> Key:
        return self._keys.get(name, name)


class _EmulatedOrigin:
    """What both SQL origins share: the emulated latency around each query (a read
    sees the data as of the start of its service, a write commits at its end, at most
    `concurrency` in service) and the origin faults. Subclasses run the queries."""

    value_size: int
    _emu: _Emulation | None
    _names: _Names

    async def _read_version(self, name: str) -> int:
        raise NotImplementedError

    async def _commit(self, name: str, value: Versioned | None) -> int:
        raise NotImplementedError

    async def read(self, key: Key) -> Versioned:
        emu = self._emu
        assert emu is not None, "open() the origin first"
        name = self._names.name(key)
        emu.check()
        if not emu.enabled:
            return Versioned(await self._read_version(name), self.value_size)
        async with emu.slots:
            version = await self._read_version(name)  # data as of the start of service
            await asyncio.sleep(emu.read_latency() * emu.factor)
        return Versioned(version, self.value_size)

    async def write(self, key: Key, value: Versioned | None = None) -> Versioned:
        """Commit the next version, or (write-behind) store `value` unless the origin
        already holds a newer version; return what the origin holds."""
        emu = self._emu
        assert emu is not None, "open() the origin first"
        name = self._names.name(key)
        emu.check()
        if emu.enabled:
            async with emu.slots:
                await asyncio.sleep(emu.write_latency() * emu.factor)
                version = await self._commit(name, value)  # commits at the end of service
        else:
            version = await self._commit(name, value)
        return _held(version, value, self.value_size)

    def slow(self, factor: float) -> None:
        """origin_slow: multiply the emulated latency by `factor`."""
        assert self._emu is not None, "open() the origin first"
        self._emu.factor = factor

    def go_down(self) -> None:
        """origin_down: refuse every request."""
        assert self._emu is not None, "open() the origin first"
        self._emu.down = True

    def recover(self) -> None:
        assert self._emu is not None, "open() the origin first"
        self._emu.factor, self._emu.down = 1.0, False


class SqliteOrigin(_EmulatedOrigin):
    """SQLite in WAL mode.

    By default every statement runs on the event loop's thread: a point read
    or an upsert takes microseconds, while handing it to a worker thread costs
    more than the query and, under load, convoys on the GIL (measured on the
    patterns-overview workload at 5,000 requests/s: read p50 1.5 ms inline,
    265 ms through a 32-thread pool). The concurrency limit and the latency of
    a remote database come from the emulation (see the module docstring).
    `threads=N` runs statements on N worker threads instead (one connection
    each), for databases whose statements are slow enough to be worth it.
    """

    kind = "sqlite"
    server_version = f"sqlite-{sqlite3.sqlite_version}"

    def __init__(
        self,
        spec: OriginSpec,
        *,
        value_size: int,
        seed: int = 0,
        emulate_latency: bool = True,
        path: str | Path | None = None,
        threads: int = 0,
    ) -> None:
        self.spec = spec
        self.threads = threads
        self.value_size = value_size
        self.seed = seed
        self.emulate_latency = emulate_latency
        self._given_path = Path(path) if path is not None else None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.path: Path | None = None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._emu: _Emulation | None = None
        self._names = _Names()
        self._blob = b"\0" * value_size

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            assert self.path is not None
            conn = sqlite3.connect(
                self.path, timeout=60.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._emu is not None, "open() the origin first"
        try:
            if self._pool is None:
                return fn(*args)
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except sqlite3.OperationalError as exc:  # e.g. "database is locked" past the timeout
            raise OriginUnavailable(str(exc)) from exc

    async def open(self) -> None:
        if self._given_path is None:
            self._tmpdir = tempfile.TemporaryDirectory(prefix="cachelab-origin-")
            self.path = Path(self._tmpdir.name) / "origin.sqlite"
        else:
            self.path = self._given_path
        if self.threads > 0:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="origin")
        self._emu = _Emulation(self.spec, self.seed, self.emulate_latency)
        await self._call(self._create)

    def _create(self) -> None:
        conn = self._connection()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS origin ("
            "key TEXT PRIMARY KEY, version INTEGER NOT NULL, value BLOB NOT NULL)"
        )

    def _read(self, name: str) -> int:
        row = (
            self._connection()
            .execute("SELECT version FROM origin WHERE key = ?", (name,))
            .fetchone()
        )
        return 0 if row is None else int(row[0])

    def _write(self, name: str) -> int:
        row = (
            self._connection()
            .execute(
                "INSERT INTO origin (key, version, value) VALUES (?, 1, ?) "
                "ON CONFLICT (key) DO UPDATE SET version = version + 1, value = excluded.value "
                "RETURNING version",
                (name, self._blob),
            )
            .fetchone()
        )
        return int(row[0])

    def _write_version(self, name: str, version: int, size: int) -> int:
        """Store `version` unless a newer one is there; return the version held."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO origin (key, version, value) VALUES (?, ?, zeroblob(?)) "
                "ON CONFLICT (key) DO UPDATE SET version = excluded.version, "
                "value = excluded.value WHERE excluded.version > origin.version",
                (name, version, size),
            )
            row = conn.execute("SELECT version FROM origin WHERE key = ?", (name,)).fetchone()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return int(row[0])

    def _all(self) -> list[tuple[str, int]]:
        rows = self._connection().execute("SELECT key, version FROM origin").fetchall()
        return [(str(k), int(v)) for k, v in rows]

    async def _read_version(self, name: str) -> int:
        return await self._call(self._read, name)

    async def _commit(self, name: str, value: Versioned | None) -> int:
        if value is None:
            return await self._call(self._write, name)
        return await self._call(self._write_version, name, value.version, value.size)

    async def versions(self) -> dict[Key, int]:
        return {self._names.key(k): v for k, v in await self._call(self._all)}

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None


class PostgresOrigin(_EmulatedOrigin):
    """PostgreSQL through psycopg 3 (async), `concurrency` connections in a simple pool.

    The table is private to the run (`cachelab_origin_<random>`) and dropped on close.
    """

    kind = "postgresql"

    def __init__(
        self,
        spec: OriginSpec,
        url: str,
        *,
        value_size: int,
        seed: int = 0,
        emulate_latency: bool = True,
        connect_timeout: float = 5.0,
    ) -> None:
        self.spec = spec
        self.url = url
        self.value_size = value_size
        self.seed = seed
        self.emulate_latency = emulate_latency
        self.connect_timeout = connect_timeout
        self.table = f"cachelab_origin_{os.getpid()}_{secrets.token_hex(4)}"
        self.server_version = "postgresql"
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._all_connections: list[Any] = []
        self._emu: _Emulation | None = None
        self._names = _Names()
        self._blob = b"\0" * value_size
        self._created = False

    async def open(self) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - a dependency of the lab
            raise OriginUnavailable(
                "psycopg is not installed (pip install 'psycopg[binary]')"
            ) from exc
        self._emu = _Emulation(self.spec, self.seed, self.emulate_latency)
        try:
            for _ in range(self.spec.concurrency):
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=max(1, round(self.connect_timeout))
                )
                self._all_connections.append(conn)
                self._idle.put_nowait(conn)
            conn = self._all_connections[0]
            await conn.execute(
                f"CREATE TABLE {self.table} ("
                "key TEXT PRIMARY KEY, version BIGINT NOT NULL, value BYTEA NOT NULL)"
            )
            self._created = True
            version = conn.info.server_version
            self.server_version = f"postgresql-{version // 10000}.{version % 10000}"
        except psycopg.OperationalError as exc:
            await self.close()
            raise OriginUnavailable(f"cannot use PostgreSQL at {self.url}: {exc}") from exc
        self._read_sql = f"SELECT version FROM {self.table} WHERE key = %s"
        self._write_sql = (
            f"INSERT INTO {self.table} AS t (key, version, value) VALUES (%s, 1, %s) "
            "ON CONFLICT (key) DO UPDATE SET version = t.version + 1, value = EXCLUDED.value "
            "RETURNING version"
        )
        self._write_version_sql = (
            f"INSERT INTO {self.table} AS t (key, version, value) VALUES (%s, %s, %s) "
            "ON CONFLICT (key) DO UPDATE SET version = EXCLUDED.version, value = EXCLUDED.value "
            "WHERE t.version < EXCLUDED.version RETURNING version"
        )

    async def _fetch(self, sql: str, params: tuple[Any, ...]) -> Any:
        import psycopg

        conn = await self._idle.get()
        try:
            cur = await conn.execute(sql, params, prepare=True)
            return await cur.fetchone()
        except psycopg.OperationalError as exc:
            raise OriginUnavailable(str(exc)) from exc
        finally:
            self._idle.put_nowait(conn)

    async def _read_version(self, name: str) -> int:
        row = await self._fetch(self._read_sql, (name,))
        return 0 if row is None else int(row[0])

    async def _commit(self, name: str, value: Versioned | None) -> int:
        if value is None:
            row = await self._fetch(self._write_sql, (name, self._blob))
            return int(row[0])
        import psycopg

        conn = await self._idle.get()
        try:
            async with conn.transaction():
                cur = await conn.execute(
                    self._write_version_sql, (name, value.version, b"\0" * value.size)
                )
                row = await cur.fetchone()
                if row is None:  # a newer version is there (the row is locked by us now)
                    cur = await conn.execute(self._read_sql, (name,))
                    row = await cur.fetchone()
            assert row is not None
            return int(row[0])
        except psycopg.OperationalError as exc:
            raise OriginUnavailable(str(exc)) from exc
        finally:
            self._idle.put_nowait(conn)

    async def versions(self) -> dict[Key, int]:
        conn = await self._idle.get()
        try:
            cur = await conn.execute(f"SELECT key, version FROM {self.table}")
            rows = await cur.fetchall()
        finally:
            self._idle.put_nowait(conn)
        return {self._names.key(str(k)): int(v) for k, v in rows}

    async def close(self) -> None:
        connections, self._all_connections = self._all_connections, []
        if self._created and connections:
            import psycopg

            self._created = False
            with contextlib.suppress(psycopg.Error):  # the server may be gone: close anyway
                await connections[0].execute(f"DROP TABLE IF EXISTS {self.table}")
        for conn in connections:
            await conn.close()
        self._idle = asyncio.Queue()


def _held(version: int, value: Versioned | None, value_size: int) -> Versioned:
    """The row the origin holds after a write (the given value if it was stored)."""
    if value is not None and value.version == version:
        return Versioned(version, value.size)
    return Versioned(version, value_size)


def make_origin(
    spec: OriginSpec,
    *,
    value_size: int,
    seed: int = 0,
    emulate_latency: bool = True,
) -> SqliteOrigin | PostgresOrigin:
    """SQLite in a temporary directory, or PostgreSQL when `spec.url` is given."""
    url = getattr(spec, "url", None)
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"origin.url must be a postgresql:// URL, got {url!r}")
        return PostgresOrigin(
            spec, url, value_size=value_size, seed=seed, emulate_latency=emulate_latency
        )
    return SqliteOrigin(spec, value_size=value_size, seed=seed, emulate_latency=emulate_latency)
