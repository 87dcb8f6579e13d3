"""Scale benchmark: cost follows what is new, memory stays flat as the history grows.

    python bench/scale.py                      # N = 10 000, 100 000, 1 000 000 candidates
    python bench/scale.py --quick              # N = 2 000 and 20 000 (a smoke check)
    python bench/scale.py --sizes 10000 100000 # any sizes
    python bench/scale.py --images 10000 30000 # the scrape part at these image counts (0: none)

For each N it builds a data root of N candidates as the collectors would have left it — raw
message batches in the Midjourney bot's shapes (grids, their upscales replying to them, variations,
in-progress messages, describe answers, people's chatter), a small valid 1024x1024 PNG for every
downloaded attachment (a few kB each: unique bytes, one flat colour), the attachment index — and
seeds the feature cache with a row per image (as if examined before: pHash/dHash with planted
near-duplicates, NSFW scores with a few above the threshold). Decoding and scoring are what
`bench/clean.py` measures; this benchmark measures everything around them. Then, each in its own
`midshard` process on Prefect's embedded API:

    rebuild   `midshard rebuild --raw ROOT` (in place): every candidate decided and written;
    refresh   1 % new messages are added to the raw store, then `midshard refresh` (no channels
              configured, so nothing is collected: the refresh cleans and writes what is new).

Then the real `scrape` flow with images: the built-in emulator (its own process, outside the
measured tree; `--small-files`, so 30 000 images are ~1.5 GB, and no rate limit in the way) serves
4 channels holding about `--images` downloadable images, and `midshard scrape` collects, examines
(decode, hashes, open_nsfw in its worker processes) and writes them.

It reports the wall time and the peak RSS of the whole process tree (the run, image workers if
any start, Prefect's server), sampled every 0.1 s, per size, and the ratios the targets name:
refresh / rebuild wall time at the largest size, and peak RSS growth between the two largest sizes.

Generated roots are kept under bench/results/scale/<N>/pristine (gitignored) and reused; each
measurement works on a hard-linked copy (the raw store is never rewritten in place, so the copy
costs no disk). The 1 M root takes about 3 GB.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_TOKEN, MIB, TreeMemory, emit, emulator

from midshard.cleaners.feature_index import FeatureIndex
from midshard.cleaners.image_features import PHASH_IMPL, Features
from midshard.cleaners.nsfw import scorer_id
from midshard.raw_store import AttachmentResult, RawStore
from midshard.settings import MIDJOURNEY_BOT_ID
from midshard.store import Store

RESULTS = Path(__file__).resolve().parent / "results" / "scale"
SIZES = (10_000, 100_000, 1_000_000)
QUICK = (2_000, 20_000)
IMAGES = (10_000, 30_000)
QUICK_IMAGES = (300,)
IMAGES_PER_MESSAGE = 0.4  # about what `--download filtered` fetches of the emulator's messages
CHANNELS = 4
BATCH = 100  # messages per raw batch, as the history collector writes them
REFRESH_SHARE = 0.01
USER = 1012268717368946718
EPOCH_MS = 1_704_067_200_000 - 1_420_070_400_000  # 2024-01-01 after Discord's epoch
WORDS = (
    "lighthouse",
    "fox",
    "castle",
    "meadow",
    "robot",
    "dragon",
    "garden",
    "city",
    "harbor",
    "forest",
    "desert",
    "nebula",
    "portrait",
    "samurai",
    "astronaut",
    "cathedral",
    "waterfall",
    "library",
    "market",
    "train",
    "owl",
    "koi",
    "lantern",
    "glacier",
    "temple",
    "cyberpunk",
    "watercolor",
    "baroque",
    "minimalist",
    "cinematic",
    "isometric",
    "surreal",
    "vintage",
    "neon",
    "pastel",
    "misty",
    "golden",
    "dusk",
    "dawn",
    "rainy",
    "snowy",
    "foggy",
    "ancient",
    "futuristic",
    "tiny",
    "giant",
    "crystal",
    "paper",
    "clay",
    "velvet",
)
# Of every 20 messages: kind -> share. Upscales are what a dataset keeps; grids are skipped.
MIX = (
    ("grid",) * 6 + ("upscale",) * 8 + ("variation", "progress", "describe", "chatter", "chatter", "upscale")
)


# -- a synthetic root ------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _idat(colour: int) -> bytes:
    """The compressed pixels of a 1024x1024 image of one of 64 colours (computed once each)."""
    rgb = bytes((colour * 37 % 256, colour * 91 % 256, colour * 53 % 256))
    return zlib.compress((b"\0" + rgb * 1024) * 1024, 9)


def _png(number: int) -> bytes:
    """A valid 1024x1024 PNG of one colour, made unique by a text chunk (a few kB)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1024, 1024, 8, 2, 0, 0, 0)
    text = b"Comment\0midshard scale benchmark image " + str(number).encode()
    parts = (
        chunk(b"IHDR", header),
        chunk(b"tEXt", text),
        chunk(b"IDAT", _idat(number % 64)),
        chunk(b"IEND", b""),
    )
    return b"\x89PNG\r\n\x1a\n" + b"".join(parts)


class Generator:
    """Messages of one channel, in id order, and what they need stored (media, features)."""

    def __init__(self, channel: int, seed: int) -> None:
        self.channel = channel
        self.rng = random.Random(seed)
        self.grids: list[tuple[int, str]] = []  # recent grids: (message id, prompt)
        self.moment = 0

    def message(self, number: int) -> tuple[dict, bytes | None]:
        self.moment += 1 + self.rng.randrange(30)
        message_id = ((EPOCH_MS + self.moment * 1000) << 22) + self.channel % 4096
        kind = self.rng.choice(MIX)
        if kind in ("upscale", "variation") and not self.grids:
            kind = "grid"
        prompt = " ".join(self.rng.sample(WORDS, 5)) + f" {number}"
        author = {"id": str(MIDJOURNEY_BOT_ID), "username": "Midjourney Bot", "bot": True}
        message: dict[str, Any] = {
            "id": str(message_id),
            "type": 0,
            "channel_id": str(self.channel),
            "author": author,
            "timestamp": time.strftime(
                "%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime(1_704_067_200 + self.moment)
            ),
            "attachments": [],
        }
        media = None
        mention = f"<@{USER}>"
        if kind == "grid":
            message["content"] = f"**{prompt} --ar 1:1 --v 6.1** - {mention} (fast)"
            message["attachments"] = [self._attachment(message_id, 2048, 2048, 1_900_000)]
            self.grids = [*self.grids[-7:], (message_id, prompt)]
        elif kind in ("upscale", "variation"):
            parent, prompt = self.rng.choice(self.grids)
            message["type"] = 19
            message["message_reference"] = {"message_id": str(parent), "channel_id": str(self.channel)}
            if kind == "upscale":
                message["content"] = (
                    f"**{prompt} --ar 1:1 --v 6.1** - Image #{self.rng.randint(1, 4)} {mention}"
                )
                media = _png(message_id)
                message["attachments"] = [self._attachment(message_id, 1024, 1024, len(media))]
            else:
                message["content"] = (
                    f"**{prompt} --ar 1:1 --v 6.1** - Variations (Strong) by {mention} (fast)"
                )
                message["attachments"] = [self._attachment(message_id, 2048, 2048, 1_800_000)]
        elif kind == "progress":
            message["content"] = f"**{prompt} --v 6.1** - {mention} (31%) (fast)"
            message["attachments"] = [self._attachment(message_id, 512, 512, 90_000, "_grid_0.webp")]
        elif kind == "describe":
            message["content"] = ""
            message["embeds"] = [{"description": f"1️⃣ {prompt} --ar 1:1", "footer": {"text": "describe"}}]
        else:
            message["author"] = {"id": str(USER), "username": "someone"}
            message["content"] = self.rng.choice(
                ["love this one", "how did you get that light?", "wow", "more!"]
            )
        return message, media

    def _attachment(self, message_id: int, width: int, height: int, size: int, suffix: str = ".png") -> dict:
        attachment_id = message_id + 1
        name = f"someone_{message_id}{suffix}"
        return {
            "id": str(attachment_id),
            "filename": name,
            "size": size,
            "url": f"https://cdn.discordapp.com/attachments/{self.channel}/{attachment_id}/{name}?ex=6a&is=69&hm=00",
            "width": width,
            "height": height,
            "content_type": "image/webp" if suffix.endswith("webp") else "image/png",
        }


def _features(sha256: str, size: int, rng: random.Random, planted: list[int], scorer: str) -> Features:
    """Cached features of one generated image: a random pHash, or one planted 2 bits from an
    earlier image (a near-duplicate dedup must drop); ~4 % NSFW scores above the threshold."""
    if planted and rng.random() < 0.03:
        phash = rng.choice(planted) ^ (1 << rng.randrange(64)) ^ (1 << rng.randrange(64))
    else:
        phash = rng.getrandbits(64)
    planted.append(phash)
    del planted[:-1000]
    score = rng.uniform(0.5, 1.0) if rng.random() < 0.04 else rng.uniform(0.0, 0.3)
    return Features(
        sha256, 0, "keep", "png", 1024, 1024, 1, size, phash, phash ^ 0x5A5A, PHASH_IMPL, score, scorer,
        1024 * 1024,
    )  # fmt: skip


def write_messages(root: Path, channel: Generator, count: int, seed: int) -> None:
    """`count` messages of `channel` as raw batches with their media, index and cached features."""
    store = Store(str(root))
    raw = RawStore(store)
    index = FeatureIndex.of(store)
    rng, planted, scorer = random.Random(seed), [], scorer_id("open_nsfw")
    pending: list[Features] = []
    for start in range(0, count, BATCH):
        page = [channel.message(start + n) for n in range(min(BATCH, count - start))]
        path = raw.write_message_batch(channel.channel, [message for message, _ in page])
        results = []
        for message, media in page:
            for attachment in message["attachments"]:
                ids = (int(attachment["id"]), int(message["id"]))
                if media is None:
                    results.append(AttachmentResult(*ids, error="not_selected"))
                    continue
                sha256 = hashlib.sha256(media).hexdigest()
                target = root / raw.media_path(sha256)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(media)  # no fsync: a benchmark's setup, not a collector
                results.append(AttachmentResult(*ids, sha256=sha256))
                pending.append(_features(sha256, len(media), rng, planted, scorer))
        raw.write_attachment_results(channel.channel, path, results)
        if len(pending) >= 50_000:
            index.append(store, pending)
            pending = []
    if pending:
        index.append(store, pending)


def pristine(candidates: int) -> tuple[Path, list[Generator]]:
    """The generated root of `candidates` candidates (built once), and its channels' generators
    positioned after their last message (for the refresh's new messages)."""
    folder = RESULTS / str(candidates)
    root, marker = folder / "pristine", folder / "complete.json"
    channels = [Generator(1_150_000_000_000_000_000 + n, seed=n) for n in range(CHANNELS)]
    per_channel = candidates // CHANNELS
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        for n, channel in enumerate(channels):
            write_messages(root, channel, per_channel, seed=1000 + n)
        marker.write_text(json.dumps({"candidates": candidates}))
    else:
        for channel in channels:  # replay the generators (cheap) to continue where they stopped
            for number in range(per_channel):
                channel.message(number)
    return root, channels


# -- measuring --------------------------------------------------------------------------------------
def run(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """`midshard <args>` in its own process: wall seconds, peak RSS of its tree, what held it."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "midshard.flows.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with TreeMemory(process.pid) as memory:
        _, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"midshard {' '.join(args)} failed:\n{stderr.decode()[-3000:]}")
    return {
        "wall_s": round(time.perf_counter() - started, 1),
        "peak_rss_tree_mib": memory.peak_mib,
        "processes_at_peak": memory.at_peak,
    }


def measure(candidates: int, env: dict[str, str]) -> dict[str, Any]:
    source, channels = pristine(candidates)
    work = RESULTS / str(candidates) / "work"
    shutil.rmtree(work, ignore_errors=True)
    subprocess.run(["cp", "-al", str(source), str(work)], check=True)  # hard links: no disk, no time
    rebuild = run(["rebuild", "--raw", str(work)], env)
    samples = json.loads((work / "dataset" / "manifest.json").read_text())["counts"]["samples"]["total"]

    new = max(BATCH, int(candidates * REFRESH_SHARE) // CHANNELS)
    for n, channel in enumerate(channels):
        write_messages(work, channel, new, seed=5000 + n)
    config = RESULTS / str(candidates) / "refresh.toml"
    config.write_text(f'root = "{work}"\nchannels = []\n')
    refresh = run(["refresh", "--config", str(config)], env)
    manifest = json.loads((work / "dataset" / "manifest.json").read_text())
    disk = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
    shutil.rmtree(work)
    return {
        "candidates": candidates,
        "kept_after_rebuild": samples,
        "rebuild": rebuild,
        "refresh": {**refresh, "new_candidates": new * len(channels)},
        "refresh_over_rebuild": round(refresh["wall_s"] / rebuild["wall_s"], 3),
        "kept_after_refresh": manifest["counts"]["samples"]["total"],
        "disk_mib": round(disk / MIB),
    }


def scrape(images: int, env: dict[str, str]) -> dict[str, Any]:
    """`midshard scrape` of about `images` images from the emulator: wall time and peak tree RSS."""
    messages = math.ceil(images / IMAGES_PER_MESSAGE / CHANNELS)
    root = RESULTS / f"scrape-{images}"
    shutil.rmtree(root, ignore_errors=True)
    limits = {"history_limit": 100_000, "global_limit": 100_000}
    cache = RESULTS / "emulator-cache"
    with emulator(
        channels=CHANNELS, messages=messages, small_files=True, prerender=True, cache_dir=cache, **limits
    ) as served:
        channels = [arg for channel in served.channel_ids for arg in ("--channel", str(channel))]
        measured = run(
            ["scrape", *channels, "--out", str(root), "--api-base", served.api_base],
            {**env, "DISCORD_BOT_TOKEN": BENCH_TOKEN},
        )
    stored = sum(1 for _ in (root / "raw" / "media").glob("*/*"))
    manifest = json.loads((root / "dataset" / "manifest.json").read_text())
    shutil.rmtree(root)
    return {
        "messages": messages * CHANNELS,
        "images_stored": stored,
        "kept": manifest["counts"]["samples"]["total"],
        **measured,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke check")
    parser.add_argument("--sizes", type=int, nargs="+", help="candidate counts to measure")
    parser.add_argument("--images", type=int, nargs="+", help="image counts of the scrape runs")
    options = parser.parse_args()
    sizes = tuple(options.sizes or (QUICK if options.quick else SIZES))
    image_counts = [n for n in options.images or (QUICK_IMAGES if options.quick else IMAGES) if n]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIDSHARD_") and k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(RESULTS / "prefect-home")
    runs = [measure(n, env) for n in sizes]
    scrapes = [scrape(n, env) for n in image_counts]
    largest, before = runs[-1], runs[-2] if len(runs) > 1 else runs[-1]
    growth = largest["rebuild"]["peak_rss_tree_mib"] / before["rebuild"]["peak_rss_tree_mib"] - 1
    peak = max(max(r["rebuild"]["peak_rss_tree_mib"], r["refresh"]["peak_rss_tree_mib"]) for r in runs)
    emit(
        {
            "benchmark": "scale",
            "quick": options.quick,
            "runs": runs,
            "peak_rss_growth_between_largest_sizes": round(growth, 3),
            "scrape": scrapes,
            "targets": {
                "peak RSS of the tree <= 1536 MiB": peak <= 1536,
                "peak RSS growth between the two largest sizes <= 5 %": growth <= 0.05,
                "refresh (1 %) <= 10 % of the rebuild's wall time, largest size": largest[
                    "refresh_over_rebuild"
                ]
                <= 0.1,
                "rebuild of the largest size <= 600 s": largest["rebuild"]["wall_s"] <= 600,
                "scrape with images, peak RSS of the tree <= 1536 MiB": all(
                    s["peak_rss_tree_mib"] <= 1536 for s in scrapes
                ),
            },
        }
    )


if __name__ == "__main__":
    main()
