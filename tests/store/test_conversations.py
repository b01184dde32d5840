"""Conversations and their messages."""

from __future__ import annotations

import pytest

from tests.store.conftest import ACME, ALICE, BOB, GLOBEX
from yamabiko.schema.objects import AgentId, ConversationId, MessageId, MessageRole, UserId
from yamabiko.store import Store
from yamabiko.store.ids import utc_now

MISSING = ConversationId("00000000-0000-7000-8000-000000000000")


async def test_create_and_get(store: Store) -> None:
    conversation = await store.conversations.create(
        ACME, ALICE, title="Chorus ideas", agent_id=AgentId("agent-1")
    )
    assert conversation.tenant_id == ACME
    assert conversation.owner == ALICE
    assert conversation.title == "Chorus ideas"
    assert conversation.agent_id == "agent-1"
    assert conversation.archived is False
    assert await store.conversations.get(ACME, conversation.id, owner=ALICE) == conversation
    assert await store.conversations.get(ACME, conversation.id, owner=None) == conversation
    assert await store.conversations.get(ACME, conversation.id, owner=BOB) is None
    assert await store.conversations.get(ACME, MISSING, owner=None) is None


async def test_list_newest_first_by_owner_and_archived(store: Store) -> None:
    c1 = await store.conversations.create(ACME, ALICE, title="1")
    c2 = await store.conversations.create(ACME, BOB, title="2")
    c3 = await store.conversations.create(ACME, ALICE, title="3")
    archived = await store.conversations.archive(ACME, c1.id, owner=ALICE)
    assert archived is not None
    assert archived.archived is True
    assert archived.updated_at > c1.updated_at

    async def ids(owner: UserId | None, include_archived: bool = False) -> list[ConversationId]:
        page = await store.conversations.list(ACME, owner=owner, include_archived=include_archived)
        return [c.id for c in page.items]

    assert await ids(ALICE) == [c3.id]
    assert await ids(ALICE, include_archived=True) == [c3.id, c1.id]
    assert await ids(None) == [c3.id, c2.id]
    assert await ids(None, include_archived=True) == [c3.id, c2.id, c1.id]
    assert await ids(BOB) == [c2.id]


async def test_archive_is_idempotent_and_reversible(store: Store) -> None:
    conversation = await store.conversations.create(ACME, ALICE)
    for _ in range(2):
        again = await store.conversations.archive(ACME, conversation.id, owner=ALICE)
        assert again is not None
        assert again.archived is True
    restored = await store.conversations.archive(ACME, conversation.id, owner=ALICE, archived=False)
    assert restored is not None
    assert restored.archived is False
    assert await store.conversations.archive(ACME, conversation.id, owner=BOB) is None
    assert await store.conversations.archive(ACME, MISSING, owner=None) is None


async def test_delete_takes_its_messages(store: Store) -> None:
    conversation = await store.conversations.create(ACME, ALICE)
    message = await store.messages.append(ACME, conversation.id, role="user", content="hi")
    assert message is not None
    assert await store.conversations.delete(ACME, conversation.id, owner=BOB) is False
    assert await store.conversations.delete(ACME, conversation.id, owner=ALICE) is True
    assert await store.conversations.delete(ACME, conversation.id, owner=ALICE) is False
    assert await store.conversations.get(ACME, conversation.id, owner=None) is None
    assert await store.messages.list(ACME, conversation.id, owner=None) is None
    assert await store.messages.update(ACME, message.id, content="gone") is None


async def test_append_and_list_in_order(store: Store) -> None:
    conversation = await store.conversations.create(ACME, ALICE)
    roles: list[MessageRole] = ["system", "user", "assistant", "tool", "user"]
    appended = []
    for i, role in enumerate(roles):
        message = await store.messages.append(ACME, conversation.id, role=role, content=f"m{i}")
        assert message is not None
        appended.append(message)
    first = appended[0]
    assert first.conversation_id == conversation.id
    assert first.status == "complete"
    assert (first.input_tokens, first.output_tokens, first.cost_usd) == (0, 0, 0.0)
    assert first.model is None

    page = await store.messages.list(ACME, conversation.id, owner=ALICE, limit=3)
    assert page is not None
    assert page.items == appended[:3]
    rest = await store.messages.list(
        ACME, conversation.id, owner=ALICE, limit=3, cursor=page.next_cursor
    )
    assert rest is not None
    assert rest.items == appended[3:]
    assert rest.next_cursor is None

    after = await store.conversations.get(ACME, conversation.id, owner=None)
    assert after is not None
    assert after.updated_at == appended[-1].created_at  # appending moves updatedAt


async def test_finish_a_streaming_assistant_message(store: Store) -> None:
    conversation = await store.conversations.create(ACME, ALICE)
    draft = await store.messages.append(
        ACME,
        conversation.id,
        role="assistant",
        content="",
        status="streaming",
        model="openai/gpt-4.1-mini",
    )
    assert draft is not None
    assert draft.status == "streaming"
    done = await store.messages.update(
        ACME,
        draft.id,
        content="Here you go.",
        status="complete",
        input_tokens=120,
        output_tokens=45,
        cost_usd=0.000120,
    )
    assert done is not None
    assert (done.content, done.status) == ("Here you go.", "complete")
    assert (done.input_tokens, done.output_tokens) == (120, 45)
    assert done.cost_usd == pytest.approx(0.000120)
    assert done.model == "openai/gpt-4.1-mini"
    assert done.created_at == draft.created_at
    assert done.updated_at > draft.updated_at
    cancelled = await store.messages.update(ACME, draft.id, status="cancelled")
    assert cancelled is not None
    assert (cancelled.status, cancelled.content) == ("cancelled", "Here you go.")


async def test_messages_of_a_conversation_not_found(store: Store) -> None:
    conversation = await store.conversations.create(ACME, ALICE)
    assert await store.messages.append(ACME, MISSING, role="user", content="x") is None
    assert await store.messages.list(ACME, conversation.id, owner=BOB) is None
    assert await store.messages.list(ACME, MISSING, owner=None) is None
    empty = await store.messages.list(ACME, conversation.id, owner=ALICE)
    assert empty is not None
    assert (empty.items, empty.next_cursor) == ([], None)
    missing = MessageId("00000000-0000-7000-8000-000000000000")
    assert await store.messages.update(ACME, missing, content="x") is None


async def test_recent_messages_are_the_newest_oldest_first(store: Store) -> None:
    conversation = await store.conversations.create(ACME, ALICE)
    for i in range(5):
        role: MessageRole = "user" if i % 2 == 0 else "assistant"
        await store.messages.append(ACME, conversation.id, role=role, content=f"m{i}")
    recent = await store.messages.recent(ACME, conversation.id, limit=3)
    assert [m.content for m in recent] == ["m2", "m3", "m4"]
    everything = await store.messages.recent(ACME, conversation.id)
    assert [m.content for m in everything] == [f"m{i}" for i in range(5)]
    assert await store.messages.recent(GLOBEX, conversation.id) == []


async def test_append_turn_stores_the_question_and_its_pending_answer(store: Store) -> None:
    conversation = await store.conversations.create(ACME, ALICE)
    turn = await store.messages.append_turn(
        ACME, conversation.id, content="Which reverb?", model="local/default"
    )
    assert turn is not None
    user, assistant = turn
    assert (user.role, user.content, user.status, user.model) == (
        "user", "Which reverb?", "complete", None,
    )  # fmt: skip
    assert (assistant.role, assistant.content, assistant.status, assistant.model) == (
        "assistant", "", "streaming", "local/default",
    )  # fmt: skip
    assert user.created_at < assistant.created_at
    page = await store.messages.list(ACME, conversation.id, owner=ALICE)
    assert page is not None
    assert [m.id for m in page.items] == [user.id, assistant.id]
    touched = await store.conversations.get(ACME, conversation.id, owner=ALICE)
    assert touched is not None
    assert touched.updated_at > conversation.updated_at
    assert (
        await store.messages.append_turn(GLOBEX, conversation.id, content="x", model=None) is None
    )


async def test_messages_left_streaming_are_listed_across_tenants_oldest_first(
    store: Store,
) -> None:
    acme = await store.conversations.create(ACME, ALICE, title="a")
    globex = await store.conversations.create(GLOBEX, BOB, title="g")
    first = await store.messages.append_turn(ACME, acme.id, content="q1", model="m")
    second = await store.messages.append_turn(GLOBEX, globex.id, content="q2", model="m")
    done = await store.messages.append_turn(ACME, acme.id, content="q3", model="m")
    assert first is not None
    assert second is not None
    assert done is not None
    await store.messages.update(ACME, done[1].id, status="complete", content="a3")
    cutoff = utc_now()
    later = await store.messages.append_turn(ACME, acme.id, content="q4", model="m")
    assert later is not None

    listed = await store.messages.streaming(before=cutoff)
    assert listed == [(ACME, first[1].id), (GLOBEX, second[1].id)]
    assert await store.messages.streaming(before=cutoff, limit=1) == [(ACME, first[1].id)]


async def test_a_model_reply_with_nul_is_stored_marked_on_every_store(store: Store) -> None:
    """Clients cannot send U+0000, but a model can answer one: the reply is kept with
    U+FFFD in its place (PostgreSQL cannot store NUL), never lost."""
    conversation = await store.conversations.create(ACME, ALICE)
    message = await store.messages.append(
        ACME, conversation.id, role="assistant", content="a\x00b", status="streaming"
    )
    assert message is not None
    assert message.content == "a\ufffdb"
    done = await store.messages.update(ACME, message.id, content="x\x00y", status="complete")
    assert done is not None
    assert done.content == "x\ufffdy"
