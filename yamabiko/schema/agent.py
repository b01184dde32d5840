"""The ``agent`` namespace (docs/agent.md): ``agent/run``, scope ``agent``.

The agent reads the DAW ``context`` and the prompt and answers edit actions
(:mod:`yamabiko.schema.daw`), each checked against the context before it leaves. With
``apply: client`` (client capability ``daw.applyActions``) the server sends the client
``client/applyActions`` for each step, reads back what was applied (and the new
context), and plans the next step from that, up to ``maxSteps``.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from msgspec import Meta

from yamabiko.schema.agents import AgentIdParam, ModelName
from yamabiko.schema.base import SCOPE_AGENT, MethodSchema, Params, Result
from yamabiko.schema.conversations import ConversationIdParam
from yamabiko.schema.daw import Action, DawContext

AGENT_RUN: Final = "agent/run"
CLIENT_APPLY_ACTIONS: Final = "client/applyActions"

ApplyMode = Literal["return", "client"]


class RunParams(Params):
    prompt: Annotated[str, Meta(min_length=1, max_length=4000)]
    context: DawContext
    agent_id: AgentIdParam | None = None
    """Default: the caller's agent whose skills best match the prompt (none: the
    built-in planner); the choice is in the result."""
    conversation_id: ConversationIdParam | None = None
    """Record the run (the prompt, then the summary and actions) in this conversation."""
    model: ModelName | None = None
    """A provider model plans (JSON actions, repaired once); default: the agent's, and
    with ``local/*`` or none, the built-in rule planner."""
    apply: ApplyMode = "return"
    max_steps: Annotated[int, Meta(ge=1, le=10)] = 3


class RunResult(Result, kw_only=True):
    run_id: str
    actions: list[Action]
    """Every action of the run, in order (with ``apply: client``: those the client
    applied)."""
    summary: str
    next_steps: list[str]
    agent_id: str | None
    """The agent that ran (chosen by skills when none was named); null when none did.
    Required, so that it is on the wire as null rather than left out."""
    steps: int
    model: str
    """``rules`` for the built-in planner, else the provider model."""


class ApplyActionsParams(Params):
    run_id: str
    step: int
    actions: list[Action]


class ApplyActionsResult(Result):
    applied: bool
    """True when every action was applied."""
    errors: list[str] = []
    context: DawContext | None = None
    """The project after the actions (the next step plans from it)."""


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(
        AGENT_RUN, RunParams, RunResult,
        "Plan (and with apply: client, drive) edits of a DAW project from a prompt.",
        scope=SCOPE_AGENT,
    ),
    MethodSchema(
        CLIENT_APPLY_ACTIONS, ApplyActionsParams, ApplyActionsResult,
        "Asks the client to apply one step's actions and return the new context.",
        sender="server",
    ),
)  # fmt: skip
