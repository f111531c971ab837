"""Per-key value sizes are the same on both backends: every value the strategies store,
whoever wrote it (an origin read, a write-behind write), has its key's size."""

from __future__ import annotations

from typing import Any

import pytest

from lab.backend import FinalState, Parts
from lab.codec import decode, encode
from lab.redis.backend import RedisBackend
from lab.redis.binaries import ServerBinary
from lab.runner import run_cell
from lab.scenario import Cell, Scenario
from lab.sim.backend import SimBackend
from lab.workload.values import ValueSizes
from tests.helpers import make_scenario

SIZES = {"distribution": "lognormal", "median": "300B", "p99": "16KiB"}


def scenario_with_sizes(strategy: dict[str, Any]) -> Scenario:
    return make_scenario(
        requests=1500,
        keyspace={"keys": 300, "value_size": SIZES},
        workload={"mix": {"read": 0.8}, "arrivals": {"process": "poisson", "rate": 2000}},
        strategies={"s": strategy},
    )


class SimSizes(SimBackend):
    held: dict[int, int]

    async def final_state(self, parts: Parts) -> FinalState:
        assert self.cluster is not None
        SimSizes.held = {
            int(str(key).removeprefix("key:")): entry[0].size
            for node in self.cluster.nodes
            for key, entry in node.store._data.items()
        }
        return await super().final_state(parts)


class RealSizes(RedisBackend):
    held: dict[int, int]

    async def final_state(self, parts: Parts) -> FinalState:
        assert self.gauges is not None
        held = {}
        for i in range(len(self._site.deployment)):
            control = self.gauges.control(i)
            for name in control.scan_iter(match="key:*"):
                raw = control.get(name)
                value = decode(raw)
                assert len(raw) == len(encode(value))  # padded to the size it says
                held[int(name.decode().removeprefix("key:"))] = value.size
        RealSizes.held = held
        return await super().final_state(parts)


@pytest.mark.parametrize(
    "strategy",
    [
        {"read": "cache-aside", "write": "update", "ttl": 60},
        {"read": "cache-aside", "write": "behind", "ttl": 60},
    ],
    ids=["update", "behind"],
)
def test_every_stored_value_has_its_keys_size_on_both_backends(
    default_binary: ServerBinary, strategy: dict[str, Any]
) -> None:
    scenario = scenario_with_sizes(strategy)
    sizes = ValueSizes(scenario.keyspace.value_size, 1)
    run_cell(scenario, Cell("t", "s", "sim", 1), backend=SimSizes())
    run_cell(scenario, Cell("t", "s", "redis", 1), backend=RealSizes(binary=default_binary))
    assert len(SimSizes.held) > 150 and len(RealSizes.held) > 150
    assert {k: sizes(k) for k in SimSizes.held} == SimSizes.held
    assert {k: sizes(k) for k in RealSizes.held} == RealSizes.held
    common = SimSizes.held.keys() & RealSizes.held.keys()
    assert len(common) > 100
    assert len({sizes(k) for k in common}) > 50  # sizes really differ per key
