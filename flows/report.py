"""What the CLI prints after a flow: the funnel, the dataset, and where to look."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from midshard.flows.pipeline import RunResult


def print_result(result: RunResult, root: str, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title="funnel (everything decided so far)", show_header=True)
    table.add_column("stage")
    table.add_column("left", justify="right")
    for stage, count in result.funnel.items():
        table.add_row(stage, str(count))
    for split, count in result.dataset.items():
        table.add_row(f"in dataset: {split}", str(count), style="bold")
    console.print(table)
    console.print(f"shards written by this run: {len(result.shards_written)}")
    for channel, error in result.collect_errors.items():
        console.print(f"[red]channel {channel}: {error}[/red]")
    console.print(f"dataset: {root.rstrip('/')}/dataset", soft_wrap=True)
    console.print(f"report:  {result.report}", soft_wrap=True)
