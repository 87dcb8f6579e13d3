"""midshard's built-in Discord emulator: Discord's REST API and attachment CDN on 127.0.0.1, serving
realistic, deterministic Midjourney channels together with the decisions midshard must make about
them (docs/emulator.md).

    from midshard.emulator import EmulatorConfig, running_emulator, generate_truth

The server and generator modules (numpy, Pillow, aiohttp) load on first use, so importing the
config stays cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from midshard.emulator.config import EmulatorConfig

if TYPE_CHECKING:
    from midshard.emulator.running import Emulator, running_emulator, serve
    from midshard.emulator.truth import generate_truth

__all__ = ["Emulator", "EmulatorConfig", "generate_truth", "running_emulator", "serve"]

_LAZY = {
    "Emulator": "running",
    "running_emulator": "running",
    "serve": "running",
    "generate_truth": "truth",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"midshard.emulator.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
