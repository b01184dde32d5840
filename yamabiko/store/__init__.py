"""The store: repositories for everything Yamabiko remembers (docs/store.md).

``open_store(url, encryption_keys=[...])`` gives a :class:`Store` over SQLite (the
embedded default) or PostgreSQL; ``migrate(url)`` brings a database's schema up to date.
The contract (tenant scoping, pagination, what "not found" means) is stated once, in
:mod:`yamabiko.store.repositories`.
"""

from __future__ import annotations

from yamabiko.store.migrations import migrate
from yamabiko.store.repositories import Store
from yamabiko.store.sql.store import open_store

__all__ = ["Store", "migrate", "open_store"]
