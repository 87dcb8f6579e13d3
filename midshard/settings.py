"""The one settings object: read by the CLI, the Prefect flows and the deployment alike.

Precedence (highest first): CLI flags / explicit keyword overrides, environment variables
(`MIDSHARD_<FIELD>`, plus `DISCORD_BOT_TOKEN` for the token), the TOML settings file, defaults.
The bot token is a `SecretStr` excluded from every dump, so it never reaches a flow parameter,
a manifest, a log line or an artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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

    @field_validator("api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @classmethod
    def load(cls, config: str | Path | None = None, **overrides: Any) -> Settings:
        """Build settings from a TOML file, the environment and explicit overrides (None = unset)."""
        config = config or os.environ.get("MIDSHARD_CONFIG")
        file_values: dict[str, Any] = {}
        if config:
            file_values = tomllib.loads(Path(config).read_text(encoding="utf-8"))
            if "token" in file_values or "DISCORD_BOT_TOKEN" in file_values:
                raise ValueError(f"{config}: the bot token must not be stored in a settings file")
        from_env = cls()
        env_values = {name: getattr(from_env, name) for name in from_env.model_fields_set}
        given = {name: value for name, value in overrides.items() if value is not None}
        return cls(**{**file_values, **env_values, **given})

    def output_fingerprint(self) -> str:
        """Hash of the settings that determine the dataset's bytes (recorded in the manifest)."""
        relevant = self.model_dump(mode="json", include=set(OUTPUT_FIELDS))
        blob = json.dumps(relevant, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
