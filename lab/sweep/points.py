"""Expand a `sweep:` into points: each a complete scenario document with the swept
values written in, named by those values (`ttl=1s,capacity=500`), validated by the
scenario model like any file. Errors are one line naming the list and the value:
`sweep.grid["topology.capacity"][2]: must be >= 1, got 0`.

Paths are dotted field names as written in the YAML; `*` stands for every entry of
a mapping or list (`strategies.*.ttl`, `faults.*.duration`), a number for one entry
of a list (`faults.0.at`). Sweeping one of `workload.mix.read`/`write` drops the other
from the document (it becomes the rest).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from lab.names import check_name, short_repr
from lab.sweep.spec import Sweep

MAX_POINTS = 1000
"""Cells per scenario (before strategies, backends and seeds multiply them)."""
MAX_PATHS = 16
MAX_PATH_CHARS = 200
NOT_SWEPT = {
    "name": "it names the results folder",
    "description": "it is not part of the experiment",
    "seeds": "seeds are already repeated in every cell (seeds: [...])",
    "backends": "every cell runs on every backend already (backends: [...])",
    "sweep": "a sweep cannot sweep itself",
    "limits": "limits are not part of the experiment",
    "bench": "it is not part of the experiment",
}
MIX = ("workload", "mix")
NAMED = {"strategies": "strategy"}
"""Mappings whose keys are names the user gave: a sweep path through a missing name
would add an entry, not vary one."""

T = TypeVar("T")


class SweepError(ValueError):
    """A sweep that cannot be expanded: the message is `field: problem`."""


class Refused(Exception):
    """What a validator says about one document: the field and the problem."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}" if where else problem)
        self.where = where
        self.problem = problem


@dataclass(frozen=True)
class Axis:
    """One swept path: its list, where it is written (for errors) and its short name."""

    kind: str  # "grid" or "zip"
    path: str
    values: list[Any]
    short: str = ""

    @property
    def parts(self) -> list[str]:
        return self.path.split(".")

    def where(self, index: int | None = None) -> str:
        at = f"[{index}]" if index is not None else ""
        return f'sweep.{self.kind}["{short_repr(self.path)[1:-1]}"]{at}'


@dataclass(frozen=True)
class Point(Generic[T]):
    """One cell of the sweep: its name, its values by path (as written), the validated
    scenario."""

    name: str
    values: tuple[tuple[str, Any], ...]
    scenario: T


Validate = Callable[[dict[str, Any]], T]
"""Turns a document into a scenario, or raises Refused."""


def expand(data: dict[str, Any], sweep: Sweep, validate: Validate[T]) -> list[Point[T]]:
    """Every point of `sweep` over the scenario document `data`, validated; SweepError
    (one line) for a bad path, a bad value, too many cells or names that clash."""
    axes = _axes(sweep)
    base = {k: v for k, v in data.items() if k != "sweep"}
    texts = {axis.path: _value_texts(axis) for axis in axes}
    for axis in axes:
        _apply(base, [(axis, 0)])  # the path exists where the document says it must
    points: list[Point[T]] = []
    for combo in _combinations(axes):
        name = ",".join(f"{axis.short}={texts[axis.path][i]}" for axis, i in combo)
        document = _apply(base, combo)
        try:
            scenario = validate(document)
        except Refused as why:
            raise _blame(base, combo, name, why, validate) from None
        try:
            check_name(name)
        except ValueError as exc:
            raise SweepError(f"sweep: the cell {short_repr(name)}: {exc}") from None
        values = tuple((axis.path, axis.values[i]) for axis, i in combo)
        points.append(Point(name, values, scenario))
    return points


def _blame(
    base: dict[str, Any],
    combo: list[tuple[Axis, int]],
    name: str,
    why: Refused,
    validate: Validate[Any],
) -> SweepError:
    """Name the value at fault when one value alone is refused, else the cell."""
    for axis, i in combo:
        try:
            validate(_apply(base, [(axis, i)]))
        except Refused as alone:
            return SweepError(f"{axis.where(i)}: {_problem(axis, alone)}")
    return SweepError(f"sweep: the cell {name}: {why}")


def _problem(axis: Axis, why: Refused) -> str:
    same = why.where in (axis.path, "(top level)") or _matches(axis.parts, why.where.split("."))
    return why.problem if same else str(why)


def _matches(pattern: list[str], parts: list[str]) -> bool:
    return len(pattern) == len(parts) and all(
        p in ("*", q) for p, q in zip(pattern, parts, strict=False)
    )


# --- the sweep's own shape ----------------------------------------------------------------


def _axes(sweep: Sweep) -> list[Axis]:
    axes = [Axis("grid", p, v) for p, v in sweep.grid.items()]
    axes += [Axis("zip", p, v) for p, v in sweep.zip.items()]
    if not axes:
        raise SweepError(
            "sweep: give grid or zip with at least one field path and its values, "
            "for example grid: {topology.capacity: [500, 1000]}"
        )
    if len(axes) > MAX_PATHS:
        raise SweepError(f"sweep: at most {MAX_PATHS} field paths, got {len(axes)}")
    seen: set[str] = set()
    for axis in axes:
        _check_path(axis, seen)
    zipped = [a for a in axes if a.kind == "zip"]
    for axis in zipped[1:]:
        if len(axis.values) != len(zipped[0].values):
            raise SweepError(
                f"{axis.where()}: {len(axis.values)} values, but "
                f"{zipped[0].where()} has {len(zipped[0].values)}; zip lists go together "
                "value by value: give them the same length"
            )
    count = math.prod(len(a.values) for a in axes if a.kind == "grid")
    count *= len(zipped[0].values) if zipped else 1
    if count > MAX_POINTS:
        raise SweepError(
            f"sweep: {count:,} cells, over the {MAX_POINTS:,} a scenario may expand to; "
            "sweep fewer values (or split the question into several scenarios)"
        )
    return _short_names(axes)


def _check_path(axis: Axis, seen: set[str]) -> None:
    parts = axis.parts
    if not axis.path or len(axis.path) > MAX_PATH_CHARS or any(not p for p in parts):
        raise SweepError(
            f"{axis.where()}: a field path is dotted names, for example topology.capacity"
        )
    if parts[0] in NOT_SWEPT:
        raise SweepError(f"{axis.where()}: {parts[0]} cannot be swept: {NOT_SWEPT[parts[0]]}")
    if axis.path in seen:
        raise SweepError(f"{axis.where()}: the path is swept twice (in grid and zip)")
    seen.add(axis.path)


def _short_names(axes: list[Axis]) -> list[Axis]:
    """Each path's last name (`ttl`), or as many trailing names as make them distinct."""
    named = [[p for p in a.parts if p != "*"] or ["all"] for a in axes]
    for n in range(1, max(len(p) for p in named) + 1):
        shorts = [".".join(p[-n:]) for p in named]
        if len(set(shorts)) == len(shorts):
            break
    return [Axis(a.kind, a.path, a.values, s) for a, s in zip(axes, shorts, strict=False)]


def _value_texts(axis: Axis) -> list[str]:
    """How each value appears in a cell's name: as written, without spaces or slashes
    (`4000/s` is `4000_per_s`); a mapping or list by its position (`v2`)."""
    texts: list[str] = []
    for i, value in enumerate(axis.values):
        if isinstance(value, bool):
            text = str(value).lower()
        elif isinstance(value, int | float | str):
            text = str(value).replace("/", "_per_").replace(" ", "")
        else:
            text = f"v{i}"
        if not text:
            raise SweepError(f"{axis.where(i)}: an empty value cannot name a cell")
        if text in texts:
            raise SweepError(
                f"{axis.where(i)}: {short_repr(value)} is given twice (each value names a cell)"
            )
        texts.append(text)
    return texts


def _combinations(axes: list[Axis]) -> Iterator[list[tuple[Axis, int]]]:
    """Grid lists as a cartesian product, zip lists value by value, in file order."""
    grid = [[(a, i) for i in range(len(a.values))] for a in axes if a.kind == "grid"]
    zipped = [a for a in axes if a.kind == "zip"]
    rows = [[(a, i) for a in zipped] for i in range(len(zipped[0].values))] if zipped else [[]]
    for combo in itertools.product(*grid):
        for row in rows:
            yield [*combo, *row]


# --- writing values into a document ------------------------------------------------------


def _apply(base: dict[str, Any], combo: list[tuple[Axis, int]]) -> dict[str, Any]:
    document = copy.deepcopy(base)
    for axis, i in combo:
        _set(document, axis.parts, axis.values[i], axis, i)
    swept = {tuple(axis.parts) for axis, _ in combo}
    mix = _get(document, list(MIX))
    if isinstance(mix, dict):
        for mine, other in (("read", "write"), ("write", "read")):
            if (*MIX, mine) in swept and (*MIX, other) not in swept:
                mix.pop(other, None)  # it becomes the rest
    return document


def _set(node: Any, parts: list[str], value: Any, axis: Axis, i: int) -> None:
    head, rest = parts[0], parts[1:]
    if head == "*":
        children = list(node.values()) if isinstance(node, dict) else node
        if not isinstance(children, list) or not children:
            raise SweepError(f"{axis.where(i)}: '*' matches nothing there (no entries)")
        if not rest:
            for each in range(len(node)) if isinstance(node, list) else list(node):
                node[each] = copy.deepcopy(value)
            return
        for child in children:
            _set(child, rest, value, axis, i)
        return
    if isinstance(node, list):
        if not head.isdigit() or int(head) >= len(node):
            raise SweepError(
                f"{axis.where(i)}: {head!r}: the list there has {len(node)} entries "
                f"(0..{len(node) - 1})"
            )
        key: Any = int(head)
    elif isinstance(node, dict):
        key, rest = _key(node, parts)
        named = axis.parts[0] in NAMED and len(axis.parts) - len(parts) == 1
        if named and key not in node:  # node is the mapping of names itself
            raise _no_such_name(node, key, axis, i)
    else:
        raise SweepError(f"{axis.where(i)}: {head!r}: the value above it is not a mapping")
    if not rest:
        node[key] = copy.deepcopy(value)
        return
    child = node[key] if (isinstance(node, list) or key in node) else None
    if child is None:
        child = node[key] = {}
    if not isinstance(child, dict | list):
        raise SweepError(
            f"{axis.where(i)}: {key!r} is {short_repr(child)} in the scenario, not a mapping; "
            "write it out as one to sweep a field inside it"
        )
    _set(child, rest, value, axis, i)


def _no_such_name(node: dict[str, Any], key: str, axis: Axis, i: int) -> SweepError:
    names = ", ".join(map(short_repr, node)) or "none"
    return SweepError(
        f"{axis.where(i)}: the scenario has no {NAMED[axis.parts[0]]} named "
        f"{short_repr(key)} (it has: {names}); use one of those names or '*' for all"
    )


def _key(node: dict[str, Any], parts: list[str]) -> tuple[str, list[str]]:
    """The longest run of names that is a key of `node` (a strategy may be `a.b`)."""
    for n in range(len(parts), 0, -1):
        joined = ".".join(parts[:n])
        if joined in node:
            return joined, parts[n:]
    return parts[0], parts[1:]


def _get(node: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def value_at(document: Any, path: str) -> Any:
    """The value at `path` in a (dumped) scenario; with `*`, the first entry's."""
    node = document
    parts = path.split(".")
    while parts:
        if isinstance(node, list):
            head = parts.pop(0)
            node = node[0 if head == "*" else int(head)] if node else None
        elif isinstance(node, dict):
            if parts[0] == "*":
                parts.pop(0)
                node = next(iter(node.values()), None)
            else:
                key, parts = _key(node, parts)
                node = node.get(key)
        else:
            return None
    return node
