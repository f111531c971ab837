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
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lab import bounded_yaml
from lab.names import check_name, one_line, short_repr
from lab.units import parse_duration, parse_key_count, parse_rate, parse_size

Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
Size = Annotated[int, BeforeValidator(parse_size), Field(gt=0)]
Rate = Annotated[float, BeforeValidator(parse_rate), Field(gt=0)]
KeyCount = Annotated[int, BeforeValidator(parse_key_count), Field(gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


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
        needed = _DIST_PARAMS[self.distribution]
        for name in needed:
            if getattr(self, name) is None:
                raise ValueError(f"a {self.distribution} distribution needs {' and '.join(needed)}")
        for name in {"value", "mean", "median", "p99", "low", "high"} - set(needed):
            if getattr(self, name) is not None:
                raise ValueError(
                    f"{name!r} does not apply to a {self.distribution} distribution "
                    f"(it takes {', '.join(needed)})"
                )
        if self.distribution == "lognormal":
            assert self.median is not None and self.p99 is not None
            if self.p99 <= self.median:
                raise ValueError("lognormal p99 must be larger than its median")
        if self.distribution == "uniform":
            assert self.low is not None and self.high is not None
            if self.high < self.low:
                raise ValueError("uniform high must be >= low")
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


class Keyspace(_Model):
    keys: KeyCount = 10_000
    value_size: Size = 1024


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

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        from lab.workload.ycsb import expand

        return expand(data) if isinstance(data, dict) else data


# --- topology and origin ---------------------------------------------------------------------


class Network(_Model):
    rtt: Distribution = Distribution(distribution="lognormal", median=0.0003, p99=0.002)


class BusSpec(_Model):
    """The pub/sub bus between app instances (Redis pub/sub: at most once)."""

    delay: Distribution = Distribution(distribution="lognormal", median=0.0005, p99=0.005)
    loss: Fraction = 0.0


class Topology(_Model):
    nodes: Annotated[int, Field(ge=1, le=1024)] = 1
    sharding: Literal["ketama", "slots", "modulo"] = "ketama"
    capacity: KeyCount | None = None
    eviction: Literal["lru", "fifo", "random"] = "lru"
    network: Network = Network()
    service_time: Distribution = Distribution(distribution="exponential", mean=0.00002)
    bus: BusSpec = BusSpec()
    replicas: Annotated[int, Field(ge=0, le=1)] = 0
    replication_lag: Distribution = Distribution(distribution="lognormal", median=0.001, p99=0.02)


class OriginSpec(_Model):
    read_latency: Distribution = Distribution(distribution="lognormal", median=0.005, p99=0.04)
    write_latency: Distribution = Distribution(distribution="lognormal", median=0.008, p99=0.06)
    concurrency: Annotated[int, Field(ge=1)] = 32
    url: str | None = None
    """redis backend: a postgresql:// URL to use PostgreSQL as the origin (default: SQLite)."""


# --- strategies ------------------------------------------------------------------------------


class LockGuard(_Model):
    """Distributed lock (SET NX with an expiry) around the reload of a missing key.

    `release: unconditional` deletes the lock whoever holds it now (the article's
    code); `token` stores a token of the holder's and deletes the lock only if it
    still holds that token (compare-and-delete), so a holder whose load outlived
    `expiry` cannot release the next holder's lock."""

    expiry: PositiveDuration = 1.0
    poll: PositiveDuration = 0.005
    wait: PositiveDuration = 1.0
    recheck: bool = True
    release: Literal["unconditional", "token"] = "unconditional"


class XFetchGuard(_Model):
    """Probabilistic early expiration: recompute when now - delta*beta*ln(rand) >= expiry."""

    beta: Annotated[float, Field(gt=0)] = 1.0


class LeaseGuard(_Model):
    """Leases (as in Facebook's memcache): a miss hands out a token, only its holder may
    fill the key, and a write revokes outstanding tokens so a slow reader cannot put
    an old value back. Others who miss meanwhile wait, or take the last known value."""

    expiry: PositiveDuration = 1.0
    poll: PositiveDuration = 0.005
    wait: PositiveDuration = 1.0
    stale: bool = False


class CoalesceGuard(_Model):
    """Single-flight: concurrent misses of one key within an app instance share one load."""


GUARDS = ("lock", "xfetch", "coalesce", "lease")


class StampedeSpec(_Model):
    """Exactly one stampede guard, for example `{xfetch: {beta: 1}}` or `{coalesce: {}}`."""

    lock: LockGuard | None = None
    xfetch: XFetchGuard | None = None
    coalesce: CoalesceGuard | None = None
    lease: LeaseGuard | None = None

    @model_validator(mode="before")
    @classmethod
    def _empty_means_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: ({} if v is None else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> StampedeSpec:
        chosen = [name for name in GUARDS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one guard: lock, xfetch, coalesce or lease")
        return self

    @property
    def kind(self) -> str:
        return next(n for n in GUARDS if getattr(self, n) is not None)


class RefreshSpec(_Model):
    """Refresh-ahead: a hit with less than `window` of its TTL left is refreshed in the
    background (a fraction of the TTL, or a duration)."""

    window: Annotated[float, Field(gt=0)] | str = 0.2

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: object) -> float | str:
        if isinstance(value, str):
            parse_duration(value)
        return value  # type: ignore[return-value]

    def seconds(self, ttl: float) -> float:
        """The refresh window in seconds for a given TTL."""
        if isinstance(self.window, str):
            return parse_duration(self.window)
        return self.window * ttl if self.window <= 1 else self.window


class NearSpec(_Model):
    """A local cache in every app instance, in front of the shared cache."""

    capacity: KeyCount | None = 1000
    ttl: PositiveDuration = 10.0
    invalidate: Literal["ttl", "bus"] = "ttl"
    loss: Fraction = 0.0
    """Extra share of invalidations this instance never receives (on top of topology.bus.loss):
    a subscriber that was disconnected when they were published."""

    @model_validator(mode="after")
    def _loss_needs_bus(self) -> NearSpec:
        if self.loss and self.invalidate != "bus":
            raise ValueError("loss applies to invalidate: bus")
        return self


class FlushSpec(_Model):
    """Write-behind flushing: every `interval`, or as soon as `batch` writes are pending."""

    interval: PositiveDuration = 1.0
    batch: Annotated[int, Field(ge=1)] = 100


class Breaker(_Model):
    """Circuit breaker: after `failures` cache errors in a row, skip the cache for `reset`."""

    failures: Annotated[int, Field(ge=1)] = 5
    reset: PositiveDuration = 1.0


class ClientSpec(_Model):
    """How an app instance treats a failing cache."""

    timeout: PositiveDuration = 0.1
    fallback: bool = True
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    backoff: Duration = 0.01
    breaker: Breaker | None = None


class StrategySpec(_Model):
    """A strategy names its parts: `{read: cache-aside, write: invalidate, ttl: 5m}`."""

    read: str = "cache-aside"
    write: str = "invalidate"
    ttl: PositiveDuration | None = None
    ttl_jitter: Annotated[float, Field(ge=0, lt=1)] = 0.0
    fill: Literal["set", "add"] = "set"
    stampede: StampedeSpec | None = None
    refresh: RefreshSpec | None = None
    flush: FlushSpec | None = None
    near: NearSpec | None = None
    namespace: Annotated[int, Field(ge=1)] = 100
    """Versioned keys: how many consecutive key ids share one namespace version."""
    client: ClientSpec = ClientSpec()

    @model_validator(mode="after")
    def _parts_fit_together(self) -> StrategySpec:
        if self.ttl_jitter and self.ttl is None:
            raise ValueError("ttl_jitter spreads a ttl; give a ttl too")
        if self.flush is not None and self.write != "behind":
            raise ValueError("flush applies to write: behind only")
        if (self.read == "versioned") != (self.write == "bump"):
            raise ValueError("versioned keys need both parts: read: versioned with write: bump")
        if self.stampede is not None and self.read != "cache-aside":
            raise ValueError(
                "stampede guards wrap the cache-aside read path; use read: cache-aside"
            )
        if self.stampede is not None and self.stampede.kind == "xfetch" and self.ttl is None:
            raise ValueError("xfetch recomputes before the TTL runs out, so it needs a ttl")
        if (
            self.stampede is not None
            and self.stampede.kind == "lease"
            and self.write not in ("invalidate", "around")
        ):
            raise ValueError(
                "leases are revoked by write: invalidate (or never, with write: around); "
                f"write: {self.write} sets values outside the lease"
            )
        if self.read == "refresh-ahead" and self.ttl is None:
            raise ValueError("refresh-ahead refreshes before the TTL runs out, so it needs a ttl")
        if self.refresh is not None and self.read != "refresh-ahead":
            raise ValueError("refresh applies to read: refresh-ahead only")
        return self

    @field_validator("read")
    @classmethod
    def _known_read(cls, value: str) -> str:
        from lab.patterns import READ_PATHS

        if value not in READ_PATHS:
            raise ValueError(f"unknown read path {value!r}; known: {', '.join(sorted(READ_PATHS))}")
        return value

    @field_validator("write")
    @classmethod
    def _known_write(cls, value: str) -> str:
        from lab.patterns import WRITE_PATHS

        if value not in WRITE_PATHS:
            raise ValueError(
                f"unknown write path {value!r}; known: {', '.join(sorted(WRITE_PATHS))}"
            )
        return value


# --- faults ----------------------------------------------------------------------------------


class _Fault(_Model):
    at: Duration
    duration: PositiveDuration


class NodeCrash(_Fault):
    """The node dies with all its data; after `duration` it restarts empty."""

    kind: Literal["node_crash"]
    node: Annotated[int, Field(ge=0)] = 0


class NodePause(_Fault):
    """The node stops answering (SIGSTOP); after `duration` it resumes with its data."""

    kind: Literal["node_pause"]
    node: Annotated[int, Field(ge=0)] = 0


class Latency(_Fault):
    """Extra delay between the clients and one node."""

    kind: Literal["latency"]
    node: Annotated[int, Field(ge=0)] = 0
    add: Distribution = Distribution(distribution="lognormal", median=0.02, p99=0.1)


class Partition(_Fault):
    """Clients cannot reach the node: connections hang (until the client timeout) or are
    refused at once."""

    kind: Literal["partition"]
    node: Annotated[int, Field(ge=0)] = 0
    mode: Literal["hang", "refuse"] = "hang"


class OriginSlow(_Fault):
    """The origin's service times are multiplied by `factor`."""

    kind: Literal["origin_slow"]
    factor: Annotated[float, Field(gt=1)] = 5.0


class OriginDown(_Fault):
    """The origin refuses every request."""

    kind: Literal["origin_down"]


class BusLoss(_Fault):
    """Invalidation messages published in the window are lost (subscribers disconnected)."""

    kind: Literal["bus_loss"]


class BusDelay(_Fault):
    """Invalidation messages published in the window arrive late."""

    kind: Literal["bus_delay"]
    add: Distribution = Distribution(distribution="lognormal", median=0.5, p99=2.0)


class Failover(_Fault):
    """The node's primary dies and its replica is promoted `duration` later (the
    detection and election time, when the node answers nobody) with whatever it had
    replicated: writes not yet replicated (topology.replication_lag) are gone."""

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
    bench: bool = True
    keyspace: Keyspace = Keyspace()
    workload: Workload = Workload()
    topology: Topology = Topology()
    origin: OriginSpec = OriginSpec()
    strategies: Annotated[dict[SafeName, StrategySpec], Field(min_length=1)]
    faults: list[Fault] = []
    backends: Annotated[list[Literal["sim", "redis"]], Field(min_length=1)] = ["sim"]
    metrics: Metrics = Metrics()
    limits: Limits = Limits()
    """Not part of the experiment: left out of config_hash()."""

    @field_validator("backends")
    @classmethod
    def _backends_once(cls, value: list[str]) -> list[str]:
        return _unique("backend")(value)

    @model_validator(mode="after")
    def _length(self) -> Scenario:
        if (self.duration is None) == (self.requests is None):
            raise ValueError("give exactly one of duration (for example 60s) or requests")
        if self.duration is not None and self.warmup >= self.duration:
            raise ValueError("warmup must be shorter than duration")
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
        return self

    def _check_requests_expected(self) -> None:
        """A Poisson run that would most likely measure no request at all is a mistake
        (its table is a row of dashes): say how long it has to be."""
        rate = self.workload.arrivals.rate
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
        rate = self.workload.arrivals.rate
        if self.requests is not None and rate is not None:
            return self.requests / rate
        return None

    def certain_end(self) -> float | None:
        """A time the arrivals are all but certain to have ended by (Poisson arrivals of
        a request count end at a gamma-distributed time; mean + 6 sd)."""
        if self.duration is not None:
            return self.duration
        rate = self.workload.arrivals.rate
        if self.requests is not None and rate is not None:
            return (self.requests + _Z_EXTREME * math.sqrt(self.requests) + 1) / rate
        return None

    def _end_text(self) -> str:
        if self.duration is not None:
            return f"duration {self.duration:g}s"
        return f"about {self.expected_end() or 0:.3g}s: {self.requests} requests at the rate given"

    def config_hash(self) -> str:
        """A short stable hash of everything that determines a run's result."""
        canonical = json.dumps(self.model_dump(mode="json", exclude={"limits"}), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    def scaled(self, factor: float) -> Scenario:
        """The same scenario run shorter (QUICK mode): length, warm-up and fault times
        times `factor`, first seed only."""
        update: dict[str, Any] = {
            "seeds": self.seeds[:1],
            "warmup": self.warmup * factor,
            "faults": [
                f.model_copy(update={"at": f.at * factor, "duration": f.duration * factor})
                for f in self.faults
            ],
        }
        if self.duration is not None:
            update["duration"] = self.duration * factor
        if self.requests is not None:
            update["requests"] = max(1, int(self.requests * factor))
        return self.model_copy(update=update)

    def cells(
        self,
        backends: list[str] | None = None,
        strategies: list[str] | None = None,
        seeds: list[int] | None = None,
    ) -> list[Cell]:
        """Expand the matrix strategy x backend x seed (optionally narrowed)."""
        out = []
        for backend in backends or self.backends:
            for strategy in strategies or list(self.strategies):
                for seed in seeds or self.seeds:
                    out.append(Cell(self.name, strategy, backend, seed))
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
    """One run: scenario x strategy x backend x seed."""

    scenario: str
    strategy: str
    backend: str
    seed: int

    @property
    def run_id(self) -> str:
        return f"{self.strategy}.{self.backend}.s{self.seed}"


# --- loading ---------------------------------------------------------------------------------


def _location(loc: tuple[int | str, ...]) -> str:
    """`strategies.my-name.read`; a name that is not plain (the user's own: it may be
    long or hold anything) is quoted and cut."""
    parts = []
    for part in loc:
        text = str(part)
        if text.startswith("function-") or text == "[key]":
            continue
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


def parse_scenario(data: object, source: str = "<scenario>") -> Scenario:
    """Validate already-parsed YAML data; raise ScenarioError with a one-line message."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a mapping of scenario fields at the top level")
    try:
        return Scenario.model_validate(data)
    except (TypeError, AttributeError, KeyError, IndexError, OverflowError) as exc:
        # a validator that met a type it did not expect: still one line, never a traceback
        raise ScenarioError(
            f"{source}: a field has a value of an unexpected kind ({type(exc).__name__}: {exc}); "
            "check the values against docs/scenarios.md"
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
        raise ScenarioError(f"{source}: {where}: {problem}{more}") from None


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
    return parse_scenario(data, str(path))
