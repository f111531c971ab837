"""What goes wrong with a server process the lab owns."""


class ServerError(RuntimeError):
    """Base class for everything that goes wrong with a lab server."""


class ServerNotFound(ServerError):
    """No usable server binary is available."""


class ServerStartError(ServerError):
    """A server process failed to start or never answered."""


class PortInUse(ServerStartError):
    """The chosen port was taken between picking and binding (the start retries)."""
