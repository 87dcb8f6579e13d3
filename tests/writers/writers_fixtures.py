"""Synthetic kept samples and rejections with real PNG / WebP / JPEG bytes (no network, no model).

Prompts are picked so both splits get several prompts with several images each; inside each split
the first five samples (by key) are PNG and later ones mix WebP and JPEG, which is exactly the
layout that loses images with Hugging Face's feature inference (datasets' WebDataset builder infers
the features from the first few samples: docs/writing.md).
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from midshard.records import Rejection, Sample, candidate_key
from midshard.settings import Settings
from midshard.store import Store
from midshard.writers.dataset import DatasetSummary, RunInfo, write_dataset
from midshard.writers.manifest import run_id
from midshard.writers.split import split_of

CHANNEL = 1100000000000000001
PARAMS = [
    {"version": "6.1"},
    {"niji": "6", "aspect": "16:9"},
    {},
    {"stylize": "250", "no": "cars, people", "version": "5.2"},
    {"aspect": "2:3", "raw": ""},
]
PROMPT_WORDS = [
    "a red fox",
    "ＦＵＬＬ width city",
    "Straße at night",
    "a  lighthouse\tin fog",
    "ゆり の 花",
    "robot",
]


def image_bytes(fmt: str, seed: int, size: tuple[int, int]) -> bytes:
    """A small real image: a gradient plus noise (so encoders produce realistic, distinct files)."""
    rng = np.random.default_rng(seed)
    width, height = size
    gradient = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    pixels = np.clip(gradient + rng.normal(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format={"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}[fmt])
    return out.getvalue()


@dataclass
class Synthetic:
    samples: list[Sample] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    images: dict[str, bytes] = field(default_factory=dict)  # sha256 -> bytes (like the media store)

    def read_image(self, sample: Sample) -> bytes:
        return self.images[sample.sha256]

    def read_rejected(self, rejection: Rejection) -> bytes | None:
        return self.images.get(rejection.sha256)


def pick_prompts(salt: str, train: int, validation: int, start: int = 0) -> list[str]:
    """`train` + `validation` distinct prompts whose split under `salt` is as asked."""
    wanted = {"train": train, "validation": validation}
    picked: list[str] = []
    number = start
    while any(wanted.values()):
        prompt = f"{PROMPT_WORDS[number % len(PROMPT_WORDS)]}, study {number}"
        split = split_of(prompt, salt)
        if wanted[split]:
            wanted[split] -= 1
            picked.append(prompt)
        number += 1
    return picked


def make_dataset(
    salt: str,
    train_prompts: int = 12,
    validation_prompts: int = 4,
    images_per_prompt: int = 3,
    first_message: int = 1_200_000_000_000_000_000,
    prompt_start: int = 0,
    rejections: int = 10,
) -> Synthetic:
    data = Synthetic()
    prompts = pick_prompts(salt, train_prompts, validation_prompts, prompt_start)
    seen = {"train": 0, "validation": 0}
    message = first_message
    for number, prompt in enumerate(prompts):
        for image in range(images_per_prompt):
            message += 1000 + number
            split = split_of(prompt, salt)
            position = seen[split]
            seen[split] += 1
            fmt = "png" if position < 5 or position % 2 == 0 else ("jpeg" if position % 7 == 3 else "webp")
            size = (64 + 8 * (position % 5), 48 + 8 * (image % 3))
            blob = image_bytes(fmt, message, size)
            sha = hashlib.sha256(blob).hexdigest()
            data.images[sha] = blob
            params = PARAMS[(number + image) % len(PARAMS)]
            raw = prompt + "".join(f" --{k} {v}".rstrip() for k, v in params.items())
            data.samples.append(
                Sample(
                    key=candidate_key(message, image % 2),
                    message_id=message,
                    channel_id=CHANNEL,
                    attachment_id=message + 7,
                    tile=0,
                    timestamp=f"2024-05-{1 + number % 28:02d}T12:00:{image:02d}+00:00",
                    url=f"https://cdn.discordapp.com/attachments/{CHANNEL}/{message + 7}/img_{image}.{fmt}",
                    kind="upscale",
                    prompt=prompt,
                    raw_prompt=raw,
                    params=dict(params),
                    width=size[0],
                    height=size[1],
                    format=fmt,
                    file_size=len(blob),
                    sha256=sha,
                    phash=f"{message % 2**64:016x}",
                    phash_impl="imagehash.phash(hash_size=8)",
                    nsfw_score=round((number * 7 + image) % 50 / 100, 3),
                    nsfw_scorer="open_nsfw",
                )
            )
    data.rejections = _rejections(data, message, rejections)
    return data


REASONS = ["not_midjourney", "too_small", "corrupt_image", "nsfw", "duplicate_of:{dup}", "image_conditioned"]


def _rejections(data: Synthetic, message: int, count: int) -> list[Rejection]:
    result = []
    for number in range(count):
        message += 1000
        reason = REASONS[number % len(REASONS)].format(dup=data.samples[0].key)
        sha = ""
        if reason in ("too_small", "nsfw") or reason.startswith("duplicate_of"):
            blob = image_bytes("png", message, (40, 30))
            sha = hashlib.sha256(blob).hexdigest()
            data.images[sha] = blob
        elif reason == "corrupt_image":
            blob = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40  # a broken PNG: must not break the report
            sha = hashlib.sha256(blob).hexdigest()
            data.images[sha] = blob
        result.append(
            Rejection(
                key=candidate_key(message),
                message_id=message,
                channel_id=CHANNEL,
                attachment_id=message + 7 if sha else 0,
                tile=0,
                timestamp="2024-05-30T08:00:00+00:00",
                kind="upscale",
                prompt=f"dropped prompt {number}",
                decision=reason,
                sha256=sha,
            )
        )
    return result


FUNNEL = {"messages": 120, "candidates": 90, "downloaded": 80}


def write(
    root: Path | str, data: Synthetic, settings: Settings, kind: str = "scrape", **kwargs
) -> DatasetSummary:
    """write_dataset with the fixture's read functions and a RunInfo like a flow would pass (the
    flows hand samples and rejections over in key order, and name a run by its inputs)."""
    samples = sorted(data.samples, key=lambda s: s.key)
    rejections = sorted(data.rejections, key=lambda r: r.key)
    run = RunInfo(
        kind,
        run_id(kind, [item.key for item in (*samples, *rejections)]),
        funnel=FUNNEL,
        models={"nsfw": "open_nsfw test"},
        sources=["1100000000000000001"],
    )
    return write_dataset(
        Store(str(root)),
        samples,
        rejections,
        data.read_image,
        settings,
        run,
        read_rejected_image=data.read_rejected,
        **kwargs,
    )


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root/dataset, by relative path."""
    base = root / "dataset"
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}
