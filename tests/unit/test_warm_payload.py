"""The warm ECHO's size per server: a shared query buffer (Valkey 8+, Redis 8+) gets one
that fits a single 16 KiB read; Redis 7 keeps a value's reply size (at most 16 KiB)."""

from __future__ import annotations

import pytest

from lab.redis.cache import ONE_READ_PAYLOAD, WARM_REPLY_MAX, shares_query_buffer, warm_payload


@pytest.mark.parametrize(
    ("label", "shared"),
    [
        ("valkey-9.1.2", True),
        ("valkey-8.0.0", True),
        ("valkey-7.2.5", False),
        ("redis-7.0.15", False),
        ("redis-7.4.2", False),
        ("redis-8.0.1", True),
        ("redis-?", False),
        ("", False),
        ("memcached-1.6", False),
    ],
)
def test_which_servers_share_a_query_buffer(label: str, shared: bool) -> None:
    assert shares_query_buffer(label) is shared


def test_payload_fits_one_read_only_where_the_buffer_is_shared() -> None:
    assert warm_payload(59_000, "redis-7.0.15") == WARM_REPLY_MAX
    assert warm_payload(59_000, "valkey-9.1.2") == ONE_READ_PAYLOAD < WARM_REPLY_MAX
    assert warm_payload(100, "valkey-9.1.2") == warm_payload(100, "redis-7.0.15") == 100
    header = len(f"*2\r\n$4\r\nECHO\r\n${ONE_READ_PAYLOAD}\r\n") + 2
    assert ONE_READ_PAYLOAD + header <= 16 * 1024
