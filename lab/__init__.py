"""cachelab: measure distributed caching patterns side by side."""

__version__ = "0.1.0"
