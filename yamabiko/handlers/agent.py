"""Handlers of the ``agent`` namespace: ``agent/run``.

Which agent: ``agentId``, else the caller's agent whose skills (and name) best match
the prompt's words; none matching, the built-in planner alone. Which planner: a
provider model (``model``, else the agent's model) plans in JSON
(:mod:`yamabiko.engines.agent.planner`, repaired once, else -32010 with the problems);
with no model, or a ``local/*`` one, the rule planner (:mod:`yamabiko.engines.agent.rules`)
does, offline.

Steps: with ``apply: return`` everything is planned at once and returned. With
``apply: client`` each step's actions go to the client as ``client/applyActions``; the
context it returns (or, without one, the actions applied to the old one) is what the
next step is planned from. The rule planner takes one clause of the prompt a step
(the last step takes what is left); a model plans until it answers no actions, or
``maxSteps``. Each step reports ``notifications/progress`` when the request asked.

Planning and applying a step read the whole context (up to
:data:`~yamabiko.schema.daw.MAX_TRACKS` tracks and
:data:`~yamabiko.schema.daw.MAX_CONTEXT_NOTES` notes): they run in a worker thread, so
a big project never holds the event loop that every other session shares.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import uuid
from typing import Any, Final

import msgspec

from yamabiko.engines.agent import rules
from yamabiko.engines.agent.planner import (
    Ask,
    ModelPlan,
    PlanFailed,
    Tool,
    ToolCall,
    plan_with_model,
)
from yamabiko.engines.agent.validate import apply_actions
from yamabiko.engines.llm import ChatMessage, EngineError
from yamabiko.engines.llm.base import EventStream
from yamabiko.engines.llm.cost import cost_usd
from yamabiko.engines.tools.mcp import McpClientError, McpClients, McpServerSpec
from yamabiko.handlers.chat import Candidate, agent_keys, candidate, check_servable
from yamabiko.handlers.common import found, owner_filter, tenant, user
from yamabiko.handlers.mcp_servers import server_spec
from yamabiko.protocol import errors
from yamabiko.schema import agent as schema
from yamabiko.schema.agent import ApplyActionsParams, ApplyActionsResult, RunParams, RunResult
from yamabiko.schema.daw import MAX_CONTEXT_NOTES, Action, DawContext
from yamabiko.schema.objects import Agent, AgentId, ConversationId, McpServerId, TenantId
from yamabiko.services.container import Services, services
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context

router = Router()

RULES: Final = "rules"
MAX_SERVERS: Final = 8
MAX_TOOLS: Final = 32
MAX_RESULT_CHARS: Final = 8000
log = logging.getLogger("yamabiko.agent")
_WORD: Final = re.compile(r"[a-z0-9]+")


def choose_agent(agents: list[Agent], prompt: str) -> Agent | None:
    """The agent whose skill tags (and name) share the most words with the prompt;
    None when none shares any. Ties go to the first listed."""
    words = set(_WORD.findall(prompt.lower()))
    best: tuple[int, Agent] | None = None
    for agent in agents:
        tags = {w for skill in agent.skills for w in _WORD.findall(skill.lower())}
        tags |= set(_WORD.findall(agent.name.lower()))
        score = len(words & tags)
        if score and (best is None or score > best[0]):
            best = (score, agent)
    return best[1] if best else None


async def _agent(ctx: Context, svc: Services, params: RunParams) -> Agent | None:
    tid = tenant(ctx)
    if params.agent_id is not None:
        return found(
            await svc.store.agents.get(tid, AgentId(params.agent_id), owner=owner_filter(ctx)),
            "agent",
            params.agent_id,
        )
    page = await svc.store.agents.list(tid, owner=owner_filter(ctx), limit=100)
    return choose_agent(page.items, params.prompt)


@router.method(schema.AGENT_RUN)
async def run(ctx: Context, params: RunParams) -> RunResult:
    svc = services(ctx)
    session = ctx.session
    _check_size(params.context)
    if params.apply == "client":
        daw = getattr(session.capabilities, "daw", None)
        if not getattr(daw, "apply_actions", False):
            raise errors.InvalidParams(
                "apply: client needs the client capability daw.applyActions - at $.apply"
            )
    agent = await _agent(ctx, svc, params)
    model = params.model or (agent.model if agent is not None else None)
    use_model = model is not None and not model.startswith("local/") and model != "local"
    conversation = None
    if params.conversation_id is not None:
        conversation = found(
            await svc.store.conversations.get(
                tenant(ctx), ConversationId(params.conversation_id), owner=owner_filter(ctx)
            ),
            "conversation",
            params.conversation_id,
        )
    run_id = uuid.uuid4().hex
    context = params.context
    done: list[Action] = []
    summaries: list[str] = []
    next_steps: list[str] = []
    unknown: list[str] = []
    steps = 0
    ask: Ask | None = None
    ask_model: Candidate | None = None
    if use_model and model is not None:
        ask, ask_model = await _asker(ctx, svc, agent, model)
    tools = await AgentTools.of(ctx, svc, agent) if ask is not None else AgentTools()
    if use_model:
        await svc.budget.check(tenant(ctx))
    if conversation is not None:  # recorded once the run can start
        await svc.store.messages.append(
            tenant(ctx), conversation.id, role="user", content=params.prompt
        )
    pending = rules.clauses(params.prompt)
    seed = secrets.randbelow(2**31)
    while steps < params.max_steps:
        steps += 1
        if ask is not None:
            try:
                planned = await plan_with_model(
                    ask, params.prompt, context, tools=tools.offered, call_tool=tools.call
                )
            except PlanFailed as failure:
                raise errors.EngineUnavailable(
                    f"the model's actions were invalid twice: {failure}",
                    {
                        "problems": [
                            {"path": p.path, "message": p.message} for p in failure.problems
                        ]
                    },
                ) from None
            except EngineError as exc:
                raise errors.EngineUnavailable(exc.message) from None
            actions = planned.actions
            await _bill(ctx, svc, ask_model, planned)
            if conversation is not None:
                for call in planned.tool_calls:
                    await _record_tool(svc, tenant(ctx), conversation.id, call)
            if planned.summary:
                summaries.append(planned.summary)
            next_steps = planned.next_steps
        else:
            last = steps == params.max_steps or params.apply == "return"
            take, pending = (pending, []) if last else (pending[:1], pending[1:])
            # A clause may ask for a part of up to 64 bars (tens of milliseconds of
            # music theory): planned in a worker thread, off the event loop.
            plan = (
                await asyncio.to_thread(rules.plan, " and ".join(take), context, seed=seed + steps)
                if take
                else rules.Plan()
            )
            actions = plan.actions
            summaries += plan.done
            unknown += plan.unknown
        ctx.progress(steps, params.max_steps, f"step {steps}: {len(actions)} actions")
        if not actions:
            break
        if params.apply == "client":
            answer = await session.request(
                schema.CLIENT_APPLY_ACTIONS,
                ApplyActionsParams(run_id=run_id, step=steps, actions=actions),
                ApplyActionsResult,
            )
            if answer.errors:
                summaries.append("the client reported: " + "; ".join(answer.errors))
            if answer.context is not None:
                _check_size(answer.context, "the client's context")
                context = answer.context
            elif answer.applied:
                context = await asyncio.to_thread(apply_actions, context, actions)
            if not answer.applied and answer.context is None:
                break  # the client took none of it: nothing to plan on
        else:
            context = await asyncio.to_thread(apply_actions, context, actions)
        done += actions
        if params.apply == "return" or (ask is None and not pending):
            break
    summary = _summary(summaries, unknown, done)
    if not next_steps:
        next_steps = _next_steps(done, unknown)
    if conversation is not None:
        await svc.store.messages.append(
            tenant(ctx), conversation.id, role="assistant", content=summary
        )
    return RunResult(
        run_id=run_id,
        actions=done,
        summary=summary,
        next_steps=next_steps,
        agent_id=agent.id if agent is not None else None,
        steps=steps,
        model=model if use_model and model is not None else RULES,
    )


def _check_size(context: DawContext, what: str = "context") -> None:
    """-32602 past :data:`MAX_CONTEXT_NOTES` notes on all tracks together (the schema
    bounds the tracks, and the notes of any one track)."""
    notes = sum(len(t.notes or ()) for t in context.project.tracks)
    if notes > MAX_CONTEXT_NOTES:
        raise errors.InvalidParams(
            f"{what} holds {notes} notes, more than {MAX_CONTEXT_NOTES}"
            " - at $.context.project.tracks"
        )


async def _bill(ctx: Context, svc: Services, model: Candidate | None, planned: ModelPlan) -> None:
    """Record what the model's answers cost (the budget counts agent runs too)."""
    used = planned.usage
    if model is None or not (used.input_tokens or used.output_tokens):
        return
    price = model.price
    cost = cost_usd(
        used.input_tokens, used.output_tokens, price.input_per_mtok, price.output_per_mtok
    )
    await svc.budget.record(
        tenant(ctx),
        user(ctx),
        model.model_id,
        input_tokens=used.input_tokens,
        output_tokens=used.output_tokens,
        cost_usd=cost,
    )


async def _asker(
    ctx: Context, svc: Services, agent: Agent | None, model: str
) -> tuple[Ask, Candidate]:
    """How to ask ``model`` (with the agent's key and personality), and its catalogue
    entry (for the bill)."""
    tid = tenant(ctx)
    chosen = await candidate(svc, tid, model)
    keys = await agent_keys(svc, tid, agent, [chosen])
    check_servable(svc, [chosen], keys)
    personality = agent.personality if agent is not None else ""
    resolved = svc.engines.resolve(
        chosen.engine_name, api_key=keys.get(chosen.engine_name.partition("/")[0])
    )

    def ask(messages: list[ChatMessage], system: str) -> EventStream:
        full = f"{personality}\n\n{system}".strip() if personality else system
        return resolved.engine.stream(
            resolved.request(messages, system=full, max_tokens=4096, temperature=0.0)
        )

    return ask, chosen


def _summary(done: list[str], unknown: list[str], actions: list[Action]) -> str:
    parts = [d.rstrip(".") for d in done]
    text = "; ".join(parts) + "." if parts else "Nothing to change."
    if unknown:
        text += " Not understood: " + "; ".join(f'"{u}"' for u in unknown) + "."
    return text


def _next_steps(actions: list[Action], unknown: list[str]) -> list[str]:
    kinds = {type(a).__name__ for a in actions}
    steps = []
    if "AddNotes" in kinds:
        steps.append("Humanize the new part, or make it busier")
    if "SetTempo" not in kinds:
        steps.append("Try another tempo")
    steps.append("Add drums, a bassline or a melody on a new track")
    if unknown:
        steps.append("Rephrase what was not understood")
    return steps[:3]


class AgentTools:
    """The tools of an agent's MCP servers, named ``<server>.<tool>`` for the model, and
    how to call them (a server that cannot be reached offers none, and says why in the
    log)."""

    def __init__(self) -> None:
        self.offered: list[Tool] = []
        self._route: dict[str, tuple[McpServerSpec, str]] = {}
        self._pool: McpClients | None = None

    @classmethod
    async def of(cls, ctx: Context, svc: Services, agent: Agent | None) -> AgentTools:
        tools = cls()
        if agent is None or not agent.mcp_server_ids:
            return tools
        tools._pool = svc.mcp
        for server_id in agent.mcp_server_ids[:MAX_SERVERS]:
            server = await svc.store.mcp_servers.get(tenant(ctx), McpServerId(server_id))
            if server is None:
                continue
            try:
                spec = await server_spec(ctx, server, agent)
                listed = await svc.mcp.tools(spec)
            except McpClientError as exc:
                log.info("an agent's MCP server offers no tools", extra={"reason": exc.message})
                continue
            for info in listed[:MAX_TOOLS]:
                name = f"{server.name}.{info.name}"
                tools.offered.append(Tool(name, info.description, info.input_schema))
                tools._route[name] = (spec, info.name)
        return tools

    async def call(self, name: str, arguments: dict[str, Any]) -> tuple[str, bool]:
        route = self._route.get(name)
        if route is None or self._pool is None:
            return f"no tool {name}", True
        try:
            result = await self._pool.call(route[0], route[1], arguments)
        except McpClientError as exc:
            return exc.message, True
        return result.content_text[:MAX_RESULT_CHARS], result.is_error


async def _record_tool(
    svc: Services, tid: TenantId, conversation_id: ConversationId, call: ToolCall
) -> None:
    content = msgspec.json.encode(
        {"tool": call.name, "arguments": call.arguments, "result": call.result,
         "isError": call.is_error}
    ).decode()  # fmt: skip
    await svc.store.messages.append(tid, conversation_id, role="tool", content=content)
