"""Memcached TTL rules: whole seconds rounded up, 0 never, 30 days and above absolute."""

from __future__ import annotations

import math

from lab.exptime import MAX_RELATIVE, expires_at, exptime


def test_ttls_round_up_to_whole_seconds() -> None:
    assert exptime(None, 1e9) == 0
    assert exptime(0.5, 1e9) == 1
    assert exptime(0.001, 1e9) == 1
    assert exptime(1.0, 1e9) == 1
    assert exptime(0.1 + 0.9, 1e9) == 1
    assert exptime(1.2, 1e9) == 2
    assert exptime(0, 1e9) == -1


def test_the_30_day_rule_sends_absolute_times() -> None:
    assert exptime(MAX_RELATIVE, 1e9) == MAX_RELATIVE
    assert exptime(MAX_RELATIVE + 1, 1_700_000_000.7) == 1_700_000_000 + MAX_RELATIVE + 1


def test_an_item_lives_until_the_tick_of_its_expiry() -> None:
    assert expires_at(0.5, 10.2) == 11  # 0.8 s here
    assert expires_at(0.5, 10.9) == 11  # 0.1 s here
    assert expires_at(2.0, 10.0) == 12
    assert expires_at(None, 3.0) == math.inf
