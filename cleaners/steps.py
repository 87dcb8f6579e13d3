"""The cleaning steps of docs/parsing-rules.md section 2, one small pure function each.

A step takes a candidate (one attachment, or one grid tile, of one parsed message) and returns
`KEEP` or one drop `Decision`. Steps 1-8 need only the message; 9 the attachment index; 10-15 the
image features; 16 (dedup) works on a whole batch and lives in pipeline.py; 17 needs the score.
`StepCounter` counts, per step, how many candidates it saw and dropped (datatrove-style stats).
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from midshard.cleaners.grids import tile_boxes
from midshard.cleaners.images import resolution_decision
from midshard.records import KEEP, Attachment, Decision, Kind, ParsedMessage, Reason, candidate_key, drop
from midshard.settings import Settings

if TYPE_CHECKING:
    from midshard.cleaners.features import Features

IMAGE_TYPES = frozenset({"image/png", "image/webp", "image/jpeg", "image/gif"})
IMAGE_EXTENSIONS = frozenset({".png", ".webp", ".jpg", ".jpeg", ".gif"})
MESSAGE_ONLY = "message_only"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One attachment (or grid tile) of one message, with what is known about it so far."""

    key: str
    message: ParsedMessage
    attachment_index: int
    tile: int  # 0 = whole image, 1-4 = grid tile
    attachment: Attachment | None
    sha256: str | None = None  # from the attachment index, when the bytes are stored
    decision: Decision | None = None  # None = undecided so far

    @property
    def attachment_id(self) -> int:
        return self.attachment.id if self.attachment else 0


def candidates_of(message: ParsedMessage, settings: Settings) -> list[Candidate]:
    """One candidate per attachment (tiles 1-4 of each for a grid when grids are split)."""
    if not message.attachments:
        return [Candidate(candidate_key(message.id), message, 0, 0, None)]
    tiles = (1, 2, 3, 4) if message.kind is Kind.GRID and settings.grids == "split" else (0,)
    return [
        Candidate(candidate_key(message.id, index, tile), message, index, tile, attachment)
        for index, attachment in enumerate(message.attachments[:100])
        for tile in tiles
    ]


# -- steps 1-8: the message alone ----------------------------------------------------------------
MessageStep = Callable[[Candidate, Settings], Decision]


def from_midjourney(c: Candidate, settings: Settings) -> Decision:
    """1. Only the Midjourney / niji bot's messages (author id, never the name)."""
    return KEEP if c.message.author_id in settings.bot_ids else drop(Reason.NOT_MIDJOURNEY)


def is_generation(c: Candidate, settings: Settings) -> Decision:
    """2. Describe/shorten answers, ratings, notices and errors carry no generated image."""
    return drop(Reason.NOT_A_GENERATION) if c.message.kind in (Kind.DESCRIBE, Kind.OTHER) else KEEP


def is_finished(c: Candidate, settings: Settings) -> Decision:
    """3. In-progress / stopped jobs: their attachment is a low-resolution preview."""
    return drop(Reason.PROGRESS) if c.message.kind is Kind.PROGRESS else KEEP


def text_only(c: Candidate, settings: Settings) -> Decision:
    """4. JourneyDB keeps text-to-image generations only (`image_conditioned`, incl. inherited)."""
    return drop(Reason.IMAGE_CONDITIONED) if c.message.image_conditioned else KEEP


def grid_policy(c: Candidate, settings: Settings) -> Decision:
    """5. 2x2 composites are skipped unless `grids = split`."""
    return drop(Reason.GRID) if c.message.kind is Kind.GRID and settings.grids == "skip" else KEEP


def has_attachment(c: Candidate, settings: Settings) -> Decision:
    """6. A generation message whose image is missing."""
    return KEEP if c.attachment is not None else drop(Reason.NO_ATTACHMENT)


def declared_image(c: Candidate, settings: Settings) -> Decision:
    """7. Declared content type (or, without one, the file extension) must be an image type."""
    assert c.attachment is not None
    declared = (c.attachment.content_type or "").split(";")[0].strip().lower()
    if declared:
        return KEEP if declared in IMAGE_TYPES else drop(Reason.NOT_AN_IMAGE)
    extension = posixpath.splitext(c.attachment.filename or _url_name(c.attachment.url))[1].lower()
    return KEEP if not extension or extension in IMAGE_EXTENSIONS else drop(Reason.NOT_AN_IMAGE)


def declared_size(c: Candidate, settings: Settings) -> Decision:
    """8. Attachments larger than `max_file_size` are never downloaded."""
    assert c.attachment is not None
    return drop(Reason.OVERSIZED_FILE) if c.attachment.size > settings.max_file_size else KEEP


MESSAGE_STEPS: tuple[MessageStep, ...] = (
    from_midjourney,
    is_generation,
    is_finished,
    text_only,
    grid_policy,
    has_attachment,
    declared_image,
    declared_size,
)


def declared_resolution(c: Candidate, settings: Settings) -> Decision:
    """14 without media, on the dimensions the message declares (explain's message-only answer)."""
    a = c.attachment
    if a is None or not a.width or not a.height:
        return KEEP
    width, height = a.width, a.height
    if c.tile:
        left, upper, right, lower = tile_boxes(width, height)[c.tile - 1]
        width, height = right - left, lower - upper
    decision = resolution_decision(width, height, settings.min_pixels, settings.min_side)
    return decision if decision.kept else drop(Reason.TOO_SMALL, MESSAGE_ONLY)


def _url_name(url: str) -> str:
    return posixpath.basename(unquote(urlsplit(url).path))


# -- step 9: the attachment index ----------------------------------------------------------------
def stored(error: str | None, sha256: str | None) -> Decision:
    """9. Bytes must be in the media store; otherwise the attachment index says why."""
    if sha256:
        return KEEP
    if error == "too_large":
        return drop(Reason.OVERSIZED_FILE)
    return drop(Reason.DOWNLOAD_FAILED, error or "not_downloaded")


# -- steps 10-15: the image features ---------------------------------------------------------------
def media_checks(features: Features) -> Decision:
    """10-15: the header, resolution and decode outcome `FeatureStore` judged under the settings."""
    return Decision.parse(features.decision)


# -- running and counting ------------------------------------------------------------------------
def run_steps(c: Candidate, steps: tuple[MessageStep, ...], settings: Settings) -> Decision:
    """Apply `steps` in order; the first drop wins."""
    for step in steps:
        decision = step(c, settings)
        if not decision.kept:
            return decision
    return KEEP


def funnel_key(decision: Decision) -> str:
    """Count key of a final decision: the reason code; download failures keep their cause."""
    if decision.reason is Reason.DOWNLOAD_FAILED:
        return str(decision)
    return decision.reason.value if decision.reason else "keep"


def funnel(decisions: Iterable[Decision]) -> dict[str, int]:
    """Counts per reason, in step order, `keep` last (the funnel of a run)."""
    counts = Counter(funnel_key(d) for d in decisions)
    order = {code: i for i, code in enumerate(FUNNEL_ORDER)}
    return {k: counts[k] for k in sorted(counts, key=lambda k: (order[k.split(":")[0]], k))}


# Reason codes in the order of the steps that produce them, then "keep".
FUNNEL_ORDER = (*(r.value for r in Reason), "keep")
