"""lab.core.units: human durations, sizes, rates and key counts, and their error messages."""

from __future__ import annotations

import math

import pytest

from lab.core.units import format_duration, parse_duration, parse_key_count, parse_rate, parse_size

# --- durations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300ms", 0.3),
        ("250us", 250e-6),
        ("250µs", 250e-6),
        ("10ns", 10e-9),
        ("5s", 5.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("5m", 300.0),
        ("5min", 300.0),
        ("1h", 3600.0),
        (" 2 ms ", 0.002),
        ("1e3ms", 1.0),
        ("0s", 0.0),
    ],
)
def test_duration_strings(text: str, seconds: float) -> None:
    got = parse_duration(text)
    assert isinstance(got, float)
    assert got == pytest.approx(seconds, rel=1e-12)


@pytest.mark.parametrize(("number", "seconds"), [(0, 0.0), (2, 2.0), (1.5, 1.5), (0.0003, 0.0003)])
def test_duration_numbers_are_seconds(number: float, seconds: float) -> None:
    got = parse_duration(number)
    assert isinstance(got, float)
    assert got == seconds


def test_minutes_are_not_milliseconds() -> None:
    assert parse_duration("5m") == 1000 * 60 * parse_duration("5ms")


@pytest.mark.parametrize(
    "junk", ["5 parsecs", "", "ms", "5", "s5", "-5s", "5 s s", "five seconds", True, None, [5]]
)
def test_duration_junk_is_a_clear_error(junk: object) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(junk)
    message = str(info.value)
    assert "expected a duration" in message
    assert repr(junk) in message


# --- sizes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1KiB", 1024),
        ("64MiB", 64 * 1024**2),
        ("1GiB", 1024**3),
        ("1KB", 1000),
        ("1kb", 1000),
        ("2MB", 2_000_000),
        ("512B", 512),
        ("1.5KiB", 1536),
        ("4 KiB", 4096),
    ],
)
def test_size_strings(text: str, size: int) -> None:
    got = parse_size(text)
    assert isinstance(got, int)
    assert got == size


def test_size_number_is_bytes() -> None:
    assert parse_size(1024) == 1024
    assert isinstance(parse_size(1024), int)


@pytest.mark.parametrize("junk", ["1 parsec", "KiB", "1XB", "-1KiB", "1KiB/s", "", True, None])
def test_size_junk_is_a_clear_error(junk: object) -> None:
    with pytest.raises(ValueError, match="expected a size") as info:
        parse_size(junk)
    assert repr(junk) in str(info.value)


# --- rates -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("5000/s", 5000.0),
        ("5000/sec", 5000.0),
        ("300/min", 5.0),
        ("60/m", 1.0),
        ("7200/h", 2.0),
        ("2/ms", 2000.0),
        ("5000 / s", 5000.0),
        ("1.5/s", 1.5),
    ],
)
def test_rate_strings(text: str, rate: float) -> None:
    got = parse_rate(text)
    assert isinstance(got, float)
    assert got == pytest.approx(rate, rel=1e-12)


def test_rate_number_is_per_second() -> None:
    assert parse_rate(250) == 250.0
    assert isinstance(parse_rate(250), float)


@pytest.mark.parametrize("junk", ["5000", "5000/parsec", "/s", "5000 per second", "", True, None])
def test_rate_junk_is_a_clear_error(junk: object) -> None:
    with pytest.raises(ValueError, match="expected a rate") as info:
        parse_rate(junk)
    assert repr(junk) in str(info.value)


# --- key counts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (10000, 10000),
        (10000.0, 10000),
        ("10000 keys", 10000),
        ("10000keys", 10000),
        ("10k keys", 10_000),
        ("10K keys", 10_000),
        ("2m keys", 2_000_000),
        ("1 key", 1),
        ("1.5k keys", 1500),
        ("1.5M keys", 1_500_000),
        ("10000", 10000),
        ("10k", 10_000),
        ("10 KEYS", 10),
    ],
)
def test_key_counts(value: object, count: int) -> None:
    got = parse_key_count(value)
    assert isinstance(got, int)
    assert got == count


@pytest.mark.parametrize("size", ["1KiB", "64MiB", "1KB", "512B", "1 GiB"])
def test_capacity_in_bytes_is_rejected_naming_keys(size: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_key_count(size)
    message = str(info.value)
    assert "bytes" in message
    assert "keys" in message
    assert repr(size) in message


@pytest.mark.parametrize("junk", ["lots", "keys", "", "-5 keys", "10 k k", 1.5, True, None, [10]])
def test_key_count_junk_is_a_clear_error(junk: object) -> None:
    with pytest.raises(ValueError, match="expected a key count") as info:
        parse_key_count(junk)
    assert repr(junk) in str(info.value)


@pytest.mark.parametrize("junk", ["5 parsecs", "10 kees"])
def test_key_count_typo_is_not_called_a_byte_size(junk: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_key_count(junk)
    assert "bytes" not in str(info.value)


@pytest.mark.parametrize("parse", [parse_key_count, parse_size])
def test_infinity_is_a_value_error(parse: object) -> None:
    with pytest.raises(ValueError):
        parse(math.inf)  # type: ignore[operator]


# --- formatting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(math.nan, "-"), (0.0, "0"), (350e-6, "350us"), (0.0012, "1.2ms"), (2.5, "2.5s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["1.5 keys", "0.5", "1e400", "1e400 keys"])
def test_a_key_count_is_whole_and_finite(text: str) -> None:
    with pytest.raises(ValueError, match="key"):
        parse_key_count(text)


def test_terabytes_are_sizes() -> None:
    assert parse_size("1TiB") == 1024**4
    assert parse_size("2TB") == 2 * 1000**4
