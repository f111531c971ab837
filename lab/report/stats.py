"""Means over seeds with a 95% confidence interval (Student t): seeds are independent
repetitions of one configuration, so the interval says how far the mean of a few of
them may be from the mean of many. scipy is not needed at run time: t quantiles come
from a table (1-30 degrees of freedom) and a Cornish-Fisher expansion beyond (error
under 1e-4, tests/report/test_stats.py checks both against scipy.stats.t)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

Z975 = 1.959963984540054
T975 = (
    12.706204736174707, 4.302652729749464, 3.182446305284263, 2.7764451051977934,
    2.570581835636314, 2.4469118511449666, 2.3646242515927853, 2.306004135204172,
    2.2621571628540993, 2.2281388519649385, 2.200985160082949, 2.1788128296634177,
    2.1603686564610127, 2.1447866879169273, 2.131449545559323, 2.1199052992210112,
    2.1098155778331806, 2.10092204024096, 2.093024054408263, 2.0859634472658364,
    2.079613844727662, 2.0738730679040147, 2.0686576104190406, 2.0638985616280205,
    2.059538552753294, 2.055529438642871, 2.0518305164802833, 2.048407141795244,
    2.045229642132703, 2.0422724563012373,
)  # fmt: skip
"""scipy.stats.t.ppf(0.975, df) for df = 1..30."""


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (two-sided 95%)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if df <= len(T975):
        return T975[df - 1]
    z = Z975  # Cornish-Fisher: Abramowitz & Stegun 26.7.5
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / df + g2 / df**2 + g3 / df**3


@dataclass(frozen=True)
class Interval:
    """A mean over `n` values and the half-width of its 95% confidence interval (NaN
    with fewer than two values: one seed says nothing about the spread)."""

    mean: float
    half: float
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half if self.n > 1 else self.mean

    @property
    def high(self) -> float:
        return self.mean + self.half if self.n > 1 else self.mean


def mean_ci(values: Iterable[float]) -> Interval:
    """Mean and 95% CI half-width of the finite values (NaN, NaN, 0 when there are none)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(finite)
    if n == 0:
        return Interval(math.nan, math.nan, 0)
    mean = math.fsum(finite) / n
    if n == 1:
        return Interval(mean, math.nan, 1)
    variance = math.fsum((v - mean) ** 2 for v in finite) / (n - 1)
    return Interval(mean, t975(n - 1) * math.sqrt(variance / n), n)
