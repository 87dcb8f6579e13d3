"""`midshard scrape` killed with SIGKILL at 20 moments spread over collect, clean and write, then
run again until it completes: the dataset (and the raw store) must be byte-identical to an
uninterrupted run's. Each sequence kills the same data root again and again, so later kills land
on the state earlier ones left; the last kills of each sequence come at seeded random times.

The children share one real Prefect server: an embedded server per child would cost as much again
as the child itself. A kill and resume on the embedded API is in test_proof_secrets.py."""

from __future__ import annotations

import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flows_kit import PrefectServer, emulator_config
from proof_kit import TOKEN, Run, cli_env, files_under, leaks, run_cli, scrape_args

from midshard.emulator import running_emulator
from midshard.emulator.running import Emulator

pytestmark = pytest.mark.prefect

# Small shards and feature batches, so that there are several of each to be killed between.
OPTIONS = ("--set", "shard_max_count=8", "--set", "clean_batch=12")
RANDOM_KILLS = random.Random(20261206)
# Kill points (label:hit, see midshard/killpoints.py) in the order a run meets them; then
# seeded random moments (seconds after the flow run began), which can land anywhere, Prefect's
# own bookkeeping included.
SEQUENCES = {
    "collect": [
        "page_fetched:1",  # a page arrived, no batch written
        "batch_unrenamed:1",  # mid-rename of a batch
        "batch_committed:1",  # a batch in place, its cursor not moved
        "page_fetched:2",  # resumed: both channels page again (their batch writes may overlap)
        "media_body:7",  # mid-download
        "media_stored:6",  # media stored, journal line missing
        "results_written:1",  # a batch's results written, journal not removed
        "features_cached:2",  # two feature batches persisted
        "shard_completed:3",  # three shards complete
        RANDOM_KILLS.uniform(0.5, 8.0),
    ],
    "write": [
        "media_stored:20",
        "features_cached:1",
        "decisions_written:1",  # decisions persisted, nothing written
        "shard_written:1",  # a tar without sidecar or marker
        "sidecar_written:1",  # tar and sidecar, no _stats.json
        "shard_completed:1",
        "rejected_written:1",  # every shard and rejected/, no indexes
        "manifest_written:1",  # manifest, no card, no report
        RANDOM_KILLS.uniform(0.5, 8.0),
        RANDOM_KILLS.uniform(0.5, 8.0),
    ],
}


@pytest.fixture(scope="module")
def emulator(emulator_cache: Path) -> Iterator[Emulator]:
    with running_emulator(emulator_config(emulator_cache, token=TOKEN)) as emulator:
        yield emulator


def _scrape(
    emulator: Emulator, server: PrefectServer, root: Path, logs: Path, kill: str | float | None = None
) -> Run:
    env = cli_env(logs.parent / "prefect-home", api_url=server.api_url)
    return run_cli(
        scrape_args(emulator, root, *OPTIONS),
        env,
        logs,
        kill_at=kill if isinstance(kill, str) else None,
        kill_after_start=kill if isinstance(kill, float) else None,
    )


def _killed_again_and_again(
    emulator: Emulator, server: PrefectServer, root: Path, kills: list[str | float]
) -> list[tuple[str | float | None, Run]]:
    runs = []
    for number, kill in enumerate([*kills, None]):
        runs.append((kill, _scrape(emulator, server, root, root.parent / f"run-{number:02d}", kill)))
    return runs


def test_killed_scrapes_resume_to_the_uninterrupted_bytes(
    emulator: Emulator, prefect_server: PrefectServer, tmp_path: Path
) -> None:
    roots = {name: tmp_path / name / "data" for name in ["baseline", *SEQUENCES]}
    with ThreadPoolExecutor(len(roots)) as pool:  # independent roots: the children run side by side
        baseline = pool.submit(
            _scrape, emulator, prefect_server, roots["baseline"], tmp_path / "baseline" / "run"
        )
        sequences = {
            name: pool.submit(_killed_again_and_again, emulator, prefect_server, roots[name], kills)
            for name, kills in SEQUENCES.items()
        }
        uninterrupted = baseline.result()
        runs = {name: future.result() for name, future in sequences.items()}

    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    expected = files_under(roots["baseline"] / "dataset")
    assert any(name.endswith(".tar") for name in expected)
    expected_raw = files_under(roots["baseline"] / "raw", skip_suffix=(".tmp",))
    for name, sequence in runs.items():
        for kill, run in sequence[:-1]:
            if isinstance(kill, str):  # a kill point must have been reached: it proves the moment
                assert run.killed, f"{name}: {kill} was not reached\n{run.stderr[-3000:]}"
            assert not run.survivors, f"{name}: {kill} left processes behind"
        last = sequence[-1][1]
        assert last.returncode == 0, f"{name}:\n{last.stderr[-3000:]}"
        assert files_under(roots[name] / "dataset") == expected, name
        assert files_under(roots[name] / "raw", skip_suffix=(".tmp",)) == expected_raw, name
        for _, run in sequence:
            assert not leaks((run.stdout + run.stderr).encode(), TOKEN)
