"""Reading trace files (oracleGeneral, csv, txt, each optionally .zst) in chunks, and
mapping their keys to the lab's key ids.

Below the scenario in the layers (the scenario embeds `TraceSpec` as
`workload.trace`) and below the workload (which replays traces); the statistics
and the synthesizer, which need the scenario and the workload, are in `lab.trace`.
"""
