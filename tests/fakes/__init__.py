"""Fake LLM providers: local HTTP servers speaking the real wire formats.

``async with FakeOpenAI(Script(tokens=[...])) as fake:`` then point the SDK (or the
engine, through ``OPENAI_BASE_URL``) at ``fake.url``. ``fake.script`` steers what it
answers; ``fake.requests`` records what it got and when each client hung up. Used by the
engine tests, the stream tests and ``make bench``.
"""

from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.gemini_api import FakeGemini
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.openai_speech import FakeSpeech
from tests.fakes.server import FakeProvider, RecordedRequest, Script

__all__ = [
    "FakeAnthropic",
    "FakeGemini",
    "FakeOpenAI",
    "FakeProvider",
    "FakeSpeech",
    "RecordedRequest",
    "Script",
]
