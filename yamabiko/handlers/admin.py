"""Handlers of the admin namespaces: tenants, models, usage, audit, revocation.

Scope ``admin`` (checked by the session from the schema); everything acts within the
caller's own tenant (``tid``). Every write is an audit event (outcome ``ok``) with the
caller as subject.

Decisions (docs/api.md):

- A tenant admin's token is scoped to its ``tid``, so it administers that tenant only.
  ``tenants/get|update|delete`` with another id answer -32004, like an id that does not
  exist; ``tenants/list`` lists the caller's own row (if created); ``tenants/create``
  creates the caller's own row (-32009 if it exists) and refuses another ``tenantId``
  with -32003: creating tenants is a platform operator's job, which a later operator
  face (not a tenant's token) will do. That answer is the same whether the other tenant
  exists, so it reveals nothing.
- ``models/update|delete`` reach the tenant's own entries only; a global entry answers
  -32004 (the tenant has no such entry of its own), as does another tenant's. A tenant
  changes a global entry for itself by registering an override with the same id.
- ``admin/revokeToken`` revokes ``(tid, jti)``: another tenant's token with the same
  ``jti`` is untouched.
"""

from __future__ import annotations

from typing import Any

import msgspec

from yamabiko.handlers.common import audit, found, tenant
from yamabiko.protocol import errors
from yamabiko.schema import admin as schema
from yamabiko.schema.admin import (
    AuditListParams,
    Done,
    ModelRef,
    ModelRegisterParams,
    ModelUpdateParams,
    Revoked,
    RevokeTokenParams,
    TenantCreateParams,
    TenantRef,
    TenantUpdateParams,
    UsageReport,
    UsageReportParams,
)
from yamabiko.schema.base import PageParams
from yamabiko.schema.objects import AuditEvent, ModelEntry, ModelId, Page, Tenant
from yamabiko.services.container import services
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context
from yamabiko.store.errors import InvalidCursor

router = Router()


def _own(ctx: Context, tenant_id: str) -> None:
    if tenant_id != ctx.identity.tid:
        raise errors.NotFound(f"tenant not found: {tenant_id}")


def _changes(params: msgspec.Struct, *names: str) -> dict[str, Any]:
    return {n: getattr(params, n) for n in names if getattr(params, n) is not msgspec.UNSET}


# tenants


def _forget_cached(ctx: Context, tenant_id: str) -> None:
    """This node applies a tenant's new limits and budget at once; others within
    seconds (their caches expire)."""
    services(ctx).tenant_limits.forget(tenant_id)
    services(ctx).budget.forget(tenant_id)


@router.method(schema.TENANTS_CREATE)
async def create_tenant(ctx: Context, params: TenantCreateParams) -> Tenant:
    if params.tenant_id is not None and params.tenant_id != ctx.identity.tid:
        raise errors.Forbidden("forbidden: an admin creates only its own tenant - at $.tenantId")
    created = await services(ctx).store.tenants.create(
        tenant_id=tenant(ctx),
        name=params.name,
        system_prompt=params.system_prompt,
        default_model=params.default_model,
        monthly_budget_usd=params.monthly_budget_usd,
        rate_limits=params.rate_limits,
    )
    _forget_cached(ctx, created.id)
    await audit(ctx, "tenant.create", target=created.id)
    return created


@router.method(schema.TENANTS_GET)
async def get_tenant(ctx: Context, params: TenantRef) -> Tenant:
    _own(ctx, params.tenant_id)
    return found(await services(ctx).store.tenants.get(tenant(ctx)), "tenant", params.tenant_id)


@router.method(schema.TENANTS_UPDATE)
async def update_tenant(ctx: Context, params: TenantUpdateParams) -> Tenant:
    _own(ctx, params.tenant_id)
    changes = _changes(
        params, "name", "system_prompt", "default_model", "monthly_budget_usd", "rate_limits"
    )
    updated = await services(ctx).store.tenants.update(tenant(ctx), **changes)
    updated = found(updated, "tenant", params.tenant_id)
    _forget_cached(ctx, updated.id)
    await audit(ctx, "tenant.update", target=updated.id, detail={"fields": sorted(changes)})
    return updated


@router.method(schema.TENANTS_DELETE)
async def delete_tenant(ctx: Context, params: TenantRef) -> Done:
    _own(ctx, params.tenant_id)
    found(await services(ctx).store.tenants.delete(tenant(ctx)), "tenant", params.tenant_id)
    _forget_cached(ctx, params.tenant_id)
    await audit(ctx, "tenant.delete", target=params.tenant_id)
    return Done(ok=True)


@router.method(schema.TENANTS_LIST)
async def list_tenants(ctx: Context, params: PageParams) -> Page[Tenant]:
    # One page at most, so no cursor was ever handed out: any cursor is not ours.
    if params.cursor is not None:
        raise InvalidCursor()
    own = await services(ctx).store.tenants.get(tenant(ctx))
    return Page(items=[own] if own is not None else [], next_cursor=None)


# models


@router.method(schema.MODELS_REGISTER)
async def register_model(ctx: Context, params: ModelRegisterParams) -> ModelEntry:
    entry = await services(ctx).store.models.register(
        tenant(ctx),
        ModelId(params.model_id),
        provider=params.provider,
        provider_model=params.provider_model,
        aliases=params.aliases,
        input_price_per_mtok=params.input_price_per_mtok,
        output_price_per_mtok=params.output_price_per_mtok,
        context_window=params.context_window,
    )
    services(ctx).catalogue.forget(tenant(ctx))
    await audit(ctx, "model.register", target=entry.id)
    return entry


@router.method(schema.MODELS_LIST)
async def list_models(ctx: Context, params: PageParams) -> Page[ModelEntry]:
    return await services(ctx).store.models.list(
        tenant(ctx), limit=params.limit, cursor=params.cursor
    )


@router.method(schema.MODELS_UPDATE)
async def update_model(ctx: Context, params: ModelUpdateParams) -> ModelEntry:
    changes = _changes(
        params, "provider", "provider_model", "aliases", "input_price_per_mtok",
        "output_price_per_mtok", "context_window",
    )  # fmt: skip
    # Only the tenant's own entries: a global entry is overridden by registering one.
    entry = await services(ctx).store.models.update(
        tenant(ctx), ModelId(params.model_id), **changes
    )
    entry = found(entry, "model", params.model_id)
    services(ctx).catalogue.forget(tenant(ctx))
    await audit(ctx, "model.update", target=entry.id, detail={"fields": sorted(changes)})
    return entry


@router.method(schema.MODELS_DELETE)
async def delete_model(ctx: Context, params: ModelRef) -> Done:
    done = await services(ctx).store.models.delete(tenant(ctx), ModelId(params.model_id))
    found(done, "model", params.model_id)
    services(ctx).catalogue.forget(tenant(ctx))
    await audit(ctx, "model.delete", target=params.model_id)
    return Done(ok=True)


# usage, audit, revocation


@router.method(schema.USAGE_REPORT)
async def usage_report(ctx: Context, params: UsageReportParams) -> UsageReport:
    if params.end <= params.start:
        raise errors.InvalidParams("to must be after from - at $.to")
    rows = await services(ctx).store.usage.report(
        tenant(ctx), start=params.start, end=params.end, group_by=params.group_by
    )
    return UsageReport(items=rows, total_cost_usd=round(sum(r.cost_usd for r in rows), 8))


@router.method(schema.AUDIT_LIST)
async def audit_list(ctx: Context, params: AuditListParams) -> Page[AuditEvent]:
    return await services(ctx).store.audit.list(
        tenant(ctx), action=params.action, limit=params.limit, cursor=params.cursor
    )


@router.method(schema.REVOKE_TOKEN)
async def revoke_token(ctx: Context, params: RevokeTokenParams) -> Revoked:
    await services(ctx).revocations.revoke(tenant(ctx), params.jti, params.expires_at.timestamp())
    await audit(ctx, "token.revoke", target=params.jti)
    return Revoked(revoked=True)
