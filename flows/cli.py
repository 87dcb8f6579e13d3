"""The `midshard` command. Each subcommand is a thin wrapper: parse flags into `Settings`, call one
function of the collectors / cleaners / writers / flows. Heavy imports (Prefect, onnxruntime) happen
inside the commands so `midshard --help` and `midshard explain` stay fast."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from midshard import __version__

if TYPE_CHECKING:
    from midshard.collectors.collect import CollectStats

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


OutOption = Annotated[str | None, typer.Option("--out", "-o", help="Data root (directory or fsspec URL).")]
ApiBaseOption = Annotated[
    str | None,
    typer.Option("--api-base", help="Discord REST base URL, e.g. the emulator's (env MIDSHARD_API_BASE)."),
]
DownloadOption = Annotated[
    Literal["filtered", "all"] | None,
    typer.Option("--download", help="'filtered' (default): media that may pass the filters; or 'all'."),
]


def _collector_run(run: Callable[[], object], stats: CollectStats) -> None:
    """Run a collector call under the progress display; clean errors and exit codes, never the token."""
    import logging

    from midshard.collectors.collect import ProgressDisplay
    from midshard.collectors.dce import ExportError
    from midshard.collectors.token import CollectorError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("discord").setLevel(logging.ERROR)  # its 429 notices are normal operation
    try:
        with ProgressDisplay(stats):
            run()
    except (CollectorError, ExportError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    for line in stats.summary():
        typer.echo(line)
    if stats.channel_errors:
        raise typer.Exit(1)


@app.command()
def collect(
    channel: Annotated[
        list[int] | None, typer.Option("--channel", help="Channel id to scrape (repeat the option).")
    ] = None,
    out: OutOption = None,
    config: ConfigOption = None,
    api_base: ApiBaseOption = None,
    since: Annotated[
        datetime | None,
        typer.Option("--since", formats=["%Y-%m-%d"], help="First run of a channel: start at this date."),
    ] = None,
    threads: Annotated[
        bool | None, typer.Option("--threads/--no-threads", help="Also scrape the channels' threads.")
    ] = None,
    download: DownloadOption = None,
) -> None:
    """Scrape channel history and media into the raw store (resumable; token in DISCORD_BOT_TOKEN)."""
    from midshard.collectors.collect import CollectStats
    from midshard.collectors.collect import collect as run_collect
    from midshard.settings import Settings

    settings = Settings.load(
        config,
        root=out,
        channels=channel or None,
        api_base=api_base,
        since=since.date() if since else None,
        include_threads=threads,
        download=download,
    )
    if not settings.channels:
        typer.echo("error: no channel to scrape: pass --channel ID (or `channels` in --config)", err=True)
        raise typer.Exit(2)
    stats = CollectStats()
    _collector_run(lambda: run_collect(settings, stats), stats)


@app.command("import-export")
def import_export(
    files: Annotated[list[Path], typer.Argument(help="DiscordChatExporter JSON exports.", dir_okay=False)],
    out: OutOption = None,
    media: Annotated[
        bool,
        typer.Option("--media", help="Also import attachments: the export's local media files, or its URLs."),
    ] = False,
    config: ConfigOption = None,
    api_base: ApiBaseOption = None,
    download: DownloadOption = None,
) -> None:
    """Import DiscordChatExporter JSON exports into the raw store, losslessly."""
    from midshard.collectors.collect import CollectStats
    from midshard.collectors.dce import import_exports
    from midshard.settings import Settings

    settings = Settings.load(config, root=out, api_base=api_base, download=download)
    stats = CollectStats()
    _collector_run(lambda: import_exports(settings, files, media=media, stats=stats), stats)


@app.command()
def explain(
    file: Annotated[str, typer.Argument(help="Message JSON, one object per line; '-' = stdin.")] = "-",
    raw: Annotated[
        str | None,
        typer.Option("--raw", help="Data root: parents from its raw store, media from its derived/."),
    ] = None,
    grids: Annotated[str | None, typer.Option("--grids", help="'skip' (default) or 'split'.")] = None,
    min_side: Annotated[int | None, typer.Option("--min-side", help="Strict short-side rule (px).")] = None,
    config: ConfigOption = None,
) -> None:
    """One JSON line per message: id, kind, image_conditioned, prompt, params, image_urls, decision."""
    import sys

    from midshard.cleaners.explain import dumps, explain_lines
    from midshard.settings import Settings

    try:
        settings = Settings.load(config, grids=grids, min_side=min_side)
    except ValueError as error:  # pydantic's ValidationError names the bad setting
        typer.echo(f"midshard explain: {error}", err=True)
        raise typer.Exit(2) from None
    try:
        handle = sys.stdin.buffer if file == "-" else open(file, "rb")  # noqa: SIM115, PTH123
    except OSError as error:
        typer.echo(f"midshard explain: cannot read {file}: {error.strerror}", err=True)
        raise typer.Exit(2) from None
    out = sys.stdout.buffer
    with handle:
        for answer in explain_lines(handle, settings, raw):
            out.write(dumps(answer).encode("utf-8") + b"\n")
    out.flush()


def _add_emulator() -> None:
    """`midshard emulator` / `midshard emulator truth`: options generated from EmulatorConfig (light
    import: pydantic + typer; the server, numpy and Pillow load only when a command runs)."""
    from midshard.collectors.emulator.command import emulator_app

    app.add_typer(emulator_app, name="emulator")


_add_emulator()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
