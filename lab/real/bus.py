"""The Bus protocol on Redis pub/sub (at most once, as the simulator's bus).

Messages are keys: an int key travels as `i:<n>`, a string key as `s:<name>`,
so handlers get back exactly what was published. Faults, as the simulator
models them: `bus_loss` drops what is published in its window (the
subscribers are disconnected), `bus_delay` prefixes the message with a
sampled delay (`d:<seconds>|`) that the receiving side waits before
delivering (one sample per message; the simulator draws one per subscriber). Pub/sub lives on one
server (node 0 of the topology), like an application that picks one Redis
for its invalidation channel. One subscriber connection serves every
handler of the process; a message published while it is not subscribed is
gone, as in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from lab.core import Key
from lab.core.errors import CacheUnavailable
from lab.real.redis_cache import UNAVAILABLE


def encode_message(message: Key) -> bytes:
    return b"i:%d" % message if isinstance(message, int) else b"s:" + message.encode()


def decode_message(raw: bytes) -> Key:
    kind, body = raw[:2], raw[2:]
    return int(body) if kind == b"i:" else body.decode()


class RedisBus:
    """Publish with PUBLISH; deliver to local handlers from one SUBSCRIBE connection."""

    def __init__(self, host: str, port: int, *, timeout: float = 1.0) -> None:
        self._publisher = aioredis.Redis(
            host=host,
            port=port,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._subscriber = aioredis.Redis(
            host=host, port=port, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0)
        )
        self._pubsub: PubSub | None = None
        self._handlers: dict[str, list[Callable[[Key], None]]] = {}
        self._listener: asyncio.Task[Any] | None = None
        self.published = 0
        self.delivered = 0
        self.lost = 0
        self._losing = False  # bus_loss: subscribers disconnected
        self._extra: Callable[[], float] | None = None  # bus_delay

    def start_losing(self) -> None:
        self._losing = True

    def start_delaying(self, extra: Callable[[], float]) -> None:
        self._extra = extra

    def recover(self) -> None:
        self._losing, self._extra = False, None

    def subscribe(self, channel: str, handler: Callable[[Key], None]) -> None:
        """Register `handler` (before `start`, which subscribes to the channels)."""
        if self._pubsub is not None and channel not in self._handlers:
            raise RuntimeError("subscribe to a new channel before the bus starts")
        self._handlers.setdefault(channel, []).append(handler)

    async def publish(self, channel: str, message: Key) -> None:
        self.published += 1
        if self._losing:  # the subscribers are disconnected: nobody gets it
            self.lost += len(self._handlers.get(channel, ()))
            return
        payload = encode_message(message)
        if self._extra is not None:  # bus_delay: published in the window, arrives late
            payload = b"d:%a|" % self._extra() + payload
        try:
            await self._publisher.publish(channel, payload)
        except UNAVAILABLE as exc:
            raise CacheUnavailable(f"publish {channel}: {exc}") from exc

    async def start(self) -> None:
        """Subscribe to every channel handlers were registered for, then listen."""
        if not self._handlers:
            return  # nobody listens: publishing still works (and reaches no one)
        self._pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(*self._handlers)
        # wait for the confirmations, so nothing published from now on is missed
        confirmed = 0
        while confirmed < len(self._handlers):
            reply = await self._pubsub.parse_response(block=True, timeout=5.0)
            if reply is None:
                raise CacheUnavailable("pub/sub subscription was not confirmed in 5 s")
            if reply[0] in (b"subscribe", "subscribe"):
                confirmed += 1
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    async def _listen(self) -> None:
        assert self._pubsub is not None
        while True:
            message = await self._pubsub.get_message(timeout=1.0)
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            data: bytes = message["data"]
            late = 0.0
            if data.startswith(b"d:"):
                head, _, data = data.partition(b"|")
                late = float(head[2:])
            key = decode_message(data)
            loop = asyncio.get_running_loop()
            for handler in self._handlers.get(name, ()):
                if late > 0:
                    loop.call_later(late, self._deliver, handler, key)
                else:
                    self._deliver(handler, key)

    def _deliver(self, handler: Callable[[Key], None], key: Key) -> None:
        self.delivered += 1
        handler(key)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, *UNAVAILABLE):
                await self._listener
            self._listener = None
        if self._pubsub is not None:
            with contextlib.suppress(*UNAVAILABLE):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None
        await self._publisher.aclose()
        await self._subscriber.aclose()
