"""Typed records that travel between the stages: collectors -> raw store -> cleaners -> writers.

One enum of drop reasons for the whole pipeline: every candidate that does not reach a shard has
exactly one `Reason` (plus an optional detail, e.g. `duplicate_of:<key>`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """What a message is, as far as dataset building is concerned."""

    GRID = "grid"
    UPSCALE = "upscale"
    VARIATION = "variation"
    REMIX = "remix"
    ZOOM = "zoom"
    PAN = "pan"
    BLEND = "blend"
    DESCRIBE = "describe"
    VIDEO = "video"
    PROGRESS = "progress"
    OTHER = "other"
    NOT_MIDJOURNEY = "not_midjourney"


class Reason(StrEnum):
    """Why a candidate was dropped (docs/parsing-rules.md section 2). The order the steps run in,
    and so the funnel's order, is the step registry's (`midshard.cleaners.registry`)."""

    NOT_MIDJOURNEY = "not_midjourney"
    NOT_A_GENERATION = "not_a_generation"  # describe, shorten, ratings, notices
    PROGRESS = "progress"  # in-progress / stopped job messages and their previews
    IMAGE_CONDITIONED = "image_conditioned"
    EMPTY_PROMPT = "empty_prompt"  # nothing left to caption the image with once the prompt is cleaned
    GRID = "grid"  # 2x2 composites, skipped unless --grids split
    NO_ATTACHMENT = "no_attachment"
    NOT_AN_IMAGE = "not_an_image"
    OVERSIZED_FILE = "oversized_file"
    DOWNLOAD_FAILED = "download_failed"  # detail: why (http_404, gone, too_large, ...)
    MEDIA_MISMATCH = "media_mismatch"  # the stored file's bytes no longer hash to its name
    EMPTY_FILE = "empty_file"
    DECOMPRESSION_BOMB = "decompression_bomb"
    ANIMATED_IMAGE = "animated_image"
    TOO_SMALL = "too_small"
    TRUNCATED_IMAGE = "truncated_image"
    CORRUPT_IMAGE = "corrupt_image"
    DUPLICATE = "duplicate_of"  # detail: key of the earlier kept sample
    NSFW = "nsfw"


@dataclass(frozen=True, slots=True)
class Decision:
    """`keep`, or one reason with an optional detail; rendered as `reason` or `reason:detail`."""

    reason: Reason | None = None
    detail: str = ""

    @property
    def kept(self) -> bool:
        return self.reason is None

    def __str__(self) -> str:
        if self.reason is None:
            return "keep"
        return f"{self.reason.value}:{self.detail}" if self.detail else self.reason.value

    @classmethod
    def parse(cls, text: str) -> Decision:
        if text == "keep":
            return cls()
        code, _, detail = text.partition(":")
        return cls(Reason(code), detail)


KEEP = Decision()


def drop(reason: Reason, detail: str = "") -> Decision:
    return Decision(reason, detail)


def candidate_key(message_id: int, attachment_index: int = 0, tile: int = 0) -> str:
    """Numeric, dot-free, fixed-width, time-sortable sample key (23 digits).

    20-digit zero-padded message snowflake + 2-digit attachment index + tile digit (0 = whole
    image, 1-4 = grid tile when grids are split).
    """
    if not (0 <= attachment_index < 100 and 0 <= tile <= 4):
        raise ValueError(f"attachment index {attachment_index} / tile {tile} out of range")
    return f"{message_id:020d}{attachment_index:02d}{tile}"


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment as the message declares it (dimensions are only a hint, never trusted)."""

    id: int
    filename: str
    url: str
    size: int | None  # declared bytes; None when the message does not say
    content_type: str | None = None
    width: int | None = None
    height: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """What the parser derives from one raw message (API or DiscordChatExporter shape)."""

    id: int
    channel_id: int
    timestamp: str  # ISO-8601 UTC
    author_id: int
    kind: Kind
    image_conditioned: bool
    prompt: str  # cleaned: Midjourney arguments, image prompts and weights removed
    raw_prompt: str  # as echoed between the ** markers
    params: dict[str, str] = field(default_factory=dict)  # canonical name -> value as written
    image_urls: tuple[str, ...] = ()
    parent_id: int | None = None  # message_reference.message_id
    job_id: str | None = None
    attachments: tuple[Attachment, ...] = ()


def column(arrow: str, doc: str, **default: Any) -> Any:
    """A record field that is also a column: its Arrow type in the derived store (`midshard.schema`)
    and what it means (the dataset card and the docs quote it)."""
    return field(metadata={"arrow": arrow, "doc": doc}, **default)


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a candidate comes from: what a kept sample and a rejection both carry."""

    key: str = column("string", "20-digit message id + 2-digit attachment index + tile digit")
    message_id: int = column("uint64", "Discord message snowflake")
    channel_id: int = column("uint64", "Discord channel snowflake")
    attachment_id: int = column("uint64", "Discord attachment snowflake (0: the message has none)")
    tile: int = column("uint8", "0 = the whole image, 1-4 = a tile of a split 2x2 grid")
    timestamp: str = column("string", "ISO-8601 UTC time of the message")
    kind: str = column("string", "grid, upscale, ... (docs/parsing-rules.md)")
    prompt: str = column("string", "clean prompt: Midjourney arguments and :: weights removed")


@dataclass(frozen=True, slots=True)
class Sample(Provenance):
    """One kept image-text pair: everything the writers need except the image bytes."""

    url: str = column("string", "attachment URL without the expiring ex/is/hm signature")
    raw_prompt: str = column("string", "the prompt as posted, Midjourney arguments included")
    params: dict[str, str] = column("json", "parsed Midjourney arguments: canonical name -> value as written")
    width: int = column("int32", "pixels, from the image header")
    height: int = column("int32", "pixels, from the image header")
    format: str = column("string", "png | webp | jpeg | gif: the image member's extension")
    file_size: int = column("int64", "bytes of the image member")
    sha256: str = column("string", "hex sha256 of the image member's bytes")
    phash: str = column("hex64", "64-bit perceptual hash (imagehash pHash), 16 hex digits")
    phash_impl: str = column("string", "how phash was computed")
    nsfw_score: float | None = column("float64", "NSFW probability 0-1; null with the 'none' scorer")
    nsfw_scorer: str = column("string", "the NSFW scorer that produced nsfw_score")


@dataclass(frozen=True, slots=True)
class Rejection(Provenance):
    """One candidate that did not reach a shard, with its single reason."""

    decision: str = column("string", "the drop: reason code, or reason:detail")
    sha256: str = column("string", "sha256 of the stored media, empty when none was stored", default="")
