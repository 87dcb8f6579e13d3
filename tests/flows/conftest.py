"""Fixtures of the flow tests: one real `prefect server start` for the whole session, the Discord
emulator with small channels (generated files cached for the session), and one scrape of it that
several tests read."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flows_kit import (
    TOKEN,
    PrefectServer,
    Scraped,
    dataset_files,
    drain_prefect_workers,
    emulator_config,
    flow_settings,
    start_prefect_server,
    stop,
)

from midshard.collectors.emulator import running_emulator


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real Prefect server on 127.0.0.1 (scheduler on) that this process and its children use.

    Prefect reads its settings once, at import: the URL goes into the live settings context for
    this process and into the environment for the processes it starts (Dask workers, the CLI).
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = start_prefect_server(tmp_path_factory.mktemp("prefect-server"))
    previous = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server
            drain_prefect_workers()  # queued logs/events, else they retry a dead server at exit
    finally:
        os.environ["PREFECT_API_URL"] = previous or ""
        stop(server.process)


@pytest.fixture(scope="session")
def bot_token() -> Iterator[str]:
    """The emulator's token in DISCORD_BOT_TOKEN, where tasks (and Dask workers) read it."""
    os.environ["DISCORD_BOT_TOKEN"] = TOKEN
    yield TOKEN
    os.environ.pop("DISCORD_BOT_TOKEN", None)


@pytest.fixture(scope="session")
def emulator_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated files shared by every emulator of the session (same seed, same bytes)."""
    return tmp_path_factory.mktemp("emulator-cache")


@pytest.fixture(scope="session")
def scraped(
    prefect_server: PrefectServer,
    bot_token: str,
    emulator_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scraped]:
    """The scrape flow run once against the emulator; what it wrote and what the emulator knew
    then are kept, so tests that later grow the emulator or add data do not disturb the others."""
    from midshard.flows.pipeline import scrape

    root = tmp_path_factory.mktemp("scraped") / "data"
    with running_emulator(emulator_config(emulator_cache)) as emulator:
        settings = flow_settings(emulator, root)
        state = scrape(settings, return_state=True)
        yield Scraped(
            emulator=emulator,
            settings=settings,
            root=root,
            truth=emulator.truth(),
            dataset=dataset_files(root),
            result=state.result(),
            flow_run_id=state.state_details.flow_run_id,
        )
