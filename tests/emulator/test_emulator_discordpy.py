"""An unmodified discord.py 2.7 client (HTTP only, Route.BASE redirected) against the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import discord
import pytest
from discord.http import Route

from midshard.emulator.running import Emulator


def with_client(emu: Emulator, body: Callable[[discord.Client], Awaitable[Any]]) -> Any:
    """Log in through the emulator, run `body`, close; Route.BASE is restored afterwards."""
    original = Route.BASE
    Route.BASE = emu.api_base

    async def run() -> Any:
        client = discord.Client(intents=discord.Intents.none())
        await client.login("secret")
        try:
            return await body(client)
        finally:
            await client.close()

    try:
        return asyncio.run(run())
    finally:
        Route.BASE = original


@pytest.mark.slow
def test_history_reads_every_message_once_oldest_first(emulator) -> None:
    base_before = Route.BASE  # process-global: other tests' clients may have pointed it elsewhere
    with emulator(
        seed=3, channels=1, messages=1000, token="secret", history_limit=5, history_window=0.2
    ) as emu:

        async def read(client: discord.Client) -> list[discord.Message]:
            channel = await client.fetch_channel(emu.channel_ids[0])
            assert isinstance(channel, discord.TextChannel)
            return [message async for message in channel.history(limit=None, oldest_first=True)]

        messages = with_client(emu, read)
        stats = emu.stats()
        truth_ids = [int(line["id"]) for line in emu.truth()]

    ids = [message.id for message in messages]
    assert ids == truth_ids  # all 1000, each once, ascending
    assert stats["rate_limited"] == {"user": 0, "global": 0, "shared": 0}  # honest headers: no 429
    assert stats["routes"]["GET /channels/{channel_id}/messages"] == 11  # 10 full pages + the empty one
    assert base_before == Route.BASE  # restored


def test_history_newest_first_pages_with_before(emulator) -> None:
    with emulator(seed=4, channels=2, messages=250, history_window=0.2) as emu:

        async def read(client: discord.Client) -> tuple[list[int], list[int]]:
            channel = await client.fetch_channel(emu.channel_ids[1])
            newest_first = [m.id async for m in channel.history(limit=None)]
            middle = newest_first[120]
            older = [m.id async for m in channel.history(limit=30, before=discord.Object(middle))]
            return newest_first, older

        newest_first, older = with_client(emu, read)
        served = [int(line["id"]) for line in emu.truth() if line["channel_id"] == str(emu.channel_ids[1])]

    assert newest_first == served[::-1]
    assert older == newest_first[121:151]


def test_attachment_read_and_fields(emulator) -> None:
    with emulator(seed=5, channels=1, messages=60, token="secret", history_window=0.2) as emu:

        async def read(client: discord.Client) -> tuple[discord.Message, bytes, bytes]:
            channel = await client.fetch_channel(emu.channel_ids[0])
            messages = [m async for m in channel.history(limit=None)]
            upscale = next(m for m in messages if "Image #" in m.content or "Upscaled" in m.content)
            attachment = upscale.attachments[0]
            return upscale, await attachment.read(), await attachment.read(use_cached=True)

        message, original, proxied = with_client(emu, read)

    attachment = message.attachments[0]
    assert len(original) == attachment.size and original == proxied
    assert original.startswith((b"\x89PNG\r\n\x1a\n", b"RIFF"))
    assert message.author.id == 936929561302675456 and message.author.bot
    assert message.reference is not None and message.reference.message_id is not None
    assert message.components  # Vary / Upscale / Web buttons were parsed


@pytest.mark.slow
def test_expired_link_is_not_found_until_refreshed(emulator) -> None:
    """discord.py maps the CDN's 404 to NotFound; a re-fetched message carries a fresh link."""
    with emulator(seed=6, channels=1, messages=40, link_ttl=1.0) as emu:

        async def read(client: discord.Client) -> bytes:
            channel = await client.fetch_channel(emu.channel_ids[0])
            with_files = [m async for m in channel.history(limit=50) if m.attachments]
            message = with_files[-1]
            await asyncio.sleep(2.2)  # let the 1 s link expire
            with pytest.raises(discord.NotFound):
                await message.attachments[0].read()
            fresh = await channel.fetch_message(message.id)
            return await fresh.attachments[0].read()

        data = with_client(emu, read)
    assert len(data) > 0
