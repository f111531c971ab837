"""Eviction policies of the simulated cache nodes, and the store for a policy name.

`lru`, `fifo` and `random` are exact (`lab/sim/store.py`): `lru` evicts the least
recently used key, always, which is what theory (Che's approximation, ...) assumes.
"""

from __future__ import annotations

from lab.scenario import Eviction
from lab.sim.memory import Accounting, RedisMemory
from lab.sim.store import RandomStore, Store


def make_store(
    capacity: int | None,
    policy: Eviction,
    seed: int = 0,
    *,
    budget: int | None = None,
    memory: RedisMemory | None = None,
) -> Store:
    """The store for an eviction policy name: at most `capacity` keys, or `budget` bytes
    of data memory as `memory` counts it (a budget needs a memory model)."""
    if budget is not None and memory is None:
        raise ValueError("a byte budget needs a memory model to count bytes with")
    accounting = Accounting(memory, budget) if memory is not None else None
    if policy == "random":
        return RandomStore(capacity, policy, seed, memory=accounting, budget=budget)
    return Store(capacity, policy, seed, memory=accounting, budget=budget)
