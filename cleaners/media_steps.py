"""The steps that read an image's features (everything from `has_features` on, but dedup).

The features are facts about the bytes (`cleaners.image_features`: file size, header format, size
and frames, what examining them found, the hashes and the NSFW score) computed once per image and
cached; these steps apply the settings' rules to them, so changing a rule re-judges cached images
without decoding them again. The header rules (`pixel_limit`, `single_frame`, `resolution`) are
`Rules.header_decision`, applied once where features are computed and again to every cached entry
read under the current settings (`FeatureStore`), so their steps read the recorded outcome like the
other checks of the bytes. Dedup, `near_duplicate`, is `cleaners.dedup.NearDuplicate`.
"""

from __future__ import annotations

from midshard.cleaners.nsfw import nsfw_decision
from midshard.cleaners.steps import Candidate, Needs, Step
from midshard.records import KEEP, Decision, Reason, drop


def _outcome(c: Candidate) -> str:
    """What examining the bytes found: "keep", or the failure it recorded."""
    assert c.features is not None  # `HasFeatures` runs first
    return c.features.decision


class HasFeatures(Step):
    """A stored image whose features could not be computed (a worker died on it): tried again later."""

    name, reasons, needs = "has_features", (Reason.DOWNLOAD_FAILED,), Needs.FEATURES

    def __call__(self, c: Candidate) -> Decision:
        return KEEP if c.features is not None else drop(Reason.DOWNLOAD_FAILED, "no_features")


class _Found(Step):
    """A step whose one reason is what examining the bytes recorded (`Features.decision`)."""

    needs = Needs.FEATURES

    def __call__(self, c: Candidate) -> Decision:
        (reason,) = self.reasons
        return drop(reason) if _outcome(c) == reason else KEEP


class IntactMedia(_Found):
    """The stored bytes still hash to their name (a changed or damaged file is never used)."""

    name, reasons = "intact_media", (Reason.MEDIA_MISMATCH,)


class NonEmptyFile(_Found):
    """Zero bytes."""

    name, reasons = "non_empty_file", (Reason.EMPTY_FILE,)


class KnownFormat(_Found):
    """The header must be one of the formats Midjourney and Discord serve (PNG, WebP, JPEG, GIF)."""

    name, reasons = "known_format", (Reason.NOT_AN_IMAGE,)


class PixelLimit(_Found):
    """More header pixels than `max_image_pixels`: a decompression bomb, never decoded."""

    name, reasons = "pixel_limit", (Reason.DECOMPRESSION_BOMB,)


class SingleFrame(_Found):
    """Animations (more than one frame) are not still images."""

    name, reasons = "single_frame", (Reason.ANIMATED_IMAGE,)


class Resolution(_Found):
    """Area >= `min_pixels` (JourneyDB's "at least 1024x1024"), or short side >= `min_side` when set,
    on the size the header declares (a tile's own size for tiles)."""

    name, reasons = "resolution", (Reason.TOO_SMALL,)


class Decodes(Step):
    """Decoding the pixels must succeed: truncated data, or any other decode error."""

    name, reasons, needs = "decodes", (Reason.TRUNCATED_IMAGE, Reason.CORRUPT_IMAGE), Needs.FEATURES

    def __call__(self, c: Candidate) -> Decision:
        outcome = _outcome(c)
        return drop(Reason(outcome)) if outcome in self.reasons else KEEP


class NsfwThreshold(Step):
    """Drop when the NSFW score is above `nsfw_threshold` (strictly; no score never drops)."""

    name, reasons, needs = "nsfw_threshold", (Reason.NSFW,), Needs.FEATURES

    def __call__(self, c: Candidate) -> Decision:
        assert c.features is not None
        return nsfw_decision(c.features.nsfw_score, self.settings.nsfw_threshold)
