"""A tiny raw HTTP client for the emulator tests (aiohttp, one session per call batch)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

AUTH = {"Authorization": "Bot secret"}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def fetch_all(requests: list[tuple[str, str, dict[str, Any]]]) -> list[Reply | BaseException]:
    """Run (method, url, kwargs) requests in order on one session; errors are returned, not raised."""

    async def run() -> list[Reply | BaseException]:
        out: list[Reply | BaseException] = []
        async with aiohttp.ClientSession() as session:
            for method, url, kwargs in requests:
                try:
                    async with session.request(method, url, **kwargs) as response:
                        body = await response.read()
                        out.append(Reply(response.status, dict(response.headers), body))
                except (aiohttp.ClientError, OSError) as error:
                    out.append(error)
        return out

    return asyncio.run(run())


def fetch(method: str, url: str, **kwargs: Any) -> Reply:
    reply = fetch_all([(method, url, kwargs)])[0]
    assert isinstance(reply, Reply), reply
    return reply
