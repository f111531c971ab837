"""A blocking control connection to one memcached (text protocol): stats, flush, keys.

Used outside the hot path (readiness, gauges once per interval, the inventory,
tests): a socket with a short timeout, no client library.
"""

from __future__ import annotations

import socket
from urllib.parse import unquote

Address = tuple[str, int]


class Control:
    """One connection; every call sends one command and reads its whole reply."""

    def __init__(self, address: Address, timeout: float = 2.0) -> None:
        self.address = address
        self.sock = socket.create_connection(address, timeout=timeout)
        self._buffer = b""

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Control:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _line(self) -> bytes:
        while b"\r\n" not in self._buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"memcached {self.address} closed the connection")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\r\n")
        return line

    def lines(self, command: str, end: bytes = b"END") -> list[bytes]:
        """Send `command`; the reply's lines up to `end` (an ERROR line raises)."""
        self.sock.sendall(command.encode() + b"\r\n")
        out: list[bytes] = []
        while (line := self._line()) != end:
            if line.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")):
                raise ValueError(f"memcached {command!r}: {line.decode(errors='replace')}")
            out.append(line)
        return out

    def stats(self, group: str = "") -> dict[str, str]:
        """``stats [group]`` as {name: value}."""
        reply = self.lines(f"stats {group}".strip())
        return dict(line.decode().split(" ", 2)[1:] for line in reply)

    def flush(self) -> None:
        self.lines("flush_all", end=b"OK")

    def metadump(self) -> list[dict[str, str]]:
        """Every live item's fields (``lru_crawler metadump all``: key, exp, la, cas, cls,
        size; the key URL-decoded)."""
        self.sock.sendall(b"lru_crawler metadump all\r\n")
        data = self._buffer
        while not (data.endswith(b"END\r\n") or data.startswith(b"BUSY")):
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"memcached {self.address} closed the connection")
            data += chunk
        self._buffer = b""
        if data.startswith(b"BUSY"):
            raise ValueError(f"memcached {self.address}: {data.decode(errors='replace')}")
        items = []
        for line in data.split(b"\n")[:-1]:  # lines end in \n, the reply in END\r\n
            fields = dict(f.split("=", 1) for f in line.decode().split(" ") if "=" in f)
            if "key" in fields:
                fields["key"] = unquote(fields["key"])
                items.append(fields)
        return items

    def keys(self) -> list[str]:
        """Every live key name."""
        return [item["key"] for item in self.metadump()]

    def get(self, names: list[str]) -> dict[str, bytes]:
        """Values of `names` (absent ones are missing from the result)."""
        found: dict[str, bytes] = {}
        if not names:
            return found
        self.sock.sendall(f"get {' '.join(names)}\r\n".encode())
        while (line := self._line()) != b"END":
            _, name, _, size = line.split(b" ")[:4]
            while len(self._buffer) < int(size) + 2:
                self._buffer += self.sock.recv(65536)
            found[name.decode()] = self._buffer[: int(size)]
            self._buffer = self._buffer[int(size) + 2 :]
        return found


def stats(address: Address, group: str = "", timeout: float = 2.0) -> dict[str, str]:
    """One ``stats`` call on a new connection."""
    with Control(address, timeout) as control:
        return control.stats(group)
