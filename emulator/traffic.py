"""The message generator: what message `i` of a stream is, as a pure function of (seed, stream, i).

`Mixture` (mixture.py) decides each message's kind and which earlier message it acts on; the
builders make the message of that kind — jobs (jobs.py), single images (singles.py), the bot's
other answers and people (chatter.py) — from the shared pieces in parts.py. A `Message` holds
content, not JSON (`messages.py` renders it), plus the `Truth` the emulator knows because it wrote
the message (model.py).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

from midshard.emulator import images
from midshard.emulator.chatter import Chatter
from midshard.emulator.config import EmulatorConfig
from midshard.emulator.determinism import rng
from midshard.emulator.jobs import Jobs
from midshard.emulator.mixture import Mixture
from midshard.emulator.model import Message, Slot
from midshard.emulator.singles import Singles
from midshard.emulator.world import Stream, World


class Traffic(Jobs, Singles, Chatter):
    """Messages of the emulated guild, built on demand and memoised."""

    def __init__(self, cfg: EmulatorConfig, world: World | None = None) -> None:
        self.cfg = cfg
        self.world = world or World(cfg)
        self.seed = cfg.seed
        self.mixture = Mixture(cfg.seed, self.world)
        self.message = lru_cache(maxsize=32_768)(self._build)

    def _build(self, stream: Stream, index: int) -> Message:
        ms = self.world.message_ms(stream, index)
        slot = Slot(
            stream, index, self.world.message_id(stream, index), ms, rng(self.seed, stream.index, index)
        )
        message = getattr(self, f"_{self.mixture.kind(stream, index)}")(slot)
        return _small_files(message) if self.cfg.small_files else message


def _small_files(message: Message) -> Message:
    """The message with its pictures served as small files (`EmulatorConfig.small_files`)."""
    attachments = []
    for attachment in message.attachments:
        media = images.small(attachment.media)
        if media is attachment.media:
            attachments.append(attachment)
            continue
        stem = attachment.filename.rsplit(".", 1)[0]
        attachments.append(
            dataclasses.replace(
                attachment,
                filename=f"{stem}.{media.fmt}",
                media=media,
                content_type=media.content_type,  # no file that lies about its type is converted
            )
        )
    return dataclasses.replace(message, attachments=tuple(attachments))
