"""An offline engine: written answers, found by what the user asks.

It needs no key and no network, so a server with no provider configured still answers
(docs/streams.md, "The local engine": ``local/default``). The answers are
``corpus/answers.txt``: entries written for newcomers about music production (mixing,
EQ, compression, sidechain, drums, bass, chords, melody, vocals, reverb, delay,
mastering, loudness...) and about using the server (the DAW agent, ghost text, audio,
provider keys), each with its topic, a few ways of asking it and one answer.

Retrieval: Okapi BM25 over two fields of each entry, what it is about (its topic and
questions: weighed double) and its answer; an entry none of whose topic and question
words the message uses does not match at all, with light suffix folding so "punchier" finds "punchy"
(docs/decisions/0031-local-answers-retrieval.md). The reply is the best entry's answer,
opened by a short phrase and, when a second entry on another topic also matches well,
closed by a pointer to it. When nothing matches well enough it says so and lists what
it knows, rather than making something up.

The same seed gives the same reply (``seed`` None: a fresh one each time): the seed
picks only the wording of the opening and of the pointer, never which answer; a
temperature of 0 always takes the first wording. Tokens (a word with its punctuation
and the space before it) stream one by one, with an optional delay each, and count as
the usage.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
from collections import Counter
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Final

from yamabiko.engines.llm.base import (
    Finish,
    FinishReason,
    LLMEvent,
    LLMRequest,
    TextDelta,
    Usage,
    guarded,
)
from yamabiko.engines.llm.errors import EngineError, UnknownModel

NAME: Final = "local"
MODELS: Final = {"default": "answers", "music_production": "answers"}
"""Provider model names (``local/<name>``) and the corpus each one reads
(``music_production``: the name this model had before; same answers)."""

MAX_QUERY_CHARS: Final = 2000
"""Only the end of a long message is read (the question is usually last)."""
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CHUNK = re.compile(r"\s*\S+")
_K1: Final = 1.2
_B: Final = 0.75
_ABOUT_WEIGHT: Final = 2.0
"""The "about" field (topic and questions) weighs this much more than the answer."""
_TOPIC_WEIGHT: Final = 2
"""The topic's words count this many times in the "about" field."""
_MIN_SCORE: Final = 3.0
"""A best match below this BM25 score is no match: the honest fallback answers."""
_RELATED: Final = 0.75
"""A second entry (another topic) scoring at least this share of the best is pointed to."""
_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just like me might more most much must my myself no
    nor not now of off on once only or other our ours out over own same she should so
    some such than that the their theirs them themselves then there these they this those
    through to too under until up very was we were what when where which while who whom
    why will with would you your yours yourself yourselves want need get help good best
    way ways tell know think give please thanks thank make makes making sound sounds
    song track really something thing things i'm it's don't
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_SUFFIXES = ("iest", "ier", "ies", "ing", "ion", "ers", "er", "or", "ed", "es", "s", "y")
_OPENINGS = ("", "Sure. ", "Here is how I would go about it. ")
_GREETING: Final = "offline"
"""The topic of the entry that introduces the engine: it gets no opening phrase."""
_POINTERS = (
    "See also {topic}: ask me \u201c{question}\u201d",
    "Related, on {topic}: \u201c{question}\u201d",
)
FALLBACK_START: Final = "I could not find a written answer for that."
"""How the reply begins when no written answer matches."""
_FALLBACK = (
    FALLBACK_START + " I am the offline assistant, and I "
    "answer from notes about music production (mixing, EQ, compression, sidechain, "
    "drums, bass, chords, melody, vocals, reverb, delay, mastering and loudness) and "
    "about this server (the DAW agent, ghost text, audio and provider keys). Try "
    "asking, for example, \u201cHow do I make the kick punchier?\u201d For anything "
    "else, set a provider key (ANTHROPIC_API_KEY, OPENAI_API_KEY or GEMINI_API_KEY) "
    "and restart the server: a full model will answer."
)


@dataclass(frozen=True)
class Entry:
    topic: str
    questions: tuple[str, ...]
    answer: str


@dataclass(frozen=True)
class Match:
    entry: Entry
    score: float


class _Field:
    """One field of every entry (its terms counted), scored with BM25."""

    def __init__(self, documents: list[Counter[str]]) -> None:
        self.documents = documents
        self.lengths = [sum(d.values()) for d in documents]
        self.average = sum(self.lengths) / max(1, len(self.lengths)) or 1.0

    def score(self, i: int, terms: dict[str, None], idf: dict[str, float]) -> float:
        counts, length = self.documents[i], self.lengths[i]
        total = 0.0
        for term in terms:
            tf = counts.get(term, 0)
            if tf:
                norm = tf + _K1 * (1.0 - _B + _B * length / self.average)
                total += idf[term] * tf * (_K1 + 1.0) / norm
        return total


class AnswerIndex:
    """BM25 over the entries of one corpus, in two fields: what an entry is about (its
    topic and questions) and its answer. Immutable once built; shared by every stream."""

    def __init__(self, text: str) -> None:
        self.entries = tuple(parse_entries(text))
        about: list[Counter[str]] = []
        answers: list[Counter[str]] = []
        frequency: Counter[str] = Counter()
        for entry in self.entries:
            terms = Counter(terms_of(" ".join(entry.questions)))
            for term in terms_of(entry.topic):
                terms[term] += _TOPIC_WEIGHT
            about.append(terms)
            answers.append(Counter(terms_of(entry.answer)))
            frequency.update(set(terms) | set(answers[-1]))
        self._about = _Field(about)
        self._answers = _Field(answers)
        count = len(self.entries)
        self._idf = {
            term: math.log(1.0 + (count - n + 0.5) / (n + 0.5)) for term, n in frequency.items()
        }

    def search(self, query: str, limit: int = 3) -> list[Match]:
        """The entries that match ``query`` best, best first (at most ``limit``). Only
        entries whose topic or questions share a word with ``query`` count: a word
        their answer merely mentions in passing says little about what they answer."""
        terms = dict.fromkeys(terms_of(query[-MAX_QUERY_CHARS:]))
        scored: list[Match] = []
        for i, entry in enumerate(self.entries):
            about = self._about.score(i, terms, self._idf)
            if about > 0.0:
                answer = self._answers.score(i, terms, self._idf)
                scored.append(Match(entry, _ABOUT_WEIGHT * about + answer))
        scored.sort(key=lambda m: m.score, reverse=True)
        return scored[:limit]

    def reply(self, query: str, rng: random.Random, temperature: float = 1.0) -> str:
        """The reply to ``query`` (see the module)."""
        found = self.search(query)
        if not found or found[0].score < _MIN_SCORE:
            return _FALLBACK
        greedy = temperature <= 0.05
        best = found[0]
        opening = _OPENINGS[0] if greedy else rng.choice(_OPENINGS)
        if best.entry.topic == _GREETING:
            opening = ""
        reply = opening + best.entry.answer
        other = next(
            (
                m
                for m in found[1:]
                if m.entry.topic != best.entry.topic
                and m.score >= max(_MIN_SCORE, _RELATED * best.score)
            ),
            None,
        )
        if other is not None:
            pointer = _POINTERS[0] if greedy else rng.choice(_POINTERS)
            reply += "\n\n" + pointer.format(
                topic=other.entry.topic, question=other.entry.questions[0]
            )
        return reply


class LocalEngine:
    """The offline engine (``local/default``). ``token_delay``: seconds before each
    token, to make it stream like a remote model (default 0: as fast as it can, still
    letting other tasks run between tokens)."""

    name = NAME

    def __init__(self, *, token_delay: float = 0.0) -> None:
        self.token_delay = token_delay

    def stream(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        return guarded(self._events(request), request, _translate)

    async def _events(self, request: LLMRequest) -> AsyncGenerator[LLMEvent, None]:
        corpus = MODELS.get(request.model)
        if corpus is None:
            known = ", ".join(f"local/{m}" for m in MODELS)
            raise UnknownModel(f"no local model {request.model!r}: known are {known}")
        index = load_index(corpus)
        # Not for secrets: a reproducible choice of wording.
        rng = random.Random(request.seed)  # noqa: S311 (None seeds from the OS)
        prompt = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        temperature = 1.0 if request.temperature is None else request.temperature
        sent = 0
        reason: FinishReason = "stop"
        for token in tokens_of(index.reply(prompt, rng, temperature)):
            if sent >= request.max_tokens:
                reason = "length"
                break
            await asyncio.sleep(self.token_delay)
            sent += 1
            yield TextDelta(token)
        yield Finish(reason, Usage(count_tokens_of(request), sent))

    async def aclose(self) -> None:
        return None


@cache
def load_index(corpus: str) -> AnswerIndex:
    """The index of a shipped corpus, built on first use (a few milliseconds)."""
    text = (
        resources.files("yamabiko.engines.llm").joinpath(f"corpus/{corpus}.txt").read_text("utf-8")
    )
    return AnswerIndex(text)


def parse_entries(text: str) -> Iterator[Entry]:
    """The entries of an answers file: ``## topic``, ``Q:`` lines, one ``A:`` line."""
    topic: str | None = None
    questions: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("## "):
            topic, questions = line[3:].strip(), []
        elif line.startswith("Q:") and topic is not None:
            questions.append(line[2:].strip())
        elif line.startswith("A:") and topic is not None and questions:
            yield Entry(topic, tuple(questions), line[2:].strip())
            topic, questions = None, []


def terms_of(text: str) -> list[str]:
    """The content words of ``text``, lowercased, stopwords out, suffixes folded."""
    folded = (_fold(w) for w in _WORD.findall(text.lower()) if w not in _STOPWORDS)
    return [w for w in folded if w not in _STOPWORDS]


def _fold(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) - len(suffix) >= 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def tokens_of(text: str) -> list[str]:
    """``text`` as streamed: each word with its punctuation and the space before it."""
    return _CHUNK.findall(text)


def count_tokens(text: str) -> int:
    """Words (with their punctuation): the local engine's tokens."""
    return len(_CHUNK.findall(text))


def count_tokens_of(request: LLMRequest) -> int:
    return count_tokens(request.system or "") + sum(
        count_tokens(m.content) for m in request.messages
    )


def _translate(exc: Exception) -> EngineError:
    return EngineError(f"local engine failed: {type(exc).__name__}")
