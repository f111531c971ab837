"""Replies in flight: the bytes a Redis 7.0 node holds for replies it has not written yet.

Redis runs every command its event loop read in one pass (`aeProcessEvents`: each
readable connection's commands, one after another) and writes the replies only when
the pass ends (`beforeSleep` -> `handleClientsWithPendingWrites`). A reply goes into the
connection's reply buffer (`c->buf`: 16 KiB, `PROTO_REPLY_CHUNK_BYTES`; the lab's servers
keep it that size, `DEBUG REPLYBUFFER resizing 0`); what does not fit goes into a block
of the connection's reply list, allocated for it (`_addReplyProtoToList`: at least 16
KiB, plus a 16-B `clientReplyBlock` header, rounded up to jemalloc's size class). Those
blocks count against `maxmemory` (only replicas' and the AOF's buffers are left out:
`freeMemoryGetNotCountedMemory`), and every command evicts before it runs
(`performEvictions`): the k-th GET of a 64 KiB value in one pass evicts for the k-1
replies still held (57,344 B each: 0.7 of a 64 KiB key).

Measured by sending k GETs on k connections while the server sleeps (`DEBUG SLEEP`), so
one pass runs them all, on a node full to 4 KiB under `maxmemory` (200 keys, allkeys-lru;
2 shared busy cores; `tests/differential/test_replies_in_flight.py`): redis-server
7.0.15 evicted 5-6 keys for 8 GETs of 64 KiB and 21-22 for 32 (this model: 5 and 21),
26-32 for 32 GETs of 16 KiB values (a 16 KiB value's reply is 10 B too long for the
buffer: a 20 KiB block each; model: 29); valkey-server 9.1.2 evicted 1-2 whatever k
(allocations of its own; 0 in the model), not 21: Valkey 9 replies with strings of 16
KiB and more by reference (`min-string-size-avoid-copy-reply` 16384, "reply copy
avoidance", valkey PR #2078), so its reply list holds no copy.
So the model is a property of the memory model (`RedisMemory.counts_replies`), on for
Redis 7.0's formula, off for Valkey 9's.

`Passes` places a node's commands in passes as the simulated node serves them: a
command that finds the node idle is a pass of its own; one that arrives while a pass
runs waits for the next pass, which starts when the running one ends and takes every
command that arrived meanwhile. A pass's replies are freed when it ends.
"""

from __future__ import annotations

from lab.sim.memory import size_class

REPLY_BUFFER = 16 * 1024
"""A connection's reply buffer (`PROTO_REPLY_CHUNK_BYTES`), fixed on the lab's servers."""
REPLY_BLOCK_HEADER = 16
"""`clientReplyBlock`'s header (size, used)."""


def bulk_reply_length(value_length: int) -> int:
    """Bytes of a GET's reply: `$<length>\\r\\n<value>\\r\\n`."""
    return len(str(value_length)) + 3 + value_length + 2


def reply_held(value_length: int) -> int:
    """Bytes a connection allocates beyond its reply buffer for a GET of a value of
    `value_length` bytes (its buffer empty before: one command per connection at a time):
    0 when the reply fits the buffer, else one reply-list block."""
    rest = bulk_reply_length(value_length) - REPLY_BUFFER
    if rest <= 0:
        return 0
    return size_class(max(REPLY_BUFFER, rest) + REPLY_BLOCK_HEADER)


class Passes:
    """One node's event-loop passes: the bytes of replies held in the pass that takes
    commands now (`held`), and how many were held before the command being placed
    (`before`, what its eviction check counts)."""

    __slots__ = ("before", "held", "starts")

    def __init__(self) -> None:
        self.starts = 0.0
        """When the pass that takes new arrivals starts (arrivals before it join it)."""
        self.held = 0
        self.before = 0

    def enter(self, arrive: float, busy_until: float) -> None:
        """A command arrives at `arrive`; the node is busy until `busy_until` (the end
        of the last pass placed so far)."""
        if arrive < self.starts:  # that pass has not started: the command joins it
            self.before = self.held
            return
        # the node is running a pass (the next one starts when it ends) or idle (a pass
        # of its own starts now): the replies of the passes before are written
        self.starts = busy_until if arrive < busy_until else arrive
        self.held = self.before = 0

    def replied(self, nbytes: int) -> None:
        """The command placed last left `nbytes` of reply held until its pass ends."""
        self.held += nbytes
