"""Recorded traces: readers (oracleGeneral, csv, txt, each optionally .zst), the key
mapping, trace statistics and the scenario-to-trace synthesizer. See docs/traces.md."""
