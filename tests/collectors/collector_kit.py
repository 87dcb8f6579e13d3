"""Helpers of the collector tests that talk to the Discord emulator."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from midshard.emulator import EmulatorConfig, running_emulator
from midshard.emulator.running import Emulator
from midshard.settings import Settings

TOKEN = "emu-Tok3n.Never-Printed_8f2c91"


@contextmanager
def running(cfg: EmulatorConfig, frozen: bool = False) -> Iterator[Emulator]:
    """The emulator on 127.0.0.1; `frozen` signs every listed link as issued at start, so two
    collections of the same channels can be compared byte for byte."""
    if frozen:
        cfg = cfg.model_copy(update={"signing_epoch": float(int(time.time()))})
    with running_emulator(cfg) as emulator:
        yield emulator


@dataclass(frozen=True)
class EmulatorProcess:
    """`midshard emulator` in a child process: what a collector in this process needs of it."""

    api_base: str
    channel_ids: list[int]


@contextmanager
def emulator_process(cache: Path, **options: object) -> Iterator[EmulatorProcess]:
    """The emulator in its own process (`emulator_config` values), so that what this process
    allocates is the collector's alone; stopped by pid."""
    config = emulator_config(cache, **options)
    command = [sys.executable, "-m", "midshard.flows.cli", "emulator", "--port", "0"]
    for name, value in config.model_dump(exclude_defaults=True).items():
        value = config.token_value() if name == "token" else value
        command += [f"--{name.replace('_', '-')}", str(value)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = {}
        for line in process.stdout:
            key, _, value = line.strip().partition(":")
            lines[key] = value.strip()
            if key == "stats":
                break
        yield EmulatorProcess(lines["api base"].split()[0], [int(c) for c in lines["channels"].split()])
    finally:
        process.terminate()
        process.wait(timeout=30)


def emulator_config(cache: Path, **overrides: object) -> EmulatorConfig:
    """Small channels, short rate-limit windows; faults off unless asked for."""
    values: dict = {"seed": 1, "channels": 2, "messages": 150, "token": TOKEN, "history_window": 0.5}
    return EmulatorConfig(**(values | {"cache_dir": cache} | overrides))


def collect_settings(emulator: Emulator | EmulatorProcess, root: Path, **overrides: object) -> Settings:
    """Settings for a run against the emulator. Attachments above 300 kB are refused before any
    request (`too_large`), which keeps the downloads to small files."""
    values: dict = {
        "root": str(root),
        "api_base": emulator.api_base,
        "channels": emulator.channel_ids,
        "token": SecretStr(TOKEN),
        "download": "all",
        "max_file_size": 300_000,
        "download_backoff": 0.01,
    }
    return Settings.load(**(values | overrides))


def served_message(emulator: Emulator, channel_id: int, index: int, now: float | None = None) -> dict:
    """The JSON the emulator serves for a message, its links signed at `now` (default: its clock)."""
    state = emulator.state
    stream = state.world.stream(channel_id)
    assert stream is not None and state.renderer is not None
    return state.renderer.message(state.traffic.message(stream, index), now or state.signing_time())


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
