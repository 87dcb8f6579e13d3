"""Shared pieces of the collector and end-to-end benchmarks (bench/scrape.py, download.py, e2e.py).

The emulator runs as its own process (`midshard emulator`), as Discord would: it never shares the
benchmarked process's interpreter lock, and the process-tree memory of a run excludes it. Figures
are printed as one JSON object; the machine's load is recorded with them because other jobs may
share the cores.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # installed with prefect-dask (distributed)

BENCH_TOKEN = "midshard-bench-token"  # the local emulator's own token: it opens nothing else
VENV_BIN = Path(sys.executable).parent
MIB = 2**20


@dataclass
class EmulatorProcess:
    """A `midshard emulator` subprocess: its URLs, channel ids and control endpoints."""

    process: subprocess.Popen[str]
    base_url: str
    channel_ids: list[int]

    @property
    def api_base(self) -> str:
        return self.base_url + "/api/v10"

    def _control(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(
            self.base_url + path, method=method, data=b"" if method == "POST" else None
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        return self._control("/_emulator/stats")

    def reset_stats(self) -> None:
        self._control("/_emulator/reset-stats", "POST")


@contextmanager
def emulator(**options: object) -> Iterator[EmulatorProcess]:
    """Start `midshard emulator --port 0 --token BENCH_TOKEN --<option> <value> ...`; stop it by pid."""
    args = [str(VENV_BIN / "midshard"), "emulator", "--port", "0", "--token", BENCH_TOKEN]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args += [flag] if value else []
        else:
            args += [flag, str(value)]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url, channels = "", []
        for line in process.stdout:
            if line.startswith("midshard emulator serving "):
                base_url = line.split()[-1]
            elif line.strip().startswith("channels:"):
                channels = [int(c) for c in line.split(":", 1)[1].split()]
            elif line.strip().startswith("stats:"):
                break
        if not base_url:
            raise RuntimeError(f"the emulator did not start (exit {process.poll()})")
        yield EmulatorProcess(process, base_url, channels)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class TreeMemory:
    """Peak RSS of a process and all its descendants, sampled every `interval` seconds."""

    pid: int
    interval: float = 0.1
    peak: int = 0
    samples: int = 0
    at_peak: list[tuple[str, float]] = field(default_factory=list)  # (process, MiB) at the peak
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _members(self) -> list[tuple[str, int]]:
        try:
            root = psutil.Process(self.pid)
            members = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        found = []
        for member in members:
            try:
                found.append((_label(member), member.memory_info().rss))
            except psutil.NoSuchProcess:
                continue
        return found

    def _poll(self) -> None:
        while not self._stop.is_set():
            members = self._members()
            total = sum(rss for _, rss in members)
            if total > self.peak:
                self.peak = total
                self.at_peak = [(label, round(rss / MIB, 1)) for label, rss in members]
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> TreeMemory:
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak_mib(self) -> float:
        return round(self.peak / MIB, 1)


def _label(process: psutil.Process) -> str:
    """A short name for a process: its command line's interesting words."""
    words = [w.rsplit("/", 1)[-1] for w in process.cmdline()[:4] if not w.startswith("-")]
    return " ".join(words)[:60] or process.name()


def machine() -> dict[str, Any]:
    """What the figures were measured on, including the load other jobs put on it."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def emit(result: dict[str, Any]) -> None:
    """Print the benchmark's one JSON object (the machine's load appended at the end)."""
    result["machine"] = machine()
    print(json.dumps(result, indent=1), flush=True)


def linear_slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than two distinct xs)."""
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far: a run's whole process
    tree once it has been waited for (its pools and servers are reaped inside it)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
