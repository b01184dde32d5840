"""An offline engine: a word trigram model over a corpus the project ships.

It needs no key and no network, so a server with no provider configured still answers
(docs/streams.md, Which model, which key: ``local/default``). The model is built once,
on first use, from
``corpus/<name>.txt`` (``default`` is ``music_production``, original text about
arrangement, mixing, sound design, songwriting and DAW work) and cached for the process.

Generation: sentence by sentence, each token drawn from the trigram counts blended with
the bigram counts (backing off to bigrams, then to sentence starts, where a context was
never seen). It follows the prompt loosely: the content words of the last user message
that the corpus knows pick the first sentence's opening, and words from the paragraphs
where they occur are drawn more often. The same seed and prompt give the same reply
(``seed`` None: a fresh one each time); ``temperature`` sharpens (0: always the likeliest
word) or flattens the draw. Tokens (words and punctuation marks) stream one by one, with
an optional delay each, and count as the usage.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter, defaultdict
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
MODELS: Final = {"default": "music_production", "music_production": "music_production"}
"""Provider model names (``local/<name>``) and the corpus each one reads."""

_TOKEN = re.compile(r"[A-Za-z0-9]+(?:['-][A-Za-z0-9]+)*|[.,!?;:]")
_END = frozenset({".", "!", "?"})
_NO_SPACE_BEFORE = frozenset({".", ",", "!", "?", ";", ":"})
_START: Final = "<s>"
_MAX_SENTENCE = 36
_TRIGRAM_WEIGHT = 0.92
_TOPIC_BOOST = 3.0
_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just like make me might more most much must my myself
    no nor not now of off on once only or other our ours out over own same she should so
    some such than that the their theirs them themselves then there these they this those
    through to too under until up use very was we were what when where which while who
    whom why will with would you your yours yourself yourselves want need get help good
    best way ways tell know think give please thanks thank
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


@dataclass(frozen=True)
class _Table:
    words: tuple[str, ...]
    counts: tuple[int, ...]
    total: int


class NgramModel:
    """Trigram and bigram tables over one corpus, and the sentences that open on each
    content word. Immutable once built; shared by every stream."""

    def __init__(self, text: str) -> None:
        paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
        tri: defaultdict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        bi: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.sentences: list[list[str]] = []
        # Content word -> the sentences that contain it, and the words of its paragraphs.
        self._sentences_with: defaultdict[str, list[int]] = defaultdict(list)
        self._topic: defaultdict[str, dict[str, None]] = defaultdict(dict)
        for paragraph in paragraphs:
            tokens = _TOKEN.findall(paragraph)
            if len(tokens) < 5 or tokens[-1] not in _END:
                continue  # a heading
            vocabulary = dict.fromkeys(t.lower() for t in tokens if _is_content(t))
            for sentence in _split_sentences(tokens):
                index = len(self.sentences)
                self.sentences.append(sentence)
                context = (_START, _START)
                for token in sentence:
                    tri[context][token] += 1
                    bi[context[1]][token] += 1
                    context = (context[1], token)
                for word in dict.fromkeys(t.lower() for t in sentence if _is_content(t)):
                    self._sentences_with[word].append(index)
            for word in vocabulary:
                self._topic[word].update(vocabulary)
        self._tri = {key: _table(counter) for key, counter in tri.items()}
        self._bi = {key: _table(counter) for key, counter in bi.items()}

    def keywords(self, prompt: str) -> list[str]:
        """The content words of ``prompt`` that the corpus knows, in prompt order."""
        words = dict.fromkeys(t.lower() for t in _TOKEN.findall(prompt) if _is_content(t))
        return [w for w in words if w in self._sentences_with]

    def generate(self, prompt: str, rng: random.Random, temperature: float = 1.0) -> Iterator[str]:
        """Tokens of a reply of three to five sentences, endlessly re-drawn if the caller
        wants more (it stops when it has enough)."""
        keywords = self.keywords(prompt)
        topic: dict[str, None] = {}
        for word in keywords:
            topic.update(self._topic[word])
        for n in range(rng.randint(3, 5)):
            opening: list[str] = []
            if keywords and (n == 0 or rng.random() < 0.6):
                # The first sentence opens on the first keyword; later ones often on any.
                word = keywords[0] if n == 0 else rng.choice(keywords)
                opening = self._opening(word, 3 if n == 0 else 2, rng)
            yield from self._sentence(opening, topic, rng, temperature)

    def _opening(self, keyword: str, length: int, rng: random.Random) -> list[str]:
        """The first words of a corpus sentence that contains ``keyword``."""
        sentence = self.sentences[rng.choice(self._sentences_with[keyword])]
        return sentence[: min(length, len(sentence) - 1)]

    def _sentence(
        self, opening: list[str], topic: dict[str, None], rng: random.Random, temperature: float
    ) -> Iterator[str]:
        context = (_START, _START)
        for token in opening:
            yield token
            context = (context[1], token)
        for _ in range(_MAX_SENTENCE - len(opening)):
            token = self._draw(context, topic, rng, temperature)
            yield token
            if token in _END:
                return
            context = (context[1], token)
        yield "."

    def _draw(
        self,
        context: tuple[str, str],
        topic: dict[str, None],
        rng: random.Random,
        temperature: float,
    ) -> str:
        weights: dict[str, float] = {}
        trigram = self._tri.get(context)
        bigram = self._bi.get(context[1]) or self._bi[_START]
        bigram_share = 1.0 - _TRIGRAM_WEIGHT if trigram else 1.0
        if trigram:
            for word, count in zip(trigram.words, trigram.counts, strict=True):
                weights[word] = _TRIGRAM_WEIGHT * count / trigram.total
        for word, count in zip(bigram.words, bigram.counts, strict=True):
            weights[word] = weights.get(word, 0.0) + bigram_share * count / bigram.total
        for word in weights:
            if word.lower() in topic:
                weights[word] *= _TOPIC_BOOST
        if temperature <= 0.05:
            return max(weights, key=lambda w: weights[w])  # first of the likeliest
        words = list(weights)
        values = [weights[w] ** (1.0 / temperature) for w in words]
        return rng.choices(words, values)[0]


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
        model = load_model(corpus)
        # Not for secrets: a reproducible draw of words.
        rng = random.Random(request.seed)  # noqa: S311 (None seeds from the OS)
        prompt = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        temperature = 1.0 if request.temperature is None else request.temperature
        sent = 0
        reason: FinishReason = "stop"
        first = True
        for token in model.generate(prompt, rng, temperature):
            if sent >= request.max_tokens:
                reason = "length"
                break
            await asyncio.sleep(self.token_delay)
            text = token if first or token in _NO_SPACE_BEFORE else " " + token
            first = False
            sent += 1
            yield TextDelta(text)
        yield Finish(reason, Usage(count_tokens_of(request), sent))

    async def aclose(self) -> None:
        return None


@cache
def load_model(corpus: str) -> NgramModel:
    """The model of a shipped corpus, built on first use (tens of milliseconds)."""
    text = (
        resources.files("yamabiko.engines.llm").joinpath(f"corpus/{corpus}.txt").read_text("utf-8")
    )
    return NgramModel(text)


def count_tokens(text: str) -> int:
    """Words and punctuation marks: the local engine's tokens."""
    return len(_TOKEN.findall(text))


def count_tokens_of(request: LLMRequest) -> int:
    return count_tokens(request.system or "") + sum(
        count_tokens(m.content) for m in request.messages
    )


def _is_content(token: str) -> bool:
    return len(token) >= 4 and token[0].isalpha() and token.lower() not in _STOPWORDS


def _split_sentences(tokens: list[str]) -> Iterator[list[str]]:
    sentence: list[str] = []
    for token in tokens:
        sentence.append(token)
        if token in _END:
            yield sentence
            sentence = []


def _table(counter: Counter[str]) -> _Table:
    words = tuple(counter)
    counts = tuple(counter[w] for w in words)
    return _Table(words, counts, sum(counts))


def _translate(exc: Exception) -> EngineError:
    return EngineError(f"local engine failed: {type(exc).__name__}")
