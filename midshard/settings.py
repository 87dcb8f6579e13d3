"""The one settings object: read by the CLI, the Prefect flows and the deployment alike.

Precedence (highest first): CLI flags / explicit keyword overrides, environment variables
(`MIDSHARD_<FIELD>`, plus `DISCORD_BOT_TOKEN` for the token), the TOML settings file, defaults.
These are pydantic-settings' own sources (init, environment, TOML file); `Settings.load` names the
file (or `MIDSHARD_CONFIG` does). The bot token is a `SecretStr` excluded from every dump, so it
never reaches a flow parameter, a manifest, a log line or an artifact; a settings file or `--set`
key that looks like a token, in any spelling, is refused before anything reads its value.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as SourceError

from midshard.errors import MidshardError
from midshard.snowflakes import snowflake

MIDJOURNEY_BOT_ID = 936929561302675456
NIJI_BOT_ID = 1022952195194359889
DISCORD_API_BASE = "https://discord.com/api/v10"

# Fields that change what ends up in `dataset/` (used for the manifest's settings hash).
OUTPUT_FIELDS = (
    "bot_ids",
    "min_pixels",
    "min_side",
    "grids",
    "max_image_pixels",
    "max_file_size",
    "phash_radius",
    "phash_confirm_radius",
    "dhash_confirm",
    "nsfw_scorer",
    "nsfw_threshold",
    "split_salt",
    "shard_max_count",
    "shard_max_bytes",
    "report_thumbnails",
)
# The output fields that decide which candidates a dataset holds, and in which split: changing one
# for an existing dataset needs a rebuild (shard sizes and the report may change between runs).
RULE_FIELDS = tuple(
    name for name in OUTPUT_FIELDS if name not in ("shard_max_count", "shard_max_bytes", "report_thumbnails")
)

CONFIG_ENV = "MIDSHARD_CONFIG"
# The settings file `Settings.load` is reading (pydantic-settings builds its sources per instance).
_config_file: ContextVar[Path | None] = ContextVar("midshard_config_file", default=None)


class SettingsError(MidshardError, ValueError):
    """Settings that cannot be used; the message names the file, flag or setting, never a value."""


def is_token_key(name: str) -> bool:
    """True for a key that names a token, however it is spelled (`token`, `Token`, `DISCORD_BOT_TOKEN`,
    `discord-bot-token`, `botToken`, `tokens`); `token_block` (the Secret block's name) is not one."""
    letters = re.sub(r"[^a-z0-9]", "", name.lower()).removesuffix("s")
    return letters.endswith("token")


def refuse_token_keys(values: Mapping[str, Any], where: str) -> None:
    """`SettingsError` if a key of `values`, or of a table nested in it, looks like a token."""
    for key in _keys(values):
        if is_token_key(key):
            raise SettingsError(
                f"{where}: {key!r} looks like the bot token, which must not be stored in a settings "
                "file or passed as a setting; it comes only from DISCORD_BOT_TOKEN or a Prefect Secret block"
            )


def _keys(values: Mapping[str, Any]) -> Iterator[str]:
    """Every key of `values` and of the tables (and arrays of tables) nested in it."""
    for key, value in values.items():
        yield str(key)
        tables = value if isinstance(value, list) else [value]
        for table in tables:
            if isinstance(table, Mapping):
                yield from _keys(table)


class _SettingsFile(TomlConfigSettingsSource):
    """The TOML settings file, refused as a whole if it holds a token-like key or is not TOML."""

    def _read_file(self, file_path: Path) -> dict[str, Any]:  # type: ignore[override]
        try:
            values = super()._read_file(file_path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise SettingsError(f"{file_path}: not a valid TOML settings file ({error})") from None
        except OSError as error:
            raise SettingsError(f"{file_path}: cannot read the settings file ({error.strerror})") from None
        refuse_token_keys(values, str(file_path))
        return values


def _is_host_port(entry: str) -> bool:
    parts = urlsplit(f"//{entry}")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return False
    return bool(parts.hostname) and not (parts.path or parts.query or parts.fragment or "@" in parts.netloc)


class Settings(BaseSettings):
    """Every knob of a midshard run. Field docs are the CLI/TOML documentation."""

    model_config = SettingsConfigDict(
        env_prefix="MIDSHARD_", extra="forbid", validate_default=True, validate_by_name=True
    )

    # -- where ---------------------------------------------------------------------------------
    root: str = Field("./midshard-data", description="Data root (local path or fsspec URL).")

    # -- Discord ---------------------------------------------------------------------------------
    api_base: str = Field(DISCORD_API_BASE, description="Discord REST base URL (the emulator's for tests).")
    token: SecretStr | None = Field(
        None,
        validation_alias="DISCORD_BOT_TOKEN",
        exclude=True,
        repr=False,
        description="Bot token. Only from the environment or a Prefect Secret block, never a file.",
    )
    token_block: str | None = Field(None, description="Name of a Prefect Secret block holding the token.")
    channels: list[int] = Field(default_factory=list, description="Channel ids to scrape.")
    include_threads: bool = Field(False, description="Also scrape the threads of each channel.")
    since: date | None = Field(None, description="First run only: start at this date (default: beginning).")

    # -- download --------------------------------------------------------------------------------
    download: Literal["filtered", "all"] = Field(
        "filtered", description="'filtered': only attachments that can pass the message-level filters."
    )
    download_concurrency: int = Field(16, ge=1, le=256)
    download_retries: int = Field(5, ge=0, le=20)
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(60.0, gt=0)
    max_file_size: int = Field(64 * 1024 * 1024, gt=0, description="Bytes; larger attachments are refused.")
    history_retries: int = Field(
        3, ge=0, le=10, description="History page re-reads (1, 2, 4 s apart) after discord.py gives up."
    )
    download_backoff: float = Field(
        0.5, ge=0, description="Seconds before the first download retry; doubles per retry, with jitter."
    )
    download_deadline: float = Field(
        300.0,
        gt=0,
        description="Seconds one attachment may take, all attempts and waits included ('deadline').",
    )
    download_memory: int = Field(
        32 * 2**20,
        ge=2**20,
        description="Bytes of downloaded data held in memory across the run, at most; the rest is on disk.",
    )
    media_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts ('host' or 'host:port') media may come from besides Discord's CDN and the "
        "API base's host; a named host must resolve to public addresses, a named address is trusted.",
    )

    # -- cleaning --------------------------------------------------------------------------------
    bot_ids: list[int] = Field(
        default_factory=lambda: [MIDJOURNEY_BOT_ID, NIJI_BOT_ID],
        description="Author ids recognised as the Midjourney bot (never matched by name).",
    )
    min_pixels: int = Field(1024 * 1024, ge=1, description="Area rule: keep width*height >= this.")
    min_side: int | None = Field(None, ge=1, description="Strict rule: keep min(width, height) >= this.")
    grids: Literal["skip", "split"] = Field("skip", description="'skip' 2x2 grids, or 'split' into tiles.")
    max_image_pixels: int = Field(64_000_000, ge=1, description="Larger headers are decompression bombs.")
    phash_radius: int = Field(6, ge=0, le=16, description="pHash Hamming distance that always drops.")
    phash_confirm_radius: int = Field(
        8, ge=0, le=16, description="Up to this distance, drop only if the dHash confirms."
    )
    dhash_confirm: int = Field(12, ge=0, le=64, description="dHash distance that confirms a pHash match.")
    nsfw_scorer: str = Field("open_nsfw", description="Registered NSFW scorer name.")
    nsfw_threshold: float = Field(0.5, ge=0.0, le=1.0, description="Drop when score > threshold.")
    nsfw_batch: int = Field(16, ge=1, le=256)
    clean_workers: int = Field(0, ge=0, description="Decode/score processes; 0 = one per core.")
    clean_batch: int = Field(256, ge=1, description="Images per clean task.")

    # -- writing ---------------------------------------------------------------------------------
    split_salt: str = Field("midshard-v1", min_length=1, description="Salt of the prompt hash split.")
    shard_max_count: int = Field(1000, ge=1)
    shard_max_bytes: int = Field(1_000_000_000, ge=1)
    report_thumbnails: int = Field(
        48, ge=0, le=1000, description="Kept-sample thumbnails in report.html (dropped: half, never NSFW)."
    )

    # -- orchestration ---------------------------------------------------------------------------
    task_runner: Literal["threads", "dask"] = "threads"
    dask_address: str | None = Field(None, description="Existing Dask scheduler; None = LocalCluster.")
    lock_wait: float = Field(
        0.0, ge=0, description="Seconds to wait for another run on the same data root (0: fail at once)."
    )

    @field_validator("api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("media_hosts")
    @classmethod
    def _host_or_host_port(cls, hosts: list[str]) -> list[str]:
        """Lower-cased `host` / `host:port` entries: a scheme, a path or credentials are mistakes."""
        for entry in hosts:
            if not _is_host_port(entry):
                raise ValueError(f"media_hosts: {entry!r} is not a host or host:port")
        return [entry.lower() for entry in hosts]

    @field_validator("channels", "bot_ids")
    @classmethod
    def _snowflakes(cls, values: list[int], info: ValidationInfo) -> list[int]:
        what = "channel id" if info.field_name == "channels" else "bot id"
        return [snowflake(value, what) for value in values]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags and explicit values > `MIDSHARD_*` environment > the TOML file `load` names."""
        config = _config_file.get()
        if config is None:
            return init_settings, env_settings
        return init_settings, env_settings, _SettingsFile(settings_cls, toml_file=config)

    @classmethod
    def load(cls, config: str | Path | None = None, **overrides: Any) -> Settings:
        """Build settings from a TOML file (`config`, else `MIDSHARD_CONFIG`), the environment and
        explicit overrides (None = unset). Any problem is one `SettingsError` naming the setting.

        Code may pass the token as a `SecretStr`; a token-like override with a plain value (from
        `--set` or a flow parameter, which Prefect stores) is refused."""
        given = {name: value for name, value in overrides.items() if value is not None}
        refuse_token_keys({k: v for k, v in given.items() if not isinstance(v, SecretStr)}, "--set")
        with _reading(config or os.environ.get(CONFIG_ENV) or None):
            try:
                return cls(**given)
            except ValidationError as error:
                raise SettingsError(_problems(error)) from None
            except SourceError as error:  # a MIDSHARD_* variable that does not parse
                raise SettingsError(str(error)) from None

    def output_fingerprint(self) -> str:
        """Hash of the settings that determine the dataset's bytes (recorded in the manifest)."""
        relevant = self.model_dump(mode="json", include=set(OUTPUT_FIELDS))
        blob = json.dumps(relevant, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@contextmanager
def _reading(config: str | Path | None) -> Iterator[None]:
    """Let the sources of the settings built inside this block read `config` (if any)."""
    path = Path(config) if config else None
    if path is not None and not path.is_file():
        why = "is a directory" if path.is_dir() else "does not exist"
        raise SettingsError(f"settings file {path} {why}")
    token = _config_file.set(path)
    try:
        yield
    finally:
        _config_file.reset(token)


def _problems(error: ValidationError) -> str:
    """pydantic's complaints without the values (a value could be anything, even a token)."""
    lines = []
    for problem in error.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in problem["loc"]) or "settings"
        lines.append(f"{where}: {problem['msg']}")
    return "invalid settings: " + "; ".join(lines)
