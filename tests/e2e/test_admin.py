"""Admin methods over a real socket: scope, own-tenant only, audit, usage, revocation."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.e2e.test_handshake import refused
from tests.support import Running
from yamabiko.client import Client, RemoteError
from yamabiko.schema.objects import TenantId, UserId

SOON = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
ADMIN_CALLS = [
    ("tenants/create", {"name": "Acme"}),
    ("tenants/get", {"tenantId": "acme"}),
    ("tenants/update", {"tenantId": "acme", "name": "x"}),
    ("tenants/delete", {"tenantId": "acme"}),
    ("tenants/list", {}),
    (
        "models/register",
        {
            "modelId": "openai/x",
            "provider": "openai",
            "providerModel": "x",
            "inputPricePerMtok": 1,
            "outputPricePerMtok": 2,
            "contextWindow": 1000,
        },
    ),
    ("models/list", {}),
    ("models/update", {"modelId": "openai/x", "contextWindow": 10}),
    ("models/delete", {"modelId": "openai/x"}),
    ("usage/report", {"from": "2026-01-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}),
    ("audit/list", {}),
    ("admin/revokeToken", {"jti": "j", "expiresAt": SOON}),
]


async def admin(server: Running, tenant: str = "acme", sub: str = "root") -> Client:
    return await Client.connect(server.url, token=server.token(sub, tenant, scopes=["admin"]))


async def code_of(client: Client, method: str, params: Any) -> int:
    with pytest.raises(RemoteError) as info:
        await client.call(method, params)
    return info.value.wire_code


async def refusal(client: Client, method: str, params: Any) -> tuple[int, str]:
    with pytest.raises(RemoteError) as info:
        await client.call(method, params)
    return info.value.wire_code, info.value.message


@pytest.mark.parametrize(("method", "params"), ADMIN_CALLS, ids=[m for m, _ in ADMIN_CALLS])
async def test_admin_methods_need_the_admin_scope(
    server: Running, method: str, params: dict[str, Any]
) -> None:
    async with await server.client() as client:  # chat agent ghost audio mcp, no admin
        assert await code_of(client, method, params) == -32003


async def test_tenant_settings_are_the_admins_own(server: Running) -> None:
    async with await admin(server) as root:
        created = await root.call("tenants/create", {"name": "Acme", "monthlyBudgetUsd": 50})
        assert (created["id"], created["monthlyBudgetUsd"]) == ("acme", 50.0)
        assert await code_of(root, "tenants/create", {"name": "again"}) == -32009
        updated = await root.call(
            "tenants/update",
            {
                "tenantId": "acme",
                "systemPrompt": "Be brief.",
                "rateLimits": {"requestsPerSecond": 5, "burst": 10},
            },
        )
        assert updated["systemPrompt"] == "Be brief."
        assert updated["rateLimits"] == {"requestsPerSecond": 5.0, "burst": 10}
        assert await root.call("tenants/get", {"tenantId": "acme"}) == updated
        listed = await root.call("tenants/list", {})
        assert ([t["id"] for t in listed["items"]], listed.get("nextCursor")) == (["acme"], None)
        assert await code_of(root, "tenants/list", {"cursor": "x"}) == -32602
        # Another tenant's id is "not found" (it may well exist); creating one is refused.
        async with await admin(server, tenant="other") as other:
            await other.call("tenants/create", {"name": "Other"})
        for method in ("tenants/get", "tenants/delete"):
            assert await code_of(root, method, {"tenantId": "other"}) == -32004
        assert await code_of(root, "tenants/update", {"tenantId": "other", "name": "x"}) == -32004
        for tid in ("other", "nobody"):
            code = await code_of(root, "tenants/create", {"tenantId": tid, "name": "x"})
            assert code == -32003
        assert await code_of(root, "tenants/create", {"tenantId": "acme", "name": "x"}) == -32009
        assert await refusal(
            root, "tenants/update", {"tenantId": "acme", "monthlyBudgetUsd": -1}
        ) == (-32602, "Expected float >= 0.0 - at $.monthlyBudgetUsd")
        # The other tenant's row is untouched by all this.
        async with await admin(server, tenant="other") as other:
            assert (await other.call("tenants/get", {"tenantId": "other"}))["name"] == "Other"


async def test_tenant_delete_keeps_the_audit_trail(server: Running) -> None:
    async with await admin(server) as root:
        assert await code_of(root, "tenants/delete", {"tenantId": "acme"}) == -32004  # no row
        await root.call("tenants/create", {"tenantId": "acme", "name": "Acme"})
        assert await root.call("tenants/delete", {"tenantId": "acme"}) == {"ok": True}
        assert await code_of(root, "tenants/get", {"tenantId": "acme"}) == -32004
        assert (await root.call("tenants/list", {}))["items"] == []
        events = (await root.call("audit/list", {}))["items"]
        assert [(e["action"], e["target"]) for e in events] == [
            ("tenant.delete", "acme"),
            ("tenant.create", "acme"),
        ]


async def test_model_catalogue(server: Running) -> None:
    async with await admin(server) as root, await admin(server, tenant="other") as other:
        entry = await root.call(
            "models/register",
            {
                "modelId": "openai/house-model",
                "provider": "openai",
                "providerModel": "gpt-x",
                "aliases": ["house"],
                "inputPricePerMtok": 0.5,
                "outputPricePerMtok": 1.5,
                "contextWindow": 64000,
            },
        )
        assert entry["tenantId"] == "acme"
        ids = [m["id"] for m in (await root.call("models/list", {"limit": 100}))["items"]]
        assert {"openai/gpt-4.1-mini", "local/default", "openai/house-model"} <= set(ids)
        updated = await root.call(
            "models/update", {"modelId": "openai/house-model", "contextWindow": 128000}
        )
        assert updated["contextWindow"] == 128000
        # Another tenant neither sees nor touches it; nobody edits the global catalogue.
        other_ids = [m["id"] for m in (await other.call("models/list", {"limit": 100}))["items"]]
        assert "openai/house-model" not in other_ids
        assert await code_of(other, "models/delete", {"modelId": "openai/house-model"}) == -32004
        global_entry = {"modelId": "openai/gpt-4.1-mini"}
        assert await code_of(root, "models/delete", global_entry) == -32004
        assert await code_of(root, "models/update", {**global_entry, "contextWindow": 1}) == -32004
        assert await code_of(root, "models/register", {**bad_base(), "modelId": entry["id"]}) == (
            -32009
        )
        bad = {
            "modelId": "openai/y",
            "provider": "openai",
            "providerModel": "y",
            "inputPricePerMtok": -1,
            "outputPricePerMtok": 1,
            "contextWindow": 1,
        }
        with pytest.raises(RemoteError) as info:
            await root.call("models/register", bad)
        assert info.value.wire_code == -32602
        assert "$.inputPricePerMtok" in info.value.message
        for field, value in (
            ("outputPricePerMtok", -0.01),
            ("contextWindow", 0),
            ("modelId", "no-engine"),
            ("aliases", [""]),
        ):
            code, message = await refusal(root, "models/register", {**bad_base(), field: value})
            assert (code, f"$.{field}" in message) == (-32602, True)
        code, message = await refusal(
            root, "models/update", {"modelId": "openai/house-model", "aliases": [""]}
        )
        assert (code, "$.aliases[0]" in message) == (-32602, True)
        assert await root.call("models/delete", {"modelId": "openai/house-model"}) == {"ok": True}
        assert await code_of(root, "models/delete", {"modelId": "openai/house-model"}) == -32004
        ids = [m["id"] for m in (await root.call("models/list", {"limit": 100}))["items"]]
        assert "openai/house-model" not in ids
        events = (await root.call("audit/list", {}))["items"]
        assert [(e["action"], e["target"]) for e in events] == [
            ("model.delete", "openai/house-model"),
            ("model.update", "openai/house-model"),
            ("model.register", "openai/house-model"),
        ]


async def test_a_tenant_overrides_a_global_model(server: Running) -> None:
    async with await admin(server) as root, await admin(server, tenant="other") as other:
        override = {**bad_base(), "modelId": "openai/gpt-4.1-mini", "inputPricePerMtok": 0.1}
        assert (await root.call("models/register", override))["tenantId"] == "acme"
        mine = {m["id"]: m for m in (await root.call("models/list", {"limit": 100}))["items"]}
        theirs = {m["id"]: m for m in (await other.call("models/list", {"limit": 100}))["items"]}
        assert mine["openai/gpt-4.1-mini"]["inputPricePerMtok"] == 0.1
        assert theirs["openai/gpt-4.1-mini"]["tenantId"] is None
        # Deleting the override brings the global entry back, untouched.
        await root.call("models/delete", {"modelId": "openai/gpt-4.1-mini"})
        mine = {m["id"]: m for m in (await root.call("models/list", {"limit": 100}))["items"]}
        assert mine["openai/gpt-4.1-mini"] == theirs["openai/gpt-4.1-mini"]


def bad_base() -> dict[str, Any]:
    """Valid register params, for tests to spoil one field at a time."""
    return {
        "modelId": "openai/y",
        "provider": "openai",
        "providerModel": "y",
        "inputPricePerMtok": 1,
        "outputPricePerMtok": 1,
        "contextWindow": 1,
    }


async def test_usage_report_groups_and_totals(server: Running) -> None:
    usage = server.app.services.store.usage
    day1 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    day2 = day1 + timedelta(days=1)
    for who, model, cost, at in (
        ("alice", "openai/a", 0.25, day1),
        ("bob", "openai/a", 0.5, day1),
        ("alice", "anthropic/b", 1.0, day2),
    ):
        await usage.record(
            TenantId("acme"),
            UserId(who),
            model,
            input_tokens=100,
            output_tokens=10,
            cost_usd=cost,
            at=at,
        )
    await usage.record(
        TenantId("other"),
        UserId("eve"),
        "openai/a",
        input_tokens=1,
        output_tokens=1,
        cost_usd=9.0,
        at=day1,
    )
    span = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-03T00:00:00Z"}
    async with await admin(server) as root:
        by_day = await root.call("usage/report", {**span, "groupBy": "day"})
        assert [(r["key"], r["costUsd"], r["requests"]) for r in by_day["items"]] == [
            ("2026-03-01", 0.75, 2),
            ("2026-03-02", 1.0, 1),
        ]
        assert by_day["totalCostUsd"] == 1.75
        by_user = await root.call("usage/report", {**span, "groupBy": "user"})
        assert {r["key"]: r["inputTokens"] for r in by_user["items"]} == {"alice": 200, "bob": 100}
        by_model = await root.call("usage/report", {**span, "groupBy": "model"})
        assert [r["key"] for r in by_model["items"]] == ["anthropic/b", "openai/a"]
        assert (
            await code_of(root, "usage/report", {"from": span["to"], "to": span["from"]}) == -32602
        )
        assert await code_of(root, "usage/report", {"from": span["to"], "to": span["to"]}) == (
            -32602
        )
        # A datetime without an offset is refused, not read in the server's local time.
        naive = {"from": "2026-03-01T00:00:00", "to": span["to"]}
        assert await refusal(root, "usage/report", naive) == (
            -32602,
            "Expected datetime with a timezone component - at $.from",
        )
        # The range is half-open, and offsets are honoured: [day1 12:00Z, day2 12:00Z).
        window = {"from": "2026-03-01T14:00:00+02:00", "to": "2026-03-02T12:00:00Z"}
        by_user = await root.call("usage/report", {**window, "groupBy": "user"})
        assert [(r["key"], r["requests"]) for r in by_user["items"]] == [("alice", 1), ("bob", 1)]
        empty = {"from": "2025-01-01T00:00:00Z", "to": "2025-02-01T00:00:00Z"}
        assert await root.call("usage/report", empty) == {"items": [], "totalCostUsd": 0.0}


async def test_admin_writes_are_audited_per_tenant(server: Running) -> None:
    async with await admin(server) as root:
        await root.call("tenants/create", {"name": "Acme"})
        await root.call("tenants/update", {"tenantId": "acme", "name": "Acme Studio"})
        await root.call(
            "models/register",
            {
                "modelId": "openai/m",
                "provider": "openai",
                "providerModel": "m",
                "inputPricePerMtok": 1,
                "outputPricePerMtok": 1,
                "contextWindow": 10,
            },
        )
        events = (await root.call("audit/list", {}))["items"]
        actions = [(e["action"], e["subject"], e["target"], e["outcome"]) for e in events]
        assert ("tenant.update", "root", "acme", "ok") in actions
        assert ("model.register", "root", "openai/m", "ok") in actions
        only = await root.call("audit/list", {"action": "model.register"})
        assert [e["action"] for e in only["items"]] == ["model.register"]
    async with await admin(server, tenant="other") as other:
        assert (await other.call("audit/list", {}))["items"] == []


async def test_revoked_token_is_closed_and_refused(server: Running) -> None:
    victim_token = server.token(jti="stolen-1")
    victim = await Client.connect(server.url, token=victim_token)
    twin = await Client.connect(server.url, token=server.token("eve", "other", jti="stolen-1"))
    async with await admin(server) as root:
        started = time.monotonic()
        assert await root.call("admin/revokeToken", {"jti": "stolen-1", "expiresAt": SOON}) == {
            "revoked": True
        }
        async with asyncio.timeout(5):
            await victim.wait_closed()
        assert time.monotonic() - started < 1.5
        assert victim.close_code == 4001
        events = (await root.call("audit/list", {"action": "token.revoke"}))["items"]
        assert [e["target"] for e in events] == ["stolen-1"]
    status, _, _ = await refused(server.url, victim_token)
    assert status == 401
    # The same jti in another tenant is another token: still open, still accepted.
    assert await twin.call("ping") == {}
    async with await Client.connect(server.url, token=server.token("eve", "other", jti="stolen-1")):
        pass
    await twin.close()
    await victim.close()


async def test_revocation_needs_an_offset(server: Running) -> None:
    async with await admin(server) as root:
        code, message = await refusal(
            root, "admin/revokeToken", {"jti": "j", "expiresAt": "2030-01-01T00:00:00"}
        )
        assert (code, "$.expiresAt" in message) == (-32602, True)
        assert (await root.call("audit/list", {"action": "token.revoke"}))["items"] == []


async def test_a_tenants_own_rate_limits_apply_at_once(server: Running) -> None:
    async with await admin(server) as root:
        await root.call("tenants/create", {"name": "Acme"})
        await root.call(
            "tenants/update",
            {"tenantId": "acme", "rateLimits": {"requestsPerSecond": 0.01, "burst": 3}},
        )
        assert (
            await code_of(
                root,
                "tenants/update",
                {"tenantId": "acme", "rateLimits": {"requestsPerSecond": 0, "burst": 3}},
            )
            == -32602
        )
    async with await server.client(sub="carol") as carol:  # initialize took one token
        for _ in range(2):
            assert "items" in await carol.call("agents/presets")
        with pytest.raises(RemoteError) as info:
            await carol.call("agents/presets")
        assert info.value.wire_code == -32029
    async with await server.client(sub="dave", tenant="other") as dave:  # defaults
        for _ in range(5):
            assert "items" in await dave.call("agents/presets")
