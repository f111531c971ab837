"""Opening trace files: the format from the name, zstd decompression, a sniff for the
wrong kind of file (text given as binary records or the reverse)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO

from lab.tracefile.spec import FORMATS, Format, TraceError

ZSTD_SUFFIXES = (".zst", ".zstd")
SNIFF_BYTES = 4096
_BINARY_BYTES = bytes(b for b in [*range(0x20), 0x7F] if b not in b"\t\n\r")


def is_zstd(path: Path) -> bool:
    return path.name.lower().endswith(ZSTD_SUFFIXES)


def plain_name(path: Path) -> str:
    """The file name without a compression suffix."""
    name = path.name
    for suffix in ZSTD_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def detect_format(path: Path, given: Format | None = None) -> Format:
    """The given format, or the one the file name says (libCacheSim's names included:
    `x.oracleGeneral`, `x.oracleGeneral.bin`, `x.bin`)."""
    if given is not None:
        return given
    name = plain_name(path).lower()
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".txt"):
        return "txt"
    if "oraclegeneral" in name or name.endswith(".bin"):
        return "oracleGeneral"
    raise TraceError(
        f"{path}: cannot tell the trace format from the file name; "
        f"pass the format ({' | '.join(FORMATS)})"
    )


def open_binary(path: Path) -> BinaryIO:
    """The file's bytes, decompressed on the fly when it ends in .zst."""
    try:
        raw = path.open("rb")
    except FileNotFoundError:
        raise TraceError(f"{path}: no such trace file; check the path") from None
    except IsADirectoryError:
        raise TraceError(f"{path}: is a folder; give the trace file inside it") from None
    except OSError as exc:
        raise TraceError(
            f"{path}: cannot be read ({exc.strerror}); check its permissions"
        ) from None
    if not is_zstd(path):
        return raw
    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)
    return io.BufferedReader(reader, buffer_size=1 << 20)


def read_fully(stream: BinaryIO, n: int, path: Path) -> bytes:
    """Up to `n` bytes (fewer only at the end of the stream); a corrupt zstd stream is
    a TraceError, not a library traceback."""
    try:
        data = stream.read(n)
    except Exception as exc:  # zstandard.ZstdError and friends
        raise TraceError(
            f"{path}: not a valid zstd stream ({exc}); is the file really compressed, or cut short?"
        ) from None
    return data or b""


def sniff(path: Path) -> bytes:
    """The first few kB of the (decompressed) file."""
    with open_binary(path) as stream:
        return read_fully(stream, SNIFF_BYTES, path)


def looks_like_text(head: bytes) -> bool:
    """Valid UTF-8 (a character cut at the end of the sample allowed) without control
    bytes other than tab and line ends."""
    if not head or len(head.translate(None, _BINARY_BYTES)) != len(head):
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3
    return True


def looks_binary(head: bytes) -> bool:
    return b"\x00" in head


def check_text(path: Path, kind: str) -> None:
    """A text trace (csv, txt) must be text, and not empty."""
    head = sniff(path)
    if looks_binary(head):
        raise TraceError(
            f"{path}: looks binary, not {kind}; pass format oracleGeneral for libCacheSim's "
            "binary traces"
        )
    if not head.strip():
        raise TraceError(f"{path}: the trace is empty; give a file with requests in it")
