"""Errors a backend raises for failures a client would see in production.

The client loop counts these as errors; any other exception is a bug and
fails the run loudly.
"""


class BackendError(Exception):
    """A cache or origin operation failed (timeout, connection refused, node down)."""


class CacheUnavailable(BackendError):
    """The cache node owning a key could not be reached in time."""


class OriginUnavailable(BackendError):
    """The origin did not answer in time."""


class CacheRefused(CacheUnavailable):
    """The cache refused a write for lack of memory (Redis's OOM reply under `noeviction`,
    or a `volatile-*` policy with nothing left to evict). A strategy with a fallback
    absorbs it: the fill is skipped and counted in `cache_errors`."""
