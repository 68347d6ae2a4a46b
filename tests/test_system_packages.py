"""scripts/system-packages.sh where it cannot install (no apt-get on its PATH): it names the
missing packages and the tests that skip without them, and exits 0 (1 in CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "system-packages.sh"


def bare_path(tmp_path: Path) -> str:
    """A PATH with only what the script itself runs: none of the packages, and no apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "id", "grep", "sudo"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != "CI"}
    return subprocess.run(
        [shutil.which("bash") or "bash", str(SCRIPT)],
        env=clean | {"PATH": bare_path(tmp_path)} | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_without_a_way_to_install_it_says_which_tests_skip(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("missing system packages: redis-server nodejs")
    assert "sudo apt-get install" in lines[0]
    skipped = "\n".join(lines[1:])
    assert "skipped without redis-server: token server and webhook tests with Redis" in skipped
    assert "skipped without chromium: the web client's browser test" in skipped


def test_in_ci_a_package_it_cannot_install_is_an_error(tmp_path: Path) -> None:
    result = run(tmp_path, CI="1")
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == "CI runs every test: install them first"
