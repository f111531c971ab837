"""The Runtime: the only way strategy code touches time and concurrency.

Strategies never import asyncio, simpy or redis. They get a Runtime whose
`sleep` and `spawn` are backed by SimPy in the simulator and by asyncio on
real servers, so the same `async def` code runs on both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Coroutine
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class Queue(Protocol, Generic[T]):
    """An unbounded FIFO between coroutines (write-behind flushers use it)."""

    def put(self, item: T) -> None: ...

    def get(self) -> Awaitable[T]: ...

    def __len__(self) -> int: ...


class Runtime(Protocol):
    """Time and concurrency for strategy code, implemented once per backend."""

    def now(self) -> float:
        """Current time in seconds (simulated or wall clock since the run began)."""
        ...

    def sleep(self, seconds: float) -> Awaitable[None]:
        """Suspend the calling coroutine for `seconds`."""
        ...

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run `coro` concurrently (fire and forget); its failure fails the run loudly."""
        ...

    def queue(self) -> Queue[Any]:
        """A new unbounded FIFO queue."""
        ...
