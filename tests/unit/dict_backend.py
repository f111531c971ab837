"""A third backend in one file: a dict in the test process, on the asyncio runtime.

It exists to prove the promise of `lab.backend`: a new backend is one class
implementing the protocol plus one registry entry (the tests add
``"dict": "tests.unit.dict_backend:DictBackend"`` to `lab.backends.REGISTRY`).
No pub/sub and no fault handlers: strategies needing them, and scenarios
with faults, are refused with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar, TypeVar

from lab.aio import AsyncioRuntime, run_bounded
from lab.backend import FaultHandlers, FinalState, NodeKeys, Parts
from lab.core import Key, Versioned
from lab.core.capabilities import Capability
from lab.scenario import Cell, Fault, Scenario

T = TypeVar("T")


class DictCache:
    """The Cache protocol on a dict; TTLs on the runtime's clock."""

    def __init__(self, now: Callable[[], float]) -> None:
        self.now = now
        self.data: dict[Key, tuple[Versioned, float]] = {}

    def _live(self, key: Key) -> Versioned | None:
        held = self.data.get(key)
        if held is None or held[1] <= self.now():
            self.data.pop(key, None)
            return None
        return held[0]

    async def get(self, key: Key) -> Versioned | None:
        return self._live(key)

    async def set(
        self, key: Key, value: Versioned, ttl: float | None = None, nx: bool = False
    ) -> bool:
        if nx and self._live(key) is not None:
            return False
        self.data[key] = (value, self.now() + ttl if ttl is not None else float("inf"))
        return True

    async def delete(self, key: Key) -> None:
        self.data.pop(key, None)

    async def set_if_equal(
        self, key: Key, value: Versioned, ttl: float | None, check: Key, expected: Versioned
    ) -> bool:
        if self._live(check) != expected:
            return False
        await self.set(key, value, ttl)
        self.data.pop(check, None)
        return True

    async def delete_if_equal(self, key: Key, expected: Versioned) -> bool:
        if self._live(key) != expected:
            return False
        self.data.pop(key, None)
        return True

    async def incr(self, key: Key, amount: int = 1) -> int:
        current = self._live(key)
        value = (current.version if current is not None else 0) + amount
        self.data[key] = (Versioned(value, 8), float("inf"))
        return value


class DictOrigin:
    """The Origin protocol on a dict of versions."""

    def __init__(self, value_size: int) -> None:
        self.value_size = value_size
        self.rows: dict[Key, int] = {}

    async def read(self, key: Key) -> Versioned:
        return Versioned(self.rows.get(key, 0), self.value_size)

    async def write(self, key: Key, value: Versioned | None = None) -> Versioned:
        if value is None:
            self.rows[key] = self.rows.get(key, 0) + 1
        elif value.version > self.rows.get(key, 0):
            self.rows[key] = value.version
        return Versioned(self.rows[key], self.value_size)


class DictBackend:
    """A `lab.backend.Backend` in a dict."""

    name: ClassVar[str] = "dict"
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.TTL, Capability.NX, Capability.INCR, Capability.SET_IF_EQUAL}
    )
    faults: ClassVar[FaultHandlers[Any, Any]] = FaultHandlers("dict")

    def __init__(self) -> None:
        self.cache: DictCache | None = None
        self.origin: DictOrigin | None = None

    @classmethod
    def describe(cls) -> str:
        return "a dict in this process (tests)"

    def refusal(self, scenario: Scenario, cell: Cell) -> str | None:
        return self.faults.refusal(scenario.faults)

    def execute(
        self, scenario: Scenario, cell: Cell, body: Callable[[Parts], Coroutine[Any, Any, T]]
    ) -> T:
        async def in_loop() -> T:
            runtime = AsyncioRuntime()
            self.cache = DictCache(runtime.now)
            self.origin = DictOrigin(scenario.keyspace.value_size)
            parts = Parts(runtime, self.cache, self.origin, None, self._gauges)
            return await body(parts)

        return run_bounded(in_loop())

    def _gauges(self) -> dict[str, float]:
        assert self.cache is not None
        return {"evictions": 0, "cache_keys": len(self.cache.data), "cache_memory": 0}

    def schedule_faults(self, parts: Parts, faults: Sequence[Fault]) -> None:
        return None

    async def run(self, parts: Parts, workload: Coroutine[Any, Any, None]) -> None:
        runtime = parts.runtime
        assert isinstance(runtime, AsyncioRuntime)
        runtime.restart_clock()
        await runtime.run_async(workload)

    def warmup_over(self, parts: Parts) -> int:
        return 0

    async def final_state(self, parts: Parts) -> FinalState:
        assert self.cache is not None and self.origin is not None
        return FinalState(
            evictions=0,
            cache_keys=len(self.cache.data),
            cache_memory=0,
            origin_versions=dict(self.origin.rows),
            fields={"simulated_time": None},
            versions={"dict": "builtin"},
        )

    async def inventory(self, parts: Parts) -> list[NodeKeys] | None:
        return None
