"""The benchmark scripts still import: they lean on the project's modules and on test stand-ins,
and nothing else would notice when a refactor breaks them (they are run by hand, not in CI)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

# every script; the Flask reference endpoint is a server a benchmark starts, not a script
BENCHMARKS = sorted(
    path
    for path in (Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py")
    if path.name != "token_server_flask_reference.py"
)


def load(script: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    name = f"bench_{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.name)
def test_benchmark_script_imports(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert callable(getattr(load(script, monkeypatch), "main", None))


def test_without_a_livekit_server_a_benchmark_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from devkit.livekit_server import require_server

    monkeypatch.setenv("LIVEKIT_SERVER_BIN", str(tmp_path / "nope"))
    with pytest.raises(SystemExit) as stopped:
        require_server()
    assert str(stopped.value).startswith(f"no livekit-server at {tmp_path / 'nope'}")


def test_capacity_without_lk_at_the_given_path_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    capacity = load(BENCHMARKS[0].parent / "capacity.py", monkeypatch)
    with pytest.raises(SystemExit) as stopped:
        capacity.parse_args(["--lk", str(tmp_path / "nonexistent")])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"no executable lk at {tmp_path / 'nonexistent'}" in err
