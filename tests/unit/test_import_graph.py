"""The import graph of `lab`: layers from the command line down to the protocols, and no
import circles. docs/architecture.md draws the same layers.

A module may import from its own layer's package and from any lower layer, never from
a higher one; packages sharing a layer are independent of each other (the sim and
redis backends know nothing of each other; a third backend joins their layer).
Imports under `if TYPE_CHECKING:` do not count (they never run).
"""

from __future__ import annotations

import grimp
import pytest

LAYERS: list[grimp.Layer] = [
    grimp.Layer("lab.__main__"),
    grimp.Layer("lab.cli"),
    grimp.Layer("lab.fidelity"),  # sim vs real grids, capacity held on real servers
    grimp.Layer("lab.trace"),  # trace statistics and their figure, synthesis
    grimp.Layer("lab.report", "lab.versus", "lab.execute"),  # reports; the Redis-vs-Memcached table
    grimp.Layer("lab.results"),
    grimp.Layer("lab.runner", "lab.limits"),  # one run; what runs would cost
    grimp.Layer("lab.memcached"),  # a backend; may run a Redis bus beside memcached
    grimp.Layer("lab.sim", "lab.redis"),  # the backends
    grimp.Layer("lab.harness"),
    grimp.Layer("lab.client", "lab.orphans"),
    grimp.Layer("lab.backend"),  # the Backend protocol
    grimp.Layer("lab.netfault", "lab.origins", "lab.codec"),
    grimp.Layer("lab.aio"),  # the asyncio runtime, and faults on its clock
    grimp.Layer("lab.processes"),
    grimp.Layer("lab.metrics", "lab.workload"),
    grimp.Layer("lab.sampling"),
    grimp.Layer("lab.scenario"),  # its strategy model is built from the parts' registry
    grimp.Layer("lab.patterns", "lab.tracefile", "lab.sweep"),  # parts; trace files; sweeps
    grimp.Layer(
        "lab.backends", "lab.sharding", "lab.names", "lab.bounded_yaml", "lab.exptime", "lab.slabs"
    ),  # leaf helpers
    grimp.Layer("lab.core"),
]
"""High to low."""

KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("lab.scenario", "lab.workload.ycsb"): "the YCSB presets table sits in lab.workload",
}
"""Imports that break the layers today, each with what removes it. Delete an entry when
that import is gone (the test says so)."""


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return _build()


def test_known_exceptions_still_exist(graph: grimp.ImportGraph) -> None:
    """An exception whose import is gone must be deleted, so the list stays honest."""
    gone = [
        f"{importer} -> {imported}"
        for importer, imported in KNOWN_EXCEPTIONS
        if not graph.direct_import_exists(importer=importer, imported=imported)
    ]
    assert not gone, f"remove from KNOWN_EXCEPTIONS (the import is gone): {gone}"


def _build() -> grimp.ImportGraph:
    return grimp.build_graph("lab", exclude_type_checking_imports=True)


def _without_exceptions() -> grimp.ImportGraph:
    pruned = _build()
    for importer, imported in KNOWN_EXCEPTIONS:
        if pruned.direct_import_exists(importer=importer, imported=imported):
            pruned.remove_import(importer=importer, imported=imported)
    return pruned


def test_every_package_is_in_a_layer(graph: grimp.ImportGraph) -> None:
    placed = {tail for layer in LAYERS for tail in layer.module_tails}
    top_level = {m for m in graph.find_children("lab")}
    assert top_level <= placed, f"give these a layer in LAYERS: {sorted(top_level - placed)}"


def test_layers_are_respected() -> None:
    illegal = _without_exceptions().find_illegal_dependencies_for_layers(layers=LAYERS)
    lines = [
        f"{dep.importer} must not import {dep.imported}: " + "; ".join(map(_chain, dep.routes))
        for dep in sorted(illegal, key=lambda d: (d.importer, d.imported))
    ]
    assert not lines, "imports against the layers:\n" + "\n".join(lines)


def _chain(route: grimp.Route) -> str:
    heads, tails = "|".join(sorted(route.heads)), "|".join(sorted(route.tails))
    return " -> ".join([heads, *route.middle, tails])


def test_no_import_circles() -> None:
    """No module imports itself through others (module granularity, Tarjan's SCCs)."""
    pruned = _without_exceptions()
    circles = _strongly_connected(
        {m: set(pruned.find_modules_directly_imported_by(m)) for m in pruned.modules}
    )
    assert not circles, f"import circles: {circles}"


def _strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Components of more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_circle_finder_finds_circles() -> None:
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _strongly_connected(edges) == [["a", "b", "c"]]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []
