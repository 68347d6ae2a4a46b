"""Input parsing, property-tested: media arguments, API error bodies, command lines, waiting."""

from __future__ import annotations

import base64
import io
import itertools
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bithuman_client.cli import parse_args
from bithuman_client.client import _error_fields
from bithuman_client.media import EXTENSIONS, LIMITS, MediaError, is_url, resolve
from bithuman_client.waiting import Backoff, Progress, format_elapsed

KINDS = ("image", "video", "audio")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(kind=st.sampled_from(KINDS), value=st.text(max_size=300))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_media_argument_is_a_url_passed_through_or_a_one_line_error(
    kind: Any, value: str
) -> None:
    try:
        media = resolve(kind, value)
    except MediaError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(f"--{kind}")
        return
    # nothing here names an existing file, so what passes is a URL, unchanged
    assert media.source == "url" and media.value == value and is_url(value)


@given(data=st.binary(min_size=1, max_size=2048), kind=st.sampled_from(KINDS), upper=st.booleans())
def test_a_media_file_becomes_its_bytes_in_base64(data: bytes, kind: Any, upper: bool) -> None:
    extension = sorted(EXTENSIONS[kind])[0]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"sample{extension.upper() if upper else extension}"
        path.write_bytes(data)
        media = resolve(kind, str(path))
    assert media.source == "file" and media.size == len(data)
    assert base64.b64decode(media.value, validate=True) == data


@pytest.mark.parametrize("kind", KINDS)
def test_media_over_the_limit_is_refused_before_reading(kind: Any, tmp_path: Path) -> None:
    path = tmp_path / f"big{sorted(EXTENSIONS[kind])[0]}"
    with path.open("wb") as sparse:  # no disk space used: only the size matters
        sparse.truncate(LIMITS[kind] + 1)
    with pytest.raises(MediaError, match=rf"--{kind}: big\.\w+ is [\d.]+ MB; bitHuman accepts"):
        resolve(kind, str(path))
    path.write_bytes(b"")
    with pytest.raises(MediaError, match="is empty"):
        resolve(kind, str(path))


def test_media_of_the_wrong_kind_or_not_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "voice.mp3").write_bytes(b"ID3")
    with pytest.raises(MediaError, match=r"--image: voice\.mp3 is not a image file"):
        resolve("image", str(tmp_path / "voice.mp3"))
    with pytest.raises(MediaError, match="not a regular file"):
        resolve("video", str(tmp_path))
    with pytest.raises(MediaError, match="no such file"):
        resolve("audio", str(tmp_path / "missing.wav"))


@given(body=json_values)
def test_any_error_body_gives_text_or_nothing(body: Any) -> None:
    error, code, _ = _error_fields(body)
    assert error is None or isinstance(error, str)
    assert code is None or isinstance(code, str)


@given(code=st.from_regex(r"[A-Z][A-Z_]{2,30}", fullmatch=True), message=st.text(min_size=1))
def test_each_documented_error_shape_names_its_code(code: str, message: str) -> None:
    shapes = [
        {"error": message, "code": code, "details": "x"},
        {"success": False, "error": code, "message": message},
        {"error": {"code": code, "message": message, "httpStatus": 400}, "status_code": 400},
    ]
    for shape in shapes:
        assert _error_fields(shape)[:2] == (message, code)


printable = st.text(st.characters(codec="utf-8"), min_size=1, max_size=200)


@given(code=printable, message=printable, room=st.none() | printable)
def test_messages_and_ids_reach_the_command_unchanged(
    code: str, message: str, room: str | None
) -> None:
    # after `--`, argparse takes anything as a positional, even a leading dash
    argv = ["speak", *(["--room", room] if room is not None else []), "--", code, message]
    if room is not None and room.startswith("-"):
        argv = ["speak", f"--room={room}", "--", code, message]
    args = parse_args(argv)
    assert (args.agent_code, args.message, args.room) == (code, message, room)


def test_dynamics_generate_and_dynamics_of_an_agent_parse_apart() -> None:
    assert parse_args(["dynamics", "A1"]).command == "dynamics"
    generate = parse_args(["dynamics", "generate", "A1", "--duration", "3", "--json"])
    assert (generate.command, generate.agent_id, generate.duration) == (
        "dynamics-generate",
        "A1",
        3,
    )
    assert generate.json is True


@pytest.mark.parametrize(
    "argv",
    [
        ["agent", "generate", "--wait-timeout", "0"],
        ["agent", "generate", "--poll-interval", "soon"],
        ["add-context", "A1", "hi", "--type", "shout"],
        ["speak", "A1"],
        ["agent"],
        ["fly"],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        parse_args(argv)
    assert info.value.code == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("usage error: python -m bithuman_client") and line.endswith("--help)")


@given(seconds=st.floats(min_value=0, max_value=10**7))
def test_elapsed_time_reads_as_a_clock(seconds: float) -> None:
    text = format_elapsed(seconds)
    parts = [int(p) for p in text.split(":")]
    assert all(0 <= p < 60 for p in parts[1:])
    total = sum(p * 60**i for i, p in enumerate(reversed(parts)))
    assert total == int(seconds)


@given(first=st.floats(0.01, 100), factor=st.floats(1.0, 3.0), cap=st.floats(0.01, 100))
def test_poll_delays_grow_and_stay_under_the_cap(first: float, factor: float, cap: float) -> None:
    delays = Backoff(first=first, factor=factor, cap=cap).delays()
    taken = [next(delays) for _ in range(30)]
    assert taken[0] == first
    assert all(b >= a for a, b in itertools.pairwise(taken))
    assert max(taken) <= max(cap, first)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal_and_logs_changes_elsewhere() -> None:
    now = [0.0]
    terminal, log = _Terminal(), io.StringIO()
    for out in (terminal, log):
        now[0] = 0.0
        progress = Progress(out, "agent A1", clock=lambda: now[0])
        progress.update("processing")
        now[0] = 61
        progress.redraw()
        progress.update("processing")
        now[0] = 75
        progress.update("ready")
        progress.finish()
    assert terminal.getvalue().count("\n") == 1
    assert terminal.getvalue().endswith("\ragent A1: ready (1:15 elapsed)\x1b[K\n")
    assert log.getvalue().splitlines() == [
        "agent A1: processing (0:00 elapsed)",
        "agent A1: ready (1:15 elapsed)",
    ]
