"""lab.metrics.oracle.Oracle: staleness judged against every acknowledged write.

Acks are fed in time order, as lab/client.py does (it acks at `rt.now()` when a
write returns), but versions may be acknowledged out of order (two concurrent
writers' acks can return in either order). Reads are judged after all acks are
in, which is equivalent to judging at read end: only acks at or before the
read's start matter (an ack at exactly the start counts: a client reading right
after its own acknowledged write must see it).
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from lab.metrics.oracle import Oracle

HISTORY = 300  # many versions of one key

Ack = tuple[int | str, int, float]  # key, version, time

KEYS = st.sampled_from([0, 1, "k"])


@st.composite
def ack_streams(draw: st.DrawFn, max_version: int = 40) -> list[Ack]:
    """Acks in time order (ties allowed), versions in any order, repeats allowed."""
    steps = draw(
        st.lists(
            st.tuples(
                KEYS,
                st.integers(1, max_version),
                st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0]),
            ),
            max_size=60,
        )
    )
    t = 0.0
    out = []
    for key, version, dt in steps:
        t += dt
        out.append((key, version, t))
    return out


READS = st.lists(
    st.tuples(KEYS, st.integers(0, 41), st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0, 1.3, 2.0])),
    min_size=1,
    max_size=30,
)


def oracle_of(acks: list[Ack], horizon: float = math.inf) -> Oracle:
    """The oracle after `acks`; an infinite horizon keeps every ack time (the exact
    definition); a finite one folds versions superseded longer ago than that."""
    oracle = Oracle(horizon)
    for key, version, t in acks:
        oracle.ack(key, version, t)
    return oracle


def read_times(acks: list[Ack], offsets: list[float]) -> list[float]:
    """Read start times spread over and around the ack times."""
    times = sorted({t for _, _, t in acks} | {0.0})
    return [times[i % len(times)] + off for i, off in enumerate(offsets)]


def brute(acks: list[Ack], key: object, version: int, t: float) -> tuple[float, int] | None:
    """The definition, straight from the full list of acks."""
    before = [(v, at) for k, v, at in acks if k == key and at <= t]
    newer = [at for v, at in before if v > version]
    if not newer:
        return None
    return t - min(newer), max(v for v, _ in before) - version


@given(ack_streams(), READS)
def test_no_read_before_any_ack_is_stale(acks: list[Ack], reads: list[tuple]) -> None:
    oracle = oracle_of(acks)
    for key, version, offset in reads:
        first = min((at for k, _, at in acks if k == key), default=math.inf)
        t = min(math.nextafter(first, -math.inf), offset)  # strictly before the first ack
        assert oracle.judge(key, version, t) is None


@given(ack_streams(), READS)
def test_latest_acked_before_start_is_fresh(acks: list[Ack], reads: list[tuple]) -> None:
    oracle = oracle_of(acks)
    for (key, _, _), t in zip(reads, read_times(acks, [r[2] for r in reads]), strict=True):
        latest = max((v for k, v, at in acks if k == key and at <= t), default=0)
        assert oracle.judge(key, latest, t) is None
        # and anything newer than it (a write overlapping the read) is fresh too
        assert oracle.judge(key, latest + 1, t) is None


@given(ack_streams(), READS)
def test_age_nonnegative_and_lag_positive(acks: list[Ack], reads: list[tuple]) -> None:
    oracle = oracle_of(acks)
    for (key, version, _), t in zip(reads, read_times(acks, [r[2] for r in reads]), strict=True):
        judged = oracle.judge(key, version, t)
        if judged is not None:
            age, lag = judged
            assert age >= 0
            assert lag >= 1


@settings(max_examples=300)
@given(ack_streams(), READS)
def test_judgement_matches_brute_force(acks: list[Ack], reads: list[tuple]) -> None:
    oracle = oracle_of(acks)
    for (key, version, _), t in zip(reads, read_times(acks, [r[2] for r in reads]), strict=True):
        assert oracle.judge(key, version, t) == brute(acks, key, version, t), (key, version, t)


@given(ack_streams())
def test_latest_is_the_newest_acked_version(acks: list[Ack]) -> None:
    oracle = oracle_of(acks)
    for key in (0, 1, "k", "never"):
        assert oracle.latest(key) == max((v for k, v, _ in acks if k == key), default=0)
    assert oracle.acked_writes == len(acks)


# --- examples --------------------------------------------------------------------------------


def test_overlapping_write_does_not_make_a_read_stale() -> None:
    oracle = Oracle()
    oracle.ack("k", 1, 1.0)
    oracle.ack("k", 2, 5.0)  # acked while the read below is in flight
    assert oracle.judge("k", 1, 4.0) is None
    assert oracle.judge("k", 1, math.nextafter(5.0, 0.0)) is None
    assert oracle.judge("k", 1, 5.0) == (0.0, 1)  # acked exactly at the start: counts
    assert oracle.judge("k", 1, 5.5) == (0.5, 1)


def test_stale_read_age_and_lag() -> None:
    oracle = Oracle()
    for version, t in [(1, 1.0), (2, 2.0), (3, 3.0)]:
        oracle.ack("k", version, t)
    assert oracle.judge("k", 0, 10.0) == (9.0, 3)
    assert oracle.judge("k", 1, 10.0) == (8.0, 2)
    assert oracle.judge("k", 2, 2.5) is None
    assert oracle.judge("k", 0, 2.5) == (1.5, 2)
    assert oracle.judge("other", 0, 10.0) is None


def test_out_of_order_acks_age_from_the_earliest_newer_ack() -> None:
    oracle = Oracle()
    oracle.ack("k", 1, 1.0)
    oracle.ack("k", 3, 2.0)  # version 3 acked before version 2
    oracle.ack("k", 2, 4.0)
    assert oracle.judge("k", 2, 3.0) == (1.0, 1)  # v3 was acked at 2.0, before the read
    assert oracle.judge("k", 1, 3.0) == (1.0, 2)  # v2 not yet acked: age from v3, lag to v3
    assert oracle.judge("k", 1, 5.0) == (3.0, 2)
    assert oracle.latest("k") == 3


def test_lost_writes_counts_acked_versions_above_the_final_one() -> None:
    oracle = Oracle()
    for version in range(1, 6):
        oracle.ack("a", version, float(version))
    oracle.ack("b", 1, 1.0)
    oracle.ack("b", 3, 2.0)  # version 2 never acknowledged
    oracle.ack("c", 1, 1.0)
    final = {"a": 3, "c": 1}  # b never reached the origin
    assert oracle.lost_writes(final) == 2 + 2 + 0
    assert oracle.lost_writes({"a": 5, "b": 3, "c": 7}) == 0
    assert oracle.lost_writes({}) == 5 + 2 + 1


def test_long_history_stays_exact() -> None:
    oracle = Oracle(horizon=math.inf)
    n = HISTORY + 50
    for version in range(1, n + 1):
        oracle.ack("k", version, float(version))
    # at t=200, v200 is the newest acknowledged; v11 (at 11 s) was the first after v10
    assert oracle.judge("k", 10, 200.0) == (200.0 - 11.0, 200 - 10)
    assert oracle.judge("k", n, 1000.0) is None
    assert oracle.latest("k") == n


@settings(max_examples=50)
@given(st.integers(0, 2 * HISTORY), st.floats(0.5, 3 * HISTORY))
def test_long_history_never_overstates_age(version: int, t: float) -> None:
    oracle = Oracle(horizon=math.inf)
    n = 3 * HISTORY
    for v in range(1, n + 1):
        oracle.ack("k", v, float(v))
    judged = oracle.judge("k", version, t)
    truth = brute([("k", v, float(v)) for v in range(1, n + 1)], "k", version, t)
    if judged is not None:
        assert truth is not None
        assert judged == truth
    else:
        assert truth is None


# --- regressions ------------------------------------------------------------------------------


def test_no_lost_writes_when_the_origin_has_the_newest_of_out_of_order_acks() -> None:
    oracle = Oracle()
    oracle.ack("k", 2, 1.0)
    oracle.ack("k", 1, 2.0)
    assert oracle.acked_writes == 2
    assert oracle.lost_writes({"k": 2}) == 0


def test_lost_writes_counts_an_older_version_acked_second() -> None:
    oracle = Oracle()
    oracle.ack("k", 2, 1.0)
    oracle.ack("k", 1, 2.0)
    assert oracle.lost_writes({"k": 0}) == 2


def test_read_spanning_a_long_history_is_still_stale() -> None:
    oracle = Oracle(horizon=math.inf)
    for version in range(1, HISTORY + 2):
        oracle.ack("k", version, float(version))
    assert oracle.judge("k", 0, 1.5) is not None  # v1 was acked at 1.0 < 1.5


# --- the horizon: memory flat in the number of writes -------------------------------------------

SPACED = st.lists(
    st.tuples(KEYS, st.integers(1, 60), st.sampled_from([0.0, 0.5, 1.0, 2.0, 7.0])),
    max_size=150,
)


def spaced(steps: list[tuple[int | str, int, float]]) -> list[Ack]:
    t, out = 0.0, []
    for key, version, dt in steps:
        t += dt
        out.append((key, version, t))
    return out


@settings(max_examples=300)
@given(SPACED, READS, st.sampled_from([1.0, 3.0, 10.0]))
def test_within_the_horizon_verdicts_match_brute_force(
    steps: list[tuple[int | str, int, float]], reads: list[tuple], horizon: float
) -> None:
    """For reads that start no earlier than `horizon` before the last ack: stale or fresh
    and the version lag are exact; the age is exact, or a lower bound (counted as
    floored) when the version's successors were folded away; lost writes stay exact."""
    acks = spaced(steps)
    oracle = oracle_of(acks, horizon)
    last = acks[-1][2] if acks else 0.0
    floored = 0
    for key, version, offset in reads:
        t = last - horizon + offset * horizon / 2
        truth = brute(acks, key, version, t)
        before = oracle.floored
        judged = oracle.judge(key, version, t)
        assert (judged is None) == (truth is None), (key, version, t)
        if judged is None or truth is None:
            continue
        assert judged[1] == truth[1]
        if oracle.floored == before:
            assert judged[0] == truth[0]
        else:
            floored += 1
            assert 0 <= judged[0] <= truth[0]
    assert oracle.floored == floored
    finals = [{}, {0: 5, 1: 30, "k": 59}, {0: 60, 1: 60, "k": 60}]
    exact = oracle_of(acks)
    for final in finals:
        assert oracle.lost_writes(final) == exact.lost_writes(final)


def test_history_stays_bounded_by_the_horizon_not_the_writes() -> None:
    """A hot key acked 100 times a second for an hour keeps about a horizon's worth."""
    oracle = Oracle(horizon=5.0)
    for version in range(1, 360_001):
        oracle.ack("hot", version, version / 100)
    h = oracle.history["hot"]
    assert len(h.acks) <= 2 * 5 * 100 + 1
    assert h.dropped == [[1, h.base - 1]]
    assert oracle.lost_writes({"hot": 1000}) == 360_000 - 1000
    assert oracle.judge("hot", 359_999, 3600.0) == (3600.0 - 3600.0, 1)
    # a read of a version superseded an hour ago: stale, exact lag, age at least the horizon
    age, lag = oracle.judge("hot", 10, 3600.0) or (0.0, 0)
    assert lag == 360_000 - 10
    assert 5.0 <= age <= 3600.0 - 0.11
    assert oracle.floored == 1


def test_a_folded_version_acked_twice_is_one_lost_write() -> None:
    """Found by the property test above: version 20 acked again below the kept window
    was added to the run [18, 19] while it sat in its own run [20, 20] (6 lost, not 5)."""
    oracle = Oracle(horizon=1.0)
    exact = Oracle(horizon=math.inf)
    for version, t in [(18, 0.0), (32, 0.0), (1, 1.0), (20, 1.0), (19, 1.0), (20, 1.0)]:
        oracle.ack(0, version, t)
        exact.ack(0, version, t)
    assert exact.lost_writes({}) == 5
    assert oracle.lost_writes({}) == 5
