"""A real TCP fault proxy (latency, partitions) in front of any TCP server.

`FaultProxy` (in `proxy`) is the parent's handle; the proxy runs in a child
process (`child`) with one listening port per target (`listener`) and one
object per proxied connection (`connection`).
"""

from lab.netfault.connection import PartitionMode
from lab.netfault.proxy import FaultProxy, ProxyError

__all__ = ["FaultProxy", "PartitionMode", "ProxyError"]
