"""`midshard demo`: the built-in Discord emulator on 127.0.0.1 with realistic Midjourney traffic,
and the real scrape flow run against it on the embedded Prefect API. No token, no network."""

from __future__ import annotations

import os
from collections.abc import Callable

from midshard.emulator import EmulatorConfig, running_emulator
from midshard.settings import Settings

DEMO_TOKEN = "midshard-demo-token"  # the emulator's own token: it only opens the local emulator


FlowRunner = Callable[[str, Settings, dict[str, object]], None]


def run_demo(settings: Settings, *, seed: int, channels: int, messages: int, run: FlowRunner) -> None:
    """Serve `channels` x `messages` emulated messages and scrape them into `settings.root`."""
    config = EmulatorConfig(seed=seed, channels=channels, messages=messages, token=DEMO_TOKEN)
    with running_emulator(config) as emulator:
        print(f"Discord emulator serving {emulator.api_base} ({channels} channels x {messages} messages)")
        os.environ["DISCORD_BOT_TOKEN"] = DEMO_TOKEN
        demo_settings = settings.model_copy(
            update={"api_base": emulator.api_base, "channels": emulator.channel_ids}
        )
        run("scrape", demo_settings, {"settings": demo_settings})
