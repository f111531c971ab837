"""The article's "Redis vs Memcached" table, with measured rows instead of assertions.

Rows, each measured on servers the lab starts on this machine:
- hit ratio at the same memory (`maxmemory` / `-m`) with mixed value sizes: one key
  stream (zipf, sizes drawn per key) replayed as cache-aside into each server
  (`lab.memcached.replay`), and into the simulator's slab model;
- memory per key: what each server reports for that stream (Redis `used_memory`
  over its empty baseline; memcached item bytes and slab pages taken), per key held;
- cache operation p50/p99 and throughput at 1 and 50 closed-loop clients, and with
  memcached threads 1 vs 4: lab runs of `scenarios/redis-vs-memcached.yaml`;
- what each backend supports: its declared capabilities (`Backend.capabilities`) and
  what its `refusal` says of a scenario asking for replication or a server-side cluster.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

from lab import backends
from lab.core.capabilities import Capability
from lab.memcached.binaries import find_memcached
from lab.memcached.control import stats as memcached_stats
from lab.memcached.replay import Replay, replay_model, replay_real, stream
from lab.memcached.server import Options, start_memcached
from lab.processes.errors import ServerNotFound
from lab.redis.binaries import find_server_binary
from lab.redis.server import start_server
from lab.runner import run_cell
from lab.scenario import Cell, Scenario, parse_scenario

SECTION = "## Redis vs Memcached (the article's table, measured)"
END = "<!-- end redis-vs-memcached -->"
ARTICLE = {
    "Data structures": ("Rich (lists, sets, hashes)", "Simple key-value"),
    "Persistence": ("Optional", "None"),
    "Clustering": ("Built-in", "Client-side"),
    "Memory efficiency": ("Good", "Excellent"),
    "Pub/Sub": ("Yes", "No"),
}
"""The seed article's table, as it states it."""


@dataclass
class Measured:
    """Everything the table shows, JSON-able."""

    machine: str
    memory_mib: int
    sizes: list[int]
    keys: int
    requests: int
    hit_ratio: dict[str, float] = field(default_factory=dict)
    memory_per_key: dict[str, float] = field(default_factory=dict)
    speed: dict[str, dict[str, float]] = field(default_factory=dict)
    capabilities: dict[str, dict[str, str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    rounds: int = 0
    """Runs per speed row (the median is shown)."""


def available() -> str | None:
    """Why the comparison cannot run here (None: both servers exist)."""
    try:
        find_memcached()
        find_server_binary()
    except ServerNotFound as exc:
        return str(exc)
    return None


# -- capabilities ------------------------------------------------------------------


def _probe(topology: dict[str, Any]) -> Scenario:
    return parse_scenario(
        {
            "name": "probe",
            "requests": 10,
            "topology": topology,
            "strategies": {"s": {"read": "cache-aside", "write": "invalidate"}},
        },
        "probe",
    )


def capabilities() -> dict[str, dict[str, str]]:
    """Per row, per backend: yes, or no with the reason its refusal gives."""
    rows: dict[str, dict[str, str]] = {}
    for capability in Capability:
        rows[f"capability: {capability.value}"] = {
            name: "yes" if capability in backends.load(name).capabilities else "no"
            for name in ("redis", "memcached")
        }
    probes: dict[str, dict[str, Any]] = {
        "server-side replication": {"replicas": 1, "sharding": "slots"},
        "server-side cluster (hash slots)": {"sharding": "slots"},
        "client-side ketama sharding": {"nodes": 2, "sharding": "ketama"},
    }
    for row, topology in probes.items():
        scenario = _probe(topology)
        cell = Cell("probe", "s", "redis", 1)
        rows[row] = {}
        for name in ("redis", "memcached"):
            refusal = backends.create(name).refusal(scenario, cell)
            rows[row][name] = "yes" if refusal is None else f"no ({refusal})"
    return rows


# -- memory ------------------------------------------------------------------------


def _replay_redis(memory_mib: int, ids: np.ndarray, sizes: np.ndarray) -> tuple[float, float]:
    """Hit ratio and used_memory per key of Redis with maxmemory = `memory_mib`."""
    server = start_server(maxmemory=f"{memory_mib}mb", maxmemory_policy="allkeys-lru")
    try:
        client = redis.Redis(host=server.host, port=server.port)
        base = int(client.info("memory")["used_memory"])
        start, hits = len(ids) // 2, 0
        values = {int(s): b"x" * int(s) for s in np.unique(sizes)}
        for i, key in enumerate(ids.tolist()):
            name = b"key:%d" % key
            if client.get(name) is not None:
                hits += i >= start
            else:
                client.set(name, values[int(sizes[key])])
        used, held = int(client.info("memory")["used_memory"]), int(client.dbsize())
        client.close()
    finally:
        server.stop()
    return hits / (len(ids) - start), (used - base) / max(held, 1)


def memory_rows(measured: Measured, seed: int = 1) -> None:
    """Hit ratio at the same memory with mixed sizes, and memory per key, on both."""
    ids, sizes = stream(measured.keys, measured.requests, seed, sizes=tuple(measured.sizes))
    memory = measured.memory_mib
    with start_memcached(Options(memory_mib=memory, threads=4)) as server:
        real: Replay = replay_real(server.address, ids, sizes, warmup=0.5)
        slabs = memcached_stats(server.address, "slabs")
    model = replay_model(ids, sizes, real.times, 0.5, memory=memory << 20)
    redis_hits, redis_per_key = _replay_redis(memory, ids, sizes)
    measured.hit_ratio = {
        "redis": redis_hits,
        "memcached": real.hit_ratio,
        "memcached (simulated)": model.hit_ratio,
    }
    measured.memory_per_key = {
        "redis": redis_per_key,
        "memcached (item bytes)": real.bytes / max(real.items, 1),
        "memcached (slab pages)": int(slabs["total_malloced"]) / max(real.items, 1),
    }


# -- speed -------------------------------------------------------------------------

VARIANTS: dict[str, tuple[str, int | None, int]] = {
    "redis, 1000 req/s offered": ("redis", None, 4),
    "memcached -t 4, 1000 req/s offered": ("memcached", None, 4),
    "redis, 1 client": ("redis", 1, 4),
    "redis, 50 clients": ("redis", 50, 4),
    "memcached -t 4, 1 client": ("memcached", 1, 4),
    "memcached -t 4, 50 clients": ("memcached", 50, 4),
    "memcached -t 1, 50 clients": ("memcached", 50, 1),
}
"""Row label -> (backend, closed-loop clients or None: the scenario's open loop, memcached
threads)."""


def variant(scenario: Scenario, clients: int | None, threads: int) -> Scenario:
    """The scenario with `clients` closed-loop clients and memcached `-t threads`."""
    data = scenario.model_dump(mode="json", exclude_unset=True)
    if clients is not None:
        data["workload"]["arrivals"] = {"process": "closed", "clients": clients}
    topology = data.setdefault("topology", {})
    topology["memcached"] = {**topology.get("memcached", {}), "threads": threads}
    return parse_scenario(data, scenario.name)


def speed_rows(
    measured: Measured,
    scenario: Scenario,
    strategy: str = "cache-aside",
    rounds: int = 1,
    progress: Callable[[str], None] | None = None,
) -> None:
    """Each variant `rounds` times, interleaved (a machine that gets busier or quieter
    moves every row alike); the median of each figure."""
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in VARIANTS}
    for n in range(rounds):
        for label, (backend, clients, threads) in VARIANTS.items():
            if progress is not None:
                progress(f"{label} (round {n + 1} of {rounds})")
            summary = run_cell(
                variant(scenario, clients, threads), Cell(scenario.name, strategy, backend, 1)
            ).summary
            runs[label].append(
                {
                    "throughput": float(summary["throughput"]),
                    "op_p50": float(summary["cache_op_p50"] or 0.0),
                    "op_p99": float(summary["cache_op_p99"] or 0.0),
                    "hit_ratio": float(summary["hit_ratio"]),
                }
            )
    for label, samples in runs.items():
        measured.speed[label] = {k: statistics.median(r[k] for r in samples) for k in samples[0]}
    measured.rounds = rounds


# -- the table ---------------------------------------------------------------------


def measure(
    scenario: Scenario, *, quick: bool = False, log: Callable[[str], None] = print
) -> Measured:
    """Every row (a few minutes of wall time; `quick`: fewer requests, shorter runs)."""
    measured = Measured(
        machine=f"{os.cpu_count()} cores",
        memory_mib=8,
        sizes=[100, 1000, 4000],
        keys=30_000,
        requests=40_000 if quick else 150_000,
    )
    measured.capabilities = capabilities()
    why = available()
    if why is not None:
        measured.skipped.append(why)
        return measured
    log("hit ratio and memory per key at the same memory")
    memory_rows(measured)
    if quick:
        data = scenario.model_dump(mode="json", exclude_unset=True)
        data.update(duration=2.0, warmup=0.5)
        scenario = parse_scenario(data, scenario.name)
    rounds = 1 if quick else 3
    speed_rows(measured, scenario, rounds=rounds, progress=lambda label: log(f"run: {label}"))
    return measured


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def markdown(measured: Measured) -> str:
    """The section REPORT.md gets."""
    lines = [SECTION, ""]
    if measured.skipped:
        lines += [f"Measured rows skipped: {'; '.join(measured.skipped)}", ""]
    lines += ["| Feature | Redis | Memcached | measured here |", "|---|---|---|---|"]
    caps = measured.capabilities
    evidence = {
        "Data structures": "capability: incr, set_if_equal (memcached: incr, cas)",
        "Clustering": "server-side cluster (hash slots)",
        "Pub/Sub": "capability: pubsub",
    }
    for feature, (r, m) in ARTICLE.items():
        row = evidence.get(feature)
        shown = (
            f"{row}: redis {caps[row]['redis'].split(' (')[0]}, "
            f"memcached {caps[row]['memcached'].split(' (')[0]}"
            if row in caps
            else (row or "")
        )
        lines.append(f"| {feature} (article) | {r} | {m} | {shown} |")
    lines += _measured_rows(measured)
    for row, values in caps.items():
        lines.append(f"| {row} | {values['redis']} | {values['memcached']} | declared |")
    lines += ["", _notes(measured), "", END, ""]
    return "\n".join(lines)


def _measured_rows(measured: Measured) -> list[str]:
    rows: list[str] = []
    hit, mem = measured.hit_ratio, measured.memory_per_key
    if hit:
        sizes = "/".join(str(s) for s in measured.sizes)
        rows.append(
            f"| hit ratio, {measured.memory_mib} MiB, values {sizes} B | "
            f"{hit['redis']:.4f} | {hit['memcached']:.4f} "
            f"(simulated: {hit['memcached (simulated)']:.4f}) | replayed stream |"
        )
        rows.append(
            f"| memory per key | {mem['redis']:.0f} B | {mem['memcached (item bytes)']:.0f} B "
            f"item, {mem['memcached (slab pages)']:.0f} B of slab pages | same stream |"
        )
    for label, values in measured.speed.items():
        backend = "redis" if label.startswith("redis") else "memcached"
        text = (
            f"{values['throughput']:,.0f} req/s, op p50 {_ms(values['op_p50'])}, "
            f"p99 {_ms(values['op_p99'])}"
        )
        cells = (text, "") if backend == "redis" else ("", text)
        rows.append(f"| {label} | {cells[0]} | {cells[1]} | lab run, cache-aside |")
    return rows


def _notes(measured: Measured) -> str:
    return (
        f"Measured on {measured.machine} shared with the load generator (the lab's Python "
        "client: throughput is the client's ceiling as much as the server's); speed rows: "
        f"median of {measured.rounds} interleaved run(s) each. Hit ratio: "
        f"{measured.requests:,} requests over {measured.keys:,} zipf(0.9) keys, second half "
        "measured, Redis allkeys-lru with maxmemory, memcached -m (slab_automove off: "
        "calcification). Redis used_memory counts its own overhead above the empty "
        "server; memcached's -m counts only slab pages."
    )


def write(measured: Measured, results: Path) -> Path:
    """results/redis-vs-memcached/COMPARISON.md and .json; the section replaced in (or
    added to) results/REPORT.md."""
    folder = results / "redis-vs-memcached"
    folder.mkdir(parents=True, exist_ok=True)
    text = markdown(measured)
    (folder / "COMPARISON.md").write_text(text)
    (folder / "comparison.json").write_text(json.dumps(asdict(measured), indent=1))
    report = results / "REPORT.md"
    old = report.read_text() if report.exists() else ""
    if SECTION in old:
        before, _, rest = old.partition(SECTION)
        after = rest.partition(END)[2]
        old = before.rstrip() + "\n\n" + after.lstrip()
    tmp = report.with_name(f".REPORT.md.tmp-{os.getpid()}-{time.time_ns()}")
    tmp.write_text(old.rstrip() + "\n\n" + text)
    tmp.replace(report)
    return report
