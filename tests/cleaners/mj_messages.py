"""Midjourney messages built by the tests, in the Discord API shape (Discord developer docs, Message
resource) and converted to the DiscordChatExporter shape (its `JsonMessageWriter`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

BOT_ID = "936929561302675456"
NIJI_ID = "1022952195194359889"
USER_ID = "1012268717368946718"
USER_NAME = "oliverdaniel"
CHANNEL_ID = "1120568025993715764"
JOB = "c65f63de-b743-438f-9137-e6d8e46276ce"
_EPOCH = datetime(2015, 1, 1, tzinfo=UTC)

# 2023-07-15T09:07:15.570Z, the reference example's snowflake
BASE_ID = 1129700699438059520


def snowflake(n: int) -> str:
    """The n-th test message id: n seconds after the reference example."""
    return str(BASE_ID + (n * 1000 << 22))


def attachment(
    n: int,
    filename: str | None = None,
    width: int | None = 2048,
    height: int | None = 2048,
    content_type: str | None = "image/png",
    size: int = 8_095_579,
    flags: int | None = None,
) -> dict:
    filename = filename or f"{USER_NAME}_The_wolf_is_coming._{JOB}.png"
    url = f"https://cdn.discordapp.com/attachments/{CHANNEL_ID}/{n}/{filename}"
    query = "?ex=682471af&is=6823202f&hm=351b00575bf496bd35b1d64b5acd583523b8795233db84b24542ba4c73c770a9&"
    out = {
        "id": str(n),
        "filename": filename,
        "size": size,
        "url": url + query,
        "proxy_url": url.replace("cdn.discordapp.com", "media.discordapp.net") + query,
        "width": width,
        "height": height,
        "content_type": content_type,
        "content_scan_version": 1,
    }
    if flags is not None:
        out["flags"] = flags
    return out


def grid_components(job: str = JOB) -> list[dict]:
    def button(custom_id: str, label: str) -> dict:
        return {"type": 2, "custom_id": custom_id, "style": 2, "label": label}

    return [
        {"type": 1, "components": [button(f"MJ::JOB::upsample::{i}::{job}", f"U{i}") for i in range(1, 5)]},
        {"type": 1, "components": [button(f"MJ::JOB::variation::{i}::{job}", f"V{i}") for i in range(1, 5)]},
    ]


def api_message(
    n: int,
    content: str,
    attachments: list[dict] | None = None,
    author_id: str = BOT_ID,
    parent: int | None = None,
    components: list[dict] | None = None,
    interaction: str | None = None,
    embeds: list[dict] | None = None,
) -> dict:
    """A message as `GET /channels/{id}/messages` returns it (key order as captured)."""
    message_id = snowflake(n)
    moment = _EPOCH + timedelta(milliseconds=int(message_id) >> 22)
    message = {
        "type": 19 if parent is not None else 0,
        "content": content,
        "mentions": [{"id": USER_ID, "username": USER_NAME, "discriminator": "0", "global_name": USER_NAME}],
        "mention_roles": [],
        "attachments": attachments if attachments is not None else [attachment(10 * n + 1)],
        "embeds": embeds or [],
        "timestamp": moment.isoformat(timespec="microseconds"),
        "edited_timestamp": None,
        "flags": 0,
        "components": components or [],
        "id": message_id,
        "channel_id": CHANNEL_ID,
        "author": {
            "id": author_id,
            "username": "Midjourney Bot" if author_id in (BOT_ID, NIJI_ID) else USER_NAME,
            "discriminator": "9282",
            "bot": author_id in (BOT_ID, NIJI_ID),
        },
        "pinned": False,
        "mention_everyone": False,
        "tts": False,
    }
    if parent is not None:
        message["message_reference"] = {
            "type": 0,
            "channel_id": CHANNEL_ID,
            "message_id": snowflake(parent),
            "guild_id": "662267976984297473",
        }
    if interaction is not None:
        message["interaction_metadata"] = {"id": "1", "type": 2, "name": interaction, "user": {"id": USER_ID}}
        message["interaction"] = {"id": "1", "type": 2, "name": interaction, "user": {"id": USER_ID}}
    return message


_TYPES = {0: "Default", 19: "Reply"}


def to_dce(message: dict, local_offset_hours: int = 2) -> dict:
    """The same message as DiscordChatExporter writes it: camelCase, `@name` mentions, local time."""
    moment = datetime.fromisoformat(message["timestamp"]).astimezone(UTC)
    local = moment.astimezone(UTC).replace(tzinfo=None) + timedelta(hours=local_offset_hours)
    offset = f"+{local_offset_hours:02d}:00"
    out = {
        "id": message["id"],
        "type": _TYPES.get(message["type"], str(message["type"])),
        "timestamp": local.isoformat(timespec="milliseconds") + offset,
        "timestampEdited": None,
        "callEndedTimestamp": None,
        "isPinned": False,
        "content": re.sub(r"<@!?(\d+)>", f"@{USER_NAME}", message["content"]),
        "author": {
            "id": message["author"]["id"],
            "name": message["author"]["username"],
            "discriminator": "9282",
            "nickname": message["author"]["username"],
            "color": None,
            "isBot": message["author"].get("bot", False),
            "avatarUrl": "avatar.png",
        },
        "attachments": [
            {"id": a["id"], "url": a["url"], "fileName": a["filename"], "fileSizeBytes": a["size"]}
            for a in message["attachments"]
        ],
        "embeds": message["embeds"],
        "stickers": [],
        "reactions": [],
        "mentions": [{"id": USER_ID, "name": USER_NAME, "discriminator": "0000", "isBot": False}],
    }
    if "message_reference" in message:
        ref = message["message_reference"]
        out["reference"] = {"messageId": ref["message_id"], "channelId": ref["channel_id"], "guildId": None}
    if "interaction" in message:
        out["interaction"] = {"id": "1", "name": message["interaction"]["name"], "user": {"id": USER_ID}}
    return out
