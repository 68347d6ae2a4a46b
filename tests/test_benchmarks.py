"""The benchmark scripts still import: they lean on the project's modules and on test stand-ins,
and nothing else would notice when a refactor breaks them (they are run by hand, not in CI)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# the *_bench.py scripts; the Flask reference endpoint is a server they start, not a script
BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*_bench.py"))


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.name)
def test_benchmark_script_imports(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"bench_{script.stem}"
    spec = importlib.util.spec_from_file_location(name, script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None))
