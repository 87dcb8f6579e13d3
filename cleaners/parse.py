"""Raw Discord message (API or DiscordChatExporter shape) -> `ParsedMessage`.

Rules: docs/parsing-rules.md sections 3-6 (facts: Midjourney's documentation, https://docs.midjourney.com).
The bot is recognised by author id only. Content grammar:

    [start prefix] "**" prompt "**" " - " [action] mention {"(" tag ")"} ["\\n-# footer"]

DiscordChatExporter keeps the `**` but renders mentions as `@name`; other clean forms may drop
the `**`, so without them the tail is looked for after the last " - ". Parsing never raises on a
message with a usable `id`: wrong-typed fields count as absent.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from midshard.cleaners.arguments import Arguments, split_prompt
from midshard.cleaners.conditioning import own_conditioning
from midshard.raw_fields import as_dict, as_int, as_list, as_str, declared_attachments, filename_of
from midshard.records import Kind, ParsedMessage
from midshard.snowflakes import SnowflakeError, latest_valid, snowflake, snowflake_or_none, snowflake_time

# Start prefixes of in-progress button jobs, and the kind the job will have when finished.
_START_PREFIXES: tuple[tuple[Kind, re.Pattern[str]], ...] = (
    (Kind.VARIATION, re.compile(r"Making variations for image #\d+ with prompt ?")),
    (Kind.UPSCALE, re.compile(r"Upscaling image #\d+ with ?")),
    (Kind.VIDEO, re.compile(r"Creating video with prompt ?")),
)
# `[(Open on website for full quality)](<https://midjourney.com/jobs/…>)` -> `(Open on website …)`
_STATUS_LINK = re.compile(r"\[\(([^()\[\]]*)\)\]\(<?[^()\s<>]*>?\)")
_TAIL_WORD = r"\s\([^()\n]{1,40}\)"
_ACTIONS: tuple[tuple[Kind, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(rf"(?:\([^()\n]*\)\s*)*(?:{pattern})(?=\s|$)", re.IGNORECASE))
    for kind, pattern in (
        (Kind.UPSCALE, rf"Image #\d+|Upscal(?:ed|ing)(?:{_TAIL_WORD})? by"),
        (Kind.VARIATION, rf"Variations(?:{_TAIL_WORD})? by|Remaster by"),
        (Kind.REMIX, rf"Remix(?:{_TAIL_WORD})? by"),
        (Kind.ZOOM, r"Zoom Out by"),
        (Kind.PAN, r"Pan (?:Left|Right|Up|Down) by"),
    )
)
_MENTION = re.compile(r"<@!?\d+>|@\S")
_LEADING_TAGS = re.compile(r"^(?:\([^()\n]*\)\s*)+")  # `(25%) <@id>`: some versions put tags first
_TAG = re.compile(r"\(([^()\n]*)\)")
_PROGRESS_TAG = re.compile(r"waiting to start|\d{1,3}(?:\.\d+)?\s?%|stopped|paused", re.IGNORECASE)
_PREVIEW_FILE = re.compile(r"_grid_\d+\.webp$|_step_\d+", re.IGNORECASE)
_JOB_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_ANIMATED_FLAG = 1 << 5  # attachment flag IS_ANIMATED
_DESCRIBE_NAMES = frozenset({"describe", "shorten"})
_ANIMATING = re.compile(r"Animating(?:\.\.\.|…)?", re.IGNORECASE)  # an image-to-video job's placeholder


class MalformedMessageError(ValueError):
    """The message has no usable id (nothing else makes a message unparseable)."""


@dataclass(frozen=True, slots=True)
class Content:
    """The pieces of a bot message's `content`."""

    has_prompt: bool  # a `**…**` span (or a clean-form tail) was found
    raw_prompt: str = ""
    started: Kind | None = None  # kind announced by a start prefix (`Making variations for …`)
    action: Kind | None = None
    finished_tail: bool = False  # a ` - [action] mention (tags)` tail
    tags: tuple[str, ...] = ()


def parse_message(message: Any, bot_ids: Collection[int], channel_id: int = 0) -> ParsedMessage:
    """Parse one raw message. Raises `MalformedMessageError` only when it has no usable id.

    Every other id that is not a valid snowflake counts as absent (an attachment without one is
    skipped); every text field is `encodable` (a lone surrogate becomes U+FFFD)."""
    if not isinstance(message, dict):
        raise MalformedMessageError("message is not a JSON object")
    latest = latest_valid()
    try:
        message_id = snowflake(message.get("id"), "message id", latest=latest)
    except SnowflakeError as error:
        raise MalformedMessageError(str(error)) from None
    channel_id = snowflake_or_none(message.get("channel_id"), latest=latest) or channel_id
    author_id = snowflake_or_none(as_dict(message.get("author")).get("id"), latest=latest) or 0
    base = {
        "id": message_id,
        "channel_id": channel_id,
        "timestamp": _utc_timestamp(message.get("timestamp"), message_id),
        "author_id": author_id,
        "parent_id": parent_id(message, latest),
        "attachments": tuple(declared_attachments(message, latest)),
    }
    if author_id not in bot_ids:
        kind = Kind.NOT_MIDJOURNEY
        return ParsedMessage(kind=kind, image_conditioned=False, prompt="", raw_prompt="", **base)
    content = split_content(as_str(message.get("content")))
    args = split_prompt(content.raw_prompt) if content.has_prompt else Arguments("")
    final = final_kind(message, content, args)
    return ParsedMessage(
        kind=Kind.PROGRESS if in_progress(message, content) else final,
        image_conditioned=own_conditioning(final, args.image_urls),
        prompt=args.prompt,
        raw_prompt=content.raw_prompt,
        params=args.params,
        image_urls=args.image_urls,
        job_id=_job_id(message),
        **base,
    )


def split_content(content: str) -> Content:
    """Find the prompt, start prefix, action marker and status tags in `content`."""
    lines = [line for line in content.split("\n") if not line.lstrip().startswith("-# ")]
    text = _STATUS_LINK.sub(r"(\1)", "\n".join(lines))
    first = text.find("**")
    if first >= 0:
        end = text.rfind("** - ")
        if end >= first + 2:
            tail: str | None = text[end + 5 :]
        else:
            end = text.rstrip().rfind("**")
            if end < first + 2 or text[end + 2 :].strip():
                return Content(has_prompt=False)
            tail = None
        prompt_start, prompt_end = first + 2, end
        started = _start_prefix(text[:first].rstrip(), anchored_end=True)
    else:  # clean form without `**`: the tail follows the last " - " and starts with a mention
        prompt_end = text.rfind(" - ")
        tail = text[prompt_end + 3 :]
        if prompt_end < 0 or not _has_mention(_strip_action(tail)[1]):
            return Content(has_prompt=False)
        started = _start_prefix(text, anchored_end=False)
        prompt_start = started[1] if started else 0
    kind_started = started[0] if started else None
    prompt = text[prompt_start:prompt_end]
    if tail is None:
        return Content(has_prompt=True, raw_prompt=prompt, started=kind_started)
    action, rest = _strip_action(tail)
    return Content(
        has_prompt=True,
        raw_prompt=prompt,
        started=kind_started,
        action=action,
        finished_tail=_has_mention(rest),
        tags=tuple(tag.strip() for tag in _TAG.findall(rest)),
    )


def _start_prefix(text: str, anchored_end: bool) -> tuple[Kind, int] | None:
    """(announced kind, end offset) of a start prefix: the whole `text` before `**`, or its start."""
    for kind, pattern in _START_PREFIXES:
        match = pattern.fullmatch(text) if anchored_end else pattern.match(text)
        if match:
            return kind, match.end()
    return None


def _has_mention(rest: str) -> bool:
    """The tail after its action names the user (`<@id>`, `<@!id>`, `@name`), maybe after tags."""
    return bool(_MENTION.match(_LEADING_TAGS.sub("", rest, count=1)))


def _strip_action(tail: str) -> tuple[Kind | None, str]:
    for kind, pattern in _ACTIONS:
        match = pattern.match(tail)
        if match:
            return kind, tail[match.end() :].lstrip()
    return None, tail.lstrip()


def in_progress(message: dict, content: Content) -> bool:
    """Start messages, status tags `(Waiting to start)` `(NN%)` `(Stopped)` `(paused)`, previews."""
    return (
        content.started is not None
        or any(_PROGRESS_TAG.fullmatch(tag) for tag in content.tags)
        or any(_PREVIEW_FILE.search(filename_of(a)) for a in as_list(message.get("attachments")))
    )


def final_kind(message: dict, content: Content, args: Arguments) -> Kind:
    """Kind of a bot message, or of the finished job for an in-progress one (section 3)."""
    if interaction_name(message) in _DESCRIBE_NAMES:
        return Kind.DESCRIBE
    if not content.has_prompt:
        if _ANIMATING.fullmatch(as_str(message.get("content")).strip()):
            return Kind.VIDEO
        return Kind.DESCRIBE if _describe_embed(message) else Kind.OTHER
    if content.started is not None:
        return content.started
    if _is_video(args.params, as_list(message.get("attachments"))):
        return Kind.VIDEO
    if content.action is not None:
        return content.action
    if interaction_name(message) == "blend" or (not args.prompt and args.image_urls):
        return Kind.BLEND
    if content.finished_tail or _has_upscale_buttons(message):
        return Kind.GRID
    return Kind.OTHER


def _is_video(params: dict[str, str], attachments: list) -> bool:
    """2025+ animate jobs echo `--video 1` / `--motion`; the old `--video` flag only asked for a
    progress video of an ordinary grid, so a bare flag counts only with an animated attachment."""
    if "motion" in params or params.get("video"):
        return True
    return "video" in params and any(_animated(a) for a in attachments)


def _animated(attachment: Any) -> bool:
    a = as_dict(attachment)
    flags = as_int(a.get("flags")) or 0
    name = filename_of(a).lower()
    video = name.endswith((".mp4", ".gif")) or a.get("content_type") == "video/mp4"
    return bool(flags & _ANIMATED_FLAG) or video


def _describe_embed(message: dict) -> bool:
    """/describe answers (`1️⃣ …`) and /shorten answers arrive as embeds with empty content."""
    for embed in as_list(message.get("embeds")):
        embed = as_dict(embed)
        footer = as_str(as_dict(embed.get("footer")).get("text"))
        if "1️⃣" in as_str(embed.get("description")) or "shortened prompts" in footer:
            return True
    return False


def _has_upscale_buttons(message: dict) -> bool:
    return any(cid.startswith("MJ::JOB::upsample::") for cid in _custom_ids(message))


def interaction_name(message: dict) -> str:
    for key in ("interaction_metadata", "interaction"):
        name = as_dict(message.get(key)).get("name")
        if isinstance(name, str) and name:
            return name.lower()
    return ""


def parent_id(message: dict, latest: int | None = None) -> int | None:
    """`message_reference.message_id` (API) or `reference.messageId` (DCE); forwards are not parents."""
    reference = as_dict(message.get("message_reference"))
    if reference:
        if reference.get("type") in (1, "1"):
            return None
        return snowflake_or_none(reference.get("message_id"), latest=latest)
    reference = as_dict(message.get("reference"))
    if reference.get("type") == "Forward":
        return None
    return snowflake_or_none(reference.get("messageId"), latest=latest)


def _job_id(message: dict) -> str | None:
    filenames = (filename_of(a) for a in as_list(message.get("attachments")))
    for text in itertools.chain(filenames, _custom_ids(message)):
        match = _JOB_ID.search(text)
        if match:
            return match.group()
    return None


def _custom_ids(message: dict) -> Iterator[str]:
    for row in as_list(message.get("components")):
        for component in as_list(as_dict(row).get("components")):
            custom_id = as_dict(component).get("custom_id")
            if isinstance(custom_id, str):
                yield custom_id


def _utc_timestamp(value: Any, message_id: int) -> str:
    """ISO-8601 UTC with milliseconds; the snowflake's time when the field is missing or odd."""
    moment = None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    if moment is None or moment.tzinfo is None:
        moment = snowflake_time(message_id)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
