"""Origin faults on the real origins: emulated as the simulator models them (the
origin's latency emulation slows down or refuses), for every real backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from lab.aio.faults import Action
from lab.origins.base import RealOrigin
from lab.scenario import OriginDown, OriginSlow


class OriginFaults(Protocol):
    """What the origin fault handlers act on."""

    @property
    def origin(self) -> RealOrigin: ...

    def inline(self, what: str, fn: Callable[[], None]) -> Action: ...


def origin_slow(ctx: OriginFaults, fault: OriginSlow, index: int) -> tuple[Action, Action]:
    factor, origin = fault.factor, ctx.origin
    return (
        ctx.inline(f"origin x{factor:g} slower", lambda: origin.slow(factor)),
        ctx.inline("origin recovers", origin.recover),
    )


def origin_down(ctx: OriginFaults, fault: OriginDown, index: int) -> tuple[Action, Action]:
    origin = ctx.origin
    return ctx.inline("origin down", origin.go_down), ctx.inline("origin recovers", origin.recover)
