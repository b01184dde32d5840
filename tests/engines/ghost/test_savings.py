"""Keystroke savings: the simulation itself (with engines whose answers are known), then
what the ``ngram`` engine saves on sentences its corpora do not contain."""

from __future__ import annotations

from yamabiko.engines.ghost.base import Count, GhostRequest, GhostSuggestion, PersonalCounts
from yamabiko.engines.ghost.ngram import NgramGhostEngine
from yamabiko.engines.ghost.savings import Savings, keystroke_savings, keystroke_savings_of

ENGLISH = [
    "Before you add any compression to the vocal, set the levels of every track so the "
    "song already works with the faders alone.",
    "A short reverb on the snare drum can make the whole kit sound like one room.",
    "Cut the low end of the guitars so the bass and the kick drum have room to breathe.",
    "Record three takes of the lead vocal and keep the one with the most feeling.",
    "Sidechain the pad to the kick so the low end pumps with the rhythm of the song.",
    "When the mix sounds muddy, look for a build up in the low mids and cut it gently.",
]
JAPANESE = [
    "ミックスの最初は、フェーダーだけで音量のバランスを整えてみよう。",
    "歌詞を書くときは、声に出して歌いながら言葉を選ぶとよい。",
    "キックとベースの低音が重なるなら、どちらかを少し削るとすっきりする。",
    "ボーカルの録音では、マイクとの距離を変えないように気をつけたい。",
]


class Oracle:
    """Knows the text: suggests the next ``size`` characters of it."""

    name = "oracle"

    def __init__(self, text: str, size: int) -> None:
        self.text = text
        self.size = size
        self.asked: list[GhostRequest] = []

    async def suggest(
        self, request: GhostRequest, personal: PersonalCounts | None = None
    ) -> list[GhostSuggestion]:
        self.asked.append(request)
        rest = self.text[request.cursor : request.cursor + self.size]
        return [GhostSuggestion(rest, 1.0)] if rest else []

    def learn(self, request: GhostRequest, accepted: str) -> list[Count]:
        return []


class Constant:
    """Always suggests the same thing."""

    name = "constant"

    def __init__(self, text: str | None) -> None:
        self.text = text

    async def suggest(
        self, request: GhostRequest, personal: PersonalCounts | None = None
    ) -> list[GhostSuggestion]:
        return [GhostSuggestion(self.text, 1.0)] if self.text else []

    def learn(self, request: GhostRequest, accepted: str) -> list[Count]:
        return []


async def test_an_accept_costs_one_keystroke_and_jumps_past_the_suggestion() -> None:
    oracle = Oracle("kick drum", 4)
    result = await keystroke_savings(oracle, "kick drum")
    # "kick" (Tab), " dru" (Tab), "m" (Tab): three keystrokes for nine characters.
    assert result == Savings(characters=9, keystrokes=3, accepted=3, accepted_characters=9, shown=3)
    assert result.savings == 1 - 3 / 9
    assert (result.precision, result.shown_per_100) == (1.0, 100.0)
    # The engine saw only what had been typed, with the cursor at its end.
    assert [(r.text, r.cursor) for r in oracle.asked] == [("", 0), ("kick", 4), ("kick dru", 8)]


async def test_no_help_or_wrong_help_saves_nothing() -> None:
    for engine in (Constant(None), Constant("zzz"), Constant("kick drums")):
        result = await keystroke_savings(engine, "kick drum")
        assert (result.keystrokes, result.accepted, result.savings) == (9, 0, 0.0)
        # A wrong suggestion shown costs no keystroke but counts against precision.
        assert result.shown == (9 if engine.text else 0)
        assert result.precision == 0.0


async def test_a_suggestion_that_fits_only_sometimes_is_taken_only_then() -> None:
    # "ab" fits at 0 and at 2, not at 4 ("c"): Tab, Tab, then one typed character.
    result = await keystroke_savings(Constant("ab"), "ababc")
    assert (result.keystrokes, result.accepted, result.accepted_characters) == (3, 2, 4)
    assert (result.shown, result.precision) == (3, 2 / 3)


async def test_an_empty_text_saves_nothing_and_asks_nothing() -> None:
    oracle = Oracle("", 4)
    assert (await keystroke_savings(oracle, "")).savings == 0.0
    assert oracle.asked == []


async def test_savings_of_several_texts_add_up() -> None:
    total = await keystroke_savings_of(Constant("ab"), ["ab", "abc"])
    assert total == Savings(characters=5, keystrokes=3, accepted=2, accepted_characters=4, shown=3)


async def test_the_ngram_engine_saves_keystrokes_on_new_sentences_of_its_domain() -> None:
    engine = NgramGhostEngine()
    english = await keystroke_savings_of(engine, ENGLISH)
    japanese = await keystroke_savings_of(engine, JAPANESE)
    assert english.savings > 0.2, english
    assert japanese.savings > 0.15, japanese


async def test_personal_counts_from_a_few_similar_texts_save_more() -> None:
    engine = NgramGhostEngine()
    accepted = [
        "Send the backing vocals to the plate reverb and keep the return low in the chorus.",
        "Send the piano to the plate reverb and keep the return low in the bridge.",
        "Print the stems with the drums on a separate bus.",
        "コーラスはプレートリバーブに送って、サビでは返しを控えめにする。",
        "ピアノもプレートリバーブに送って、間奏では返しを控えめにする。",
    ]
    personal = PersonalCounts()
    for text in accepted:
        personal.add(engine.learn(GhostRequest(text="", cursor=0), text))
    held_out = [
        "Send the lead vocal to the plate reverb and keep the return low in the verse.",
        "Print the stems with the plate reverb on a separate bus.",
    ]
    japanese = ["ボーカルはプレートリバーブに送って、Aメロでは返しを控えめにする。"]
    for texts in (held_out, japanese):
        alone = await keystroke_savings_of(engine, texts)
        helped = await keystroke_savings_of(engine, texts, personal)
        assert helped.savings > alone.savings + 0.15, (alone, helped)
