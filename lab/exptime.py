"""Memcached's expiration times: what a TTL in seconds (a float) becomes on a server.

memcached takes whole seconds (`exptime`): 0 means never, a negative value
means already expired, and a value above 30 days (2,592,000 s) is not a
duration but an absolute Unix time. Its clock (`current_time`) ticks once a
second, and an item set at tick `c` with exptime `n` is gone from tick
`c + n` on: it lives between `n - 1` and `n` seconds. The lab rounds a TTL
*up* to whole seconds (so 500 ms becomes 1 s: the item lives up to one
second, never forever, as 0 would mean), and the simulator's memcached store
uses the same functions, so both agree on what a 500 ms TTL means.
"""

from __future__ import annotations

import math
from typing import Final

MAX_RELATIVE: Final = 60 * 60 * 24 * 30
"""Exptimes above this many seconds (30 days) are absolute Unix times."""


def exptime(ttl: float | None, now_unix: float) -> int:
    """The exptime memcached is sent for `ttl` seconds at wall time `now_unix`."""
    if ttl is None:
        return 0
    if ttl <= 0:
        return -1  # already expired (memcached stores it dead)
    seconds = math.ceil(ttl - 1e-9)  # 1.0000000001 from float arithmetic stays 1
    if seconds > MAX_RELATIVE:
        return int(now_unix) + seconds  # the 30-day rule: absolute time
    return seconds


def expires_at(ttl: float | None, now: float) -> float:
    """When an item set at `now` (seconds on a clock that ticks on whole seconds since
    the server started) with `ttl` stops being served: the tick `floor(now) + n`."""
    if ttl is None:
        return math.inf
    if ttl <= 0:
        return now
    return math.floor(now) + math.ceil(ttl - 1e-9)
