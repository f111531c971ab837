"""Sweeps: a scenario's `sweep:` section (grid and zip over dotted field paths) expanded
into points, each a complete scenario named by its values. Pure data: nothing here
imports the scenario model (it hands in its own validator), so `lab.scenario` can use it.
The executors that run a sweep's cells live in `lab.execute`."""
