"""Simulator throughput and memory: the lab's cache-aside run vs a minimal SimPy loop.

Prints, for a 1M-request cache-aside scenario (closed loop, 50 clients,
zipf 0.99, 95% reads, exact LRU, lognormal RTT and origin latency):
- simulated requests per wall-clock second through the lab (strategy code on
  the async trampoline, oracle, recorder, timeseries);
- the same figure for a minimal hand-written SimPy loop of the same model
  (generator processes, same samplers, same LRU store, latencies appended to
  a list), measured in the same process in paired rounds, and the median ratio;
- the lab driven through SimPy's public API only (`env.schedule`, `env.step`,
  `env.now`) instead of the internals lab/sim/bridge.py uses: the figure that
  justifies pinning SimPy (tests/unit/test_simpy_internals.py);
- peak traced memory (tracemalloc) of the lab's run at 1M and 4M requests with
  2,000 keys, and the peak resident memory of a 10M-request run with 100,000
  keys (a child process);
- trace replay (bench/trace_replay.py): the same run replayed from its `trace
  synth` csv against the synthetic stream, and peak memory on a trace 10x the
  chunk size.

Targets (issue 15): ratio >= 0.85 (aim 1.0), >= 250,000 requests/s on one core
of a quiet machine, peak at 4M <= 1.1x peak at 1M, 10M requests under 300 MiB.
Usage: python bench/sim_throughput.py [--requests N] [--repeat R] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import heapq
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import simpy
from simpy.events import NORMAL

from lab.runner import run_cell
from lab.sampling import rng_for, sampler
from lab.scenario import Scenario, parse_scenario
from lab.sim import bridge, runtime
from lab.workload.stream import RequestStream

SCENARIO: dict[str, Any] = {
    "name": "sim-throughput",
    "keyspace": {"keys": 100_000, "value_size": "1KiB"},
    "workload": {
        "mix": {"read": 0.95},
        "keys": {"distribution": "zipf", "s": 0.99},
        "arrivals": {"process": "closed", "clients": 50},
    },
    "topology": {"nodes": 1, "capacity": "20000 keys"},
    "strategies": {"cache-aside": {"read": "cache-aside", "write": "invalidate", "ttl": "5m"}},
}


def scenario(requests: int, keys: int | None = None) -> Scenario:
    data = {**SCENARIO, "requests": requests}
    if keys is not None:
        data["keyspace"] = {**SCENARIO["keyspace"], "keys": keys}
        data["topology"] = {**SCENARIO["topology"], "capacity": f"{keys // 5} keys"}
    return parse_scenario(data, "bench")


def run_lab(requests: int, keys: int | None = None) -> tuple[float, dict[str, Any]]:
    """CPU seconds and summary of the lab's own run. CPU time, not wall time: on a
    shared machine the wall clock also counts the time other jobs held the core."""
    sc = scenario(requests, keys)
    gc.collect()
    start = time.process_time()
    result = run_cell(sc, sc.cells()[0])
    return time.process_time() - start, result.summary


def run_minimal(requests: int) -> tuple[float, float]:
    """The same model as a minimal hand-written SimPy program: (CPU seconds, hit ratio)."""
    sc = scenario(requests)
    seed = 1
    env = simpy.Environment()
    topo, origin = sc.topology, sc.origin
    rtt = sampler(topo.network.rtt, rng_for(seed, "network.rtt"))
    service = sampler(topo.service_time, rng_for(seed, "node.service"))
    origin_read = sampler(origin.read_latency, rng_for(seed, "origin.read"))
    origin_write = sampler(origin.write_latency, rng_for(seed, "origin.write"))
    origin_rtt = sampler(topo.network.rtt, rng_for(seed, "origin.network"))
    capacity = topo.capacity or 1 << 62
    ttl = 300.0
    cache: OrderedDict[int, tuple[int, float]] = OrderedDict()
    rows: dict[int, int] = {}
    workers = [0.0] * origin.concurrency
    busy = [0.0]
    latencies: list[float] = []
    hits = [0, 0]
    next_request = RequestStream(sc, seed).requests().__next__

    def cache_delay(now: float) -> float:
        half = rtt() * 0.5
        arrive = now + half
        done = max(arrive, busy[0]) + service()
        busy[0] = done
        return done + half - now

    def origin_start(now: float, service_time: float) -> float:
        free = heapq.heappop(workers)
        start = max(now, free)
        heapq.heappush(workers, start + service_time)
        return start

    def client() -> Any:
        while True:
            try:
                is_write, key = next_request()
            except StopIteration:
                return
            t0 = env.now
            if is_write:
                half = origin_rtt() * 0.5
                s = origin_write()
                start = origin_start(env.now + half, s)
                yield env.timeout(start + s + half - env.now)
                rows[key] = rows.get(key, 0) + 1
                cache.pop(key, None)
                yield env.timeout(cache_delay(env.now))
            else:
                now = env.now
                entry = cache.get(key)
                if entry is not None and entry[1] <= now:
                    del cache[key]
                    entry = None
                if entry is not None:
                    cache.move_to_end(key)
                yield env.timeout(cache_delay(now))
                hits[1] += 1
                if entry is not None:
                    hits[0] += 1
                else:
                    half = origin_rtt() * 0.5
                    s = origin_read()
                    start = origin_start(env.now + half, s)
                    yield env.timeout(start + s + half - env.now)
                    version = rows.get(key, 0)
                    now = env.now
                    cache[key] = (version, now + ttl)
                    cache.move_to_end(key)
                    if len(cache) > capacity:
                        cache.popitem(last=False)
                    yield env.timeout(cache_delay(now))
            latencies.append(env.now - t0)
            if len(latencies) >= 1 << 15:
                latencies.clear()

    assert sc.workload.arrivals.clients is not None
    gc.collect()
    start = time.process_time()
    for _ in range(sc.workload.arrivals.clients):
        env.process(client())
    env.run()
    return time.process_time() - start, hits[0] / hits[1]


def peak_memory(requests: int, keys: int | None = None) -> float:
    """Peak traced Python memory (MiB) of one lab run."""
    gc.collect()
    tracemalloc.start()
    run_lab(requests, keys)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


@contextlib.contextmanager
def public_api() -> Iterator[None]:
    """The lab's simulator on SimPy's public API: a coroutine's delay is scheduled with
    `env.schedule`, the loop is `env.step()`, the clock `env.now` (cache and origin
    operations still read `env._now`). Same model, same order, same numbers."""
    park, loop, init = bridge.Driver.park, runtime.SimRuntime._loop, runtime.SimRuntime.__init__

    def park_public(self: bridge.Driver, following: Any) -> None:
        if following.__class__ is float:
            self.callbacks = bridge._ARMED
            self._env.schedule(self, NORMAL, following)
        else:
            park(self, following)

    def loop_public(self: runtime.SimRuntime, done: Any, queue: Any, pop: Any) -> None:
        env = self.env
        while done.callbacks is not None:
            env.step()

    def init_public(self: runtime.SimRuntime, env: simpy.Environment) -> None:
        init(self, env)
        self.now = lambda: env.now

    bridge.Driver.park = park_public  # type: ignore[method-assign]
    runtime.SimRuntime._loop = loop_public  # type: ignore[method-assign]
    runtime.SimRuntime.__init__ = init_public  # type: ignore[method-assign]
    try:
        yield
    finally:
        bridge.Driver.park = park  # type: ignore[method-assign]
        runtime.SimRuntime._loop = loop  # type: ignore[method-assign]
        runtime.SimRuntime.__init__ = init  # type: ignore[method-assign]


def peak_rss(requests: int, keys: int) -> float:
    """Peak resident memory (MiB) of a child process running one lab run."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(requests), str(keys)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.split()[-1])


def speed(n: int, rounds: int) -> None:
    """Paired rounds of the lab, the minimal loop and the public-API lab; medians."""
    lab_rates, ref_rates, pub_rates, ratios, pub_ratios = [], [], [], [], []
    for i in range(rounds):
        if i % 2:  # alternate who goes first
            ref_s, ref_hit = run_minimal(n)
            lab_s, summary = run_lab(n)
        else:
            lab_s, summary = run_lab(n)
            ref_s, ref_hit = run_minimal(n)
        with public_api():
            pub_s, pub_summary = run_lab(n)
        assert pub_summary["hit_ratio"] == summary["hit_ratio"], "public API: other numbers"
        lab_rates.append(summary["requests"] / lab_s)
        ref_rates.append(n / ref_s)
        pub_rates.append(summary["requests"] / pub_s)
        ratios.append(lab_rates[-1] / ref_rates[-1])
        pub_ratios.append(pub_rates[-1] / lab_rates[-1])
    lab_rate, ref_rate = statistics.median(lab_rates), statistics.median(ref_rates)
    ratio = statistics.median(ratios)
    print(f"requests per run          {n:,}   ({rounds} paired rounds, medians)")
    print(
        f"lab                       {lab_rate:>9,.0f} simulated requests/s   "
        f"(hit ratio {summary['hit_ratio']:.4f})"
    )
    print(
        f"minimal SimPy loop        {ref_rate:>9,.0f} simulated requests/s   "
        f"(hit ratio {ref_hit:.4f})"
    )
    print(
        f"ratio lab/minimal         {ratio:.2f}   (rounds: "
        f"{', '.join(f'{r:.2f}' for r in ratios)}; target >= 0.85, aim 1.0)"
    )
    print(
        f"lab on SimPy's public API {statistics.median(pub_rates):>9,.0f} simulated requests/s   "
        f"(x{statistics.median(pub_ratios):.2f} of the lab: the price of not pinning SimPy)"
    )
    print(
        f"throughput target         {'met' if lab_rate >= 250_000 else 'NOT met'} "
        "(>= 250,000 requests/s on one core of a quiet machine)"
    )


def memory(small: int, large: int, rss_requests: int | None) -> None:
    mem_small, mem_large = peak_memory(small, 2_000), peak_memory(large, 2_000)
    growth = mem_large / mem_small
    print(f"peak memory  2,000 keys {small:>10,} req  {mem_small:7.1f} MiB (tracemalloc)")
    verdict = (
        f"target <= 1.10: {'met' if growth <= 1.10 else 'NOT met'}"
        if large >= 4_000_000
        else "the target is for 1M vs 4M: run without --quick"
    )
    print(
        f"peak memory  2,000 keys {large:>10,} req  {mem_large:7.1f} MiB   "
        f"(x{growth:.2f} for x{large // small} requests; {verdict})"
    )
    if large < 4_000_000:
        print(
            "  (--quick: 250k requests are ~25 s of simulated time, inside the oracle's 60 s\n"
            "   ack horizon and the timeseries' first rows, so part of this growth is those\n"
            "   windows filling up; the issue's figure, 1M vs 4M, is the full run's)"
        )
    else:
        print(
            "  (what remains grows with simulated time only: one timeseries row, gauge\n"
            "   sample and p99 per 1 s interval, O(duration / interval))"
        )
    if rss_requests is not None:
        rss = peak_rss(rss_requests, 100_000)
        print(
            f"peak RSS   100,000 keys {rss_requests:>10,} req  {rss:7.1f} MiB (whole process; "
            f"target < 300 MiB: {'met' if rss < 300 else 'NOT met'})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="paired rounds")
    parser.add_argument(
        "--quick", action="store_true", help="200k requests; memory at 250k/1M, no 10M run"
    )
    parser.add_argument("--rss-child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        run_lab(*args.rss_child)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return
    n = 200_000 if args.quick else args.requests
    print("(requests per CPU second of this process; on a shared machine read the ratios)")
    speed(n, args.repeat)
    if args.quick:
        memory(250_000, 1_000_000, None)
    else:
        memory(1_000_000, 4_000_000, 10_000_000)
    import trace_replay  # bench/trace_replay.py: the same scenario replayed from a trace

    trace_replay.report(SCENARIO, n, min(args.repeat, 3), args.quick)


if __name__ == "__main__":
    main()
