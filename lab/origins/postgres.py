"""PostgreSQL as the origin of a real run (`origin.url`), on a private table."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from typing import Any

from lab.core import Key, SizeOf, Versioned
from lab.core.errors import OriginUnavailable
from lab.origins.base import EmulatedOrigin, Emulation, Names, blob_size
from lab.scenario import Distribution, OriginSpec


class PostgresOrigin(EmulatedOrigin):
    """PostgreSQL through psycopg 3 (async), `concurrency` connections in a simple pool.

    The table is private to the run (`cachelab_origin_<random>`) and dropped on close.
    """

    kind = "postgresql"

    def __init__(
        self,
        spec: OriginSpec,
        url: str,
        *,
        value_size: int | SizeOf,
        seed: int = 0,
        emulate_latency: bool = True,
        network_rtt: Distribution | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        self.spec = spec
        self.url = url
        self.value_size = value_size
        self.seed = seed
        self.emulate_latency = emulate_latency
        self.network_rtt = network_rtt
        """The round trip to the database (the scenario's network): None, none."""
        self.connect_timeout = connect_timeout
        self.table = f"cachelab_origin_{os.getpid()}_{secrets.token_hex(4)}"
        self.server_version = "postgresql"
        self._idle: asyncio.Queue[Any] = asyncio.Queue()
        self._all_connections: list[Any] = []
        self._emu: Emulation | None = None
        self._names = Names()
        self._blob = b"\0" * blob_size(value_size)
        self._created = False

    async def open(self) -> None:
        try:
            import psycopg
        except ImportError as exc:  # pragma: no cover - a dependency of the lab
            raise OriginUnavailable(
                "psycopg is not installed (pip install 'psycopg[binary]')"
            ) from exc
        self._emu = Emulation(self.spec, self.seed, self.emulate_latency, self.network_rtt)
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
