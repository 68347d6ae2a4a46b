"""The flags: bitHuman's names (and its misspelling), environment fallbacks, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from live_avatar.options import DEFAULT_THRESHOLD_DB, parse

SECRET = "fake-live-avatar-secret-not-a-key"


def refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "avatar.imx"
    path.write_bytes(b"not really a model")
    return path


def test_defaults_are_the_examples() -> None:
    options = parse([])
    assert options.model is None  # the placeholder face
    assert options.volume == 1.0
    assert options.silent_threshold_db == DEFAULT_THRESHOLD_DB == -40.0
    assert not options.echo and not options.insecure
    assert options.input_file is None and options.output is None


@pytest.mark.parametrize("flag", ["--silent-threshold-db", "--slient-threshold-db"])
def test_threshold_under_either_spelling(flag: str) -> None:
    assert parse([flag, "-35"]).silent_threshold_db == -35.0
    assert parse([f"{flag}=-50.5"]).silent_threshold_db == -50.5


def test_flags(model: Path, tmp_path: Path) -> None:
    options = parse(
        [
            "--model",
            str(model),
            "--token",
            "a.runtime.jwt",
            "--volume",
            "1.5",
            "--echo",
            "--insecure",
            "--output",
            str(tmp_path / "out.mp4"),
        ]
    )
    assert options.model == model
    assert options.token is not None and options.token.get_secret_value() == "a.runtime.jwt"
    assert options.api_secret is None
    assert options.volume == 1.5 and options.echo and options.insecure
    assert options.output == tmp_path / "out.mp4"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--volume", "loud"], "--volume: not a number: 'loud'"),
        (["--volume", "0"], "--volume: must be greater than 0"),
        (["--volume", "-2"], "--volume: must be greater than 0"),
        (["--volume", "nan"], "--volume: not a finite number"),
        (["--slient-threshold-db", "5"], "--silent-threshold-db"),
        (["--silent-threshold-db=-inf"], "not a finite number"),
        (["--silent-threshold-db", "-200"], "between -120 and 0"),
        (["--microphone", "1"], "unrecognized arguments: --microphone"),
        (["--input-file", "nowhere.wav"], "input file not found: nowhere.wav"),
        (["--output", "no/such/folder/out.mp4"], "output folder not found"),
    ],
)
def test_bad_values_are_one_line(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(argv, capsys)
    assert line.startswith("python -m live_avatar: error:")
    assert expected in line


def test_environment_fallbacks(model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BITHUMAN_MODEL_PATH", str(model))
    monkeypatch.setenv("BITHUMAN_API_SECRET", SECRET)
    options = parse([])
    assert options.model == model
    assert options.api_secret is not None and options.api_secret.get_secret_value() == SECRET
    # a flag wins over its variable
    flagged = parse(["--api-secret", "from-the-flag"]).api_secret
    assert flagged is not None and flagged.get_secret_value() == "from-the-flag"


def test_env_file_is_read(model: Path, tmp_path: Path) -> None:
    # the autouse fixture runs each test in its own tmp_path: that is the working directory
    (tmp_path / ".env").write_text(
        f"BITHUMAN_MODEL_PATH={model}\nBITHUMAN_RUNTIME_TOKEN=a.runtime.jwt\n"
    )
    options = parse([])
    assert options.model == model and options.token is not None


def test_blank_model_variable_means_the_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BITHUMAN_MODEL_PATH", " ")
    assert parse([]).model is None


def test_model_needs_a_credential(model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = refused(["--model", str(model)], capsys)
    assert "--model needs --api-secret or --token" in line


def test_missing_model_is_one_line_without_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = refused(["--model", str(tmp_path / "gone.imx"), "--api-secret", SECRET], capsys)
    assert "model file not found" in line and "gone.imx" in line
    assert SECRET not in line
