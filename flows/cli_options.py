"""The `midshard` command's options and how they become one `Settings`: every command that takes a
flag takes the same one (name, type, help), and `flows/cli.py` holds only the commands."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

import typer

from midshard.settings import Settings

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML settings file (see README: Configuration).", exists=True, dir_okay=False
    ),
]

OutOption = Annotated[str | None, typer.Option("--out", "-o", help="Data root (directory or fsspec URL).")]

ApiBaseOption = Annotated[
    str | None,
    typer.Option("--api-base", help="Discord REST base URL, e.g. the emulator's (env MIDSHARD_API_BASE)."),
]

DownloadOption = Annotated[
    Literal["filtered", "all"] | None,
    typer.Option("--download", help="'filtered' (default): media that may pass the filters; or 'all'."),
]

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override any setting: --set nsfw_threshold=0.2 (repeatable; JSON values)."),
]

MediaHostOption = Annotated[
    list[str] | None,
    typer.Option(
        "--media-host",
        help="Also download media from this host ('host' or 'host:port'; repeat the option). "
        "Discord's CDN and the API base's host are always allowed.",
    ),
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

VerboseOption = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Prefect's log lines in the terminal too (the Prefect UI always has them)."
    ),
]

ChannelOption = Annotated[
    list[int] | None, typer.Option("--channel", help="Channel id to scrape (repeat the option).")
]
SinceOption = Annotated[
    datetime | None,
    typer.Option("--since", formats=["%Y-%m-%d"], help="First run of a channel: start at this date."),
]
ThreadsOption = Annotated[
    bool | None, typer.Option("--threads/--no-threads", help="Also scrape the channels' threads.")
]


def overrides(pairs: list[str] | None) -> dict[str, object]:
    """`--set name=value` pairs; values are JSON when they parse as JSON, else strings. (A token-like
    name is refused by `Settings.load`, before the values go anywhere, e.g. into flow parameters.)"""
    import json

    values: dict[str, object] = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"{pair!r} is not name=value", param_hint="--set")
        try:
            values[name.strip()] = json.loads(text)
        except ValueError:
            values[name.strip()] = text
    return values


def settings_from(config: Path | None, pairs: list[str] | None, **flags: object) -> Settings:
    """Settings from the file, the environment, `--set` pairs and the flags given (None = not given)."""
    from midshard.settings import SettingsError

    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return Settings.load(config, **{**overrides(pairs), **given})
    except SettingsError as error:  # names the file, flag or setting
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


def channel_settings(
    config: Path | None,
    pairs: list[str] | None,
    out: str | None,
    channel: list[int] | None,
    api_base: str | None,
    threads: bool | None,
    download: str | None,
    **flags: object,
) -> Settings:
    """The settings of a command that reads channels from Discord (`collect`, `scrape`)."""
    settings = settings_from(
        config,
        pairs,
        root=out,
        channels=channel or None,
        api_base=api_base,
        include_threads=threads,
        download=download,
        **flags,
    )
    if not settings.channels:
        typer.echo("error: no channel to scrape: pass --channel ID (or `channels` in --config)", err=True)
        raise typer.Exit(2)
    return settings


def rule_flags(
    min_side: int | None,
    nsfw_threshold: float | None,
    grids: str | None,
    runner: str | None,
    dask: str | None,
) -> dict[str, object]:
    """The flags of the flows that decide and write (`scrape`, `rebuild`), as settings."""
    return {
        "min_side": min_side,
        "nsfw_threshold": nsfw_threshold,
        "grids": grids,
        "task_runner": runner,
        "dask_address": dask,
    }
