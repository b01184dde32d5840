"""A local chat engine that answers: the offline engine asked newcomer questions it was
not written for.

The questions are ``evals/data/chat/questions.txt`` (in neither the answers file nor the
tests), each with the topics that would answer it, or ``-`` for a question outside what
the engine knows. A reply is on topic when the entry it answers from has one of those
topics (checked on the engine's own retrieval, then on the streamed text: the reply must
contain that entry's answer); an off-domain question must get the honest fallback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

from bench.figures import NO_BASELINE, Figure
from yamabiko.engines.llm import ChatMessage, LLMRequest, collect
from yamabiko.engines.llm.local import FALLBACK_START, LocalEngine, load_index

QUESTIONS: Final = Path(__file__).parent / "data" / "chat" / "questions.txt"
TOPIC_GOAL: Final = 80.0
"""Per cent of in-domain questions answered on topic (at least 4 in 5)."""


def questions() -> list[tuple[str, frozenset[str]]]:
    found = []
    for line in QUESTIONS.read_text("utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        question, topics = line.rsplit("|", 1)
        wanted = frozenset(t.strip() for t in topics.split(",")) - {"-"}
        found.append((question.strip(), wanted))
    return found


async def answered(question: str) -> str:
    engine = LocalEngine()
    request = LLMRequest(model="default", messages=[ChatMessage("user", question)], seed=1)
    text, _ = await collect(engine.stream(request))
    return text


def run(quick: bool) -> list[Figure]:
    index = load_index("answers")
    on_topic = in_domain = honest = off_domain = 0
    for question, topics in questions():
        text = asyncio.run(answered(question))
        if not topics:
            off_domain += 1
            honest += text.startswith(FALLBACK_START)
            continue
        in_domain += 1
        found = index.search(question, limit=1)
        on_topic += bool(found) and found[0].entry.topic in topics and found[0].entry.answer in text
    return [
        Figure(
            "offline chat: newcomer questions answered on topic",
            "%",
            100.0 * on_topic / in_domain,
            NO_BASELINE,
            higher_is_better=True,
            goal=TOPIC_GOAL,
            decimals=0,
            goal_on="value",
        ),
        Figure(
            "offline chat: off-domain questions told it has no answer",
            "%",
            100.0 * honest / off_domain,
            NO_BASELINE,
            higher_is_better=True,
            goal=100.0,
            decimals=0,
            goal_on="value",
        ),
    ]
