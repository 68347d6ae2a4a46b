"""Words of an utterance, normalized the same way for keywords and transcripts.

Both sides go through `words()`, so a keyword matches whenever its words appear in a row in
the utterance, whatever lies between them (spaces, punctuation, hyphens). The normalization
is what makes matching tolerant:

- NFKC and case folding: fullwidth "HELLO", "Hello" and "hello" are one word; "Straße" is
  "strasse".
- Apostrophes (straight or curly) join a word and are then dropped: "that's" and "thats" are
  one word, and "can't" never contains "can".
- A word made of one short unit repeated is laughter-like: "hahaha", "hahah" -> "haha".
- A letter held three or more times counts once: "hiii" -> "hi", "yesss" -> "yes".
- Scripts written without spaces (Chinese, Japanese hiragana, Thai, Lao, Khmer, Myanmar)
  have one word per character, so their keywords match inside a sentence.
- Pictographs (emoji) are words of their own, so "😂" can be a keyword for typed text.
"""

from __future__ import annotations

import functools
import re
import unicodedata

APOSTROPHES = "'\u2019\u2018\u02bc\u0060"
# Blocks whose words are not separated by spaces (Thai, Lao, Myanmar, Khmer, Hiragana, CJK).
_UNSPACED = (
    (0x0E00, 0x0EFF),
    (0x1000, 0x109F),
    (0x1780, 0x17FF),
    (0x3040, 0x309F),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
)
_UNSPACED_ASTRAL = "\U00020000-\U000323af"
# Emoji, minus the skin-tone modifiers (U+1F3FB-1F3FF) that follow a hand or a face.
_EMOJI_ASTRAL = "\U0001f000-\U0001f3fa\U0001f400-\U0001faff"
# Emoji presentation selectors: "❤️" and "❤" are the same keyword.
_VARIATION_SELECTORS = range(0xFE00, 0xFE10)
_ELONGATION = re.compile(r"([^\d])\1{2,}")
_MAX_UNIT = 3


def _char_class(codepoints: list[int]) -> str:
    """Regex class body for sorted `codepoints`, written as ranges."""
    parts: list[str] = []
    start = prev = codepoints[0]
    for cp in [*codepoints[1:], -1]:
        if cp == prev + 1:
            prev = cp
            continue
        low, high = re.escape(chr(start)), re.escape(chr(prev))
        parts.append(low if start == prev else f"{low}-{high}")
        start = prev = cp
    return "".join(parts)


@functools.cache
def _token_pattern() -> re.Pattern[str]:
    """Built once per process on first use (a scan of the BMP, about 0.1 s).

    The classes list BMP code points only: sre turns such a class into one table lookup per
    character, where a class reaching past the BMP becomes a slow list of ranges. The few
    astral ranges that matter (CJK extensions, emoji) are separate alternatives.
    """
    word: list[int] = []
    marks: list[int] = []
    unspaced: list[int] = []
    pictographs: list[int] = []
    for cp in range(0x10000):
        ch = chr(cp)
        category = unicodedata.category(ch)
        if cp in _VARIATION_SELECTORS:
            continue
        if category[0] == "M":
            marks.append(cp)
            word.append(cp)
        elif ch.isalnum():
            (unspaced if any(lo <= cp <= hi for lo, hi in _UNSPACED) else word).append(cp)
        elif category == "So":
            pictographs.append(cp)
    w, m = _char_class(word), _char_class(marks)
    apostrophe = re.escape(APOSTROPHES)
    return re.compile(
        f"[{w}]+(?:[{apostrophe}][{w}]+)*"
        f"|(?:[{_char_class(unspaced)}]|[{_UNSPACED_ASTRAL}])[{m}]*"
        f"|[{_char_class(pictographs)}]|[{_EMOJI_ASTRAL}]"
    )


def warm_up() -> None:
    """Build the tokenizer now (for a worker's prewarm) instead of in the first session."""
    _token_pattern()


@functools.lru_cache(maxsize=65536)
def canonical(token: str) -> str:
    """One word's comparable form (see the module docstring); cached: words repeat a lot."""
    for ch in APOSTROPHES:
        if ch in token:
            token = token.replace(ch, "")
    if token.isdigit():
        return token
    size = len(token)
    for unit in range(1, _MAX_UNIT + 1):
        if size >= 2 * unit and token == (token[:unit] * (size // unit + 1))[:size]:
            return token[:unit] * 2
    return _ELONGATION.sub(r"\1", token)


def words(text: str) -> list[str]:
    """The canonical words of `text`, in order."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [canonical(token) for token in _token_pattern().findall(folded)]


def laughter_unit(word: str) -> str | None:
    """The repeated unit of a laughter-like canonical word ("haha" -> "ha"), else None."""
    for unit in range(1, _MAX_UNIT + 1):
        if len(word) == 2 * unit and word[:unit] == word[unit:] and not word.isdigit():
            return word[:unit]
    return None
