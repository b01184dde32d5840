"""Ghost text end to end: documents, keystrokes, pushed and pulled suggestions, feedback."""

from __future__ import annotations

import asyncio
import random
import secrets
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.engines.ghost.tiny_model import words_after, write_model_dir
from tests.support import Running, running_server
from yamabiko.client import Client, RemoteError
from yamabiko.engines.ghost.base import Count, GhostRequest, GhostSuggestion, PersonalCounts

GHOST = ("ghost/suggestions", "ghost/resync")
MARK = "\u2192"


class Mirror:
    """A test engine whose suggestion shows what it was asked: the version's text just
    before the cursor, so a client can check it against its own copy."""

    name = "mirror"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls = 0
        self.asked = asyncio.Event()

    async def suggest(
        self, request: GhostRequest, personal: PersonalCounts | None = None
    ) -> list[GhostSuggestion]:
        self.calls += 1
        self.asked.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        return [GhostSuggestion(MARK + request.before[-12:], 1.0)]

    def learn(self, request: GhostRequest, accepted: str) -> list[Count]:
        return []


@asynccontextmanager
async def mirror_server(tmp: Path, delay: float = 0.0) -> AsyncIterator[tuple[Running, Mirror]]:
    mirror = Mirror(delay)
    async with running_server(tmp, ghost={"mirror": mirror}) as server:
        yield server, mirror


async def configure(client: Client, **settings: Any) -> dict[str, Any]:
    return await client.call("ghost/configure", settings)  # type: ignore[no-any-return]


async def next_ghost(client: Client, sub: Any, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
    note = await client.next(sub, timeout)
    return note.method, note.params


class Typist:
    """A client-side copy of one document, sending each keystroke as a ghost/change."""

    def __init__(self, client: Client, doc_id: str, text: str = "") -> None:
        self.client = client
        self.doc_id = doc_id
        self.text = text
        self.cursor = len(text)
        self.version = 0
        self.history: dict[int, tuple[str, int]] = {0: (text, self.cursor)}

    async def edit(self, start: int, end: int, insert: str) -> None:
        self.text = self.text[:start] + insert + self.text[end:]
        self.cursor = start + len(insert)
        self.version += 1
        self.history[self.version] = (self.text, self.cursor)
        await self.client.notify(
            "ghost/change",
            {
                "docId": self.doc_id,
                "version": self.version,
                "changes": [{"start": start, "end": end, "text": insert}],
            },
        )

    async def type(self, char: str) -> None:
        await self.edit(self.cursor, self.cursor, char)

    def expected(self, version: int) -> str:
        text, cursor = self.history[version]
        return MARK + text[:cursor][-12:]


async def test_a_typing_session_with_edits_gets_suggestions_for_each_newest_version(
    tmp_path: Path,
) -> None:
    rng = random.Random(7)
    async with mirror_server(tmp_path) as (server, _), await server.client() as client:
        await configure(client, engine="mirror")
        sub = client.subscribe(*GHOST)
        await client.call("ghost/open", {"docId": "song", "text": "", "kind": "lyrics"})
        typist = Typist(client, "song")
        received: list[dict[str, Any]] = []
        for i in range(200):
            if i % 25 == 24 and len(typist.text) > 10:
                # Jump into the middle and delete, or insert, there.
                at = rng.randrange(1, len(typist.text) - 3)
                if i % 50 == 49:
                    await typist.edit(at, at + 2, "")
                else:
                    await typist.edit(at, at, "la ")
            else:
                await typist.type(rng.choice("abcdefgh ijklmnop "))
            if i % 10 == 0:  # now and then, wait for this keystroke's answer
                while True:
                    method, params = await next_ghost(client, sub)
                    assert method == "ghost/suggestions"
                    received.append(params)
                    if params["version"] == typist.version:
                        break
        while True:
            method, params = await next_ghost(client, sub)
            received.append(params)
            if params["version"] == typist.version:
                break
    versions = [r["version"] for r in received]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    for params in received:
        (item,) = params["items"]
        assert item["text"] == typist.expected(params["version"]), params["version"]
    assert typist.version == 200


async def test_rapid_typing_with_a_slow_engine_delivers_only_the_newest_version(
    tmp_path: Path,
) -> None:
    async with mirror_server(tmp_path, delay=0.2) as (server, mirror):
        async with await server.client() as client:
            await configure(client, engine="mirror")
            sub = client.subscribe(*GHOST)
            await client.call("ghost/open", {"docId": "d"})
            typist = Typist(client, "d")
            for char in "quick brown fox":
                await typist.type(char)
            method, params = await next_ghost(client, sub)
            assert (method, params["version"]) == ("ghost/suggestions", typist.version)
            assert params["items"][0]["text"] == typist.expected(typist.version)
            await client.call("ping")  # nothing else was queued before this answer
            await asyncio.sleep(0.3)  # longer than the engine takes: nothing late comes
            assert sub.queue.empty()
        assert mirror.calls >= 1
        metrics = await asyncio.to_thread(_get, server.http + "/metrics")
        assert 'yamabiko_ghost_suggestions_total{engine="mirror"} 1.0' in metrics


async def test_changes_that_cannot_apply_ask_for_the_full_text(tmp_path: Path) -> None:
    async with mirror_server(tmp_path) as (server, _), await server.client() as client:
        await configure(client, engine="mirror")
        sub = client.subscribe(*GHOST)
        await client.notify(
            "ghost/change",
            {"docId": "nope", "version": 1, "changes": [{"start": 0, "end": 0, "text": "a"}]},
        )
        method, params = await next_ghost(client, sub)
        assert (method, params["docId"]) == ("ghost/resync", "nope")
        await client.call("ghost/open", {"docId": "d", "text": "hello"})
        await next_ghost(client, sub)  # the suggestions for version 0
        for change, reason in [
            ({"version": 3, "changes": []}, "expected version 1"),
            ({"version": 1, "changes": [{"start": 0, "end": 0, "text": "x"}]}, "waiting"),
        ]:
            await client.notify("ghost/change", {"docId": "d", **change})
            method, params = await next_ghost(client, sub)
            assert method == "ghost/resync"
            assert reason in params["reason"]
        # The full text puts it right, and incremental changes apply again.
        await client.notify("ghost/change", {"docId": "d", "version": 5, "text": "hello world"})
        method, params = await next_ghost(client, sub)
        assert (method, params["version"]) == ("ghost/suggestions", 5)
        assert params["items"][0]["text"] == MARK + "hello world"
        await client.notify(
            "ghost/change",
            {"docId": "d", "version": 6, "changes": [{"start": 99, "end": 100, "text": "x"}]},
        )
        method, params = await next_ghost(client, sub)
        assert method == "ghost/resync"
        assert "outside the text" in params["reason"]
        # A full text re-opens a document the server does not know (after a reconnect).
        await client.notify("ghost/change", {"docId": "again", "version": 9, "text": "la la"})
        method, params = await next_ghost(client, sub)
        assert (method, params["docId"], params["version"]) == ("ghost/suggestions", "again", 9)


async def test_complete_answers_for_the_version_asked_or_content_modified(
    tmp_path: Path,
) -> None:
    async with (
        mirror_server(tmp_path, delay=0.05) as (server, mirror),
        await server.client() as client,
    ):
        await configure(client, engine="mirror")
        await client.call("ghost/open", {"docId": "d", "text": "abc", "cursor": 2})
        answer = await client.call("ghost/complete", {"docId": "d", "version": 0})
        assert answer["version"] == 0
        assert [i["text"] for i in answer["items"]] == [MARK + "ab"]
        with pytest.raises(RemoteError) as stale:
            await client.call("ghost/complete", {"docId": "d", "version": 7})
        assert stale.value.wire_code == -32801
        # The document moves on while the engine works.
        mirror.asked.clear()
        request_id, waiter = await client.start("ghost/complete", {"docId": "d"})
        await asyncio.wait_for(mirror.asked.wait(), 5)
        await client.notify("ghost/change", {"docId": "d", "version": 1, "text": "abcd"})
        with pytest.raises(RemoteError) as moved:
            await client.result(request_id, waiter)
        assert moved.value.wire_code == -32801
        with pytest.raises(RemoteError) as unknown:
            await client.call("ghost/complete", {"docId": "zzz"})
        assert unknown.value.wire_code == -32004


async def test_documents_are_per_session_bounded_and_need_the_ghost_scope(
    tmp_path: Path,
) -> None:
    async with mirror_server(tmp_path) as (server, _):
        async with await server.client() as client:
            for i in range(16):
                await client.call("ghost/open", {"docId": f"d{i}"})
            with pytest.raises(RemoteError) as full:
                await client.call("ghost/open", {"docId": "one-more"})
            assert full.value.wire_code == -32029
            assert full.value.data["limit"] == "maxDocuments"
            with pytest.raises(RemoteError) as twice:
                await client.call("ghost/open", {"docId": "d0"})
            assert twice.value.wire_code == -32009
            assert await client.call("ghost/close", {"docId": "d0"}) == {"closed": True}
            assert await client.call("ghost/close", {"docId": "d0"}) == {"closed": False}
            await client.call("ghost/open", {"docId": "one-more"})
            async with await server.client() as other:  # another session sees none of them
                with pytest.raises(RemoteError) as missing:
                    await other.call("ghost/complete", {"docId": "d1"})
                assert missing.value.wire_code == -32004
            with pytest.raises(RemoteError) as engine:
                await configure(client, engine="onnx")
            assert engine.value.wire_code == -32010
        async with await server.client(scopes=["chat"]) as chat_only:
            with pytest.raises(RemoteError) as forbidden:
                await chat_only.call("ghost/open", {})
            assert forbidden.value.wire_code == -32003


async def test_english_and_japanese_documents_get_sensible_continuations(
    server: Running,
) -> None:
    async with await server.client() as client:
        english = await client.call(
            "ghost/open", {"docId": "en", "text": "Add some compression to the vo"}
        )
        answer = await client.call("ghost/complete", {"docId": english["docId"]})
        assert answer["items"], "no English suggestion"
        assert answer["items"][0]["text"].startswith("cal")
        # threshold 0: whatever the engine's confidence (test_confidence below).
        await client.call(
            "ghost/open",
            {"docId": "ja", "text": "ボーカルにリバーブを", "language": "ja", "threshold": 0},
        )
        answer = await client.call("ghost/complete", {"docId": "ja"})
        assert answer["items"], "no Japanese suggestion"
        text = answer["items"][0]["text"]
        assert text
        assert any("\u3040" <= c <= "\u30ff" or "\u4e00" <= c <= "\u9fff" for c in text)
        assert len(answer["items"]) <= 3


async def test_a_suggestion_shows_only_when_the_engine_is_confident_enough(
    server: Running,
) -> None:
    async with await server.client() as client:

        async def items(doc_id: str) -> list[dict[str, Any]]:
            answer = await client.call("ghost/complete", {"docId": doc_id})
            return answer["items"]  # type: ignore[no-any-return]

        # A context the engine knows: shown with the calibrated default.
        await client.call("ghost/open", {"docId": "sure", "text": "Add some compression to the vo"})
        sure = await items("sure")
        assert sure
        assert sure[0]["text"].startswith("cal")
        # One it has no idea about: nothing shown, though it has candidates.
        vague = "Zorblax quintessential "
        await client.call("ghost/open", {"docId": "vague", "text": vague})
        assert await items("vague") == []
        await client.call("ghost/open", {"docId": "anything", "text": vague, "threshold": 0})
        shown = await items("anything")
        assert shown
        assert all(item["score"] < sure[0]["score"] for item in shown)
        # The session's threshold for documents without their own; null: the default.
        assert (await configure(client, threshold=1))["threshold"] == 1.0
        assert await items("sure") == []
        assert await items("anything") == shown
        assert (await configure(client, threshold=None))["threshold"] is None
        assert [i["text"] for i in await items("sure")] == [i["text"] for i in sure]
        for bad in (-0.1, 1.5, "high"):
            with pytest.raises(RemoteError) as refused:
                await client.call("ghost/open", {"text": vague, "threshold": bad})
            assert refused.value.wire_code == -32602
            with pytest.raises(RemoteError) as refused:
                await configure(client, threshold=bad)
            assert refused.value.wire_code == -32602


async def test_an_accepted_suggestion_ranks_first_for_that_user_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    secret = secrets.token_urlsafe(48)
    context = "Turn the kick up and the "
    async with running_server(tmp_path, secret=secret) as server:
        async with await server.client("alice") as alice:
            await configure(alice, threshold=0)  # every candidate, sure or not
            await alice.call("ghost/open", {"docId": "d", "text": context})
            before = (await alice.call("ghost/complete", {"docId": "d"}))["items"]
            assert len(before) >= 2, before
            chosen = before[-1]
            assert chosen["text"] != before[0]["text"]
            for _ in range(2):
                await alice.notify(
                    "ghost/feedback",
                    {"docId": "d", "suggestionId": chosen["id"], "action": "accepted"},
                )
            await alice.call("ping")
            after = (await alice.call("ghost/complete", {"docId": "d"}))["items"]
            assert after[0]["text"] == chosen["text"]
        async with await server.client("bob") as bob:
            await bob.call("ghost/open", {"docId": "d", "text": context, "threshold": 0})
            theirs = (await bob.call("ghost/complete", {"docId": "d"}))["items"]
            assert theirs[0]["text"] == before[0]["text"]
        metrics = await asyncio.to_thread(_get, server.http + "/metrics")
        assert 'yamabiko_ghost_feedback_total{action="accepted",engine="ngram"} 2.0' in metrics
    async with (
        running_server(tmp_path, secret=secret) as restarted,
        await restarted.client("alice") as alice,
    ):
        await alice.call("ghost/open", {"docId": "d", "text": context, "threshold": 0})
        again = (await alice.call("ghost/complete", {"docId": "d"}))["items"]
        assert again[0]["text"] == chosen["text"]


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()  # type: ignore[no-any-return]


async def test_the_onnx_engine_serves_a_model_built_in_the_tests(tmp_path: Path) -> None:
    model_dir = write_model_dir(tmp_path / "model", "bytes", "past")
    prefix = "warm pads"
    async with (
        running_server(tmp_path, ghost_onnx_model_dir=str(model_dir)) as server,
        await server.client() as client,
    ):
        assert (await configure(client, engine="onnx", maxItems=1))["engine"] == "onnx"
        sub = client.subscribe(*GHOST)
        await client.call("ghost/open", {"docId": "d", "text": prefix})
        method, params = await next_ghost(client, sub)
        assert (method, params["version"]) == ("ghost/suggestions", 0)
        (item,) = params["items"]
        expected = words_after(prefix)
        assert item["text"] == expected[: len(item["text"])]
        assert len(item["text"]) >= len(" swell")


async def test_debounce_waits_for_a_pause_in_typing(tmp_path: Path) -> None:
    async with mirror_server(tmp_path) as (server, mirror), await server.client() as client:
        settings = await configure(client, engine="mirror", debounceMs=150)
        assert settings["debounceMs"] == 150
        sub = client.subscribe(*GHOST)
        await client.call("ghost/open", {"docId": "d"})
        typist = Typist(client, "d")
        for char in "chorus":
            await typist.type(char)
        method, params = await next_ghost(client, sub)
        assert (method, params["version"]) == ("ghost/suggestions", typist.version)
        assert mirror.calls == 1  # the engine ran once, after the pause


async def test_learning_from_typed_text_adapts_the_users_model(server: Running) -> None:
    context = "Turn the kick up and the "
    async with await server.client("carol") as carol:
        await configure(carol, learnFromText=True, threshold=0)
        await carol.call("ghost/open", {"docId": "probe", "text": context})
        before = (await carol.call("ghost/complete", {"docId": "probe"}))["items"]
        word = "tambourine"
        assert all(not item["text"].strip().startswith(word) for item in before)
        for n in range(3):
            await carol.call("ghost/open", {"docId": f"d{n}", "text": context})
            typist = Typist(carol, f"d{n}", context)
            for char in word + " ":
                await typist.type(char)
        await carol.call("ping")
        await carol.call("ghost/close", {"docId": "probe"})
        await carol.call("ghost/open", {"docId": "probe", "text": context})
        after = (await carol.call("ghost/complete", {"docId": "probe"}))["items"]
        assert after[0]["text"].strip() == word, after
