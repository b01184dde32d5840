"""The ``ngram`` engine speaks only when it is confident enough, never splits a word
(Japanese katakana and kanji compounds included), and reads Japanese through the
analyzer over a bounded window around the cursor, never the whole document."""

from __future__ import annotations

import time
from typing import Any

import pytest

from yamabiko.engines.ghost import calibration, segment
from yamabiko.engines.ghost.base import GhostRequest, GhostSuggestion, PersonalCounts
from yamabiko.engines.ghost.ngram import NgramGhostEngine

ENGINE = NgramGhostEngine()
KATAKANA = frozenset(chr(c) for c in range(0x30A1, 0x30FB)) | {"\u30fc"}


def suggest(
    text: str, personal: PersonalCounts | None = None, **kwargs: Any
) -> list[GhostSuggestion]:
    return ENGINE.suggest_now(GhostRequest(text=text, cursor=len(text), **kwargs), personal)


def is_kanji(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fff"


# The threshold


def test_an_unsure_guess_is_hidden_and_a_sure_one_shown() -> None:
    sure = suggest("Add some compression to the vo")
    assert sure
    assert sure[0].text.startswith("cal")
    vague = "Zorblax quintessential "
    assert suggest(vague) == []
    # The engine had candidates: the default threshold hid them.
    candidates = suggest(vague, threshold=0.0)
    assert candidates
    assert max(s.score for s in candidates) < calibration.default_threshold("chat", "en")


@pytest.mark.parametrize(
    "text", ["Add some compression to the vo", "The chorus should be ", "ボーカルに", "サビの"]
)
def test_every_suggestion_shown_meets_the_threshold(text: str) -> None:
    everything = suggest(text, threshold=0.0)
    assert everything
    scores = sorted({s.score for s in everything})
    for threshold in scores:
        shown = suggest(text, threshold=threshold)
        assert shown, threshold
        assert all(s.score >= threshold for s in shown)
    assert suggest(text, threshold=1.0) == []


def test_the_default_threshold_depends_on_kind_and_language() -> None:
    for kind in ("chat", "prompt", "notes"):
        assert calibration.default_threshold(kind, "en") == calibration.THRESHOLDS[("en", "chat")]
    text = "Add some compression to the vo"
    raised = calibration.THRESHOLDS[("en", "chat")]
    assert suggest(text, kind="notes") == suggest(text, kind="chat", threshold=raised)


def test_scores_are_calibrated_probabilities_not_raw_counts() -> None:
    # A longer ending holds more chances to be wrong: the same raw probability is
    # worth less; more of the word typed already makes it surer.
    one = calibration.confidence("en", 0.5, 1, 3, False)
    three = calibration.confidence("en", 0.5, 3, 3, False)
    assert 0.0 < three < one < 1.0
    assert calibration.confidence("en", 0.5, 1, 4, False) > calibration.confidence(
        "en", 0.5, 1, 0, False
    )


def test_suggestions_are_ranked_by_keystrokes_saved_on_average() -> None:
    for text in ("Add some compression to the ", "Turn the kick up and the ", "サビの"):
        found = suggest(text, threshold=0.0)
        saved = [s.score * (len(s.text) - 1) for s in found]
        assert saved == sorted(saved, reverse=True), found


# Words


def test_a_half_typed_katakana_word_is_completed_whole_or_not_at_all() -> None:
    # The corpus has no ヒップホップ: no guess glues a katakana piece onto the half word.
    for suggestion in suggest("ヒップホッ", threshold=0.0):
        assert suggestion.text[0] not in KATAKANA, suggestion
    # Once the user has written the word, the rest of it is offered, and only the rest.
    personal = PersonalCounts()
    personal.add(ENGINE.learn(GhostRequest(text="", cursor=0), "ヒップホップのビート"))
    found = suggest("ヒップホッ", personal)
    assert found
    assert found[0].text.startswith("プ")
    assert ("ヒップホッ" + found[0].text).startswith("ヒップホップ")


@pytest.mark.parametrize(
    "text",
    [
        "ボーカルに",
        "サビの",
        "ミックスの最初は",
        "キックとベースの",
        "歌詞を書くときは、",
        "シンセの",
        "録音",
        "音楽",
    ],
)
def test_japanese_suggestions_start_and_end_on_word_boundaries(text: str) -> None:
    found = suggest(text, threshold=0.0)
    assert found, text
    for suggestion in found:
        whole = text + suggestion.text
        words = segment.words(whole)
        ends = {sum(len(w) for w in words[:i]) for i in range(len(words) + 1)}
        assert len(whole) in ends, (text, suggestion, words)
        # No katakana or kanji run is cut where the suggestion ends or begins.
        last = suggestion.text[-1]
        assert not (last in KATAKANA and whole.endswith(suggestion.text + "ー"))
        if text[-1] in KATAKANA:
            assert suggestion.text[0] not in KATAKANA or len(text) in ends
        if is_kanji(text[-1]) and is_kanji(suggestion.text[0]):
            assert len(text) in ends, (text, suggestion, words)


def test_english_suggestions_complete_the_word_and_end_on_a_whole_word() -> None:
    for text in ("Add some compression to the vo", "Sidechain the ba", "Cut the low end of the "):
        for suggestion in suggest(text, threshold=0.0):
            whole = text + suggestion.text
            assert whole[-1].isalnum(), suggestion
            last_word = whole.split()[-1]
            assert last_word.isalpha() or "'" in last_word or "-" in last_word, suggestion


# The analyzer's window


def test_japanese_is_analyzed_over_a_bounded_window_never_the_whole_document(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = segment._tagger()
    seen: list[int] = []

    def counting(text: str) -> Any:
        seen.append(len(text))
        return real(text)

    monkeypatch.setattr(segment, "_tagger", lambda: counting)
    document = "ミックスの最初は、フェーダーだけで音量のバランスを整える。" * 20_000
    started = time.perf_counter()
    for cut in range(1, 51):
        ENGINE.suggest_now(GhostRequest(text=document, cursor=len(document) - cut, threshold=0.0))
    elapsed = time.perf_counter() - started
    assert seen
    assert max(seen) <= segment.MAX_WINDOW
    assert elapsed < 2.0  # 50 keystrokes in a 600,000-character document
    # What a user accepts is learned over the same bounded windows.
    ENGINE.learn(GhostRequest(text=document, cursor=len(document)), "サビで" * 500)
    assert max(seen) <= segment.MAX_WINDOW


def test_text_the_analyzer_cannot_encode_neither_raises_nor_breaks_the_rules() -> None:
    for text in ("\ud800ボーカル", "ﾐｯｸｽの", "ボーカル\x00に", "ＥＱを"):
        for suggestion in suggest(text, threshold=0.0):
            assert suggestion.text.strip()
            assert 0.0 <= suggestion.score <= 1.0
