"""The memcached backend: real memcached servers the lab starts, a ketama client on
emcache, memcached's TTL rules, and leases and locks built from add and cas."""
