"""Find the first keyword of an utterance: whole words only, earliest wins.

Keywords and the utterance are both reduced to canonical words (see `text`), so matching is
a lookup of each utterance word in a table keyed by the first word of every phrase; a phrase
matches when its following words come next. No substring can match ("hi" is not in "this",
"yes" is not in "eyes"), and the cost grows with the utterance's length, not the number of
keywords. At one position the longest phrase wins ("thank you so much" over "thank you").
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from agent.dynamics.text import laughter_unit, words


@dataclass(frozen=True, slots=True)
class Match:
    gesture: str
    keyword: str
    position: int
    """Index of the first matched word in the utterance."""


def phrase_variants(keyword: str) -> list[tuple[str, ...]]:
    """The word sequences `keyword` stands for; laughter also matches spelled apart
    ("haha" matches "ha-ha" and "ha ha ha"). Raises ValueError for a keyword without words."""
    base = words(keyword)
    if not base:
        raise ValueError(f"keyword {keyword!r} contains no words")
    options: list[list[tuple[str, ...]]] = []
    for word in base:
        unit = laughter_unit(word)
        options.append([(word,), (unit, unit)] if unit else [(word,)])
    return [tuple(itertools.chain.from_iterable(parts)) for parts in itertools.product(*options)]


class KeywordMatcher:
    """Compiled once per session from (keyword, gesture) pairs."""

    def __init__(self, keywords: Iterable[tuple[str, str]]) -> None:
        owner: dict[tuple[str, ...], tuple[str, str]] = {}
        for keyword, gesture in keywords:
            for phrase in phrase_variants(keyword):
                previous = owner.setdefault(phrase, (keyword, gesture))
                if previous[1] != gesture:
                    raise ValueError(
                        f"keyword {keyword!r} ({gesture}) is the same as {previous[0]!r}"
                        f" ({previous[1]}) once case, punctuation and apostrophes are ignored"
                    )
        index: dict[str, list[tuple[tuple[str, ...], str, str]]] = {}
        for phrase, (keyword, gesture) in owner.items():
            index.setdefault(phrase[0], []).append((phrase, keyword, gesture))
        for entries in index.values():
            entries.sort(key=lambda entry: len(entry[0]), reverse=True)
        self._index = index
        self._first_words = frozenset(index)
        self.size = len(owner)

    def match(self, text: str) -> Match | None:
        found = words(text)
        if self._first_words.isdisjoint(found):
            return None
        for position, word in enumerate(found):
            for phrase, keyword, gesture in self._index.get(word, ()):
                end = position + len(phrase)
                if end == position + 1 or tuple(found[position:end]) == phrase:
                    return Match(gesture, keyword, position)
        return None
