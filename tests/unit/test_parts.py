"""Strategy parts: settings beside each part, the strategy model built from the registry,
explicit composition (layers, the raw cache, write observers) and TTL draws."""

from __future__ import annotations

import ast
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from lab.core import Key, NoMetrics, Read, Versioned
from lab.core.capabilities import Capability
from lab.core.settings import Settings
from lab.core.units import PositiveDuration
from lab.patterns import (
    LAYERS,
    READ_PATHS,
    REGISTRATIONS,
    STAMPEDE_GUARDS,
    WRITE_PATHS,
    ReadPath,
    StrategySpec,
    Wiring,
    build_strategy,
)
from lab.patterns.base import StrategySettings
from lab.patterns.cache_aside import CacheAside
from lab.patterns.catalog import catalog
from lab.patterns.near_cache import LocalLru
from lab.patterns.registry import read_path, strategy_model
from lab.patterns.resilience import ClientSpec, ResilientCache
from lab.scenario import ScenarioError, parse_scenario
from tests.helpers import zero_network_sim

ROOT = Path(__file__).resolve().parents[2]


def spec(**fields: Any) -> StrategySettings:
    return StrategySpec.model_validate(fields)


# --- the strategy model ----------------------------------------------------------------------


def test_the_strategy_schema_is_the_one_scenarios_were_written_against() -> None:
    """The JSON schema of a strategy, recorded before the model was built from the registry:
    every field, default, bound and choice a scenario file can use. A change here changes
    what users' files mean: do it on purpose, and update the recorded schema with it."""
    recorded = json.loads((Path(__file__).parent / "strategy_schema.json").read_text())
    assert StrategySpec.model_json_schema() == recorded


def test_every_registered_settings_block_is_a_strategy_field() -> None:
    fields = StrategySpec.model_fields
    for reg in REGISTRATIONS:
        if reg.settings is None:
            continue
        if reg.field is None:  # top-level fields
            assert set(reg.settings.model_fields) <= set(fields), reg.name
        else:
            head, _, guard = reg.field.partition(".")
            block = fields[head].annotation
            assert block is not None
            if guard:
                stampede = next(a for a in block.__args__ if a is not type(None))
                block = stampede.model_fields[guard].annotation
            assert reg.settings in getattr(block, "__args__", (block,)), reg.name


# one line per rule between parts, worded as before the rules moved onto the parts
RULES = [
    ({"ttl_jitter": 0.2}, "strategies.a: ttl_jitter spreads a ttl; give a ttl too"),
    ({"flush": {}}, "strategies.a: flush applies to write: behind only"),
    ({"refresh": {}}, "strategies.a: refresh applies to read: refresh-ahead only"),
    (
        {"read": "versioned"},
        "strategies.a: versioned keys need both parts: read: versioned with write: bump",
    ),
    (
        {"write": "bump"},
        "strategies.a: versioned keys need both parts: read: versioned with write: bump",
    ),
    (
        {"read": "read-through", "stampede": {"coalesce": {}}},
        "strategies.a: stampede guards wrap the cache-aside read path; use read: cache-aside",
    ),
    (
        {"stampede": {"xfetch": {}}},
        "strategies.a: xfetch recomputes before the TTL runs out, so it needs a ttl",
    ),
    (
        {"stampede": {"lease": {}}, "write": "update"},
        "strategies.a: leases are revoked by write: invalidate (or never, with write: around); "
        "write: update sets values outside the lease",
    ),
    (
        {"read": "refresh-ahead"},
        "strategies.a: refresh-ahead refreshes before the TTL runs out, so it needs a ttl",
    ),
    (
        {"stampede": {"lock": {}, "lease": {}}},
        "strategies.a.stampede: give exactly one guard: lock, xfetch, coalesce or lease",
    ),
    ({"near": {"loss": 0.1}}, "strategies.a.near: loss applies to invalidate: bus"),
    ({"stampede": {"lock": {"expiry": 0}}}, "strategies.a.stampede.lock.expiry: must be > 0"),
    ({"client": {"retries": 11}}, "strategies.a.client.retries: must be <= 10, got 11"),
    ({"namespace": 0}, "strategies.a.namespace: must be >= 1, got 0"),
]


@pytest.mark.parametrize(("strategy", "message"), RULES)
def test_rules_between_parts_give_one_line_naming_the_field(
    strategy: dict[str, Any], message: str
) -> None:
    with pytest.raises(ScenarioError) as raised:
        parse_scenario({"name": "x", "requests": 5, "strategies": {"a": strategy}}, "f.yaml")
    assert str(raised.value).startswith(f"f.yaml: {message}")
    assert "\n" not in str(raised.value)


def test_leases_tolerate_the_write_paths_they_name() -> None:
    for write in ("invalidate", "around"):
        spec(stampede={"lease": {}}, write=write)
    for write in ("update", "through", "behind"):
        with pytest.raises(ValidationError, match="outside the lease"):
            spec(stampede={"lease": {}}, write=write, ttl=5)


def test_each_part_gets_its_own_settings() -> None:
    rt, cache, origin = zero_network_sim()
    wiring = Wiring(cache, origin, rt)
    lock = STAMPEDE_GUARDS["lock"](wiring, spec(stampede={"lock": {"poll": "2ms"}}))
    assert lock.settings is not None and lock.settings.model_dump()["poll"] == 0.002
    versioned = READ_PATHS["versioned"](wiring, spec(read="versioned", write="bump", namespace=7))
    assert versioned.settings is not None and versioned.settings.model_dump() == {"namespace": 7}
    behind = WRITE_PATHS["behind"](wiring, spec(write="behind"))  # no block: the defaults
    assert behind.settings is not None and behind.settings.model_dump() == {
        "interval": 1.0,
        "batch": 100,
    }


@pytest.fixture
def registry() -> Iterator[None]:
    """Registrations a test adds are gone after it."""
    saved = [(d, dict(d)) for d in (READ_PATHS, WRITE_PATHS, STAMPEDE_GUARDS, LAYERS)]
    registrations = list(REGISTRATIONS)
    yield
    for registry_, content in saved:
        registry_.clear()
        registry_.update(content)
    REGISTRATIONS[:] = registrations


def test_a_new_part_with_settings_is_one_registration(registry: None) -> None:
    """What a new module in lab/patterns does: declare settings, register, state its rule.
    The strategy model, its rules, the listing and the composition follow."""

    class Delay(Settings):
        """How long the probe waits before reading the origin."""

        pause: PositiveDuration = 0.5

    @read_path("probe", settings=Delay, field="delay")
    class Probe(ReadPath):
        summary = "waits, then reads the origin"
        settings: Delay

        @classmethod
        def check(cls, spec: StrategySettings) -> None:
            if spec.write != "around":
                raise ValueError("probe needs write: around")

        async def read(self, key: Key) -> Read:
            await self.rt.sleep(self.settings.pause)
            return Read(await self.origin.read(key), "origin")

    model = strategy_model()
    chosen = model.model_validate({"read": "probe", "write": "around", "delay": {"pause": "250ms"}})
    with pytest.raises(ValidationError, match="delay applies to read: probe only"):
        model.model_validate({"delay": {}})
    with pytest.raises(ValidationError, match="probe needs write: around"):
        model.model_validate({"read": "probe"})
    assert "probe" in catalog() and "delay: {pause: 0.5}" in catalog()

    rt, cache, origin = zero_network_sim(read_latency=0.01)
    strategy = build_strategy("s", chosen, cache, origin, rt)
    done: list[float] = []

    async def main() -> None:
        await strategy.reader.read(3)
        done.append(rt.now())

    rt.run(main())
    assert done == [pytest.approx(0.26)]


def test_listing_shows_every_part_with_its_settings() -> None:
    listed = catalog()
    for name in [*READ_PATHS, *WRITE_PATHS, *STAMPEDE_GUARDS, *LAYERS, "client"]:
        assert f"  {name} " in listed
    assert "lock: {expiry: 1.0, poll: 0.005, wait: 1.0, recheck: true, " in listed
    assert "release: unconditional|token}" in listed
    assert "flush: {interval: 1.0, batch: 100}" in listed
    assert "breaker: null|{failures: 5, reset: 1.0}" in listed


def test_patterns_import_nothing_from_the_lab_but_lab_core() -> None:
    for path in sorted((ROOT / "lab" / "patterns").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            for module in modules:
                if module == "lab" or module.startswith("lab."):
                    assert module.startswith(("lab.core", "lab.patterns")), (path.name, module)


# --- composition -----------------------------------------------------------------------------


def test_capabilities_are_an_enum_that_equals_the_backends_strings() -> None:
    offers = frozenset({"ttl", "nx", "incr", "pubsub", "set_if_equal"})
    rt, cache, origin = zero_network_sim()
    near_lease = spec(stampede={"lease": {}}, near={"invalidate": "bus"})
    strategy = build_strategy("s", near_lease, cache, origin, rt)
    assert strategy.requires == {Capability.NX, Capability.SET_IF_EQUAL, Capability.PUBSUB}
    assert strategy.requires - offers == set()
    assert sorted(frozenset({"nx"}) - frozenset({Capability.INCR})) == ["nx"]
    for reg in REGISTRATIONS:
        assert all(isinstance(c, Capability) for c in getattr(reg.part, "requires", ())), reg.name


def test_a_token_lock_also_needs_compare_and_delete() -> None:
    rt, cache, origin = zero_network_sim()
    plain = build_strategy("s", spec(stampede={"lock": {}}), cache, origin, rt)
    token = build_strategy("s", spec(stampede={"lock": {"release": "token"}}), cache, origin, rt)
    assert plain.requires == {Capability.NX}
    assert token.requires == {Capability.NX, Capability.SET_IF_EQUAL}


def test_the_client_wrapper_exposes_the_cache_protocol_only() -> None:
    rt, cache, _ = zero_network_sim()
    wrapped = ResilientCache(cache, rt, ClientSpec(), NoMetrics())
    assert hasattr(cache, "nodes")
    with pytest.raises(AttributeError):
        wrapped.nodes  # type: ignore[attr-defined]  # noqa: B018


def test_write_behind_gets_the_raw_cache_and_the_others_the_wrapped_one() -> None:
    rt, cache, origin = zero_network_sim()
    strategy = build_strategy("s", spec(write="behind"), cache, origin, rt, resilient=True)
    reader, writer = strategy.parts[:2]
    assert isinstance(reader, CacheAside) and isinstance(reader.cache, ResilientCache)
    assert isinstance(writer, WRITE_PATHS["behind"]) and writer.raw_cache is cache


@pytest.mark.parametrize(("write", "filled"), [("invalidate", False), ("around", True)])
def test_a_write_revokes_a_lease_only_through_an_invalidating_write_path(
    write: str, filled: bool
) -> None:
    """A reader takes key 7's lease and loads for 100 ms; a write lands at 50 ms. With
    write: invalidate the lease guard, told of the invalidation, revokes the lease and the
    reader's fill of the old row is refused; write: around tells nobody, and it fills."""
    rt, cache, origin = zero_network_sim(read_latency=0.1)
    strategy = build_strategy("s", spec(stampede={"lease": {}}, write=write), cache, origin, rt)
    cached: list[Versioned | None] = []

    async def write_later() -> None:
        await rt.sleep(0.05)
        await strategy.writer.write(7)

    async def main() -> None:
        rt.spawn(write_later())
        await strategy.reader.read(7)
        cached.append(await cache.get(7))

    rt.run(main())
    assert (cached[0] is not None) is filled


def test_the_near_layer_answers_first_and_passes_misses_and_writes_on() -> None:
    rt, cache, origin = zero_network_sim(read_latency=0.01)
    strategy = build_strategy("s", spec(near={"ttl": "1s"}), cache, origin, rt)
    sources: list[str] = []

    async def main() -> None:
        for _ in range(2):
            sources.append((await strategy.reader.read(1)).source)
        await strategy.writer.write(1)  # drops the local copy; the shared key is deleted
        sources.append((await strategy.reader.read(1)).source)
        await rt.sleep(2.0)  # the local copy expires; the shared one was filled again
        sources.append((await strategy.reader.read(1)).source)

    rt.run(main())
    assert sources == ["origin", "near", "origin", "cache"]


# --- the near cache's local store ------------------------------------------------------------

operations = st.lists(
    st.tuples(
        st.sampled_from(["get", "set", "delete"]),
        st.integers(0, 5),
        st.sampled_from([0.5, 1.0, 3.0]),  # ttl: steps land exactly on expiries too
        st.sampled_from([0.0, 0.0, 0.5]),  # time step
    ),
    max_size=200,
)


class ListLru:
    """The reference: entries oldest first in a list, (key, value, expires at)."""

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.entries: list[tuple[int, Versioned, float]] = []

    def _take(self, key: int) -> tuple[int, Versioned, float] | None:
        for i, entry in enumerate(self.entries):
            if entry[0] == key:
                return self.entries.pop(i)
        return None

    def get(self, key: int, now: float) -> Versioned | None:
        entry = self._take(key)
        if entry is None or entry[2] <= now:
            return None
        self.entries.append(entry)
        return entry[1]

    def set(self, key: int, value: Versioned, ttl: float, now: float) -> None:
        self._take(key)
        self.entries.append((key, value, now + ttl))
        if self.capacity is not None and len(self.entries) > self.capacity:
            self.entries.pop(0)

    def delete(self, key: int) -> None:
        self._take(key)

    def __len__(self) -> int:
        return len(self.entries)


def _at_once(*ops: str) -> list[tuple[str, int, float, float]]:
    """Operations at time 0 with a 5 s TTL: a read or a second set of key 1 refreshes it,
    so the set of key 3 must evict key 2."""
    return [(op, int(key), 5.0, 0.0) for op, key in (o.split() for o in ops)]


@settings(max_examples=300, deadline=None)
@given(capacity=st.one_of(st.none(), st.integers(1, 4)), ops=operations)
@example(capacity=2, ops=_at_once("set 1", "set 2", "get 1", "set 3", "get 1", "get 2"))
@example(capacity=2, ops=_at_once("set 1", "set 2", "set 1", "set 3", "get 1", "get 2"))
def test_the_local_lru_is_an_exact_lru_with_lazy_expiry(
    capacity: int | None, ops: list[tuple[str, int, float, float]]
) -> None:
    """Against a plain list model of the semantics the near cache had on lab.sim.store's
    LRU store: reads and sets refresh a key, the least recently used goes first, and an
    entry expires when read at or after its expiry, taking room until then."""
    local, reference = LocalLru(capacity), ListLru(capacity)
    now = 0.0
    for i, (op, key, ttl, step) in enumerate(ops):
        now += step
        if op == "get":
            assert local.get(key, now) == reference.get(key, now)
        elif op == "set":
            value = Versioned(i, 1)
            local.set(key, value, ttl, now)
            reference.set(key, value, ttl, now)
        else:
            local.delete(key)
            reference.delete(key)
        assert len(local) == len(reference)


# --- TTLs ------------------------------------------------------------------------------------


def test_next_ttl_draws_one_number_per_call_and_only_with_a_jitter() -> None:
    rt, cache, origin = zero_network_sim()
    jittered = CacheAside(Wiring(cache, origin, rt, seed=7), spec(ttl=60, ttl_jitter=0.2))
    reference = random.Random(7)
    expected = [60 * (1 + 0.2 * (2 * reference.random() - 1)) for _ in range(5)]
    assert [jittered.next_ttl() for _ in range(5)] == expected

    plain = CacheAside(Wiring(cache, origin, rt, seed=7), spec(ttl=60))
    assert [plain.next_ttl() for _ in range(3)] == [60, 60, 60]
    assert plain.random.random() == random.Random(7).random()  # nothing was drawn
