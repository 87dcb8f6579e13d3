"""What a Discord session does around its requests: it paces them to the global rate limit
(discord.py waits it out only after a global 429), counted at the moment each is sent, and it
makes young GC passes rare while pages are parsed."""

from __future__ import annotations

import asyncio
import gc
import time
from pathlib import Path

import aiohttp
import pytest
from collector_kit import TOKEN, collect_settings, emulator_config, running
from pydantic import SecretStr

from midshard.collectors.history import DiscordSession
from midshard.collectors.pacer import RequestPacer

BURST = 24
LIMIT = 8  # requests per second, for the emulator and the pacer alike


def _burst(url: str, pacer: RequestPacer | None) -> None:
    """`BURST` concurrent API requests on one session, paced or not."""

    async def run() -> None:
        traces = [pacer.trace_config()] if pacer is not None else []
        async with aiohttp.ClientSession(trace_configs=traces) as session:

            async def one() -> None:
                async with session.get(url, headers={"Authorization": f"Bot {TOKEN}"}) as response:
                    await response.read()

            await asyncio.gather(*(one() for _ in range(BURST)))

    asyncio.run(run())


@pytest.mark.slow
def test_the_pacer_keeps_a_burst_within_the_global_limit(emulator_cache: Path) -> None:
    with running(emulator_config(emulator_cache, channels=1, global_limit=LIMIT)) as emulator:
        url = f"{emulator.api_base}/users/@me"
        _burst(url, None)
        unpaced = emulator.stats()["rate_limited"]["global"]
        time.sleep(1.0)  # the emulator's global window is over
        emulator.reset_stats()
        _burst(url, RequestPacer(limit=LIMIT))
        paced = emulator.stats()
    assert unpaced > 0
    assert paced["rate_limited"]["global"] == 0
    assert paced["responses"]["200"] == BURST


def test_young_collections_are_rare_while_sessions_are_open(tmp_path: Path, emulator_cache: Path) -> None:
    before = gc.get_threshold()
    with running(emulator_config(emulator_cache, channels=1)) as emulator:
        settings = collect_settings(emulator, tmp_path)

        async def overlapping_sessions() -> list[tuple[int, int, int]]:
            seen = []
            async with DiscordSession(settings, SecretStr(TOKEN)):
                seen.append(gc.get_threshold())
                async with DiscordSession(settings, SecretStr(TOKEN)):
                    seen.append(gc.get_threshold())
                seen.append(gc.get_threshold())  # the other session is still open
            return seen

        seen = asyncio.run(overlapping_sessions())
    assert seen == [(max(before[0], 50_000), *before[1:])] * 3
    assert gc.get_threshold() == before
