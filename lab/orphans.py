"""What the versioned-keys pattern leaves behind: entries under an old namespace version.

A write bumps `<ns>:version`, so every `<ns>:v<n>:<key>` with n below the
current version is never read again; it lingers until its TTL or an
eviction. Counted the same way on every backend, from the key names each
node holds (`lab.backend.NodeKeys`).
"""

from __future__ import annotations

from collections.abc import Sequence

from lab.backend import NodeKeys

COUNTER = ":version"


async def orphaned_versioned_keys(nodes: Sequence[NodeKeys]) -> tuple[int, int]:
    """(keys, bytes) cached under an older namespace version than the current one."""
    current: dict[str, int] = {}
    for node in nodes:
        counters = [name for name in node.names if name.endswith(COUNTER)]
        for name, value in zip(counters, await node.read(counters), strict=True):
            if value is not None:
                current[name[: -len(COUNTER)]] = value.version
    keys = size = 0
    for node in nodes:
        stale = [name for name in node.names if _older(name, current)]
        for value in await node.read(stale):
            if value is not None:
                keys += 1
                size += value.size
    return keys, size


def _older(name: str, current: dict[str, int]) -> bool:
    """`<ns>:v<n>:...` with n below the namespace's current version."""
    namespace, sep, rest = name.partition(":v")
    version = rest.partition(":")[0]
    return bool(sep) and version.isdigit() and int(version) < current.get(namespace, 0)
