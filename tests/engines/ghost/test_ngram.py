"""The ``ngram`` ghost engine: sensible continuations in English and Japanese, the
guarantees of the engine interface, and personal models that put what a user accepted
first, for that user only. These tests read every candidate (threshold 0) unless they
say otherwise; test_confidence.py tests the threshold itself."""

from __future__ import annotations

import random
import re

import pytest

from yamabiko.engines.ghost.base import GhostRequest, GhostSuggestion, PersonalCounts
from yamabiko.engines.ghost.ngram import (
    WINDOW,
    NgramGhostEngine,
    english_model,
    is_japanese,
    japanese_model,
)

JAPANESE_TEXT = re.compile(r"^[\u3040-\u30ff\u4e00-\u9fff]+$")
ENGINE = NgramGhostEngine()


async def suggest(
    text: str, cursor: int | None = None, personal: PersonalCounts | None = None, **kwargs: object
) -> list[GhostSuggestion]:
    kwargs.setdefault("threshold", 0.0)
    request = GhostRequest(text=text, cursor=len(text) if cursor is None else cursor, **kwargs)  # type: ignore[arg-type]
    return await ENGINE.suggest(request, personal)


async def texts(text: str, **kwargs: object) -> list[str]:
    return [s.text for s in await suggest(text, **kwargs)]


def assert_guarantees(found: list[GhostSuggestion], max_items: int, max_chars: int) -> None:
    assert len(found) <= max_items
    assert len({s.text for s in found}) == len(found), found
    for suggestion in found:
        assert suggestion.text.strip(), found
        assert len(suggestion.text) <= max_chars, found
        assert 0.0 <= suggestion.score <= 1.0, found
    # Ranked by the keystrokes each saves on average: its score times its length less Tab.
    saved = [s.score * (len(s.text) - 1) for s in found]
    assert saved == sorted(saved, reverse=True), found


# English


async def test_it_completes_the_word_at_the_cursor() -> None:
    found = await texts("Add some compression to the vo")
    assert found[0].startswith("cal")
    assert (await texts("Cut the kick drum for the last bar of the pre-"))[0].startswith("chorus")
    assert (await texts("Set the level with the fad"))[0].startswith("er")


async def test_a_new_word_gets_its_own_leading_space_after_a_word_but_not_after_a_space() -> None:
    after_space = await texts("Add some compression to the ")
    after_word = await texts("Add some compression to the")
    assert after_space
    assert after_word
    assert not after_space[0].startswith(" ")
    # "the" is complete: the likeliest options are the next words, with their space.
    assert after_word[0] == " " + after_space[0]
    assert (await texts("Drums, bass,"))[0].startswith(" ")
    assert not (await texts("Use a filter ("))[0].startswith(" ")


async def test_it_continues_with_more_words_only_when_they_save_more_on_average() -> None:
    found = await texts("Compare your mix with a ref")
    assert found[0].startswith("erence")
    assert 1 <= len(found[0].split()) <= 4
    # A phrase of the user's own is offered whole: it is likely enough to pay.
    own = learned("Compare your mix with a ", "reference track")
    assert (await texts("Compare your mix with a ref", personal=own))[0] == "erence track"
    # Not past a likely end of the sentence.
    assert await texts("Take a break and listen again with fresh", max_items=1) == [" ears"]


async def test_the_users_casing_is_kept_and_sentences_start_with_a_capital() -> None:
    # Only the rest of the word: "Vo" stays as the user typed it.
    assert (await texts("Add some compression to the Vo"))[0].startswith("cal")
    assert (await texts("ADD SOME COMPRESSION TO THE VO"))[0].startswith("CAL")
    assert (await texts("The kick is loud. th"))[0].startswith("e")
    for text in ("The kick is loud. ", "Verse one\n"):
        first = (await texts(text))[0]
        assert first[0].isupper(), (text, first)
        assert not first.startswith(" ")


async def test_only_the_text_before_the_cursor_counts() -> None:
    text = "Add some compression to the vo and the drums will sit right"
    cursor = text.index(" and")
    assert await suggest(text, cursor) == await suggest(text[:cursor])
    assert (await texts(text, cursor=cursor))[0].startswith("cal")
    # A long document: only the window before the cursor is read.
    long = "Nothing about the mix here. " * 80 + "Record the lead vo"
    assert await suggest(long) == await suggest(long[-WINDOW:])


async def test_lyrics_documents_draw_on_the_lyrics_corpus() -> None:
    lyrics = await texts("Call my name and I will come", kind="lyrics")
    chat = await texts("Call my name and I will come")
    assert lyrics[0] == " running"
    assert " running" not in chat


# Japanese


async def test_a_japanese_sentence_gets_a_japanese_continuation() -> None:
    found = await texts("ボーカルにコンプを")
    assert found[0].startswith("かけ")
    for text in ("ミックスの最初の", "歌詞を書くときは、", "サビの"):
        found = await texts(text)
        assert found, text
        assert all(JAPANESE_TEXT.match(s) for s in found), (text, found)
        assert not found[0].startswith(" ")
    assert JAPANESE_TEXT.match((await texts("ボーカルにリバーブを", language="ja"))[0])


async def test_japanese_is_detected_near_the_cursor_or_named() -> None:
    assert is_japanese("ミックスでは")
    assert is_japanese("The mix sounds ", "ja")
    assert is_japanese("The mix sounds ", "ja-JP")
    assert not is_japanese("サビの前に。" + " The chorus needs more" * 3)
    assert not is_japanese("The mix sounds ", "en")


async def test_japanese_suggestions_stop_at_the_end_of_a_phrase() -> None:
    for text in ("ボーカルにコンプを", "歌詞を書くときは、", "ミックスの最初の"):
        for suggestion in await texts(text):
            assert len(suggestion) <= 12
            assert not suggestion.endswith(("、", "。"))


# Guarantees


@pytest.mark.parametrize("max_items", [1, 2, 3, 5])
@pytest.mark.parametrize("max_chars", [1, 4, 12, 48])
@pytest.mark.parametrize(
    "text",
    [
        "Add some compression to the vo",
        "Add some compression to the ",
        "Add some compression to the",
        "The chorus should be",
        "ボーカルにコンプを",
        "サビの",
    ],
)
async def test_the_interface_guarantees_hold(text: str, max_items: int, max_chars: int) -> None:
    found = await suggest(text, max_items=max_items, max_chars=max_chars)
    assert found, "no suggestion at all"
    assert_guarantees(found, max_items, max_chars)


async def test_it_gives_several_distinct_choices_best_first() -> None:
    found = await suggest("Add some compression to the ")
    assert len(found) == 3
    assert found[0].score * (len(found[0].text) - 1) > found[-1].score * (len(found[-1].text) - 1)


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  ", "\u3000"])
async def test_nothing_to_complete_gives_nothing(text: str) -> None:
    assert await suggest(text) == []


async def test_no_items_or_no_room_gives_nothing() -> None:
    assert await suggest("Add some compression to the vo", max_items=0) == []
    assert await suggest("Add some compression to the vo", max_chars=0) == []


async def test_emoji_and_odd_unicode_neither_raise_nor_break_the_rules() -> None:
    assert (await texts("Add some 🎛️ compression to the vo"))[0].startswith("cal")
    odd = [
        "🎛️",
        "🎸🎸🎸 ",
        "👩‍🎤 sings the vo",
        "e\u0301",
        "İstanbul ",
        "Straße st",
        "ﬁlter",
        "\u200b",
        "\ufeffAdd",
        "\ud800 vo",
        "\uff25\uff31",  # EQ in full width
        "ｶﾀｶﾅ",
        "مرحبا ",
        "x" * 500,
        "a-" * 60,
        "'''---",
    ]
    rng = random.Random(9)
    alphabet = "ab vocal .,!?'-\n\t🎛️‍\u0301ßİ日本のミックスをﾐｯｸｽ、。\u3000\ud800\x00"
    odd += ["".join(rng.choices(alphabet, k=rng.randrange(1, 40))) for _ in range(300)]
    for text in odd:
        for cursor in {0, len(text) // 2, len(text)}:
            found = await suggest(text, cursor, max_chars=16)
            assert_guarantees(found, 3, 16)


async def test_a_cursor_out_of_range_is_read_as_the_nearest_end() -> None:
    text = "Add some compression to the vo"
    assert await suggest(text, len(text) + 5) == await suggest(text)
    assert await suggest(text, -3) == []


# Personal models


def learned(text: str, accepted: str, rows: PersonalCounts | None = None) -> PersonalCounts:
    personal = rows if rows is not None else PersonalCounts()
    personal.add(ENGINE.learn(GhostRequest(text=text, cursor=len(text)), accepted))
    return personal


@pytest.mark.parametrize(
    ("context", "accepted"),
    [
        ("Add some compression to the ", "bass guitar"),
        ("Add some compression to the vo", "x track"),
        ("Route the snare to the", " parallel bus"),
        ("the chorus needs more ", "EQ"),
        ("ボーカルにコンプを", "薄くかける"),
        ("サビの", "ハモリを"),
    ],
)
async def test_an_accepted_continuation_ranks_first_next_time_for_that_user_only(
    context: str, accepted: str
) -> None:
    assert not (await texts(context))[0].startswith(accepted)
    alice = learned(context, accepted)
    # What they accepted, or its first words when the rest is less sure (it comes next).
    first = (await texts(context, personal=alice))[0]
    assert accepted.startswith(first), first
    assert len(first.strip()) >= 2, first
    # Somebody else's counts (they accepted other suggestions elsewhere) do not.
    bob = learned("Pan the guitars wide and the ", "drums in the middle")
    learned("サビの前に", "一拍だけ休む", bob)
    assert not (await texts(context, personal=bob))[0].startswith(accepted)
    assert await texts(context, personal=PersonalCounts()) == await texts(context)


async def test_what_a_user_accepted_also_helps_in_a_similar_context() -> None:
    alice = learned("Send the lead vocal to the ", "plate reverb")
    assert (await texts("Send the guitar to the ", personal=alice))[0].startswith("plate")
    assert (await texts("Send the guitar to the pl", personal=alice))[0].startswith("ate")
    assert not (await texts("Send the guitar to the "))[0].startswith("plate")


async def test_the_users_own_words_are_completed_with_their_own_capitals() -> None:
    alice = learned("We recorded it at ", "Yamabiko Studio")
    found = await texts("The vocal was tracked at Yam", personal=alice)
    assert found[0].startswith("abiko")
    found = await texts("Then we mixed it at ", personal=alice)
    assert found[0] in ("Yamabiko", "Yamabiko Studio")


async def test_learn_counts_each_accepted_token_after_its_context() -> None:
    rows = ENGINE.learn(
        GhostRequest(text="Add some compression to the vo", cursor=30), "cal chain."
    )
    pairs = {(row.context, row.token) for row in rows}
    # The completed word counts whole, after the two words before it, then one, then none.
    assert {("en:to the", "vocal"), ("en:the", "vocal"), ("en:", "vocal")} <= pairs
    assert ("en:the vocal", "chain") in pairs
    assert ("en:vocal chain", ".") in pairs
    # What the user typed themselves is context, not something they accepted.
    assert not any(token in {"the", "to", "vo"} for _, token in pairs)
    assert all(row.count == 1 for row in rows)
    rows = ENGINE.learn(GhostRequest(text="サビの", cursor=3), "前に")
    pairs = {(row.context, row.token) for row in rows}
    # Japanese counts words as the analyzer reads them, after the two words before.
    assert {("ja:サビ の", "前"), ("ja:の", "前"), ("ja:の 前", "に"), ("ja:", "に")} <= pairs
    assert ENGINE.learn(GhostRequest(text="", cursor=0), "") == []


# Models


def test_the_models_are_built_once_and_shared() -> None:
    assert english_model("prose") is english_model("prose")
    assert english_model("lyrics") is not english_model("prose")
    assert japanese_model() is japanese_model()
    assert japanese_model("lyrics") is not japanese_model("prose")
    assert NgramGhostEngine().name == "ngram"
