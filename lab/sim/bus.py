"""A simulated pub/sub bus: delivery after a sampled delay, each message to each
subscriber lost with probability `loss` (at most once, like Redis pub/sub)."""

from __future__ import annotations

import random
from collections.abc import Callable, Generator
from types import coroutine
from typing import Any

import simpy
from simpy.events import Event

from lab.core import Key
from lab.sampling import Sampler
from lab.sim.bridge import wake_after


class SimBus:
    """The Bus protocol on SimPy: publishing costs the publisher one RTT."""

    def __init__(
        self,
        env: simpy.Environment,
        *,
        rtt: Sampler,
        delay: Sampler,
        loss: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.env = env
        self._rtt = rtt
        self._delay = delay
        self.loss = loss
        self._random = random.Random(seed)
        self._subscribers: dict[str, list[Callable[[Key], None]]] = {}
        self.published = 0
        self.delivered = 0
        self.lost = 0
        self._losing = False  # bus_loss: subscribers disconnected
        self._extra: Sampler | None = None  # bus_delay

    def start_losing(self) -> None:
        self._losing = True

    def start_delaying(self, extra: Sampler) -> None:
        self._extra = extra

    def recover(self) -> None:
        self._losing, self._extra = False, None

    def subscribe(self, channel: str, handler: Callable[[Key], None]) -> None:
        self._subscribers.setdefault(channel, []).append(handler)

    @coroutine
    def publish(self, channel: str, message: Key) -> Generator[Event, Any, None]:
        env = self.env
        self.published += 1
        half = self._rtt() * 0.5
        for handler in self._subscribers.get(channel, ()):
            if self._losing or (self.loss and self._random.random() < self.loss):
                self.lost += 1
                continue
            delay = half + self._delay() + (self._extra() if self._extra is not None else 0.0)
            delivery = wake_after(env, delay)
            delivery.callbacks.append(self._deliver(handler, message))
        yield wake_after(env, 2 * half)

    def _deliver(self, handler: Callable[[Key], None], message: Key) -> Callable[[Event], None]:
        def deliver(_: Event) -> None:
            self.delivered += 1
            handler(message)

        return deliver
