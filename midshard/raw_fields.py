"""Fields of a raw Discord message (API or DiscordChatExporter shape), read one way wherever they
are read: the collectors (which attachments to download) and the cleaners (the parser) both go
through here. A wrong-typed value counts as absent, text is `encodable`, and an attachment without
a valid snowflake id is skipped.
"""

from __future__ import annotations

import re
from typing import Any

from midshard.records import Attachment
from midshard.snowflakes import snowflake_or_none

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # in a str, paired surrogates are already one character


def declared_attachments(message: Any, latest: int | None = None) -> list[Attachment]:
    """The attachments a message declares, in its order. API `filename`/`size`/`content_type`/
    `width`/`height`, DCE `fileName`/`fileSizeBytes`; a size that is not a count is undeclared."""
    found = []
    for entry in as_list(as_dict(message).get("attachments")):
        a = as_dict(entry)
        attachment_id = snowflake_or_none(a.get("id"), latest=latest)
        if attachment_id is None:
            continue
        size = as_int(a.get("size", a.get("fileSizeBytes")))
        content_type = a.get("content_type")
        found.append(
            Attachment(
                id=attachment_id,
                filename=filename_of(a),
                url=as_str(a.get("url")),
                size=size if size is not None and size >= 0 else None,
                content_type=encodable(content_type) if isinstance(content_type, str) else None,
                width=as_int(a.get("width")),
                height=as_int(a.get("height")),
            )
        )
    return found


def filename_of(attachment: Any) -> str:
    a = as_dict(attachment)
    return as_str(a.get("filename", a.get("fileName")))


def as_int(value: Any) -> int | None:
    """An int, or a string of ASCII digits; anything else (bools included) is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def as_str(value: Any) -> str:
    return encodable(value) if isinstance(value, str) else ""


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def encodable(text: str) -> str:
    """`text` with each lone surrogate (a `\\udXXX` JSON escape without its pair, which no UTF-8 file,
    Parquet column or terminal accepts) replaced by U+FFFD."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)
