"""Handlers of the ``chat`` namespace: ``chat/send``.

Everything that can be refused is checked before anything is written or the provider
is asked: the conversation and agent (-32004), the model (-32010 when no engine can
serve it), the budget (-32011), the session's subscription slots (-32029), the
prompt's size (-32602), then the conversation's lock (-32009). Then the provider is
asked, and while its request travels the turn is stored (the user's message, and the
assistant's as ``streaming``, in one transaction), the stream created and the sender
subscribed; then the generation starts on this node, publishing what the provider has
said so far (:mod:`yamabiko.services.generation`), and the answer goes back. If the
turn cannot be stored, the provider's stream is closed and the error answered: nothing
is published or billed for a turn that was not kept. Measured in
docs/decisions/0075-request-path.md.

The model is ``params.model``, else the agent's, else the tenant's default, else the
first provider with a key on the server, else ``local/default``; the agent's fallback
models follow it. Each name goes through the tenant's catalogue (aliases, prices, the
context window); a name the catalogue does not list is used as ``engine/providerModel``
at no price. Provider keys: the agent's secret named like the server's variable
(``OPENAI_API_KEY``...) first, then the server's environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from yamabiko.engines.llm import (
    EngineError,
    LLMRequest,
    PromptTooLong,
    ResolvedModel,
    assemble,
)
from yamabiko.engines.llm.prompt import DEFAULT_CONTEXT_WINDOW
from yamabiko.engines.llm.registry import KEY_VARIABLES
from yamabiko.handlers.common import found, owner_filter, tenant, user
from yamabiko.handlers.stream import subscribe_session
from yamabiko.protocol import errors
from yamabiko.schema import chat as schema
from yamabiko.schema.chat import ChatSendParams, ChatSendResult
from yamabiko.schema.objects import (
    Agent,
    AgentId,
    Conversation,
    ConversationId,
    Message,
    MessageId,
    TenantId,
)
from yamabiko.services.container import Services, services
from yamabiko.services.generation import Job, Price, Reader
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context
from yamabiko.store.locks import LockToken

router = Router()

DEFAULT_MAX_TOKENS: Final = 1024
HISTORY_MESSAGES: Final = 100
"""The newest messages a prompt may draw on (then trimmed to the context window)."""
TITLE_CHARS: Final = 80


@dataclass(frozen=True)
class Candidate:
    """A model to try: its catalogue id (what usage is recorded under), the engine name
    that serves it, its price and context window."""

    model_id: str
    engine_name: str
    price: Price
    context_window: int


async def candidate(svc: Services, tenant_id: TenantId, name: str) -> Candidate:
    entry = await svc.catalogue.get(tenant_id, name)
    if entry is None:
        return Candidate(name, name, Price(), DEFAULT_CONTEXT_WINDOW)
    return Candidate(
        entry.id,
        f"{entry.provider}/{entry.provider_model}",
        Price(entry.input_price_per_mtok, entry.output_price_per_mtok),
        entry.context_window,
    )


async def agent_keys(
    svc: Services, tenant_id: TenantId, agent: Agent | None, candidates: list[Candidate]
) -> dict[str, str]:
    """The agent's provider keys, by engine name, for the engines among ``candidates``."""
    keys: dict[str, str] = {}
    if agent is None:
        return keys
    for engine in {c.engine_name.partition("/")[0] for c in candidates}:
        variable = KEY_VARIABLES.get(engine)
        if variable is None:
            continue
        value = await svc.store.secrets.get_value(tenant_id, agent.id, variable)
        if value:
            keys[engine] = value
    return keys


def check_servable(svc: Services, candidates: list[Candidate], keys: dict[str, str]) -> None:
    """-32010 unless at least one candidate resolves to an engine with a key."""
    first: EngineError | None = None
    for c in candidates:
        try:
            svc.engines.resolve(c.engine_name, api_key=keys.get(c.engine_name.partition("/")[0]))
            return
        except EngineError as error:
            first = first or error
    assert first is not None
    raise errors.EngineUnavailable(first.message)


async def _lock(svc: Services, tid: TenantId, conversation_id: ConversationId) -> LockToken:
    """The conversation's lock, or -32009 while another reply is being generated."""
    lock = await svc.locks.acquire(
        f"conversation:{tid}:{conversation_id}", ttl_s=svc.generations.lock_ttl_s
    )
    if lock is None:
        raise errors.Conflict(
            "a reply is already being generated in this conversation: wait for its "
            "stream/end or cancel it",
            {"conversationId": conversation_id},
        )
    return lock


def title_of(message: str) -> str:
    """A new conversation's title: the message's first line, shortened."""
    lines = message.strip().splitlines()
    return lines[0][:TITLE_CHARS] if lines else ""


@router.method(schema.CHAT_SEND)
async def send(ctx: Context, params: ChatSendParams) -> ChatSendResult:
    svc = services(ctx)
    store = svc.store
    tid, uid = tenant(ctx), user(ctx)
    conversation: Conversation | None = None
    if params.conversation_id is not None:
        conversation = found(
            await store.conversations.get(
                tid, ConversationId(params.conversation_id), owner=owner_filter(ctx)
            ),
            "conversation",
            params.conversation_id,
        )
    agent_id = params.agent_id or (conversation.agent_id if conversation else None)
    agent: Agent | None = None
    if agent_id is not None:
        agent = found(
            await store.agents.get(tid, AgentId(agent_id), owner=owner_filter(ctx)),
            "agent",
            agent_id,
        )
    tenant_row = await svc.tenant_limits.tenant(tid)

    primary = (
        params.model
        or (agent.model if agent else None)
        or (tenant_row.default_model if tenant_row else None)
        or svc.engines.default_model()
    )
    names = [primary, *(m for m in (agent.fallback_models if agent else []) if m != primary)]
    candidates = [await candidate(svc, tid, name) for name in names]
    keys = await agent_keys(svc, tid, agent, candidates)
    check_servable(svc, candidates, keys)
    await svc.budget.check(tid)
    ctx.session.subscriptions.check_room()  # a slot for the sender's subscription

    history: list[Message] = []
    if conversation is not None:
        history = await store.messages.recent(tid, conversation.id, limit=HISTORY_MESSAGES)
    max_tokens = params.max_tokens or DEFAULT_MAX_TOKENS
    try:
        prompt = assemble(
            params.message,
            history=history,
            tenant_system=tenant_row.system_prompt if tenant_row else None,
            personality=agent.personality if agent else None,
            agent_system=agent.system_prompt if agent else None,
            context_window=candidates[0].context_window,
            max_output_tokens=max_tokens,
        )
    except PromptTooLong as exc:
        raise errors.InvalidParams(exc.message, {"field": "message"}) from None
    temperature = params.temperature
    if temperature is None and agent is not None:
        temperature = agent.temperature

    lock: LockToken | None = None
    if conversation is not None:
        # A refusal (-32009), so before the provider is asked. A new conversation's
        # lock cannot be held by anyone: it is taken while the request travels.
        lock = await _lock(svc, tid, conversation.id)

    def build(resolved: ResolvedModel) -> LLMRequest:
        return resolved.request(
            prompt.messages,
            system=prompt.system,
            temperature=temperature,
            max_tokens=max_tokens,
            traceparent=ctx.traceparent,
        )

    first = candidates[0]
    by_engine = {c.engine_name: c for c in candidates}
    events = svc.engines.stream_with_fallbacks(
        [c.engine_name for c in candidates], build, api_keys=keys
    )
    # Everything that can be refused has been checked: the provider is asked now, and
    # the turn is stored while its request travels (docs/decisions/0075-request-path.md).
    # The reader's events wait for the job, which only starts once the turn is stored
    # and the stream created; if that fails, the provider's stream is closed and
    # nothing it said is published, stored or billed.
    reader: Reader | None = None
    message_id: str | None = None
    try:
        reader = svc.generations.ask(events)
        if conversation is None:
            conversation = await store.conversations.create(
                tid, uid, title=title_of(params.message), agent_id=agent.id if agent else None
            )
            lock = await _lock(svc, tid, conversation.id)
        # The turn is stored in one transaction; nothing is generated for a message
        # that is not kept.
        turn = await store.messages.append_turn(
            tid, conversation.id, content=params.message, model=first.model_id
        )
        if turn is None:  # deleted a moment ago
            raise errors.NotFound(f"conversation not found: {conversation.id}")
        message_id = turn[1].id
        # The stream is named after the message it fills: whoever finds the stream
        # without its producer (a node died) finds the message to finish, and back.
        stream_id = message_id
        await svc.broker.create(stream_id, owner_tenant=tid, owner_user=uid)
        await subscribe_session(ctx, stream_id, 0)
        await svc.watch.changed(conversation.id)
    except BaseException:
        if reader is not None:
            await reader.aclose()
        if lock is not None:
            await svc.locks.release(lock)
        if message_id is not None:
            await store.messages.update(tid, MessageId(message_id), status="error")
        raise
    assert lock is not None

    def answering() -> str | None:
        model = events.model
        return by_engine[model].model_id if model in by_engine else None

    # The job owns the lock from here.
    svc.generations.start(
        Job(
            stream_id=stream_id,
            tenant_id=tid,
            user_id=uid,
            conversation_id=conversation.id,
            message_id=message_id,
            lock=lock,
            request=LLMRequest(
                model=first.engine_name,
                messages=prompt.messages,
                system=prompt.system,
                max_tokens=max_tokens,
            ),
            reader=reader,
            model=answering,
            prices={c.model_id: c.price for c in candidates},
            first_model=first.model_id,
        )
    )
    return ChatSendResult(
        conversation_id=conversation.id,
        message_id=message_id,
        stream_id=stream_id,
        model=first.model_id,
    )
