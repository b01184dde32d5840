"""The admin namespaces (docs/api.md): tenants, models, usage, audit, revocation.

Every method needs scope ``admin``, and an admin acts within the tenant of its token
(``tid``): it reads and changes its own tenant's row, catalogue entries, usage and audit
trail only; another tenant's ids are "not found". Managing other tenants is a platform
operator's job, not a tenant admin's (docs/api.md, "Who sees what").

Datetimes are RFC 3339 with an offset (``Z`` or ``+hh:mm``): one without is -32602
rather than a guess at the server's local time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal

from msgspec import UNSET, Meta, UnsetType, field

from yamabiko.schema.base import SCOPE_ADMIN, MethodSchema, PageParams, Params, Result
from yamabiko.schema.objects import AuditEvent, ModelEntry, Page, RateLimits, Tenant, UsageRow

TENANTS_CREATE: Final = "tenants/create"
TENANTS_GET: Final = "tenants/get"
TENANTS_UPDATE: Final = "tenants/update"
TENANTS_DELETE: Final = "tenants/delete"
TENANTS_LIST: Final = "tenants/list"
MODELS_REGISTER: Final = "models/register"
MODELS_LIST: Final = "models/list"
MODELS_UPDATE: Final = "models/update"
MODELS_DELETE: Final = "models/delete"
USAGE_REPORT: Final = "usage/report"
AUDIT_LIST: Final = "audit/list"
REVOKE_TOKEN: Final = "admin/revokeToken"

TenantName = Annotated[str, Meta(min_length=1, max_length=200)]
Prompt = Annotated[str, Meta(max_length=20000)]
ModelName = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]*/.+$", max_length=300)]
Price = Annotated[float, Meta(ge=0.0)]
ContextWindow = Annotated[int, Meta(gt=0)]
Budget = Annotated[float, Meta(ge=0.0)]
Ref = Annotated[str, Meta(min_length=1, max_length=128)]
Provider = Annotated[str, Meta(min_length=1, max_length=64)]
ProviderModel = Annotated[str, Meta(min_length=1, max_length=200)]
Aliases = Annotated[list[Annotated[str, Meta(min_length=1, max_length=200)]], Meta(max_length=16)]
Instant = Annotated[datetime, Meta(tz=True)]


class TenantCreateParams(Params, kw_only=True):
    """Creates the caller's own tenant row (its id is the token's ``tid``).

    ``tenantId`` may be given, but only as the caller's own ``tid``: creating another
    tenant is a platform operation, refused with -32003 (whether or not it exists).
    """

    tenant_id: Ref | None = None
    name: TenantName
    system_prompt: Prompt | None = None
    default_model: ModelName | None = None
    monthly_budget_usd: Budget | None = None
    rate_limits: RateLimits | None = None


class TenantRef(Params, kw_only=True):
    """Names a tenant: only the caller's own exists for it (another id is -32004)."""

    tenant_id: Ref


class TenantUpdateParams(Params, kw_only=True):
    """Fields left out stay; null clears a field (no budget, default rate limits...)."""

    tenant_id: Ref
    name: TenantName | UnsetType = UNSET
    system_prompt: Prompt | UnsetType | None = UNSET
    default_model: ModelName | UnsetType | None = UNSET
    monthly_budget_usd: Budget | UnsetType | None = UNSET
    rate_limits: RateLimits | UnsetType | None = UNSET


class Done(Result):
    """``{ok: true}``: the deletion happened."""

    ok: bool


class ModelRegisterParams(Params, kw_only=True):
    """A catalogue entry of the caller's tenant. ``modelId`` is ``engine/providerModel``
    (``openai/gpt-4.1-mini``); an id of the global catalogue overrides that entry for
    this tenant (aliases included: the override repeats the ones it wants). Prices are
    USD per 1M tokens, >= 0; the context window is in tokens, > 0."""

    model_id: ModelName
    provider: Provider
    provider_model: ProviderModel
    aliases: Aliases = []
    input_price_per_mtok: Price
    output_price_per_mtok: Price
    context_window: ContextWindow


class ModelRef(Params, kw_only=True):
    """One of the tenant's own entries; a global entry (or another tenant's) is -32004."""

    model_id: ModelName


class ModelUpdateParams(Params, kw_only=True):
    """Changes one of the tenant's own entries; fields left out stay. A global entry is
    not changed this way (-32004): register an override with the same id instead."""

    model_id: ModelName
    provider: Provider | UnsetType = UNSET
    provider_model: ProviderModel | UnsetType = UNSET
    aliases: Aliases | UnsetType = UNSET
    input_price_per_mtok: Price | UnsetType = UNSET
    output_price_per_mtok: Price | UnsetType = UNSET
    context_window: ContextWindow | UnsetType = UNSET


class UsageReportParams(Params, kw_only=True):
    """``from`` is inclusive, ``to`` exclusive (RFC 3339 with an offset); ``to`` must be
    after ``from`` (else -32602). Days are UTC days."""

    start: Instant = field(name="from")
    end: Instant = field(name="to")
    group_by: Literal["day", "model", "user"] = "day"


class UsageReport(Result):
    """One row per group with events (ordered by key), and the sum of their cost."""

    items: list[UsageRow]
    total_cost_usd: float


class AuditListParams(PageParams, kw_only=True):
    """A page of the tenant's audit trail, newest first; ``action`` keeps one kind."""

    action: Annotated[str, Meta(max_length=64)] | None = None


class RevokeTokenParams(Params, kw_only=True):
    """Revokes the token id ``jti`` within the caller's tenant only: the same ``jti`` in
    another tenant is another token."""

    jti: Annotated[str, Meta(min_length=1, max_length=256)]
    expires_at: Instant
    """When the token expires anyway: the revocation can be forgotten after."""


class Revoked(Result):
    """``{revoked: true}``: refused from now on, on every node."""

    revoked: bool


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(TENANTS_CREATE, TenantCreateParams, Tenant,
                 "Create the caller's tenant row (settings, budget, rate limits).",
                 scope=SCOPE_ADMIN),
    MethodSchema(TENANTS_GET, TenantRef, Tenant, "The caller's tenant.", scope=SCOPE_ADMIN),
    MethodSchema(TENANTS_UPDATE, TenantUpdateParams, Tenant,
                 "Change the caller's tenant: system prompt, default model, budget, limits.",
                 scope=SCOPE_ADMIN),
    MethodSchema(TENANTS_DELETE, TenantRef, Done,
                 "Delete the caller's tenant and its data (usage and audit stay).",
                 scope=SCOPE_ADMIN),
    MethodSchema(TENANTS_LIST, PageParams, Page[Tenant], "The tenants the caller administers.",
                 scope=SCOPE_ADMIN),
    MethodSchema(MODELS_REGISTER, ModelRegisterParams, ModelEntry,
                 "Add a model to the tenant's catalogue (prices per 1M tokens).",
                 scope=SCOPE_ADMIN),
    MethodSchema(MODELS_LIST, PageParams, Page[ModelEntry],
                 "The tenant's catalogue: its own entries and the global ones.",
                 scope=SCOPE_ADMIN),
    MethodSchema(MODELS_UPDATE, ModelUpdateParams, ModelEntry,
                 "Change one of the tenant's own catalogue entries.", scope=SCOPE_ADMIN),
    MethodSchema(MODELS_DELETE, ModelRef, Done, "Remove one of the tenant's own entries.",
                 scope=SCOPE_ADMIN),
    MethodSchema(USAGE_REPORT, UsageReportParams, UsageReport,
                 "Tokens and cost over [from, to), grouped by day, model or user.",
                 scope=SCOPE_ADMIN),
    MethodSchema(AUDIT_LIST, AuditListParams, Page[AuditEvent],
                 "The tenant's security events, newest first.", scope=SCOPE_ADMIN),
    MethodSchema(REVOKE_TOKEN, RevokeTokenParams, Revoked,
                 "Refuse a token id from now on; sessions using it close with 4001.",
                 scope=SCOPE_ADMIN),
)  # fmt: skip
