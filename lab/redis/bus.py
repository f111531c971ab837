"""The Bus protocol on Redis pub/sub (at most once, as the simulator's bus).

Messages are keys: an int key travels as `i:<n>`, a string key as `s:<name>`,
so handlers get back exactly what was published. One subscriber connection
serves every handler of the process; a message published while it is not
subscribed is gone, as in Redis.

Faults:
- `bus_loss` is real: the server drops the subscriber connections
  (`CLIENT KILL TYPE pubsub`, or only this bus's own subscriber on a server
  the lab does not own) and the subscriber stays away until the window ends,
  then resubscribes (in the background: its server may be down too).
  `lost` counts the messages published while the bus's subscriber was not
  subscribed (PUBLISH's receiver count would do on one server, but a
  Redis Cluster node reports only its own subscribers).
- `bus_delay` is real network delay: the subscriber connects through the
  fault proxy (`translate`), which holds each message back by a sample on its
  way from the server (`lab.netfault`, direction "down"); one sample per
  message, where the simulator draws one per subscriber.
- `topology.bus.loss` (messages lost at random, outside any fault) is emulated
  as the simulator does it: each delivery (message x handler) is dropped with
  that probability when the subscriber receives it, drawn from
  `random.Random(seed)`, and counted in `lost`. Real pub/sub on loopback
  loses nothing by itself, so without this the setting would be ignored.
- A subscriber connection lost for any other reason (its node crashed or
  failed over) reconnects by itself, every `RECONNECT_EVERY` seconds, to the
  first address that answers, like a production subscriber with a retry loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from lab.core import Key
from lab.core.errors import CacheUnavailable
from lab.redis.cache import UNAVAILABLE

RECONNECT_EVERY = 0.1
"""Seconds between a lost subscriber's attempts to subscribe again."""
CONFIRM_TIMEOUT = 5.0

_names = itertools.count()


def encode_message(message: Key) -> bytes:
    return b"i:%d" % message if isinstance(message, int) else b"s:" + message.encode()


def decode_message(raw: bytes) -> Key:
    kind, body = raw[:2], raw[2:]
    return int(body) if kind == b"i:" else body.decode()


def _client(host: str, port: int, timeout: float | None, name: str | None = None) -> aioredis.Redis:
    return aioredis.Redis(
        host=host,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=1.0 if timeout is None else timeout,
        retry=Retry(NoBackoff(), 0),
        client_name=name,
    )


class RedisBus:
    """Publish with PUBLISH; deliver to local handlers from one SUBSCRIBE connection.

    `addresses` are the servers the bus may use, in order of preference: the
    first that answers carries the channel (Redis Cluster forwards PUBLISH to
    every node, so any node will do there). `kill_all` says whether a bus_loss
    may disconnect every pub/sub client of the server (the lab's own servers)
    or only this bus's subscriber (someone else's server).
    """

    def __init__(
        self,
        addresses: Sequence[tuple[str, int]],
        *,
        timeout: float = 1.0,
        kill_all: bool = True,
        translate: Mapping[tuple[str, int], tuple[str, int]] | None = None,
        loss: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not addresses:
            raise ValueError("a RedisBus needs at least one server address")
        self.addresses = list(addresses)
        self.timeout = timeout
        self.kill_all = kill_all
        self.translate = dict(translate or {})
        """Where the subscriber really connects for an address (a fault proxy in front)."""
        self.loss = loss
        self._random = random.Random(seed)
        self.name = f"cachelab-bus-{os.getpid()}-{next(_names)}"
        self._at = 0  # index of the address in use
        self._publisher = _client(*self.addresses[0], timeout)
        self._subscriber: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._sub_address: tuple[str, int] | None = None
        """The server the subscriber is (or was last) subscribed on, before any proxy."""
        self._handlers: dict[str, list[Callable[[Key], None]]] = {}
        self._listener: asyncio.Task[Any] | None = None
        self._started = False
        self.published = 0
        self.delivered = 0
        self.lost = 0
        """Deliveries that did not happen: (message, handler) pairs with no subscriber, or
        dropped by `loss`."""
        self.reconnects = 0
        self._losing = False  # bus_loss window: the subscriber stays away
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- faults ------------------------------------------------------------

    async def start_losing(self) -> None:
        """bus_loss begins: the server drops the subscriber, which stays away."""
        self._losing = True
        if self._sub_address is not None:  # on the server the subscriber is connected to
            control = _client(*self._sub_address, self.timeout)
            try:
                with contextlib.suppress(*UNAVAILABLE):
                    if self.kill_all:
                        await control.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # type: ignore[no-untyped-call]
                    else:
                        await self._kill_own(control)
            finally:
                await control.aclose()
        await self._stop_listening()  # the listener saw the disconnection; tidy up

    async def _kill_own(self, control: aioredis.Redis) -> None:
        listing = await control.execute_command("CLIENT", "LIST", "TYPE", "pubsub")  # type: ignore[no-untyped-call]
        text = listing.decode() if isinstance(listing, bytes) else str(listing)
        for line in text.splitlines():
            fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
            if fields.get("name") == self.name:
                await control.execute_command("CLIENT", "KILL", "ID", fields["id"])  # type: ignore[no-untyped-call]

    async def recover(self) -> None:
        """The loss window ends: the subscriber kept away subscribes again, in the
        background (its server may be down: a fault schedule must never wait for it)."""
        if self._losing:
            self._losing = False
            if self._started and self._handlers:
                self._background(self._subscribe_somewhere())

    @property
    def subscribed(self) -> bool:
        """Whether the subscriber is connected and subscribed right now."""
        return self._pubsub is not None

    def _background(self, coro: Any) -> None:
        """Run `coro` as a task this bus keeps (and cancels on close)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- protocol ----------------------------------------------------------

    def subscribe(self, channel: str, handler: Callable[[Key], None]) -> None:
        """Register `handler` (before `start`, which subscribes to the channels)."""
        if self._started and channel not in self._handlers:
            raise RuntimeError("subscribe to a new channel before the bus starts")
        self._handlers.setdefault(channel, []).append(handler)

    async def publish(self, channel: str, message: Key) -> None:
        self.published += 1
        payload = encode_message(message)
        publisher = self._publisher
        if self._pubsub is None:  # not subscribed (bus_loss, or reconnecting): nobody gets it
            self.lost += len(self._handlers.get(channel, ()))
        try:
            await publisher.publish(channel, payload)
        except UNAVAILABLE as exc:
            self._next_publisher(publisher)
            raise CacheUnavailable(f"publish {channel}: {exc}") from exc

    def _next_publisher(self, failed: aioredis.Redis) -> None:
        """After a failure, publish through the next address (a Redis Cluster forwards
        PUBLISH to every node); once per failed client, however many commands failed."""
        if len(self.addresses) > 1 and failed is self._publisher:
            self._at = (self._at + 1) % len(self.addresses)
            self._publisher = _client(*self.addresses[self._at], self.timeout)
            self._background(failed.aclose())

    async def start(self) -> None:
        """Subscribe to every channel handlers were registered for, then listen."""
        self._started = True
        if not self._handlers:
            return  # nobody listens: publishing still works (and reaches no one)
        await self._subscribe(self.addresses[0])

    async def _subscribe(self, address: tuple[str, int]) -> None:
        """Open a subscriber connection to `address`, wait for every confirmation (so
        nothing published from then on is missed), then listen on it."""
        subscriber = _client(*self.translate.get(address, address), None, self.name)
        pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*self._handlers)
            confirmed = 0
            while confirmed < len(self._handlers):
                reply = await pubsub.parse_response(block=True, timeout=CONFIRM_TIMEOUT)
                if reply is None:
                    raise CacheUnavailable("pub/sub subscription was not confirmed in time")
                if reply[0] in (b"subscribe", "subscribe"):
                    confirmed += 1
        except BaseException:
            with contextlib.suppress(*UNAVAILABLE):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            await subscriber.aclose()
            raise
        self._subscriber, self._pubsub = subscriber, pubsub
        self._sub_address = address
        self._listener = asyncio.get_running_loop().create_task(self._listen(pubsub))

    async def _subscribe_somewhere(self) -> None:
        """Subscribe through the first address that answers, retrying until one does
        (unless a bus_loss window begins meanwhile)."""
        while not self._losing:
            for address in self.addresses[self._at :] + self.addresses[: self._at]:
                try:
                    await self._subscribe(address)
                    return
                except (CacheUnavailable, *UNAVAILABLE):
                    continue
            await asyncio.sleep(RECONNECT_EVERY)

    async def _listen(self, pubsub: PubSub) -> None:
        while True:
            try:
                message = await pubsub.get_message(timeout=1.0)
            except UNAVAILABLE:
                break  # the server dropped us (bus_loss, crash, failover)
            if message is None or message.get("type") != "message":
                continue
            channel = message["channel"]
            name = channel.decode() if isinstance(channel, bytes) else str(channel)
            key = decode_message(message["data"])
            for handler in self._handlers.get(name, ()):
                if self.loss and self._random.random() < self.loss:
                    self.lost += 1  # topology.bus.loss, as the simulator draws it
                    continue
                self._deliver(handler, key)
        if self._pubsub is pubsub:  # not replaced meanwhile: reconnect unless in a window
            await self._drop_subscriber()
            if not self._losing:
                self.reconnects += 1
                await asyncio.sleep(RECONNECT_EVERY)
                await self._subscribe_somewhere()

    def _deliver(self, handler: Callable[[Key], None], key: Key) -> None:
        self.delivered += 1
        handler(key)

    async def _drop_subscriber(self) -> None:
        pubsub, subscriber = self._pubsub, self._subscriber
        self._pubsub = self._subscriber = None
        if pubsub is not None:
            with contextlib.suppress(*UNAVAILABLE):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        if subscriber is not None:
            with contextlib.suppress(*UNAVAILABLE):
                await subscriber.aclose()

    async def _stop_listening(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None and listener is not asyncio.current_task():
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, *UNAVAILABLE):
                await listener
        await self._drop_subscriber()

    async def close(self) -> None:
        self._losing = True  # no reconnection from now on
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, *UNAVAILABLE):
                await task
        await self._stop_listening()
        await self._publisher.aclose()
