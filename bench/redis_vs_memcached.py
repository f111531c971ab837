"""The Redis-vs-Memcached section of results/REPORT.md (lab/versus.py), after `cachelab bench`.

Measures every row on servers the lab starts (a few minutes); where memcached
or Redis is missing, the measured rows are skipped with the reason and the
declared capability rows are still written.
Usage: python bench/redis_vs_memcached.py [--results DIR] [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lab import versus
from lab.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    scenario = load_scenario(ROOT / "scenarios" / "redis-vs-memcached.yaml")

    def log(what: str) -> None:
        print(f"redis-vs-memcached: {what}", file=sys.stderr)

    measured = versus.measure(scenario, quick=args.quick, log=log)
    for reason in measured.skipped:
        log(f"measured rows skipped: {reason}")
    report = versus.write(measured, args.results)
    print(versus.markdown(measured))
    log(f"section written to {report}")


if __name__ == "__main__":
    main()
