"""What a backend is: the protocol the simulator, real Redis (and any next one) implement.

`lab.runner.run_cell` owns everything that is the same on every backend:
the harness (oracle, recorder, one strategy per app instance), the request
stream and the client loop, when faults start and end, the warm-up, the
summary. A backend owns *where* the cell runs: it checks what it cannot do
(`refusal`), provisions its world and builds the parts (`execute`: servers,
runtime, cache, origin, bus, gauges), injects each fault kind with one
handler per kind (`faults`, `schedule_faults`), runs the workload on its
clock (`run`) and reports its final state (`final_state`, `inventory`).

A new backend is one new package implementing `Backend` plus one line in
`lab/backends.py`; docs/architecture.md walks through it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from lab.core import Bus, Cache, Key, Origin, Runtime, Versioned
from lab.core.capabilities import Capability
from lab.scenario import Cell, Fault, Scenario

T = TypeVar("T")
C = TypeVar("C")
"""A backend's fault context: what its handlers act on."""
A = TypeVar("A")
"""A backend's fault action: what runs when a fault starts or ends."""


class CellSkipped(Exception):
    """A cell this machine or backend cannot run; the message says why."""


Gauges = Callable[[], dict[str, float]]
"""Levels sampled at every interval boundary (evictions, cache_keys, cache_memory, ...)."""


@dataclass
class Parts:
    """What a backend builds for one cell and `run_cell` wires the strategies to."""

    runtime: Runtime
    cache: Cache
    origin: Origin
    bus: Bus | None
    gauges: Gauges


@dataclass
class FinalState:
    """The backend's side of the summary, read when the workload is over."""

    evictions: int
    """The eviction counter now (`run_cell` subtracts its value at the warm-up)."""
    cache_keys: int
    cache_memory: int
    origin_versions: dict[Key, int]
    """Every row's final version at the origin: acknowledged versions above it are lost."""
    fields: dict[str, Any] = field(default_factory=dict)
    """Summary fields of this backend (cache operation times, simulated time, ...)."""
    versions: dict[str, str | None] = field(default_factory=dict)
    """Software versions this backend ran (server, client libraries, origin)."""
    notes: list[str] = field(default_factory=list)


Lookup = Callable[[list[str]], Awaitable[list[Versioned | None]]]
"""Reads the values of some key names on one node (None where a key is gone)."""


@dataclass
class NodeKeys:
    """The key names one cache node holds, and how to read their values."""

    names: list[str]
    read: Lookup


class Backend(Protocol):
    """One place cells run. An instance runs one cell (it may keep that cell's state)."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]
    """What the cache offers strategy parts (ttl, nx, incr, pubsub, set_if_equal)."""
    faults: ClassVar[FaultHandlers[Any, Any]]
    """One handler per fault kind this backend can inject (its fault registry)."""

    @classmethod
    def describe(cls) -> str:
        """One line for `cachelab list`: what it is and whether it can run here."""
        ...

    def refusal(self, scenario: Scenario, cell: Cell) -> str | None:
        """Why this backend cannot run `cell` as the scenario says (the skip reason), or
        None. A setting it does not honour is refused here, never silently ignored."""
        ...

    def execute(
        self, scenario: Scenario, cell: Cell, body: Callable[[Parts], Coroutine[Any, Any, T]]
    ) -> T:
        """Provision what the cell runs on, build its `Parts`, run `body(parts)` on this
        backend's event loop and return its result; always release what was started.
        May raise CellSkipped for what only shows on this machine (no server binary)."""
        ...

    def schedule_faults(
        self, parts: Parts, faults: Sequence[Fault]
    ) -> Coroutine[Any, Any, None] | None:
        """Arm each fault's start and end (`faults` handlers) on this backend's clock;
        a coroutine returned here is spawned beside the workload."""
        ...

    def run(self, parts: Parts, workload: Coroutine[Any, Any, None]) -> Awaitable[None]:
        """Run the workload to its end on this backend's clock."""
        ...

    def warmup_over(self, parts: Parts) -> int:
        """The warm-up ends now: count cache operation times from here on; return the
        eviction counter at this instant."""
        ...

    def final_state(self, parts: Parts) -> Awaitable[FinalState]:
        """The backend's figures once the workload is over."""
        ...

    def inventory(self, parts: Parts) -> Awaitable[list[NodeKeys] | None]:
        """Every node's key names and a reader (None: this backend cannot list keys)."""
        ...


Handler = Callable[[C, Any, int], tuple[A, A]]
Refusal = Callable[[Any, Any], str | None]


class FaultHandlers(Generic[C, A]):
    """One handler per fault kind, for one backend (its registry of fault kinds).

    A handler turns (the backend's fault context, the fault, its index in the
    scenario) into the fault's (begin, end) actions. `refuse` optionally says
    why a fault cannot run in a given situation (servers the lab does not own,
    say). A new fault kind is its model in `lab.scenario` plus one handler in
    each backend's registry.
    """

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self._handlers: dict[type, Handler[C, A]] = {}
        self._refusals: dict[type, Refusal] = {}

    def handles(
        self, kind: type, *, refuse: Refusal | None = None
    ) -> Callable[[Handler[C, A]], Handler[C, A]]:
        """Register the decorated function as the handler of fault model `kind`."""

        def register(handler: Handler[C, A]) -> Handler[C, A]:
            if kind in self._handlers:
                raise ValueError(f"{self.backend}: fault {kind.__name__} handled twice")
            self._handlers[kind] = handler
            if refuse is not None:
                self._refusals[kind] = refuse
            return handler

        return register

    @property
    def kinds(self) -> frozenset[type]:
        return frozenset(self._handlers)

    def unhandled(self, faults: Sequence[Fault]) -> list[str]:
        """The kinds of `faults` this backend has no handler for (sorted, distinct)."""
        return sorted({f.kind for f in faults if type(f) not in self._handlers})

    def refusals(self, faults: Sequence[Fault], situation: Any = None) -> list[str]:
        """Why some of `faults` cannot be injected in `situation` (sorted, distinct)."""
        reasons = set()
        for fault in faults:
            refuse = self._refusals.get(type(fault))
            reason = refuse(fault, situation) if refuse is not None else None
            if reason:
                reasons.add(reason)
        return sorted(reasons)

    def refusal(self, faults: Sequence[Fault], situation: Any = None) -> str | None:
        """All of the above in one line, or None when every fault can be injected."""
        reasons = self.refusals(faults, situation)
        unhandled = self.unhandled(faults)
        if unhandled:
            kinds = ", ".join(unhandled)
            reasons.insert(0, f"faults {kinds} cannot be injected on the {self.backend} backend")
        return "; ".join(reasons) or None

    def actions(self, context: C, fault: Fault, index: int) -> tuple[A, A]:
        """The (begin, end) actions of fault number `index` of the scenario."""
        return self._handlers[type(fault)](context, fault, index)
