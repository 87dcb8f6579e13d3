"""Fixtures of the emulator tests: a fresh emulator per config, stopped afterwards."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest

from midshard.emulator import EmulatorConfig, running_emulator
from midshard.emulator.running import Emulator


@pytest.fixture
def emulator() -> Callable[..., AbstractContextManager[Emulator]]:
    """`with emulator(seed=..., ...) as emu:` (fields of EmulatorConfig)."""

    def start(**fields: Any) -> AbstractContextManager[Emulator]:
        return running_emulator(EmulatorConfig(**fields))

    return start
