"""What a scenario will cost before it runs: memory and time, estimated from the
scenario alone, and refused in one line when over its bounds.

A careless scenario (a trillion requests, a million app instances, a metrics
interval of a nanosecond, a billion origin workers) must not find out its cost
by eating the machine. Each term below is what one thing in the scenario
costs the simulator or the real backend, from measurements on a loaded
2-core machine with a margin (CPU seconds, bytes at the peak of a run): an
upper bound for ordinary runs, not a prediction. The bounds are the
scenario's `limits:` (default 4 GiB of memory per run, 2 h for its runs);
`--i-know` skips the check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from lab.scenario import Cell, Distribution, Scenario, ScenarioError, lognormal_sigma
from lab.sharding import MEMO_KEYS
from lab.workload.keys import EXACT_KEYS
from lab.workload.stream import trace_info

# --- what things cost (bytes at the peak of a run, CPU seconds) --------------------------------

BASE_MEMORY = 250e6
"""The process: Python, numpy, pandas, SimPy, pydantic, the report table."""
RUN_MEMORY = 30e6
"""One run's fixed buffers: the recorder's pending records, histograms, the result."""
STARTUP_SECONDS = 3.0
RUN_SECONDS = 0.5
"""Set-up and writing the result folder, per run."""
REQUEST = (2_500.0, 100e-6)
"""A request in flight (its coroutines and events); CPU per request."""
KEY = (800.0, 5e-6)
"""A distinct key touched: cache entry, oracle history, origin row, its owner."""
EXACT_TABLE_KEY = (26.0, 0.2e-6)
"""Per key of a keyspace up to EXACT_KEYS: permutation, cdf, owner memo, latest's history."""
INSTANCE = (10_000.0, 500e-6)
"""An app instance: its strategy's parts."""
NEAR_ENTRY = 300.0
"""A near-cache entry."""
CLIENT = (2_500.0, 100e-6)
"""A closed-loop client."""
INTERVAL = (7_000.0, 1e-3)
"""A metrics interval: counters, a latency histogram, a timeseries row."""
WAKEUP = 30e-6
"""A timer firing (write-behind flushes, lock and lease polls): CPU."""
ORIGIN_WORKER = 8.0
"""One origin worker of the simulator (its free-at time)."""
FAULT = (30.0, 5e-3, 2e-6)
"""A fault: bytes per interval it is active in (the timeseries `fault` column), CPU for
reading it (PyYAML's pure-Python parser, ~0.5 ms), validating and scheduling it, the
scenario's copy written with the run (~0.25 ms) and its summary, CPU per interval (the
column is joined per interval). 1.2-1.8 ms a fault measured with tracemalloc on, quiet;
a CI machine took ~3x that."""
OVERLOAD_SOJOURN = 1.0
"""Seconds a request may take while the origin keeps up (for the in-flight bound)."""

REAL_SETUP_SECONDS = 15.0
SERVER = (10e6, 2.0)
"""A Redis/Valkey server the lab starts: memory before data, seconds to start."""
REAL_REQUEST_SECONDS = 200e-6
"""The real backend's load generator is one Python process: a request's wall floor."""
REAL_VALUE_OVERHEAD = 100.0
SIZE_DRAW = 3e-6
"""CPU seconds to draw one key's value size from a distribution (hash + inverse CDF)."""
"""Bytes a server spends per key besides the value."""


@dataclass(frozen=True)
class Cost:
    """One thing in a scenario and what it costs in one run."""

    what: str
    memory: float = 0.0
    seconds: float = 0.0


@dataclass(frozen=True)
class Estimate:
    """Peak memory of the largest run, time of all runs, and what dominates each."""

    memory: float
    seconds: float
    runs: int
    memory_driver: str
    time_driver: str

    def memory_text(self) -> str:
        return f"about {_bytes(self.memory)} of memory per run (mostly {self.memory_driver})"

    def time_text(self) -> str:
        runs = "1 run" if self.runs == 1 else f"{self.runs} runs"
        return f"about {_seconds(self.seconds)} for {runs} (mostly {self.time_driver})"

    def describe(self) -> str:
        return f"{self.memory_text()}, {self.time_text()}"


def _bytes(n: float) -> str:
    if not math.isfinite(n):
        return "unbounded"
    for unit, size in (("TiB", 2.0**40), ("GiB", 2.0**30), ("MiB", 2.0**20), ("KiB", 2.0**10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def _seconds(n: float) -> str:
    if not math.isfinite(n):
        return "forever"
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.2g} s"


def _count(n: float) -> str:
    return f"{n:,.0f}" if n < 1e6 else f"{n:.3g}"


# --- what the scenario asks for ---------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """The scenario's sizes that costs grow with, for one backend."""

    requests: float
    span: float
    """Simulated (or wall) seconds until the last request completes, at most."""
    in_flight: float
    keys_touched: float


def _upper(dist: Distribution) -> float:
    """A value a sample of `dist` all but never exceeds (for how long one request can take)."""
    if dist.distribution == "constant":
        return float(dist.value or 0.0)
    if dist.distribution == "uniform":
        return float(dist.high or 0.0)
    if dist.distribution == "exponential":
        return 20 * float(dist.mean or 0.0)
    assert dist.median is not None and dist.p99 is not None
    return dist.median * math.exp(6 * lognormal_sigma(dist.median, dist.p99))


def _slowest_origin(scenario: Scenario) -> float:
    factors = [float(getattr(f, "factor", 1.0)) for f in scenario.faults if f.kind == "origin_slow"]
    return max([1.0, *factors])


def _origin_capacity(scenario: Scenario) -> float:
    """Origin operations per second it can serve if every request reached it."""
    origin = scenario.origin
    mean = max(origin.read_latency.mean_value, origin.write_latency.mean_value, 1e-9)
    return origin.concurrency / (mean * _slowest_origin(scenario))


def _longest_request(scenario: Scenario, spec: Any) -> float:
    """How long one request can take, queueing aside: round trips, the origin (slowed
    by a fault), the client's timeouts and retries, a lock or lease wait, think time."""
    topo, origin = scenario.topology, scenario.origin
    trips = 8 * (_upper(topo.network.rtt) + _upper(topo.service_time))
    load = max(_upper(origin.read_latency), _upper(origin.write_latency)) * _slowest_origin(
        scenario
    )
    client = spec.client
    retrying = float((client.retries + 1) * client.timeout + client.backoff * 2**client.retries)
    waits = sum(
        float(block["wait"])
        for _, block in _blocks(spec)
        if isinstance(block.get("wait"), int | float)
    )
    think = scenario.workload.arrivals.think
    return trips + load + retrying + waits + (_upper(think) if think is not None else 0.0)


def _request_floor(scenario: Scenario, spec: Any) -> float:
    """A lower bound on the mean simulated time of one closed-loop request cycle: think
    time, plus one cache round trip unless a near cache can answer locally."""
    arrivals = scenario.workload.arrivals
    think = arrivals.think.mean_value if arrivals.think is not None else 0.0
    topo = scenario.topology
    trip = topo.network.rtt.mean_value + topo.service_time.mean_value
    if spec.near is not None:  # a near hit takes no time; only writes surely go out
        write = scenario.workload.mix.write_fraction
        trip = write * (trip + scenario.origin.write_latency.mean_value)
    return think + trip


def shape(scenario: Scenario, spec: Any, backend: str) -> Shape:
    """Requests, time span, peak in flight and keys touched of one run (upper bounds)."""
    arrivals = scenario.workload.arrivals
    longest = _longest_request(scenario, spec)
    if arrivals.rate is not None:
        rate = arrivals.rate
        if scenario.requests is not None:
            requests = float(scenario.requests)
        else:
            assert scenario.duration is not None
            mean = rate * scenario.duration
            requests = mean + 6 * math.sqrt(mean) + 1
        arrival_span = requests / rate
        backlog = max(0.0, rate - _origin_capacity(scenario)) * arrival_span
        in_flight = min(requests, rate * OVERLOAD_SOJOURN + backlog)
    else:
        clients = float(arrivals.clients or 1)
        floor = _request_floor(scenario, spec)
        if backend != "sim":
            floor = max(floor, REAL_REQUEST_SECONDS)
        if scenario.requests is not None:
            requests = float(scenario.requests)
        elif floor <= 0:
            requests = math.inf  # simulated time would never pass
        else:
            assert scenario.duration is not None
            requests = clients * scenario.duration / floor + clients
        arrival_span = scenario.duration or requests * longest / clients
        in_flight = min(requests, clients)
    drain = in_flight / _origin_capacity(scenario) + longest
    span = max(arrival_span, scenario.warmup) + drain
    keys_touched = min(float(scenario.keyspace.keys), requests)
    return Shape(requests, span, in_flight, keys_touched)


def _blocks(spec: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every settings block of a strategy (by dotted path), to find its timers and waits
    whatever part they belong to."""
    stack: list[tuple[str, Any]] = [("", spec.model_dump())]
    while stack:
        path, block = stack.pop()
        if isinstance(block, dict):
            yield path, block
            stack.extend((f"{path}.{k}".lstrip("."), v) for k, v in block.items())


def _strategy_costs(scenario: Scenario, name: str, shape: Shape) -> Iterator[Cost]:
    """Timers a strategy's parts run: periodic flushes, polls while waiting for a lock
    or a lease (at most until the load completes or `wait` runs out)."""
    spec = scenario.strategies[name]
    instances = scenario.workload.instances
    load = (
        4 * scenario.origin.read_latency.mean_value + 2 * scenario.topology.network.rtt.mean_value
    )
    reads = shape.requests * (1 - scenario.workload.mix.write_fraction)
    for path, block in _blocks(spec):
        interval = block.get("interval")
        if path.endswith("flush") and isinstance(interval, int | float) and interval > 0:
            ticks = shape.span / interval * instances
            yield Cost(
                f"strategies.{name}.{path}.interval ({_count(ticks)} flushes)", 0, ticks * WAKEUP
            )
        poll, wait = block.get("poll"), block.get("wait")
        if isinstance(poll, int | float) and isinstance(wait, int | float) and poll > 0:
            polls = reads * min(wait, load) / poll
            yield Cost(f"strategies.{name}.{path}.poll ({_count(polls)} polls)", 0, polls * WAKEUP)


def _requests_source(scenario: Scenario) -> str:
    """The fields that set how many requests a run makes."""
    if scenario.requests is not None:
        return "requests"
    if scenario.workload.arrivals.rate is not None:
        return "workload.arrivals.rate x duration"
    return "workload.arrivals.clients x duration"


def _per(what: str, count: float, cost: tuple[float, float]) -> Cost:
    """`count` of something costing (bytes, CPU seconds) each."""
    return Cost(what, count * cost[0], count * cost[1])


def _scale_costs(scenario: Scenario, s: Shape) -> Iterator[Cost]:
    """What grows with the run's size: requests, keys, instances, intervals, workers."""
    instances = scenario.workload.instances
    intervals = s.span / scenario.metrics.interval
    yield Cost("the run itself", RUN_MEMORY, RUN_SECONDS)
    yield Cost(
        f"{_requests_source(scenario)} ({_count(s.requests)} requests, "
        f"{_count(s.in_flight)} in flight at most)",
        s.in_flight * REQUEST[0],
        s.requests * REQUEST[1],
    )
    yield _per(f"{_count(s.keys_touched)} keys touched", s.keys_touched, KEY)
    yield _per(f"workload.instances ({_count(instances)} app instances)", instances, INSTANCE)
    yield _per(f"metrics.interval ({_count(intervals)} intervals)", intervals, INTERVAL)
    if not isinstance(scenario.keyspace.value_size, int):
        yield Cost(
            "keyspace.value_size (a distribution: drawn per origin call)",
            0.0,
            s.requests * SIZE_DRAW,
        )
    workers = scenario.origin.concurrency
    yield Cost(f"origin.concurrency ({_count(workers)} workers)", workers * ORIGIN_WORKER)
    if scenario.faults:
        faults = len(scenario.faults)
        yield Cost(
            f"faults ({faults})",
            faults * intervals * FAULT[0],
            faults * (FAULT[1] + intervals * FAULT[2]),
        )
    clients = scenario.workload.arrivals.clients
    if clients is not None:
        yield _per(f"workload.arrivals.clients ({_count(clients)})", clients, CLIENT)
    keys = scenario.keyspace.keys
    if keys <= max(EXACT_KEYS, MEMO_KEYS):
        yield _per(f"keyspace.keys ({_count(keys)})", keys, EXACT_TABLE_KEY)


def cell_costs(scenario: Scenario, cell: Cell) -> list[Cost]:
    """What one run costs, term by term."""
    spec = scenario.strategies[cell.strategy]
    s = shape(scenario, spec, cell.backend)
    costs = list(_scale_costs(scenario, s))
    if spec.near is not None:
        keys = float(scenario.keyspace.keys)
        per_instance = min(float(spec.near.capacity or keys), keys, s.requests)
        costs.append(
            Cost(
                f"strategies.{cell.strategy}.near ({_count(per_instance)} keys per instance)",
                scenario.workload.instances * per_instance * NEAR_ENTRY,
            )
        )
    costs.extend(_strategy_costs(scenario, cell.strategy, s))
    if cell.backend != "sim":
        costs.extend(_real_costs(scenario, s))
    return costs


def _real_costs(scenario: Scenario, s: Shape) -> Iterator[Cost]:
    """Servers the lab starts, the values they hold, and the wall time of a real run."""
    topo = scenario.topology
    servers = topo.nodes * (1 + topo.replicas)
    value_size = scenario.keyspace.value_size
    mean_size = float(value_size) if isinstance(value_size, int) else value_size.mean_size
    per_value = mean_size + REAL_VALUE_OVERHEAD
    per_node = float(topo.capacity_keys or math.inf)
    if topo.capacity_bytes is not None:  # a byte budget holds budget / bytes per entry
        per_node = topo.capacity_bytes / per_value
    held = min(float(scenario.keyspace.keys), s.requests, per_node * topo.nodes)
    yield Cost(
        f"topology.nodes ({servers} servers)",
        servers * SERVER[0],
        REAL_SETUP_SECONDS + servers * SERVER[1],
    )
    yield Cost(
        f"keyspace.value_size x keys held ({_count(held)} values of {_bytes(per_value)})",
        held * per_value * (1 + topo.replicas),
    )
    yield Cost(
        "wall time of the real run",
        0.0,
        max(s.span, s.requests * REAL_REQUEST_SECONDS),
    )


def estimate(scenario: Scenario, cells: Iterable[Cell]) -> Estimate:
    """Peak memory of the largest run and the time of all `cells` of `scenario`."""
    cells = list(cells)
    per_cell = [cell_costs(scenario.at(cell.point), cell) for cell in cells]  # a sweep's point
    memory = 0.0
    memory_driver = time_driver = "nothing"
    totals: dict[str, float] = {}
    for costs in per_cell:
        run_memory = sum(c.memory for c in costs)
        if run_memory >= memory:
            memory = run_memory
            memory_driver = max(costs, key=lambda c: c.memory).what
        for cost in costs:
            key = cost.what.split(" (")[0]
            totals[key] = totals.get(key, 0.0) + cost.seconds
    seconds = STARTUP_SECONDS + sum(totals.values())
    if totals:
        top = max(totals, key=lambda k: totals[k])
        time_driver = next(
            c.what for costs in per_cell for c in costs if c.what.split(" (")[0] == top
        )
    return Estimate(BASE_MEMORY + memory, seconds, len(cells), memory_driver, time_driver)


def _frozen_clock(scenario: Scenario) -> str | None:
    """The strategy whose closed-loop clients would never let simulated time pass."""
    if scenario.workload.arrivals.clients is None or scenario.duration is None:
        return None
    return next(
        (n for n, spec in scenario.strategies.items() if _request_floor(scenario, spec) <= 0),
        None,
    )


def check(
    scenario: Scenario, cells: Iterable[Cell], source: str, *, i_know: bool = False
) -> Estimate:
    """The estimate of `cells`; ScenarioError (one line: the estimate, the bound and how
    to override it) when it is over the scenario's limits and `i_know` is not set."""
    frozen = next(
        filter(None, map(_frozen_clock, [p.scenario for p in scenario.points()] or [scenario])),
        None,
    )
    if frozen is not None:  # not a cost: it may never end
        why = (
            "reads its near cache answers take no simulated time"
            if scenario.strategies[frozen].near is not None
            else "requests take no simulated time"
        )
        raise ScenarioError(
            f"{source}: workload.arrivals: closed-loop clients with no think time, whose {why} "
            f"(strategy {frozen!r}), may never let the clock reach `duration`; give think "
            "time or a request count"
        )
    trace_info(scenario, source)  # a replayed trace is read once here: bad lines stop it all
    found = estimate(scenario, cells)
    limits = scenario.limits
    over_memory = not found.memory <= limits.memory  # inf and nan are over
    over_time = not found.seconds <= limits.time
    if i_know or not (over_memory or over_time):
        return found
    over = []
    if over_memory:
        over.append(f"{found.memory_text()}: over its {_bytes(limits.memory)} limit")
    if over_time:
        over.append(f"{found.time_text()}: over its {_seconds(limits.time)} limit")
    raise ScenarioError(
        f"{source}: limits: this needs {'; and '.join(over)}; make it smaller, raise "
        "`limits: {memory: ..., time: ...}` in the scenario, or run with --i-know"
    )
