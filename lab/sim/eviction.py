"""Eviction policies of the simulated cache nodes, and the store for a policy name.

`lru`, `fifo` and `random` are exact (`lab/sim/store.py`): `lru` evicts the least
recently used key, always, which is what theory (Che's approximation, ...) assumes;
use it for theory checks. The hyphenated names are Redis's policies, modelled as Redis
7.0 implements them (`evict.c`, `db.c`, `object.c`):

- Redis evicts *before* running each command, while the data is over the limit, so a
  write can leave it one entry over until the next command; under a byte budget with
  Redis 7.0's formula, replies still waiting in the node's event-loop pass count
  against it (`lab/sim/replies.py`);
- `allkeys-lru` / `volatile-lru`: each eviction samples `maxmemory-samples` (5) keys of
  the main dict (or of the keys with a TTL), scores them by idle time on the LRU clock
  (whole seconds), merges them into the 16-entry eviction pool (kept sorted; a new
  key worse than all of a full pool is dropped; a full pool drops its best entry) and
  evicts the pool's worst entry that still exists. Pool entries keep the score they
  were sampled with, as in Redis;
- `allkeys-lfu` / `volatile-lfu`: the same pool, scored 255 - the key's Morris counter:
  new keys start at 5 (`LFU_INIT_VAL`), an access first decays the counter by one per
  `lfu-decay-time` minutes since the last access, then adds one with probability
  1 / ((counter - 5) * `lfu-log-factor` + 1); an overwrite keeps the old counter;
- `volatile-ttl`: the same pool, the key expiring soonest first;
- `allkeys-random` / `volatile-random`: a uniformly random key;
- `noeviction` (and a `volatile-*` policy with no key to evict): writes are refused
  while the data is over the limit (`CacheRefused`; reads and deletes still run).

One departure: Redis samples keys from adjacent buckets of its hash table
(`dictGetSomeKeys`); the model samples uniformly, which hashing makes equivalent in
distribution. Nodes of these policies also expire keys actively (`lab/sim/expiry.py`).
"""

from __future__ import annotations

import random
import zlib
from typing import ClassVar

from lab.core import Key, Versioned
from lab.core.errors import CacheRefused
from lab.scenario import Eviction
from lab.sim.expiry import ActiveExpiry
from lab.sim.memory import DICT_MIN_BUCKETS, Accounting, HashTable, RedisMemory
from lab.sim.store import INF, RandomStore, Store
from lab.workload.values import MASK64, mix64

EVPOOL_SIZE = 16
MAXMEMORY_SAMPLES = 5
LFU_INIT_VAL = 5
LFU_LOG_FACTOR = 10
LFU_DECAY_TIME = 1
"""Minutes per decrement of an LFU counter."""
EXACT: frozenset[str] = frozenset({"lru", "fifo", "random"})


class HashedKeys:
    """The keys of one Redis dict, placed in the buckets of its hash table, so samples
    come out as Redis draws them: `dictGetSomeKeys` (a random bucket, then the next
    ones, taking whole chains; a run of empty buckets jumps elsewhere) and
    `dictGetRandomKey` (a random non-empty bucket, then a random key of its chain).
    Keys after empty buckets are sampled more often, keys behind a crowd less; that
    unevenness makes Redis's sampled LRU a little worse than uniform samples would.
    The table's size follows `table` (a `HashTable` the memory accounting grows)."""

    def __init__(self, table: HashTable, seed: int) -> None:
        self.table = table
        self._salt = seed * 0x9E3779B97F4A7C15 & MASK64
        self._size = 0
        self._where: dict[Key, int] = {}  # key -> its hash
        self._chains: dict[int, list[Key]] = {}  # bucket -> keys, the newest first

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: Key) -> bool:
        return key in self._where

    def _hash(self, key: Key) -> int:
        if isinstance(key, int):
            return mix64((key ^ self._salt) & MASK64)
        return mix64(zlib.crc32(key.encode()) ^ self._salt)

    def add(self, key: Key) -> None:
        if key in self._where:
            return
        h = self._where[key] = self._hash(key)
        if self._size:
            self._chains.setdefault(h & (self._size - 1), []).insert(0, key)

    def discard(self, key: Key) -> None:
        h = self._where.pop(key, None)
        if h is None or not self._size:
            return
        bucket = h & (self._size - 1)
        chain = self._chains[bucket]
        chain.remove(key)
        if not chain:
            del self._chains[bucket]

    def chain(self, index: int) -> list[Key]:
        """The keys in bucket `index` (masked to the table), a copy."""
        size = self.fit()
        return list(self._chains.get(index & (size - 1), ()))

    def fit(self) -> int:
        """Re-place the keys if the table has been resized (Redis rehashes incrementally;
        here at once). Returns the number of buckets."""
        size = max(self.table.buckets, DICT_MIN_BUCKETS)
        if size != self._size:
            self._size, mask = size, size - 1
            chains: dict[int, list[Key]] = {}
            for key, h in self._where.items():
                chains.setdefault(h & mask, []).insert(0, key)
            self._chains = chains
        return size

    def sample(self, rng: random.Random, count: int) -> list[Key]:
        """`dictGetSomeKeys`: up to `count` keys from consecutive buckets."""
        count = min(count, len(self._where))
        size = self.fit()
        mask, chains = size - 1, self._chains
        found: list[Key] = []
        seen = 0
        i, empty, steps = rng.getrandbits(64) & mask, 0, count * 10
        while seen < count and steps:
            steps -= 1
            chain = chains.get(i)
            if chain is None:
                empty += 1
                if empty >= 5 and empty > count:
                    i, empty = rng.getrandbits(64) & mask, 0
                    continue
            else:
                empty = 0
                for key in chain:  # reservoir sampling past `count`, as Redis does
                    if seen < count:
                        found.append(key)
                    else:
                        r = rng.getrandbits(64) % (seen + 1)
                        if r < count:
                            found[r] = key
                    seen += 1
            i = (i + 1) & mask
        return found

    def choice(self, rng: random.Random) -> Key:
        """`dictGetRandomKey`: a random non-empty bucket, then a random key in it."""
        size = self.fit()
        chains = self._chains
        while True:
            chain = chains.get(rng.getrandbits(64) & (size - 1))
            if chain is not None:
                return chain[rng.randrange(len(chain))]


class RedisStore(Store):
    """A node under one of Redis's maxmemory policies (see the module docstring)."""

    FLAGS: ClassVar[dict[str, tuple[bool, str]]] = {
        # policy: (samples every key, not only those with a TTL; how keys are chosen)
        "allkeys-lru": (True, "lru"),
        "allkeys-lfu": (True, "lfu"),
        "allkeys-random": (True, "random"),
        "volatile-lru": (False, "lru"),
        "volatile-lfu": (False, "lfu"),
        "volatile-random": (False, "random"),
        "volatile-ttl": (False, "ttl"),
        "noeviction": (True, "none"),
    }

    def __init__(
        self,
        capacity: int | None,
        policy: Eviction,
        seed: int = 0,
        *,
        memory: Accounting | None = None,
        budget: int | None = None,
        samples: int = MAXMEMORY_SAMPLES,
        lfu_log_factor: float = LFU_LOG_FACTOR,
        lfu_decay_time: int = LFU_DECAY_TIME,
    ) -> None:
        super().__init__(capacity, policy, seed, memory=memory, budget=budget)
        self._touch = False
        self.allkeys, self.choose = self.FLAGS[policy]
        self.samples = samples
        self.lfu_log_factor, self.lfu_decay_time = lfu_log_factor, lfu_decay_time
        self._rng = random.Random(seed)
        self._meta: dict[Key, int] = {}
        """Per key: its LRU clock (seconds), or LFU (minutes << 8 | counter), as robj.lru."""
        # the main and the expires dict: their tables grow with the memory accounting's
        self._own_tables = memory is None
        main, expires = (HashTable(), HashTable()) if memory is None else memory.tables
        self.keys = HashedKeys(main, seed)
        self.volatile = HashedKeys(expires, seed + 1)
        self._pool: list[tuple[float, Key]] = []  # ascending score: the right end goes first
        self.expiry = ActiveExpiry(self)

    # --- the commands -------------------------------------------------------------------

    def cron(self, now: float) -> None:
        """`serverCron`'s part for this node: a slow active-expiry cycle."""
        self.expiry.slow(now)

    def expire_if_due(self, key: Key, now: float) -> bool:
        """Delete `key` if its TTL has run out (active expiry's check)."""
        entry = self._data.get(key)
        if entry is None or entry[1] > now:
            return False
        self._expire(key)
        return True

    def get(self, key: Key, now: float) -> Versioned | None:
        self.expiry.fast(now)
        self.make_room(now)
        value = super().get(key, now)  # an expired entry goes through `_expire`
        if value is not None:
            self._access(key, now)
        return value

    def contains(self, key: Key, now: float) -> bool:
        """SET NX's lookup: it counts as an access in Redis (`lookupKeyWrite`)."""
        return self.get(key, now) is not None

    def set(self, key: Key, value: Versioned, ttl: float | None, now: float) -> None:
        self.expiry.fast(now)
        if not self.make_room(now):
            raise CacheRefused(f"OOM command not allowed when used memory > 'maxmemory' ({key})")
        data = self._data
        old = data.get(key)
        if old is not None and old[1] <= now:
            self._expire(key)
            old = None
        if old is None:
            self._meta[key] = self._fresh(now)
        else:
            self._access(key, now)  # lookupKeyWrite; an overwrite keeps LFU, resets LRU
            if self.choose != "lfu":
                self._meta[key] = self._lru_clock(now)
        data[key] = (value, now + ttl if ttl is not None else INF)
        if self.memory is not None:
            self.memory.add(key, value, ttl is not None)  # first: it sizes the tables
        self._track(key, ttl is not None, old is None)

    def delete(self, key: Key) -> bool:
        if key not in self._data:
            return False
        self._remove(key)
        return True

    # --- eviction -----------------------------------------------------------------------

    def over(self) -> bool:
        memory = self.memory
        if memory is not None and memory.used + memory.in_flight > self.budget:
            return True
        return len(self._data) > self.capacity

    def make_room(self, now: float) -> bool:
        """Evict until the data fits (Redis's `performEvictions` before each command);
        False if it cannot (`noeviction`, or no key the policy may evict)."""
        while self.over():
            if self.choose == "none":
                return False
            victim = self._victim(now)
            if victim is None:
                return False
            if self.memory is not None:
                self.evicted.add(self._data[victim][0].size)
            self._remove(victim)
            self.evictions += 1
        return True

    def _track(self, key: Key, ttl: bool, new: bool) -> None:
        """Place a key set now in the main dict (if new) and in the expires dict (if it
        has a TTL; out of it otherwise); grow the tables when no accounting does."""
        keys, volatile = self.keys, self.volatile
        if self._own_tables:
            if new:
                keys.table.before_add(len(keys), INF)
            if ttl and key not in volatile:
                volatile.table.before_add(len(volatile), INF)
        if new:
            keys.add(key)
        if ttl:
            volatile.add(key)
        else:
            volatile.discard(key)

    def _victim(self, now: float) -> Key | None:
        source = self.keys if self.allkeys else self.volatile
        if self.choose == "random":
            return source.choice(self._rng) if len(source) else None
        pool = self._pool
        while len(source):
            self._populate(source, now)
            while pool:
                _, key = pool.pop()
                if key in source:
                    return key
                # a ghost (deleted since it was sampled): try the next one
        return None

    def _populate(self, source: HashedKeys, now: float) -> None:
        """`evictionPoolPopulate`: merge a sample into the sorted 16-entry pool."""
        pool = self._pool
        for key in source.sample(self._rng, self.samples):
            score = self._score(key, now)
            k = 0
            while k < len(pool) and pool[k][0] < score:
                k += 1
            if len(pool) < EVPOOL_SIZE:
                pool.insert(k, (score, key))
            elif k > 0:  # full: drop the best entry, keep the order
                del pool[0]
                pool.insert(k - 1, (score, key))

    def _score(self, key: Key, now: float) -> float:
        """Higher goes first: idle time, 255 - LFU counter, or how soon it expires."""
        if self.choose == "lru":
            return (self._lru_clock(now) - self._meta[key]) * 1000.0
        if self.choose == "lfu":
            return 255.0 - self._lfu_decayed(self._meta[key], now)
        return -self._data[key][1]

    # --- LRU clock and LFU counter ----------------------------------------------------------

    @staticmethod
    def _lru_clock(now: float) -> int:
        return int(now)  # LRU_CLOCK_RESOLUTION: one second

    def _fresh(self, now: float) -> int:
        if self.choose == "lfu":
            return (int(now // 60) << 8) | LFU_INIT_VAL
        return self._lru_clock(now)

    def _lfu_decayed(self, meta: int, now: float) -> int:
        counter = meta & 255
        if self.lfu_decay_time:
            periods = (int(now // 60) - (meta >> 8)) // self.lfu_decay_time
            counter = 0 if periods > counter else counter - periods
        return counter

    def _access(self, key: Key, now: float) -> None:
        if self.choose != "lfu":
            self._meta[key] = self._lru_clock(now)
            return
        counter = self._lfu_decayed(self._meta[key], now)
        if counter < 255:
            base = max(0, counter - LFU_INIT_VAL)
            if self._rng.random() < 1.0 / (base * self.lfu_log_factor + 1):
                counter += 1
        self._meta[key] = (int(now // 60) << 8) | counter

    # --- bookkeeping --------------------------------------------------------------------

    def _remove(self, key: Key) -> None:
        del self._data[key]
        self._meta.pop(key, None)
        keys, volatile = self.keys, self.volatile
        keys.discard(key)
        volatile.discard(key)
        if self.memory is not None:
            self.memory.remove(key)
        elif self._own_tables:
            keys.table.after_remove(len(keys))
            volatile.table.after_remove(len(volatile))

    def _expire(self, key: Key) -> None:
        self._remove(key)
        self.expirations += 1


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
    if policy not in EXACT:
        return RedisStore(capacity, policy, seed, memory=accounting, budget=budget)
    if policy == "random":
        return RandomStore(capacity, policy, seed, memory=accounting, budget=budget)
    return Store(capacity, policy, seed, memory=accounting, budget=budget)
