"""The message steps (`from_midjourney` to `declared_size`): what the message alone decides; then
`stored`: whether the file is in the media store.

Rules: docs/parsing-rules.md section 2. The message steps run before any download (the collectors
fetch only what can pass them, `download = "filtered"`); `Stored` reads the attachment index.
"""

from __future__ import annotations

import posixpath
from urllib.parse import unquote, urlsplit

from midshard.cleaners.steps import Candidate, Needs, Step
from midshard.records import KEEP, Decision, Kind, Reason, drop

IMAGE_TYPES = frozenset({"image/png", "image/webp", "image/jpeg", "image/gif"})
IMAGE_EXTENSIONS = frozenset({".png", ".webp", ".jpg", ".jpeg", ".gif"})


class FromMidjourney(Step):
    """Only the Midjourney / niji bot's messages (author id, never the name)."""

    name, reasons = "from_midjourney", (Reason.NOT_MIDJOURNEY,)

    def __call__(self, c: Candidate) -> Decision:
        return KEEP if c.message.author_id in self.settings.bot_ids else drop(Reason.NOT_MIDJOURNEY)


class IsGeneration(Step):
    """Describe/shorten answers, ratings, notices and errors carry no generated image."""

    name, reasons = "is_generation", (Reason.NOT_A_GENERATION,)

    def __call__(self, c: Candidate) -> Decision:
        return drop(Reason.NOT_A_GENERATION) if c.message.kind in (Kind.DESCRIBE, Kind.OTHER) else KEEP


class IsFinished(Step):
    """In-progress / stopped jobs: their attachment is a low-resolution preview."""

    name, reasons = "is_finished", (Reason.PROGRESS,)

    def __call__(self, c: Candidate) -> Decision:
        return drop(Reason.PROGRESS) if c.message.kind is Kind.PROGRESS else KEEP


class TextOnly(Step):
    """JourneyDB keeps text-to-image generations only (`image_conditioned`, inherited included)."""

    name, reasons = "text_only", (Reason.IMAGE_CONDITIONED,)

    def __call__(self, c: Candidate) -> Decision:
        return drop(Reason.IMAGE_CONDITIONED) if c.message.image_conditioned else KEEP


class HasPrompt(Step):
    """The clean prompt is the caption: empty (only parameters, image links or invisible characters
    were written) means the image has nothing to be paired with."""

    name, reasons = "has_prompt", (Reason.EMPTY_PROMPT,)

    def __call__(self, c: Candidate) -> Decision:
        return KEEP if c.message.prompt else drop(Reason.EMPTY_PROMPT)


class GridPolicy(Step):
    """2x2 composites are skipped unless `grids = split`."""

    name, reasons = "grid_policy", (Reason.GRID,)

    def __call__(self, c: Candidate) -> Decision:
        skip = c.message.kind is Kind.GRID and self.settings.grids == "skip"
        return drop(Reason.GRID) if skip else KEEP


class HasAttachment(Step):
    """A generation message whose image is missing."""

    name, reasons = "has_attachment", (Reason.NO_ATTACHMENT,)

    def __call__(self, c: Candidate) -> Decision:
        return KEEP if c.attachment is not None else drop(Reason.NO_ATTACHMENT)


class DeclaredImage(Step):
    """The declared content type (or, without one, the file extension) must be an image type."""

    name, reasons = "declared_image", (Reason.NOT_AN_IMAGE,)

    def __call__(self, c: Candidate) -> Decision:
        assert c.attachment is not None
        declared = (c.attachment.content_type or "").split(";")[0].strip().lower()
        if declared:
            return KEEP if declared in IMAGE_TYPES else drop(Reason.NOT_AN_IMAGE)
        name = c.attachment.filename or posixpath.basename(unquote(urlsplit(c.attachment.url).path))
        extension = posixpath.splitext(name)[1].lower()
        return KEEP if not extension or extension in IMAGE_EXTENSIONS else drop(Reason.NOT_AN_IMAGE)


class DeclaredSize(Step):
    """Attachments larger than `max_file_size` are never downloaded."""

    name, reasons = "declared_size", (Reason.OVERSIZED_FILE,)

    def __call__(self, c: Candidate) -> Decision:
        assert c.attachment is not None
        oversized = (c.attachment.size or 0) > self.settings.max_file_size
        return drop(Reason.OVERSIZED_FILE) if oversized else KEEP


class Stored(Step):
    """The bytes must be in the media store; otherwise the attachment index says why."""

    name, reasons, needs = "stored", (Reason.OVERSIZED_FILE, Reason.DOWNLOAD_FAILED), Needs.STORED

    def __call__(self, c: Candidate) -> Decision:
        result = c.stored
        if result is not None and result.sha256:
            return KEEP
        if result is not None and result.error == "too_large":
            return drop(Reason.OVERSIZED_FILE)
        return drop(Reason.DOWNLOAD_FAILED, result.error if result is not None else "not_downloaded")
