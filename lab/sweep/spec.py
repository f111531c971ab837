"""The `sweep:` section of a scenario: which fields take which values.

    sweep:
      grid:                       # every combination (cartesian product)
        strategies.*.ttl: [1s, 10s, 1m]
        topology.capacity: [500, 1000, 2000]
      zip:                        # value by value, together (lists of one length)
        workload.arrivals.rate: [1000/s, 2000/s]
        duration: [40s, 20s]

The types are checked here; the paths and the values are checked by
`lab.sweep.points.expand`, against the scenario model, field by field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

MAX_VALUES = 1000
"""Values in one list."""

Values = Annotated[list[Any], Field(min_length=1, max_length=MAX_VALUES)]


class Sweep(BaseModel):
    """Field paths (dotted, `*` for every strategy or fault) and the values each takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grid: dict[str, Values] = {}
    zip: dict[str, Values] = {}
