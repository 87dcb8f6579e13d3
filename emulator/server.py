"""The emulator's HTTP server (aiohttp): Discord's REST API under /api/v10 (and v9), wired together
with the attachment CDN (emulator/cdn_routes.py) and the control endpoints (emulator/control.py).

Every API answer goes through one path (`_api`): ban check, token check, global and per-route rate
limits, faults, then the handler; JSON bodies are sent with `Content-Type: application/json`
exactly and `Via: 1.1 google`, as discord.py requires. Everything runs on one event loop, so the
limiter needs no locks; only image encoding runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from midshard.emulator import snowflakes
from midshard.emulator.cdn_routes import CdnRoutes
from midshard.emulator.control import ControlRoutes
from midshard.emulator.determinism import draw
from midshard.emulator.faults import broken_body
from midshard.emulator.messages import Renderer
from midshard.emulator.responses import (
    BAN_PAGE,
    HTTP_REASONS,
    UNKNOWN_CHANNEL,
    UNKNOWN_GUILD,
    UNKNOWN_MESSAGE,
    BadFormError,
    form_error,
    int_field,
    json_response,
    snowflake_field,
)
from midshard.emulator.state import EmulatorState
from midshard.emulator.world import Stream

API_PREFIXES = ("/api/v10", "/api/v9")
MESSAGES_ROUTE = "GET /channels/{channel_id}/messages"
Handler = Callable[[web.Request], Awaitable[tuple[int, Any]]]


class EmulatorServer:
    """The aiohttp application of one emulator instance, and its Discord API handlers."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    # -- wiring -----------------------------------------------------------------------------------

    def app(self, base_url: str) -> web.Application:
        state = self.state
        state.renderer = Renderer(state.world, state.traffic, state.signer, base_url, state.cfg.prerender)
        if state.cfg.prerender:
            state.renderer.render_all(state.world.streams, state.count)
        app = web.Application(middlewares=[self._count_status], client_max_size=2**20)
        routes: list[tuple[str, str, Handler, tuple[int, float] | None]] = [
            ("GET", "/users/@me", self._me, None),
            ("GET", "/oauth2/applications/@me", self._application, None),
            ("GET", "/applications/@me", self._application, None),
            ("GET", "/channels/{channel_id}", self._channel, None),
            ("GET", "/guilds/{guild_id}/channels", self._guild_channels, None),
            ("GET", "/channels/{channel_id}/messages", self._messages, self.history_limit),
            ("GET", "/channels/{channel_id}/messages/{message_id}", self._message, None),
            ("GET", "/guilds/{guild_id}/threads/active", self._active_threads, self.history_limit),
            (
                "GET",
                "/channels/{channel_id}/threads/archived/public",
                self._archived_threads,
                self.history_limit,
            ),
            ("POST", "/attachments/refresh-urls", self._refresh_urls, None),
        ]
        for prefix in API_PREFIXES:
            for method, template, handler, limits in routes:
                endpoint = self._api(f"{method} {template}", handler, limits or self.other_limit)
                app.router.add_route(method, prefix + template, endpoint)
            unknown = self._api("unknown", self._not_found, self.other_limit)
            app.router.add_route("*", prefix + "/{tail:.*}", unknown)
        CdnRoutes(state).add_to(app)
        ControlRoutes(state).add_to(app)
        return app

    @property
    def history_limit(self) -> tuple[int, float]:
        return self.state.cfg.history_limit, self.state.cfg.history_window

    @property
    def other_limit(self) -> tuple[int, float]:
        """Routes without a known bucket: as generous as the global limit, so only that one bites."""
        return self.state.cfg.global_limit, 1.0

    @web.middleware
    async def _count_status(
        self, request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]
    ):
        try:
            response = await handler(request)
        except web.HTTPException as error:
            self.state.counters[f"status.{error.status}"] += 1
            raise
        self.state.counters[f"status.{response.status}"] += 1
        return response

    # -- the API path ---------------------------------------------------------------------------------

    def _api(self, route: str, handler: Handler, limits: tuple[int, float]) -> Handler:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            return await self._serve_api(request, route, handler, limits)

        return endpoint  # type: ignore[return-value]

    async def _serve_api(
        self, request: web.Request, route: str, handler: Handler, limits: tuple[int, float]
    ) -> web.StreamResponse:
        self.state.counters["requests.api"] += 1
        self.state.counters[f"routes.{route}"] += 1
        ip = request.remote or "unknown"
        if self.state.bans.banned(ip):
            self.state.counters["banned_responses"] += 1
            return web.Response(status=429, text=BAN_PAGE, content_type="text/html", charset="UTF-8")
        auth = request.headers.get("Authorization", "")
        token = self.state.cfg.token_value()
        if token is not None and auth != f"Bot {token}":
            self.state.bans.record_invalid(ip)
            return json_response(401, {"message": "401: Unauthorized", "code": 0})
        major = request.match_info.get("channel_id") or request.match_info.get("guild_id") or ""
        lying = self.state.cfg.lying_headers and route == MESSAGES_ROUTE
        verdict = self.state.limiter.check(auth or ip, route, major, *limits, lying=lying)
        if not verdict.allowed:
            self.state.bans.record_invalid(ip)
            self.state.counters[f"rate_limited.{verdict.scope}"] += 1
            return json_response(429, verdict.refused_body, verdict.headers)
        plan = self.state.faults.next_plan(request.path, api=True)
        self.state.count_faults(plan)
        if plan.shared_429:
            retry = 0.25 + 0.75 * draw(
                self.state.cfg.seed, "shared-retry", request.path, self.state.faults.attempts[request.path]
            )
            shared = self.state.limiter.shared_refusal(route, retry)
            self.state.counters["rate_limited.shared"] += 1
            return json_response(429, shared.refused_body, shared.headers)
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.status is not None:
            body = {"message": f"{plan.status}: {HTTP_REASONS[plan.status]}", "code": 0}
            return json_response(plan.status, body, verdict.headers)
        try:
            status, body = await handler(request)
        except BadFormError as error:
            status, body = error.answer
        if status in (401, 403):
            self.state.bans.record_invalid(ip)
        response = json_response(status, body, verdict.headers)
        if (plan.reset or plan.truncate) and response.body:
            return await broken_body(request, response, plan)
        return response

    # -- API handlers -------------------------------------------------------------------------------

    async def _not_found(self, _request: web.Request) -> tuple[int, Any]:
        return 404, {"message": "404: Not Found", "code": 0}

    async def _me(self, _request: web.Request) -> tuple[int, Any]:
        assert self.state.renderer is not None
        return 200, self.state.renderer.me()

    async def _application(self, _request: web.Request) -> tuple[int, Any]:
        assert self.state.renderer is not None
        return 200, self.state.renderer.application()

    def _stream(self, request: web.Request) -> Stream | None:
        return self.state.world.stream(snowflake_field("channel_id", request.match_info["channel_id"]))

    async def _channel(self, request: web.Request) -> tuple[int, Any]:
        assert self.state.renderer is not None
        stream = self._stream(request)
        if stream is None:
            return UNKNOWN_CHANNEL
        return 200, self.state.renderer.channel(stream, self.state.count(stream))

    async def _guild_channels(self, request: web.Request) -> tuple[int, Any]:
        """All channels of the guild except threads (as Discord's Get Guild Channels)."""
        assert self.state.renderer is not None
        if snowflake_field("guild_id", request.match_info["guild_id"]) != self.state.world.guild_id:
            return UNKNOWN_GUILD
        channels = [
            self.state.renderer.channel(stream, self.state.count(stream))
            for stream in self.state.world.channels
        ]
        return 200, [self.state.renderer.category(), *channels]

    async def _messages(self, request: web.Request) -> tuple[int, Any]:
        """Get Channel Messages: always newest first, whatever the cursor (as Discord answers)."""
        assert self.state.renderer is not None
        stream = self._stream(request)
        if stream is None:
            return UNKNOWN_CHANNEL
        query = request.query
        limit = int_field("limit", query["limit"], 1, 100) if "limit" in query else 50
        count = self.state.count(stream)
        ids = self.state.world.ids(stream, count)
        if "around" in query:
            middle = snowflake_field("around", query["around"])
            position = ids.first_at_or_after(middle)
            exists = position < count and ids[position] == middle
            half = limit // 2
            start = position + 1 if exists else position
            indices = [*range(max(0, position - half), position), *([position] if exists else [])]
            indices += range(start, min(count, start + half))
        elif "before" in query:
            end = ids.first_at_or_after(snowflake_field("before", query["before"]))
            indices = list(range(max(0, end - limit), end))
        elif "after" in query:
            start = ids.first_after(snowflake_field("after", query["after"]))
            indices = list(range(start, min(count, start + limit)))
        else:
            indices = list(range(max(0, count - limit), count))
        self.state.counters["messages_served"] += len(indices)
        now = time.time()
        self.state.history_times = [self.state.history_times[0] if self.state.history_times else now, now]
        return 200, self.state.renderer.page(stream, reversed(indices), self.state.signing_time())

    async def _message(self, request: web.Request) -> tuple[int, Any]:
        assert self.state.renderer is not None
        stream = self._stream(request)
        if stream is None:
            return UNKNOWN_CHANNEL
        message_id = snowflake_field("message_id", request.match_info["message_id"])
        index = self.state.world.ids(stream, self.state.count(stream)).index_of(message_id)
        if index is None:
            return UNKNOWN_MESSAGE
        self.state.counters["messages_served"] += 1
        return 200, self.state.renderer.page(stream, [index], self.state.signing_time())[1:-1]

    def _thread_json(self, stream: Stream) -> dict[str, Any]:
        assert self.state.renderer is not None
        return self.state.renderer.channel(stream, self.state.count(stream))

    async def _active_threads(self, request: web.Request) -> tuple[int, Any]:
        if snowflake_field("guild_id", request.match_info["guild_id"]) != self.state.world.guild_id:
            return UNKNOWN_GUILD
        active = sorted(
            (s for s in self.state.world.threads if not s.archived), key=lambda s: s.id, reverse=True
        )
        return 200, {"threads": [self._thread_json(s) for s in active], "members": []}

    async def _archived_threads(self, request: web.Request) -> tuple[int, Any]:
        """Archived public threads, newest archive first; the cursor is an ISO 8601 timestamp."""
        stream = self._stream(request)
        if stream is None:
            return UNKNOWN_CHANNEL
        query = request.query
        limit = int_field("limit", query["limit"], 2, 100) if "limit" in query else 50
        before_ms = math.inf
        if "before" in query:
            try:
                before_ms = snowflakes.parse_iso_ms(query["before"])
            except ValueError:
                raise BadFormError("before", "DATE_TIME_TYPE_PARSE", "Could not parse date") from None
        threads = [
            self._thread_json(s) for s in self.state.world.threads if s.parent_id == stream.id and s.archived
        ]
        stamps = {
            t["id"]: snowflakes.parse_iso_ms(t["thread_metadata"]["archive_timestamp"]) for t in threads
        }
        threads = sorted((t for t in threads if stamps[t["id"]] < before_ms), key=lambda t: -stamps[t["id"]])
        return 200, {"threads": threads[:limit], "members": [], "has_more": len(threads) > limit}

    async def _refresh_urls(self, request: web.Request) -> tuple[int, Any]:
        """POST /attachments/refresh-urls: fresh ex/is/hm for up to 50 attachment URLs."""
        try:
            payload = await request.json()
            urls = payload["attachment_urls"]
            assert isinstance(urls, list) and all(isinstance(url, str) for url in urls)
        except (ValueError, KeyError, TypeError, AssertionError):
            return form_error("attachment_urls", "BASE_TYPE_REQUIRED", "This field is required")
        if len(urls) > 50:
            return form_error("attachment_urls", "BASE_TYPE_MAX_LENGTH", "Must be 50 or fewer in length.")
        refreshed = []
        now = time.time()
        for url in urls:
            found = self.state.attachment_of_url(url)
            fresh = url
            if found is not None:
                assert self.state.renderer is not None
                channel_id, attachment = found
                fresh = self.state.renderer.attachment(attachment, channel_id, now)["url"]
            refreshed.append({"original": url, "refreshed": fresh})
        self.state.counters["refreshed_urls"] += len(urls)
        return 200, {"refreshed_urls": refreshed}
