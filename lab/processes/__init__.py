"""Child processes the lab owns: servers (Redis, Valkey, memcached, ...) and helpers.

Generic machinery, reused by every real backend: binary discovery
(`binaries`), free loopback ports (`ports`), liveness from /proc (`procfs`),
forking with PR_SET_PDEATHSIG from a long-lived thread (`spawn`), the
registry of every child so none is orphaned (`registry`), working
directories swept after a SIGKILLed lab (`workdir`), SIGTERM/SIGINT handlers
(`signals`) and the lifecycle of one server process (`server.ChildServer`:
start on a free port, stop, kill, pause, resume, restart).

Orphan protection, in layers:

1. every process is a plain (non-daemonized) child recorded in a module-level
   registry; `registry.stop_all` stops them and runs at interpreter exit;
2. on the first start from the main thread, SIGTERM/SIGINT handlers are
   installed that stop all servers and then chain to the previous handler
   (SIGINT still raises ``KeyboardInterrupt``; SIGTERM with the default
   disposition still terminates the process with SIGTERM);
3. on Linux every child gets ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` so even a
   SIGKILLed Python parent takes its servers down.  The kernel fires this
   when the *thread* that forked the child exits, so a server started from
   another thread (e.g. a fault's restart in ``asyncio.to_thread``) is forked
   by a daemon "spawner" thread that lives as long as the process, never by
   the short-lived caller; ``die_with_parent=False`` disarms it,
   ``die_with_parent=True`` arms it in the calling thread itself.  A stop
   always resumes a paused (SIGSTOPped) server, also one paused while the
   stop was already under way.  When the parent is SIGKILLed its
   temporary directories (``cachelab-<kind>-*`` in the temp dir, the SQLite
   origin's ``cachelab-origin-*`` too) are left behind; each records its owner
   in ``owner.json`` and the next lab process removes dirs whose owner and
   server are both dead (`workdir.sweep_stale_dirs`).
"""

from lab.processes.errors import ServerNotFound
from lab.processes.ports import HOST, free_port
from lab.processes.procfs import process_alive
from lab.processes.registry import leaked_processes, live_servers, stop_all
from lab.processes.server import ChildServer, ServerError, ServerGroup, ServerStartError
from lab.processes.workdir import make_owned_dir, sweep_stale_dirs

__all__ = [
    "HOST",
    "ChildServer",
    "ServerError",
    "ServerGroup",
    "ServerNotFound",
    "ServerStartError",
    "free_port",
    "leaked_processes",
    "live_servers",
    "make_owned_dir",
    "process_alive",
    "stop_all",
    "sweep_stale_dirs",
]
