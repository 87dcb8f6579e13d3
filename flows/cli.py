"""The `midshard` command. Each subcommand is a thin wrapper: parse flags into `Settings`, call one
function of the collectors / cleaners / writers / flows. Heavy imports (Prefect, onnxruntime) happen
inside the commands so `midshard --help` and `midshard explain` stay fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midshard import __version__

app = typer.Typer(
    name="midshard",
    help="Midjourney generations posted in Discord channels -> WebDataset shards (20:1 train/validation).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals could hold the bot token
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML settings file (see README: Configuration).", exists=True),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"midshard {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """midshard: scrape, clean and shard Midjourney generations from Discord."""


def main() -> None:
    app()


if __name__ == "__main__":
    main()
