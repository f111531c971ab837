"""The simulated backend: SimPy virtual time, modelled latency, eviction and expiry."""
