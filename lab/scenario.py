"""Scenario files: YAML -> typed, validated models, and matrix expansion.

Unknown fields are errors (a typo must never be silently ignored), human units
are accepted everywhere a time, size or rate is expected, and every problem is
reported as one line naming the file, the field and the fix.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from lab import backends, bounded_yaml
from lab.core.units import (
    Duration,
    Fraction,
    KeyCount,
    PositiveDuration,
    Rate,
    Size,
    is_size_text,
    parse_key_count,
    parse_size,
)
from lab.names import check_name, one_line, short_repr
from lab.patterns import StrategySpec as StrategySpec
from lab.patterns.resilience import ClientSpec as ClientSpec
from lab.sweep.points import Point, Refused, SweepError, expand, value_at
from lab.sweep.spec import Sweep
from lab.tracefile.replay_spec import TraceReplay

BackendName = Annotated[str, AfterValidator(backends.check)]
"""A name from the backend registry (`lab/backends.py`)."""


class ScenarioError(Exception):
    """A scenario that cannot be loaded; the message is one line naming file and field
    (whatever the input quoted in it: control characters are escaped, length capped)."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


def _number_types(annotation: Any) -> set[Any]:
    """The plain types a field takes, through Annotated, Optional/unions and lists."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _number_types(typing.get_args(annotation)[0])
    if origin is not None:  # a union, list[...], dict[...]
        return set().union(*(_number_types(a) for a in typing.get_args(annotation)))
    return {annotation}


def _takes_numbers_only(annotation: Any) -> bool:
    """Whether a field holds numbers (possibly optional, or a list of them), never booleans."""
    types = _number_types(annotation)
    return bool(types & {int, float}) and bool not in types


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_as_numbers(cls, data: Any) -> Any:
        """YAML's `true` is not 1: a boolean where a number goes is a mistake."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name) if isinstance(name, str) else None
                values = value if isinstance(value, list) else [value]
                if (
                    any(isinstance(v, bool) for v in values)
                    and field is not None
                    and _takes_numbers_only(field.annotation)
                ):
                    raise ValueError(f"{name}: expected a number, got {value!r}")
        return data


# --- distributions ---------------------------------------------------------------------------

_DIST_PARAMS: dict[str, tuple[str, ...]] = {
    "constant": ("value",),
    "exponential": ("mean",),
    "lognormal": ("median", "p99"),
    "uniform": ("low", "high"),
}


def _check_params(spec: Any, what: str) -> None:
    """A distribution's parameters: those of its kind given, no others, and in order."""
    needed = _DIST_PARAMS[spec.distribution]
    for name in needed:
        if getattr(spec, name) is None:
            raise ValueError(f"a {spec.distribution} {what} needs {' and '.join(needed)}")
    for name in {"value", "mean", "median", "p99", "low", "high"} - set(needed):
        if getattr(spec, name) is not None:
            raise ValueError(
                f"{name!r} does not apply to a {spec.distribution} {what} "
                f"(it takes {', '.join(needed)})"
            )
    if spec.median is not None and spec.p99 is not None and spec.p99 <= spec.median:
        raise ValueError("lognormal p99 must be larger than its median")
    if spec.low is not None and spec.high is not None and spec.high < spec.low:
        raise ValueError("uniform high must be >= low")


class Distribution(_Model):
    """A latency distribution. Constants exist for exact tests; real runs want spread."""

    distribution: Literal["constant", "exponential", "lognormal", "uniform"]
    value: Duration | None = None
    mean: PositiveDuration | None = None
    median: PositiveDuration | None = None
    p99: PositiveDuration | None = None
    low: Duration | None = None
    high: Duration | None = None

    @model_validator(mode="after")
    def _params_match_kind(self) -> Distribution:
        _check_params(self, "distribution")
        return self

    @property
    def mean_value(self) -> float:
        """The distribution's mean in seconds (for theory checks and reports)."""
        if self.distribution == "constant":
            return float(self.value or 0.0)
        if self.distribution == "exponential":
            return float(self.mean or 0.0)
        if self.distribution == "uniform":
            return (float(self.low or 0.0) + float(self.high or 0.0)) / 2
        assert self.median is not None and self.p99 is not None
        sigma = lognormal_sigma(self.median, self.p99)
        return self.median * math.exp(sigma * sigma / 2)


_Z99 = 2.3263478740408408


def lognormal_sigma(median: float, p99: float) -> float:
    """The sigma of a lognormal whose median and 99th percentile are given."""
    return math.log(p99 / median) / _Z99


def _exp(mean: str) -> dict[str, Any]:
    return {"distribution": "exponential", "mean": mean}


def _think_time(value: object) -> object:
    """`think: 1ms` means exponentially distributed think time with that mean."""
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return (
            {"distribution": "exponential", "mean": value}
            if value
            else {
                "distribution": "constant",
                "value": 0,
            }
        )
    return value


# --- workload --------------------------------------------------------------------------------


class ValueSizeSpec(_Model):
    """Value sizes that differ per key: each key's size is drawn once from this
    distribution (fixed for a seed, the same on every backend; `lab/workload/values.py`),
    rounded to whole bytes and kept within `min`..`max`."""

    distribution: Literal["constant", "exponential", "lognormal", "uniform"]
    value: Size | None = None
    mean: Size | None = None
    median: Size | None = None
    p99: Size | None = None
    low: Size | None = None
    high: Size | None = None
    min: Size = 1
    max: Size = 512 * 1024**2

    @model_validator(mode="after")
    def _params_match_kind(self) -> ValueSizeSpec:
        _check_params(self, "value size")
        if self.max < self.min:
            raise ValueError(f"max ({self.max} B) must be >= min ({self.min} B)")
        if self.max > MAX_VALUE_SIZE:
            raise ValueError("max: at most 512MiB per value (the most Redis stores in one value)")
        return self

    @property
    def mean_size(self) -> float:
        """The mean size in bytes before clamping (for estimates)."""
        if self.distribution == "constant":
            return float(self.value or 0)
        if self.distribution == "exponential":
            return float(self.mean or 0)
        if self.distribution == "uniform":
            return (float(self.low or 0) + float(self.high or 0)) / 2
        assert self.median is not None and self.p99 is not None
        sigma = lognormal_sigma(self.median, self.p99)
        return min(float(self.max), self.median * math.exp(sigma * sigma / 2))


def _value_size(value: object) -> object:
    """A size (`1KiB`, 1024) or a distribution of sizes (a mapping)."""
    return value if isinstance(value, dict | ValueSizeSpec) else parse_size(value)


def _size_or_distribution(value: object) -> str:
    return "distribution" if isinstance(value, dict | ValueSizeSpec) else "bytes"


ValueSize = Annotated[
    Annotated[Annotated[int, Field(gt=0)], Tag("bytes")]
    | Annotated[ValueSizeSpec, Tag("distribution")],
    Discriminator(_size_or_distribution),
    BeforeValidator(_value_size),
]
"""`keyspace.value_size`: bytes for every value, or a `ValueSizeSpec` drawn per key."""


def _smallest_value(spec: int | ValueSizeSpec) -> int:
    """The smallest value size `spec` can give, in bytes."""
    if isinstance(spec, int):
        return spec
    if spec.distribution == "constant" and spec.value is not None:
        return min(max(spec.value, spec.min), spec.max)
    if spec.distribution == "uniform" and spec.low is not None:
        return min(max(spec.low, spec.min), spec.max)
    return spec.min


class Keyspace(_Model):
    keys: KeyCount = 10_000
    value_size: ValueSize = 1024


class Mix(_Model):
    """Read and write shares; give either one (the other is the rest) or both."""

    read: Fraction | None = None
    write: Fraction | None = None

    @model_validator(mode="after")
    def _sums_to_one(self) -> Mix:
        if self.read is None and self.write is None:
            object.__setattr__(self, "read", 0.95)
        if self.write is None:
            assert self.read is not None
            object.__setattr__(self, "write", round(1.0 - self.read, 12))
        elif self.read is None:
            object.__setattr__(self, "read", round(1.0 - self.write, 12))
        elif abs(self.read + self.write - 1.0) > 1e-9:
            raise ValueError(
                f"read + write must be 1, got {self.read} + {self.write}; "
                "give one of them or make them add up"
            )
        return self

    @property
    def write_fraction(self) -> float:
        assert self.write is not None  # filled in by the validator
        return self.write


class KeyChooser(_Model):
    """Which key each request touches (YCSB's generators)."""

    distribution: Literal["uniform", "zipf", "hotspot", "latest"] = "zipf"
    s: Annotated[float, Field(ge=0, le=5)] = 0.99
    hot_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.2
    hot_share: Fraction = 0.8

    @model_validator(mode="after")
    def _params_match_distribution(self) -> KeyChooser:
        applies = {
            "uniform": set(),
            "zipf": {"s"},
            "latest": {"s"},
            "hotspot": {"hot_fraction", "hot_share"},
        }[self.distribution]
        stray = sorted(self.model_fields_set - applies - {"distribution"})
        if stray:
            takes = ", ".join(sorted(applies)) or "no parameters"
            raise ValueError(
                f"{stray[0]!r} does not apply to the {self.distribution} distribution "
                f"(it takes {takes})"
            )
        return self


class Arrivals(_Model):
    """Open loop (Poisson at a rate) or closed loop (clients with think time)."""

    process: Literal["poisson", "closed"] = "poisson"
    rate: Rate | None = None
    clients: Annotated[int, Field(ge=1)] | None = None
    think: Annotated[Distribution | None, BeforeValidator(_think_time)] = None

    @model_validator(mode="after")
    def _fields_match_process(self) -> Arrivals:
        if self.process == "poisson":
            if self.rate is None:
                raise ValueError("poisson arrivals need a rate, for example rate: 5000/s")
            if self.clients is not None or self.think is not None:
                raise ValueError("clients/think apply to process: closed, not to poisson arrivals")
        else:
            if self.clients is None:
                raise ValueError("closed-loop arrivals need clients, for example clients: 50")
            if self.rate is not None:
                raise ValueError("rate applies to process: poisson, not to closed loop")
        return self


class Workload(_Model):
    """The request stream; `preset: ycsb-a|b|c|d` fills in YCSB's mix and key distribution."""

    mix: Mix = Mix()
    keys: KeyChooser = KeyChooser()
    arrivals: Arrivals = Arrivals(rate=1000.0)
    instances: Annotated[int, Field(ge=1)] = 1
    trace: TraceReplay | None = None
    """A recorded trace as the request stream (docs/traces.md): its ops and keys replace
    mix and keys; at a speed its times replace arrivals."""

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        from lab.workload.ycsb import expand

        return expand(data) if isinstance(data, dict) else data

    def trace_conflict(self) -> str | None:
        """What a trace replay leaves no room for, as `field: problem` (None if nothing)."""
        if self.trace is None:
            return None
        for name in ("mix", "keys"):
            if name in self.model_fields_set:
                return (
                    f"workload.{name}: does not apply to a trace replay (the trace's keys and "
                    "ops are the requests); remove it (or the preset)"
                )
        if self.trace.timed and "arrivals" in self.model_fields_set:
            return (
                f"workload.arrivals: the trace's times drive the arrivals at speed "
                f"{self.trace.speed}; remove arrivals, or replay with speed: order-only under them"
            )
        return None

    @property
    def rate(self) -> float | None:
        """The Poisson arrival rate, None when the arrivals are not Poisson at a rate
        (a closed loop, or a trace replayed at its own times)."""
        return None if self.trace is not None and self.trace.timed else self.arrivals.rate


# --- topology and origin ---------------------------------------------------------------------


class Network(_Model):
    rtt: Distribution = Distribution(distribution="lognormal", median=0.0003, p99=0.002)


class BusSpec(_Model):
    """The pub/sub bus between app instances (Redis pub/sub: at most once)."""

    delay: Distribution = Distribution(distribution="lognormal", median=0.0005, p99=0.005)
    loss: Fraction = 0.0


class MemcachedSpec(_Model):
    """Each memcached node's settings (its command line; docs/memcached.md)."""

    memory: Size = 64 << 20
    """`-m`: the slab memory of one node, in whole MiB."""
    threads: Annotated[int, Field(ge=1, le=64)] = 4
    growth_factor: Annotated[float, Field(gt=1.0, le=4.0)] = 1.25
    """`-f`: each slab class's chunk size is the previous one's times this."""
    min_chunk: Annotated[int, Field(ge=8, le=4096)] = 48
    """`-n`: the smallest item's key + value + flags space, in bytes."""
    slab_automove: bool = False
    """memcached's default is on; off, pages stay with the class that took them first."""
    bus: Literal["none", "redis"] = "none"
    """Pub/sub for near caches: memcached has none (a bus strategy is skipped), or a
    Redis server the lab starts beside the memcached nodes carries it."""

    @field_validator("memory")
    @classmethod
    def _whole_mib(cls, value: int) -> int:
        if value % (1 << 20):
            raise ValueError("must be a whole number of MiB (memcached -m), e.g. 64MiB")
        return value


class ByteBudget(_Model):
    """A capacity in bytes of data memory, as Redis counts it (`lab/sim/memory.py`)."""

    bytes: Size


def _capacity(value: object) -> object:
    """`2000`, `'2000 keys'` (keys) or `64MiB` (bytes of data memory)."""
    if value is None or isinstance(value, dict | ByteBudget):
        return value
    if is_size_text(value):
        return {"bytes": parse_size(value)}
    try:
        return parse_key_count(value)
    except ValueError:
        raise ValueError(
            f"expected a key count such as 10000 or '10000 keys', or bytes of data memory "
            f"such as 64MiB, got {short_repr(value)}"
        ) from None


def _keys_or_bytes(value: object) -> str:
    return "bytes" if isinstance(value, dict | ByteBudget) else "keys"


Capacity = Annotated[
    Annotated[Annotated[int, Field(gt=0)], Tag("keys")] | Annotated[ByteBudget, Tag("bytes")],
    Discriminator(_keys_or_bytes),
    BeforeValidator(_capacity),
]
"""`topology.capacity` per node: a key count, or a `ByteBudget` of data memory."""

Eviction = Literal[
    "lru",
    "fifo",
    "random",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
    "noeviction",
    "memcached-slru",
]
"""`lru` is exact LRU (for theory checks); the hyphenated names are Redis's policies,
modelled as Redis implements them (`lab/sim/eviction.py`); `memcached-slru` is
memcached's slab allocator and segmented LRU (`lab/slabs.py`), sized by
`topology.memcached.memory`."""


class Topology(_Model):
    nodes: Annotated[int, Field(ge=1, le=1024)] = 1
    sharding: Literal["ketama", "slots", "modulo"] = "ketama"
    capacity: Capacity | None = None
    eviction: Eviction = "lru"
    memcached: MemcachedSpec | None = None
    """The memcached backend's node settings (default: MemcachedSpec())."""
    memory_model: Literal["redis7", "valkey9"] | None = None
    """How the simulator counts an entry's bytes (docs/memory.md): Redis 7.0's formula
    (the default) or Valkey 9's (glibc malloc); set it to the server compared against."""
    network: Network = Network()
    service_time: Distribution = Distribution(distribution="exponential", mean=0.00002)
    bus: BusSpec = BusSpec()
    replicas: Annotated[int, Field(ge=0, le=1)] = 0
    replication_lag: Distribution = Distribution(distribution="lognormal", median=0.001, p99=0.02)

    @property
    def refuses_writes(self) -> bool:
        """A full node may refuse writes (OOM): `noeviction`, or a `volatile-*` policy
        with no key that has a TTL left to evict."""
        return self.capacity is not None and (
            self.eviction == "noeviction" or self.eviction.startswith("volatile-")
        )

    @property
    def capacity_keys(self) -> int | None:
        """The capacity per node in keys (None: in bytes, or no capacity)."""
        return self.capacity if isinstance(self.capacity, int) else None

    @property
    def capacity_bytes(self) -> int | None:
        """The capacity per node in bytes of data memory (None: in keys, or no capacity)."""
        return self.capacity.bytes if isinstance(self.capacity, ByteBudget) else None


class OriginSpec(_Model):
    read_latency: Distribution = Distribution(distribution="lognormal", median=0.005, p99=0.04)
    write_latency: Distribution = Distribution(distribution="lognormal", median=0.008, p99=0.06)
    concurrency: Annotated[int, Field(ge=1)] = 32
    url: str | None = None
    """redis backend: a postgresql:// URL to use PostgreSQL as the origin (default: SQLite)."""


# --- strategies ------------------------------------------------------------------------------
# Each part declares its settings beside its code (lab/patterns), and `StrategySpec` is built
# from those declarations (imported above, with `ClientSpec` for the backends).


# --- faults ----------------------------------------------------------------------------------


class _Fault(_Model):
    """One fault: from `at`, for `duration`. The class-level properties below are the
    same for every fault of a kind; backends and metrics read them instead of listing
    kinds. A new kind is its model here (in the `Fault` union) plus one handler per
    backend (`lab/sim/faults.py`, `lab/redis/faults.py`)."""

    target: ClassVar[Literal["node", "origin", "bus"]]
    """What the fault acts on; a node fault names its node (`node`)."""
    destructive: ClassVar[bool] = False
    """Acts on the servers themselves (kill, stop, fail over): refused on servers the lab
    did not start unless the user allows it."""
    network: ClassVar[bool] = False
    """Acts on the traffic between the clients and the target: real backends put a fault
    proxy there."""
    empties_cache: ClassVar[bool] = False
    """The node loses its data."""
    interrupts_cache: ClassVar[bool] = False
    """Clients cannot use the node during the window: `recovery_time` is measured after."""

    at: Duration
    duration: PositiveDuration

    @property
    def node_index(self) -> int | None:
        """The node a node fault names (None for origin and bus faults)."""
        node = getattr(self, "node", None)
        return node if isinstance(node, int) else None


class NodeCrash(_Fault):
    """The node dies with all its data; after `duration` it restarts empty."""

    target = "node"
    destructive = True
    empties_cache = True
    interrupts_cache = True
    kind: Literal["node_crash"]
    node: Annotated[int, Field(ge=0)] = 0


class NodePause(_Fault):
    """The node stops answering (SIGSTOP); after `duration` it resumes with its data."""

    target = "node"
    destructive = True
    interrupts_cache = True
    kind: Literal["node_pause"]
    node: Annotated[int, Field(ge=0)] = 0


class Latency(_Fault):
    """Extra delay between the clients and one node."""

    target = "node"
    network = True
    kind: Literal["latency"]
    node: Annotated[int, Field(ge=0)] = 0
    add: Distribution = Distribution(distribution="lognormal", median=0.02, p99=0.1)


class Partition(_Fault):
    """Clients cannot reach the node: connections hang (until the client timeout) or are
    refused at once."""

    target = "node"
    network = True
    interrupts_cache = True
    kind: Literal["partition"]
    node: Annotated[int, Field(ge=0)] = 0
    mode: Literal["hang", "refuse"] = "hang"


class OriginSlow(_Fault):
    """The origin's service times are multiplied by `factor`."""

    target = "origin"
    kind: Literal["origin_slow"]
    factor: Annotated[float, Field(gt=1)] = 5.0


class OriginDown(_Fault):
    """The origin refuses every request."""

    target = "origin"
    kind: Literal["origin_down"]


class BusLoss(_Fault):
    """Invalidation messages published in the window are lost (subscribers disconnected)."""

    target = "bus"
    kind: Literal["bus_loss"]


class BusDelay(_Fault):
    """Invalidation messages published in the window arrive late."""

    target = "bus"
    network = True
    kind: Literal["bus_delay"]
    add: Distribution = Distribution(distribution="lognormal", median=0.5, p99=2.0)


class Failover(_Fault):
    """The node's primary dies and its replica is promoted `duration` later (the
    detection and election time, when the node answers nobody) with whatever it had
    replicated: writes not yet replicated (topology.replication_lag) are gone."""

    target = "node"
    destructive = True
    interrupts_cache = True
    kind: Literal["failover"]
    node: Annotated[int, Field(ge=0)] = 0
    duration: PositiveDuration = 1.0


Fault = Annotated[
    NodeCrash
    | NodePause
    | Latency
    | Partition
    | OriginSlow
    | OriginDown
    | BusLoss
    | BusDelay
    | Failover,
    Field(discriminator="kind"),
]

FAULT_MODELS: tuple[type[_Fault], ...] = get_args(get_args(Fault)[0])
"""Every fault kind's model, in the order of the `Fault` union."""


def fault_kind(model: type[_Fault]) -> str:
    """The `kind:` a fault model is written with in a scenario."""
    kind: str = get_args(model.model_fields["kind"].annotation)[0]
    return kind


INTERRUPTS_CACHE = frozenset(fault_kind(m) for m in FAULT_MODELS if m.interrupts_cache)
"""Kinds after which the recorder measures the hit ratio's recovery."""


class Metrics(_Model):
    interval: PositiveDuration = 1.0


class Limits(_Model):
    """What one command may spend on this scenario's runs (estimated before any runs;
    lab/limits.py). Raise them for a big experiment on a big machine."""

    memory: Size = 4 * 1024**3
    """Peak memory of the lab's process (and of the servers it starts) in one run."""
    time: PositiveDuration = 2 * 3600.0
    """Wall time of all the runs of the scenario that one command makes."""


def _unique(what: str) -> Callable[[list[Any]], list[Any]]:
    def check(values: list[Any]) -> list[Any]:
        seen: set[Any] = set()
        for value in values:
            if value in seen:
                raise ValueError(f"{what} {value!r} is given twice (each one names a run)")
            seen.add(value)
        return values

    return check


_WARMUP_COUNT = re.compile(r"^\s*(\d[\d_]*)\s*requests?\s*$")
MAX_SEED = 2**63 - 1
MAX_KEYS = 2**53
"""Key ids stay exact as float64 (the closed-form samplers compute with them)."""
MAX_VALUE_SIZE = 512 * 1024**2
"""The largest string value Redis stores (proto-max-bulk-len)."""
_Z_EXTREME = 6.0
"""Standard deviations past its mean beyond which a Poisson run's end is taken as certain."""

SafeName = Annotated[str, AfterValidator(check_name)]
Seeds = Annotated[
    list[Annotated[int, Field(ge=0, le=MAX_SEED)]],
    Field(min_length=1),
    AfterValidator(_unique("seed")),
]


class Scenario(_Model):
    """One YAML file: what to run, on what, how long, with which seeds."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$"), AfterValidator(check_name)]
    description: str = ""
    seeds: Seeds = [1]
    duration: PositiveDuration | None = None
    requests: Annotated[int, Field(ge=1)] | None = None
    warmup: Duration = 0.0
    warmup_requests: Annotated[int, Field(ge=1)] | None = None
    """Written `warmup: 5000 requests`: the first 5000 requests warm up (the run ends the
    warm-up at the intended start of the next one, or when a client takes it)."""
    bench: bool = True
    keyspace: Keyspace = Keyspace()
    workload: Workload = Workload()
    topology: Topology = Topology()
    origin: OriginSpec = OriginSpec()
    strategies: Annotated[dict[SafeName, StrategySpec], Field(min_length=1)]
    faults: list[Fault] = []
    backends: Annotated[list[BackendName], Field(min_length=1)] = ["sim"]
    """Where to run: names from the backend registry (`lab/backends.py`)."""
    metrics: Metrics = Metrics()
    limits: Limits = Limits()
    """Not part of the experiment: left out of config_hash()."""
    sweep: Sweep | None = None
    """Fields to vary (lab/sweep): each combination of values is a point, run as a
    scenario of its own; `points()` holds them once the file is loaded."""
    _points: list[Point[Scenario]] = PrivateAttr(default_factory=list)
    _params: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("backends")
    @classmethod
    def _backends_once(cls, value: list[str]) -> list[str]:
        return _unique("backend")(value)

    @model_validator(mode="before")
    @classmethod
    def _warmup_count(cls, data: Any) -> Any:
        """`warmup: 5000 requests` is a request count, kept in warmup_requests."""
        if isinstance(data, dict) and isinstance(data.get("warmup"), str):
            found = _WARMUP_COUNT.match(data["warmup"])
            if found:
                count = int(found[1].replace("_", ""))
                data = {**data, "warmup": 0.0, "warmup_requests": count}
        return data

    @model_validator(mode="after")
    def _length(self) -> Scenario:
        if (self.duration is None) == (self.requests is None):
            raise ValueError("give exactly one of duration (for example 60s) or requests")
        if self.duration is not None and self.warmup >= self.duration:
            raise ValueError("warmup must be shorter than duration")
        conflict = self.workload.trace_conflict()
        if conflict:
            raise ValueError(conflict)
        if self.warmup_requests is not None:
            self._check_warmup_count(self.warmup_requests)
        self._check_requests_expected()
        for i, fault in enumerate(self.faults):
            node = getattr(fault, "node", None)
            if node is not None and node >= self.topology.nodes:
                raise ValueError(
                    f"faults.{i}.node: there are {self.topology.nodes} nodes (0.."
                    f"{self.topology.nodes - 1}), got {node}"
                )
            if fault.kind == "failover" and not self.topology.replicas:
                raise ValueError(f"faults.{i}: failover needs topology.replicas: 1")
            end = self.certain_end()
            if end is not None and fault.at >= end:
                raise ValueError(
                    f"faults.{i}.at: {fault.at:g}s is after the run ends ({self._end_text()}); "
                    "a fault there never happens: move it inside the run"
                )
        return self

    @model_validator(mode="after")
    def _sizes(self) -> Scenario:
        if self.keyspace.keys > MAX_KEYS:
            raise ValueError(f"keyspace.keys: at most 2**53 keys, got {self.keyspace.keys:.3g}")
        value_size = self.keyspace.value_size
        if isinstance(value_size, int) and value_size > MAX_VALUE_SIZE:
            raise ValueError(
                f"keyspace.value_size: at most 512MiB per value (the most Redis stores in one "
                f"value), got {value_size:.3g} bytes"
            )
        budget, smallest = self.topology.capacity_bytes, _smallest_value(value_size)
        if budget is not None and self.workload.trace is None and budget < smallest:
            raise ValueError(
                f"topology.capacity: {budget:,} B of data memory per node cannot hold one "
                f"value (the smallest is {smallest:,} B), so every fill would be refused; "
                "give more bytes (for example 64MiB) or a key count"
            )
        return self

    def _check_warmup_count(self, count: int) -> None:
        if self.requests is not None and count >= self.requests:
            raise ValueError(
                f"warmup: {count} requests is not fewer than requests ({self.requests}); "
                "make it smaller"
            )

    def _check_requests_expected(self) -> None:
        """A Poisson run that would most likely measure no request at all is a mistake
        (its table is a row of dashes): say how long it has to be."""
        rate = self.workload.rate
        if rate is None:
            return
        if self.duration is not None:
            expected = rate * (self.duration - self.warmup)
            if expected < 1:
                raise ValueError(
                    f"duration: {self.duration:g}s at {rate:g}/s gives {expected:.2g} measured "
                    f"requests on average; make it at least {self.warmup + 1 / rate:.3g}s"
                )
        end = self.certain_end()
        if self.requests is not None and end is not None and self.warmup >= end:
            raise ValueError(
                f"warmup: {self.warmup:g}s is after the last of {self.requests} requests at "
                f"{rate:g}/s ({self._end_text()}); make it shorter"
            )

    def expected_end(self) -> float | None:
        """When the arrivals end: `duration`, or requests / rate for Poisson arrivals;
        None when it depends on the strategy (a closed loop with a request count)."""
        if self.duration is not None:
            return self.duration
        rate = self.workload.rate
        if self.requests is not None and rate is not None:
            return self.requests / rate
        return None

    def certain_end(self) -> float | None:
        """A time the arrivals are all but certain to have ended by (Poisson arrivals of
        a request count end at a gamma-distributed time; mean + 6 sd)."""
        if self.duration is not None:
            return self.duration
        rate = self.workload.rate
        if self.requests is not None and rate is not None:
            return (self.requests + _Z_EXTREME * math.sqrt(self.requests) + 1) / rate
        return None

    def _end_text(self) -> str:
        if self.duration is not None:
            return f"duration {self.duration:g}s"
        return f"about {self.expected_end() or 0:.3g}s: {self.requests} requests at the rate given"

    def config_hash(self) -> str:
        """A short stable hash of everything that determines a run's result."""
        data = self.as_run()
        # fields added later count only when given, so older scenarios keep their hashes
        if data["warmup_requests"] is None:
            del data["warmup_requests"]
        if data["workload"]["trace"] is None:
            del data["workload"]["trace"]
        if data["topology"]["memcached"] is None:
            del data["topology"]["memcached"]
        if data["topology"]["memory_model"] is None:
            del data["topology"]["memory_model"]
        canonical = json.dumps(data, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def as_run(self) -> dict[str, Any]:
        """The scenario's experiment as plain data: no limits (nor an empty sweep)."""
        leave_out = {"limits"} if self.sweep is not None else {"limits", "sweep"}
        return self.model_dump(mode="json", exclude=leave_out)

    def points(self) -> list[Point[Scenario]]:
        """The sweep's points, each a scenario without a sweep (empty without one)."""
        return list(self._points)

    def at(self, point: str) -> Scenario:
        """The scenario a cell of `point` runs (this one when there is no sweep)."""
        if not point:
            return self
        return next(p.scenario for p in self._points if p.name == point)

    @property
    def params(self) -> dict[str, Any]:
        """A point's swept values by path, as validated (seconds, keys, fractions)."""
        return dict(self._params)

    def scaled(self, factor: float) -> Scenario:
        """The same scenario run shorter (QUICK mode): length, warm-up and fault times
        times `factor`, first seed only."""
        update: dict[str, Any] = {
            "seeds": self.seeds[:1],
            "warmup": self.warmup * factor,
            "warmup_requests": self.warmup_requests and max(1, int(self.warmup_requests * factor)),
            "faults": [
                f.model_copy(update={"at": f.at * factor, "duration": f.duration * factor})
                for f in self.faults
            ],
        }
        if self.duration is not None:
            update["duration"] = self.duration * factor
        if self.requests is not None:
            update["requests"] = max(1, int(self.requests * factor))
        scaled = self.model_copy(update=update)
        scaled._points = [Point(p.name, p.values, p.scenario.scaled(factor)) for p in self._points]
        return scaled

    def cells(
        self,
        backends: list[str] | None = None,
        strategies: list[str] | None = None,
        seeds: list[int] | None = None,
    ) -> list[Cell]:
        """Expand the matrix point x backend x strategy x seed (optionally narrowed)."""
        out = []
        for point in [p.name for p in self._points] or [""]:
            for backend in backends or self.backends:
                for strategy in strategies or list(self.strategies):
                    for seed in seeds or self.seeds:
                        out.append(Cell(self.name, strategy, backend, seed, point))
        return out


_FLAGS = {"seeds": "--seed", "backends": "--backend"}


def check_overrides(
    scenario: Scenario,
    source: str,
    *,
    seeds: list[int] | None = None,
    backends: list[str] | None = None,
    strategies: list[str] | None = None,
) -> None:
    """Command-line narrowing (`--seed`, `--backend`, `--strategy`) validated as the YAML
    fields are: the same types and rules, applied to a copy of the scenario; the one-line
    error names the flag. The scenario itself is left as written (its config hash and
    strategy order identify the runs)."""
    copy = scenario.model_copy()
    for field, value in (("seeds", seeds), ("backends", backends)):
        if value is None:
            continue
        try:
            Scenario.__pydantic_validator__.validate_assignment(copy, field, value)
        except ValidationError as exc:
            problem = _fraction_or(exc.errors()[0])
            raise ScenarioError(f"{source}: {_FLAGS[field]}: {problem}") from None
    if strategies is not None:
        unknown = [name for name in strategies if name not in scenario.strategies]
        if unknown:
            raise ScenarioError(
                f"{source}: --strategy: no strategy named {unknown[0]!r}; "
                f"it has {', '.join(scenario.strategies)}"
            )
        twice = next((n for i, n in enumerate(strategies) if n in strategies[:i]), None)
        if twice is not None:
            raise ScenarioError(f"{source}: --strategy: {twice!r} is given twice")


@dataclass(frozen=True, slots=True)
class Cell:
    """One run: scenario (at a sweep's point) x strategy x backend x seed."""

    scenario: str
    strategy: str
    backend: str
    seed: int
    point: str = ""
    """The sweep point's name (`ttl=1s,capacity=500`); empty without a sweep."""

    @property
    def run_id(self) -> str:
        return f"{self.strategy}.{self.backend}.s{self.seed}"

    @property
    def folder(self) -> str:
        """Where the run goes under `results/<scenario>/`: `<point>/<run_id>` in a sweep."""
        return f"{self.point}/{self.run_id}" if self.point else self.run_id


# --- loading ---------------------------------------------------------------------------------


_UNION_TAGS = {"value_size": ("bytes", "distribution"), "capacity": ("keys", "bytes")}


def _location(loc: tuple[int | str, ...]) -> str:
    """`strategies.my-name.read`; a name that is not plain (the user's own: it may be
    long or hold anything) is quoted and cut."""
    parts: list[str] = []
    for part in loc:
        text = str(part)
        if text.startswith("function-") or text == "[key]":
            continue
        if parts and text in _UNION_TAGS.get(parts[-1], ()):
            continue  # which form of a field (keys or bytes) is not part of its name
        plain = re.fullmatch(r"\w[\w.-]{0,39}", text) is not None
        parts.append(text if plain else short_repr(text))
    return ".".join(parts) or "(top level)"


def _describe(error: Any) -> str:
    """Turn one pydantic error into 'field: problem, got X'."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    got = error.get("input")
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see docs/scenarios.md)"
    if kind == "missing":
        return "required field is missing"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        op = {
            "greater_than_equal": ">=",
            "greater_than": ">",
            "less_than_equal": "<=",
            "less_than": "<",
        }[kind]
        bound = next(iter(ctx.values()))
        return f"must be {op} {bound}, got {short_repr(got)}"
    if kind == "union_tag_invalid":
        known = str(ctx.get("expected_tags")).replace("'", "")
        return f"unknown kind {ctx.get('tag')!r}; known: {known}"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected')}, got {short_repr(got)}"
    if kind == "value_error":
        msg = str(error["msg"]).removeprefix("Value error, ")
        if "got" not in msg and repr(got) not in msg and not isinstance(got, dict | list):
            msg += f", got {short_repr(got)}"
        return msg
    if kind == "assertion_error":
        return str(error["msg"]).removeprefix("Assertion failed, ")
    return f"{error['msg'][0].lower()}{error['msg'][1:]}, got {short_repr(got)}"


def parse_scenario(data: object, source: str = "<scenario>", base: Path | None = None) -> Scenario:
    """Validate already-parsed YAML data; raise ScenarioError with a one-line message.
    `base` is the folder relative paths in it (a trace file) start from (default: here)."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a mapping of scenario fields at the top level")
    try:
        scenario = _validated(data, base)
        if scenario.sweep is not None:
            points = expand(data, scenario.sweep, lambda point: _validated(point, base))
            scenario._points = _with_params(points)
    except Refused as why:
        raise ScenarioError(f"{source}: {why}") from None
    except SweepError as exc:
        raise ScenarioError(f"{source}: {exc}") from None
    return scenario


def _with_params(points: list[Point[Scenario]]) -> list[Point[Scenario]]:
    """Each point's swept values as its scenario holds them (a TTL in seconds), for the
    results and the figures that plot against them."""
    for point in points:
        dumped = point.scenario.model_dump(mode="json")
        point.scenario._params = {path: value_at(dumped, path) for path, _ in point.values}
    return points


def _validated(data: dict[str, Any], base: Path | None = None) -> Scenario:
    """The model, or Refused naming the first field at fault (and how many more)."""
    try:
        return Scenario.model_validate(data, context={"base": base})
    except (TypeError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        # a validator that met a type it did not expect: still one line, never a traceback
        raise Refused(
            "",
            f"a field has a value of an unexpected kind ({type(exc).__name__}: {exc}); "
            "check the values against docs/scenarios.md",
        ) from None
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        where, problem = _location(first["loc"]), _fraction_or(first)
        if first["type"] == "union_tag_invalid":
            where += ".kind"
        if not first["loc"] and re.match(r"^[\w.]+: ", problem):
            where, _, problem = problem.partition(": ")  # the message names the field
        raise Refused(where, problem + more) from None


def _fraction_or(error: Any) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if (
        kind in ("greater_than_equal", "less_than_equal")
        and (ctx.get("ge", ctx.get("le")) in (0, 1))
        and error["loc"][-1] in ("read", "write", "hot_share")
    ):
        return f"must be between 0 and 1, got {short_repr(error.get('input'))}"
    return _describe(error)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (within the bounds of `lab.bounded_yaml`)."""
    path = Path(path)
    try:
        data = bounded_yaml.loads(bounded_yaml.read_text(path))
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except bounded_yaml.YamlRefused as exc:
        where = f":{exc.line + 1}" if exc.line is not None else ""
        raise ScenarioError(f"{path}{where}: {exc.problem}") from None
    return parse_scenario(data, str(path), path.parent)
