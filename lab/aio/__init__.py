"""The Runtime on asyncio, for every backend that runs on real servers."""

from lab.aio.runtime import AsyncioQueue, AsyncioRuntime, run_bounded

__all__ = ["AsyncioQueue", "AsyncioRuntime", "run_bounded"]
