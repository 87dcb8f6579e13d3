"""DiscordChatExporter export files written by the tests themselves (current DCE JSON shape)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

MIDJOURNEY_BOT = {
    "id": "936929561302675456",
    "name": "Midjourney Bot",
    "discriminator": "9282",
    "nickname": "Midjourney Bot",
    "color": None,
    "isBot": True,
    "roles": [],
    "avatarUrl": "https://cdn.discordapp.com/avatars/936929561302675456/f6ce562a.png",
}


def dce_message(message_id: int, attachments: list[dict], content: str = "") -> dict:
    """One message in the current DCE JSON shape (camelCase, type as a name)."""
    return {
        "id": str(message_id),
        "type": "Default",
        "timestamp": "2024-05-01T10:00:00.123+00:00",
        "timestampEdited": None,
        "callEndedTimestamp": None,
        "isPinned": False,
        "content": content or f"**a lighthouse at dusk {message_id} --ar 1:1** - <@123> (fast)",
        "author": MIDJOURNEY_BOT,
        "attachments": attachments,
        "embeds": [],
        "stickers": [],
        "reactions": [],
        "mentions": [],
        "inlineEmojis": [],
    }


def dce_document(channel_id: int, messages: list[dict]) -> dict:
    return {
        "guild": {"id": "748545324524575035", "name": "Art guild", "iconUrl": "icon.png"},
        "channel": {
            "id": str(channel_id),
            "type": "GuildTextChat",
            "categoryId": "748545324524575036",
            "category": "Generations",
            "name": "mj-ünïcode",
            "topic": None,
        },
        "dateRange": {"after": None, "before": None},
        "exportedAt": "2024-05-02T00:00:00.000+00:00",
        "messages": messages,
        "messageCount": len(messages),
    }


def write_json(path: Path, document: dict, bom: bool = True) -> Path:
    text = json.dumps(document, indent=2, ensure_ascii=False)
    path.write_bytes(("\ufeff" + text if bom else text).encode("utf-8"))
    return path


MakeExport = Callable[..., tuple[Path, dict[int, bytes]]]


def dce_from_api(message: dict) -> dict:
    """An API message as DiscordChatExporter writes it (without --media: attachment URLs kept)."""
    author = message["author"]
    return {
        "id": message["id"],
        "type": {0: "Default", 19: "Reply"}.get(message["type"], str(message["type"])),
        "timestamp": message["timestamp"],
        "timestampEdited": message["edited_timestamp"],
        "callEndedTimestamp": None,
        "isPinned": message["pinned"],
        "content": message["content"],
        "author": {
            "id": author["id"],
            "name": author["username"],
            "discriminator": author["discriminator"],
            "nickname": author.get("global_name") or author["username"],
            "color": None,
            "isBot": author.get("bot", False),
            "avatarUrl": "",
        },
        "attachments": [
            {"id": a["id"], "url": a["url"], "fileName": a["filename"], "fileSizeBytes": a["size"]}
            for a in message["attachments"]
        ],
        "embeds": [],
        "stickers": [],
        "reactions": [],
        "mentions": [],
    }
