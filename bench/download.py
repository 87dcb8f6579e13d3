"""Media download benchmark: midshard's `MediaDownloader` against img2dataset, same URLs, same CDN.

    python bench/download.py            # about 400 images (1-8 MB PNG/WebP), 3 repeats per setup
    python bench/download.py --quick    # about 60 images, 1 repeat, fewer img2dataset setups

img2dataset conflicts with midshard's dependencies (webdataset<0.3, a `dataclasses` backport that
breaks Prefect), so it lives in its own venv, bench/.venvs/img2dataset (gitignored), created on
first use with `python3 -m venv` + `pip install img2dataset`, and runs as a subprocess.

Setup, identical for both sides:
  - one `midshard emulator` process (2 channels, realistic Midjourney files), its in-memory file
    cache big enough for every file, warmed by an untimed download pass: neither side pays for the
    emulator generating images;
  - the same URL list: the attachments `--download filtered` selects from the listed messages
    (signed links, valid 24 h), written to a text file for img2dataset; midshard gets the same
    filter's answers, computed ahead like the list, and writes every attachment's index entry;
  - 16 requests in flight: midshard's default `download_concurrency` (one asyncio process; hashing,
    writes and fsyncs in its disk threads; every file fsynced before its rename, every attachment
    journaled, every batch's index committed); img2dataset as 1 process x 16 threads, 2 x 8 and
    4 x 4, `output_format=webdataset`, 100 samples per shard (midshard's batch size), `timeout=60`.
  - the same work: img2dataset with `disable_all_reencoding=True` stores the bytes as received,
    like midshard; its best setup is the baseline. img2dataset with `resize_mode=no` (it still
    decodes and re-encodes to JPEG q95) is reported too, its best of 1 x 16 and 2 x 8.
  - timing: midshard from the first request to the last batch's committed index (in-process);
    img2dataset from its first shard's `start_time` to its last shard's `end_time` (its
    `_stats.json`), which leaves out its start-up and 5 s logger poll; its subprocess wall is
    reported as well. Setups alternate; the best repeat of each counts, and img2dataset's best
    setup is the one with the best median (more setups must not just mean more chances). CPU per
    image (process time, robust to a busy machine): midshard's over the timed part,
    img2dataset's over its whole subprocess tree, start-up included.
Targets: midshard images/s >= 1.2 x img2dataset raw bytes, >= 1.5 x img2dataset resize_mode=no.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_TOKEN, EmulatorProcess, children_cpu, emit, emulator

from midshard.cleaners.pipeline import Downloadable
from midshard.collectors.collect import collect_histories
from midshard.collectors.media import AttachmentRef, MediaDownloader, Select, plan_downloads
from midshard.raw_store import RawStore
from midshard.settings import Settings
from midshard.store import Store

BENCH_DIR = Path(__file__).resolve().parent
I2D_VENV = BENCH_DIR / ".venvs" / "img2dataset"
I2D_BIN = I2D_VENV / "bin" / "img2dataset"
IN_FLIGHT = 16  # Settings.download_concurrency's default
PER_SHARD = 100
RAW_SETUPS = [(1, 16), (2, 8), (4, 4)]  # img2dataset processes x threads, 16 in flight
REENCODING_SETUPS = [(1, 16), (2, 8)]


def ensure_img2dataset() -> str:
    """img2dataset in its own venv (never in midshard's); its version."""
    if not I2D_BIN.exists():
        subprocess.run(["python3", "-m", "venv", str(I2D_VENV)], check=True)
        subprocess.run([str(I2D_VENV / "bin" / "pip"), "install", "-q", "img2dataset"], check=True)
    out = subprocess.run(
        [
            str(I2D_VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('img2dataset'))",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


# -- the shared input ------------------------------------------------------------------------------
Batches = list[tuple[int, list[dict]]]  # (channel id, messages of one page)


def list_messages(emu: EmulatorProcess, root: str) -> Batches:
    """Page the emulated channels once (untimed) and keep every page's messages."""
    settings = Settings(root=root, api_base=emu.api_base, channels=emu.channel_ids)
    paths = collect_histories(settings)
    raw = RawStore(Store(root))
    return [(channel, raw.read_batch(path)) for channel, batch in paths.items() for path in batch]


def answered_filter(batches: Batches, settings: Settings) -> Select:
    """`--download filtered`: the cleaners' message-level filter (what the CLI and the flows pass),
    answered ahead for every message, untimed like img2dataset's URL list: the timed runs measure
    downloading, not prompt parsing."""
    downloadable = Downloadable(settings)
    answers = {m["id"]: downloadable(m) for _, page in batches for m in page}
    return lambda message: answers[message["id"]]


def selected(batches: Batches, select: Select) -> list[AttachmentRef]:
    return [ref for channel, page in batches for ref in plan_downloads(page, channel, select)[0]]


# -- midshard --------------------------------------------------------------------------------------
def run_midshard(batches: Batches, api_base: str, select: Select) -> dict[str, Any]:
    """All batches' media through one MediaDownloader (as `collect` does across channels)."""
    with tempfile.TemporaryDirectory(prefix="midshard-bench-dl-") as root:
        settings = Settings(root=root, api_base=api_base, download_concurrency=IN_FLIGHT)
        raw = RawStore(Store(root))
        work = [(channel, raw.write_message_batch(channel, page), page) for channel, page in batches]

        async def download() -> list:
            async with MediaDownloader(settings, raw, select=select) as downloader:
                batches_done = await asyncio.gather(*(downloader.download_batch(*item) for item in work))
            return [result for results in batches_done for result in results]

        started, cpu = time.perf_counter(), time.process_time()
        results = asyncio.run(download())
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        stored = sum(1 for r in results if r.sha256)
        failed = sum(1 for r in results if r.error and r.error != "not_selected")
    return {
        "images": stored,
        "failed": failed,
        "seconds": round(seconds, 2),
        "images_per_s": round(stored / seconds, 2),
        "cpu_ms_per_image": round(cpu * 1000 / stored, 2),
    }


# -- img2dataset -----------------------------------------------------------------------------------
def run_img2dataset(url_file: Path, processes: int, threads: int, raw_bytes: bool = False) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="midshard-bench-i2d-") as scratch:
        out = Path(scratch) / "out"
        args = [
            str(I2D_BIN),
            f"--url_list={url_file}",
            "--input_format=txt",
            f"--output_folder={out}",
            "--output_format=webdataset",
            "--resize_mode=no",
            f"--processes_count={processes}",
            f"--thread_count={threads}",
            f"--number_sample_per_shard={PER_SHARD}",
            "--timeout=60",
            "--enable_wandb=False",
            "--distributor=multiprocessing",
        ]
        if raw_bytes:
            args.append("--disable_all_reencoding=True")
        env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
        started, cpu = time.perf_counter(), children_cpu()
        subprocess.run(args, check=True, capture_output=True, env=env)
        wall, cpu = time.perf_counter() - started, children_cpu() - cpu
        shards = [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]
    successes = sum(s["successes"] for s in shards)
    span = max(s["end_time"] for s in shards) - min(s["start_time"] for s in shards)
    return {
        "setup": f"{processes} process(es) x {threads} threads"
        + (", disable_all_reencoding" if raw_bytes else ""),
        "images": successes,
        "failed": sum(s["count"] for s in shards) - successes,
        "seconds": round(span, 2),
        "images_per_s": round(successes / span, 2),
        "subprocess_wall_s": round(wall, 2),
        "cpu_ms_per_image": round(cpu * 1000 / successes, 2),
    }


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The fastest repeat, with every repeat's rate and their median."""
    rates = [r["images_per_s"] for r in runs]
    return max(runs, key=lambda r: r["images_per_s"]) | {"repeats": rates, "median": statistics.median(rates)}


def best_setup(setups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The setup that is fastest in the median: picking the single best repeat over all setups
    would reward noise with every setup added."""
    return max(setups.values(), key=lambda r: r["median"])


def name(setup: tuple[int, int]) -> str:
    return f"{setup[0]}x{setup[1]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 60 images, 1 repeat (< 1 min)")
    args = parser.parse_args()
    os.environ["DISCORD_BOT_TOKEN"] = BENCH_TOKEN
    version = ensure_img2dataset()
    messages, repeats = (65, 1) if args.quick else (420, 3)
    raw_setups = [(2, 8)] if args.quick else RAW_SETUPS
    reencoding_setups = [(1, 16)] if args.quick else REENCODING_SETUPS

    with emulator(channels=2, messages=messages, cache_mb=8192) as emu:
        with tempfile.TemporaryDirectory(prefix="midshard-bench-dl-list-") as root:
            batches = list_messages(emu, root)
        select = answered_filter(batches, Settings(api_base=emu.api_base))
        refs = selected(batches, select)
        run_midshard(batches, emu.api_base, select)  # the emulator renders every file once, untimed
        with tempfile.TemporaryDirectory(prefix="midshard-bench-urls-") as scratch:
            url_file = Path(scratch) / "urls.txt"
            url_file.write_text("".join(ref.url + "\n" for ref in refs))
            emu.reset_stats()
            ours: list[dict[str, Any]] = []
            raw: dict[str, list[dict[str, Any]]] = {name(setup): [] for setup in raw_setups}
            reencoding: dict[str, list[dict[str, Any]]] = {name(setup): [] for setup in reencoding_setups}
            for _ in range(repeats):
                ours.append(run_midshard(batches, emu.api_base, select))
                for setup in raw_setups:
                    raw[name(setup)].append(run_img2dataset(url_file, *setup, raw_bytes=True))
                for setup in reencoding_setups:
                    reencoding[name(setup)].append(run_img2dataset(url_file, *setup))
        served = emu.stats()

    midshard = best(ours)
    raw_best = {setup: best(runs) for setup, runs in raw.items()}
    reencoding_best = {setup: best(runs) for setup, runs in reencoding.items()}
    baseline, reencoding_baseline = best_setup(raw_best), best_setup(reencoding_best)
    ratio = round(midshard["images_per_s"] / baseline["images_per_s"], 2)
    ratio_reencoding = round(midshard["images_per_s"] / reencoding_baseline["images_per_s"], 2)
    emit(
        {
            "benchmark": "download",
            "quick": args.quick,
            "urls": len(refs),
            "mean_file_mb": round(served["cdn"]["bytes"] / max(1, served["cdn"]["served"]) / 1e6, 2),
            "img2dataset_version": version,
            "midshard": midshard,
            "img2dataset_raw_bytes": raw_best,
            "baseline": baseline["setup"],
            "ratio": ratio,
            "img2dataset_resize_no": reencoding_best,
            "resize_no_baseline": reencoding_baseline["setup"],
            "ratio_vs_resize_no": ratio_reencoding,
            "emulator": {
                "cdn_served_in_timed_runs": served["cdn"]["served"],
                "files_generated_total": served["files_generated"],  # == urls: no timed run paid a render
            },
            "targets": {"ratio >= 1.2": ratio >= 1.2, "ratio_vs_resize_no >= 1.5": ratio_reencoding >= 1.5},
        }
    )


if __name__ == "__main__":
    main()
