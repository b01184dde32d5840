"""The store's errors. Each is a :class:`~yamabiko.protocol.errors.YamabikoError`, so a
handler may let it through and the session answers with its code::

    InvalidParams (-32602)      the caller's fault
    ├── InvalidCursor           a cursor this store did not hand out
    └── InvalidLimit            a page size outside 1..100
    Conflict (-32009)
    └── AlreadyExists           a tenant id, model id or MCP server name already taken
    InternalError (-32603)      ours (the operator's)
    └── SecretDecryptError      no configured key opens a stored secret

Configuration mistakes found before anything is served (a bad database URL, a malformed
encryption key) raise :class:`StoreConfigError`, a ``ValueError``, with a message meant
for the operator. No message here ever contains a secret's value or a key.
"""

from __future__ import annotations

from yamabiko.protocol.errors import Conflict, InternalError, InvalidParams


class InvalidCursor(InvalidParams):
    default_message = "invalid cursor: pass back a nextCursor from the same list"


class InvalidLimit(InvalidParams):
    default_message = "limit must be between 1 and 100"


class AlreadyExists(Conflict):
    default_message = "already exists"


class SecretDecryptError(InternalError):
    default_message = "a stored secret cannot be decrypted with the configured keys"


class StoreConfigError(ValueError):
    """The store cannot be opened as configured (URL, keys)."""
