"""Key choosers: the exact tables below EXACT_KEYS (the streams results were made with),
the closed forms above it (checked against the exact pmf and for bijectivity), and
nothing O(keyspace) for a huge keyspace."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy import stats

from lab.runner import run_cell
from lab.scenario import KeyChooser
from lab.workload import keys as keys_module
from lab.workload.keys import (
    EXACT_KEYS,
    FeistelPermutation,
    KeyGenerator,
    RejectionInversionZipf,
    zipf_cdf,
    zipf_probabilities,
)
from tests.helpers import make_scenario


class ReferenceGenerator:
    """The original table algorithm, written out plainly: what every result so far
    was made with (a full permutation, cdf inversion, a full `latest` history)."""

    def __init__(self, spec: KeyChooser, n: int, rng: np.random.Generator) -> None:
        self.spec, self.n, self.rng = spec, n, rng
        self.permutation = rng.permutation(n)
        self.cdf = zipf_cdf(n, spec.s)
        self.hot = max(1, round(n * spec.hot_fraction))
        self.recent = np.arange(n, dtype=np.int64)

    def ranks(self, size: int) -> np.ndarray:
        found = np.searchsorted(self.cdf, self.rng.random(size), side="right")
        return np.minimum(found, self.n - 1)

    def draw(self, is_write: np.ndarray) -> np.ndarray:
        size, kind = is_write.size, self.spec.distribution
        if kind == "uniform":
            return self.rng.integers(0, self.n, size)
        if kind == "zipf":
            return self.permutation[self.ranks(size)]
        if kind == "hotspot":
            hot = self.rng.random(size) < self.spec.hot_share
            pick = np.where(
                hot,
                self.rng.integers(0, self.hot, size),
                self.rng.integers(self.hot, max(self.n, self.hot + 1), size),
            )
            return self.permutation[np.minimum(pick, self.n - 1)]
        write_keys = self.rng.integers(0, self.n, int(is_write.sum()))
        history = np.concatenate([self.recent, write_keys])
        before = np.cumsum(is_write) - is_write
        position = len(self.recent) + before - (self.ranks(size) + 1)
        out = history[np.maximum(position, 0)]
        out[is_write] = write_keys
        self.recent = history[-self.n :]
        return out


@pytest.mark.parametrize("distribution", ["uniform", "zipf", "hotspot", "latest"])
@pytest.mark.parametrize("n", [1, 2, 7, 300, 5000])
def test_below_the_threshold_the_stream_is_the_table_algorithms(distribution: str, n: int) -> None:
    spec = KeyChooser(distribution=distribution)  # type: ignore[arg-type]
    ours = KeyGenerator(spec, n, np.random.default_rng(5))
    reference = ReferenceGenerator(spec, n, np.random.default_rng(5))
    ops = np.random.default_rng(9)
    for chunk in range(12):  # chunks larger and smaller than the keyspace
        is_write = ops.random(3000 if chunk % 2 else 40) < 0.3
        assert np.array_equal(ours.draw(is_write), reference.draw(is_write)), chunk


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 16, 17, 255, 1000, 65_537, 100_003])
def test_the_lazy_permutation_is_a_bijection(n: int) -> None:
    permutation = FeistelPermutation(n, np.random.default_rng(n))
    image = permutation[np.arange(n)]
    assert np.array_equal(np.sort(image), np.arange(n))
    again = FeistelPermutation(n, np.random.default_rng(n))[np.arange(n)]
    assert np.array_equal(image, again)  # a function of the seed


def test_the_lazy_permutation_spreads_neighbouring_ranks() -> None:
    n = 1_000_003
    image = FeistelPermutation(n, np.random.default_rng(1))[np.arange(1000)]
    # ranks 0..999 should land all over the keyspace, like a random permutation's
    assert stats.kstest(image / n, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("s", [0.3, 0.99, 1.0, 1.2, 2.0, 5.0])
def test_closed_form_zipf_matches_the_exact_pmf(s: float) -> None:
    n, draws = 2000, 300_000
    ranks = RejectionInversionZipf(n, s, np.random.default_rng(7))(draws)
    assert ranks.min() >= 0 and ranks.max() < n
    observed = np.bincount(ranks, minlength=n).astype(float)
    expected = zipf_probabilities(n, s) * draws
    # pool neighbouring ranks until each bin expects at least 20 draws
    edges = [0]
    acc = 0.0
    for i, e in enumerate(expected):
        acc += e
        if acc >= 20:
            edges.append(i + 1)
            acc = 0.0
    edges[-1] = n
    obs = np.add.reduceat(observed, edges[:-1])
    exp = np.add.reduceat(expected, edges[:-1])
    result = stats.chisquare(obs, exp * obs.sum() / exp.sum())
    assert result.pvalue > 1e-4, (s, len(obs), result)


def test_closed_form_zipf_on_a_huge_keyspace_keeps_the_rank_ratios() -> None:
    s, n = 0.99, 10**12
    ranks = RejectionInversionZipf(n, s, np.random.default_rng(3))(1_000_000)
    # given rank < 20, P(rank k) is proportional to 1 / k**s whatever the normaliser
    top = np.bincount(ranks[ranks < 20], minlength=20).astype(float)
    weights = 1.0 / np.arange(1, 21) ** s
    assert stats.chisquare(top, weights / weights.sum() * top.sum()).pvalue > 1e-4
    assert ranks.max() > 10**9  # the tail of a 10^12 keyspace is reached


@pytest.mark.parametrize("distribution", ["uniform", "zipf", "hotspot", "latest"])
def test_a_huge_keyspace_costs_nothing_up_front(distribution: str) -> None:
    n = 10**12
    tracemalloc.start()
    generator = KeyGenerator(
        KeyChooser(distribution=distribution),  # type: ignore[arg-type]
        n,
        np.random.default_rng(1),
    )
    ops = np.random.default_rng(2)
    drawn = [generator.draw(ops.random(8192) < 0.2) for _ in range(20)]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 * 2**20  # a few chunks' worth, nothing per key
    keys = np.concatenate(drawn)
    assert keys.min() >= 0 and keys.max() < n
    assert len(np.unique(keys)) > 1000


def test_latest_above_the_threshold_reads_recent_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys_module, "EXACT_KEYS", 10)
    generator = KeyGenerator(
        KeyChooser(distribution="latest", s=3.0), 10**9, np.random.default_rng(4)
    )
    is_write = np.zeros(8192, dtype=bool)
    is_write[::2] = True  # alternate write, read
    keys = generator.draw(is_write)
    # with s = 3 most reads (rank 1: P ~ 0.83) touch the write just before them
    assert np.mean(keys[1::2] == keys[0::2]) > 0.75


def test_the_switch_happens_above_the_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    assert EXACT_KEYS == 10_000_000  # docs/scenarios.md states this size
    monkeypatch.setattr(keys_module, "EXACT_KEYS", 100)
    small = KeyGenerator(KeyChooser(), 100, np.random.default_rng(1))
    assert isinstance(small.permutation, np.ndarray)
    big = KeyGenerator(KeyChooser(), 101, np.random.default_rng(1))
    assert isinstance(big.permutation, FeistelPermutation)


@pytest.mark.parametrize("distribution", ["zipf", "latest"])
def test_a_run_over_a_huge_keyspace_costs_what_its_requests_cost(distribution: str) -> None:
    scenario = make_scenario(
        requests=400,
        keyspace={"keys": 10**12},
        topology={"nodes": 3},
        workload={
            "keys": {"distribution": distribution},
            "arrivals": {"process": "poisson", "rate": 1000},
        },
    )
    tracemalloc.start()
    result = run_cell(scenario, scenario.cells()[0])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.summary["requests"] == 400
    assert peak < 64 * 2**20
