"""Typed records that travel between the stages: collectors -> raw store -> cleaners -> writers.

One enum of drop reasons for the whole pipeline: every candidate that does not reach a shard has
exactly one `Reason` (plus an optional detail, e.g. `duplicate_of:<key>`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


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
    """Why a candidate was dropped. The order here is the order the steps run in
    (docs/parsing-rules.md section 2): the funnel lists reasons in this order."""

    NOT_MIDJOURNEY = "not_midjourney"
    NOT_A_GENERATION = "not_a_generation"  # describe, shorten, ratings, notices
    PROGRESS = "progress"  # in-progress / stopped job messages and their previews
    IMAGE_CONDITIONED = "image_conditioned"
    GRID = "grid"  # 2x2 composites, skipped unless --grids split
    NO_ATTACHMENT = "no_attachment"
    NOT_AN_IMAGE = "not_an_image"
    OVERSIZED_FILE = "oversized_file"
    DOWNLOAD_FAILED = "download_failed"  # detail: why (http_404, gone, too_large, ...)
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
    size: int
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


@dataclass(frozen=True, slots=True)
class Sample:
    """One kept image-text pair, everything the writers need except the image bytes."""

    key: str
    message_id: int
    channel_id: int
    attachment_id: int
    tile: int
    timestamp: str  # ISO-8601 UTC
    url: str  # attachment URL without the ex/is/hm signature
    kind: str
    prompt: str  # clean prompt (.txt member)
    raw_prompt: str
    params: dict[str, str]
    width: int
    height: int
    format: str  # png | webp | jpeg (lower case, = member extension)
    file_size: int
    sha256: str  # of the member bytes
    phash: str  # 16 hex digits
    phash_impl: str
    nsfw_score: float
    nsfw_scorer: str


@dataclass(frozen=True, slots=True)
class Rejection:
    """One candidate that did not reach a shard, with its single reason."""

    key: str
    message_id: int
    channel_id: int
    attachment_id: int  # 0 when the message has no attachment
    tile: int
    timestamp: str
    kind: str
    prompt: str
    decision: str  # str(Decision)
    sha256: str = ""  # when media was stored (for thumbnails of dropped samples)
