"""No usable API token ships: the repository's token file holds no token, and no tracked file holds the
plain text of a token that ever shipped (the old demo tokens, known here by their hashes only)."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from gridsentinel.api.auth import TokenStore
from gridsentinel.settings import REPO_ROOT

pytestmark = pytest.mark.unit

# SHA-256 of the demo tokens config/tokens.yaml shipped until issue 16 (their plain text was in docs/api.md).
OLD_DEMO_HASHES = {
    "8537fefb22d045370e86715b7c2d68278ef564fbcfbb8be2ce936b631ea95e8f",
    "81b3bf126b95cf33a99344b84f8b42f9a05c6b10ffddb6e7b55423c8f63c537a",
    "9c1ff14d938fb69a59efe869d068d98e1f7d246999052fe1248845e9136b621e",
    "18d52b238102d05014d210bdb5859ec07251f593573c33f11dee6b954f249256",
    "436e555893d6089497898163ad77c9234e4e0988325231f41cfe53fb4bc276be",
}
# Candidate secrets: runs of the characters tokens are made of (URL-safe base64 and friends), quoted or not.
CANDIDATE = re.compile(rb"[A-Za-z0-9_.~+/=-]{8,200}")
TEXT_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ".txt", ".mjs", ".js", ".json", ".html", ".css", ".sh",
                 ".cfg", ".ini", ".j2", ".csv", ".conf", ""}


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
        names = [n for n in out.decode().split("\0") if n]
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (a source tarball): every file
        skip = {".git", ".venv", "node_modules", ".mypy_cache", ".pytest_cache", "artifacts", "__pycache__"}
        names = [str(p.relative_to(REPO_ROOT)) for p in REPO_ROOT.rglob("*")
                 if p.is_file() and not skip & set(p.relative_to(REPO_ROOT).parts)]
    return [REPO_ROOT / n for n in names if Path(n).suffix in TEXT_SUFFIXES and (REPO_ROOT / n).is_file()]


def test_the_shipped_token_file_holds_no_token() -> None:
    path = REPO_ROOT / "config" / "tokens.yaml"
    if path.exists():
        store = TokenStore.load(path)
        assert store._by_hash == {}, "config/tokens.yaml must ship empty: make users with `gridsentinel users`"


def test_no_tracked_file_holds_a_shipped_token() -> None:
    files = tracked_files()
    assert len(files) > 100 and REPO_ROOT / "docs" / "api.md" in files  # the scan sees the repository
    store = TokenStore.load(REPO_ROOT / "config" / "tokens.yaml") if (REPO_ROOT / "config" / "tokens.yaml").exists() \
        else TokenStore([])
    shipped = OLD_DEMO_HASHES | {h.removeprefix("sha256:") for h in store._by_hash}
    found = []
    for path in files:
        for word in set(CANDIDATE.findall(path.read_bytes())):
            # a token may be quoted or end a sentence: try the run and the run without trailing punctuation
            for candidate in {word, word.rstrip(b".,;:")}:
                if hashlib.sha256(candidate).hexdigest() in shipped:
                    found.append(f"{path.relative_to(REPO_ROOT)}: {candidate[:6].decode()}…")
    assert not found, f"plain text of a shipped token: {found}"


def test_the_scan_would_find_a_demo_token() -> None:
    # The scan's own check: a run of token characters around a known secret is caught.
    secret = b"s3cret-token-for-the-scan"
    text = b"| `demo` | viewer | `" + secret + b"` |\nBearer " + secret + b".\n"
    hashes = {hashlib.sha256(w.rstrip(b".,;:")).hexdigest() for w in CANDIDATE.findall(text)}
    assert hashlib.sha256(secret).hexdigest() in hashes
