"""Fixtures of the flow tests: the bot token in the environment and one scrape of the emulator that
several tests read (the Prefect server and emulator cache come from tests/conftest.py)."""

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
    emulator_config,
    flow_settings,
)

from midshard.emulator import running_emulator


@pytest.fixture(scope="session")
def bot_token() -> Iterator[str]:
    """The emulator's token in DISCORD_BOT_TOKEN, where tasks (and Dask workers) read it."""
    os.environ["DISCORD_BOT_TOKEN"] = TOKEN
    yield TOKEN
    os.environ.pop("DISCORD_BOT_TOKEN", None)


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
