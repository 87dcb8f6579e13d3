"""The attachment CDN and its media proxy: a signed URL (emulator/cdn.py) is answered with the file's
exact bytes, built on demand in a worker thread, with HEAD, single byte ranges and the CDN's faults.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from midshard.emulator import cdn
from midshard.emulator.faults import broken_body, dribble
from midshard.emulator.images import Media
from midshard.emulator.responses import HTTP_REASONS
from midshard.emulator.state import EmulatorState


class CdnRoutes:
    """Serves the files behind attachment URLs; concurrent requests for one file share one build."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="emulator-files")
        self._building: dict[str, asyncio.Future[bytes]] = {}

    def add_to(self, app: web.Application) -> None:
        for prefix in (cdn.ORIGINAL_PREFIX, cdn.PROXY_PREFIX):
            app.router.add_get(prefix + "/attachments/{channel_id}/{attachment_id}/{filename}", self._cdn)
        app.on_cleanup.append(self._shutdown)

    async def _shutdown(self, _app: web.Application) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _cdn(self, request: web.Request) -> web.StreamResponse:
        state = self.state
        state.counters["requests.cdn"] += 1
        gone = web.Response(status=404, text=cdn.GONE_TEXT)
        info = request.match_info
        if not (info["channel_id"].isdigit() and info["attachment_id"].isdigit()):
            return gone
        channel_id, attachment_id = int(info["channel_id"]), int(info["attachment_id"])
        attachment = state.attachment(channel_id, attachment_id, info["filename"])
        path = cdn.attachment_path(channel_id, attachment_id, info["filename"])
        if attachment is None or not state.signer.valid(path, request.query, time.time()):
            state.counters["cdn.denied"] += 1
            return gone
        if state.faults.gone(attachment_id):
            state.counters["faults.gone"] += 1
            return gone
        plan = state.faults.next_plan(request.path, api=False)
        state.count_faults(plan)
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
        state.counters["cdn.served"] += 1
        state.counters["cdn.bytes"] += len(body)
        response = web.Response(status=status, body=body, headers=headers)
        if (plan.reset or plan.truncate) and len(body) > 1:
            return await broken_body(request, response, plan)
        if plan.dribble:
            return await dribble(request, response)
        return response

    async def _bytes(self, media: Media) -> bytes:
        """Build (or fetch from cache) in a worker thread; concurrent requests share one build."""
        key = media.digest
        future = self._building.get(key)
        if future is None:
            future = asyncio.get_running_loop().run_in_executor(self._executor, self.state.store.get, media)
            self._building[key] = future
            future.add_done_callback(lambda _: self._building.pop(key, None))
        return await asyncio.shield(future)


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
