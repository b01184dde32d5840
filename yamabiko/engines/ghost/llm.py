"""The ``llm`` ghost engine: a provider model (any of :mod:`yamabiko.engines.llm`) asked
for a short continuation of the text before the cursor.

One suggestion per call, from at most ``max_tokens`` (16) tokens, cut at the first line
break and at ``max_chars``. Slower than ``ngram`` by the provider's round trip, so it
suits ``ghost/complete`` and a debounced session (``ghost/configure {debounceMs}``)
better than per-keystroke push. A provider failure gives no suggestion, never an error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import aclosing
from typing import Final

from yamabiko.engines.ghost.base import Count, GhostRequest, GhostSuggestion, PersonalCounts
from yamabiko.engines.llm import ChatMessage, EngineError, EngineRegistry, TextDelta

log = logging.getLogger(__name__)

NAME: Final = "llm"
WINDOW: Final = 2000
"""Characters before the cursor sent as context."""
SYSTEM: Final = (
    "You continue the user's text. Reply with only the next few words that would follow "
    "it, exactly as they would be typed (keep a leading space if a new word starts), in "
    "the text's language. No quotes, no explanation."
)


class LLMGhostEngine:
    """``model`` is an ``engine/providerModel`` name (a callable: read at each call, so
    that the server's default model can follow its configuration)."""

    name = NAME

    def __init__(
        self, registry: EngineRegistry, model: Callable[[], str], *, max_tokens: int = 16
    ) -> None:
        self._registry = registry
        self._model = model
        self._max_tokens = max_tokens

    async def suggest(
        self, request: GhostRequest, personal: PersonalCounts | None = None
    ) -> list[GhostSuggestion]:
        before = request.before[-WINDOW:]
        if not before.strip():
            return []
        try:
            resolved = self._registry.resolve(self._model())
            events = resolved.engine.stream(
                resolved.request(
                    [ChatMessage("user", before)],
                    system=SYSTEM,
                    max_tokens=self._max_tokens,
                    temperature=0.0,
                )
            )
            parts: list[str] = []
            size = 0
            async with aclosing(events):
                async for event in events:
                    if not isinstance(event, TextDelta):
                        break
                    parts.append(event.text)
                    size += len(event.text)
                    if size >= request.max_chars or "\n" in event.text:
                        break
        except EngineError as error:
            log.info("llm ghost engine failed", extra={"reason": error.message})
            return []
        text = "".join(parts).split("\n", 1)[0][: request.max_chars]
        if not text.strip():
            return []
        return [GhostSuggestion(text, 0.5)]

    def learn(self, request: GhostRequest, accepted: str) -> list[Count]:
        return []
