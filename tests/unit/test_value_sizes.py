"""Per-key value sizes: fixed per (seed, key), O(1), distributed as the scenario says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lab.codec import encode
from lab.core import Versioned
from lab.scenario import ScenarioError, ValueSizeSpec, parse_scenario
from lab.workload.values import ValueSizes, run_value_size

LOGNORMAL = ValueSizeSpec(distribution="lognormal", median=1024, p99=65536)


def test_a_constant_is_the_plain_size_and_the_fast_path() -> None:
    scenario = parse_scenario({"name": "x", "duration": 5, "strategies": {"a": {}}})
    assert run_value_size(scenario.keyspace, 3) == 1024
    sizes = ValueSizes(ValueSizeSpec(distribution="constant", value=100))
    assert sizes(1) == sizes("k") == 100 and sizes.constant == 100


def test_a_key_keeps_its_size_for_a_seed_and_seeds_differ() -> None:
    a, b, other = ValueSizes(LOGNORMAL, 7), ValueSizes(LOGNORMAL, 7), ValueSizes(LOGNORMAL, 8)
    keys: list[int | str] = [*range(2000), "key:x", "ns:3:key:1"]
    assert [a(k) for k in keys] == [b(k) for k in keys]
    assert sum(a(k) != other(k) for k in keys) > 1900
    assert a(2**53 - 1) > 0  # any key, no table


def test_lognormal_has_its_median_and_p99() -> None:
    sizes = ValueSizes(LOGNORMAL, 1)
    drawn = np.array([sizes(k) for k in range(100_000)])
    assert np.median(drawn) == pytest.approx(1024, rel=0.03)
    assert np.quantile(drawn, 0.99) == pytest.approx(65536, rel=0.08)
    assert sizes.mean == pytest.approx(drawn.mean(), rel=0.1)


@pytest.mark.parametrize(
    ("spec", "mean"),
    [
        (ValueSizeSpec(distribution="uniform", low=100, high=200), 150),
        (ValueSizeSpec(distribution="exponential", mean=4096), 4096),
    ],
)
def test_uniform_and_exponential_means(spec: ValueSizeSpec, mean: float) -> None:
    sizes = ValueSizes(spec, 2)
    drawn = np.array([sizes(k) for k in range(50_000)])
    assert drawn.mean() == pytest.approx(mean, rel=0.03)
    if spec.distribution == "uniform":
        assert drawn.min() == 100 and drawn.max() == 200


def test_min_and_max_clamp() -> None:
    spec = ValueSizeSpec(distribution="lognormal", median=1024, p99=65536, min=512, max=8192)
    drawn = [ValueSizes(spec, 0)(k) for k in range(20_000)]
    assert min(drawn) == 512 and max(drawn) == 8192


def test_array_is_the_scalar_path() -> None:
    sizes = ValueSizes(LOGNORMAL, 5)
    keys = np.arange(1000, dtype=np.int64)
    assert sizes.array(keys).tolist() == [sizes(int(k)) for k in keys]


def test_the_codec_pads_a_value_to_its_keys_size() -> None:
    sizes = ValueSizes(LOGNORMAL, 4)
    for key in range(200):
        size = sizes(key)
        raw = encode(Versioned(3, size))
        assert len(raw) == max(size, len(b"3:%d:0:0:" % size))


def test_the_mean_is_finite_for_a_heavy_tail() -> None:
    spec = ValueSizeSpec(distribution="lognormal", median=1024, p99=10 * 1024**2)
    assert math.isfinite(spec.mean_size) and spec.mean_size <= spec.max


def test_the_real_estimate_counts_the_mean_size_and_a_byte_budget() -> None:
    from lab.limits import estimate
    from tests.helpers import make_scenario

    def memory(keyspace: dict[str, object], capacity: object = None) -> float:
        scenario = make_scenario(
            requests=100_000,
            keyspace=keyspace,
            topology={"capacity": capacity},
            backends=["sim", "redis"],
        )
        return estimate(scenario, scenario.cells()).memory

    small = memory({"keys": 50_000, "value_size": "1KiB"})
    heavy = {"distribution": "lognormal", "median": "1KiB", "p99": "64KiB"}
    # 50,000 values of ~3.6 KiB on average instead of 1 KiB
    assert memory({"keys": 50_000, "value_size": heavy}) - small > 50_000 * 2048
    budget = memory({"keys": 50_000, "value_size": "1KiB"}, "8MiB")
    assert small - budget > 40_000 * 1024  # a node holds ~8 MiB / 1.1 KiB keys, not 50,000


@pytest.mark.parametrize(
    ("value_size", "capacity", "smallest"),
    [
        ("1KiB", "10B", "1,024 B"),
        ({"distribution": "uniform", "low": 100, "high": 200}, "50B", "100 B"),
    ],
)
def test_a_byte_budget_under_one_value_is_refused(
    value_size: object, capacity: str, smallest: str
) -> None:
    doc = {
        "name": "x",
        "duration": 5,
        "keyspace": {"value_size": value_size},
        "topology": {"capacity": capacity},
        "strategies": {"a": {}},
    }
    with pytest.raises(ScenarioError, match=f"topology.capacity: .*smallest is {smallest}"):
        parse_scenario(doc, "x.yaml")
