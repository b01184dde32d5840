"""The async Python client (used by the CLI, the tests and bots)."""

from yamabiko.client.client import Client, ServerNotification
from yamabiko.protocol.errors import RemoteError

__all__ = ["Client", "RemoteError", "ServerNotification"]
