"""The control endpoints under /_emulator that tests, the demo and benchmarks use: stats and their
reset, growing every channel, the truth for what is served now, and the config (token masked).
"""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from midshard.emulator.responses import json_response
from midshard.emulator.state import EmulatorState
from midshard.emulator.truth import TruthBuilder


class ControlRoutes:
    """HTTP access to `EmulatorState.stats/reset_stats/grow`, the truth and the config."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def add_to(self, app: web.Application) -> None:
        app.router.add_get("/_emulator/stats", self._stats)
        app.router.add_post("/_emulator/reset-stats", self._reset_stats)
        app.router.add_post("/_emulator/grow", self._grow)
        app.router.add_get("/_emulator/truth", self._truth)
        app.router.add_get("/_emulator/config", self._config)

    async def _stats(self, _request: web.Request) -> web.Response:
        return json_response(200, self.state.stats())

    async def _reset_stats(self, _request: web.Request) -> web.Response:
        self.state.reset_stats()
        return json_response(200, {"ok": True})

    async def _grow(self, request: web.Request) -> web.Response:
        try:
            n = int(request.query.get("n") or (await request.json()).get("n", 0))
            self.state.grow(n)
        except (ValueError, TypeError, AttributeError):
            return json_response(400, {"message": 'grow needs a non-negative n (?n=10 or {"n": 10})'})
        return json_response(200, {"grown": self.state.grown, "messages": self.state.stats()["messages"]})

    async def _truth(self, _request: web.Request) -> web.Response:
        builder = TruthBuilder(self.state.cfg, self.state.traffic)
        lines = await asyncio.get_running_loop().run_in_executor(None, list, builder.lines(self.state.grown))
        body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        return web.Response(body=body.encode(), headers={"Content-Type": "application/x-ndjson"})

    async def _config(self, _request: web.Request) -> web.Response:
        cfg = self.state.cfg
        public = cfg.model_dump(mode="json") | {"token": "***" if cfg.token else None}
        return json_response(200, public)
