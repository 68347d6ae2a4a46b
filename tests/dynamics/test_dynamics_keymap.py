"""Map files, validation against the catalog, derived defaults, settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.dynamics import defaults
from agent.dynamics.keymap import (
    KeymapError,
    derived_keymap,
    fit_to_catalog,
    keymap_for,
    load_keymap,
)
from agent.dynamics.settings import DynamicsSettings
from common.settings import load_settings
from devkit.dynamics_cases import LAUGH, LOVE, NOD, WAVE
from devkit.dynamics_standins import GESTURES
from tests.dynamics.conftest import lines

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gestures.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_both_entry_forms_and_cooldowns(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "gestures:\n"
        '  laugh_react: [haha, "that\'s funny"]\n'
        "  mini_wave_hello:\n"
        "    keywords: [hello]\n"
        "    cooldown: 10\n",
    )
    keymap = load_keymap(path)
    assert list(keymap.pairs()) == [("haha", LAUGH), ("that's funny", LAUGH), ("hello", WAVE)]
    assert keymap.cooldowns() == {WAVE: 10.0}
    assert keymap.source == str(path)


def test_yaml_booleans_stay_keywords(tmp_path: Path) -> None:
    keymap = load_keymap(write(tmp_path, "gestures:\n  nod: [yes, No, on, OFF, y]\n"))
    assert [kw for kw, _ in keymap.pairs()] == ["yes", "No", "on", "OFF", "y"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a mapping with a 'gestures' key"),
        ("- hello\n", "expected a mapping with a 'gestures' key"),
        ("gesture:\n  nod: [yes]\n", "gesture: Extra inputs are not permitted"),
        ("gestures:\n  nod: []\n", "gestures.nod.keywords"),
        ("gestures:\n  nod: [3]\n", "gestures.nod.keywords.0: Input should be a valid string"),
        ("gestures:\n  nod: {keywords: [yes], cooldown: -1}\n", "gestures.nod.cooldown"),
        ("gestures:\n  nod: [yes, '?!']\n", "contains no words"),
        ("gestures:\n  nod: [Yes]\n  wave: [yes!]\n", "is the same as"),
        ("gestures: [\n", "cannot read keyword map"),
    ],
)
def test_bad_files_are_refused_with_a_readable_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(KeymapError) as caught:
        load_keymap(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeymapError, match="cannot read"):
        load_keymap(tmp_path / "absent.yaml")


def test_gestures_the_avatar_lacks_are_dropped_with_one_warning(
    tmp_path: Path, logged: pytest.LogCaptureFixture
) -> None:
    path = write(
        tmp_path,
        "gestures:\n  laugh_reakt: [haha]\n  mini_wave_hello: [hello]\n  dance: [dance]\n",
    )
    keymap = fit_to_catalog(load_keymap(path), GESTURES)
    assert [rule.gesture for rule in keymap.rules] == [WAVE]
    assert lines(logged) == [
        "keyword map names gestures this avatar lacks; their keywords are ignored"
    ]
    fields = vars(logged.records[-1])
    assert fields["dropped"] == ["laugh_reakt", "dance"]
    assert fields["did_you_mean"] == {"laugh_reakt": LAUGH}


def test_a_complete_map_raises_no_warning(tmp_path: Path, logged: pytest.LogCaptureFixture) -> None:
    keymap = keymap_for(write(tmp_path, "gestures:\n  laugh_react: [haha]\n"), GESTURES)
    assert [rule.gesture for rule in keymap.rules] == [LAUGH]
    assert lines(logged) == []


def test_the_shipped_example_loads() -> None:
    keymap = load_keymap(REPO / "config" / "gestures.example.yaml")
    assert {rule.gesture for rule in keymap.rules} == set(GESTURES)


def test_without_a_file_the_map_is_derived_from_gesture_names() -> None:
    keymap = keymap_for(None, [*GESTURES, "idle_stretch"])
    assert keymap.source == "derived"
    assert [rule.gesture for rule in keymap.rules] == [LAUGH, LOVE, WAVE, NOD]
    assert all(rule.cooldown is None for rule in keymap.rules)
    matcher = keymap.matcher()
    for text, gesture in [("hello", WAVE), ("haha", LAUGH), ("yes", NOD), ("love you", LOVE)]:
        found = matcher.match(text)
        assert found is not None and found.gesture == gesture


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("mini_wave_hello", "wave"),
        ("laugh_react", "laugh"),
        ("talk_head_nod_subtle", "nod"),
        ("blow_kiss_heart", "love"),
        ("blowKissHeart", "love"),
        ("Head-Shake", "shake"),
        ("thumbs_up", "thumbs"),
        ("idle_stretch", None),
        ("handshake", None),
    ],
)
def test_gesture_kinds_come_from_name_words(name: str, kind: str | None) -> None:
    found = defaults.kind_of(name)
    assert (found.name if found else None) == kind


def test_one_gesture_per_kind_the_alphabetically_first() -> None:
    derived = defaults.derive(["wave_big", "laugh_loud", "wave_small", "laugh_giggle"])
    assert list(derived) == ["laugh_giggle", "wave_big"]


def test_default_keywords_do_not_collide_across_kinds() -> None:
    everything = [f"{kind.name}_gesture" for kind in defaults.KINDS]
    keymap = derived_keymap(everything)
    assert len(keymap.rules) == len(defaults.KINDS)
    keymap.matcher()


def test_map_path_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    default = tmp_path / "config" / "gestures.yaml"  # stands for the project's config/
    monkeypatch.setattr("agent.dynamics.settings.DEFAULT_MAP_PATH", default)
    monkeypatch.delenv("DYNAMICS_MAP_PATH", raising=False)
    assert DynamicsSettings().map_path is None
    default.parent.mkdir()
    default.write_text("gestures: {}\n")
    assert DynamicsSettings().map_path == default
    custom = write(tmp_path, "gestures: {}\n")
    monkeypatch.setenv("DYNAMICS_MAP_PATH", str(custom))
    assert DynamicsSettings().map_path == custom


def test_a_map_path_that_does_not_exist_stops_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DYNAMICS_MAP_PATH", "nope.yaml")
    with pytest.raises(SystemExit) as caught:
        load_settings(DynamicsSettings)
    assert caught.value.code == 2
    assert "DYNAMICS_MAP_PATH is invalid: no such keyword map file: nope.yaml" in (
        capsys.readouterr().err
    )


def test_settings_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in DynamicsSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    settings = DynamicsSettings()
    assert settings.dynamics_enabled
    assert (settings.dynamics_cooldown, settings.dynamics_min_gap) == (3.0, 1.0)
    assert not settings.dynamics_agent_utterances and not settings.dynamics_function_tool
    assert settings.bithuman_rest_url == "https://api.bithuman.ai"
    assert settings.bithuman_api_secret is None
