"""Planning with a provider model: the prompt and the DAW context in, checked actions
out, repaired once.

The model is asked for JSON (``{"actions": [...], "summary": "...", "nextSteps":
[...]}``); its answer is decoded and validated against the context
(:func:`~yamabiko.engines.agent.validate.check_actions`). If anything is wrong, the
model is shown the problems (each with its path) and asked once more; if the second
answer is wrong too, :class:`PlanFailed` carries the problems.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from yamabiko.engines.agent.validate import check_actions
from yamabiko.engines.llm import ChatMessage, Usage, collect
from yamabiko.engines.llm.base import EventStream
from yamabiko.schema.daw import ACTION_TYPES, Action, DawContext, Problem

SYSTEM: Final = (
    "You edit a DAW project for the user. You get the project as JSON and a request. "
    'Answer with JSON only: {"actions": [...], "summary": "one sentence", '
    '"nextSteps": ["..."]}. Each action has "type" (one of '
    + ", ".join(ACTION_TYPES)
    + ') and "description". Fields: addTrack {trackId, name, trackType: midi|audio|drum}; '
    "deleteTrack {trackId}; addNotes {trackId, notes: [{pitch 0-127, start, duration "
    "(beats), velocity 1-127}]}; updateNotes {trackId, notes: [{id, pitch?, start?, "
    "duration?, velocity?}]}; deleteNotes {trackId, noteIds}; setTempo {tempo 20-300}; "
    'setKey {key, e.g. "A minor"}; setTrackParams {trackId, name?, volume 0-1?, pan '
    "-1..1?, muted?}; addEffect {trackId, effect: reverb|delay|eq|compressor|distortion|"
    "chorus, params}. Only name tracks that exist or that an earlier action adds. "
    "An empty actions list means the request is done."
)


class PlanFailed(Exception):
    """The model's actions were invalid twice; ``problems`` says why (safe to show)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(f"{p.path}: {p.message}" for p in problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    result: str
    is_error: bool


@dataclass
class ModelPlan:
    actions: list[Action]
    summary: str
    next_steps: list[str]
    tool_calls: list[ToolCall]
    usage: Usage
    """Every answer's tokens, added up (what the plan cost)."""


Ask = Callable[[list[ChatMessage], str], EventStream]
"""Starts the model's stream for ``(messages, system)``."""


@dataclass(frozen=True)
class Tool:
    """A tool the model may call (an agent's MCP server's): its name as the model sees
    it, what it does and its JSON Schema."""

    name: str
    description: str
    input_schema: dict[str, Any]


CallTool = Callable[[str, dict[str, Any]], Awaitable[tuple[str, bool]]]
"""Calls a tool by name with arguments; returns (result text, is_error)."""

MAX_TOOL_CALLS: Final = 4
TOOLS_SYSTEM: Final = (
    " Tools you may call before answering (one at a time): answer with JSON only "
    '{"tool": {"name": "...", "arguments": {...}}} and you get its result; '
    "then answer with the actions. Tools: "
)


async def plan_with_model(
    ask: Ask,
    prompt: str,
    context: DawContext,
    *,
    tools: Sequence[Tool] = (),
    call_tool: CallTool | None = None,
) -> ModelPlan:
    """Plan ``prompt`` on ``context``. With ``tools`` (and ``call_tool``), the model may
    call up to :data:`MAX_TOOL_CALLS` tools first, each result fed back to it; every
    call is in :attr:`ModelPlan.tool_calls`."""
    project = msgspec.json.encode(context).decode()
    messages = [ChatMessage("user", f"Project: {project}\n\nRequest: {prompt}")]
    system = SYSTEM
    if tools and call_tool is not None:
        system += TOOLS_SYSTEM + "; ".join(
            f"{t.name}: {t.description} (arguments: {msgspec.json.encode(t.input_schema).decode()})"
            for t in tools
        )
    calls: list[ToolCall] = []
    used = [0, 0]

    async def answer() -> str:
        text, finish = await collect(ask(messages, system))
        used[0] += finish.usage.input_tokens
        used[1] += finish.usage.output_tokens
        return text

    text = await answer()
    while call_tool is not None and len(calls) < MAX_TOOL_CALLS:
        wanted = _tool_request(text, {t.name for t in tools})
        if wanted is None:
            break
        name, arguments = wanted
        result, is_error = await call_tool(name, arguments)
        calls.append(ToolCall(name, arguments, result, is_error))
        label = "Tool error" if is_error else "Tool result"
        messages += [ChatMessage("assistant", text), ChatMessage("user", f"{label}: {result}")]
        text = await answer()
    actions, problems = check_actions(text, context)
    if problems:
        listed = "\n".join(f"- {p.path}: {p.message}" for p in problems)
        messages += [
            ChatMessage("assistant", text),
            ChatMessage(
                "user",
                f"These actions are invalid:\n{listed}\nAnswer again with corrected JSON only.",
            ),
        ]
        text = await answer()
        actions, problems = check_actions(text, context)
        if problems:
            raise PlanFailed(problems)
    summary, next_steps = _extras(text)
    usage = Usage(used[0], used[1])
    return ModelPlan(actions, summary or f"{len(actions)} actions", next_steps, calls, usage)


def _tool_request(text: str, names: set[str]) -> tuple[str, dict[str, Any]] | None:
    """``(name, arguments)`` if the answer asks for one of the tools, else None."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        value: Any = msgspec.json.decode(text[start : end + 1])
    except msgspec.DecodeError:
        return None
    tool = value.get("tool") if isinstance(value, dict) else None
    if not isinstance(tool, dict) or tool.get("name") not in names:
        return None
    arguments = tool.get("arguments")
    return str(tool["name"]), arguments if isinstance(arguments, dict) else {}


def _extras(text: str) -> tuple[str, list[str]]:
    """The summary and next steps of an answer, if it has them."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end <= start:
        return "", []
    try:
        value: Any = msgspec.json.decode(text[start : end + 1])
    except msgspec.DecodeError:
        return "", []
    if not isinstance(value, dict):
        return "", []
    summary = value.get("summary")
    steps = value.get("nextSteps")
    return (
        summary if isinstance(summary, str) else "",
        [s for s in steps if isinstance(s, str)] if isinstance(steps, list) else [],
    )
