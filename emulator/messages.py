"""Discord JSON for the emulator's objects: the one place where payload shapes live.

Field sets and key order follow real 2024-2025 payloads (Discord developer docs, Message resource,
https://discord.com/developers/docs/resources/message) and discord.py's parser (`discord/message.py`):
everything discord.py requires, plus what real messages carry (flags, components, interaction
metadata, 2025 user fields). Attachment URLs are signed at render time, so every read hands out
fresh links.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import orjson

from midshard.emulator import cdn, snowflakes
from midshard.emulator.cdn import Signer
from midshard.emulator.model import Attachment, Button, Embed, Interaction, Message
from midshard.emulator.traffic import Traffic
from midshard.emulator.world import MIDJOURNEY, Stream, User, World

Json = dict[str, Any]


def user_json(user: User) -> Json:
    data: Json = {
        "id": str(user.id),
        "username": user.username,
        "avatar": user.avatar,
        "discriminator": user.discriminator,
        "public_flags": user.public_flags,
        "flags": user.public_flags,
    }
    if user.bot:
        data["bot"] = True
    data |= {
        "banner": None,
        "accent_color": None,
        "global_name": user.global_name,
        "avatar_decoration_data": None,
        "collectibles": None,
        "display_name_styles": None,
        "banner_color": None,
        "clan": None,
        "primary_guild": None,
    }
    return data


def _placeholder(attachment: Attachment) -> str:
    """A thumbhash-shaped string (synthetic, stable per attachment)."""
    digest = hashlib.sha256(str(attachment.id).encode()).digest()[:21]
    return base64.b64encode(digest).decode()


UNSIGNED = "\ue000"  # where the signed query string goes in a message's cached JSON
_UNSIGNED_URL = re.compile(rb'/attachments/(\d+)/(\d+)/([^?"]*)\?' + UNSIGNED.encode())
RENDER_CACHE = 16_384  # messages whose JSON is kept (~80 MB) unless everything is rendered ahead


@dataclass(frozen=True, slots=True)
class UnsignedJson:
    """A message's JSON (UTF-8) cut where each attachment URL's query string goes: `pieces` has one
    more element than `paths`, the decoded CDN path each query string signs."""

    pieces: tuple[bytes, ...]
    paths: tuple[str, ...]

    @classmethod
    def of(cls, data: bytes) -> UnsignedJson:
        pieces, paths, start = [], [], 0
        for match in _UNSIGNED_URL.finditer(data):
            marker = match.end() - len(UNSIGNED.encode())
            pieces.append(data[start:marker])
            paths.append(cdn.attachment_path(int(match[1]), int(match[2]), unquote(match[3].decode())))
            start = match.end()
        pieces.append(data[start:])
        return cls(tuple(pieces), tuple(paths))


class Renderer:
    """Turns emulator objects into Discord JSON for clients of `base_url`.

    A message's JSON never changes except for its attachment signatures, so it is encoded once
    (orjson) and cut where the query strings go; a page joins those pieces with queries signed for
    the request. `render_all` fills the cache ahead of the first request (benchmarks).
    """

    def __init__(
        self, world: World, traffic: Traffic, signer: Signer, base_url: str, cache_all: bool = False
    ) -> None:
        self.world = world
        self.traffic = traffic
        self.signer = signer
        self.base_url = base_url
        self._json = lru_cache(maxsize=None if cache_all else RENDER_CACHE)(self._unsigned_json)

    # -- messages -----------------------------------------------------------------------------

    def page(self, stream: Stream, indices: Iterable[int], now: float) -> bytes:
        """A JSON array of these messages, with freshly signed attachment URLs."""
        queries: dict[str, bytes] = {}
        parts = []
        for index in indices:
            unsigned = self._json(stream, index)
            parts.append(b"," if parts else b"[")
            parts.append(unsigned.pieces[0])
            for path, piece in zip(unsigned.paths, unsigned.pieces[1:], strict=True):
                query = queries.get(path)
                if query is None:
                    query = queries[path] = self.signer.query(path, now).encode()
                parts += (query, piece)
        return b"".join(parts or [b"["]) + b"]"

    def render_all(self, streams: Iterable[Stream], count: Callable[[Stream], int]) -> None:
        """Encode the first `count(stream)` messages of every stream now."""
        for stream in streams:
            for index in range(count(stream)):
                self._json(stream, index)

    def _unsigned_json(self, stream: Stream, index: int) -> UnsignedJson:
        return UnsignedJson.of(orjson.dumps(self.message(self.traffic.message(stream, index), None)))

    def attachment(self, attachment: Attachment, channel_id: int, now: float | None) -> Json:
        """Attachment JSON; with `now=None` its URLs carry the unsigned marker (see `UnsignedJson`)."""
        path = cdn.attachment_path(channel_id, attachment.id, attachment.filename)
        query = self.signer.query(path, now) if now is not None else UNSIGNED
        quoted = cdn.quoted_path(channel_id, attachment.id, attachment.filename)
        data: Json = {
            "id": str(attachment.id),
            "filename": attachment.filename,
            "size": attachment.media.size,
            "url": f"{self.base_url}{cdn.ORIGINAL_PREFIX}{quoted}?{query}",
            "proxy_url": f"{self.base_url}{cdn.PROXY_PREFIX}{quoted}?{query}",
        }
        if attachment.declared is not None:
            data |= {"width": attachment.declared[0], "height": attachment.declared[1]}
        data["content_type"] = attachment.content_type
        data["content_scan_version"] = 1
        if attachment.declared is not None:
            data |= {"placeholder": _placeholder(attachment), "placeholder_version": 1}
        if attachment.flags:
            data["flags"] = attachment.flags
        return data

    def message(self, message: Message, now: float | None, with_referenced: bool = True) -> Json:
        channel_id = message.stream.id
        data: Json = {
            "type": message.type,
            "content": message.content,
            "mentions": [user_json(user) for user in message.mentions],
            "mention_roles": [],
            "attachments": [self.attachment(a, channel_id, now) for a in message.attachments],
            "embeds": [_embed(embed) for embed in message.embeds],
            "timestamp": snowflakes.iso(message.ms),
            "edited_timestamp": snowflakes.iso(message.edited_ms) if message.edited_ms else None,
            "flags": 0,
            "components": _components(message.components),
            "id": str(message.id),
            "channel_id": str(channel_id),
            "author": user_json(message.author),
            "pinned": False,
            "mention_everyone": False,
            "tts": False,
        }
        if message.interaction is not None:
            data |= _interaction(message.interaction, self.world.guild_id)
            data |= {"application_id": str(MIDJOURNEY.id), "webhook_id": str(MIDJOURNEY.id)}
        if message.parent is not None:
            data["message_reference"] = {
                "type": 0,
                "channel_id": str(channel_id),
                "message_id": str(message.parent.id),
                "guild_id": str(self.world.guild_id),
            }
            if with_referenced:
                data["referenced_message"] = self.message(message.parent, now, with_referenced=False)
        if message.stream.type == 11:
            data["position"] = message.index
        return data

    # -- channels, threads, users -----------------------------------------------------------------

    def channel(self, stream: Stream, count: int) -> Json:
        last = self.world.message_id(stream, count - 1) if count else None
        if stream.type == 11:
            return self._thread(stream, count, last)
        return {
            "id": str(stream.id),
            "type": 0,
            "last_message_id": str(last) if last else None,
            "flags": 0,
            "guild_id": str(self.world.guild_id),
            "name": stream.name,
            "parent_id": str(self.world.category_id),
            "rate_limit_per_user": 0,
            "topic": "Midjourney generations (midshard emulator)",
            "position": stream.index,
            "permission_overwrites": [],
            "nsfw": False,
        }

    def _thread(self, stream: Stream, count: int, last: int | None) -> Json:
        archived_ms = self.world.message_ms(stream, count - 1) + 86_400_000 if count else stream.created_ms
        return {
            "id": str(stream.id),
            "type": 11,
            "last_message_id": str(last) if last else None,
            "flags": 0,
            "guild_id": str(self.world.guild_id),
            "name": stream.name,
            "parent_id": str(stream.parent_id),
            "rate_limit_per_user": 0,
            "bitrate": 64000,
            "user_limit": 0,
            "rtc_region": None,
            "owner_id": str(self.world.humans[stream.index % len(self.world.humans)].id),
            "thread_metadata": {
                "archived": stream.archived,
                "archive_timestamp": snowflakes.iso(archived_ms if stream.archived else stream.created_ms),
                "auto_archive_duration": 4320,
                "locked": False,
                "create_timestamp": snowflakes.iso(stream.created_ms),
            },
            "message_count": count,
            "member_count": 3,
            "total_message_sent": count,
        }

    def category(self) -> Json:
        return {
            "id": str(self.world.category_id),
            "type": 4,
            "flags": 0,
            "guild_id": str(self.world.guild_id),
            "name": "Midjourney",
            "parent_id": None,
            "position": 0,
            "permission_overwrites": [],
        }

    def me(self) -> Json:
        return user_json(self.world.app_user) | {
            "mfa_enabled": False,
            "locale": "en-US",
            "verified": True,
            "email": None,
            "bio": "",
        }

    def application(self) -> Json:
        """discord.py's login reads id, name, description, icon, bot_public, bot_require_code_grant,
        owner, verify_key; flags carry GATEWAY_MESSAGE_CONTENT_LIMITED (1 << 19)."""
        app = self.world.app_user
        owner = self.world.humans[0]
        return {
            "id": str(app.id),
            "name": app.username,
            "icon": None,
            "description": "Built-in Discord emulator of midshard.",
            "summary": "",
            "type": None,
            "is_monetized": False,
            "is_verified": False,
            "is_discoverable": False,
            "bot_public": False,
            "bot_require_code_grant": False,
            "verify_key": hashlib.sha256(f"verify/{app.id}".encode()).hexdigest(),
            "flags": 1 << 19,
            "hook": True,
            "bot": user_json(app),
            "owner": user_json(owner),
            "team": None,
            "tags": [],
            "redirect_uris": [],
            "interactions_endpoint_url": None,
            "approximate_guild_count": 1,
        }


def _embed(embed: Embed) -> Json:
    data: Json = {"type": "rich"}
    if embed.title is not None:
        data["title"] = embed.title
    if embed.description is not None:
        data["description"] = embed.description
    if embed.color:
        data["color"] = embed.color
    if embed.image_url is not None:
        data["image"] = {"url": embed.image_url, "proxy_url": embed.image_url, "width": 1024, "height": 1024}
    if embed.footer is not None:
        data["footer"] = {"text": embed.footer}
    data["content_scan_version"] = 1
    return data


def _button(button: Button, number: int) -> Json:
    data: Json = {"type": 2, "id": number, "style": 5 if button.url else 2}
    if button.label is not None:
        data["label"] = button.label
    if button.emoji is not None:
        data["emoji"] = {"name": button.emoji}
    if button.url is not None:
        data["url"] = button.url
    else:
        data["custom_id"] = button.custom_id
    return data


def _components(rows: tuple[tuple[Button, ...], ...]) -> list[Json]:
    out, number = [], 0
    for row in rows:
        number += 1
        row_id = number
        buttons = []
        for button in row:
            number += 1
            buttons.append(_button(button, number))
        out.append({"type": 1, "id": row_id, "components": buttons})
    return out


def _interaction(interaction: Interaction, guild_id: int) -> Json:
    metadata: Json = {
        "id": str(interaction.id),
        "type": interaction.type,
        "user": user_json(interaction.user),
        "authorizing_integration_owners": {"0": str(guild_id)},
    }
    if interaction.type == 2:
        metadata |= {"name": interaction.name, "command_type": 1}
        legacy: Json = {
            "id": str(interaction.id),
            "type": 2,
            "name": interaction.name,
            "user": user_json(interaction.user),
        }
        return {"interaction": legacy, "interaction_metadata": metadata}
    if interaction.target_id is not None:
        metadata["interacted_message_id"] = str(interaction.target_id)
    return {"interaction_metadata": metadata}
