"""Fault injection. Each decision is a pure function of (seed, fault kind, request path without the
query, attempt number of that path), so a rerun or a different request interleaving fails the same
requests; only the per-path attempt counter lives on the server.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from dataclasses import dataclass

from aiohttp import web

from midshard.emulator.config import EmulatorConfig
from midshard.emulator.determinism import draw

SERVER_ERRORS = (500, 502, 504)
DRIBBLE_BYTES = 1024  # a dribbling body: this much ...
DRIBBLE_PAUSE = 0.1  # ... every this many seconds, so a client's read timeout never fires


@dataclass(frozen=True)
class FaultPlan:
    status: int | None = None  # 500/502/504 instead of the real answer
    reset: bool = False  # send part of the body, then reset the connection
    truncate: bool = False  # promise the full Content-Length, send part, then close
    delay: float = 0.0  # seconds before answering
    shared_429: bool = False  # API only: a 429 with scope "shared"
    dribble: bool = False  # CDN only: the body trickles in small pieces

    def fired(self) -> list[str]:
        names = [("5xx", self.status is not None), ("reset", self.reset), ("truncate", self.truncate)]
        names += [("slow", self.delay > 0), ("shared_429", self.shared_429), ("dribble", self.dribble)]
        return [name for name, on in names if on]


class Faults:
    def __init__(self, cfg: EmulatorConfig) -> None:
        self.cfg = cfg
        self.attempts: Counter[str] = Counter()

    def _fires(self, kind: str, path: str, attempt: int, rate: float) -> bool:
        return rate > 0 and draw(self.cfg.seed, kind, path, attempt) < rate

    def next_plan(self, path: str, *, api: bool) -> FaultPlan:
        """Count one more attempt at `path` and decide its faults."""
        self.attempts[path] += 1
        return self.plan(path, self.attempts[path], api=api)

    def plan(self, path: str, attempt: int, *, api: bool) -> FaultPlan:
        cfg = self.cfg
        body_faults = not api or cfg.api_body_faults
        status = None
        if self._fires("5xx", path, attempt, cfg.fault_5xx):
            status = SERVER_ERRORS[int(draw(cfg.seed, "5xx-status", path, attempt) * len(SERVER_ERRORS))]
        reset = status is None and body_faults and self._fires("reset", path, attempt, cfg.fault_reset)
        truncate = (
            status is None
            and not reset
            and body_faults
            and self._fires("truncate", path, attempt, cfg.fault_truncate)
        )
        delay = cfg.slow_seconds if self._fires("slow", path, attempt, cfg.fault_slow) else 0.0
        shared = api and status is None and self._fires("shared", path, attempt, cfg.shared_429_rate)
        dribble = (
            not api
            and status is None
            and not (reset or truncate)
            and self._fires("dribble", path, attempt, cfg.fault_dribble)
        )
        return FaultPlan(status, reset, truncate, delay, shared, dribble)

    def gone(self, attachment_id: int) -> bool:
        """Attachments deleted for good: chosen by hashing the id, so the set never changes."""
        return self._fires("gone", "attachment", attachment_id, self.cfg.gone_rate)


async def dribble(request: web.Request, full: web.Response) -> web.StreamResponse:
    """Send `full` honestly but slowly, until it is done or the client gives up."""
    body = bytes(full.body)  # type: ignore[arg-type]
    response = web.StreamResponse(status=full.status, headers=full.headers)
    response.content_length = len(body)
    await response.prepare(request)
    for start in range(0, len(body), DRIBBLE_BYTES):
        await response.write(body[start : start + DRIBBLE_BYTES])
        await asyncio.sleep(DRIBBLE_PAUSE)
    return response


async def broken_body(request: web.Request, full: web.Response, plan: FaultPlan) -> web.StreamResponse:
    """Promise the whole body, send part of it, then reset (RST) or close (FIN) the connection."""
    body = bytes(full.body)  # type: ignore[arg-type]
    response = web.StreamResponse(status=full.status, headers=full.headers)
    response.content_length = len(body)
    await response.prepare(request)
    await response.write(body[: len(body) // 3 if plan.reset else len(body) // 2])
    transport = request.transport
    if transport is not None:
        if plan.reset:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        else:
            transport.close()
    return response
