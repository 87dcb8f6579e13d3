"""What one emulator instance holds and counts, shared by the API, the CDN and the control endpoints:
the generated world and its traffic, the signer, rate limiter, bans, faults and file store, how many
messages were grown, and the counters behind `/_emulator/stats`.

Everything runs on one event loop, so none of it needs locks (the file store has its own).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from midshard.emulator import cdn
from midshard.emulator.cdn import Signer
from midshard.emulator.config import EmulatorConfig
from midshard.emulator.faults import FaultPlan, Faults
from midshard.emulator.images import MediaStore
from midshard.emulator.messages import Renderer
from midshard.emulator.model import Attachment
from midshard.emulator.ratelimit import BanList, RateLimiter
from midshard.emulator.traffic import Traffic
from midshard.emulator.world import Stream, World


class EmulatorState:
    """State of one emulator instance."""

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
        self.history_times: list[float] = []  # epoch seconds of the first and last history page served
        self.renderer: Renderer | None = None  # set once the port (and so the base URL) is known

    def signing_time(self) -> float:
        """Issue time of the links in listed messages (fixed when `signing_epoch` is set).

        refresh-urls always signs with the real clock: its job is a link valid now.
        """
        return self.cfg.signing_epoch if self.cfg.signing_epoch is not None else time.time()

    def count(self, stream: Stream) -> int:
        return stream.base_count + self.grown

    def count_faults(self, plan: FaultPlan) -> None:
        for name in plan.fired():
            if name != "shared_429":
                self.counters[f"faults.{name}"] += 1

    # -- attachments --------------------------------------------------------------------------------

    def attachment(
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

    def attachment_of_url(self, url: str) -> tuple[int, Attachment] | None:
        ids = cdn.split_attachment_url(url)
        if ids is None:
            return None
        attachment = self.attachment(*ids)
        return None if attachment is None else (ids[0], attachment)

    # -- what the control endpoints read and change ---------------------------------------------------

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
            "faults": group("faults.", ("5xx", "reset", "truncate", "slow", "gone", "dribble")),
            "cdn": group("cdn.", ("served", "bytes", "denied")),
            "refreshed_urls": c["refreshed_urls"],
            "messages_served": c["messages_served"],
            "history_pages_between": self.history_times,  # [first, last] page served (epoch s)
            "files_generated": self.store.built,
            "messages": {str(stream.id): self.count(stream) for stream in self.world.streams},
        }

    def reset_stats(self) -> None:
        self.counters.clear()
        self.history_times = []

    def grow(self, n: int) -> None:
        """Append `n` newer messages to every channel and thread."""
        if n < 0:
            raise ValueError("grow() takes a non-negative count")
        self.grown += n
