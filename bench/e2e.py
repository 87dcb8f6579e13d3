"""End-to-end benchmark: emulator -> the `scrape` flow -> shards. Prefect's overhead and peak memory.

    python bench/e2e.py                  # 2 000 images; memory at 500 / 1 000 / 2 000 images
    python bench/e2e.py --quick          # 40 images, one size (no memory slope)
    python bench/e2e.py --sizes 1000 4000 10000   # any scale (the largest is the overhead run)

"Images" are the media files a run downloads (`--download filtered`: about 0.4 per emulated
message); every run starts from an empty data root. Each measured run is its own process, and the
peak RSS of that process tree (the run, its image-decoding pool, Prefect's embedded API server)
is sampled every 0.1 s; the emulator is a separate process outside that tree.

Prefect overhead: the same run twice at the largest size, (1) the `scrape` flow on Prefect's
embedded API (`midshard.flows.pipeline.scrape`), (2) the same stage code with Prefect taken out:
`pipeline._run` with its tasks replaced by their plain functions (`task.fn`, mapped on a thread
pool of the flow runner's size) and the artifact calls by no-ops. overhead = (flow - direct) /
flow, both timed in-process from the call to its return (so the flow's figure includes starting
the embedded API server; the interpreter start/exit around both is reported separately).
The same difference in CPU seconds of each run's whole process tree is reported too
(prefect_overhead_cpu): other jobs' load moves wall times by more than Prefect costs.
Targets: overhead <= 10 % of the flow's wall; peak RSS at 100 000 images <= 1.5 GiB and flat in
N (the least-squares slope over the sizes, extrapolated to 100 000).

The emulator renders every file once into bench/results/emulator-cache (gitignored); an untimed
`collect` at the largest size fills it first, so no measured run waits for rendering.
Prefect's database lives in bench/results/prefect-home (created by the first run ever).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_TOKEN, MIB, TreeMemory, children_cpu, emit, emulator, linear_slope

from midshard.cleaners.pipeline import Downloadable
from midshard.collectors.collect import collect
from midshard.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
CHANNELS = 4
IMAGES_PER_MESSAGE = 0.40  # measured share of emulated messages whose attachment is downloaded
TARGET_SCALE = 100_000
GIB = 1024.0  # MiB


def messages_for(images: int) -> int:
    return math.ceil(images / IMAGES_PER_MESSAGE / CHANNELS)


# -- the worker: one run in its own process --------------------------------------------------------
class _Direct:
    """A Prefect task with Prefect taken out: calls run `task.fn`; `.map` runs on a thread pool."""

    def __init__(self, task: Any, workers: int) -> None:
        self.fn = task.fn
        self.workers = workers

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def map(self, *iterables: Any) -> list[Future]:
        """Every call's future, all done (the stage then reads them with `as_completed`)."""
        count = min(len(it) for it in iterables if isinstance(it, list))
        with ThreadPoolExecutor(self.workers) as pool:  # unmapped(x)[i] is x, a list's [i] its item
            return [pool.submit(self.fn, *(it[i] for it in iterables)) for i in range(count)]


class _NoProgress:
    """The baseline without Prefect publishes no progress artifact (they need a flow run)."""

    def __init__(self, _key: str) -> None:
        """Same signature as `flows.artifacts.Progress`; nothing to set up."""

    def update(self, _percent: float) -> None:
        """Progress is dropped: the direct run only measures the stages' own work."""


def worker(mode: str, root: str, api_base: str, channels: list[int]) -> dict[str, Any]:
    from midshard.flows import pipeline
    from midshard.flows.runners import THREADS

    settings = Settings(root=root, api_base=api_base, channels=channels)
    started = time.perf_counter()
    if mode == "flow":
        result = pipeline.scrape(settings=settings)
    else:
        for name in ("history_task", "media_task", "features_task"):
            setattr(pipeline, name, _Direct(getattr(pipeline, name), THREADS))
        pipeline.Progress = _NoProgress
        pipeline.as_completed = as_completed  # over the direct futures above
        pipeline.publish_funnel = pipeline.publish_report = pipeline.publish_steps = lambda *_args: None
        result = pipeline._run(settings, "scrape")
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "funnel": result.funnel, "dataset": result.dataset}


# -- the parent ------------------------------------------------------------------------------------
def measured_run(mode: str, api_base: str, channels: list[int]) -> dict[str, Any]:
    """One run in a fresh process and data root; its in-process time, wall and peak tree RSS."""
    with tempfile.TemporaryDirectory(prefix=f"midshard-bench-e2e-{mode}-") as scratch:
        out = Path(scratch) / "result.json"
        args = [sys.executable, __file__, "--worker", mode, "--root", f"{scratch}/data"]
        args += ["--api-base", api_base, "--out", str(out), "--channels", *map(str, channels)]
        started, cpu_before = time.perf_counter(), children_cpu()
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        with TreeMemory(process.pid) as memory:
            _, errors = process.communicate()
        wall, cpu = time.perf_counter() - started, children_cpu() - cpu_before
        if process.returncode != 0:
            raise RuntimeError(f"{mode} run failed:\n{errors[-3000:]}")
        result = json.loads(out.read_text())
        media = [f.stat().st_size for f in Path(scratch, "data", "raw", "media").glob("*/*")]
        shards = [f.stat().st_size for f in Path(scratch, "data", "dataset").glob("*.tar")]
    candidates = result["funnel"].get("candidates", 0)
    return {
        "mode": mode,
        "images": len(media),
        "raw_media_mib": round(sum(media) / MIB, 1),  # what `docs/scale.md` sizes disks from
        "shards_mib": round(sum(shards) / MIB, 1),
        "messages": result["funnel"].get("messages", 0),
        "candidates": candidates,
        "dataset": result["dataset"],
        "seconds": result["seconds"],
        "process_wall_s": round(wall, 2),
        "process_tree_cpu_s": round(cpu, 1),
        "peak_rss_mib": memory.peak_mib,
        "rss_at_peak_mib": memory.at_peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 images, one size (no memory slope)")
    parser.add_argument("--sizes", type=int, nargs="+", help="image counts; the largest is the overhead run")
    parser.add_argument("--worker", choices=["flow", "direct"], help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--api-base", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--channels", type=int, nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    RESULTS.mkdir(exist_ok=True)
    os.environ["DISCORD_BOT_TOKEN"] = BENCH_TOKEN
    os.environ["PREFECT_HOME"] = str(RESULTS / "prefect-home")
    if args.worker:
        Path(args.out).write_text(json.dumps(worker(args.worker, args.root, args.api_base, args.channels)))
        return

    sizes = sorted(args.sizes or ([40] if args.quick else [500, 1000, 2000]))
    largest = sizes[-1]
    prefect_db = "existing" if (RESULTS / "prefect-home" / "prefect.db").exists() else "created by this run"
    cache = {"cache_dir": RESULTS / "emulator-cache", "cache_mb": 1024}
    runs: dict[int, dict[str, Any]] = {}
    with emulator(channels=CHANNELS, messages=messages_for(largest), **cache) as emu:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="midshard-bench-e2e-warm-") as scratch:
            warm = Settings(root=scratch, api_base=emu.api_base, channels=emu.channel_ids)
            collect(warm, select=Downloadable(warm))  # what the flow downloads: `--download filtered`
        warm_up = time.perf_counter() - started
        flow = measured_run("flow", emu.api_base, emu.channel_ids)
        direct = measured_run("direct", emu.api_base, emu.channel_ids)
        runs[largest] = flow
    for size in sizes[:-1]:
        with emulator(channels=CHANNELS, messages=messages_for(size), **cache) as emu:
            runs[size] = measured_run("flow", emu.api_base, emu.channel_ids)

    overhead = (flow["seconds"] - direct["seconds"]) / flow["seconds"]
    cpu_overhead = (flow["process_tree_cpu_s"] - direct["process_tree_cpu_s"]) / flow["process_tree_cpu_s"]
    images = [runs[s]["images"] for s in sizes]
    peaks = [runs[s]["peak_rss_mib"] for s in sizes]
    slope = linear_slope([float(n) for n in images], peaks)  # MiB per image; 0 with one size
    intercept = sum(peaks) / len(peaks) - slope * sum(images) / len(images)
    at_target = intercept + slope * TARGET_SCALE if len(sizes) > 1 else None
    emit(
        {
            "benchmark": "e2e",
            "quick": args.quick,
            "scale_note": f"measured up to {largest} images (not 10 000 / 100 000: rendering and cleaning "
            "real-size images on 2 shared cores); memory at 100 000 is extrapolated from the slope",
            "prefect_db": prefect_db,
            "warm_up_s": round(warm_up, 1),
            "flow": flow,
            "direct": direct,
            "prefect_overhead": round(overhead, 3),
            "prefect_overhead_cpu": round(cpu_overhead, 3),
            "ratio": round(flow["seconds"] / direct["seconds"], 3),
            "memory": {
                "flow_runs": [
                    {key: runs[s][key] for key in ("images", "peak_rss_mib", "rss_at_peak_mib")}
                    for s in sizes
                ],
                "slope_mib_per_1000_images": round(slope * 1000, 1) if at_target is not None else None,
                "extrapolated_peak_at_100000_mib": round(at_target) if at_target is not None else None,
            },
            "targets": {
                "prefect_overhead <= 0.10": overhead <= 0.10,
                "prefect_overhead_cpu <= 0.10": cpu_overhead <= 0.10,
                "peak RSS at 100 000 images <= 1.5 GiB (extrapolated)": (
                    at_target <= 1.5 * GIB if at_target is not None else None
                ),
            },
        }
    )


if __name__ == "__main__":
    main()
