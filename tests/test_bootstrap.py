"""scripts/bootstrap.sh keeps one environment for run-agent.sh (runtime lock) and test.sh (dev
lock): switching between them installs nothing. Run on a copy of the project whose `.venv`
Python only records the pip commands it is given."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORDING_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../../pip.log"
"""


def project_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    (copy / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", copy / "scripts")
    build_web = copy / "scripts" / "build-web.sh"
    build_web.write_text("#!/usr/bin/env bash\n")  # the web client is not under test here
    build_web.chmod(0o755)
    for name in ("requirements.lock", "requirements-dev.lock", "pyproject.toml"):
        shutil.copy(ROOT / name, copy)
    python = copy / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(RECORDING_PYTHON)
    python.chmod(0o755)
    return copy


def bootstrap(copy: Path, *args: str) -> list[str]:
    """The lock files installed by this run."""
    log = copy / "pip.log"
    before = log.read_text().splitlines() if log.exists() else []
    subprocess.run(["bash", "scripts/bootstrap.sh", *args], cwd=copy, check=True, timeout=60)
    after = log.read_text().splitlines() if log.exists() else []
    return [line.split(" -r ")[1] for line in after[len(before) :] if " -r " in line]


def test_the_dev_install_serves_the_runtime_too(tmp_path: Path) -> None:
    copy = project_copy(tmp_path)
    assert bootstrap(copy, "dev") == ["requirements-dev.lock"]
    for args in ((), ("dev",), (), ("dev",)):
        assert bootstrap(copy, *args) == []


def test_a_runtime_install_then_dev_installs_each_once(tmp_path: Path) -> None:
    copy = project_copy(tmp_path)
    assert bootstrap(copy) == ["requirements.lock"]
    assert bootstrap(copy, "dev") == ["requirements-dev.lock"]
    assert bootstrap(copy) == []


def test_a_dev_lock_that_differs_from_the_runtime_one_does_not_count(tmp_path: Path) -> None:
    copy = project_copy(tmp_path)
    dev_lock = copy / "requirements-dev.lock"
    pins = dev_lock.read_text().splitlines()
    first = next(i for i, line in enumerate(pins) if "==" in line and line[0].isalnum())
    pins[first] += ".post999"  # one runtime package at another version
    dev_lock.write_text("\n".join(pins) + "\n")
    assert bootstrap(copy, "dev") == ["requirements-dev.lock"]
    assert bootstrap(copy) == ["requirements.lock"]


def test_a_changed_runtime_lock_installs_again(tmp_path: Path) -> None:
    copy = project_copy(tmp_path)
    bootstrap(copy, "dev")
    with (copy / "requirements.lock").open("a") as lock:
        lock.write("# regenerated\n")
    assert bootstrap(copy) == ["requirements.lock"]
