"""The keyword map used when no map file exists, derived from the avatar's gesture names.

Gesture names are chosen per avatar ("mini_wave_hello", "laugh_react", "blow_kiss_heart"), so
each gesture is sorted into a kind by the words of its name, and each kind brings its keywords.
A name matching several kinds takes the first in `KINDS` order; when several gestures fall into
one kind, the alphabetically first gets its keywords. Keywords stay conservative: a gesture that
fires when it should not is worse than one that does not fire ("sure" is left out because of
"I'm not sure", "funny" alone because of "not funny").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class GestureKind:
    name: str
    name_words: frozenset[str]
    """A gesture belongs to this kind when its name contains one of these words."""
    keywords: tuple[str, ...]


def _kind(name: str, name_words: str, keywords: Iterable[str]) -> GestureKind:
    return GestureKind(name, frozenset(name_words.split()), tuple(keywords))


KINDS: tuple[GestureKind, ...] = (
    _kind(
        "laugh",
        "laugh laughing laughter giggle chuckle lol",
        [
            "haha",
            "hehe",
            "ahah",
            "lol",
            "lmao",
            "rofl",
            "so funny",
            "that's funny",
            "hilarious",
            "jaja",
            "jeje",
            "mdr",
            "哈哈",
            "\u0445\u0430-\u0445\u0430",  # Russian laughter
            "😂",
            "🤣",
            "😆",
        ],
    ),
    _kind(
        "love",
        "heart hearts kiss kisses love",
        [
            "love you",
            "i love",
            "love it",
            "i adore",
            "sweetheart",
            "kisses",
            "xoxo",
            "te quiero",
            "je t'aime",
            "ich liebe",
            "❤",
            "😍",
            "😘",
            "🥰",
            "💕",
        ],
    ),
    _kind(
        "wave",
        "wave waving hello hi greet greeting greetings bye goodbye",
        [
            "hello",
            "hi",
            "hey",
            "hiya",
            "howdy",
            "greetings",
            "good morning",
            "good afternoon",
            "good evening",
            "bye",
            "goodbye",
            "bye bye",
            "see you",
            "see ya",
            "farewell",
            "take care",
            "hola",
            "adiós",
            "adios",
            "bonjour",
            "salut",
            "ciao",
            "hallo",
            "tschüss",
            "olá",
            "こんにちは",
            "さようなら",
            "你好",
            "再见",
            "👋",
        ],
    ),
    _kind(
        "nod",
        "nod nodding agree agreement yes",
        [
            "yes",
            "yeah",
            "yep",
            "yup",
            "exactly",
            "agreed",
            "i agree",
            "of course",
            "definitely",
            "that's right",
            "sí",
            "oui",
            "✅",
        ],
    ),
    _kind(
        "shake",
        "headshake shake disagree",
        ["nope", "i disagree", "absolutely not", "🙅"],
    ),
    _kind(
        "thumbs",
        "thumb thumbs thumbsup like",
        ["awesome", "great job", "good job", "nice one", "perfect", "👍"],
    ),
    _kind(
        "clap",
        "clap clapping applause applaud cheer",
        ["congratulations", "congrats", "bravo", "well done", "hooray", "👏", "🎉"],
    ),
    _kind(
        "bow",
        "bow bowing thank thanks grateful",
        ["thank you", "thanks", "thank u", "namaste", "gracias", "merci", "danke", "🙏"],
    ),
    _kind(
        "think",
        "think thinking ponder wonder hmm",
        ["hmm", "hm", "let me think", "good question", "🤔"],
    ),
    _kind(
        "shrug",
        "shrug shrugging",
        ["i don't know", "i dunno", "no idea", "who knows", "🤷"],
    ),
    _kind(
        "surprise",
        "surprise surprised shock shocked wow",
        ["wow", "whoa", "no way", "oh my god", "omg", "😮", "😲", "😱"],
    ),
    _kind("dance", "dance dancing", ["let's dance", "dance with me", "💃", "🕺"]),
)

_NAME_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])")


def name_words(gesture: str) -> set[str]:
    """ "blowKiss_heart" -> {"blow", "kiss", "heart"}."""
    return {part.lower() for part in _NAME_SPLIT.split(gesture) if part}


def kind_of(gesture: str) -> GestureKind | None:
    found = name_words(gesture)
    return next((kind for kind in KINDS if kind.name_words & found), None)


def derive(gestures: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Gesture name -> keywords, for the gestures whose names reveal their kind."""
    chosen: dict[str, str] = {}
    for gesture in sorted(gestures):
        kind = kind_of(gesture)
        if kind is not None:
            chosen.setdefault(kind.name, gesture)
    return {chosen[kind.name]: kind.keywords for kind in KINDS if kind.name in chosen}
