"""The emulator's HTTP server (aiohttp): Discord's REST API under /api/v10 (and v9), the attachment
CDN and its media proxy, and a few control endpoints under /_emulator.

Every API answer goes through one path (`_api`): ban check, token check, global and per-route rate
limits, faults, then the handler; JSON bodies are sent with `Content-Type: application/json`
exactly and `Via: 1.1 google`, as discord.py requires. Everything runs on one event loop, so the
limiter needs no locks; only image encoding runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

from aiohttp import web

from midshard.emulator import cdn, snowflakes
from midshard.emulator.cdn import Signer
from midshard.emulator.config import EmulatorConfig
from midshard.emulator.determinism import draw
from midshard.emulator.faults import FaultPlan, Faults
from midshard.emulator.images import Media, MediaStore
from midshard.emulator.messages import Renderer
from midshard.emulator.ratelimit import BanList, RateLimiter
from midshard.emulator.traffic import Attachment, Traffic
from midshard.emulator.truth import TruthBuilder
from midshard.emulator.world import Stream, World

API_PREFIXES = ("/api/v10", "/api/v9")
JSON_HEADERS = {"Content-Type": "application/json", "Via": "1.1 google"}
MESSAGES_ROUTE = "GET /channels/{channel_id}/messages"
HTTP_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 504: "Gateway Timeout"}
BAN_PAGE = """<!DOCTYPE html>
<html class="no-js" lang="en-US"><head>
<title>Access denied | discord.com used Cloudflare to restrict access</title>
<meta charset="UTF-8" /></head><body><div id="cf-wrapper"><div id="cf-error-details" class="p-0">
<header class="mx-auto pt-10 lg:pt-6 lg:px-8 w-240 lg:w-full mb-15 antialiased">
<h1 class="inline-block md:block mr-2 md:mb-2 font-light text-60 md:text-3xl text-black-dark leading-tight">
<span data-translate="error">Error</span><span>1015</span></h1>
<h2 class="text-gray-600 leading-1.3 text-3xl lg:text-2xl font-light">You are being rate limited</h2></header>
<section class="w-240 lg:w-full mx-auto mb-8 lg:px-8"><div id="what-happened-section" class="w-1/2 md:w-full">
<h2 class="text-3xl leading-tight font-normal mb-4 text-black-dark antialiased">What happened?</h2>
<p>The owner of this website (discord.com) has banned you temporarily from accessing this website.</p>
</div></section></div></div></body></html>
"""
Handler = Callable[[web.Request], Awaitable[tuple[int, Any]]]


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response as Discord sends it (`body` may already be encoded JSON bytes)."""
    data = (
        body
        if isinstance(body, bytes)
        else json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    )
    return web.Response(status=status, body=data, headers={**(headers or {}), **JSON_HEADERS})


def _form_error(field: str, code: str, message: str) -> tuple[int, Any]:
    errors = {field: {"_errors": [{"code": code, "message": message}]}}
    return 400, {"code": 50035, "errors": errors, "message": "Invalid Form Body"}


class BadFormError(Exception):
    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.answer = _form_error(field, code, message)


def _snowflake(field: str, value: str) -> int:
    if value.isdigit() and int(value) < 2**64:
        return int(value)
    raise BadFormError(field, "NUMBER_TYPE_COERCE", f'Value "{value}" is not snowflake.')


def _int_in(field: str, value: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise BadFormError(field, "NUMBER_TYPE_COERCE", f'Value "{value}" is not int.') from None
    if number < low:
        raise BadFormError(field, "NUMBER_TYPE_MIN", f"int value should be greater than or equal to {low}.")
    if number > high:
        raise BadFormError(field, "NUMBER_TYPE_MAX", f"int value should be less than or equal to {high}.")
    return number


UNKNOWN_CHANNEL = (404, {"message": "Unknown Channel", "code": 10003})
UNKNOWN_GUILD = (404, {"message": "Unknown Guild", "code": 10004})
UNKNOWN_MESSAGE = (404, {"message": "Unknown Message", "code": 10008})


class EmulatorServer:
    """State and handlers of one emulator instance."""

    def __init__(self, cfg: EmulatorConfig) -> None:
        self.cfg = cfg
        self.world = World(cfg)
        self.traffic = Traffic(cfg, self.world)
        self.signer = Signer(cfg.seed, cfg.link_ttl)
        self.limiter = RateLimiter(cfg.global_limit)
        self.bans = BanList(cfg.ban_threshold, cfg.ban_window, cfg.ban_duration)
        self.faults = Faults(cfg)
        self.store = MediaStore(cfg.cache_mb * 2**20, cfg.cache_dir)
        self.grown = 0
        self.counters: Counter[str] = Counter()
        self.renderer: Renderer | None = None  # set once the port (and so the base URL) is known
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="emulator-files")
        self._building: dict[str, asyncio.Future[bytes]] = {}

    def signing_time(self) -> float:
        """Issue time of the links in listed messages (fixed when `signing_epoch` is set).

        refresh-urls always signs with the real clock: its job is a link valid now.
        """
        return self.cfg.signing_epoch if self.cfg.signing_epoch is not None else time.time()

    # -- wiring -----------------------------------------------------------------------------------

    def app(self, base_url: str) -> web.Application:
        self.renderer = Renderer(self.world, self.traffic, self.signer, base_url)
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
        for prefix in (cdn.ORIGINAL_PREFIX, cdn.PROXY_PREFIX):
            app.router.add_get(prefix + "/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn)
        app.router.add_get("/_emulator/stats", self._stats_endpoint)
        app.router.add_post("/_emulator/reset-stats", self._reset_stats_endpoint)
        app.router.add_post("/_emulator/grow", self._grow_endpoint)
        app.router.add_get("/_emulator/truth", self._truth_endpoint)
        app.router.add_get("/_emulator/config", self._config_endpoint)
        app.on_cleanup.append(self._shutdown)
        return app

    async def _shutdown(self, _app: web.Application) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    @property
    def history_limit(self) -> tuple[int, float]:
        return self.cfg.history_limit, self.cfg.history_window

    @property
    def other_limit(self) -> tuple[int, float]:
        """Routes without a known bucket: as generous as the global limit, so only that one bites."""
        return self.cfg.global_limit, 1.0

    def count(self, stream: Stream) -> int:
        return stream.base_count + self.grown

    @web.middleware
    async def _count_status(
        self, request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]
    ):
        try:
            response = await handler(request)
        except web.HTTPException as error:
            self.counters[f"status.{error.status}"] += 1
            raise
        self.counters[f"status.{response.status}"] += 1
        return response

    # -- the API path ---------------------------------------------------------------------------------

    def _api(self, route: str, handler: Handler, limits: tuple[int, float]) -> Handler:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            return await self._serve_api(request, route, handler, limits)

        return endpoint  # type: ignore[return-value]

    async def _serve_api(
        self, request: web.Request, route: str, handler: Handler, limits: tuple[int, float]
    ) -> web.StreamResponse:
        self.counters["requests.api"] += 1
        self.counters[f"routes.{route}"] += 1
        ip = request.remote or "unknown"
        if self.bans.banned(ip):
            self.counters["banned_responses"] += 1
            return web.Response(status=429, text=BAN_PAGE, content_type="text/html", charset="UTF-8")
        auth = request.headers.get("Authorization", "")
        token = self.cfg.token_value()
        if token is not None and auth != f"Bot {token}":
            self.bans.record_invalid(ip)
            return _json(401, {"message": "401: Unauthorized", "code": 0})
        major = request.match_info.get("channel_id") or request.match_info.get("guild_id") or ""
        lying = self.cfg.lying_headers and route == MESSAGES_ROUTE
        verdict = self.limiter.check(auth or ip, route, major, *limits, lying=lying)
        if not verdict.allowed:
            self.bans.record_invalid(ip)
            self.counters[f"rate_limited.{verdict.scope}"] += 1
            return _json(429, verdict.refused_body, verdict.headers)
        plan = self.faults.next_plan(request.path, api=True)
        self._count_faults(plan)
        if plan.shared_429:
            retry = 0.25 + 0.75 * draw(
                self.cfg.seed, "shared-retry", request.path, self.faults.attempts[request.path]
            )
            shared = self.limiter.shared_refusal(route, retry)
            self.counters["rate_limited.shared"] += 1
            return _json(429, shared.refused_body, shared.headers)
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.status is not None:
            body = {"message": f"{plan.status}: {HTTP_REASONS[plan.status]}", "code": 0}
            return _json(plan.status, body, verdict.headers)
        try:
            status, body = await handler(request)
        except BadFormError as error:
            status, body = error.answer
        if status in (401, 403):
            self.bans.record_invalid(ip)
        response = _json(status, body, verdict.headers)
        if (plan.reset or plan.truncate) and response.body:
            return await self._broken_body(request, response, plan)
        return response

    def _count_faults(self, plan: FaultPlan) -> None:
        for name in plan.fired():
            if name != "shared_429":
                self.counters[f"faults.{name}"] += 1

    async def _broken_body(
        self, request: web.Request, full: web.Response, plan: FaultPlan
    ) -> web.StreamResponse:
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

    # -- API handlers -------------------------------------------------------------------------------

    async def _not_found(self, _request: web.Request) -> tuple[int, Any]:
        return 404, {"message": "404: Not Found", "code": 0}

    async def _me(self, _request: web.Request) -> tuple[int, Any]:
        assert self.renderer is not None
        return 200, self.renderer.me()

    async def _application(self, _request: web.Request) -> tuple[int, Any]:
        assert self.renderer is not None
        return 200, self.renderer.application()

    def _stream(self, request: web.Request) -> Stream | None:
        return self.world.stream(_snowflake("channel_id", request.match_info["channel_id"]))

    async def _channel(self, request: web.Request) -> tuple[int, Any]:
        assert self.renderer is not None
        stream = self._stream(request)
        if stream is None:
            return UNKNOWN_CHANNEL
        return 200, self.renderer.channel(stream, self.count(stream))

    async def _guild_channels(self, request: web.Request) -> tuple[int, Any]:
        """All channels of the guild except threads (as Discord's Get Guild Channels)."""
        assert self.renderer is not None
        if _snowflake("guild_id", request.match_info["guild_id"]) != self.world.guild_id:
            return UNKNOWN_GUILD
        channels = [self.renderer.channel(stream, self.count(stream)) for stream in self.world.channels]
        return 200, [self.renderer.category(), *channels]

    async def _messages(self, request: web.Request) -> tuple[int, Any]:
        """Get Channel Messages: always newest first, whatever the cursor (reference §1.3)."""
        assert self.renderer is not None
        stream = self._stream(request)
        if stream is None:
            return UNKNOWN_CHANNEL
        query = request.query
        limit = _int_in("limit", query["limit"], 1, 100) if "limit" in query else 50
        count = self.count(stream)
        ids = self.world.ids(stream, count)
        if "around" in query:
            middle = _snowflake("around", query["around"])
            position = ids.first_at_or_after(middle)
            exists = position < count and ids[position] == middle
            half = limit // 2
            start = position + 1 if exists else position
            indices = [*range(max(0, position - half), position), *([position] if exists else [])]
            indices += range(start, min(count, start + half))
        elif "before" in query:
            end = ids.first_at_or_after(_snowflake("before", query["before"]))
            indices = list(range(max(0, end - limit), end))
        elif "after" in query:
            start = ids.first_after(_snowflake("after", query["after"]))
            indices = list(range(start, min(count, start + limit)))
        else:
            indices = list(range(max(0, count - limit), count))
        self.counters["messages_served"] += len(indices)
        return 200, self.renderer.page(stream, reversed(indices), self.signing_time())

    async def _message(self, request: web.Request) -> tuple[int, Any]:
        assert self.renderer is not None
        stream = self._stream(request)
        if stream is None:
            return UNKNOWN_CHANNEL
        message_id = _snowflake("message_id", request.match_info["message_id"])
        index = self.world.ids(stream, self.count(stream)).index_of(message_id)
        if index is None:
            return UNKNOWN_MESSAGE
        self.counters["messages_served"] += 1
        return 200, self.renderer.page(stream, [index], self.signing_time())[1:-1]

    def _thread_json(self, stream: Stream) -> dict[str, Any]:
        assert self.renderer is not None
        return self.renderer.channel(stream, self.count(stream))

    async def _active_threads(self, request: web.Request) -> tuple[int, Any]:
        if _snowflake("guild_id", request.match_info["guild_id"]) != self.world.guild_id:
            return UNKNOWN_GUILD
        active = sorted((s for s in self.world.threads if not s.archived), key=lambda s: s.id, reverse=True)
        return 200, {"threads": [self._thread_json(s) for s in active], "members": []}

    async def _archived_threads(self, request: web.Request) -> tuple[int, Any]:
        """Archived public threads, newest archive first; the cursor is an ISO 8601 timestamp."""
        stream = self._stream(request)
        if stream is None:
            return UNKNOWN_CHANNEL
        query = request.query
        limit = _int_in("limit", query["limit"], 2, 100) if "limit" in query else 50
        before_ms = math.inf
        if "before" in query:
            try:
                before_ms = snowflakes.parse_iso_ms(query["before"])
            except ValueError:
                raise BadFormError("before", "DATE_TIME_TYPE_PARSE", "Could not parse date") from None
        threads = [
            self._thread_json(s) for s in self.world.threads if s.parent_id == stream.id and s.archived
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
            return _form_error("attachment_urls", "BASE_TYPE_REQUIRED", "This field is required")
        if len(urls) > 50:
            return _form_error("attachment_urls", "BASE_TYPE_MAX_LENGTH", "Must be 50 or fewer in length.")
        refreshed = []
        now = time.time()
        for url in urls:
            found = self._attachment_of_url(url)
            fresh = url
            if found is not None:
                assert self.renderer is not None
                channel_id, attachment = found
                fresh = self.renderer.attachment(attachment, channel_id, now)["url"]
            refreshed.append({"original": url, "refreshed": fresh})
        self.counters["refreshed_urls"] += len(urls)
        return 200, {"refreshed_urls": refreshed}

    # -- attachments and the CDN ------------------------------------------------------------------------

    def _attachment(
        self, channel_id: int, attachment_id: int, filename: str | None = None
    ) -> Attachment | None:
        """The attachment with this id (the message right after its upload time holds it)."""
        stream = self.world.stream_of_snowflake(attachment_id)
        if stream is None or stream.id != channel_id:
            return None
        count = self.count(stream)
        index = self.world.ids(stream, count).first_after(attachment_id)
        if index >= count:
            return None
        for attachment in self.traffic.message(stream, index).attachments:
            if attachment.id == attachment_id and filename in (None, attachment.filename):
                return attachment
        return None

    def _attachment_of_url(self, url: str) -> tuple[int, Attachment] | None:
        ids = cdn.split_attachment_url(url)
        if ids is None:
            return None
        attachment = self._attachment(*ids)
        return None if attachment is None else (ids[0], attachment)

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        self.counters["requests.cdn"] += 1
        gone = web.Response(status=404, text=cdn.GONE_TEXT)
        info = request.match_info
        if not (info["channel_id"].isdigit() and info["attachment_id"].isdigit()):
            return gone
        channel_id, attachment_id = int(info["channel_id"]), int(info["attachment_id"])
        attachment = self._attachment(channel_id, attachment_id, info["filename"])
        path = cdn.attachment_path(channel_id, attachment_id, info["filename"])
        if attachment is None or not self.signer.valid(path, request.query, time.time()):
            self.counters["cdn.denied"] += 1
            return gone
        if self.faults.gone(attachment_id):
            self.counters["faults.gone"] += 1
            return gone
        plan = self.faults.next_plan(request.path, api=False)
        self._count_faults(plan)
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.status is not None:
            return web.Response(status=plan.status, text=f"{plan.status} {HTTP_REASONS[plan.status]}")
        headers = {
            "Content-Type": attachment.content_type,
            "Accept-Ranges": "bytes",
            "Cache-Control": "max-age=86400",
        }
        if request.method == "HEAD":  # the size is known without building the file
            head = web.StreamResponse(status=200, headers=headers)
            head.content_length = attachment.media.size
            await head.prepare(request)
            return head
        data = await self._bytes(attachment.media)
        status, body = 200, data
        window = _byte_range(request.headers.get("Range", ""), len(data))
        if window is not None:
            start, end = window
            status, body = 206, data[start : end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self.counters["cdn.served"] += 1
        self.counters["cdn.bytes"] += len(body)
        response = web.Response(status=status, body=body, headers=headers)
        if (plan.reset or plan.truncate) and len(body) > 1 and request.method == "GET":
            return await self._broken_body(request, response, plan)
        return response

    async def _bytes(self, media: Media) -> bytes:
        """Build (or fetch from cache) in a worker thread; concurrent requests share one build."""
        key = media.digest
        future = self._building.get(key)
        if future is None:
            future = asyncio.get_running_loop().run_in_executor(self._executor, self.store.get, media)
            self._building[key] = future
            future.add_done_callback(lambda _: self._building.pop(key, None))
        return await asyncio.shield(future)

    # -- control endpoints ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        c = self.counters

        def group(prefix: str, names: tuple[str, ...] = ()) -> dict[str, int]:
            found = {k.removeprefix(prefix): v for k, v in c.items() if k.startswith(prefix)}
            return {name: found.get(name, 0) for name in names} | found

        api, cdn_requests = c["requests.api"], c["requests.cdn"]
        return {
            "requests": {"total": api + cdn_requests, "api": api, "cdn": cdn_requests},
            "routes": group("routes."),
            "responses": group("status."),
            "rate_limited": group("rate_limited.", ("user", "global", "shared")),
            "banned_responses": c["banned_responses"],
            "bans": self.bans.bans_started,
            "invalid_requests": self.bans.invalid_count(),
            "faults": group("faults.", ("5xx", "reset", "truncate", "slow", "gone")),
            "cdn": group("cdn.", ("served", "bytes", "denied")),
            "refreshed_urls": c["refreshed_urls"],
            "messages_served": c["messages_served"],
            "files_generated": self.store.built,
            "messages": {str(stream.id): self.count(stream) for stream in self.world.streams},
        }

    def reset_stats(self) -> None:
        self.counters.clear()

    def grow(self, n: int) -> None:
        """Append `n` newer messages to every channel and thread."""
        if n < 0:
            raise ValueError("grow() takes a non-negative count")
        self.grown += n

    async def _stats_endpoint(self, _request: web.Request) -> web.Response:
        return _json(200, self.stats())

    async def _reset_stats_endpoint(self, _request: web.Request) -> web.Response:
        self.reset_stats()
        return _json(200, {"ok": True})

    async def _grow_endpoint(self, request: web.Request) -> web.Response:
        try:
            n = int(request.query.get("n") or (await request.json()).get("n", 0))
            self.grow(n)
        except (ValueError, TypeError, AttributeError):
            return _json(400, {"message": 'grow needs a non-negative n (?n=10 or {"n": 10})'})
        return _json(200, {"grown": self.grown, "messages": self.stats()["messages"]})

    async def _truth_endpoint(self, _request: web.Request) -> web.Response:
        builder = TruthBuilder(self.cfg, self.traffic)
        lines = await asyncio.get_running_loop().run_in_executor(None, list, builder.lines(self.grown))
        body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
        return web.Response(body=body.encode(), headers={"Content-Type": "application/x-ndjson"})

    async def _config_endpoint(self, _request: web.Request) -> web.Response:
        public = self.cfg.model_dump(mode="json") | {"token": "***" if self.cfg.token else None}
        return _json(200, public)


def _byte_range(header: str, total: int) -> tuple[int, int] | None:
    """A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range, or None for none or anything else."""
    if not header.startswith("bytes=") or "," in header or total == 0:
        return None
    first, _, last = header[6:].partition("-")
    try:
        if first == "":
            start, end = max(0, total - int(last)), total - 1
        else:
            start, end = int(first), min(total - 1, int(last)) if last else total - 1
    except ValueError:
        return None
    return (start, end) if start <= end < total else None


# -- running it ----------------------------------------------------------------------------------------


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


class Emulator:
    """A running emulator: `base_url`, `api_base`, ids, and thread-safe `stats/grow/truth`."""

    def __init__(self, cfg: EmulatorConfig) -> None:
        self.config = cfg
        self.server = EmulatorServer(cfg)
        self._sock = _listen(cfg.port)
        self.port: int = self._sock.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.api_base = self.base_url + API_PREFIXES[0]
        self.guild_id = self.server.world.guild_id
        self.channel_ids = [stream.id for stream in self.server.world.channels]
        self.thread_ids = [stream.id for stream in self.server.world.threads]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    async def _start(self) -> None:
        self._runner = web.AppRunner(self.server.app(self.base_url), access_log=None, handle_signals=False)
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
        return self._call(self.server.stats)

    def reset_stats(self) -> None:
        self._call(self.server.reset_stats)

    def grow(self, n: int) -> None:
        self._call(lambda: self.server.grow(n))

    def truth(self) -> list[dict[str, Any]]:
        """Truth lines for what is served now (after every `grow`)."""
        grown = self._call(lambda: self.server.grown)
        return list(TruthBuilder(self.config, self.server.traffic).lines(grown))


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
