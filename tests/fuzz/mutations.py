"""Valid scenario documents, and the ways a careless user or script breaks them.

`BASES` are small valid documents touching most fields (every strategy part,
faults, closed and open loops). A mutation replaces one field's value with a
hostile one, deletes it, adds a misspelt neighbour, repeats a list entry or
renames a strategy; `generated_corpus` makes a fixed sample of them for the
regression corpus and tests/fuzz/test_fuzz.py draws more with hypothesis.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from typing import Any

import yaml

from tests.fuzz.harness import FUZZ_LIMITS

Path_ = tuple[str | int, ...]

OPEN: dict[str, Any] = {
    "name": "fuzz-open",
    "description": "open loop, every part",
    "seeds": [1, 2],
    "requests": 400,
    "warmup": "50ms",
    "keyspace": {"keys": 500, "value_size": "1KiB"},
    "workload": {
        "mix": {"read": 0.9, "write": 0.1},
        "keys": {"distribution": "zipf", "s": 0.99},
        "arrivals": {"process": "poisson", "rate": "2000/s"},
        "instances": 2,
    },
    "topology": {
        "nodes": 2,
        "sharding": "ketama",
        "capacity": "100 keys",
        "eviction": "lru",
        "network": {"rtt": {"distribution": "lognormal", "median": "0.3ms", "p99": "2ms"}},
        "service_time": {"distribution": "exponential", "mean": "20us"},
        "bus": {"delay": {"distribution": "constant", "value": "1ms"}, "loss": 0.0},
        "replicas": 1,
    },
    "origin": {
        "read_latency": {"distribution": "lognormal", "median": "5ms", "p99": "40ms"},
        "write_latency": {"distribution": "uniform", "low": "5ms", "high": "10ms"},
        "concurrency": 16,
    },
    "strategies": {
        "aside": {"read": "cache-aside", "write": "invalidate", "ttl": "1m"},
        "locked": {
            "read": "cache-aside",
            "write": "invalidate",
            "ttl": "1s",
            "stampede": {"lock": {"expiry": "1s", "poll": "5ms", "wait": "1s"}},
            "client": {"timeout": "100ms", "retries": 1, "backoff": "10ms"},
        },
        "behind": {
            "read": "cache-aside",
            "write": "behind",
            "ttl": "5m",
            "fill": "add",
            "flush": {"interval": "100ms", "batch": 20},
        },
        "near": {
            "read": "refresh-ahead",
            "write": "update",
            "ttl": "2s",
            "refresh": {"window": 0.2},
            "near": {"capacity": 50, "ttl": "1s", "invalidate": "bus", "loss": 0.1},
        },
    },
    "faults": [
        {"kind": "node_crash", "node": 1, "at": "50ms", "duration": "20ms"},
        {"kind": "origin_slow", "at": "20ms", "duration": "30ms", "factor": 3},
        {"kind": "failover", "node": 0, "at": "100ms", "duration": "20ms"},
    ],
    "backends": ["sim"],
    "metrics": {"interval": "20ms"},
    "limits": FUZZ_LIMITS,
}

CLOSED: dict[str, Any] = {
    "name": "fuzz-closed",
    "duration": "200ms",
    "keyspace": {"keys": 200},
    "workload": {
        "preset": "ycsb-b",
        "arrivals": {"process": "closed", "clients": 8, "think": "1ms"},
    },
    "topology": {"nodes": 3, "sharding": "slots"},
    "strategies": {
        "lease": {
            "read": "cache-aside",
            "write": "invalidate",
            "ttl": "1s",
            "stampede": {"lease": {"stale": True}},
        },
        "versioned": {"read": "versioned", "write": "bump", "namespace": 10},
        "through": {"read": "read-through", "write": "through", "ttl": "1s"},
    },
    "faults": [{"kind": "partition", "node": 2, "at": "50ms", "duration": "50ms", "mode": "hang"}],
    "limits": FUZZ_LIMITS,
}

BASES = [OPEN, CLOSED]

HOSTILE: list[Any] = [
    -1,
    0,
    1,
    3,
    2**31,
    2**63,
    10**15,
    10**50,
    0.5,
    -0.25,
    1e-300,
    1e300,
    float("inf"),
    float("nan"),
    True,
    None,
    "",
    " ",
    "x" * 3000,
    "a\nb",
    "a\x00b",
    "a/b",
    "..",
    "\u202e",
    "é" * 60,
    "1ns",
    "-1s",
    "1000000000000s",
    "1000000000000/s",
    "1e-9/s",
    "1000000GiB",
    "64MiB",
    "10k keys",
    "5 parsecs",
    "2001-12-14",
    [],
    [1, 1],
    ["sim", "sim"],
    {},
    {"kind": "node_crash"},
    {"distribution": "constant", "value": 0},
    {"distribution": "lognormal", "median": "1h", "p99": "1000000h"},
    [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]],
]


def paths(node: Any, prefix: Path_ = ()) -> Iterator[Path_]:
    """Every field and list entry of a document, outermost first."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*prefix, key)
            yield from paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield (*prefix, i)
            yield from paths(value, (*prefix, i))


def _parent(doc: Any, path: Path_) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def replace(doc: dict[str, Any], path: Path_, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    _parent(out, path)[path[-1]] = copy.deepcopy(value)
    return out


def delete(doc: dict[str, Any], path: Path_) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    del _parent(out, path)[path[-1]]
    return out


def misspell(doc: dict[str, Any], path: Path_) -> dict[str, Any]:
    """A neighbour of the field with a typo (kept only where the parent is a mapping)."""
    out = copy.deepcopy(doc)
    parent = _parent(out, path)
    if isinstance(parent, dict) and isinstance(path[-1], str):
        parent[path[-1] + "s"] = parent[path[-1]]
    return out


def repeat(doc: dict[str, Any], path: Path_) -> dict[str, Any]:
    """The list at `path` with its first entry twice."""
    out = copy.deepcopy(doc)
    target = _parent(out, path)[path[-1]]
    if isinstance(target, list) and target:
        target.append(copy.deepcopy(target[0]))
    return out


def rename_strategy(doc: dict[str, Any], name: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    first = next(iter(out["strategies"]))
    out["strategies"] = {name if k == first else k: v for k, v in out["strategies"].items()}
    return out


def dump(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=False, width=10_000)


def generated_corpus(count: int, seed: int = 16) -> list[tuple[str, str]]:
    """`count` (name, YAML text) mutations of the bases, the same every time."""
    rng = random.Random(seed)
    cases: list[tuple[str, str]] = []
    for i in range(count):
        base = BASES[i % len(BASES)]
        path = rng.choice(list(paths(base)))
        kind = rng.choice(["replace"] * 6 + ["delete", "misspell", "repeat", "rename"])
        label = ".".join(str(p) for p in path)
        if kind == "replace":
            value = rng.choice(HOSTILE)
            doc = replace(base, path, value)
            label += f"={str(value)[:12]}"
        elif kind == "delete":
            doc = delete(base, path)
            label = f"del-{label}"
        elif kind == "misspell":
            doc = misspell(base, path)
            label = f"typo-{label}"
        elif kind == "repeat":
            doc = repeat(base, path)
            label = f"twice-{label}"
        else:
            name = rng.choice([v for v in HOSTILE if isinstance(v, str)])
            doc = rename_strategy(base, name)
            label = f"strategy-name={name[:12]}"
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in label)[:60]
        cases.append((f"gen-{i:03d}-{safe}.yaml", dump(doc)))
    return cases
