"""ruff and mypy are clean on the package and the tests, so CI enforces both (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gridsentinel.settings import REPO_ROOT

pytestmark = pytest.mark.unit

PATHS = ["gridsentinel", "tests"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    # From the repo root, so pyproject.toml's settings apply and mypy reuses its cache in .mypy_cache/.
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300, check=False)


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", "--no-fix", *PATHS)
    assert result.returncode == 0, f"ruff check failed:\n{result.stdout}{result.stderr}"


def test_mypy_is_clean() -> None:
    result = _run("mypy", *PATHS)
    assert result.returncode == 0, f"mypy failed:\n{result.stdout}{result.stderr}"
