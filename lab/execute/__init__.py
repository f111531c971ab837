"""Running a plan of cells: in this process, in local worker processes (`--jobs N`) or
on a dask.distributed cluster (`--dask ADDRESS`), with one progress bar over the cells.

Every executor runs the same `run_task` and hands the result back to this process,
which alone writes the results folder (each run atomically): a worker that fails or
is interrupted never leaves half a run, and a Dask worker on another machine needs
no access to the results folder.
"""
