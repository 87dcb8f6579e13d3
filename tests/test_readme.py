"""The README's two setup commands are the ones that work: CI runs exactly the test command, the
demo command installs the package and runs `midshard demo`, and every command it lists exists."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from midshard.flows.cli import app

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _code_lines() -> list[str]:
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.DOTALL)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert ci_command in _code_lines()
    assert ci_command.endswith("python -m pytest")


def test_readme_demo_command_installs_and_runs_the_demo() -> None:
    demo = [line for line in _code_lines() if line.endswith("midshard demo")]
    assert demo == ["python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/midshard demo"]


def test_every_command_in_the_readme_table_has_help() -> None:
    listed = set(re.findall(r"^\| `midshard ([a-z-]+)", README, flags=re.MULTILINE))
    assert {
        "demo",
        "scrape",
        "refresh",
        "rebuild",
        "import-export",
        "collect",
        "explain",
        "emulator",
    } <= listed
    for command in sorted(listed):
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output
