"""The emulated guild: its channels and threads ("streams" of messages), the users who post in them,
and where each message sits in time. Everything is derived from the config; nothing is stored.

Message `i` of a stream is posted at a time that grows with `i` (an even spread over late 2022 to
late 2025, jittered; messages `grow` adds come ten minutes apart after that), and its id is the
snowflake of that time with the stream's own worker/process bits, so ids are unique across the guild
and sort like Discord's. `grow` only appends indices.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import overload

from midshard.emulator import snowflakes
from midshard.emulator.config import EmulatorConfig
from midshard.emulator.determinism import digest64, draw, rng
from midshard.emulator.snowflakes import date_ms

TIME_START = date_ms(2022, 11, 10)
TIME_END = date_ms(2025, 9, 30)
GROWN_STEP_MS = 600_000  # ten minutes between messages `grow` adds
STATIC = (31, 31)  # worker/process of guild, channel, thread and user ids

MIDJOURNEY_BOT_ID = 936929561302675456


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    global_name: str | None
    avatar: str | None
    discriminator: str = "0"
    bot: bool = False
    public_flags: int = 0


MIDJOURNEY = User(
    MIDJOURNEY_BOT_ID, "Midjourney Bot", None, "f6ce562a6b4979c4b1cbc5b436d3be76", "9282", True, 589824
)

USERNAMES = (
    "camcooke",
    "forrynie.1981",
    "Alex_Poloz",
    "oliverdaniel",
    "u2233346927",
    "HelenAnderson",
    "pixelmonk",
    "nora.draws",
    "kaito_ai",
    "lumenfox",
    "vaporwave_dad",
    "m.chen",
    "sakura_neko",
    "grimdarkgus",
    "u1098847312",
    "astrid.v",
    "bluehourbob",
    "studio.kiwi",
    "tomasz_k",
    "dreamweaver99",
    "mjfan_2023",
    "j.okafor",
    "pale_blue",
    "rocketraccoon42",
    "anna.lindqvist",
    "hyperreal_hank",
    "lofi.lena",
    "u3301987765",
    "moebius_kid",
    "cyber.sam",
    "wanderlust.ai",
    "inkandbytes",
    "quietmachine",
    "pablo.r",
    "zenith_art",
    "mooncake88",
)
GLOBAL_NAMES = (None, "Cam", "🌸 Sakura", "Ålex P.", "Helen A.", "Kaito 海斗", "Nora", "Gus", "Lena ☕")


@dataclass(frozen=True, slots=True)
class Stream:
    """A channel (type 0) or a public thread (type 11) with its own messages."""

    index: int
    id: int
    name: str
    type: int
    parent_id: int | None
    base_count: int
    created_ms: int
    archived: bool = False

    def __hash__(self) -> int:  # streams key many caches: hash the id, not every field
        return self.id

    @property
    def worker_process(self) -> tuple[int, int]:
        return self.index % 32, self.index // 32

    @property
    def step_ms(self) -> float:
        return (TIME_END - TIME_START) / max(1, self.base_count)


class World:
    def __init__(self, cfg: EmulatorConfig) -> None:
        self.cfg = cfg
        self.guild_id = snowflakes.make(date_ms(2022, 3, 1), *STATIC, 0)
        self.category_id = snowflakes.make(date_ms(2022, 3, 1) + 1000, *STATIC, 0)
        self.app_user = User(
            snowflakes.make(date_ms(2022, 2, 20) + cfg.seed % 86_400_000, *STATIC, 1),
            "midshard-emulator",
            None,
            None,
            bot=True,
        )
        channels = [
            Stream(
                index=c,
                id=snowflakes.make(date_ms(2022, 3, 2) + 60_000 * c, *STATIC, 2),
                name=self._channel_name(c),
                type=0,
                parent_id=None,
                base_count=cfg.messages,
                created_ms=date_ms(2022, 3, 2) + 60_000 * c,
            )
            for c in range(cfg.channels)
        ]
        threads = []
        for c, channel in enumerate(channels):
            for t in range(cfg.threads):
                created = TIME_START - 3_600_000 + 1000 * (c * cfg.threads + t)
                threads.append(
                    Stream(
                        index=cfg.channels + c * cfg.threads + t,
                        id=snowflakes.make(created, *STATIC, 3),
                        name=self._thread_name(c, t),
                        type=11,
                        parent_id=channel.id,
                        base_count=cfg.thread_messages,
                        created_ms=created,
                        archived=t % 2 == 1,
                    )
                )
        self.channels: tuple[Stream, ...] = tuple(channels)
        self.threads: tuple[Stream, ...] = tuple(threads)
        self.streams: tuple[Stream, ...] = self.channels + self.threads
        self._by_id = {stream.id: stream for stream in self.streams}
        self._by_bits = {stream.worker_process: stream for stream in self.streams}

    def _channel_name(self, c: int) -> str:
        names = ("newbies", "general", "showcase", "daily-theme", "v6-testing", "niji-lounge", "prompt-craft")
        return f"{names[c % len(names)]}-{c + 1}"

    def _thread_name(self, c: int, t: int) -> str:
        topics = ("prompt help", "sref codes", "weekly challenge", "upscale comparisons", "bug reports")
        return f"{topics[(c + t) % len(topics)]} #{t + 1}"

    @cached_property
    def humans(self) -> tuple[User, ...]:
        """The people who run jobs and chat; a seed picks 24 of them."""
        pick = rng(self.cfg.seed, "humans")
        names = pick.sample(USERNAMES, 24)
        users = []
        for n, name in enumerate(names):
            born = pick.randrange(date_ms(2016, 1, 1), date_ms(2022, 6, 1))
            avatar = f"{digest64(self.cfg.seed, name):016x}{digest64(name, 'avatar'):016x}"
            users.append(
                User(
                    snowflakes.make(born, n % 31, 30, 0),
                    name,
                    pick.choice(GLOBAL_NAMES) or name,
                    None if pick.random() < 0.2 else avatar,
                )
            )
        return tuple(users)

    def stream(self, channel_id: int) -> Stream | None:
        return self._by_id.get(channel_id)

    def stream_of_snowflake(self, snowflake: int) -> Stream | None:
        """The stream a message or attachment id was minted in (from its worker/process bits)."""
        return self._by_bits.get(snowflakes.worker_process(snowflake))

    # -- time and ids ------------------------------------------------------------------------

    def message_ms(self, stream: Stream, index: int) -> int:
        """Messages of the base spread evenly to TIME_END; grown ones follow GROWN_STEP_MS apart, so
        growth never reaches a time after now (Discord mints no id in the future)."""
        jitter = 0.1 + 0.8 * draw(self.cfg.seed, "time", stream.index, index)
        if index < stream.base_count:
            return TIME_START + int((index + jitter) * stream.step_ms)
        return TIME_END + int((index - stream.base_count + jitter) * min(stream.step_ms, GROWN_STEP_MS))

    def message_id(self, stream: Stream, index: int) -> int:
        return snowflakes.make(self.message_ms(stream, index), *stream.worker_process, 0)

    def ids(self, stream: Stream, count: int) -> MessageIds:
        return MessageIds(self, stream, count)


class MessageIds(Sequence[int]):
    """The ids of a stream's first `count` messages, computed on access (sorted, so bisectable)."""

    def __init__(self, world: World, stream: Stream, count: int) -> None:
        self.world, self.stream, self.count = world, stream, count

    def __len__(self) -> int:
        return self.count

    @overload
    def __getitem__(self, index: int) -> int: ...
    @overload
    def __getitem__(self, index: slice) -> list[int]: ...
    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.count))]
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(index)
        return self.world.message_id(self.stream, index)

    def index_of(self, message_id: int) -> int | None:
        position = bisect.bisect_left(self, message_id)
        return position if position < self.count and self[position] == message_id else None

    def first_after(self, snowflake: int) -> int:
        """Index of the first message with an id > snowflake (may be `count`)."""
        return bisect.bisect_right(self, snowflake)

    def first_at_or_after(self, snowflake: int) -> int:
        return bisect.bisect_left(self, snowflake)
