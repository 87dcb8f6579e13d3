"""deploy/prefect.yaml as a user runs it: a `process` work pool on the session's Prefect server,
`prefect deploy` of the real file, the monthly cron, a run triggered with `prefect deployment run`
and executed by a real `prefect worker start` process against the Discord emulator."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
from flows_kit import (
    PREFECT,
    TOKEN,
    PrefectServer,
    emulator_config,
    kept_keys,
    prefect_env,
    rejected_decisions,
    stop,
    truth_decisions,
    write_toml,
)
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
from prefect.client.schemas.objects import FlowRun

from midshard.emulator import running_emulator

pytestmark = pytest.mark.prefect

REPO = Path(__file__).resolve().parents[2]
PREFECT_YAML = REPO / "deploy" / "prefect.yaml"
POOL = "midshard-process"
DEPLOYMENT = "midshard-refresh/monthly"
RUN_DEADLINE = 300  # seconds: a bound for a stuck worker, not a speed target


@contextmanager
def process_worker(server: PrefectServer, home: Path, workdir: Path, log: Path) -> Iterator[None]:
    """`prefect worker start` on the pool, with the bot token in its environment; stopped by
    process group on exit."""
    env = prefect_env(server.api_url, home) | {
        "DISCORD_BOT_TOKEN": TOKEN,
        "MIDSHARD_WORKDIR": str(workdir),
        "PREFECT_WORKER_QUERY_SECONDS": "1",  # poll often: the test waits for the run
    }
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [*PREFECT, "worker", "start", "--pool", POOL, "--limit", "1"],
            env=env,
            cwd=log.parent,  # not the workdir: the deployment's pull step must move there
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield
    finally:
        stop(worker)


def wait_until_final(client: SyncPrefectClient, run_id: UUID) -> FlowRun:
    deadline = time.monotonic() + RUN_DEADLINE
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        if run.state is not None and run.state.is_final():
            return run
        time.sleep(1)
    raise AssertionError(f"flow run {run_id} not finished in {RUN_DEADLINE} s")


def scheduled_starts(client: SyncPrefectClient, deployment_id: UUID) -> list[datetime]:
    """Start times of the runs the server's scheduler created for the deployment (it fills its
    horizon a few seconds after a deploy; bounded wait)."""
    deadline = time.monotonic() + 120
    while True:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
        starts = sorted(
            run.expected_start_time.astimezone(UTC)
            for run in runs
            if run.state is not None and run.state.is_scheduled() and run.expected_start_time
        )
        if len(starts) >= 2 or time.monotonic() > deadline:
            return starts
        time.sleep(1)


def test_deployment_runs_the_monthly_refresh_on_a_process_worker(
    prefect_server: PrefectServer, emulator_cache: Path, tmp_path: Path
) -> None:
    workdir, worker_log = tmp_path / "work", tmp_path / "worker.log"
    workdir.mkdir()
    with running_emulator(emulator_config(emulator_cache, channels=1, messages=30)) as emulator:
        config = write_toml(
            tmp_path / "midshard.toml",
            {
                "root": "./data",  # relative: resolved in the worker's MIDSHARD_WORKDIR
                "api_base": emulator.api_base,
                "channels": emulator.channel_ids,
                "clean_workers": 1,
            },
        )
        prefect_server.cli("work-pool", "create", POOL, "--type", "process")
        deploy_env = prefect_env(prefect_server.api_url, prefect_server.home)
        deploy_env["MIDSHARD_CONFIG"] = str(config)
        deploy_env.pop("DISCORD_BOT_TOKEN", None)  # deploying needs no token

        with (
            process_worker(prefect_server, tmp_path / "worker-home", workdir, worker_log),
            get_client(sync_client=True) as client,
        ):
            prefect_server.cli(
                "deploy", "--prefect-file", str(PREFECT_YAML), "--all", cwd=tmp_path, env=deploy_env
            )
            deployment = client.read_deployment_by_name(DEPLOYMENT)
            assert deployment.work_pool_name == POOL
            assert deployment.parameters == {"config": str(config), "overrides": {}}
            assert [(s.schedule.cron, s.schedule.timezone, s.active) for s in deployment.schedules] == [
                ("0 3 1 * *", "UTC", True)
            ]
            assert TOKEN not in deployment.model_dump_json()

            answer = prefect_server.cli("deployment", "run", DEPLOYMENT)
            run_id = UUID(re.search(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}", answer).group(0))
            run = wait_until_final(client, run_id)
            log = worker_log.read_text(errors="replace")
            assert run.state is not None and run.state.is_completed(), f"{run.state}\n{log[-4000:]}"

            # the scheduler's own runs: 03:00 UTC on the 1st of the coming months
            starts = scheduled_starts(client, deployment.id)
            assert len(starts) >= 2
            assert {(start.day, start.hour, start.minute) for start in starts} == {(1, 3, 0)}, starts
            assert len({start.month for start in starts}) == len(starts)

        truth = truth_decisions(emulator.truth())

    assert TOKEN not in worker_log.read_text(errors="replace")
    root = workdir / "data"
    assert sorted((root / "dataset").glob("*.tar"))
    assert kept_keys(root) == {key for key, decision in truth.items() if decision == "keep"}
    assert rejected_decisions(root) == {k: d for k, d in truth.items() if d != "keep"}
