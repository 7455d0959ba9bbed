"""`gridsentinel worker --help` tells which stages exist, one line each, and what runs by default."""

from __future__ import annotations

import pytest

from gridsentinel.cli import build_parser
from gridsentinel.worker.stages import STAGES

pytestmark = pytest.mark.unit


def test_worker_help_lists_every_stage_and_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["worker", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    stage_lines = {name: [ln for ln in lines if ln.split()[:1] == [name]] for name in STAGES}
    assert all(len(found) == 1 for found in stage_lines.values()), stage_lines  # one line per stage
    assert all(len(found[0].split()) > 3 for found in stage_lines.values())  # ... saying what it does
    assert "runs only `ingest`" in " ".join(text.split())


def test_every_benchmark_parses_its_own_options(capsys: pytest.CaptureFixture[str]) -> None:
    """The parser imports only the benchmark a command names; each one still builds and takes --json."""
    from gridsentinel.cli import BENCHMARKS

    for name in BENCHMARKS:
        with pytest.raises(SystemExit) as exit_info:
            build_parser(["bench", name, "--help"]).parse_args(["bench", name, "--help"])
        assert exit_info.value.code == 0
        assert "--json" in capsys.readouterr().out
    build_parser(all_benchmarks=True)  # every benchmark's options together: no clash, every module imports


def test_heavy_commands_are_listed_and_built_when_named(capsys: pytest.CaptureFixture[str]) -> None:
    """`report`, `patrol` and `forecast` (scipy, scikit-learn) are only listed unless named; named, their options
    exist."""
    for argv, option in ((["report", "weekly", "--help"], "--week"), (["patrol", "plan", "--help"], "--inspectors"),
                         (["forecast", "models", "--help"], "--limit")):
        with pytest.raises(SystemExit) as exit_info:
            build_parser(argv).parse_args(argv)
        assert exit_info.value.code == 0
        assert option in capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser(["--help"]).parse_args(["--help"])
    listing = capsys.readouterr().out
    assert "report" in listing and "patrol" in listing and "forecast" in listing
