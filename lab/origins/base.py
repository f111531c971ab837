"""What the real SQL origins share: the protocol, the emulated latency, origin faults.

The Origin protocol on a real SQL database: SQLite by default, PostgreSQL by URL.

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
served), like the simulator's M/G/c origin, plus the network's round trip
(`topology.network.rtt`, half each way), which the simulator's origin calls
take too. As in the simulator, a read sees the data as of the start of its
service, and a write commits at its end but not before the previous write of
the same row (a row lock, `RowLocks`), so versions follow arrival order. The
waits are paced (`Pacer`): the event loop wakes a sleeper late, so each sleep
is shortened by how late the recent ones woke. Turn it off with `emulate_latency=False` (or
`CACHELAB_ORIGIN_LATENCY=off` for the CLI) to measure the bare database.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from lab.core import Key, SizeOf, Versioned
from lab.core.errors import OriginUnavailable
from lab.sampling import ZERO, Sampler, rng_for, sampler
from lab.scenario import Distribution, OriginSpec
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


PACE_GAIN = 0.05
"""Weight of the newest wake-up in the running mean of how late sleeps wake."""


class Pacer:
    """Sleeps that last what they are asked for, on average, on a busy event loop.

    `asyncio.sleep(d)` returns after d plus the loop's lag: the other callbacks of the
    pass it wakes in, and epoll's millisecond timeouts. Measured in the fidelity grid's
    real runs, an emulated 5 ms origin read (median) took 5.6-6.2 ms on a quiet machine
    and 6.4-7.6 ms on a busy one: every call longer than the scenario's, which widens
    the window in which a read can fill the cache with a value a write has just
    replaced (docs/fidelity-grid.md). Each sleep is shortened by the running mean of
    how late the recent ones woke; a wait shorter than that mean is not slept at all
    (returning costs the caller a loop pass anyway)."""

    def __init__(
        self,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.late = 0.0
        """Running mean of how much later than asked a sleep returned (seconds)."""
        self._clock = clock
        self._sleep = sleep

    async def wait(self, seconds: float) -> None:
        asked = seconds - self.late
        if asked <= 0.0:
            return
        clock = self._clock or asyncio.get_running_loop().time
        start = clock()
        await self._sleep(asked)
        self.late += PACE_GAIN * (clock() - start - asked - self.late)


class RowLocks:
    """Writes of one row commit in the order they arrived, as the simulator's origin and
    a real database's row lock make them: a write whose emulated service ends before
    an earlier write of its row has committed waits for that commit (holding no worker,
    as in the simulator). Without it a fast write overtook a slow one (2.5% of the
    writes in the fidelity grid's 10%-write cells arrive while one of their row is in
    service), and each extra commit is one more chance for a concurrent fill to put
    back the value it replaced: on two such cells over seeds 1-8, real runs read 1,153
    and 1,200 stale values against the simulator's 853 and 937; 858 and 969 with the
    lock (docs/fidelity-grid.md)."""

    def __init__(self) -> None:
        self._last: dict[str, asyncio.Event] = {}
        """Per row, the commit of its newest write (set once that write has committed or
        failed); rows with no write in flight have none."""

    def arrive(self, name: str) -> tuple[asyncio.Event | None, asyncio.Event]:
        """Queue a write of `name`: the commit to wait for (None: none in flight) and
        this write's own, to pass to `done`."""
        previous = self._last.get(name)
        mine = self._last[name] = asyncio.Event()
        return previous, mine

    def done(self, name: str, mine: asyncio.Event) -> None:
        """The write has committed (or failed): let the next write of the row commit."""
        mine.set()
        if self._last.get(name) is mine:
            del self._last[name]


class Emulation:
    """Sampled service time plus a concurrency limit (the M/G/c part of the sim origin),
    and the network's round trip to it."""

    def __init__(
        self, spec: OriginSpec, seed: int, enabled: bool, rtt: Distribution | None = None
    ) -> None:
        self.enabled = enabled
        self.read_latency: Sampler = sampler(spec.read_latency, rng_for(seed, "origin.read"))
        self.write_latency: Sampler = sampler(spec.write_latency, rng_for(seed, "origin.write"))
        self.rtt: Sampler = (
            sampler(rtt, rng_for(seed, "origin.network")) if rtt is not None else ZERO
        )
        self.slots = asyncio.Semaphore(spec.concurrency)
        self.factor = 1.0  # origin_slow multiplies the emulated latency
        self.down = False  # origin_down refuses every request
        self.pacer = Pacer()
        self.rows = RowLocks()

    def check(self) -> None:
        if self.down:
            raise OriginUnavailable("origin: connection refused")


class Names:
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


class EmulatedOrigin:
    """What both SQL origins share: the emulated latency around each query (a read
    sees the data as of the start of its service, a write commits at its end, at most
    `concurrency` in service) and the origin faults. Subclasses run the queries."""

    value_size: int | SizeOf
    _emu: Emulation | None
    _names: Names

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
            return Versioned(await self._read_version(name), self._size(key))
        half = emu.rtt() * 0.5
        async with emu.slots:  # (held for the reply's way back too: ~0.2 ms of 5)
            # data as of the start of service (taken when a worker is free, half an rtt
            # before the simulator's snapshot: ~0.15 ms of a ~7 ms fill window)
            version = await self._read_version(name)
            await emu.pacer.wait(half + emu.read_latency() * emu.factor + half)
        return Versioned(version, self._size(key))

    def _size(self, key: Key) -> int:
        """The key's value size (fixed per key for the run's seed)."""
        value_size = self.value_size
        return value_size(key) if callable(value_size) else value_size

    async def write(self, key: Key, value: Versioned | None = None) -> Versioned:
        """Commit the next version, or (write-behind) store `value` unless the origin
        already holds a newer version; return what the origin holds."""
        emu = self._emu
        assert emu is not None, "open() the origin first"
        name = self._names.name(key)
        emu.check()
        if emu.enabled:
            half = emu.rtt() * 0.5
            previous, mine = emu.rows.arrive(name)
            try:
                async with emu.slots:
                    await emu.pacer.wait(half + emu.write_latency() * emu.factor)
                if previous is not None:
                    await previous.wait()  # the row lock: after the row's earlier writes
                version = await self._commit(name, value)  # commits at the end of service
            finally:
                emu.rows.done(name, mine)
            await emu.pacer.wait(half)  # the reply's way back
        else:
            version = await self._commit(name, value)
        return held(version, value, self._size(key))

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


def blob_size(value_size: int | SizeOf) -> int:
    """The bytes a row holds in the database (a typical size when sizes differ per key)."""
    return value_size if isinstance(value_size, int) else int(getattr(value_size, "typical", 0))


def held(version: int, value: Versioned | None, value_size: int) -> Versioned:
    """The row the origin holds after a write (the given value if it was stored)."""
    if value is not None and value.version == version:
        return Versioned(version, value.size)
    return Versioned(version, value_size)
