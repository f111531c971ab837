"""Tests that start real redis-server / valkey-server processes."""
