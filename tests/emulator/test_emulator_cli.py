"""`midshard emulator` as a user runs it: a subprocess that prints its URL, answers, and stops by pid."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from emulator_client import fetch

from midshard.emulator import EmulatorConfig, generate_truth
from midshard.emulator.command import emulator_app

MIDSHARD = str(Path(sys.executable).parent / "midshard")


@pytest.mark.slow
def test_serves_until_stopped_by_pid() -> None:
    command = [MIDSHARD, "emulator", "--port", "0", "--seed", "1", "--channels", "1", "--messages", "20"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", first)
        assert match, first
        base = match.group(0)
        me = fetch("GET", f"{base}/api/v10/users/@me")
        stats = fetch("GET", f"{base}/_emulator/stats")
    finally:
        os.kill(process.pid, signal.SIGTERM)
        code = process.wait(timeout=30)
    assert me.status == 200 and me.json()["bot"] is True
    assert stats.json()["requests"]["api"] == 1
    assert code == 0


@pytest.mark.slow
def test_truth_command_writes_the_same_lines(tmp_path: Path) -> None:
    out = tmp_path / "truth.jsonl"
    args = ["emulator", "truth", "--seed", "2", "--channels", "1", "--messages", "40", "--out", str(out)]
    subprocess.run([MIDSHARD, *args], check=True, timeout=120)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == generate_truth(EmulatorConfig(seed=2, channels=1, messages=40))


def test_every_config_field_is_an_option_with_help() -> None:
    command = typer.main.get_command(emulator_app)
    options = {param.name: param for param in command.params}
    assert set(options) == set(EmulatorConfig.model_fields)
    assert all(getattr(option, "help", None) for option in options.values())
