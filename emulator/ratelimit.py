"""Discord's rate limits as a client sees them (Discord developer docs, Topics: Rate Limits): per-route
buckets keyed by route and major resource, a global limit per token, and the invalid-request counter
that ends in a Cloudflare-style IP ban.

Everything here is synchronous and runs on the server's event loop thread, so a check and its update
can never interleave with another request's: correctness under concurrency comes from that, not from
locks. Windows use the monotonic clock; `X-RateLimit-Reset` is reported as epoch seconds.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

RATE_LIMITED = "You are being rate limited."
SHARED_LIMITED = "The resource is being rate limited."


def _seconds(value: float) -> str:
    """Seconds rounded *up* to the millisecond, so a client sleeping this long never comes back early."""
    return f"{math.ceil(value * 1000) / 1000:.3f}"


def bucket_hash(route: str) -> str:
    """Opaque bucket id, the same for every major resource (as Discord's `X-RateLimit-Bucket`)."""
    return hashlib.md5(route.encode()).hexdigest()


@dataclass
class _Window:
    """A fixed window that starts with the first request after the previous one ended."""

    limit: int
    seconds: float
    used: int = 0
    reset_at: float = 0.0

    def roll(self, now: float) -> None:
        if now >= self.reset_at:
            self.used = 0
            self.reset_at = now + self.seconds


@dataclass(frozen=True)
class Verdict:
    """The rate limiter's answer: headers for the response, and a 429 body when the call is refused."""

    headers: dict[str, str]
    refused_body: dict[str, object] | None = None
    scope: str | None = None  # "user" | "global" on a refusal

    @property
    def allowed(self) -> bool:
        return self.refused_body is None


@dataclass
class RateLimiter:
    global_limit: int
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    _buckets: dict[tuple[str, str, str], _Window] = field(default_factory=dict)
    _globals: dict[str, _Window] = field(default_factory=dict)

    def check(self, caller: str, route: str, major: str, limit: int, seconds: float, lying: bool) -> Verdict:
        """Count one request of `caller` (token or IP) on `route` for resource `major`."""
        now = self.clock()
        glob = self._globals.setdefault(caller, _Window(self.global_limit, 1.0))
        glob.roll(now)
        if glob.used >= glob.limit:
            retry = glob.reset_at - now
            headers = {
                "Retry-After": str(math.ceil(retry)),
                "X-RateLimit-Global": "true",
                "X-RateLimit-Scope": "global",
            }
            body = {"message": RATE_LIMITED, "retry_after": float(_seconds(retry)), "global": True}
            return Verdict(headers, body, "global")
        glob.used += 1

        bucket = self._buckets.setdefault((caller, route, major), _Window(limit, seconds))
        bucket.roll(now)
        reset_after = bucket.reset_at - now
        headers = {
            "X-RateLimit-Limit": str(bucket.limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": _seconds(self.wall() + reset_after),
            "X-RateLimit-Reset-After": _seconds(reset_after),
            "X-RateLimit-Bucket": bucket_hash(route),
        }
        if bucket.used >= bucket.limit:
            headers |= {"Retry-After": str(math.ceil(reset_after)), "X-RateLimit-Scope": "user"}
            body = {"message": RATE_LIMITED, "retry_after": float(_seconds(reset_after)), "global": False}
            return Verdict(headers, body, "user")
        bucket.used += 1
        if lying:  # the 2026 behaviour of GET messages: generous headers, the real limit underneath
            headers |= {"X-RateLimit-Limit": "1000", "X-RateLimit-Remaining": str(1000 - bucket.used)}
        else:
            headers["X-RateLimit-Remaining"] = str(bucket.limit - bucket.used)
        return Verdict(headers)

    def shared_refusal(self, route: str, retry_after: float) -> Verdict:
        """A 429 with scope 'shared': a per-resource limit that says nothing about this caller."""
        headers = {
            "X-RateLimit-Limit": "10",
            "X-RateLimit-Remaining": "9",
            "X-RateLimit-Reset": _seconds(self.wall() + retry_after),
            "X-RateLimit-Reset-After": _seconds(retry_after),
            "X-RateLimit-Bucket": bucket_hash(route),
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Scope": "shared",
        }
        body = {"message": SHARED_LIMITED, "retry_after": float(_seconds(retry_after)), "global": False}
        return Verdict(headers, body, "shared")


@dataclass
class BanList:
    """Invalid responses (401, 403, non-shared 429) per client IP in a sliding window; past the
    threshold the IP is banned for `duration` seconds (its requests then get Cloudflare's page)."""

    threshold: int
    window: float
    duration: float
    clock: Callable[[], float] = time.monotonic
    bans_started: int = 0
    _invalid: dict[str, deque[float]] = field(default_factory=dict)
    _banned_until: dict[str, float] = field(default_factory=dict)

    def banned(self, ip: str) -> bool:
        return self.clock() < self._banned_until.get(ip, 0.0)

    def record_invalid(self, ip: str) -> None:
        now = self.clock()
        seen = self._invalid.setdefault(ip, deque())
        seen.append(now)
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        if len(seen) >= self.threshold:
            self._banned_until[ip] = now + self.duration
            self.bans_started += 1
            seen.clear()

    def invalid_count(self) -> int:
        now = self.clock()
        return sum(sum(1 for t in seen if t > now - self.window) for seen in self._invalid.values())
