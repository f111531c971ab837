"""SIGTERM ends a cachelab command as Ctrl-C does, and leaves the handler as it was.

The end-to-end cases (a real `cachelab run --backend redis` terminated or killed:
servers stopped, temp dirs removed or swept by the next run) are in
tests/real/test_no_leftovers.py.
"""

from __future__ import annotations

import argparse
import os
import signal
import time

import pytest

import lab.cli
from lab.cli import main

INTERRUPTED = "cachelab: interrupted; finished runs are kept, the current one is discarded\n"


def test_sigterm_during_a_command_is_an_interrupt(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def terminated(args: argparse.Namespace) -> int:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # interrupted at once
        return 0

    monkeypatch.setattr(lab.cli, "cmd_validate", terminated)
    before = signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    assert main(["validate", "any.yaml"]) == 130
    assert time.monotonic() - started < 5
    assert capsys.readouterr().err == INTERRUPTED
    assert signal.getsignal(signal.SIGTERM) is before


def test_an_ignored_sigterm_stays_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []

    def command(args: argparse.Namespace) -> int:
        seen.append(signal.getsignal(signal.SIGTERM))
        return 0

    monkeypatch.setattr(lab.cli, "cmd_validate", command)
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        assert main(["validate", "any.yaml"]) == 0
        assert seen == [signal.SIG_IGN]
    finally:
        signal.signal(signal.SIGTERM, previous)
