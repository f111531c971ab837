"""YCSB's core workloads as presets: `workload: {preset: ycsb-b}`.

A preset fills in the read/write mix and the key distribution (fields given
explicitly next to it win). YCSB's updates are our writes; its request
distributions map to ours (zipfian 0.99, latest). Workload E (short range
scans) and F (read-modify-write) have no counterpart in a key-value cache
comparison and are rejected with that reason.
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "ycsb-a": {"mix": {"read": 0.5, "write": 0.5}, "keys": {"distribution": "zipf", "s": 0.99}},
    "ycsb-b": {"mix": {"read": 0.95, "write": 0.05}, "keys": {"distribution": "zipf", "s": 0.99}},
    "ycsb-c": {"mix": {"read": 1.0, "write": 0.0}, "keys": {"distribution": "zipf", "s": 0.99}},
    "ycsb-d": {"mix": {"read": 0.95, "write": 0.05}, "keys": {"distribution": "latest", "s": 0.99}},
}
UNSUPPORTED = {
    "ycsb-e": "YCSB E is range scans, which a key-value cache comparison has no use for",
    "ycsb-f": "YCSB F is read-modify-write; model it as ycsb-a (reads and writes of hot keys)",
}


def expand(workload: dict[str, Any]) -> dict[str, Any]:
    """The workload mapping with its preset's fields filled in (explicit fields win)."""
    preset = workload.get("preset")
    if preset is None:
        return workload
    if not isinstance(preset, str):
        raise ValueError(f"a preset is a name such as ycsb-b; known: {', '.join(PRESETS)}")
    if preset in UNSUPPORTED:
        raise ValueError(UNSUPPORTED[preset])
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    rest = {k: v for k, v in workload.items() if k != "preset"}
    return {**PRESETS[preset], **rest}
