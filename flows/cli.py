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
from midshard.settings import Settings

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
    from midshard.errors import MidshardError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("discord").setLevel(logging.ERROR)  # its 429 notices are normal operation
    try:
        with ProgressDisplay(stats):
            run()
    except MidshardError as exc:
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


# -- the flows: scrape, refresh, rebuild, import-export, demo ----------------------------------------
SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override any setting: --set nsfw_threshold=0.2 (repeatable; JSON values)."),
]
MinSideOption = Annotated[int | None, typer.Option("--min-side", help="Strict short-side rule (px).")]
NsfwOption = Annotated[
    float | None, typer.Option("--nsfw-threshold", help="Drop when the NSFW score is above (0.5).")
]
GridsOption = Annotated[
    Literal["skip", "split"] | None, typer.Option("--grids", help="'skip' 2x2 grids (default) or 'split'.")
]
RunnerOption = Annotated[
    Literal["threads", "dask"] | None,
    typer.Option("--task-runner", help="'threads' (default) or 'dask' (needs a Prefect server)."),
]
DaskOption = Annotated[
    str | None, typer.Option("--dask-address", help="Existing Dask scheduler (default: a LocalCluster).")
]


def _overrides(pairs: list[str] | None) -> dict[str, object]:
    """`--set name=value` pairs; values are JSON when they parse as JSON, else strings."""
    import json

    values: dict[str, object] = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r} is not name=value", param_hint="--set")
        if name.strip().lower() in ("token", "discord_bot_token"):  # flags end up in flow parameters
            raise typer.BadParameter("the bot token comes only from DISCORD_BOT_TOKEN", param_hint="--set")
        try:
            values[name.strip()] = json.loads(text)
        except ValueError:
            values[name.strip()] = text
    return values


def _settings(config: Path | None, pairs: list[str] | None, **flags: object) -> Settings:
    try:
        return Settings.load(config, **{**_overrides(pairs), **flags})
    except ValueError as error:  # pydantic names the bad setting
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@app.command("settings")
def show_settings(config: ConfigOption = None, set_: SetOption = None) -> None:
    """Print the effective settings as JSON (file < MIDSHARD_* environment < --set); never the token."""
    typer.echo(_settings(config, set_).model_dump_json(indent=2))


def _run_flow(name: str, settings: Settings, parameters: dict[str, object]) -> None:
    """Run one pipeline flow on the configured Prefect API; print the funnel and where the data is."""
    from midshard.flows import prefect_env

    typer.echo(prefect_env.configure())
    from midshard.flows.pipeline import with_runner
    from midshard.flows.report import print_result

    flow = with_runner(settings, name)
    try:
        result = flow(**parameters)
    except Exception as error:  # collector/cleaner/writer errors are already token-free
        typer.echo(f"error: the {name} flow failed: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(1) from None
    print_result(result, settings.root)
    if result.collect_errors:
        raise typer.Exit(1)


ChannelOption = Annotated[
    list[int] | None, typer.Option("--channel", help="Channel id to scrape (repeat the option).")
]


@app.command()
def scrape(
    channel: ChannelOption = None,
    out: OutOption = None,
    config: ConfigOption = None,
    api_base: ApiBaseOption = None,
    threads: Annotated[
        bool | None, typer.Option("--threads/--no-threads", help="Also scrape the channels' threads.")
    ] = None,
    download: DownloadOption = None,
    min_side: MinSideOption = None,
    nsfw_threshold: NsfwOption = None,
    grids: GridsOption = None,
    task_runner: RunnerOption = None,
    dask_address: DaskOption = None,
    set_: SetOption = None,
) -> None:
    """Prefect flow: channel history -> raw store -> decisions -> shards (token in DISCORD_BOT_TOKEN)."""
    settings = _settings(
        config,
        set_,
        root=out,
        channels=channel or None,
        api_base=api_base,
        include_threads=threads,
        download=download,
        min_side=min_side,
        nsfw_threshold=nsfw_threshold,
        grids=grids,
        task_runner=task_runner,
        dask_address=dask_address,
    )
    if not settings.channels:
        typer.echo("error: no channel to scrape: pass --channel ID (or `channels` in --config)", err=True)
        raise typer.Exit(2)
    _run_flow("scrape", settings, {"settings": settings})


@app.command()
def refresh(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="TOML settings file: channels, root, options.", exists=True)
    ],
    task_runner: RunnerOption = None,
    dask_address: DaskOption = None,
    set_: SetOption = None,
) -> None:
    """Prefect flow: the incremental monthly refresh of the channels in the settings file."""
    flags = {"task_runner": task_runner, "dask_address": dask_address}
    overrides = {**_overrides(set_), **{name: value for name, value in flags.items() if value is not None}}
    settings = _settings(config, None, **overrides)
    _run_flow("refresh", settings, {"config": str(config), "overrides": overrides})


@app.command()
def rebuild(
    raw: Annotated[str, typer.Option("--raw", help="Data root holding the raw store to rebuild from.")],
    out: OutOption = None,
    config: ConfigOption = None,
    min_side: MinSideOption = None,
    nsfw_threshold: NsfwOption = None,
    grids: GridsOption = None,
    task_runner: RunnerOption = None,
    dask_address: DaskOption = None,
    set_: SetOption = None,
) -> None:
    """Prefect flow: decisions, splits and shards recomputed from the raw store (no network)."""
    settings = _settings(
        config,
        set_,
        root=out or raw,
        min_side=min_side,
        nsfw_threshold=nsfw_threshold,
        grids=grids,
        task_runner=task_runner,
        dask_address=dask_address,
    )
    _run_flow("rebuild", settings, {"settings": settings, "raw_root": raw})


@app.command("import-export")
def import_export(
    files: Annotated[list[Path], typer.Argument(help="DiscordChatExporter JSON exports.", dir_okay=False)],
    out: OutOption = None,
    media: Annotated[
        bool,
        typer.Option("--media", help="Also import attachments: the export's local media files, or its URLs."),
    ] = False,
    raw_only: Annotated[
        bool, typer.Option("--raw-only", help="Only fill the raw store (no cleaning, no shards, no Prefect).")
    ] = False,
    config: ConfigOption = None,
    api_base: ApiBaseOption = None,
    download: DownloadOption = None,
    set_: SetOption = None,
) -> None:
    """Prefect flow: DiscordChatExporter exports -> raw store (losslessly) -> decisions -> shards."""
    from midshard.collectors.collect import CollectStats
    from midshard.collectors.dce import ExportError, import_exports, read_export

    settings = _settings(config, set_, root=out, api_base=api_base, download=download)
    try:
        for file in files:  # refuse broken exports before anything starts
            read_export(file)
    except ExportError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    if raw_only:
        stats = CollectStats()
        _collector_run(lambda: import_exports(settings, files, media=media, stats=stats), stats)
        return
    _run_flow("import", settings, {"settings": settings, "files": [str(f) for f in files], "media": media})


@app.command()
def demo(
    out: Annotated[str, typer.Option("--out", "-o", help="Where the demo dataset goes.")] = "./midshard-data",
    seed: Annotated[int, typer.Option(help="Emulator traffic seed.")] = 1,
    channels: Annotated[int, typer.Option(help="Emulated channels.")] = 2,
    messages: Annotated[int, typer.Option(help="Messages per emulated channel.")] = 200,
) -> None:
    """Start the built-in Discord emulator and run the real scrape flow against it (no token needed)."""
    from midshard.flows.demo import run_demo

    settings = _settings(None, None, root=out)
    run_demo(settings, seed=seed, channels=channels, messages=messages, run=_run_flow)


def _add_emulator() -> None:
    """`midshard emulator` / `midshard emulator truth`: options generated from EmulatorConfig (light
    import: pydantic + typer; the server, numpy and Pillow load only when a command runs)."""
    from midshard.emulator.command import emulator_app

    app.add_typer(emulator_app, name="emulator")


_add_emulator()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
