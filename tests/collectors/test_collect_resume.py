"""`midshard collect` killed with SIGKILL at each commit point, then rerun: the raw store must be
byte-identical to an uninterrupted run's (nothing lost, nothing duplicated, nothing left over)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector_kit import TOKEN, collect_settings, emulator_config, files_under, running

from midshard.collectors.collect import collect
from midshard.emulator.running import Emulator

# (kill point, which hit): see midshard/killpoints.py
KILLS = [
    ("page_fetched", 2),  # mid-page
    ("batch_unrenamed", 2),  # mid-rename
    ("batch_committed", 3),  # between the rename and the cursor
    ("media_body", 4),  # mid-download
    ("media_stored", 5),  # between the media file and its journal line
    ("results_written", 2),  # between the results file and the journal removal
]


@pytest.fixture(scope="module")
def emulator(emulator_cache: Path) -> Iterator[Emulator]:
    with running(emulator_config(emulator_cache, channels=2, messages=150), frozen=True) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def uninterrupted(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("uninterrupted")
    collect(collect_settings(emulator, root))
    files = files_under(root)
    assert any(name.startswith("raw/media/") for name in files)
    return files


def midshard_collect(
    emulator: Emulator, root: Path, kill_at: str | None = None
) -> subprocess.CompletedProcess:
    """`midshard collect` in a child process, with the settings of `collect_settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIDSHARD_")}
    env |= {"DISCORD_BOT_TOKEN": TOKEN, "MIDSHARD_MAX_FILE_SIZE": "300000"}
    env |= {"MIDSHARD_DOWNLOAD_BACKOFF": "0.01"}
    if kill_at:
        env["MIDSHARD_TEST_KILL_AT"] = kill_at
    channels = [arg for channel_id in emulator.channel_ids for arg in ("--channel", str(channel_id))]
    command = [sys.executable, "-m", "midshard.flows.cli", "collect", *channels]
    command += ["--out", str(root), "--api-base", emulator.api_base, "--download", "all"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.parametrize(("label", "hit"), KILLS, ids=[label for label, _ in KILLS])
def test_killed_run_resumes_to_the_same_bytes(
    emulator: Emulator, uninterrupted: dict[str, bytes], tmp_path: Path, label: str, hit: int
) -> None:
    root = tmp_path / "data"
    killed = midshard_collect(emulator, root, kill_at=f"{label}:{hit}")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    interrupted = files_under(root)
    assert interrupted != uninterrupted

    resumed = midshard_collect(emulator, root)
    assert resumed.returncode == 0, resumed.stderr
    assert files_under(root) == uninterrupted
    for output in (killed.stdout, killed.stderr, resumed.stdout, resumed.stderr):
        assert TOKEN not in output
