"""Planning with a provider model: the prompt and the DAW context in, checked actions
out, repaired once.

The model is asked for JSON (``{"actions": [...], "summary": "...", "nextSteps":
[...]}``); its answer is decoded and validated against the context
(:func:`~yamabiko.engines.agent.validate.check_actions`). If anything is wrong, the
model is shown the problems (each with its path) and asked once more; if the second
answer is wrong too, :class:`PlanFailed` carries the problems.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from yamabiko.engines.agent.validate import check_actions
from yamabiko.engines.llm import ChatMessage, collect
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


@dataclass
class ModelPlan:
    actions: list[Action]
    summary: str
    next_steps: list[str]


Ask = Callable[[list[ChatMessage], str], EventStream]
"""Starts the model's stream for ``(messages, system)``."""


async def plan_with_model(ask: Ask, prompt: str, context: DawContext) -> ModelPlan:
    project = msgspec.json.encode(context).decode()
    messages = [ChatMessage("user", f"Project: {project}\n\nRequest: {prompt}")]
    text, _ = await collect(ask(messages, SYSTEM))
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
        text, _ = await collect(ask(messages, SYSTEM))
        actions, problems = check_actions(text, context)
        if problems:
            raise PlanFailed(problems)
    summary, next_steps = _extras(text)
    return ModelPlan(actions, summary or f"{len(actions)} actions", next_steps)


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
