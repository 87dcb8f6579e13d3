"""Builders of the messages around the generations: the bot's other answers (/describe,
/shorten, ratings, queue notices and errors, the `Animating...` placeholder) and people (chat,
photos, files)."""

from __future__ import annotations

from midshard.emulator import images, prompts
from midshard.emulator.buttons import Rows, button_rows
from midshard.emulator.model import (
    TYPE_COMMAND,
    TYPE_DEFAULT,
    TYPE_REPLY,
    Attachment,
    Button,
    Embed,
    Interaction,
    Message,
    Slot,
    Truth,
)
from midshard.emulator.parts import MessageParts
from midshard.emulator.singles import HOSTILE_NAMES
from midshard.emulator.snowflakes import make
from midshard.emulator.world import MIDJOURNEY, User

CHATTER = (
    "anyone know why my --ar gets ignored?",
    "wow",
    "U3 please 🙏",
    "this is insane 🔥",
    "lol",
    "how do you get such clean text in v6?",
    "can someone explain --sref?",
    "情绪很到位",
    "すごい！",
    "relax mode is so slow today",
    "try --style raw, it helps a lot",
    "gm",
    "that lighting though",
    "is there a way to get the full res png?",
    "my jobs keep failing with invalid parameter",
    "same",
    "what's the difference between subtle and creative upscale",
    "used --chaos 80 for this one",
    "the hands are still cursed 😂",
    "posting my favourite from today",
    "this channel moves so fast",
    "prompt pls?",
    "does --tile work with v6?",
    "beautiful",
    "nice one!",
    "ok this is my new wallpaper",
    "Can you share the seed?",
    "나도 해봐야겠다",
    "check the pinned messages for the faq",
)
PHOTO_NAMES = (
    "IMG_2041.jpg",
    "image.png",
    "unknown.png",
    "photo_2023-07-03_18.22.41.jpeg",
    "Screenshot_1.png",
)
FILE_NAMES = (("prompts.txt", "txt"), ("moodboard.pdf", "pdf"), ("refs.zip", "zip"), ("timelapse.mp4", "mp4"))
NOTICES = (
    Embed("Job queued", "Your job will start shortly. You have 3 jobs running.", color=16_776_960),
    Embed("Queue full", "You have reached the maximum allowed number of concurrent jobs.", color=16_711_680),
    Embed("Slow Down!", "You are sending jobs too quickly, please wait a moment.", color=16_711_680),
    Embed("Invalid parameter", "Unrecognized parameter(s): `--fastt`", color=16_711_680),
    Embed("Sorry! Something went wrong", "This job failed, no fast hours were used.", color=16_711_680),
    Embed(
        "Banned prompt detected",
        "Our AI moderator thinks this prompt is probably against our community standards.",
    ),
    Embed(None, "No match found. Progress images have been disabled for this job.", color=5_793_266),
)


class Chatter(MessageParts):
    # -- the bot, not generating -----------------------------------------------------------------

    def _bot_message(
        self,
        slot: Slot,
        truth: Truth,
        content: str = "",
        embed: Embed | None = None,
        buttons: Rows = (),
        command: str | None = None,
        mention: User | None = None,
    ) -> Message:
        """A bot message that is not a generation; `command` makes it a slash-command response."""
        interaction = None
        if command is not None and mention is not None:
            interaction = Interaction(
                make(slot.ms - 500, *slot.stream.worker_process, 4000), 2, command, mention
            )
        return slot.message(
            MIDJOURNEY,
            TYPE_COMMAND if command else TYPE_DEFAULT,
            content,
            truth,
            embeds=(embed,) if embed else (),
            components=buttons,
            interaction=interaction,
            mentions=(mention,) if mention and f"<@{mention.id}>" in content else (),
        )

    def _describe(self, slot: Slot) -> Message:
        """/describe: four prompts for an uploaded image, in an embed; the content is empty."""
        r = slot.r
        lines = []
        for emoji in ("1️⃣", "2️⃣", "3️⃣", "4️⃣"):
            words = prompts.clean_words(prompts.fresh(r, slot.ms).text)
            lines.append(f"{emoji} {words} --ar {r.choice(('1:1', '3:2', '4:5'))}")
        image_url = (
            f"https://cdn.discordapp.com/ephemeral-attachments/{r.randrange(10**18, 10**19)}/upload.png"
        )
        numbers = tuple(Button(str(n), f"MJ::Job::PicReader::{n}") for n in range(1, 5))
        buttons = button_rows(
            (*numbers, Button(None, "MJ::Picreader::Reroll", "🔄")),
            (Button("Imagine all", "MJ::Job::PicReader::all", "🎉"),),
        )
        embed = Embed(None, "\n\n".join(lines), image_url, color=3_092_790)
        return self._bot_message(
            slot, Truth("describe"), "", embed, buttons, "describe", self.requester(slot)
        )

    def _shorten(self, slot: Slot) -> Message:
        r = slot.r
        user = self.requester(slot)
        words = prompts.clean_words(prompts.fresh(r, slot.ms).text).split(", ")
        options = [", ".join(words[: max(1, len(words) - k)]) for k in range(5)]
        description = "**Shortened prompts**\n" + "\n".join(
            f"{n}️⃣ {text}" for n, text in enumerate(options, 1)
        )
        embed = Embed(
            "Here are the most important tokens in your prompt",
            description,
            footer="Click on a button to imagine one of the shortened prompts",
            color=3_092_790,
        )
        buttons = button_rows(
            tuple(Button(str(n), f"MJ::ShortenPrompt::{n}") for n in range(1, 6)),
            (Button("Show Details", "MJ::ShortenPrompt::Details"),),
        )
        return self._bot_message(slot, Truth("describe"), "", embed, buttons, "shorten", user)

    def _rating(self, slot: Slot) -> Message:
        emoji = slot.r.choice(("😍", "🙂", "😖", "😒"))
        job = self.job_uuid(slot)
        return self._bot_message(
            slot,
            Truth("other"),
            f"You have successfully rated [this job](<https://midjourney.com/jobs/{job}>) with {emoji}",
        )

    def _notice(self, slot: Slot) -> Message:
        user = self.requester(slot)
        content = f"<@{user.id}>" if slot.r.random() < 0.4 else ""
        return self._bot_message(slot, Truth("other"), content, slot.r.choice(NOTICES), mention=user)

    def _animating(self, slot: Slot) -> Message:
        """The placeholder of an image-to-video job: as image-conditioned as the video it announces."""
        return self._bot_message(slot, Truth("video", image_conditioned=True), "Animating...")

    # -- people ------------------------------------------------------------------------------------

    def _human(self, slot: Slot, content: str, attachments: tuple[Attachment, ...] = ()) -> Message:
        r = slot.r
        author = r.choice(self.world.humans)
        parent = None
        if r.random() < 0.2 and slot.index > 0:
            parent = self.message(slot.stream, slot.index - 1 - r.randrange(min(slot.index, 5)))
        return slot.message(
            author,
            TYPE_REPLY if parent is not None else TYPE_DEFAULT,
            content,
            Truth("not_midjourney"),
            attachments=attachments,
            parent=parent,
        )

    def _chatter(self, slot: Slot) -> Message:
        return self._human(slot, slot.r.choice(CHATTER))

    def _chatter_image(self, slot: Slot) -> Message:
        r = slot.r
        attachments = []
        for number in range(r.choice((1, 1, 1, 2))):
            fmt = r.choice(("jpeg", "png"))
            width, height = r.choice(((1280, 960), (1080, 1350), (750, 1334), (1920, 1080), (640, 640)))
            key = f"{self.seed}/{slot.stream.index}/{slot.index}/photo{number}"
            name = r.choice(PHOTO_NAMES) if r.random() < 0.9 else r.choice(HOSTILE_NAMES)
            name = name.rsplit(".", 1)[0] + (".jpg" if fmt == "jpeg" else ".png")
            attachments.append(self.attachment(slot, number, name, images.image(key, width, height, fmt)))
        text = r.choice(
            ("use this as a reference", "my photo vs the mj version", "", "original sketch", "lol look")
        )
        return self._human(slot, text, tuple(attachments))

    def _chatter_file(self, slot: Slot) -> Message:
        name, fmt = slot.r.choice(FILE_NAMES)
        media = images.file(f"{self.seed}/{slot.stream.index}/{slot.index}/file", fmt)
        return self._human(slot, "here are my prompts", (self.attachment(slot, 0, name, media),))
