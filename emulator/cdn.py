"""Signed, expiring attachment URLs, as Discord's CDN issues them since 2024
(Discord developer docs, Reference: Signed Attachment CDN URLs).

`?ex=<hex expiry>&is=<hex issue time>&hm=<64-hex HMAC-SHA256>&`: the signature covers the decoded
path plus `ex` and `is`, keyed by a per-seed secret, so a link cannot be extended or moved to another
file. The same query string signs `url` and `proxy_url`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from midshard.emulator.snowflakes import DISCORD_EPOCH_MS

ORIGINAL_PREFIX = ""  # {base}/attachments/...
PROXY_PREFIX = "/media"  # {base}/media/attachments/... (media.discordapp.net on the real service)
GONE_TEXT = "This content is no longer available."


def attachment_path(channel_id: int, attachment_id: int, filename: str) -> str:
    """The decoded path the signature covers."""
    return f"/attachments/{channel_id}/{attachment_id}/{filename}"


def quoted_path(channel_id: int, attachment_id: int, filename: str) -> str:
    """The same path as it appears in a URL (hostile file names percent-encoded, '/' included)."""
    return f"/attachments/{channel_id}/{attachment_id}/{quote(filename, safe='')}"


class Signer:
    def __init__(self, seed: int, ttl: float) -> None:
        self._key = hashlib.sha256(f"midshard-emulator-cdn/{seed}".encode()).digest()
        self.ttl = ttl

    def _mac(self, path: str, ex: str, issued: str) -> str:
        return hmac.new(self._key, f"{path}{ex}{issued}".encode(), hashlib.sha256).hexdigest()

    def query(self, path: str, now: float) -> str:
        """A fresh signature valid for at least `ttl` seconds from `now` (epoch seconds)."""
        issued = f"{math.floor(now):x}"
        ex = f"{math.ceil(now + self.ttl):x}"
        return f"ex={ex}&is={issued}&hm={self._mac(path, ex, issued)}&"

    def valid(self, path: str, params: Mapping[str, str], now: float) -> bool:
        ex, issued, mac = params.get("ex", ""), params.get("is", ""), params.get("hm", "")
        try:
            expires = int(ex, 16)
            int(issued, 16)
        except ValueError:
            return False
        return hmac.compare_digest(mac, self._mac(path, ex, issued)) and now < expires


def split_attachment_url(url: str) -> tuple[int, int] | None:
    """(channel_id, attachment_id) of an attachment URL on any host, or None if it is not one."""
    parts = urlsplit(url).path.split("/")
    try:
        at = parts.index("attachments")
        channel_id, attachment_id = int(parts[at + 1]), int(parts[at + 2])
    except (ValueError, IndexError):
        return None
    if attachment_id <= 0 or channel_id <= 0 or (attachment_id >> 22) + DISCORD_EPOCH_MS <= DISCORD_EPOCH_MS:
        return None
    return channel_id, attachment_id
