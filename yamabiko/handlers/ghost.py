"""Handlers of the ``ghost`` namespace: documents, keystrokes, suggestions, feedback.

Theory of operation. A session's documents live in its :class:`GhostSession` (session
state, closed with it). Each document has a text, a version and a cursor. A
``ghost/change`` notification is applied inline, in the session's read loop, so the
keystrokes of a document are applied strictly in order; then the document's previous
suggestion task is cancelled, its suggestions still waiting in the outbound queue are
discarded, and a new task computes suggestions for this version. A task delivers only
if its version is still the document's when the engine answers; else its result is
dropped (``yamabiko_ghost_stale_total``). Suggestions go out with the ``replace``
policy keyed by document: a slow client holds at most one set per document, the
newest. So a client never receives suggestions for a version older than the newest it
had sent when they were sent.

A change the server cannot apply (unknown document, a version that is not the next
one, an offset out of range, both ``changes`` and ``text``, a text that would grow
past :data:`~yamabiko.schema.ghost.MAX_TEXT`, or a change dropped over the rate
budget) is answered with ``ghost/resync``, and the document takes no incremental change
until it gets the full text. A full-text change to an unknown document opens it again
(after a reconnect, say), room permitting.

The text is a :class:`~yamabiko.services.ghost_text.ChunkedText`: a change costs the
chunk it touches, not a copy of the document, so a notification of 1,000 changes to a
document near the cap holds the loop for milliseconds.

Feedback teaches the user's personal model (:class:`~yamabiko.services.ghost_models.GhostModels`)
what followed the text of the version the suggestion was made for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from typing import Final

from msgspec import UnsetType

from yamabiko.engines.ghost.base import GhostRequest
from yamabiko.handlers.common import tenant, user
from yamabiko.protocol import errors
from yamabiko.schema import ghost as schema
from yamabiko.schema.ghost import (
    MAX_TEXT,
    Change,
    ChangeParams,
    CloseResult,
    CompleteParams,
    CompleteResult,
    ConfigureParams,
    ConfigureResult,
    DocRef,
    FeedbackParams,
    OpenParams,
    OpenResult,
    ResyncParams,
    Suggestion,
    SuggestionsParams,
)
from yamabiko.services.container import services
from yamabiko.services.ghost_text import ChunkedText
from yamabiko.sessions.methods import Router
from yamabiko.sessions.session import Context, Session

router = Router()
log = logging.getLogger("yamabiko.ghost")

STATE_KEY: Final = "ghost"
SHOWN_KEPT: Final = 16
"""Suggestion sets remembered per document, for feedback that arrives late."""
DEFAULT_MAX_CHARS: Final = 48
OVER_CAP: Final = f"the document would grow past {MAX_TEXT} characters"
CHANGES_PER_TURN: Final = 100
"""Changes applied before the loop turns to other sessions (1-2 ms of work)."""
LEARN_WINDOW: Final = 1000
"""Code points before the cursor that learning from typed words looks at."""


class Shown:
    """A suggestion as sent: what it was made for, so that feedback can teach it."""

    __slots__ = ("engine", "request", "text")

    def __init__(self, engine: str, request: GhostRequest, text: str) -> None:
        self.engine = engine
        self.request = request
        self.text = text


class Document:
    __slots__ = (
        "applying", "body", "cursor", "doc_id", "kind", "language", "shown", "synced", "task",
        "threshold", "version",
    )  # fmt: skip

    def __init__(self, params: OpenParams, doc_id: str) -> None:
        self.doc_id = doc_id
        self.body = ChunkedText(params.text)
        self.version = 0
        self.cursor = len(params.text) if params.cursor is None else params.cursor
        self.language = params.language
        self.kind: schema.DocumentKind = params.kind
        self.threshold = params.threshold
        self.synced = True
        """False after a change that could not be applied, until the full text comes."""
        self.applying = False
        self.task: asyncio.Task[None] | None = None
        self.shown: OrderedDict[str, Shown] = OrderedDict()

    @property
    def text(self) -> str:
        return self.body.text()

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.task = None

    def request(self, config: GhostSession) -> GhostRequest:
        return GhostRequest(
            text=self.text,
            cursor=self.cursor,
            language=self.language,
            kind=self.kind,
            max_items=config.max_items,
            max_chars=config.max_chars,
            threshold=self.threshold if self.threshold is not None else config.threshold,
        )

    async def apply(self, params: ChangeParams) -> str | None:
        """Apply a change; None if it applied, else why it could not (then resync).

        A long list of changes is applied :data:`CHANGES_PER_TURN` at a time, letting
        the other sessions run in between; ``applying`` is true meanwhile."""
        if params.text is not None:
            if params.changes is not None:
                return "give either changes or text, not both"
            if params.version <= self.version:
                return f"version {params.version} is not newer than {self.version}"
            if params.cursor is not None and params.cursor > len(params.text):
                return "cursor beyond the end of the text"
            self.body = ChunkedText(params.text)
            self.cursor = len(params.text) if params.cursor is None else params.cursor
            self.version = params.version
            self.synced = True
            return None
        if not self.synced:
            return "waiting for the full text"
        if params.version != self.version + 1:
            self.synced = False
            return f"expected version {self.version + 1}, got {params.version}"
        # Applied in place: a change that fails leaves the text half changed, which is
        # harmless because the document then waits for the full text.
        body = self.body
        cursor = self.cursor
        self.applying = True
        try:
            problem = await self._replace_all(params.changes or ())
        finally:
            self.applying = False
        if problem is not None:
            self.synced = False
            return problem
        if params.changes:
            cursor = params.changes[-1].start + len(params.changes[-1].text)
        if params.cursor is not None:
            if params.cursor > body.length:
                self.synced = False
                return "cursor beyond the end of the text"
            cursor = params.cursor
        self.cursor = cursor
        self.version = params.version
        return None

    async def _replace_all(self, changes: list[Change] | tuple[()]) -> str | None:
        body = self.body
        for i, change in enumerate(changes):
            if i and not i % CHANGES_PER_TURN:
                await asyncio.sleep(0)
            if not change.start <= change.end <= body.length:
                return f"change [{change.start}, {change.end}) is outside the text"
            if body.length - (change.end - change.start) + len(change.text) > MAX_TEXT:
                return f"{OVER_CAP}: send a shorter full text"
            body.replace(change.start, change.end, change.text)
        return None

    def remember(self, suggestion_id: str, shown: Shown) -> None:
        self.shown[suggestion_id] = shown
        while len(self.shown) > SHOWN_KEPT * 3:
            self.shown.popitem(last=False)


class GhostSession:
    """One session's documents and ghost settings."""

    __slots__ = (
        "debounce_ms", "docs", "engine", "learn_from_text", "max_chars", "max_items", "threshold",
    )  # fmt: skip

    def __init__(self, engine: str) -> None:
        self.docs: dict[str, Document] = {}
        self.debounce_ms = 0
        self.max_items = 3
        self.max_chars = DEFAULT_MAX_CHARS
        self.engine = engine
        self.learn_from_text = False
        self.threshold: float | None = None
        """None: the engine's calibrated default for each document's kind and language."""

    def close(self) -> None:
        for doc in self.docs.values():
            doc.stop()
        self.docs.clear()


def ghost_session(ctx: Context) -> GhostSession:
    default = services(ctx).ghost.default
    return ctx.session.local(STATE_KEY, lambda: GhostSession(default))


def _queue_key(doc_id: str) -> tuple[str, str]:
    return (STATE_KEY, doc_id)


def _document(state: GhostSession, doc_id: str) -> Document:
    doc = state.docs.get(doc_id)
    if doc is None:
        raise errors.NotFound(f"document not found: {doc_id}")
    return doc


def _open(ctx: Context, state: GhostSession, params: OpenParams) -> Document:
    doc_id = params.doc_id or secrets.token_hex(8)
    if doc_id in state.docs:
        raise errors.Conflict(f"document {doc_id} is already open in this session")
    limit = ctx.session.config.max_documents
    if len(state.docs) >= limit:
        raise errors.RateLimited(
            1000, f"too many open documents (limit {limit})", limit="maxDocuments"
        )
    if params.cursor is not None and params.cursor > len(params.text):
        raise errors.InvalidParams("cursor beyond the end of the text - at $.cursor")
    doc = state.docs[doc_id] = Document(params, doc_id)
    return doc


@router.method(schema.GHOST_OPEN)
async def open_document(ctx: Context, params: OpenParams) -> OpenResult:
    state = ghost_session(ctx)
    doc = _open(ctx, state, params)
    if doc.text:
        _start(ctx, state, doc, time.perf_counter())
    return OpenResult(doc_id=doc.doc_id, version=doc.version)


@router.method(schema.GHOST_CLOSE)
async def close_document(ctx: Context, params: DocRef) -> CloseResult:
    state = ghost_session(ctx)
    doc = state.docs.pop(params.doc_id, None)
    if doc is None:
        return CloseResult(closed=False)
    doc.stop()
    ctx.session.outbound.discard(_queue_key(doc.doc_id))
    return CloseResult(closed=True)


@router.method(schema.GHOST_CONFIGURE)
async def configure(ctx: Context, params: ConfigureParams) -> ConfigureResult:
    state = ghost_session(ctx)
    if isinstance(params.engine, str):
        services(ctx).ghost.engine(params.engine)  # -32010 if not configured
        state.engine = params.engine
    if isinstance(params.debounce_ms, int):
        state.debounce_ms = params.debounce_ms
    if isinstance(params.max_items, int):
        state.max_items = params.max_items
    if isinstance(params.max_chars, int):
        state.max_chars = params.max_chars
    if isinstance(params.learn_from_text, bool):
        state.learn_from_text = params.learn_from_text
    if not isinstance(params.threshold, UnsetType):
        state.threshold = params.threshold
    return ConfigureResult(
        debounce_ms=state.debounce_ms,
        max_items=state.max_items,
        max_chars=state.max_chars,
        engine=state.engine,
        learn_from_text=state.learn_from_text,
        threshold=state.threshold,
    )


def change_refused(ctx: Context, params: ChangeParams, reason: str) -> None:
    """A change dropped over the rate budget: the document cannot follow the client's
    any more, so it waits for the full text, and the client is told so."""
    doc = ghost_session(ctx).docs.get(params.doc_id)
    if doc is None:
        _resync(ctx.session, params.doc_id, reason)
        return
    doc.synced = False
    _unsync(ctx.session, doc, f"{reason}: send the full text")


def _unsync(session: Session, doc: Document, reason: str) -> None:
    doc.stop()
    session.outbound.discard(_queue_key(doc.doc_id))
    _resync(session, doc.doc_id, reason)


@router.method(schema.GHOST_CHANGE, refused=change_refused)
async def change(ctx: Context, params: ChangeParams) -> None:
    arrived = time.perf_counter()
    state = ghost_session(ctx)
    doc = state.docs.get(params.doc_id)
    if doc is None:
        if params.text is None or params.changes is not None:
            _resync(ctx.session, params.doc_id, "unknown document: send the full text")
            return
        try:
            doc = _open(
                ctx, state, OpenParams(text=params.text, doc_id=params.doc_id, cursor=params.cursor)
            )
        except errors.YamabikoError as exc:
            _resync(ctx.session, params.doc_id, exc.message)
            return
        doc.version = params.version
    else:
        before = doc.body.before(doc.cursor, LEARN_WINDOW) if state.learn_from_text else ""
        doc.stop()  # no suggestion may read the text while it changes
        problem = await doc.apply(params)
        if problem is not None:
            if problem.startswith(OVER_CAP):
                log.info(
                    "ghost document over its size cap",
                    extra={"session": ctx.session.id, "reason": problem},
                )
            _unsync(ctx.session, doc, problem)
            return
        if state.learn_from_text:
            _learn_typed(ctx, state, doc, before)
    _start(ctx, state, doc, arrived)


def _resync(session: Session, doc_id: str, reason: str) -> None:
    # Keyed by document: a client that floods changes it does not read the answers to
    # holds one queued resync per document, the newest, not one per change.
    session.stats.ghost_resyncs += 1
    session.notify_latest(
        (STATE_KEY, "resync", doc_id),
        schema.GHOST_RESYNC,
        ResyncParams(doc_id=doc_id, reason=reason),
    )


def _start(ctx: Context, state: GhostSession, doc: Document, arrived: float) -> None:
    """Compute and push suggestions for the document's version now, in place of any
    work or waiting result for an older one."""
    doc.stop()
    ctx.session.outbound.discard(_queue_key(doc.doc_id))
    doc.task = asyncio.get_running_loop().create_task(_push(ctx, state, doc, doc.version, arrived))


async def _push(
    ctx: Context, state: GhostSession, doc: Document, version: int, arrived: float
) -> None:
    if state.debounce_ms:
        await asyncio.sleep(state.debounce_ms / 1000)
    engine_name = state.engine
    try:
        items = await _suggest(ctx, state, doc, engine_name)
    except errors.YamabikoError:
        return  # the engine cannot run: configure answered that; nothing to push
    except Exception:
        # A bug in an engine: this keystroke gets no suggestion, the session goes on.
        log.exception("ghost engine failed", extra={"session": ctx.session.id})
        return
    session = ctx.session
    if doc.version != version or state.docs.get(doc.doc_id) is not doc:
        session.stats.ghost_stale += 1
        return
    session.notify_latest(
        _queue_key(doc.doc_id),
        schema.GHOST_SUGGESTIONS,
        SuggestionsParams(doc_id=doc.doc_id, version=version, items=items),
    )
    session.stats.ghost_suggested(engine_name, len(items), time.perf_counter() - arrived)


async def _suggest(
    ctx: Context, state: GhostSession, doc: Document, engine_name: str
) -> list[Suggestion]:
    """Ask the engine for the document as it is now; remember what was suggested."""
    models = services(ctx).ghost
    engine = models.engine(engine_name)
    request = doc.request(state)
    personal = await models.personal(tenant(ctx), user(ctx), engine_name)
    found = await engine.suggest(request, personal)
    items: list[Suggestion] = []
    for i, suggestion in enumerate(found[: state.max_items]):
        suggestion_id = f"{doc.version}.{i}"
        doc.remember(suggestion_id, Shown(engine_name, request, suggestion.text))
        items.append(Suggestion(id=suggestion_id, text=suggestion.text, score=suggestion.score))
    return items


@router.method(schema.GHOST_COMPLETE)
async def complete(ctx: Context, params: CompleteParams) -> CompleteResult:
    state = ghost_session(ctx)
    doc = _document(state, params.doc_id)
    if doc.applying:
        raise errors.ContentModified(
            f"the document is taking version {doc.version + 1}", {"version": doc.version}
        )
    if params.version is not None and params.version != doc.version:
        raise errors.ContentModified(
            f"the document is at version {doc.version}, not {params.version}",
            {"version": doc.version},
        )
    version = doc.version
    started = time.perf_counter()
    items = await _suggest(ctx, state, doc, state.engine)
    if doc.applying or doc.version != version or state.docs.get(doc.doc_id) is not doc:
        raise errors.ContentModified(
            f"the document moved on to version {doc.version} meanwhile",
            {"version": doc.version},
        )
    ctx.session.stats.ghost_suggested(state.engine, len(items), time.perf_counter() - started)
    return CompleteResult(version=version, items=items)


@router.method(schema.GHOST_FEEDBACK)
async def feedback(ctx: Context, params: FeedbackParams) -> None:
    state = ghost_session(ctx)
    doc = state.docs.get(params.doc_id)
    shown = doc.shown.get(params.suggestion_id) if doc is not None else None
    if shown is None:
        raise errors.NotFound(f"suggestion not found: {params.suggestion_id}")
    stats = ctx.session.stats
    key = (shown.engine, params.action)
    stats.ghost_feedback[key] = stats.ghost_feedback.get(key, 0) + 1
    if params.action == "rejected":
        return
    accepted = shown.text
    if params.action == "partial":
        accepted = params.accepted_text or ""
        if not shown.text.startswith(accepted):
            raise errors.InvalidParams("acceptedText is not a prefix of the suggestion")
        accepted = _whole_words(accepted, shown.text)
    await services(ctx).ghost.learn(tenant(ctx), user(ctx), shown.engine, shown.request, accepted)


def _whole_words(accepted: str, suggestion: str) -> str:
    """A partly accepted suggestion, cut back to its last whole word in space-separated
    text (the user took "the vocal b" of "the vocal bus": "b" is no word to learn)."""
    cut_in_word = (
        len(accepted) < len(suggestion)
        and accepted[-1:].isalnum()
        and suggestion[len(accepted)].isalnum()
        and accepted.isascii()
    )
    if not cut_in_word:
        return accepted
    return accepted[: accepted.rfind(" ")] if " " in accepted else ""


def _learn_typed(ctx: Context, state: GhostSession, doc: Document, before: str) -> None:
    """With ``learnFromText``: a word just finished at the cursor (the user typed the
    space or mark after it) teaches the model like an accepted suggestion would.

    ``before``: the text up to the cursor before the change (its last
    :data:`LEARN_WINDOW` code points: the word and its context, not a document copy)."""
    typed = doc.body.before(doc.cursor, len(before) + 1)
    if len(typed) != len(before) + 1 or not typed.startswith(before) or not typed[-1:].isspace():
        return
    word_start = len(before.rstrip()) - len(before.rstrip().split()[-1]) if before.split() else 0
    word = before[word_start:]
    if not word or word.isspace():
        return
    request = GhostRequest(text=before[:word_start], cursor=word_start, language=doc.language)
    task = asyncio.get_running_loop().create_task(
        services(ctx).ghost.learn(tenant(ctx), user(ctx), state.engine, request, word)
    )
    task.add_done_callback(_quiet)


def _quiet(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(asyncio.CancelledError, Exception):
        task.result()
