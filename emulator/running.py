"""Running the emulator: on 127.0.0.1 in a background thread (`running_emulator`, for tests, the demo
and benchmarks) or in the foreground until a signal (`serve`, the `midshard emulator` command).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from aiohttp import web

from midshard.emulator.config import EmulatorConfig
from midshard.emulator.server import API_PREFIXES, EmulatorServer
from midshard.emulator.state import EmulatorState
from midshard.emulator.truth import TruthBuilder


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class Emulator:
    """A running emulator: `base_url`, `api_base`, ids, and thread-safe `stats/grow/truth`."""

    def __init__(self, cfg: EmulatorConfig) -> None:
        self.config = cfg
        self.state = EmulatorState(cfg)
        self._sock = _listen(cfg.port)
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_base = self.base_url + API_PREFIXES[0]
        self.guild_id = self.state.world.guild_id
        self.channel_ids = [stream.id for stream in self.state.world.channels]
        self.thread_ids = [stream.id for stream in self.state.world.threads]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    async def _start(self) -> None:
        self._runner = web.AppRunner(
            EmulatorServer(self.state).app(self.base_url), access_log=None, handle_signals=False
        )
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()

    def start(self) -> Emulator:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as error:  # reported to the starting thread
                failure.append(error)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            assert self._runner is not None
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="midshard-emulator", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
        self._sock.close()

    def _call(self, function: Callable[[], Any]) -> Any:
        """Run `function` on the server's loop (where all state lives) and return its result;
        directly once the emulator has stopped."""
        if self._loop is None or self._loop.is_closed() or not self._loop.is_running():
            return function()

        async def call() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(timeout=60)

    def stats(self) -> dict[str, Any]:
        return self._call(self.state.stats)

    def reset_stats(self) -> None:
        self._call(self.state.reset_stats)

    def grow(self, n: int) -> None:
        self._call(lambda: self.state.grow(n))

    def truth(self) -> list[dict[str, Any]]:
        """Truth lines for what is served now (after every `grow`)."""
        grown = self._call(lambda: self.state.grown)
        return list(TruthBuilder(self.config, self.state.traffic).lines(grown))


@contextmanager
def running_emulator(cfg: EmulatorConfig | None = None) -> Iterator[Emulator]:
    """Serve the emulator on 127.0.0.1 in a background thread for the duration of the block."""
    emulator = Emulator(cfg or EmulatorConfig()).start()
    try:
        yield emulator
    finally:
        emulator.stop()


def serve(cfg: EmulatorConfig, announce: Callable[[Emulator], None]) -> None:
    """Serve in the foreground until SIGINT or SIGTERM (the `midshard emulator` command)."""
    emulator = Emulator(cfg)

    async def main() -> None:
        await emulator._start()
        announce(emulator)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with suppress(NotImplementedError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        assert emulator._runner is not None
        await emulator._runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        emulator._sock.close()
