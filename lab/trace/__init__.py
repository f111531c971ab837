"""Trace statistics and the scenario-to-trace synthesizer (the readers and the key
mapping are in `lab.tracefile`). See docs/traces.md."""
