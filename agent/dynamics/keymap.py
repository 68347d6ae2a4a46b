"""The keyword map: which words trigger which gesture, from a YAML file or derived defaults.

File format (every gesture name must be one of the avatar's gestures)::

    gestures:
      laugh_react: [haha, lol, "that's funny"]     # a list of keywords, or:
      mini_wave_hello:
        keywords: [hello, hi, goodbye]
        cooldown: 5                                 # seconds; default DYNAMICS_COOLDOWN

Entries naming a gesture the avatar lacks are dropped with one warning listing them.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent.dynamics import defaults
from agent.dynamics.matcher import KeywordMatcher
from common.logs import get_logger

log = get_logger("agent.dynamics")


class KeymapError(ValueError):
    """The map file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class GestureRule:
    gesture: str
    keywords: tuple[str, ...]
    cooldown: float | None = None


@dataclass(frozen=True)
class KeywordMap:
    rules: tuple[GestureRule, ...]
    source: str
    """The file it came from, or "derived" for the defaults."""

    def pairs(self) -> Iterator[tuple[str, str]]:
        for rule in self.rules:
            for keyword in rule.keywords:
                yield keyword, rule.gesture

    def cooldowns(self) -> dict[str, float]:
        return {rule.gesture: rule.cooldown for rule in self.rules if rule.cooldown is not None}

    def matcher(self) -> KeywordMatcher:
        return KeywordMatcher(self.pairs())


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keywords: list[str] = Field(min_length=1)
    cooldown: float | None = Field(default=None, ge=0)


class _MapFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    gestures: dict[str, _Entry]

    @field_validator("gestures", mode="before")
    @classmethod
    def _list_is_keywords(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: {"keywords": v} if isinstance(v, list) else v for k, v in value.items()}
        return value


class _Loader(yaml.SafeLoader):
    """YAML without YAML 1.1 booleans, so `yes`, `no`, `on` and `off` stay keywords."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _describe(error: pydantic.ValidationError) -> str:
    problems = []
    for item in error.errors():
        if item["loc"]:
            problems.append(f"{'.'.join(map(str, item['loc']))}: {item['msg']}")
        else:
            problems.append("expected a mapping with a 'gestures' key")
    return "; ".join(problems)


def load_keymap(path: Path) -> KeywordMap:
    """Read and check a map file; raises KeymapError with a readable message."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise KeymapError(f"{path}: cannot read keyword map: {reason}") from exc
    try:
        parsed = _MapFile.model_validate(raw)
    except pydantic.ValidationError as exc:
        raise KeymapError(f"{path}: {_describe(exc)}") from exc
    rules = tuple(
        GestureRule(gesture, tuple(entry.keywords), entry.cooldown)
        for gesture, entry in parsed.gestures.items()
    )
    keymap = KeywordMap(rules, str(path))
    try:
        keymap.matcher()
    except ValueError as exc:
        raise KeymapError(f"{path}: {exc}") from exc
    return keymap


def derived_keymap(gestures: Collection[str]) -> KeywordMap:
    rules = tuple(GestureRule(g, kws) for g, kws in defaults.derive(gestures).items())
    return KeywordMap(rules, "derived")


def fit_to_catalog(keymap: KeywordMap, gestures: Collection[str]) -> KeywordMap:
    """Keep the rules whose gesture the avatar has; warn once about the others."""
    kept = tuple(rule for rule in keymap.rules if rule.gesture in gestures)
    dropped = [rule.gesture for rule in keymap.rules if rule.gesture not in gestures]
    if dropped:
        hints = {
            name: close[0]
            for name in dropped
            if (close := difflib.get_close_matches(name, list(gestures), n=1))
        }
        log.warning(
            "keyword map names gestures this avatar lacks; their keywords are ignored",
            source=keymap.source,
            dropped=dropped,
            did_you_mean=hints or None,
            available=sorted(gestures),
        )
    return KeywordMap(kept, keymap.source)


def keymap_for(path: Path | None, gestures: Collection[str]) -> KeywordMap:
    """The session's map: the file at `path` fitted to the catalog, or derived defaults."""
    if path is None:
        return derived_keymap(gestures)
    return fit_to_catalog(load_keymap(path), gestures)
