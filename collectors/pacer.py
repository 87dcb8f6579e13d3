"""Discord's global rate limit, kept before a request instead of learnt from a 429.

discord.py honours the per-route buckets before each request but the global limit only after a
global 429, so channels whose buckets reset together send their next requests in one burst.
`RequestPacer` runs as an aiohttp trace hook on discord.py's session: it sees every API request
(discord.py's own retries included) at the moment it goes out, and holds it while `limit` others
went out in the last `window` seconds.
"""

from __future__ import annotations

import asyncio
from collections import deque

import aiohttp

# Discord's global limit: 50 requests per second per bot token (developer docs, Rate Limits).
# Requests are paced to it over a slightly longer window, so the time they take to arrive never
# puts 51 into one of Discord's seconds.
GLOBAL_LIMIT = 50
GLOBAL_WINDOW = 1.1


class RequestPacer:
    """At most `limit` API requests in any `window` seconds, counted when each is sent."""

    def __init__(self, limit: int = GLOBAL_LIMIT, window: float = GLOBAL_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._sent: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        async with self._lock:  # first come, first sent
            loop = asyncio.get_running_loop()
            while len(self._sent) >= self.limit:
                free_at = self._sent[0] + self.window
                if loop.time() < free_at:
                    await asyncio.sleep(free_at - loop.time())
                self._sent.popleft()
            self._sent.append(loop.time())

    def trace_config(self) -> aiohttp.TraceConfig:
        async def on_request_start(*_args: object) -> None:
            await self.wait()

        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(on_request_start)
        return trace
