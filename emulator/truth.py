"""Ground truth: what midshard must decide about every served message under default settings.

It is built from what the generator knows (the kind it chose, the pixels it planted, the files it
broke), never by parsing the messages, and it follows the steps of docs/parsing-rules.md section 2 in
order, one reason per candidate. Near-duplicates are tracked by content identity: a copy of an
earlier *kept* picture is `duplicate_of:<that candidate's key>`; the first kept one wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from midshard.emulator.config import EmulatorConfig
from midshard.emulator.faults import Faults
from midshard.emulator.model import Attachment, Message
from midshard.emulator.traffic import Traffic
from midshard.records import Reason, candidate_key
from midshard.settings import Settings

IMAGE_TYPES = ("image/png", "image/webp", "image/jpeg", "image/gif")
NOT_GENERATIONS = ("describe", "other")


def _default(name: str) -> object:
    return Settings.model_fields[name].get_default(call_default_factory=True)


@dataclass(frozen=True)
class Defaults:
    """The settings the truth is computed for (midshard's defaults)."""

    bot_ids: tuple[int, ...] = tuple(_default("bot_ids"))  # type: ignore[arg-type]
    min_pixels: int = int(_default("min_pixels"))  # type: ignore[call-overload]
    max_file_size: int = int(_default("max_file_size"))  # type: ignore[call-overload]
    max_image_pixels: int = int(_default("max_image_pixels"))  # type: ignore[call-overload]


DEFAULTS = Defaults()


def _message_level(message: Message, attachment: Attachment | None, conditioned: bool) -> str | None:
    """The message steps (`from_midjourney` to `declared_size`): what the message decides, or None
    if the candidate passes them."""
    kind = message.truth.kind
    if message.author.id not in DEFAULTS.bot_ids:
        return Reason.NOT_MIDJOURNEY.value
    if kind in NOT_GENERATIONS:
        return Reason.NOT_A_GENERATION.value
    if kind == "progress":
        return Reason.PROGRESS.value
    if conditioned:
        return Reason.IMAGE_CONDITIONED.value
    if kind == "grid":
        return Reason.GRID.value
    if attachment is None:
        return Reason.NO_ATTACHMENT.value
    if attachment.content_type.split(";")[0].strip() not in IMAGE_TYPES:
        return Reason.NOT_AN_IMAGE.value
    if attachment.media.size > DEFAULTS.max_file_size:
        return Reason.OVERSIZED_FILE.value
    return None


def _too_small(width: int, height: int) -> bool:
    return width * height < DEFAULTS.min_pixels


def _media_level(attachment: Attachment, gone: bool) -> str | None:
    """`stored` to `decodes`: what the downloaded bytes decide (the emulator knows what it served)."""
    media = attachment.media
    if gone:
        return f"{Reason.DOWNLOAD_FAILED.value}:gone"
    if media.size == 0:
        return Reason.EMPTY_FILE.value
    if media.recipe in ("html", "file"):
        return Reason.NOT_AN_IMAGE.value
    if media.width * media.height > DEFAULTS.max_image_pixels:
        return Reason.DECOMPRESSION_BOMB.value
    if media.frames > 1:
        return Reason.ANIMATED_IMAGE.value
    if _too_small(media.width, media.height):
        return Reason.TOO_SMALL.value
    if media.recipe == "truncated":
        return Reason.TRUNCATED_IMAGE.value
    if media.recipe == "corrupt":
        return Reason.CORRUPT_IMAGE.value
    return None


def message_only_decision(message: Message) -> str:
    """What `midshard explain` says without media, given the served messages (so parents are
    found among them): the message steps, then the resolution rule on the declared dimensions."""
    decisions = []
    for attachment in message.attachments or (None,):
        decision = _message_level(message, attachment, message.truth.image_conditioned)
        if (
            decision is None
            and attachment is not None
            and attachment.declared
            and _too_small(*attachment.declared)
        ):
            decision = f"{Reason.TOO_SMALL.value}:message_only"
        decisions.append(decision or "keep")
    return _of_message(decisions)


def _of_message(decisions: list[str]) -> str:
    """A message is kept if any candidate is, otherwise it says why its first candidate was dropped."""
    return "keep" if "keep" in decisions else decisions[0]


class TruthBuilder:
    """Walks the messages in id order per stream, keeping the near-duplicate state."""

    def __init__(self, cfg: EmulatorConfig, traffic: Traffic | None = None) -> None:
        self.cfg = cfg
        self.traffic = traffic or Traffic(cfg)
        self.faults = Faults(cfg)

    def lines(self, grown: int = 0) -> Iterator[dict[str, object]]:
        for stream in self.traffic.world.streams:
            kept: dict[str, str] = {}  # content identity -> key of the first kept candidate
            for index in range(stream.base_count + grown):
                yield self.line(self.traffic.message(stream, index), kept)

    def line(self, message: Message, kept: dict[str, str]) -> dict[str, object]:
        candidates = []
        for number, attachment in enumerate(message.attachments or (None,)):
            key = candidate_key(message.id, number)
            decision = _message_level(message, attachment, message.truth.image_conditioned)
            if decision is None and attachment is not None:
                decision = _media_level(attachment, self.faults.gone(attachment.id))
                identity = attachment.media.identity
                if decision is None and identity is not None:
                    if identity in kept:
                        decision = f"{Reason.DUPLICATE.value}:{kept[identity]}"
                    else:
                        kept[identity] = key
            candidates.append({"key": key, "decision": decision or "keep"})
        decisions = [candidate["decision"] for candidate in candidates]
        truth = message.truth
        return {
            "id": str(message.id),
            "channel_id": str(message.stream.id),
            "kind": truth.kind,
            "image_conditioned": truth.image_conditioned,
            "prompt": truth.prompt,
            "params": dict(truth.params),
            "image_urls": list(truth.image_urls),
            "decision": _of_message(decisions),
            "message_decision": message_only_decision(message),
            "candidates": candidates,
        }


def generate_truth(cfg: EmulatorConfig, grown: int = 0) -> list[dict[str, object]]:
    """Truth lines for every message the emulator serves with `cfg` (after `grow(grown)`)."""
    return list(TruthBuilder(cfg).lines(grown))
