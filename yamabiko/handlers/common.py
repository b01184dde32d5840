"""Small pieces every namespace's handlers share: ownership, not-found, audit, pages."""

from __future__ import annotations

from typing import Any, TypeVar

from yamabiko.protocol import errors
from yamabiko.schema.base import SCOPE_ADMIN
from yamabiko.schema.objects import AuditOutcome, TenantId, UserId
from yamabiko.services.container import services
from yamabiko.sessions.session import Context

T = TypeVar("T")


def tenant(ctx: Context) -> TenantId:
    """The caller's tenant: every store call is scoped by it."""
    return TenantId(ctx.identity.tid)


def user(ctx: Context) -> UserId:
    return UserId(ctx.identity.sub)


def is_admin(ctx: Context) -> bool:
    return SCOPE_ADMIN in ctx.identity.scopes


def owner_filter(ctx: Context) -> UserId | None:
    """The owner a user's reads are restricted to; None (all) for a tenant admin."""
    return None if is_admin(ctx) else user(ctx)


def require_admin(ctx: Context) -> None:
    if not is_admin(ctx):
        raise errors.Forbidden("forbidden: this method needs scope 'admin'")


def found(value: T | bool | None, kind: str, object_id: str) -> T:
    """``value``, or -32004 naming the object: never -32003, so that another tenant's
    or user's objects are indistinguishable from ones that do not exist."""
    if value is None or value is False:
        raise errors.NotFound(f"{kind} not found: {object_id}")
    return value  # type: ignore[return-value]


async def audit(
    ctx: Context,
    action: str,
    *,
    target: str | None = None,
    outcome: AuditOutcome = "ok",
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a security event for the caller (never a secret value in ``detail``)."""
    await services(ctx).store.audit.record(
        tenant(ctx),
        subject=ctx.identity.sub,
        action=action,
        outcome=outcome,
        target=target,
        detail=detail or {},
    )
