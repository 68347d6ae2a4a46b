"""Keyword matching: the labelled set, the normalization rules, earliest-wins, properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.dynamics.keymap import derived_keymap
from agent.dynamics.matcher import KeywordMatcher, phrase_variants
from agent.dynamics.text import canonical, words
from devkit.dynamics_cases import CASES, LAUGH, NOD, WAVE
from devkit.dynamics_standins import GESTURES

MATCHER = derived_keymap(GESTURES).matcher()


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_labelled_transcripts(text: str, expected: str | None) -> None:
    found = MATCHER.match(text)
    assert (found.gesture if found else None) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("That's so funny", ["thats", "so", "funny"]),
        ("that\u2019s", ["thats"]),
        ("can't", ["cant"]),
        ("Ha-ha!", ["ha", "ha"]),
        ("hahahah", ["haha"]),
        ("ahahah", ["ahah"]),
        ("yesss hiii", ["yes", "hi"]),
        ("STRASSE Stra\u00dfe", ["strasse", "strasse"]),
        ("\uff28\uff29", ["hi"]),
        ("caf\u0065\u0301", ["caf\u00e9"]),
        ("\u4f60\u597d", ["\u4f60", "\u597d"]),
        ("\u2764\ufe0f \U0001f44d\U0001f3fd", ["\u2764", "\U0001f44d"]),
        ("1000 2020", ["1000", "2020"]),
        ("", []),
        (" ... !? ", []),
    ],
)
def test_words_normalize_case_punctuation_apostrophes_and_scripts(
    text: str, expected: list[str]
) -> None:
    assert words(text) == expected


def test_canonical_keeps_ordinary_words() -> None:
    for word in ["hello", "banana", "mississippi", "cocoa", "hmm", "book", "see"]:
        assert canonical(word) == word


def test_laughter_keywords_also_match_spelled_apart() -> None:
    assert phrase_variants("haha") == [("haha",), ("ha", "ha")]
    assert phrase_variants("Hello there") == [("hello", "there")]
    with pytest.raises(ValueError, match="no words"):
        phrase_variants("?!")


def test_multi_word_phrases_need_their_words_in_a_row() -> None:
    matcher = KeywordMatcher([("good morning", WAVE), ("thank you so much", NOD)])
    assert matcher.match("Good... morning!") is not None
    assert matcher.match("good, very good morning") is not None
    assert matcher.match("morning is good") is None
    assert matcher.match("thank you so") is None


def test_the_longest_phrase_wins_at_one_position() -> None:
    matcher = KeywordMatcher([("thank you", NOD), ("thank you so much", LAUGH)])
    found = matcher.match("Oh, thank you so much!")
    assert found is not None
    assert (found.gesture, found.keyword, found.position) == (LAUGH, "thank you so much", 1)


def test_earliest_keyword_wins_whatever_the_map_order() -> None:
    matcher = KeywordMatcher([("yes", NOD), ("hello", WAVE), ("lol", LAUGH)])
    found = matcher.match("lol, hello, yes")
    assert found is not None
    assert (found.gesture, found.position) == (LAUGH, 0)


def test_keywords_that_normalize_alike_cannot_name_two_gestures() -> None:
    with pytest.raises(ValueError, match="same as"):
        KeywordMatcher([("That's it", NOD), ("thats IT!", WAVE)])
    assert KeywordMatcher([("That's it", NOD), ("thats IT!", NOD)]).size == 1


_KEYWORDS = {"hello": WAVE, "yes": NOD, "lol": LAUGH}
_FILLERS = ["this", "eyes", "yesterday", "hellos", "shell", "lolly", "the", "caf\u00e9", "no"]
_SEPARATORS = [" ", ", ", "! ", " - ", "... ", " (", "? "]


@given(
    st.lists(st.sampled_from(sorted(_KEYWORDS) + _FILLERS), max_size=12),
    st.lists(st.sampled_from(_SEPARATORS), min_size=12, max_size=12),
    st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_match_is_the_first_keyword_word_whatever_the_case_and_punctuation(
    chosen: list[str], separators: list[str], upper: list[bool]
) -> None:
    matcher = KeywordMatcher(_KEYWORDS.items())
    shown = [w.upper() if up else w for w, up in zip(chosen, upper, strict=False)]
    text = "".join(w + sep for w, sep in zip(shown, separators, strict=False))
    first = next(((i, w) for i, w in enumerate(chosen) if w in _KEYWORDS), None)
    found = matcher.match(text)
    if first is None:
        assert found is None
    else:
        assert found is not None
        assert (found.position, found.gesture) == (first[0], _KEYWORDS[first[1]])
