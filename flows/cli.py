"""The `midshard` command. Each subcommand is a thin wrapper: parse flags into `Settings`, call one
function of the collectors / cleaners / writers / flows. Heavy imports (Prefect, onnxruntime) happen
inside the commands so `midshard --help` and `midshard explain` stay fast."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from midshard import __version__
from midshard.flows.cli_options import (
    ApiBaseOption,
    ChannelOption,
    ConfigOption,
    DaskOption,
    DownloadOption,
    GridsOption,
    MediaHostOption,
    MinSideOption,
    NsfwOption,
    OutOption,
    RunnerOption,
    SetOption,
    SinceOption,
    ThreadsOption,
    VerboseOption,
    channel_settings,
    overrides,
    rule_flags,
    settings_from,
)
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


@contextmanager
def _user_errors() -> Iterator[None]:
    """midshard's own errors and disk errors (full, read-only, not a directory) as one line and exit
    code 2: they are the user's to fix, a traceback would not help (and the texts hold no token)."""
    from midshard.errors import MidshardError

    try:
        yield
    except MidshardError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        typer.echo(f"error: {where}{error.strerror or error}", err=True)
        raise typer.Exit(2) from None


def _media_filter(settings: Settings) -> Callable[[dict], list[int]]:
    """The cleaners' message-level filter, which the collectors use under `--download filtered`."""
    from midshard.cleaners.pipeline import Downloadable

    return Downloadable(settings)


def _collector_run(settings: Settings, command: str, run: Callable[[], object], stats: CollectStats) -> None:
    """Run a collector call on the locked data root under the progress display; clean errors and
    exit codes, never the token."""
    import logging

    from midshard import progress
    from midshard.lock import root_lock

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("discord").setLevel(logging.ERROR)  # its 429 notices are normal operation
    with _user_errors(), root_lock(settings.root, command, settings.lock_wait), progress.shown():
        run()
    for line in stats.summary():
        typer.echo(line)
    if stats.channel_errors:
        raise typer.Exit(1)


@app.command()
def collect(
    channel: ChannelOption = None,
    out: OutOption = None,
    config: ConfigOption = None,
    api_base: ApiBaseOption = None,
    since: SinceOption = None,
    threads: ThreadsOption = None,
    download: DownloadOption = None,
    set_: SetOption = None,
) -> None:
    """Scrape channel history and media into the raw store (resumable; token in DISCORD_BOT_TOKEN)."""
    from midshard.collectors.collect import CollectStats
    from midshard.collectors.collect import collect as run_collect

    flags = {"since": since.date() if since else None}
    settings = channel_settings(config, set_, out, channel, api_base, threads, download, **flags)
    stats = CollectStats()
    _collector_run(settings, "collect", lambda: run_collect(settings, stats, _media_filter(settings)), stats)


@app.command()
def explain(
    file: Annotated[str, typer.Argument(help="Message JSON, one object per line; '-' = stdin.")] = "-",
    raw: Annotated[
        str | None,
        typer.Option("--raw", help="Data root: parents from its raw store, media from its derived/."),
    ] = None,
    grids: GridsOption = None,
    min_side: MinSideOption = None,
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


@app.command("settings")
def showsettings_from(config: ConfigOption = None, set_: SetOption = None) -> None:
    """Print the effective settings as JSON (file < MIDSHARD_* environment < --set); never the token."""
    typer.echo(settings_from(config, set_).model_dump_json(indent=2))


def _run_flow(name: str, settings: Settings, parameters: dict[str, object], verbose: bool = False) -> None:
    """Run one pipeline flow on the configured Prefect API under the live progress display; then
    print the funnel, what the run added, and where the data is.

    Before Prefect starts, the data root must be writable and free (the flow takes its lock for
    real; this only fails early, in a second, with a clear message). After the flow, Prefect's
    workers are drained and its embedded server stopped, in order, before the interpreter exits."""
    from midshard.errors import MidshardError
    from midshard.lock import check_free

    with _user_errors():
        check_free(settings.root, f"{name} (checking the root)", settings.lock_wait)
    from midshard.flows import prefect_env

    typer.echo(prefect_env.configure(verbose))
    from midshard import progress
    from midshard.flows.pipeline import with_runner
    from midshard.flows.report import print_result

    flow = with_runner(settings, name)
    try:
        with progress.shown(live=False if verbose else None):  # Prefect's lines would break a live view
            result = flow(**parameters)
    except MidshardError as error:  # e.g. another run took the root in the meantime
        typer.echo(f"error: the {name} flow failed: {error}", err=True)
        raise typer.Exit(2) from None
    except Exception as error:  # collector/cleaner/writer errors are already token-free
        typer.echo(f"error: the {name} flow failed: {type(error).__name__}: {error}", err=True)
        raise typer.Exit(1) from None
    finally:
        prefect_env.shutdown()
    print_result(result)
    if result.collect_errors:
        raise typer.Exit(1)


def _need_token(settings: Settings) -> None:
    """A run that reads Discord without a token fails here, in a second, not after Prefect started
    (a token in a Prefect Secret block can only be read once Prefect runs)."""
    from midshard.collectors.token import require_token

    if not settings.token_block:
        with _user_errors():
            require_token(settings)


@app.command()
def scrape(
    channel: ChannelOption = None,
    out: OutOption = None,
    config: ConfigOption = None,
    api_base: ApiBaseOption = None,
    threads: ThreadsOption = None,
    download: DownloadOption = None,
    min_side: MinSideOption = None,
    nsfw_threshold: NsfwOption = None,
    grids: GridsOption = None,
    task_runner: RunnerOption = None,
    dask_address: DaskOption = None,
    set_: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Prefect flow: channel history -> raw store -> decisions -> shards (token in DISCORD_BOT_TOKEN)."""
    flags = rule_flags(min_side, nsfw_threshold, grids, task_runner, dask_address)
    settings = channel_settings(config, set_, out, channel, api_base, threads, download, **flags)
    _need_token(settings)
    _run_flow("scrape", settings, {"settings": settings}, verbose)


@app.command()
def refresh(
    config: Annotated[
        Path,
        typer.Option(
            "--config", "-c", help="TOML settings file: channels, root, options.", exists=True, dir_okay=False
        ),
    ],
    task_runner: RunnerOption = None,
    dask_address: DaskOption = None,
    set_: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Prefect flow: the incremental monthly refresh of the channels in the settings file."""
    flags = {"task_runner": task_runner, "dask_address": dask_address}
    given = {**overrides(set_), **{name: value for name, value in flags.items() if value is not None}}
    settings = settings_from(config, None, **given)
    if settings.channels:  # without channels a refresh reads nothing from Discord
        _need_token(settings)
    _run_flow("refresh", settings, {"config": str(config), "overrides": given}, verbose)


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
    verbose: VerboseOption = False,
) -> None:
    """Prefect flow: decisions, splits and shards recomputed from the raw store (no network)."""
    flags = rule_flags(min_side, nsfw_threshold, grids, task_runner, dask_address)
    settings = settings_from(config, set_, root=out or raw, **flags)
    from midshard.raw_store import existing_raw_store

    with _user_errors():  # before Prefect starts: a wrong --raw fails in a second
        existing_raw_store(raw)
    _run_flow("rebuild", settings, {"settings": settings, "raw_root": raw}, verbose)


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
    media_host: MediaHostOption = None,
    set_: SetOption = None,
    verbose: VerboseOption = False,
) -> None:
    """Prefect flow: DiscordChatExporter exports -> raw store (losslessly) -> decisions -> shards."""
    from midshard.collectors.collect import CollectStats
    from midshard.collectors.dce import import_exports, read_export

    settings = settings_from(
        config, set_, root=out, api_base=api_base, download=download, media_hosts=media_host
    )
    with _user_errors():
        for file in files:  # refuse broken exports before anything starts
            read_export(file)
    if raw_only:
        stats = CollectStats()
        run = partial(
            import_exports, settings, files, media=media, stats=stats, select=_media_filter(settings)
        )
        _collector_run(settings, "import-export --raw-only", run, stats)
        return
    parameters = {"settings": settings, "files": [str(f) for f in files], "media": media}
    _run_flow("import", settings, parameters, verbose)


@app.command()
def demo(
    out: Annotated[str, typer.Option("--out", "-o", help="Where the demo dataset goes.")] = "./midshard-data",
    seed: Annotated[int, typer.Option(help="Emulator traffic seed.")] = 1,
    channels: Annotated[int, typer.Option(help="Emulated channels.")] = 2,
    messages: Annotated[int, typer.Option(help="Messages per emulated channel.")] = 200,
    verbose: VerboseOption = False,
) -> None:
    """Start the built-in Discord emulator and run the real scrape flow against it (no token needed)."""
    from midshard.flows.demo import run_demo

    settings = settings_from(None, None, root=out)
    run = partial(_run_flow, verbose=verbose)
    run_demo(settings, seed=seed, channels=channels, messages=messages, run=run)


@app.command()
def status(
    root: Annotated[
        str | None, typer.Argument(help="Data root (default: `root` of the settings, ./midshard-data).")
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """What a data root holds: channels, media, decisions by reason, the dataset, the last runs."""
    from rich.console import Console

    from midshard.flows.status import read_status, render

    where = root or settings_from(config, None).root
    with _user_errors():
        found = read_status(where)
    if as_json:
        typer.echo(found.to_json())
    else:
        render(found, Console())


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
