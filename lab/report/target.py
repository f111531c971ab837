"""`cachelab report --target 'hit_ratio>=0.9,stale_read_ratio<=0.01'`: which cells (a
sweep's point x strategy x backend) meet every bound, cheapest origin load first.
A bound holds for the mean over seeds; the table shows the 95% confidence interval
beside it, so a cell that meets a bound only by its mean is visible as such."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from lab.report.stats import Interval, mean_ci
from lab.report.sweeps import groups, is_sweep

COST = "origin_reads"
"""What "cheapest" means: the origin reads the cell made (mean over seeds)."""
_BOUND = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)(%?)\s*$")


class TargetError(ValueError):
    """A --target that cannot be read, or names a metric the runs do not have."""


@dataclass(frozen=True)
class Bound:
    metric: str
    op: str
    value: float

    def holds(self, x: float) -> bool:
        if not math.isfinite(x):
            return False
        return {"<=": x <= self.value, ">=": x >= self.value, "<": x < self.value}.get(
            self.op, x > self.value
        )

    def shortfall(self, x: float) -> float:
        """How far `x` misses the bound, relative to the bound (0 when it holds)."""
        if self.holds(x):
            return 0.0
        if not math.isfinite(x):
            return math.inf
        return abs(x - self.value) / max(abs(self.value), 1e-9)

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_target(text: str) -> list[Bound]:
    """`metric>=number` bounds separated by commas; a percentage is a fraction (90% is 0.9)."""
    bounds = []
    for part in text.split(","):
        found = _BOUND.match(part)
        if found is None:
            raise TargetError(
                f"--target: {part.strip()!r}: expected metric>=number or metric<=number "
                "(comma-separated), for example hit_ratio>=0.9,stale_read_ratio<=0.01"
            )
        metric, op, number, percent = found.groups()
        try:
            value = float(number) / (100 if percent else 1)
        except ValueError:
            raise TargetError(f"--target: {part.strip()!r}: {number!r} is not a number") from None
        bounds.append(Bound(metric, op, value))
    return bounds


@dataclass(frozen=True)
class Candidate:
    """One cell's means over seeds for the bounds' metrics and the cost."""

    scenario: str
    key: tuple[str, ...]
    seeds: int
    stats: dict[str, Interval]

    def meets(self, bounds: list[Bound]) -> bool:
        return all(b.holds(self.stats[b.metric].mean) for b in bounds)

    def cost(self) -> float:
        mean = self.stats[COST].mean
        return mean if math.isfinite(mean) else math.inf


def candidates(frame: pd.DataFrame, bounds: list[Bound]) -> list[Candidate]:
    """Every cell of every scenario in `frame`, with the means the bounds need."""
    missing = sorted({b.metric for b in bounds} - set(frame.columns))
    if missing:
        known = ", ".join(
            c
            for c in (
                "hit_ratio",
                "stale_read_ratio",
                "origin_reads",
                "read_latency_p99",
                "lost_writes",
                "errors",
            )
            if c in frame
        )
        raise TargetError(
            f"--target: no metric named {missing[0]!r} in these runs; for example {known}"
        )
    metrics = list(dict.fromkeys([*(b.metric for b in bounds), COST]))
    out = []
    for scenario, runs in frame.groupby("scenario", sort=True):
        keys = ["point", "strategy", "backend"] if is_sweep(runs) else ["strategy", "backend"]
        for key, cell in groups(runs, keys):
            stats = {
                m: mean_ci(pd.to_numeric(cell[m], errors="coerce")) if m in cell else mean_ci([])
                for m in metrics
            }
            out.append(Candidate(str(scenario), key, int(cell["seed"].nunique()), stats))
    return out


def _number(metric: str, ci: Interval) -> str:
    if ci.n == 0:
        return "-"
    ratio = metric.endswith("ratio")
    scale, unit = (100.0, "%") if ratio else (1.0, "")
    text = f"{ci.mean * scale:,.{2 if ratio else 4 if abs(ci.mean) < 10 else 0}f}{unit}"
    if ci.n > 1 and ci.half > 0:
        text += f" ± {ci.half * scale:,.{2 if ratio else 4 if abs(ci.half) < 10 else 0}f}"
    return text.replace(".0000 ", " ").replace(".0000", "")


def _table(rows: list[Candidate], bounds: list[Bound]) -> list[str]:
    metrics = list(dict.fromkeys([COST, *(b.metric for b in bounds)]))
    header = ["scenario", "cell", "strategy", "backend", "seeds", *metrics]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        key = row.key if len(row.key) == 3 else ("", *row.key)
        cells = [row.scenario, *key, str(row.seeds), *(_number(m, row.stats[m]) for m in metrics)]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def target_report(frame: pd.DataFrame, text: str) -> str:
    """Markdown: the cells meeting every bound, cheapest first; or that none does, and
    the three that come closest (smallest relative shortfall summed over the bounds)."""
    bounds = parse_target(text)
    found = candidates(frame, bounds)
    wanted = ", ".join(map(str, bounds))
    meeting = sorted((c for c in found if c.meets(bounds)), key=Candidate.cost)
    if meeting:
        verb = "meets" if len(meeting) == 1 else "meet"
        title = (
            f"{len(meeting)} of {len(found)} cells {verb} every bound ({wanted}); "
            "cheapest origin load first:"
        )
        return "\n".join([title, "", *_table(meeting, bounds), ""]) + _FOOT
    closest = sorted(
        found, key=lambda c: (sum(b.shortfall(c.stats[b.metric].mean) for b in bounds), c.cost())
    )[:3]
    title = f"No cell meets every bound ({wanted}) among {len(found)} cells. Closest:"
    return "\n".join([title, "", *_table(closest, bounds), ""]) + _FOOT


_FOOT = (
    "\nMeans over seeds (± the 95% confidence interval, Student t); a bound holds for "
    f"the mean. Cost: {COST}.\n"
)
