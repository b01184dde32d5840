"""A scripted engine: replies read from a file, for testers who need deterministic
sessions. The model name is ``scripted/<path>``, the path relative to the scripts
directory the server names (``YAMABIKO_SCRIPTS_DIR``); with none named, scripted models
do not exist (the registry answers "unknown model"), so that a production server never
reads files on a user's say-so. The format is documented in ``docs/streams.md``.

The file is JSON Lines, one rule an object; blank lines and lines starting with ``#``
are skipped. The first rule whose ``pattern`` (a Python regular expression, searched in
the last user message) matches answers; a rule without a pattern matches anything::

    {"pattern": "(?i)\\\\bhello\\\\b", "reply": "Hi! What are you working on?"}
    {"pattern": "slow", "reply": "One word at a time.", "delayMs": 50}
    {"pattern": "tokens", "tokens": ["Exactly", " these", " deltas"]}
    {"pattern": "cut", "reply": "This reply is cut short", "finish": "length"}
    {"pattern": "fail", "reply": "Half of an answer", "error": {"afterTokens": 2,
      "message": "simulated outage", "retryable": true}}
    {"reply": "I have no script for that."}

``reply`` is streamed word by word (each delta a word with the whitespace before it, so
the deltas concatenate to the reply exactly); ``tokens`` gives the deltas themselves.
``delayMs`` waits before each delta. ``error`` fails after ``afterTokens`` deltas: at 0 it
is raised before the first (and retried if ``retryable``), later it ends the stream with
``finishReason: error``, as a provider failing mid-way would. Usage: the prompt estimated
at four characters a token, and one token a delta. The file is re-read when it changes.
No rule matching is an error, so that a gap in a script shows.

Every failure to load a script (no such file, unreadable, outside the directory, too
big, not valid) is the same :data:`LOAD_FAILED` error naming only what the user asked
for: a user must not learn which files exist or what they hold. The reason goes to the
log at DEBUG, without the file's contents.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Final, Literal

import msgspec

from yamabiko.engines.llm.base import (
    Finish,
    LLMEvent,
    LLMRequest,
    TextDelta,
    Usage,
    estimate_input_tokens,
    guarded,
)
from yamabiko.engines.llm.errors import EngineError, ScriptError

NAME: Final = "scripted"
MAX_SCRIPT_BYTES: Final = 1_000_000
"""A bigger file is not loaded (a script is a tester's handful of rules)."""

_log = logging.getLogger(__name__)


def load_failed(name: str) -> ScriptError:
    """The one error for every script that cannot be loaded, whatever the reason."""
    return ScriptError(f"scripted model {name!r} cannot be loaded")


class ScriptSyntaxError(ScriptError):
    """A line of a script is not a valid rule: ``line`` (from 1) and ``kind`` (the
    decoder's or the regular expression's error class). The message quotes the error."""

    def __init__(self, message: str, line: int, kind: str) -> None:
        super().__init__(message)
        self.line = line
        self.kind = kind


class ScriptedFailure(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    after_tokens: int = 0
    message: str = "scripted failure"
    retryable: bool = False


class ScriptRule(msgspec.Struct, rename="camel", forbid_unknown_fields=True, frozen=True):
    pattern: str | None = None
    reply: str = ""
    tokens: list[str] | None = None
    delay_ms: float = 0.0
    finish: Literal["stop", "length"] = "stop"
    error: ScriptedFailure | None = None

    def deltas(self) -> list[str]:
        if self.tokens is not None:
            return [t for t in self.tokens if t]
        return split_words(self.reply)


class Script:
    """The parsed rules of one file."""

    def __init__(self, rules: list[tuple[re.Pattern[str] | None, ScriptRule]]) -> None:
        self.rules = rules

    @classmethod
    def parse(cls, text: str, source: str) -> Script:
        rules: list[tuple[re.Pattern[str] | None, ScriptRule]] = []
        decoder = msgspec.json.Decoder(ScriptRule)
        for number, line in enumerate(text.splitlines(), 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            try:
                rule = decoder.decode(stripped)
                pattern = re.compile(rule.pattern) if rule.pattern is not None else None
            except (msgspec.DecodeError, re.error) as exc:
                # The message may quote the line: it stays here (tests, the tester's own
                # tools); the engine logs only the line number and the kind.
                raise ScriptSyntaxError(
                    f"{source}, line {number}: {exc}", number, type(exc).__name__
                ) from None
            rules.append((pattern, rule))
        return cls(rules)

    def match(self, message: str) -> ScriptRule | None:
        for pattern, rule in self.rules:
            if pattern is None or pattern.search(message):
                return rule
        return None


class ScriptedEngine:
    """Replies from scripts under ``root`` (see the module). A request's ``model`` is the
    script's path relative to ``root``; a path that leaves ``root`` is refused."""

    name = NAME

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._cache: dict[Path, tuple[tuple[int, int], Script]] = {}

    def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        return guarded(self._events(request), request, _translate)

    def load(self, name: str) -> Script:
        """The script named ``name`` (relative to the root), parsed, from a cache that
        follows the file's changes. Raises :func:`load_failed`'s error for any failure."""
        try:
            return self._load(name)
        except _Unloadable as exc:
            # The reason, never the contents: a parse error may quote the file.
            _log.debug("scripted model %r not loaded: %s", name, exc.reason)
            raise load_failed(name) from None

    def _load(self, name: str) -> Script:
        path = (self.root / name).resolve()
        if not path.is_relative_to(self.root):
            raise _Unloadable("outside the scripts directory")
        try:
            stat = path.stat()
        except OSError as exc:
            raise _Unloadable(f"stat failed: {type(exc).__name__}") from None
        if stat.st_size > MAX_SCRIPT_BYTES:
            raise _Unloadable(f"bigger than {MAX_SCRIPT_BYTES} bytes")
        version = (stat.st_mtime_ns, stat.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        try:
            text = path.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _Unloadable(f"read failed: {type(exc).__name__}") from None
        try:
            script = Script.parse(text, repr(name))
        except ScriptSyntaxError as exc:
            raise _Unloadable(f"invalid at line {exc.line}: {exc.kind}") from None
        self._cache[path] = (version, script)
        return script

    async def _events(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        script = self.load(request.model)
        message = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        rule = script.match(message)
        if rule is None:
            raise ScriptError(f"no rule of scripted file {request.model!r} matches the message")
        delay = rule.delay_ms / 1000
        sent = 0
        for text in rule.deltas():
            if rule.error is not None and sent >= rule.error.after_tokens:
                break
            await asyncio.sleep(delay)
            sent += 1
            yield TextDelta(text)
        if rule.error is not None and sent >= rule.error.after_tokens:
            raise ScriptError(rule.error.message, retryable=rule.error.retryable)
        yield Finish(rule.finish, Usage(estimate_input_tokens(request), sent))

    async def aclose(self) -> None:
        return None


class _Unloadable(Exception):
    """Why a script was not loaded: for the log only."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def split_words(text: str) -> list[str]:
    """Words, each with the whitespace before it; they concatenate back to ``text``."""
    parts = re.findall(r"\s*\S+", text)
    if not parts:
        return [text] if text else []
    tail = text[len("".join(parts)) :]
    if tail:
        parts[-1] += tail
    return parts


def _translate(exc: Exception) -> EngineError:
    return ScriptError(f"scripted engine failed: {type(exc).__name__}")
