"""The redis backend: cells on real Redis-protocol servers (redis-server or valkey-server).

- `backend`: `RedisBackend`, the `lab.backend.Backend` for real servers;
- `deployment`: the topology as servers (the lab's own shards or cluster, or
  servers the user names), `server` / `cluster` / `binaries`: the processes;
- `cache`, `bus`: the Cache and Bus protocols on redis.asyncio;
- `capacity`: maxmemory matched to a capacity in keys;
- `faults`: one handler per fault kind on real servers.

Generic pieces live outside: child processes in `lab.processes`, the fault
proxy in `lab.netfault`, the SQL origins in `lab.origins`, the asyncio
runtime in `lab.aio`, the value encoding in `lab.codec`.
"""
