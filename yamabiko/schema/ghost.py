"""The ``ghost`` namespace (docs/ghost.md): grey next-word suggestions while typing.

Every method needs scope ``ghost``. A document lives in the session that opened it
(at most ``maxDocuments``) and is gone when it closes. Offsets are Unicode code points.

Push: each ``ghost/change`` (a notification, per keystroke) makes the server compute
suggestions for the newest version and push ``ghost/suggestions``; work for a version
that has been overtaken is cancelled or its result dropped, and only the newest
suggestions of a document wait in the outbound queue. Pull: ``ghost/complete``. A change
the server cannot apply gets ``ghost/resync``: send the full text.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from msgspec import UNSET, Meta, UnsetType

from yamabiko.schema.base import SCOPE_GHOST, MethodSchema, Params, Result

GHOST_OPEN: Final = "ghost/open"
GHOST_CLOSE: Final = "ghost/close"
GHOST_CONFIGURE: Final = "ghost/configure"
GHOST_CHANGE: Final = "ghost/change"
GHOST_COMPLETE: Final = "ghost/complete"
GHOST_FEEDBACK: Final = "ghost/feedback"
GHOST_SUGGESTIONS: Final = "ghost/suggestions"
GHOST_RESYNC: Final = "ghost/resync"

MAX_TEXT: Final = 1_000_000
"""The longest document, in code points."""
CHANGE_COST: Final = 0.05
"""A keystroke's share of the rate budget: twenty take what one request takes, so a
fast typist never meets the limit and a flood of changes does."""
FEEDBACK_COST: Final = 0.1
DocId = Annotated[str, Meta(min_length=1, max_length=128)]
Text = Annotated[str, Meta(max_length=MAX_TEXT)]
Version = Annotated[int, Meta(ge=0)]
Offset = Annotated[int, Meta(ge=0)]
DocumentKind = Literal["lyrics", "chat", "prompt", "notes"]
EngineName = Annotated[str, Meta(pattern="^[a-z][a-z0-9_-]{0,31}$")]
"""``ngram`` (the default), ``onnx``, ``llm``; one this server lacks is -32010."""
FeedbackAction = Literal["accepted", "rejected", "partial"]
Threshold = Annotated[float, Meta(ge=0.0, le=1.0)]
"""A score from 0 to 1: 0 shows every suggestion, higher values fewer and surer ones."""


class OpenParams(Params):
    text: Text = ""
    doc_id: DocId | None = None
    """Your own id for the document (unique in the session); default: one is made."""
    language: Annotated[str, Meta(max_length=35)] | None = None
    """A BCP 47 hint (``en``, ``ja``); default: detected from the text."""
    kind: DocumentKind = "chat"
    cursor: Offset | None = None
    """Where suggestions go; default: the end of the text."""
    threshold: Threshold | None = None
    """This document's confidence threshold: a suggestion is shown only when its score
    is at least this; default: the session's (``ghost/configure``), else the engine's
    calibrated one for the kind and language."""


class OpenResult(Result):
    doc_id: str
    version: int


class DocRef(Params):
    doc_id: DocId


class CloseResult(Result):
    closed: bool
    """False if the session had no such document."""


class ConfigureParams(Params):
    """The session's ghost settings; fields left out keep their value."""

    debounce_ms: Annotated[int, Meta(ge=0, le=5000)] | UnsetType = UNSET
    """Wait this long after a keystroke before computing (a newer one restarts it)."""
    max_items: Annotated[int, Meta(ge=1, le=3)] | UnsetType = UNSET
    max_chars: Annotated[int, Meta(ge=1, le=200)] | UnsetType = UNSET
    engine: EngineName | UnsetType = UNSET
    learn_from_text: bool | UnsetType = UNSET
    """Also learn from what the user types (whole words at the cursor), not only from
    accepted suggestions."""
    threshold: Threshold | UnsetType | None = UNSET
    """The confidence threshold of the session's documents that set none of their own;
    null: the engine's calibrated default for each document's kind and language."""


class ConfigureResult(Result):
    debounce_ms: int
    max_items: int
    max_chars: int
    engine: str
    learn_from_text: bool
    threshold: float | None


class Change(Params):
    """Replace ``[start, end)`` of the text (as it is after the changes before this one
    in the same notification) with ``text``."""

    start: Offset
    end: Offset
    text: Annotated[str, Meta(max_length=MAX_TEXT)]


class ChangeParams(Params):
    """``changes`` (incremental: ``version`` must be the document's plus one) or
    ``text`` (the whole document, any newer version), not both; neither, with
    ``cursor``, moves the caret (as the next version)."""

    doc_id: DocId
    version: Version
    changes: Annotated[list[Change], Meta(max_length=1000)] | None = None
    text: Text | None = None
    cursor: Offset | None = None
    """Where the caret is after this change; default: the end of the last change's
    inserted text (or of the text)."""


class Suggestion(Result):
    id: str
    """Name it in ``ghost/feedback``."""
    text: str
    """Inserted at the cursor as it is."""
    score: float


class SuggestionsParams(Params):
    doc_id: str
    version: int
    items: list[Suggestion]


class ResyncParams(Params):
    doc_id: str
    reason: str
    """Why: the document is unknown, a version was skipped, a change was out of range."""


class CompleteParams(Params):
    doc_id: DocId
    version: Version | None = None
    """The version you are looking at: if the document is elsewhere by the answer,
    -32801."""


class CompleteResult(Result):
    version: int
    items: list[Suggestion]


class FeedbackParams(Params):
    doc_id: DocId
    suggestion_id: Annotated[str, Meta(min_length=1, max_length=64)]
    action: FeedbackAction
    accepted_text: Annotated[str, Meta(max_length=10_000)] | None = None
    """For ``partial``: the part taken (a prefix of the suggestion)."""


METHODS: Final[tuple[MethodSchema, ...]] = (
    MethodSchema(
        GHOST_OPEN, OpenParams, OpenResult, "Open a document for ghost text (version 0).",
        scope=SCOPE_GHOST,
    ),
    MethodSchema(GHOST_CLOSE, DocRef, CloseResult, "Close a document.", scope=SCOPE_GHOST),
    MethodSchema(
        GHOST_CONFIGURE, ConfigureParams, ConfigureResult,
        "Set the session's debounce, item and length limits, engine.", scope=SCOPE_GHOST,
    ),
    MethodSchema(
        GHOST_CHANGE, ChangeParams, None,
        "A keystroke: incremental changes (next version) or the full text.", scope=SCOPE_GHOST,
        cost=CHANGE_COST,
    ),
    MethodSchema(
        GHOST_COMPLETE, CompleteParams, CompleteResult,
        "Suggestions for the document now (-32801 if it changes meanwhile).",
        scope=SCOPE_GHOST,
    ),
    MethodSchema(
        GHOST_FEEDBACK, FeedbackParams, None,
        "A suggestion was accepted, partly accepted or rejected: adapts your model.",
        scope=SCOPE_GHOST, cost=FEEDBACK_COST,
    ),
    MethodSchema(
        GHOST_SUGGESTIONS, SuggestionsParams, None,
        "Suggestions for a document's newest version (at most maxItems).", sender="server",
    ),
    MethodSchema(
        GHOST_RESYNC, ResyncParams, None,
        "The server cannot apply a change: send the full text (ghost/change with text).",
        sender="server",
    ),
)  # fmt: skip
