"""History pages are asked again (1, 2, 4 s apart, `history_retries` times) after transient
failures discord.py does not retry itself; other failures are not retried.

The emulator's faults are a pure function of (seed, path, attempt), so each test picks, from the
fault plan itself, a seed whose login goes through and whose first page fails the way it needs.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from collector_kit import TOKEN, collect_settings, emulator_config, running, served_message
from pydantic import SecretStr

from midshard.collectors.history import DiscordError, DiscordSession
from midshard.emulator import EmulatorConfig
from midshard.emulator.faults import Faults
from midshard.emulator.server import API_PREFIXES
from midshard.emulator.world import World
from midshard.settings import Settings

LOGIN_PATHS = ("/users/@me", "/oauth2/applications/@me")
RESETS = {"fault_reset": 0.6, "api_body_faults": True}


def _failing_attempts(config: EmulatorConfig, path: str) -> int:
    """How many attempts at `path` in a row the emulator breaks, from the first."""
    plan = Faults(config).plan
    attempt = 1
    while plan(API_PREFIXES[0] + path, attempt, api=True).fired():
        attempt += 1
    return attempt - 1


def _config_whose_first_page_fails(cache: Path, failures: int) -> EmulatorConfig:
    """The first seed whose login answers at once and whose first page of channel 0 breaks
    `failures` times in a row."""
    for seed in range(1, 500):
        config = emulator_config(cache, seed=seed, channels=1, messages=60, **RESETS)
        channel = World(config).channels[0].id
        if all(_failing_attempts(config, path) == 0 for path in LOGIN_PATHS) and (
            _failing_attempts(config, f"/channels/{channel}/messages") == failures
        ):
            return config
    raise AssertionError(f"no seed breaks the first page exactly {failures} times")


async def _first_page(settings: Settings, channel_id: int) -> list[dict]:
    async with DiscordSession(settings, SecretStr(TOKEN)) as session:
        return await session.page_after(channel_id, 0)


def _waits(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage().rsplit("asking again in ", 1)[1]
        for r in caplog.records
        if "asking again" in r.getMessage()
    ]


@pytest.mark.slow
def test_a_page_broken_twice_is_read_on_the_third_attempt(
    tmp_path: Path, emulator_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config_whose_first_page_fails(emulator_cache, failures=2)
    with running(config) as emulator, caplog.at_level(logging.WARNING, "midshard.collect"):
        settings = collect_settings(emulator, tmp_path, history_retries=3)
        channel = emulator.channel_ids[0]
        page = asyncio.run(_first_page(settings, channel))
        served = emulator.stats()
    assert [m["id"] for m in page] == [served_message(emulator, channel, i)["id"] for i in range(60)]
    assert served["faults"]["reset"] == 2
    assert served["routes"]["GET /channels/{channel_id}/messages"] == 3
    assert _waits(caplog) == ["1 s", "2 s"]
    assert TOKEN not in caplog.text


def test_retries_end_after_history_retries(
    tmp_path: Path, emulator_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = _config_whose_first_page_fails(emulator_cache, failures=2)
    with running(config) as emulator, caplog.at_level(logging.WARNING, "midshard.collect"):
        settings = collect_settings(emulator, tmp_path, history_retries=1)
        with pytest.raises(DiscordError) as failure:
            asyncio.run(_first_page(settings, emulator.channel_ids[0]))
        served = emulator.stats()
    assert failure.value.transient and failure.value.status == 0
    assert served["routes"]["GET /channels/{channel_id}/messages"] == 2
    assert _waits(caplog) == ["1 s"]


def test_a_refused_page_is_not_asked_again(
    tmp_path: Path, emulator_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with running(emulator_config(emulator_cache, channels=1)) as emulator, caplog.at_level(logging.WARNING):
        settings = collect_settings(emulator, tmp_path, history_retries=3)
        unknown = emulator.channel_ids[0] + 1
        with pytest.raises(DiscordError) as failure:
            asyncio.run(_first_page(settings, unknown))
        served = emulator.stats()
    assert failure.value.status == 404 and not failure.value.transient
    assert served["routes"]["GET /channels/{channel_id}/messages"] == 1
    assert _waits(caplog) == []
