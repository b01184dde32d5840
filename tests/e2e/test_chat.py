"""chat/send end to end: a real server, the real SDKs, fake providers at the HTTP boundary."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.engines.conftest import PROVIDERS, Provider
from tests.fakes import FakeAnthropic, FakeOpenAI, FakeProvider, Script
from tests.support import STREAM_METHODS, Running, StreamRead, read_stream, running_server
from yamabiko.client import Client, RemoteError

ADMIN = ("chat", "agent", "admin")
CATALOGUED = {
    # The global catalogue's entries (migration 0002) and their prices per 1M tokens.
    "anthropic": ("anthropic/claude-sonnet-4-5", 3.00, 15.00),
    "openai": ("openai/gpt-4.1-mini", 0.40, 1.60),
    "gemini": ("gemini/gemini-2.5-flash", 0.30, 2.50),
}


@asynccontextmanager
async def with_provider(
    tmp: Path, fake: FakeProvider, provider: Provider, *, key: str | None = "env-key"
) -> AsyncIterator[Running]:
    env = {provider.url_variable: fake.url}
    if key is not None:
        env[provider.key_variable] = key
    async with running_server(tmp, env=env) as server:
        yield server


async def chat(
    client: Client, params: dict[str, Any], *, timeout: float = 10.0
) -> tuple[dict[str, Any], StreamRead]:
    """Send, and read the whole reply."""
    sub = client.subscribe(*STREAM_METHODS)
    result = await client.call("chat/send", params)
    return result, await read_stream(client, sub, result["streamId"], timeout=timeout)


async def messages(client: Client, conversation_id: str) -> list[dict[str, Any]]:
    page = await client.call("conversations/messages", {"conversationId": conversation_id})
    return page["items"]  # type: ignore[no-any-return]


async def test_local_engine_answers_with_no_provider_configured(server: Running) -> None:
    async with await server.client() as client:
        result, read = await chat(client, {"message": "How do I make the kick punchier?"})
        assert result["model"] == "local/default"
        assert read.end is not None
        assert read.end["finishReason"] == "stop"
        assert read.seqs == list(range(1, read.end["seq"] + 1))
        assert len(read.deltas) > 3
        assert read.end["usage"]["outputTokens"] == len(read.deltas)
        user, assistant = await messages(client, result["conversationId"])
    assert user["role"] == "user"
    assert user["content"] == "How do I make the kick punchier?"
    assert assistant["id"] == result["messageId"] == read.end["messageId"]
    assert assistant["content"] == read.text
    assert assistant["status"] == "complete"
    assert assistant["model"] == "local/default"
    metrics = await asyncio.to_thread(_get, server.http + "/metrics")
    assert 'yamabiko_generations_total{reason="stop"} 1.0' in metrics
    assert 'yamabiko_engine_first_token_seconds_count{engine="local"} 1.0' in metrics
    assert f"yamabiko_stream_items_sent_total {float(len(read.items))}" in metrics
    assert "yamabiko_generations_running 0.0" in metrics


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()  # type: ignore[no-any-return]


@pytest.mark.parametrize("provider", PROVIDERS, ids=lambda p: p.engine)
async def test_each_provider_streams_through_its_sdk_with_usage_and_cost(
    tmp_path: Path, provider: Provider
) -> None:
    model, input_price, output_price = CATALOGUED[provider.engine]
    script = Script(tokens=["Side", "chain", " the", " bass."], input_tokens=12)
    async with provider.fake(script) as fake, with_provider(tmp_path, fake, provider) as server:
        async with await server.client(scopes=ADMIN) as client:
            result, read = await chat(client, {"message": "Mix tips?", "model": model})
            assert read.text == "Sidechain the bass."
            assert [d["seq"] for d in read.deltas] == [1, 2, 3, 4]
            end = read.end
            assert end is not None
            cost = round((12 * input_price + 4 * output_price) / 1e6, 8)
            assert end == {
                "streamId": result["streamId"],
                "seq": 5,
                "finishReason": "stop",
                "messageId": result["messageId"],
                "usage": {"inputTokens": 12, "outputTokens": 4, "costUsd": cost},
                "model": model,
            }
            stored = (await messages(client, result["conversationId"]))[-1]
            assert (stored["inputTokens"], stored["outputTokens"]) == (12, 4)
            assert stored["costUsd"] == cost
            report = await client.call(
                "usage/report",
                {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z", "groupBy": "model"},
            )
        assert report["items"] == [
            {"key": model, "inputTokens": 12, "outputTokens": 4, "costUsd": cost, "requests": 1}
        ]
        (request,) = fake.requests
        assert fake.api_key(request) == "env-key"
        assert model.partition("/")[2] in (request.path + str(request.body))


async def test_an_openai_compatible_server_needs_no_key(tmp_path: Path) -> None:
    openai = next(p for p in PROVIDERS if p.engine == "openai")
    async with (
        FakeOpenAI(Script(tokens=["ok"]), send_usage=False) as fake,
        with_provider(tmp_path, fake, openai, key=None) as server,
        await server.client() as client,
    ):
        _result, read = await chat(client, {"message": "hi", "model": "openai/llama3.2"})
        assert read.text == "ok"
        assert read.end is not None
        assert read.end["finishReason"] == "stop"
        assert fake.last.body["model"] == "llama3.2"
        # The server does not report usage: it is estimated, and still recorded.
        assert read.end["usage"]["outputTokens"] == 1


async def test_the_agents_key_comes_before_the_servers(tmp_path: Path) -> None:
    openai = next(p for p in PROVIDERS if p.engine == "openai")
    async with (
        FakeOpenAI(Script(tokens=["mine"], expect_key="agent-key")) as fake,
        with_provider(tmp_path, fake, openai, key="server-key") as server,
        await server.client() as client,
    ):
        agent = await client.call(
            "agents/create", {"name": "Producer", "model": "openai/gpt-4.1-mini"}
        )
        await client.call(
            "agents/secrets/set",
            {"agentId": agent["id"], "name": "OPENAI_API_KEY", "value": "agent-key"},
        )
        _, read = await chat(client, {"message": "hi", "agentId": agent["id"]})
        assert read.text == "mine"
        assert fake.api_key(fake.last) == "agent-key"


async def test_prompt_carries_system_prompts_and_history(tmp_path: Path) -> None:
    openai = next(p for p in PROVIDERS if p.engine == "openai")
    async with (
        FakeOpenAI(Script(tokens=["first"])) as fake,
        with_provider(tmp_path, fake, openai) as server,
    ):
        async with await server.client(scopes=ADMIN) as admin:
            await admin.call("tenants/create", {"name": "Acme", "systemPrompt": "Be brief."})
        async with await server.client() as client:
            agent = await client.call(
                "agents/create",
                {
                    "name": "Producer",
                    "personality": "A warm studio mentor.",
                    "systemPrompt": "Talk about mixing.",
                    "model": "openai/gpt-4.1-mini",
                },
            )
            first, _ = await chat(client, {"message": "Hello", "agentId": agent["id"]})
            fake.script = Script(tokens=["second"])
            await chat(
                client, {"message": "And reverb?", "conversationId": first["conversationId"]}
            )
    body = fake.last.body
    assert body["messages"] == [
        {"role": "system", "content": "Be brief.\n\nA warm studio mentor.\n\nTalk about mixing."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "first"},
        {"role": "user", "content": "And reverb?"},
    ]


async def test_a_failure_before_the_first_token_ends_the_stream_with_an_error(
    tmp_path: Path,
) -> None:
    openai = next(p for p in PROVIDERS if p.engine == "openai")
    script = Script(fail_status=400, fail_times=10)
    async with (
        FakeOpenAI(script) as fake,
        with_provider(tmp_path, fake, openai) as server,
        await server.client() as client,
    ):
        result, read = await chat(client, {"message": "hi", "model": "openai/gpt-4.1-mini"})
        assert read.deltas == []
        (error,) = read.errors
        assert error["code"] == -32010
        assert error["seq"] == 1
        assert "HTTP 400" in error["message"]
        assert read.end is not None
        assert read.end["finishReason"] == "error"
        assert read.end["seq"] == 2
        assert read.end["usage"] == {"inputTokens": 0, "outputTokens": 0, "costUsd": 0.0}
        stored = (await messages(client, result["conversationId"]))[-1]
        assert stored["status"] == "error"
        assert stored["content"] == ""
        # The conversation is free again.
        fake.reset(Script(tokens=["again"]))
        _, again = await chat(
            client, {"message": "retry", "conversationId": result["conversationId"]}
        )
        assert again.text == "again"


async def test_a_failure_after_the_first_token_keeps_the_text(tmp_path: Path) -> None:
    openai = next(p for p in PROVIDERS if p.engine == "openai")
    script = Script.count(5, fail_after=2, fail_mode="drop")
    async with (
        FakeOpenAI(script) as fake,
        with_provider(tmp_path, fake, openai) as server,
        await server.client() as client,
    ):
        result, read = await chat(client, {"message": "hi", "model": "openai/gpt-4.1-mini"})
        assert read.text == "t0 t1"
        assert [d["seq"] for d in read.deltas] == [1, 2]
        assert [e["seq"] for e in read.errors] == [3]
        assert read.end is not None
        assert read.end["finishReason"] == "error"
        assert read.end["seq"] == 4
        assert read.end["usage"]["outputTokens"] > 0
        stored = (await messages(client, result["conversationId"]))[-1]
        assert (stored["status"], stored["content"]) == ("error", "t0 t1")
        assert len(fake.requests) == 1  # never retried once text went out


async def test_an_agents_fallback_model_answers_when_the_first_fails(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    async with (
        FakeOpenAI(Script(fail_status=400, fail_times=10)) as openai,
        FakeAnthropic(Script(tokens=["from", " claude"])) as anthropic,
    ):
        env = {
            "OPENAI_BASE_URL": openai.url,
            "OPENAI_API_KEY": "k1",
            "ANTHROPIC_BASE_URL": anthropic.url,
            "ANTHROPIC_API_KEY": "k2",
        }
        async with running_server(tmp_path, env=env) as server, await server.client() as client:
            agent = await client.call(
                "agents/create",
                {
                    "name": "Resilient",
                    "model": "openai/gpt-4.1-mini",
                    "fallbackModels": ["sonnet"],
                },
            )
            result, read = await chat(client, {"message": "hi", "agentId": agent["id"]})
            assert result["model"] == "openai/gpt-4.1-mini"
            assert read.text == "from claude"
            assert read.errors == []
            assert read.end is not None
            assert read.end["model"] == "anthropic/claude-sonnet-4-5"
            stored = (await messages(client, result["conversationId"]))[-1]
            assert stored["model"] == "anthropic/claude-sonnet-4-5"
            assert stored["status"] == "complete"


async def test_one_generation_per_conversation(tmp_path: Path) -> None:
    openai = next(p for p in PROVIDERS if p.engine == "openai")
    async with (
        FakeOpenAI(Script.count(20, delay=0.02)) as fake,
        with_provider(tmp_path, fake, openai) as server,
        await server.client() as client,
    ):
        sub = client.subscribe(*STREAM_METHODS)
        first = await client.call("chat/send", {"message": "one", "model": "openai/gpt-4.1-mini"})
        with pytest.raises(RemoteError) as busy:
            await client.call(
                "chat/send", {"message": "two", "conversationId": first["conversationId"]}
            )
        assert busy.value.wire_code == -32009
        assert busy.value.data == {"conversationId": first["conversationId"]}
        # Another conversation is not held up.
        _, other = await chat(client, {"message": "elsewhere", "model": "local/default"})
        assert other.end is not None
        await read_stream(client, sub, first["streamId"])
        # Only the refused message was not stored.
        contents = [m["content"] for m in await messages(client, first["conversationId"])]
        assert contents[0] == "one"
        assert len(contents) == 2
        _, again = await chat(client, {"message": "two", "conversationId": first["conversationId"]})
        assert again.end is not None


async def test_refusals_come_before_anything_is_stored(server: Running) -> None:
    async with await server.client(scopes=ADMIN) as client:
        for params, code in [
            ({"message": "hi", "model": "nope/x"}, -32010),
            ({"message": "hi", "model": "openai/gpt-4.1-mini"}, -32010),  # no key
            ({"message": "hi", "conversationId": "missing"}, -32004),
            ({"message": "hi", "agentId": "missing"}, -32004),
            ({"message": ""}, -32602),
            ({"message": "x" * 40_000, "model": "local/default"}, -32602),  # > 8k window
        ]:
            with pytest.raises(RemoteError) as refused:
                await client.call("chat/send", params)
            assert refused.value.wire_code == code, params
        page = await client.call("conversations/list")
        assert page["items"] == []
        await client.call("tenants/create", {"name": "Acme", "monthlyBudgetUsd": 0})
        with pytest.raises(RemoteError) as broke:
            await client.call("chat/send", {"message": "hi"})
        assert broke.value.wire_code == -32011
        assert broke.value.data["budgetUsd"] == 0


async def test_chat_needs_the_chat_scope(server: Running) -> None:
    async with await server.client(scopes=["agent"]) as client:
        with pytest.raises(RemoteError) as refused:
            await client.call("chat/send", {"message": "hi"})
        assert refused.value.wire_code == -32003


async def test_stream_cancel_closes_the_provider_stream_and_keeps_the_partial_text(
    tmp_path: Path,
) -> None:
    openai = next(p for p in PROVIDERS if p.engine == "openai")
    async with (
        FakeOpenAI(Script.count(500, delay=0.01)) as fake,
        with_provider(tmp_path, fake, openai) as server,
        await server.client() as client,
    ):
        sub = client.subscribe(*STREAM_METHODS)
        result = await client.call("chat/send", {"message": "go", "model": "openai/gpt-4.1-mini"})
        read = await read_stream(client, sub, result["streamId"], deltas=3)
        asked = time.monotonic()
        answer = await client.call("stream/cancel", {"streamId": result["streamId"]})
        assert answer == {"cancelled": True}
        gone = await fake.wait_disconnect(timeout=1.0)
        assert gone - asked < 0.1
        await read_stream(client, sub, result["streamId"], into=read)
        assert read.end is not None
        assert read.end["finishReason"] == "cancelled"
        assert read.seqs == list(range(1, read.end["seq"] + 1))
        assert fake.last.tokens_sent < 500
        stored = (await messages(client, result["conversationId"]))[-1]
        assert stored["status"] == "cancelled"
        assert stored["content"] == read.text
        assert read.text.startswith("t0 t1 t2")
        assert stored["outputTokens"] == read.end["usage"]["outputTokens"] > 0
        # Cancelling an ended stream changes nothing.
        assert await client.call("stream/cancel", {"streamId": result["streamId"]}) == {
            "cancelled": False
        }


async def test_retries_before_the_first_token_are_invisible_to_the_client(
    tmp_path: Path,
) -> None:
    openai = next(p for p in PROVIDERS if p.engine == "openai")
    script = Script(tokens=["at", " last"], fail_status=503, fail_times=2)
    async with (
        FakeOpenAI(script) as fake,
        with_provider(tmp_path, fake, openai) as server,
        await server.client() as client,
    ):
        _, read = await chat(client, {"message": "hi", "model": "openai/gpt-4.1-mini"})
        assert read.text == "at last"
        assert read.errors == []
        assert read.end is not None
        assert read.end["finishReason"] == "stop"
        assert [r.status for r in fake.requests] == [503, 503, 200]


async def test_a_scripted_model_gives_testers_a_deterministic_session(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "session.jsonl").write_text(
        '{"pattern": "(?i)hello", "tokens": ["Hi", " there"]}\n'
        '{"pattern": "cut", "reply": "This is cut short", "finish": "length"}\n'
        '{"pattern": "fail", "reply": "Half an answer", "error": {"afterTokens": 2,'
        ' "message": "simulated outage"}}\n'
    )
    async with (
        running_server(tmp_path, scripts_dir=str(scripts)) as server,
        await server.client() as client,
    ):
        model = {"model": "scripted/session.jsonl"}
        _, hello = await chat(client, {"message": "Hello!", **model})
        assert [d["text"] for d in hello.deltas] == ["Hi", " there"]
        _, cut = await chat(client, {"message": "cut", **model})
        assert cut.end is not None
        assert (cut.text, cut.end["finishReason"]) == ("This is cut short", "length")
        _, failed = await chat(client, {"message": "fail", **model})
        assert failed.text == "Half an"
        assert [e["message"] for e in failed.errors] == ["simulated outage"]
        assert failed.end is not None
        assert failed.end["finishReason"] == "error"
        _, outside = await chat(client, {"message": "x", "model": "scripted/../escape"})
        assert outside.deltas == []
        assert [e["message"] for e in outside.errors] == [
            "scripted model '../escape' cannot be loaded"
        ]
        assert outside.end is not None
        assert outside.end["finishReason"] == "error"


async def test_scripted_models_are_off_unless_a_scripts_directory_is_set(tmp_path: Path) -> None:
    # The working directory holds the data dir (keys, database): it must not be a root.
    (tmp_path / "here.jsonl").write_text('{"reply": "from the cwd"}\n')
    async with running_server(tmp_path) as server, await server.client() as client:
        for name in ("scripted/here.jsonl", "scripted/data/yamabiko.db"):
            with pytest.raises(RemoteError) as off:
                await client.call("chat/send", {"message": "hi", "model": name})
            assert off.value.wire_code == -32010
            assert "scripted models are off" in off.value.message


async def test_a_script_that_cannot_be_loaded_reveals_nothing_about_the_file(
    tmp_path: Path,
) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "log.jsonl").write_text('{"level": "info", "apiKeyHint": "sk-123"}\n')
    (scripts / "binary.jsonl").write_bytes(b"\x00\xff\xfe")
    async with (
        running_server(tmp_path, scripts_dir=str(scripts)) as server,
        await server.client() as client,
    ):
        messages = []
        for name in ("log.jsonl", "binary.jsonl", "missing.jsonl", "../data", "."):
            _, read = await chat(client, {"message": "x", "model": f"scripted/{name}"})
            assert read.deltas == []
            messages.append([e["message"] for e in read.errors])
        assert messages == [
            [f"scripted model {name!r} cannot be loaded"]
            for name in ("log.jsonl", "binary.jsonl", "missing.jsonl", "../data", ".")
        ]


async def test_a_model_registered_by_an_admin_prices_the_next_reply(tmp_path: Path) -> None:
    openai = next(p for p in PROVIDERS if p.engine == "openai")
    async with (
        FakeOpenAI(Script(tokens=["a", "b"], input_tokens=10)) as fake,
        with_provider(tmp_path, fake, openai) as server,
        await server.client(scopes=ADMIN) as client,
    ):
        with pytest.raises(RemoteError) as unknown:  # and the miss is cached...
            await client.call("chat/send", {"message": "hi", "model": "house"})
        assert unknown.value.wire_code == -32010
        await client.call(
            "models/register",
            {
                "modelId": "openai/house-model",
                "provider": "openai",
                "providerModel": "house-model",
                "aliases": ["house"],
                "inputPricePerMtok": 1.0,
                "outputPricePerMtok": 2.0,
                "contextWindow": 8000,
            },
        )
        result, read = await chat(client, {"message": "hi", "model": "house"})  # ...till now
        assert result["model"] == "openai/house-model"
        assert read.end is not None
        assert read.end["usage"]["costUsd"] == round((10 * 1.0 + 2 * 2.0) / 1e6, 8)
        assert fake.last.body["model"] == "house-model"
