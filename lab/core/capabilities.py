"""What a backend's cache can do beyond get/set/delete, named once.

A part lists the capabilities it needs (`requires`); a backend lists those it
offers; a cell whose strategy needs one its backend lacks is skipped with the
reason. A `StrEnum`, so a backend's set of plain strings still compares equal.
"""

from __future__ import annotations

from enum import StrEnum


class Capability(StrEnum):
    TTL = "ttl"
    """Keys expire after a time to live."""
    NX = "nx"
    """SET only if absent (locks, leases)."""
    INCR = "incr"
    """Atomic counters (versioned keys' namespace versions)."""
    SET_IF_EQUAL = "set_if_equal"
    """Atomic compare-and-set / compare-and-delete (a Lua script on Redis)."""
    PUBSUB = "pubsub"
    """Messages between app instances (near-cache invalidation)."""
