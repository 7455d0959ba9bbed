"""ruff and mypy are clean on the package and the tests, and the import contracts hold (import-linter), so CI
enforces all three (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_import_contracts_are_kept() -> None:
    """The data flow's layers and the forbidden imports of pyproject.toml's [tool.importlinter]."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint_imports), "--no-cache"], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, f"import contracts broken:\n{result.stdout}{result.stderr}"
    assert "0 broken" in result.stdout
