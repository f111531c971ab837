"""Replies in flight (lab/sim/replies.py): the bytes a Redis 7.0 reply holds beyond the
connection's buffer, and which commands share an event-loop pass."""

from __future__ import annotations

from lab.sim.replies import Passes, bulk_reply_length, reply_held


def test_reply_blocks_as_redis_7_allocates_them() -> None:
    assert bulk_reply_length(65536) == 65546  # $65536\r\n ... \r\n
    assert reply_held(16000) == 0  # fits the 16 KiB buffer
    assert reply_held(16374) == 0  # 16,384 B with its header and CRLF: still fits
    assert reply_held(16384) == 20480  # 10 B over: a 16 KiB block + header -> 20 KiB class
    assert reply_held(65536) == 57344  # 49,162 B over (+16) -> the 56 KiB class


def test_commands_share_a_pass_only_when_they_arrive_while_one_runs() -> None:
    passes = Passes()
    passes.enter(1.0, 0.0)  # idle: a pass of its own
    assert passes.before == 0
    passes.replied(100)
    passes.enter(1.5, 1.2)  # idle again: the first pass's replies were written
    assert passes.before == 0
    passes.replied(100)
    # arrives while that pass runs (until 1.6): the next pass starts at 1.6
    passes.enter(1.55, 1.6)
    assert passes.before == 0
    passes.replied(500)
    passes.enter(1.58, 1.7)  # arrived before 1.6: joins it, after the 500 B
    assert passes.before == 500
    passes.replied(700)
    passes.enter(1.59, 1.8)
    assert passes.before == 1200
    passes.enter(1.65, 1.9)  # arrived after 1.6, while that pass runs: the next one
    assert passes.before == 0
