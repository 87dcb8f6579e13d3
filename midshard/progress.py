"""Live progress of a run's long stages, for whoever watches this process.

The stages report counts where they already count them: the collectors' `CollectStats` (history
pages and messages per channel, downloaded files and bytes), the flows' clean loop (images
examined, candidates decided) and the shard writer (shards and samples per split). A front end
installs a display with `shown()`: a live view on a terminal (rich), or a plain line per stage
every `interval` seconds and when it finishes (CI, a Prefect worker's log). With no display
installed, `report` is one read of a global: the stages never know whether anyone watches.

Reports may come from any thread of the process (Prefect's thread runner runs tasks in threads).
Tasks on Dask run in other processes and report nothing here; the flow reports what it sees of
them as their futures finish.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rich.console import Console, Group
from rich.live import Live
from rich.text import Text

PLAIN_INTERVAL = 10.0  # seconds between plain progress lines
SHOWN_GROUPS = 6  # per-channel / per-split lines a live view shows under its stage


@dataclass(frozen=True, slots=True)
class Measure:
    """One count of a stage as shown: `key` in the reports, `label` on screen."""

    key: str
    label: str
    rate: bool = False  # show it per second
    size: bool = False  # a number of bytes (shown in MB)
    one: str = ""  # the label for a count of 1, if it differs


# The stages in display order, and what each shows.
STAGES: dict[str, tuple[Measure, ...]] = {
    "history": (Measure("pages", "pages", one="page"), Measure("messages", "messages", rate=True)),
    "downloads": (
        Measure("files", "files", rate=True, one="file"),
        Measure("bytes", "", rate=True, size=True),
        Measure("failed", "failed"),
        Measure("not_selected", "not selected"),
    ),
    "images": (Measure("images", "images examined", rate=True), Measure("cached", "from the cache")),
    "clean": (
        Measure("messages", "messages read"),
        Measure("candidates", "candidates decided"),
        Measure("chunks", "chunks", one="chunk"),
    ),
    "shards": (
        Measure("shards", "shards written", one="shard written"),
        Measure("samples", "samples", rate=True),
    ),
    # rejected/, then the indexes, manifest, card and report.html (thumbnails: a decode each)
    "report": (Measure("rejections", "rejections listed"),),
}


@dataclass
class Stage:
    """The counts of one stage so far; `totals` are the amounts known to be coming (for the ETA)."""

    name: str
    started: float
    counts: Counter[str] = field(default_factory=Counter)
    totals: Counter[str] = field(default_factory=Counter)
    groups: dict[str, Counter[str]] = field(default_factory=dict)
    finished: float | None = None

    def line(self, now: float) -> str:
        """`images: 1,024/2,048 images examined (37/s, ETA 28 s) · 96 from the cache`"""
        elapsed = max((self.finished or now) - self.started, 1e-3)
        measures = STAGES[self.name]
        shown = [
            _measure(m, self.counts[m.key], self.totals[m.key], elapsed)
            for n, m in enumerate(measures)
            if n == 0 or self.counts[m.key]  # the first always, the others once they count
        ]
        if self.finished is not None:
            shown.append(f"done in {_duration(elapsed)}")
        return f"{self.name}: " + " · ".join(shown)

    def group_lines(self) -> list[str]:
        """One line per group (channel, split), the busiest first."""
        ranked = sorted(self.groups.items(), key=lambda item: -sum(item[1].values()))
        measures = STAGES[self.name]
        return [
            f"{name}: " + ", ".join(_amount(m, counts[m.key], 0) for m in measures if counts[m.key])
            for name, counts in ranked
        ]


def _amount(measure: Measure, count: float, total: float) -> str:
    """`1,024/2,048 images examined`, `45.1 MB`"""
    value = f"{count / 1e6:,.1f} MB" if measure.size else f"{int(count):,}"
    if total:
        value += f"/{int(total):,}"
    label = measure.one if count == 1 and measure.one else measure.label
    return f"{value} {label}".strip()


def _measure(measure: Measure, count: float, total: float, elapsed: float) -> str:
    """The amount, with its rate (and ETA, when the total is known) if the measure has one."""
    text = _amount(measure, count, total)
    if not measure.rate or not count:
        return text
    rate = count / elapsed
    detail = f"{rate / 1e6:.1f} MB/s" if measure.size else f"{rate:,.0f}/s"
    if total > count:
        detail += f", ETA {_duration((total - count) / rate)}"
    return f"{text} ({detail})"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Board:
    """Every stage reported in this process; safe to update from any thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.on_finish: Callable[[Stage], None] | None = None  # a display's, if it wants to know
        self.stages: dict[str, Stage] = {}
        self._lock = threading.Lock()

    def _stage(self, name: str) -> Stage:
        if name not in STAGES:
            raise ValueError(f"unknown progress stage {name!r} (known: {', '.join(STAGES)})")
        stage = self.stages.get(name)
        if stage is None or stage.finished is not None:  # a stage seen again starts again
            stage = self.stages[name] = Stage(name, self.clock())
        return stage

    def add(self, name: str, group: str | None, counts: dict[str, int]) -> None:
        with self._lock:
            stage = self._stage(name)
            stage.counts.update(counts)
            if group is not None:
                stage.groups.setdefault(group, Counter()).update(counts)

    def expect(self, name: str, totals: dict[str, int]) -> None:
        with self._lock:
            self._stage(name).totals.update(totals)

    def finish(self, name: str) -> None:
        with self._lock:
            stage = self.stages.get(name)
            if stage is None or stage.finished is not None:
                return
            stage.finished = self.clock()
        if self.on_finish is not None:
            self.on_finish(stage)

    def finish_all(self) -> None:
        for name in list(self.stages):
            self.finish(name)

    def snapshot(self) -> list[tuple[Stage, str]]:
        """The stages seen, in display order, each with its current line."""
        with self._lock:
            now = self.clock()
            return [(s, s.line(now)) for name in STAGES if (s := self.stages.get(name)) is not None]


_board: Board | None = None


def report(stage: str, group: str | None = None, **counts: int) -> None:
    """Add `counts` to `stage` (and to its `group`, e.g. a channel); nothing when nobody watches."""
    board = _board
    if board is not None:
        board.add(stage, group, counts)


def start(stage: str) -> None:
    """Start `stage` now (its rates count from here); a stage also starts with its first report."""
    board = _board
    if board is not None:
        board.add(stage, None, {})


def expect(stage: str, **totals: int) -> None:
    """Announce work queued for `stage` (the denominators of its progress and ETA)."""
    board = _board
    if board is not None:
        board.expect(stage, totals)


def finish(stage: str) -> None:
    """Mark `stage` done: its line shows the total time and stops moving."""
    board = _board
    if board is not None:
        board.finish(stage)


class _LiveView:
    """A rich renderable: one line per stage, its groups indented below (busiest first)."""

    def __init__(self, board: Board) -> None:
        self.board = board

    def __rich__(self) -> Group:
        lines = []
        for stage, line in self.board.snapshot():
            lines.append(Text(("✓ " if stage.finished else "… ") + line))
            groups = stage.group_lines()
            if len(groups) > 1:
                lines += [Text(f"    {g}", style="dim") for g in groups[:SHOWN_GROUPS]]
                if len(groups) > SHOWN_GROUPS:
                    lines.append(Text(f"    … and {len(groups) - SHOWN_GROUPS} more", style="dim"))
        return Group(*lines)


@contextmanager
def shown(
    console: Console | None = None, *, live: bool | None = None, interval: float = PLAIN_INTERVAL
) -> Iterator[Board]:
    """Show this process's progress for the duration of the block.

    `live` (default: whether `console` is a terminal) picks the rich live view; otherwise plain
    lines go to `console` every `interval` seconds for the stages that moved, and once when a stage
    finishes. Every stage still open at the end is finished (and its last line shown). Inside
    another `shown` block (a flow run by the CLI) the outer display goes on showing everything."""
    global _board
    if _board is not None:
        yield _board
        return
    console = console or Console(stderr=True)
    live = console.is_terminal if live is None else live
    board = _board = Board()
    try:
        if live:
            with Live(_LiveView(board), console=console, refresh_per_second=4):
                yield board
                board.finish_all()
        else:
            with PlainLines(board, console, interval):
                yield board
            board.finish_all()
    finally:
        _board = None


class PlainLines:
    """Plain lines of `board` on `console`: a thread prints the line of every stage that moved, every
    `interval` seconds, and a stage's final line is printed when it finishes."""

    def __init__(self, board: Board, console: Console, interval: float) -> None:
        self.board, self.console, self.interval = board, console, interval
        board.on_finish = self.finished
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="midshard-progress", daemon=True)
        self._last: dict[str, str] = {}

    def __enter__(self) -> PlainLines:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        """Print the line of each open stage whose counts changed since the last tick."""
        for stage, line in self.board.snapshot():
            counts = repr(sorted(stage.counts.items()))
            if stage.finished is None and self._last.get(stage.name) != counts:
                self._last[stage.name] = counts
                self._print(line)

    def finished(self, stage: Stage) -> None:
        self._print(stage.line(self.board.clock()))

    def _print(self, line: str) -> None:
        self.console.print(line, highlight=False, soft_wrap=True, markup=False)
