"""Real ``redis-server`` / ``valkey-server`` processes for the lab.

The lab compares caching patterns against *real* servers (eviction,
failover, latency faults), so it starts servers on demand, injects faults
(kill, pause, restart) and never leaves orphan processes behind: the
generic life of a child server is `lab.processes.server.ChildServer`; this
module adds what is Redis about it (its options, PING as readiness, the
cluster bus port). Binary discovery is `lab.redis.binaries`, clusters are
`lab.redis.cluster`.

Servers always bind 127.0.0.1 on a free ephemeral port (never 6379), keep
their files in a private temporary directory, and run with ``save ""`` and
``appendonly no`` unless the caller overrides them.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from lab.processes.errors import ServerStartError
from lab.processes.ports import HOST, free_port
from lab.processes.server import LOG_NAME, ChildServer, ServerGroup, start_many
from lab.processes.workdir import OWNER_NAME
from lab.redis.binaries import ServerBinary, find_server_binary

__all__ = [
    "ConfigValue",
    "RedisServer",
    "control_client",
    "merge_config",
    "start_server",
    "start_shards",
]

ConfigValue = str | int | float | bool
"""A server config value; ``bool`` becomes ``yes``/``no``."""

# Options this module manages itself; overriding them would break ownership
# (daemonize), isolation (bind/dir) or log-based error reporting (logfile).
_RESERVED_OPTIONS: Final = frozenset(
    {"port", "bind", "dir", "daemonize", "logfile", "cluster-port", "cluster-enabled"}
)
_CLUSTER_CONFIG_NAME: Final = "nodes.conf"


def _format_value(value: ConfigValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def merge_config(
    config: Mapping[str, ConfigValue] | None, options: Mapping[str, ConfigValue]
) -> dict[str, ConfigValue]:
    """Merge an explicit config mapping with ``maxmemory_policy=...`` kwargs."""
    merged: dict[str, ConfigValue] = {}
    for key, value in (config or {}).items():
        merged[key.strip().lstrip("-").lower()] = value
    for key, value in options.items():
        merged[key.replace("_", "-").lower()] = value
    return merged


def control_client(port: int, timeout: float, decode: bool = True) -> redis.Redis:
    """An internal control client: short timeouts and no retries (fail fast)."""
    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=decode,
        retry=Retry(NoBackoff(), 0),
    )


class RedisServer(ChildServer):
    """One ``redis-server``/``valkey-server`` child process on 127.0.0.1.

    ``config`` is passed as ``--name value`` options, e.g. ``{"maxmemory":
    "10mb", "maxmemory-policy": "allkeys-lru"}``.  Construct then
    :meth:`start`, or use :func:`start_server` / the context manager.
    """

    dir_prefix: ClassVar[str] = "cachelab-redis-"
    readiness: ClassVar[str] = "answer PING"
    kept_on_restart: ClassVar[frozenset[str]] = frozenset(
        {LOG_NAME, _CLUSTER_CONFIG_NAME, OWNER_NAME}
    )
    """A restarted cluster node rejoins with its old identity (nodes.conf)."""

    def __init__(
        self,
        config: Mapping[str, ConfigValue] | None = None,
        *,
        port: int | None = None,
        binary: ServerBinary | None = None,
        cluster_enabled: bool = False,
        startup_timeout: float = 10.0,
        die_with_parent: bool | None = None,
    ) -> None:
        self._config = merge_config(config, {})
        reserved = sorted(self._config.keys() & _RESERVED_OPTIONS)
        if reserved:
            raise ValueError(f"options managed by RedisServer cannot be set: {reserved}")
        self.binary = binary or find_server_binary()
        self.cluster_enabled = cluster_enabled
        super().__init__(
            program=self.binary.path,
            port=port,
            startup_timeout=startup_timeout,
            die_with_parent=die_with_parent,
        )
        self._cluster_port: int | None = free_port() if cluster_enabled else None

    # -- introspection -----------------------------------------------------

    @property
    def cluster_port(self) -> int | None:
        """The cluster bus port (``--cluster-port``) when cluster-enabled."""
        return self._cluster_port

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self._port}/0"

    @property
    def config(self) -> dict[str, ConfigValue]:
        """The user-supplied config options (a copy)."""
        return dict(self._config)

    def __repr__(self) -> str:
        state = "paused" if self.paused else "alive" if self.alive else "stopped"
        return f"<RedisServer {self.binary.label} {HOST}:{self._port} pid={self.pid} {state}>"

    def client(self, **kwargs: Any) -> redis.Redis:
        """A new redis-py client for this server; the caller closes it."""
        kwargs.setdefault("host", HOST)
        kwargs.setdefault("port", self._port)
        return redis.Redis(**kwargs)

    def info(self, section: str | None = None, timeout: float = 2.0) -> dict[str, Any]:
        """``INFO`` as a dict (handy for asserting evictions, memory, roles)."""
        client = control_client(self._port, timeout)
        try:
            result = client.info(section) if section else client.info()
            return dict(result)
        finally:
            client.close()

    # -- what ChildServer asks ---------------------------------------------

    def _new_ports(self) -> None:
        self._port = free_port()
        if self.cluster_enabled:
            self._cluster_port = free_port()

    def _before_launch(self) -> None:
        if self.cluster_enabled and self.binary.version_tuple < (7,):
            # No --cluster-port before Redis 7: the bus is port+10000.
            self._cluster_port = None
            while self._port + 10000 > 65535:
                if self._fixed_port:
                    raise ServerStartError(f"port {self._port}: bus port would exceed 65535")
                self._port = free_port()

    def _argv(self) -> list[str]:
        assert self._dir is not None
        options: dict[str, ConfigValue] = {
            "save": "",
            "appendonly": "no",
            "protected-mode": "no",
            # Replicas sync immediately instead of after the default 5 s delay.
            "repl-diskless-sync-delay": 0,
        }
        if self.binary.version_tuple >= (7,):
            # DEBUG SLEEP etc. are useful latency faults; local connections only.
            options["enable-debug-command"] = "local"
        if self.cluster_enabled:
            options["cluster-config-file"] = str(self._dir / _CLUSTER_CONFIG_NAME)
        options.update(self._config)
        argv = [
            self.binary.path,
            "--port", str(self._port),
            "--bind", HOST,
            "--dir", str(self._dir),
            "--daemonize", "no",
        ]  # fmt: skip
        if self.cluster_enabled:
            argv += ["--cluster-enabled", "yes"]
            if self._cluster_port is not None:
                argv += ["--cluster-port", str(self._cluster_port)]
        for key, value in options.items():
            argv += [f"--{key}", _format_value(value)]
        return argv

    def _answers(self, proc: subprocess.Popen[bytes]) -> bool:
        """PING answered, by our process (INFO process_id): someone else answering on
        "our" port means ours will fail to bind."""
        client = control_client(self._port, 0.5)
        try:
            if client.ping():
                pid = client.info("server").get("process_id")
                return pid is not None and int(pid) == proc.pid
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            pass
        except redis.ResponseError:
            pass  # e.g. LOADING
        finally:
            client.close()
        return False


def start_server(
    config: Mapping[str, ConfigValue] | None = None,
    *,
    port: int | None = None,
    binary: ServerBinary | None = None,
    **options: ConfigValue,
) -> RedisServer:
    """Start one server; ``**options`` use underscores (``maxmemory_policy=...``)."""
    return RedisServer(merge_config(config, options), port=port, binary=binary).start()


def start_shards(
    n: int,
    config: Mapping[str, ConfigValue] | None = None,
    *,
    binary: ServerBinary | None = None,
    **options: ConfigValue,
) -> ServerGroup[RedisServer]:
    """Start ``n`` independent servers with the same config (a list; client-side
    sharding happens elsewhere)."""
    if n < 1:
        raise ValueError("n must be >= 1")
    merged = merge_config(config, options)
    binary = binary or find_server_binary()
    group = ServerGroup(RedisServer(merged, binary=binary) for _ in range(n))
    start_many(group)
    return group
