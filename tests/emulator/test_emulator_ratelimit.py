"""Rate limits as a raw client sees them: bucket headers, 429 bodies per scope, lying headers, bans."""

from __future__ import annotations

import math
import time

from emulator_client import AUTH, Reply, fetch, fetch_all

BUCKET_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Reset-After",
)


def messages_url(emu, channel: int = 0) -> str:
    return f"{emu.api_base}/channels/{emu.channel_ids[channel]}/messages"


def test_per_route_bucket_headers_and_429(emulator) -> None:
    with emulator(seed=1, channels=2, messages=10, history_limit=3, history_window=30.0) as emu:
        sent_at = time.time()
        replies = fetch_all([("GET", messages_url(emu), {"params": {"limit": "1"}})] * 4)
        other_channel = fetch("GET", messages_url(emu, 1))
        stats = emu.stats()
    ok, refused = replies[:3], replies[3]
    assert all(isinstance(r, Reply) and r.status == 200 for r in ok)
    assert [r.headers["X-RateLimit-Remaining"] for r in ok] == ["2", "1", "0"]
    for reply in ok:
        assert reply.headers["X-RateLimit-Limit"] == "3"
        reset_after = float(reply.headers["X-RateLimit-Reset-After"])
        assert 0 < reset_after <= 30.0
        assert abs(float(reply.headers["X-RateLimit-Reset"]) - (sent_at + reset_after)) < 5  # epoch seconds
    assert isinstance(refused, Reply) and refused.status == 429
    body = refused.json()
    assert set(body) == {"message", "retry_after", "global"} and body["global"] is False
    assert refused.headers["Retry-After"] == str(math.ceil(body["retry_after"]))
    assert refused.headers["X-RateLimit-Scope"] == "user" and refused.headers["Via"] == "1.1 google"
    assert all(name in refused.headers for name in BUCKET_HEADERS)
    assert refused.headers["X-RateLimit-Bucket"] == ok[0].headers["X-RateLimit-Bucket"]
    # the bucket is per channel: the other channel is untouched, under the same bucket hash
    assert other_channel.status == 200 and other_channel.headers["X-RateLimit-Remaining"] == "2"
    assert other_channel.headers["X-RateLimit-Bucket"] == ok[0].headers["X-RateLimit-Bucket"]
    assert stats["rate_limited"]["user"] == 1 and stats["invalid_requests"] == 1


def test_global_limit(emulator) -> None:
    with emulator(seed=1, channels=1, messages=5, global_limit=4, history_limit=100) as emu:
        replies = fetch_all([("GET", f"{emu.api_base}/users/@me", {})] * 4 + [("GET", messages_url(emu), {})])
        stats = emu.stats()
    refused = replies[-1]
    assert [r.status for r in replies] == [200, 200, 200, 200, 429]
    assert refused.json()["global"] is True and refused.json()["retry_after"] > 0
    assert (
        refused.headers["X-RateLimit-Global"] == "true" and refused.headers["X-RateLimit-Scope"] == "global"
    )
    assert "X-RateLimit-Bucket" not in refused.headers and "X-RateLimit-Remaining" not in refused.headers
    assert refused.headers["Retry-After"] == str(math.ceil(refused.json()["retry_after"]))
    assert stats["rate_limited"]["global"] == 1


def test_shared_scope_429_does_not_count_as_invalid(emulator) -> None:
    with emulator(seed=1, channels=1, messages=5, shared_429_rate=1.0, ban_threshold=2) as emu:
        replies = fetch_all([("GET", messages_url(emu), {})] * 3)
        stats = emu.stats()
    for reply in replies:
        assert reply.status == 429 and reply.headers["X-RateLimit-Scope"] == "shared"
        assert (
            reply.json()["global"] is False
            and reply.json()["message"] == "The resource is being rate limited."
        )
        assert int(reply.headers["X-RateLimit-Remaining"]) > 0 and reply.headers["Via"] == "1.1 google"
    assert stats["rate_limited"]["shared"] == 3
    assert stats["invalid_requests"] == 0 and stats["bans"] == 0


def test_lying_headers(emulator) -> None:
    """The 2026 behaviour: headers advertise 1000/999, and a 429 after the real limit shows 0/5."""
    with emulator(
        seed=1, channels=1, messages=5, lying_headers=True, history_limit=5, history_window=30.0
    ) as emu:
        replies = fetch_all([("GET", messages_url(emu), {})] * 6)
    assert [r.status for r in replies] == [200] * 5 + [429]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies[:5]] == ["999", "998", "997", "996", "995"]
    assert {r.headers["X-RateLimit-Limit"] for r in replies[:5]} == {"1000"}
    assert (
        replies[5].headers["X-RateLimit-Limit"] == "5" and replies[5].headers["X-RateLimit-Remaining"] == "0"
    )


def test_invalid_requests_end_in_a_cloudflare_ban(emulator) -> None:
    with emulator(seed=1, channels=1, messages=5, token="secret", ban_threshold=5, ban_duration=60.0) as emu:
        bad = ("GET", f"{emu.api_base}/users/@me", {"headers": {"Authorization": "Bot wrong"}})
        good = ("GET", f"{emu.api_base}/users/@me", {"headers": AUTH})
        replies = fetch_all([good] + [bad] * 5 + [good, bad])
        control = fetch("GET", f"{emu.base_url}/_emulator/stats")
        fetch("POST", f"{emu.base_url}/_emulator/reset-stats")
        after_reset = emu.stats()
    assert [r.status for r in replies] == [200] + [401] * 5 + [429, 429]
    for banned in replies[-2:]:
        assert "Via" not in banned.headers and banned.headers["Content-Type"].startswith("text/html")
        assert b"1015" in banned.body and b"Access denied" in banned.body
    stats = control.json()
    assert stats["bans"] == 1 and stats["banned_responses"] == 2
    assert stats["responses"]["401"] == 5 and stats["requests"]["api"] == 8
    assert after_reset["requests"]["api"] == 0 and after_reset["banned_responses"] == 0
