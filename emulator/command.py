"""`midshard emulator` (serve) and `midshard emulator truth` (write the ground truth).

The options are generated from `EmulatorConfig`'s fields, so every config field is an option with
the same name and its description as help text, and the two can never drift apart.
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from midshard.emulator.config import EmulatorConfig

TRUTH_FIELDS = ("seed", "channels", "messages", "threads", "thread_messages", "gone_rate")
CLI_TYPES: dict[str, Any] = {"token": str | None}  # a plain string on the command line

emulator_app = typer.Typer(
    help="The built-in Discord emulator: REST API + CDN on 127.0.0.1 with Midjourney traffic.",
    invoke_without_command=True,
    add_completion=False,
)


def _options(names: tuple[str, ...] | None = None) -> list[inspect.Parameter]:
    """One keyword parameter per config field, annotated as a typer option with the field's help."""
    parameters = []
    for name, field in EmulatorConfig.model_fields.items():
        if names is not None and name not in names:
            continue
        envvar = "MIDSHARD_EMULATOR_TOKEN" if name == "token" else None
        option = typer.Option(help=field.description, envvar=envvar, show_envvar=envvar is not None)
        annotation = Annotated[CLI_TYPES.get(name, field.annotation), option]  # type: ignore[valid-type]
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=annotation
            )
        )
    return parameters


def _with_signature(*parameters: inspect.Parameter):
    def apply(function):
        function.__signature__ = inspect.Signature(list(parameters))
        return function

    return apply


@emulator_app.callback()
@_with_signature(
    inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context), *_options()
)
def serve_command(ctx: typer.Context, **options: Any) -> None:
    """Serve the emulator until Ctrl-C / SIGTERM (prints the base URL first)."""
    if ctx.invoked_subcommand is not None:
        return
    from midshard.emulator.running import Emulator, serve

    def announce(emulator: Emulator) -> None:
        print(f"midshard emulator serving {emulator.base_url}", flush=True)
        print(f"  api base:  {emulator.api_base}   (discord.http.Route.BASE)", flush=True)
        print(f"  guild:     {emulator.guild_id}", flush=True)
        print(f"  channels:  {' '.join(map(str, emulator.channel_ids))}", flush=True)
        if emulator.thread_ids:
            print(f"  threads:   {' '.join(map(str, emulator.thread_ids))}", flush=True)
        print(f"  stats:     {emulator.base_url}/_emulator/stats", flush=True)

    serve(EmulatorConfig(**options), announce)


@emulator_app.command("truth")
@_with_signature(
    *_options(TRUTH_FIELDS),
    inspect.Parameter(
        "grow",
        inspect.Parameter.KEYWORD_ONLY,
        default=0,
        annotation=Annotated[
            int, typer.Option(help="Messages appended to every channel (as after grow(n)).")
        ],
    ),
    inspect.Parameter(
        "out",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[Path | None, typer.Option(help="JSON-lines file to write (default: stdout).")],
    ),
)
def truth_command(grow: int = 0, out: Path | None = None, **options: Any) -> None:
    """Write what midshard must decide about every served message, one JSON object per line."""
    from midshard.emulator.truth import TruthBuilder

    lines = TruthBuilder(EmulatorConfig(**options)).lines(grow)
    with out.open("w", encoding="utf-8") if out is not None else _stdout() as sink:
        for line in lines:
            sink.write(json.dumps(line, ensure_ascii=False) + "\n")


class _stdout:  # noqa: N801 - a context manager that leaves stdout open
    def __enter__(self) -> Any:
        return sys.stdout

    def __exit__(self, *_exc: object) -> None:
        sys.stdout.flush()
