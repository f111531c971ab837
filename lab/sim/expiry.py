"""Active expiry, as Redis 7.0 runs it (`expire.c`, `activeExpireCycle`).

Lazy expiry alone (the exact stores of `lab/sim/store.py`) leaves every expired key in
memory until it is read; Redis also scans for them. Each `serverCron` tick (`hz` 10 a
second) runs a *slow* cycle on the expires dict: loops of 20 keys (`keys-per-loop`),
taken bucket by bucket from a cursor that carries over between cycles, every expired
key deleted; a loop repeats while more than 10% of its keys had expired
(`acceptable-stale`), until 25% of a tick's CPU time (25 ms) is used. A cycle stopped by
that limit makes Redis run *fast* cycles (1 ms each, at most every 2 ms) before
commands until a cycle ends on its own. (Redis 7.0 compares its stale-key estimate, a
fraction, with the percentage 10, so the estimate never triggers fast cycles itself.)

The simulator has no CPU clock for the limit: a cycle is charged `SAMPLE_COST` per key
looked at and `EXPIRE_COST` more per key deleted (estimates for a current x86 core), so
the limit binds only when tens of thousands of keys expire at once. Cycles run on the
primaries of nodes under Redis's policies; replicas wait for their primary, as Redis
replicas do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lab.sim.eviction import RedisStore

HZ = 10
KEYS_PER_LOOP = 20
ACCEPTABLE_STALE = 10
"""Percent of expired keys among those sampled above which a loop repeats."""
SLOW_TIME = 0.25 / HZ
"""Seconds of CPU a slow cycle may use: 25% of a cron tick."""
FAST_TIME = 0.001
SAMPLE_COST = 0.3e-6
EXPIRE_COST = 1.5e-6
DICT_MIN_BUCKETS = 4


class ActiveExpiry:
    """One node's active expiry: `slow(now)` every cron tick, `fast(now)` before commands."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.cursor = 0
        self.time_limit_hit = False
        self._last_fast = -1.0
        self.cycles = 0

    def slow(self, now: float) -> None:
        self._cycle(now, SLOW_TIME)

    def fast(self, now: float) -> None:
        """A fast cycle if the last cycle ran out of time (and none ran in 2 ms)."""
        if self.time_limit_hit and now >= self._last_fast + 2 * FAST_TIME:
            self._last_fast = now
            self._cycle(now, FAST_TIME)

    def _cycle(self, now: float, limit: float) -> None:
        keys = self.store.volatile
        self.time_limit_hit = False
        self.cycles += 1
        spent, iteration = 0.0, 0
        while True:
            iteration += 1
            count = len(keys)
            if count == 0:
                return
            buckets = keys.fit()
            if buckets > DICT_MIN_BUCKETS and count * 100 // buckets < 1:
                return  # a sparse table is not worth scanning
            sampled, expired = self._loop(now, min(count, KEYS_PER_LOOP))
            spent += sampled * SAMPLE_COST + expired * EXPIRE_COST
            if iteration & 15 == 0 and spent > limit:
                self.time_limit_hit = True
                return
            if sampled and expired * 100 // sampled <= ACCEPTABLE_STALE:
                return

    def _loop(self, now: float, wanted: int) -> tuple[int, int]:
        """One loop: whole buckets from the cursor until `wanted` keys were looked at
        (or 20 buckets per key were visited)."""
        store, keys = self.store, self.store.volatile
        sampled = expired = checked = 0
        while sampled < wanted and checked < wanted * 20:
            checked += 1
            for key in keys.chain(self.cursor):
                expired += store.expire_if_due(key, now)
                sampled += 1
            self.cursor += 1
        return sampled, expired
