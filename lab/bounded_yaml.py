"""YAML from a file nobody checked, read within bounds.

Every way a small file can make a YAML loader use unbounded time or memory, or
crash it, is refused here with one line before any value is built: a file too
large or not UTF-8, nesting too deep (the composer recurses), aliases that
expand to a huge document (a "billion laughs" anywhere in the file, not only
where the schema happens to look), a recursive alias, an integer with
thousands of digits. A key given twice in one mapping is an error too (YAML
keeps the last silently, hiding exactly the typos a schema is there to catch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 256 * 1024
"""A scenario is a page of YAML; 256 KiB is a few hundred pages, and what the pure-Python
parser reads in about a second (the C parser recurses on nesting: not for hostile input)."""
MAX_DEPTH = 32
"""Nesting levels, aliases expanded (the deepest shipped scenario uses 5)."""
MAX_EXPANDED = 1_000_000
"""Nodes plus scalar characters of the document with every alias expanded."""
MAX_DIGITS = 40
"""The longest integer a scenario needs (seeds are below 2**63: 19 digits)."""


class YamlRefused(Exception):
    """A document refused; the message is one line, `line` where it is known (0-based,
    as YAML's marks count)."""

    def __init__(self, problem: str, line: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.line = line


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader with a nesting limit while composing, a size check of the composed
    graph (aliases counted at each use) and no duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise YamlRefused(
                    f"nested more than {MAX_DEPTH} levels deep", event.start_mark.line
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _check_expansion(node)
        return node


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a graph whose expansion is too large or too deep, or cyclic: one
    iterative post-order walk, each distinct node measured once (linear in the file,
    however much its aliases would expand)."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    in_progress: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        kids = _children(node)
        if finished:
            in_progress.discard(key)
            own = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            size[key] = 1 + own + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if size[key] > MAX_EXPANDED:
                raise YamlRefused(
                    f"aliases expand to more than {MAX_EXPANDED:,} nodes and characters "
                    "(an alias bomb?); write the values out",
                    node.start_mark.line,
                )
            if depth[key] > MAX_DEPTH:
                raise YamlRefused(
                    f"nested more than {MAX_DEPTH} levels deep once aliases are expanded",
                    node.start_mark.line,
                )
            continue
        if key in size:
            continue
        in_progress.add(key)
        stack.append((node, True))
        for kid in kids:
            if id(kid) in in_progress:
                raise YamlRefused("an alias refers to a node that contains it", kid.start_mark.line)
            if id(kid) not in size:
                stack.append((kid, False))


def _mapping_without_duplicates(loader: _BoundedLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            continue  # construct_mapping reports unhashable keys itself
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"field {key!r} is given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


def _bounded_int(loader: _BoundedLoader, node: yaml.ScalarNode) -> int:
    """An integer of at most MAX_DIGITS digits (converting a long one costs quadratic time,
    and Python refuses past 4300 digits)."""
    digits = sum(c.isdigit() for c in str(node.value))
    if digits > MAX_DIGITS:
        raise YamlRefused(
            f"a number with {digits} digits; no field takes more than {MAX_DIGITS}",
            node.start_mark.line,
        )
    return int(loader.construct_yaml_int(node))


_BoundedLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)
_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _bounded_int)


def loads(text: str) -> Any:
    """The one document in `text`, or YamlRefused with a one-line reason."""
    try:
        return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader subclass: safe
    except YamlRefused:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise YamlRefused(f"invalid YAML: {problem}", mark.line if mark else None) from None
    except ValueError as exc:  # e.g. an integer longer than Python converts (4300 digits)
        raise YamlRefused(f"invalid YAML value: {str(exc).splitlines()[0]}") from None


def read_text(path: Path) -> str:
    """The file as text: at most MAX_BYTES, UTF-8 (a byte-order mark is allowed)."""
    with path.open("rb") as file:
        raw = file.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise YamlRefused(f"larger than {MAX_BYTES // 1024} KiB; a scenario is a page of YAML")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n")
        raise YamlRefused(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the file as UTF-8", line
        ) from None
