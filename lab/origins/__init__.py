"""The origins of real runs: SQLite (default) or PostgreSQL, with emulated latency.

Every real backend uses these; `make_origin` picks one from the scenario.
"""

from __future__ import annotations

from lab.core import SizeOf
from lab.origins.base import RealOrigin, latency_from_env
from lab.origins.postgres import PostgresOrigin
from lab.origins.sqlite import SqliteOrigin
from lab.scenario import Distribution, OriginSpec

__all__ = [
    "PostgresOrigin",
    "RealOrigin",
    "SqliteOrigin",
    "latency_from_env",
    "make_origin",
]


def make_origin(
    spec: OriginSpec,
    *,
    value_size: int | SizeOf,
    seed: int = 0,
    emulate_latency: bool = True,
    network_rtt: Distribution | None = None,
) -> SqliteOrigin | PostgresOrigin:
    """SQLite in a temporary directory, or PostgreSQL when `spec.url` is given;
    `network_rtt`: the round trip to it, as the simulator's origin takes it."""
    url = getattr(spec, "url", None)
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"origin.url must be a postgresql:// URL, got {url!r}")
        return PostgresOrigin(
            spec,
            url,
            value_size=value_size,
            seed=seed,
            emulate_latency=emulate_latency,
            network_rtt=network_rtt,
        )
    return SqliteOrigin(
        spec,
        value_size=value_size,
        seed=seed,
        emulate_latency=emulate_latency,
        network_rtt=network_rtt,
    )
