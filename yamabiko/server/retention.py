"""Audit retention: events older than the configured number of days are deleted, in
bounded batches, soon after start and then periodically (docs/security.md, "Audit").

Every node runs it against the shared database; deletes are idempotent, so several
nodes doing it at once only share the work.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Final

from yamabiko.store.repositories import AuditRepository

log = logging.getLogger("yamabiko.retention")

BATCH: Final = 1000
"""Rows per delete: small enough that no statement holds the database for long."""
FIRST_RUN_S: Final = 5.0
"""The first pass waits a little: start-up has better things to do."""
INTERVAL_S: Final = 3600.0


class AuditRetention:
    """Deletes audit events older than ``days`` (0 keeps them forever)."""

    def __init__(self, audit: AuditRepository, days: float) -> None:
        self.audit = audit
        self.days = days

    async def purge(self, now: datetime | None = None) -> int:
        """One pass: every event older than the retention, batch by batch; how many."""
        if self.days <= 0:
            return 0
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.days)
        deleted = 0
        while True:
            count = await self.audit.delete_before(cutoff, limit=BATCH)
            deleted += count
            if count < BATCH:
                return deleted
            await asyncio.sleep(0)  # let handshakes write between batches

    async def run(self) -> None:
        """Purge now and then, until cancelled; a failed pass is logged and retried."""
        if self.days <= 0:
            return
        delay = FIRST_RUN_S
        while True:
            await asyncio.sleep(delay)
            delay = INTERVAL_S
            try:
                deleted = await self.purge()
            except Exception:
                log.exception("audit retention pass failed")
                continue
            if deleted:
                log.info("audit events deleted", extra={"count": deleted, "days": self.days})
