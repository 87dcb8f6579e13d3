"""What an emulated message is: content as objects, not JSON (`messages.py` renders them), plus the
`Truth` the emulator knows because it wrote the message — the kind, whether the pixels depend on
an image, the clean prompt, the parameters and image URLs (docs/parsing-rules.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from random import Random
from typing import Any

from midshard.emulator.images import Media
from midshard.emulator.prompts import Prompt
from midshard.emulator.world import Stream, User

ATTACHMENT_ANIMATED = 1 << 5
TYPE_DEFAULT, TYPE_REPLY, TYPE_COMMAND = 0, 19, 20


@dataclass(frozen=True, slots=True)
class Attachment:
    id: int
    filename: str
    media: Media
    content_type: str  # as declared in the JSON (a mislabelled file lies here)
    declared: tuple[int, int] | None  # width/height in the JSON; None for non-images
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Button:
    label: str | None = None
    custom_id: str | None = None
    emoji: str | None = None
    url: str | None = None  # link buttons (style 5) have a url instead of a custom_id


@dataclass(frozen=True, slots=True)
class Embed:
    title: str | None = None
    description: str | None = None
    image_url: str | None = None
    footer: str | None = None
    color: int = 0


@dataclass(frozen=True, slots=True)
class Interaction:
    id: int
    type: int  # 2 slash command, 3 button
    name: str
    user: User
    target_id: int | None = None  # the message whose button was pressed


@dataclass(frozen=True, slots=True)
class Truth:
    """What midshard must read from the message (kind, conditioning, clean prompt, params, URLs)."""

    kind: str
    image_conditioned: bool = False
    prompt: str = ""
    params: tuple[tuple[str, str], ...] = ()
    image_urls: tuple[str, ...] = ()

    @classmethod
    def of(cls, kind: str, conditioned: bool, prompt: Prompt) -> Truth:
        params = tuple(prompt.canonical_params.items())
        return cls(kind, conditioned, prompt.clean, params, prompt.image_urls)


@dataclass(frozen=True, slots=True)
class Job:
    """A Midjourney job, for the messages that act on its result later."""

    uuid: str
    user: User
    prompt: Prompt
    version: str
    conditioned: bool  # the pixels depend on an image (here or in an ancestor)
    tiles: tuple[str, str, str, str] | None = None  # grid jobs: the four tile contents
    tile_size: tuple[int, int] = (0, 0)
    image: str | None = None  # single-image jobs: the content key ...
    image_size: tuple[int, int] = (0, 0)  # ... and the size of its file
    grid: Message | None = None  # U-crops: the grid and tile they come from
    tile_number: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    stream: Stream
    index: int
    id: int
    ms: int
    author: User
    type: int
    content: str
    truth: Truth
    attachments: tuple[Attachment, ...] = ()
    embeds: tuple[Embed, ...] = ()
    components: tuple[tuple[Button, ...], ...] = ()
    parent: Message | None = None
    interaction: Interaction | None = None
    edited_ms: int | None = None
    mentions: tuple[User, ...] = ()
    job: Job | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a message goes: the facts every builder starts from (`r` is the message's own random
    stream)."""

    stream: Stream
    index: int
    id: int
    ms: int
    r: Random

    def message(self, author: User, message_type: int, content: str, truth: Truth, **fields: Any) -> Message:
        """The message at this slot (`fields`: the optional `Message` fields)."""
        return Message(
            self.stream, self.index, self.id, self.ms, author, message_type, content, truth, **fields
        )
