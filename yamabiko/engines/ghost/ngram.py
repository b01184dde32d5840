"""The default ghost-text engine: n-grams over shipped corpora and the user's own text.

Theory of operation. Two word models, picked per request from the text near the cursor
(:func:`is_japanese`):

- English (any space-separated text): a word trigram model, lowercased, with the
  punctuation marks ``. , ! ? ; :`` as tokens and ``<s>`` padding at the start of each
  sentence and line. Prose documents read ``engines/llm/corpus/music_production.txt``
  and the questions and answers of ``engines/llm/corpus/answers.txt`` (the local chat
  engine's) and ``corpus/en_chat.txt`` (requests a musician types to an assistant): the
  way people ask things in a chat box; ``kind="lyrics"`` adds
  ``corpus/en_lyrics.txt``, weighed three times.
- Japanese (kana or kanji among the last characters, or ``language="ja"``): a word
  trigram model over ``corpus/ja_music.txt`` and ``corpus/ja_chat.txt`` (lyrics add
  ``corpus/ja_lyrics.txt``, weighed three times), NFKC-normalized, in the words of the
  morphological analyzer (:mod:`.segment`), which also reads the text before the cursor
  over a bounded window (:data:`_JA_WINDOW`).

Both are Witten-Bell interpolated (each order blended with the next lower one, the more
so the more distinct followers a context has), built lazily on first use (tens of
milliseconds) and cached for the process: every :class:`NgramGhostEngine` shares them.

A suggestion: the likeliest words for the context that start with the partial word at
the cursor (matched case-insensitively; the user's casing of what they typed is kept,
the suggestion holds only the rest; in Japanese the partial word may span the
analyzer's last words, and each split is weighed), each continued greedily while the
next word is likely enough, never past punctuation or ``max_chars``. Every place such a
suggestion could end is a candidate ending with its probability; the calibration
(:mod:`.calibration`) turns that into a confidence, endings below the threshold are
dropped, and of the rest the one that saves the most keystrokes on average (confidence
times length less the Tab) is kept per first word, then the first words are ranked the
same way. An ending never cuts a word: no word like "the" that only leads on, and no
katakana or kanji run cut between two words the corpus or the user never wrote
together. Only the last :data:`WINDOW` characters before the cursor are read, so a call
costs the same on any document: about 0.2 ms, p99 under 1 ms of CPU (it runs inline on
the event loop).

Personal counts. :meth:`NgramGhostEngine.learn` emits, for each token of the accepted
text (the word being completed included), one :class:`Count` per context order, with
these ``context`` strings:

- ``en:<w1> <w2>``, ``en:<w2>``, ``en:`` (the two previous lowercased tokens joined by
  a space, then one, then none; ``<s>`` at a sentence start) and the lowercased token;
- ``ja:<w1> <w2>``, ``ja:<w2>``, ``ja:`` (the two previous Japanese words as the
  analyzer reads them, joined by a space) and the word;
- ``en#case:<word>`` -> the word as typed, for words whose capitals are their own
  (``EQ``, a band name mid-sentence), so suggestions keep them.

A request blends the user's model with the corpus one, ``(1 - m) * corpus + m *
personal``, where ``m`` grows with the user's evidence at the longest context they have
any for: one acceptance in the very same context already gives ``m`` = 0.72, so what a
user accepted there comes first next time.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Final, Literal

from yamabiko.engines.ghost import segment
from yamabiko.engines.ghost.base import Count, GhostRequest, GhostSuggestion, PersonalCounts
from yamabiko.engines.ghost.calibration import confidence, default_threshold

NAME: Final = "ngram"
WINDOW: Final = 96
"""Characters before the cursor the engine reads: enough for two words of context and
the partial word; the rest of the document changes nothing."""

Context = tuple[str, ...]
Language = Literal["en", "ja"]

_START: Final = "<s>"
_END_OF_LINE: Final = "</s>"
_TOKEN = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]+)*|[.,!?;:]")
_PARTIAL = re.compile(r"[^\W_]+(?:['\u2019-][^\W_]*)*\Z")
_SENTENCE_END = frozenset({".", "!", "?"})
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")
_DETECT_WINDOW: Final = 24
_NO_SPACE_AFTER = frozenset("([{\u201c\u2018\u00ab\u00bf\u00a1\u2014\u2013-/")
_QUOTES = frozenset("\"'")
_MAX_PREFIX: Final = 40
_LEADING_WORDS = frozenset(
    {"a", "an", "the", "and", "or", "but", "of", "to", "in", "on", "at", "for", "with", "from"}
    | {"by", "as", "into", "than", "that", "your", "my", "our", "its", "is", "are", "be"}
)

_CANDIDATES: Final = 6
"""Candidates taken from each order's best followers (or best prefix matches)."""
_EN_MORE_WORDS: Final = 3
_EN_CONTINUE: Final = 0.3
"""A word is added to a suggestion only when at least this likely (greedy)."""
_ROOTS: Final = 8
"""First words (or first Japanese words) whose suggestions are weighed per request."""
_JA_WINDOW: Final = 32
"""Characters before the cursor the analyzer reads: a few words of context and the
half-typed one (at most :data:`segment.MAX_WINDOW`)."""
_JA_SPLITS: Final = 3
"""The half-typed word may be made of up to this many of the analyzer's last words."""
_JA_UNSEEN: Final = 1e-4
"""The probability given a word before the cursor that the model never saw."""
_JA_MORE_WORDS: Final = 4
_JA_MAX_CHARS: Final = 12
_JA_CONTINUE: Final = 0.3
_PERSONAL_SCAN: Final = 2048
_PERSONAL_SCAN_NEXT: Final = 256
"""At most this many of a user's followers of one context are read per request (the
first ones in their counts: the store loads the most recent first), or ``_NEXT`` of
them for each word or character of a continuation."""
_PERSONAL_TRUST: Final = ((0.9, 0.25), (0.5, 1.0), (0.25, 4.0))
_PERSONAL_TRUST_UNIGRAM: Final = (0.1, 50.0)
"""``(ceiling, half)`` per context order, the longest first, then for the unigram (the
user's words anywhere: a weak hint): the personal weight is ``ceiling * n / (n +
half)``, ``n`` the user's count at the longest context they have any for."""
_CACHE_LIMIT: Final = 8192
"""Answers each model keeps (a few MB), for the contexts typed most recently."""
_COUNT = operator.itemgetter(1)


class NgramModel:
    """An interpolated n-gram model over token sequences (words, or characters).
    Immutable once built, apart from a bounded cache of answers."""

    def __init__(
        self,
        sequences: Iterable[Sequence[str]],
        *,
        order: int,
        surfaces: Mapping[str, str] | None = None,
    ) -> None:
        self.order = order
        counters: defaultdict[Context, Counter[str]] = defaultdict(Counter)
        for sequence in sequences:
            for i, token in enumerate(sequence):
                if token == _START:
                    continue
                for n in range(min(order - 1, i) + 1):
                    counters[tuple(sequence[i - n : i])][token] += 1
        counters.setdefault((), Counter())
        self._levels: dict[Context, _Level] = {}
        self._ranked: dict[Context, tuple[str, ...]] = {}  # followers, most frequent first
        for context, counter in counters.items():
            counts = dict(counter)
            self._levels[context] = (
                counts,
                sum(counts.values()) or 1,
                len(counts) if context else 0,
            )
            self._ranked[context] = tuple(t for t, _ in counter.most_common())
        self.surfaces: Mapping[str, str] = surfaces or {}
        # Every prefix of every word -> its most frequent words with that prefix.
        self._prefixes: defaultdict[str, list[str]] = defaultdict(list)
        for token in self._ranked[()]:
            if _is_word(token):
                for end in range(1, len(token) + 1):
                    words = self._prefixes[token[:end]]
                    if len(words) < _CANDIDATES:
                        words.append(token)
        self._cache: dict[tuple[Context, str], tuple[tuple[str, float], ...]] = {}

    def chain(self, context: Context) -> list[_Level]:
        """The orders of ``context`` the corpus saw, the unigram first."""
        levels = [self._levels[()]]
        for n in range(1, len(context) + 1):
            level = self._levels.get(context[-n:])
            if level is None:
                break  # no longer context was seen either
            levels.append(level)
        return levels

    def prob(self, token: str, context: Context) -> float:
        """P(token | context), Witten-Bell interpolated down to the unigram (0 for a token
        the corpus never saw)."""
        return _interpolate(token, self.chain(context))

    def candidates(self, context: Context, prefix: str) -> tuple[tuple[str, float], ...]:
        """The tokens worth ranking after ``context`` that start with ``prefix`` (the best
        few of each order), with their probabilities. Cached."""
        key = (context, prefix)
        found = self._cache.get(key)
        if found is None:
            chain = self.chain(context)
            tokens: dict[str, None] = {}
            for n in range(len(chain) - 1, 0, -1):
                tokens.update(dict.fromkeys(_best(self._ranked[context[-n:]], prefix)))
            if prefix:
                tokens.update(dict.fromkeys(self._prefixes.get(prefix, ())))
            else:
                tokens.update(dict.fromkeys(self._ranked[()][:_CANDIDATES]))
            found = tuple((token, _interpolate(token, chain)) for token in tokens)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = found
        return found

    def surface(self, token: str) -> str:
        return self.surfaces.get(token, token)

    def seen(self, context: Context, token: str) -> bool:
        """Whether ``token`` ever followed ``context`` in the corpus."""
        level = self._levels.get(context)
        return level is not None and token in level[0]


class _Personal:
    """One request's view of a user's counts for one language: the same interpolation
    as :class:`NgramModel` over the user's tables, read once per request."""

    __slots__ = ("_chains", "_counts", "_join", "_tag")

    def __init__(self, counts: PersonalCounts, language: Language) -> None:
        self._counts = counts
        self._tag = f"{language}:"
        self._join = " "
        self._chains: dict[Context, tuple[list[_Level], float]] = {}

    def chain(self, context: Context) -> tuple[list[_Level], float]:
        """The user's orders of ``context`` that have counts (unigram first), and how
        much they weigh against the corpus here (0 when the user has nothing)."""
        found = self._chains.get(context)
        if found is None:
            levels: list[_Level] = []
            weight = 0.0
            for n in range(len(context) + 1):
                followers = self._counts.get(
                    self._tag + self._join.join(context[len(context) - n :])
                )
                total = sum(itertools.islice(followers.values(), _PERSONAL_SCAN))
                if total:
                    distinct = min(len(followers), _PERSONAL_SCAN) if n else 0
                    levels.append((followers, total, distinct))
                    rank = len(context) - n
                    ceiling, half = (
                        _PERSONAL_TRUST[min(rank, len(_PERSONAL_TRUST) - 1)]
                        if n
                        else _PERSONAL_TRUST_UNIGRAM
                    )
                    weight = ceiling * total / (total + half)
            found = self._chains[context] = (levels, weight)
        return found

    def candidates(self, levels: list[_Level], prefix: str) -> list[str]:
        """The user's likeliest followers at the longest order they have: at every order
        when completing a word, their whole vocabulary included (that is where words
        the corpus lacks come from)."""
        found: list[str] = []
        for followers, _, distinct in reversed(levels):
            if prefix:
                scanned = itertools.islice(followers.items(), _PERSONAL_SCAN)
                matches = [item for item in scanned if item[0].startswith(prefix)]
            elif distinct:
                matches = list(itertools.islice(followers.items(), _PERSONAL_SCAN_NEXT))
            else:
                break  # the unigram: only to complete a word
            matches.sort(key=_COUNT, reverse=True)
            found += (token for token, _ in matches[:_CANDIDATES])
            if not prefix:
                break
        return found

    def seen(self, context: Context, token: str) -> bool:
        """Whether the user ever had ``token`` right after ``context``."""
        return bool(self._counts.get(self._tag + self._join.join(context)).get(token))

    def surface(self, token: str) -> str | None:
        """The user's own spelling of ``token``, if they capitalize it."""
        spellings = self._counts.get(f"en#case:{token}")
        return max(spellings, key=lambda s: spellings[s]) if spellings else None


_Level = tuple[Mapping[str, int], int, int]
"""Followers of one context: counts, their total, distinct tokens (0 for the unigram)."""


def _interpolate(token: str, levels: list[_Level]) -> float:
    p = 0.0
    for counts, total, distinct in levels:
        p = (counts.get(token, 0) + distinct * p) / (total + distinct)
    return p


def _ranked(
    model: NgramModel, personal: _Personal | None, context: Context, prefix: str
) -> list[tuple[str, float]]:
    """Tokens after ``context`` starting with ``prefix``, likeliest first, with the
    blended probability of each (not normalized)."""
    found = model.candidates(context, prefix)
    levels, weight = personal.chain(context) if personal is not None else ([], 0.0)
    if personal is None or not weight:
        scored = list(found)
    else:
        corpus = dict(found)
        mine = dict.fromkeys(personal.candidates(levels, prefix))
        extra = [token for token in mine if token not in corpus]
        if extra:
            chain = model.chain(context)
            for token in extra:
                corpus[token] = _interpolate(token, chain)
        scored = [
            (token, (1.0 - weight) * p + weight * _interpolate(token, levels))
            for token, p in corpus.items()
        ]
    scored.sort(key=lambda item: item[1], reverse=True)
    return scored


class NgramGhostEngine:
    """The ``ngram`` engine. Stateless and cheap to build: every instance shares the
    process's models (built on the first request, or by :meth:`warm`)."""

    name = NAME

    def warm(self) -> None:
        """Builds the models now rather than on the first keystroke."""
        english_model("prose")
        english_model("lyrics")
        segment.warm()
        japanese_model("prose")
        japanese_model("lyrics")

    async def suggest(
        self, request: GhostRequest, personal: PersonalCounts | None = None
    ) -> list[GhostSuggestion]:
        return self.suggest_now(request, personal)

    def suggest_now(
        self, request: GhostRequest, personal: PersonalCounts | None = None
    ) -> list[GhostSuggestion]:
        """:meth:`suggest` without the coroutine (it never waits for anything)."""
        if request.max_items <= 0 or request.max_chars <= 0:
            return []
        cursor = max(0, min(request.cursor, len(request.text)))
        before = request.text[max(0, cursor - WINDOW) : cursor]
        if not before.strip():
            return []
        truncated = cursor > WINDOW
        counts = personal if personal is not None and personal.total else None
        if is_japanese(before, request.language):
            view = _Personal(counts, "ja") if counts is not None else None
            roots = _suggest_japanese(before, truncated, request, view)
            language: Language = "ja"
        else:
            view = _Personal(counts, "en") if counts is not None else None
            model = english_model("lyrics" if request.kind == "lyrics" else "prose")
            roots = _suggest_english(model, before, truncated, request, view)
            language = "en"
        threshold = request.threshold
        if threshold is None:
            threshold = default_threshold(request.kind, language)
        lyrics = request.kind == "lyrics"
        return _choose(roots, language, lyrics, threshold, request.max_items)

    def endings(
        self, request: GhostRequest, personal: PersonalCounts | None = None
    ) -> list[list[tuple[str, float, int, int, float]]]:
        """Every ending the engine weighs, per first word: ``(text, raw probability,
        words, characters of the first word already typed, the user's own)``, before
        calibration and threshold. For fitting the calibration (``python -m evals.ghost
        --calibrate``), not for serving."""
        cursor = max(0, min(request.cursor, len(request.text)))
        before = request.text[max(0, cursor - WINDOW) : cursor]
        if not before.strip() or request.max_chars <= 0:
            return []
        truncated = cursor > WINDOW
        counts = personal if personal is not None and personal.total else None
        if is_japanese(before, request.language):
            view = _Personal(counts, "ja") if counts is not None else None
            return _suggest_japanese(before, truncated, request, view)
        view = _Personal(counts, "en") if counts is not None else None
        model = english_model("lyrics" if request.kind == "lyrics" else "prose")
        return _suggest_english(model, before, truncated, request, view)

    def learn(self, request: GhostRequest, accepted: str) -> list[Count]:
        cursor = max(0, min(request.cursor, len(request.text)))
        before = request.text[max(0, cursor - WINDOW) : cursor]
        truncated = cursor > WINDOW
        if is_japanese(before, request.language) or _JAPANESE.search(accepted):
            rows = _learn_japanese(before, truncated, accepted)
        else:
            rows = _learn_english(before, truncated, accepted)
        return [Count(context, token, count) for (context, token), count in rows.items()]


_Option = tuple[str, float, int, int, float]
"""A suggestion's text, the model's probability that the user types exactly that next,
how many words it holds, how many characters of its first word were typed, and how
much the user's own counts weigh in it (the least personal weight over its words).
The calibration was fitted on strangers' text and knows nothing of a user's habits: for
that share the engine trusts its probability as it is."""


def _choose(
    roots: list[list[_Option]], language: Language, lyrics: bool, threshold: float, limit: int
) -> list[GhostSuggestion]:
    """The suggestions to show: for each first word, the ending that saves the most
    keystrokes on average (its calibrated confidence times the keystrokes it spares: its
    length less the Tab) among those at least ``threshold`` confident; best first,
    distinct."""
    best: dict[str, float] = {}
    value: dict[str, float] = {}
    for ends in roots:
        chosen: tuple[str, float] | None = None
        for text, p, words, typed, own in ends:
            if not text.strip():
                continue
            c = confidence(language, p, words, typed, lyrics)
            c = (1.0 - own) * c + own * p
            if c < threshold:
                continue
            if chosen is None or c * (len(text) - 1) > chosen[1] * (len(chosen[0]) - 1):
                chosen = (text, c)
        if chosen is not None and chosen[1] > best.get(chosen[0], -1.0):
            best[chosen[0]] = chosen[1]
            value[chosen[0]] = chosen[1] * (len(chosen[0]) - 1)
    ranked = sorted(best, key=lambda text: (value[text], best[text]), reverse=True)
    return [GhostSuggestion(text, min(1.0, best[text])) for text in ranked[:limit]]


# English


def _suggest_english(
    model: NgramModel,
    before: str,
    truncated: bool,
    request: GhostRequest,
    personal: _Personal | None,
) -> list[list[_Option]]:
    """Each likely first word with the ways to end a suggestion that starts with it."""
    match = _PARTIAL.search(before)
    typed = match.group() if match else ""
    if len(typed) > _MAX_PREFIX:
        return []
    head = before[: len(before) - len(typed)]
    context, sentence_start = _english_context(head, truncated)
    prefix = _fold(typed)
    # (probability, first word's text, context after it), for the best first words.
    firsts: list[tuple[float, str, Context]] = []
    for token, p in _words(model, personal, context, prefix):
        after = (*context, token)[-2:]
        spelling = _spelling(model, personal, token)
        if not typed:
            lead = " " if _needs_space(head) else ""
            firsts.append(
                (p, lead + (_capitalized(spelling) if sentence_start else spelling), after)
            )
        elif token != prefix:
            rest = spelling[len(prefix) :] if _fold(spelling) == token else token[len(prefix) :]
            firsts.append((p, rest.upper() if len(typed) >= 2 and typed.isupper() else rest, after))
        else:
            # The word at the cursor may be complete: then the options are the next words.
            for following, q in _words(model, personal, after, "")[:_CANDIDATES]:
                spelling = _spelling(model, personal, following)
                firsts.append((p * q, " " + spelling, (*after, following)[-2:]))
    firsts.sort(key=lambda first: first[0], reverse=True)
    roots: list[list[_Option]] = []
    for p, first, after in firsts[:_ROOTS]:
        first = first[: request.max_chars]
        ends: list[_Option] = []
        own = _own(personal, after[:-1])
        if not _leads_on(first):
            ends.append((first, p, 1, len(typed), own))
        text = first
        words = 1
        room = request.max_chars - len(first)
        for word, q, mine in _continue_english(model, personal, after, room):
            text += word
            p *= q
            words += 1
            own = min(own, mine)
            if not _leads_on(text):
                ends.append((text, p, words, len(typed), own))
        roots.append(ends)
    return roots


def _leads_on(text: str) -> bool:
    """Whether ``text`` ends on a word like "the" that only leads into the next one (a
    suggestion does not stop there)."""
    last = text.rsplit(" ", 1)[-1]
    return " " in text and _fold(last) in _LEADING_WORDS


def _words(
    model: NgramModel,
    personal: _Personal | None,
    context: Context,
    prefix: str,
    *,
    repeat: bool = False,
) -> list[tuple[str, float]]:
    """The words (no punctuation; not the previous word again unless ``repeat``) that
    may come next, likeliest first, with their probabilities given that a word with this
    prefix comes next."""
    previous = () if repeat else context[-1:]
    ranked = [
        (t, p)
        for t, p in _ranked(model, personal, context, prefix)
        if _is_word(t) and (t,) != previous
    ]
    mass = sum(p for _, p in ranked) or 1.0
    return [(t, p / mass) for t, p in ranked]


def _continue_english(
    model: NgramModel, personal: _Personal | None, context: Context, room: int
) -> list[tuple[str, float, float]]:
    """The next few words, greedily, each with its probability and whether the user's
    own counts weigh in it, while likely enough to be worth offering and within ``room``."""
    words: list[tuple[str, float, float]] = []
    size = 0
    for _ in range(_EN_MORE_WORDS):
        ranked = _ranked(model, personal, context, "")
        if not ranked:
            break
        token, p = ranked[0]
        if not _is_word(token) or p < _EN_CONTINUE or token == context[-1]:
            break
        word = " " + _spelling(model, personal, token)
        if size + len(word) > room:
            break
        words.append((word, p, _own(personal, context)))
        size += len(word)
        context = (*context, token)[-2:]
    return words


def _own(personal: _Personal | None, context: Context) -> float:
    """How much the user's counts weigh against the corpus after ``context`` (0 to 1)."""
    return personal.chain(context)[1] if personal is not None else 0.0


def _english_context(head: str, truncated: bool) -> tuple[Context, bool]:
    """The two tokens before the word at the cursor (``<s>`` padded at a sentence or line
    start), and whether that word starts a sentence."""
    line_start = not truncated
    if "\n" in head:
        head = head.rsplit("\n", 1)[1]
        line_start = True
    tokens = [_fold(t) for t in _TOKEN.findall(head)]
    if not line_start and tokens:
        tokens = tokens[1:]  # the window may have cut the first one
    start = line_start
    for i in range(len(tokens) - 1, -1, -1):
        if tokens[i] in _SENTENCE_END:
            tokens = tokens[i + 1 :]
            start = True
            break
    if start:
        tokens = [_START, _START, *tokens]
    return tuple(tokens[-2:]), start and len(tokens) == 2


def _learn_english(before: str, truncated: bool, accepted: str) -> Counter[tuple[str, str]]:
    rows: Counter[tuple[str, str]] = Counter()
    match = _PARTIAL.search(before)
    typed = match.group() if match else ""
    head = before[: len(before) - len(typed)]
    context, sentence_start = _english_context(head, truncated)
    offset = len(typed)
    for number, line in enumerate((typed + accepted).split("\n")):
        if number:
            context, sentence_start, offset = (_START, _START), True, 0
        for found in _TOKEN.finditer(line):
            token = _fold(found.group())
            if found.end() > offset:  # it was (partly) accepted, not only typed
                for n in range(len(context) + 1):
                    rows[("en:" + " ".join(context[len(context) - n :]), token)] += 1
                word = found.group()
                own_capitals = word != token and not (
                    sentence_start and word == _capitalized(token)
                )
                if own_capitals:
                    rows[(f"en#case:{token}", word)] += 1
            if token in _SENTENCE_END:
                context, sentence_start = (_START, _START), True
            else:
                context, sentence_start = (*context, token)[-2:], False
    return rows


def _spelling(model: NgramModel, personal: _Personal | None, token: str) -> str:
    own = personal.surface(token) if personal is not None else None
    return own if own is not None else model.surface(token)


def _needs_space(head: str) -> bool:
    """Whether a new word at the end of ``head`` needs a space before it."""
    if not head or head[-1].isspace() or head[-1] in _NO_SPACE_AFTER:
        return False
    if head[-1] in _QUOTES:
        return len(head) >= 2 and not head[-2].isspace()  # a closing quote
    return True


def _fold(word: str) -> str:
    return word.lower().replace("\u2019", "'")


def _capitalized(word: str) -> str:
    return word[:1].upper() + word[1:]


# Japanese


def _suggest_japanese(
    before: str, truncated: bool, request: GhostRequest, personal: _Personal | None
) -> list[list[_Option]]:
    """Each likely word at the cursor with the ways to end a suggestion that starts with
    it. The word being typed may be any of the last few words the analyzer sees (it
    cuts a half-typed word anywhere), so every split is weighed: the words before it as
    likely as the model finds them there, the half-typed rest as the start of a word the
    model knows (Bayes over the splits, normalized over what they can explain)."""
    model = japanese_model("lyrics" if request.kind == "lyrics" else "prose")
    tokens, line_start = _japanese_words(before, truncated)
    if not tokens:
        return []
    head = [_START, _START] if line_start else []
    n = len(tokens)
    splits = min(_JA_SPLITS, n)
    # priors[k]: P(the words kept when the last k are half-typed), relative to the
    # words before the longest split.
    priors = [1.0] * (splits + 1)
    kept = 1.0
    for k in range(splits - 1, -1, -1):
        i = n - k - 1
        kept *= max(_prob(model, personal, _context_at(head, tokens, i), tokens[i]), _JA_UNSEEN)
        priors[k] = kept
    firsts: list[tuple[float, str, Context, int]] = []
    total = 0.0
    for k in range(splits + 1):
        prefix = "".join(tokens[n - k :])
        if len(prefix) > _MAX_PREFIX:
            break
        context = _context_at(head, tokens, n - k)
        # The half-typed word may also start with a whole word the model knows that the
        # analyzer did not see (ヒップ + ホッ of ヒップホッ): one more cut inside it.
        hypotheses = [(priors[k], context, prefix)]
        for cut in range(1, len(prefix)):
            piece = prefix[:cut]
            if k and _known(model, personal, piece):
                p = _prob(model, personal, context, piece)
                hypotheses.append((priors[k] * p, (*context, piece)[-2:], prefix[cut:]))
        for prior, where, rest in hypotheses:
            mass = 0.0
            for token, p in _ranked(model, personal, where, rest):
                if not _is_word(token) or token == rest:
                    continue
                glued = not k and _joins(tokens[-1], token)
                if glued and not _seen_after(model, personal, where, token):
                    continue  # a new word glued to a katakana or kanji run: a split word
                mass += p
                firsts.append((prior * p, token[len(rest) :], (*where, token)[-2:], len(rest)))
            total += prior * (1.0 if not k else mass)
    if not total:
        return []
    firsts.sort(key=lambda first: first[0], reverse=True)
    limit = min(request.max_chars, _JA_MAX_CHARS)
    roots: list[list[_Option]] = []
    for joint, first, after, typed in firsts[:_ROOTS]:
        if len(first) > limit:
            continue
        p = joint / total
        words, following = _continue_japanese(model, personal, after, limit - len(first))
        ends: list[_Option] = []
        text = first
        own = _own(personal, after[:-1])
        for count, (word, q) in enumerate(words, 1):
            if not _joins(text, word):
                ends.append((text, p, count, typed, own))
            text += word
            p *= q
            own = min(own, _own(personal, after))
            after = (*after, word)[-2:]
        if not _joins(text, following):
            ends.append((text, p, len(words) + 1, typed, own))
        roots.append(ends)
    return roots


def _continue_japanese(
    model: NgramModel, personal: _Personal | None, context: Context, room: int
) -> tuple[list[tuple[str, float]], str]:
    """The next few words, greedily, each with its probability, while likely enough and
    within ``room``; and the likeliest word after them (to tell whether the text may
    end there)."""
    words: list[tuple[str, float]] = []
    size = 0
    for _ in range(_JA_MORE_WORDS):
        ranked = _ranked(model, personal, context, "")
        if not ranked:
            return words, ""
        token, p = ranked[0]
        if not _is_word(token) or p < _JA_CONTINUE or size + len(token) > room:
            return words, token
        words.append((token, p))
        size += len(token)
        context = (*context, token)[-2:]
    ranked = _ranked(model, personal, context, "")
    return words, ranked[0][0] if ranked else ""


def _context_at(head: list[str], tokens: list[str], i: int) -> Context:
    """The two words before ``tokens[i]``."""
    return tuple((head + tokens[:i])[-2:])


def _prob(model: NgramModel, personal: _Personal | None, context: Context, token: str) -> float:
    """P(token | context), the user's model blended in as in :func:`_ranked`."""
    p = model.prob(token, context)
    if personal is not None:
        levels, weight = personal.chain(context)
        if weight:
            p = (1.0 - weight) * p + weight * _interpolate(token, levels)
    return p


def _known(model: NgramModel, personal: _Personal | None, token: str) -> bool:
    """Whether the corpus or the user ever wrote ``token`` as a word."""
    return model.seen((), token) or (personal is not None and personal.seen((), token))


def _seen_after(
    model: NgramModel, personal: _Personal | None, context: Context, token: str
) -> bool:
    """Whether ``token`` was ever seen right after the last word of ``context`` (a
    compound the corpus or the user writes, such as 音楽 + 制作)."""
    if model.seen(context[-1:], token):
        return True
    return personal is not None and personal.seen(context[-1:], token)


def _joins(text: str, word: str) -> bool:
    """Whether ``word`` right after ``text`` continues a katakana or a kanji run: one
    word (or compound) to a reader, so a suggestion may neither end nor start there."""
    if not text or not word:
        return False
    a, b = _script(text[-1]), _script(word[0])
    return a == b and a in ("katakana", "kanji")


def _script(char: str) -> str:
    if "\u30a1" <= char <= "\u30fa" or char == "\u30fc":
        return "katakana"
    if "\u4e00" <= char <= "\u9fff" or "\u3400" <= char <= "\u4dbf" or char == "\u3005":
        return "kanji"
    return "other"


def _japanese_words(before: str, truncated: bool) -> tuple[list[str], bool]:
    """The words of the window before the cursor (the last line of it), and whether
    they start a line (or the document). A word the window cut is left out."""
    window = before[-_JA_WINDOW:]
    cut = truncated or len(before) > _JA_WINDOW
    if "\n" in window:
        window = window.rsplit("\n", 1)[1]
        cut = False
    tokens = segment.words(window)
    if cut and tokens:
        tokens = tokens[1:]
    return tokens, not cut


def _learn_japanese(before: str, truncated: bool, accepted: str) -> Counter[tuple[str, str]]:
    """Counts for the words of ``accepted`` (the half-typed word it completes included),
    after the words before them, as the analyzer reads the window and the text."""
    rows: Counter[tuple[str, str]] = Counter()
    tokens, line_start = _japanese_words(before, truncated)
    typed = len("".join(tokens))
    head = [_START, _START] if line_start else []
    for number, line in enumerate(segment.normalize(accepted).split("\n")):
        if number:
            head, tokens, typed = [_START, _START], [], 0
        text = "".join(tokens) + line
        words = segment.words(text) if len(text) <= segment.MAX_WINDOW else _chunked(text)
        position = 0
        history = list(head)
        for word in words:
            position += len(word)
            if position > typed:
                context = tuple(history[-2:])
                for n in range(len(context) + 1):
                    rows[("ja:" + " ".join(context[len(context) - n :]), word)] += 1
            history.append(word)
    return rows


def _chunked(text: str) -> list[str]:
    """The words of a long text, analyzed a window at a time (bounded per call)."""
    words: list[str] = []
    for start in range(0, len(text), segment.MAX_WINDOW):
        words += segment.words(text[start : start + segment.MAX_WINDOW])
    return words


def is_japanese(text: str, language: str | None = None) -> bool:
    """Whether to complete ``text`` (the text before the cursor) with the character
    model: a ``ja`` hint, or kana or kanji among its last characters."""
    if language is not None and re.split(r"[-_]", language.lower())[0] == "ja":
        return True
    return _JAPANESE.search(text[-_DETECT_WINDOW:]) is not None


# Models


@cache
def english_model(kind: Literal["prose", "lyrics"] = "prose") -> NgramModel:
    """The word trigram model of a document kind, built on first use."""
    sentences = list(_english_sentences(_read("yamabiko.engines.llm", "music_production")))
    # The offline chat engine's written answers, and the questions they answer: how
    # people ask things in a chat box.
    sentences += list(_english_sentences(_answers()))
    sentences += list(_english_sentences(_read("yamabiko.engines.ghost", "en_chat")))
    if kind == "lyrics":
        sentences += list(_english_sentences(_read("yamabiko.engines.ghost", "en_lyrics"))) * 3
    spellings: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for sentence in sentences:
        # Past its first word: a sentence's first word is capitalized for its position.
        for word in sentence[3:]:
            spellings[_fold(word)][word] += 1
    surfaces = {}
    for token, forms in spellings.items():
        spelling = forms.most_common(1)[0][0]
        if spelling != token:
            surfaces[token] = spelling
    folded = ([_fold(t) if t != _START else t for t in s] for s in sentences)
    return NgramModel(folded, order=3, surfaces=surfaces)


@cache
def japanese_model(kind: Literal["prose", "lyrics"] = "prose") -> NgramModel:
    """The word trigram model of a document kind (words as the analyzer reads them, a
    line at a time), built on first use. Lyrics add ``corpus/ja_lyrics.txt``, weighed
    three times."""
    lines = _japanese_lines("ja_music") + _japanese_lines("ja_chat")
    if kind == "lyrics":
        lines += _japanese_lines("ja_lyrics") * 3
    return NgramModel(([_START, _START, *_chunked(line)] for line in lines), order=3)


def _japanese_lines(corpus: str) -> list[str]:
    text = segment.normalize(_read("yamabiko.engines.ghost", corpus))
    return [line.strip() for line in text.splitlines() if line.strip()]


def _answers() -> str:
    """The questions and answers of ``engines/llm/corpus/answers.txt``, as plain lines."""
    text = _read("yamabiko.engines.llm", "answers")
    lines = (line.strip() for line in text.splitlines())
    return "\n".join(line[2:].strip() for line in lines if line.startswith(("Q:", "A:")))


def _english_sentences(text: str) -> Iterator[list[str]]:
    """Sentences as tokens (as written), each ``<s> <s>`` ... and ended by its mark or
    by ``</s>`` at a line end. Headings (lines of one or two words) are left out."""
    for line in text.splitlines():
        tokens = _TOKEN.findall(line)
        if len(tokens) < 3:
            continue
        sentence: list[str] = []
        for token in tokens:
            sentence.append(token)
            if token in _SENTENCE_END:
                yield [_START, _START, *sentence]
                sentence = []
        if sentence:
            yield [_START, _START, *sentence, _END_OF_LINE]


def _read(package: str, corpus: str) -> str:
    return resources.files(package).joinpath(f"corpus/{corpus}.txt").read_text("utf-8")


def _best(ranked: Sequence[str], prefix: str) -> list[str]:
    if not prefix:
        return list(ranked[:_CANDIDATES])
    return list(itertools.islice((t for t in ranked if t.startswith(prefix)), _CANDIDATES))


def _is_word(token: str) -> bool:
    return token[:1].isalnum()
