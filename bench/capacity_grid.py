"""Capacity held on real servers: every cell of `lab.fidelity.hold.GRID` (value sizes
16 B-64 KiB, 1-8 nodes, 1-16 app instances) on every server binary found. Prints one
line per cell; exit 1 if any cell missed +/-1% or had an error.

    .venv/bin/python bench/capacity_grid.py [--quick] [--size 100B ...]
"""

from __future__ import annotations

import argparse
import sys

from lab.fidelity.hold import GRID, QUICK, run_hold
from lab.redis.binaries import available_binaries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the test suite's cut only")
    parser.add_argument("--size", action="append", help="only these value sizes")
    parser.add_argument("--nodes", action="append", type=int, help="only these node counts")
    parser.add_argument("--instances", action="append", type=int, help="only these")
    args = parser.parse_args()
    cells = QUICK if args.quick else GRID
    if args.size:
        cells = [c for c in cells if c.value_size in args.size]
    if args.nodes:
        cells = [c for c in cells if c.nodes in args.nodes]
    if args.instances:
        cells = [c for c in cells if c.instances in args.instances]
    failed = 0
    for binary in available_binaries():
        for cell in cells:
            result = run_hold(cell, binary)
            print(result.line(), flush=True)
            failed += not result.held
    print(f"{failed} cell(s) failed" if failed else "every cell held its capacity")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
