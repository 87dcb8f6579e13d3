"""What the CLI prints after a flow: the funnel, what this run added, the dataset, and how to load it."""

from __future__ import annotations

import json
import shlex
import sys

from rich.console import Console
from rich.table import Table

from midshard.flows.pipeline import RunResult


def load_line(dataset_dir: str, python: str = sys.executable) -> str:
    """A shell line that loads the dataset's train split with webdataset (installed with midshard)
    and prints how many samples it read. The README shows it for `midshard-data/dataset`."""
    shards = json.dumps(f"{dataset_dir.rstrip('/')}/train-*.tar")
    code = (
        "import glob, webdataset as wds; "
        f"print(sum(1 for _ in wds.WebDataset(sorted(glob.glob({shards})), shardshuffle=False)), "
        '"train samples")'
    )
    return f"{shlex.quote(python)} -c {shlex.quote(code)}"


def _samples(per_split: dict[str, int]) -> str:
    return " + ".join(f"{n:,} {split}" for split, n in per_split.items()) + " samples"


def print_result(result: RunResult, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title="funnel (everything decided so far)", show_header=True)
    table.add_column("stage")
    table.add_column("left", justify="right")
    for stage, count in result.funnel.items():
        table.add_row(stage, str(count))
    for split, count in result.dataset.items():
        table.add_row(f"in dataset: {split}", str(count), style="bold")
    console.print(table)
    if any(figures["seen"] for figures in result.steps.values()):
        steps = Table(title="this run's cleaning steps", show_header=True)
        for column in ("step", "seen", "dropped", "seconds"):
            steps.add_column(column, justify="left" if column == "step" else "right")
        for name, figures in result.steps.items():
            steps.add_row(name, str(figures["seen"]), str(figures["dropped"]), f"{figures['seconds']:.2f}")
        console.print(steps)
    for problem in result.problems:
        console.print(f"[yellow]skipped: {problem}[/yellow]", soft_wrap=True)
    for channel, error in result.collect_errors.items():
        console.print(f"[red]channel {channel}: {error}[/red]")
    _print_summary(result, console)


def _print_summary(result: RunResult, console: Console) -> None:
    """Four lines: what this run added, what the dataset holds, where the report is, how to load it."""
    dropped = sum(result.rejections.values())
    ranked = sorted(result.rejections.items(), key=lambda item: -item[1])
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in ranked)
    shards = len(result.shards_written)
    lines = [
        f"this run: {_samples(result.written)} in {shards} new shard{'s' * (shards != 1)}, "
        f"{dropped:,} dropped" + (f" ({reasons})" if reasons else ""),
        f"dataset:  {_samples(result.dataset)}{_ratio(result.dataset)}, {result.rejected:,} dropped, "
        f"in {result.dataset_dir}",
        f"report:   {result.report}",
    ]
    if "://" in result.dataset_dir:  # an fsspec URL, not a local path: see the loaders in docs/writing.md
        lines.append("load it:  see docs/writing.md (webdataset, wids, Hugging Face datasets)")
    else:
        lines.append(f"load it:  {load_line(result.dataset_dir)}")
    for line in lines:
        console.print(line, soft_wrap=True, highlight=False, markup=False)


def _ratio(samples: dict[str, int]) -> str:
    train, validation = samples.get("train", 0), samples.get("validation", 0)
    return f" ({train / validation:.1f}:1)" if validation else ""
