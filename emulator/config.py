"""The emulator's settings. Every field is also a `midshard emulator` option (same name, dashes for
underscores), and the field descriptions are the option help texts."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from midshard.emulator.snowflakes import MAX_STREAMS


class EmulatorConfig(BaseModel):
    """What the emulator serves and how it misbehaves. Faults are off by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- traffic -----------------------------------------------------------------------------
    seed: int = Field(1, description="Traffic seed: the same seed serves byte-identical messages and files.")
    channels: int = Field(2, ge=1, le=64, description="Text channels in the emulated guild.")
    messages: int = Field(300, ge=0, le=2_000_000, description="Messages per channel.")
    threads: int = Field(0, ge=0, le=16, description="Public threads (type 11) per channel.")
    thread_messages: int = Field(40, ge=0, le=200_000, description="Messages per thread.")

    # -- server --------------------------------------------------------------------------------
    port: int = Field(0, ge=0, le=65535, description="TCP port on 127.0.0.1; 0 picks a free port.")
    token: SecretStr | None = Field(
        None, description="Require 'Authorization: Bot <token>' on API calls; unset accepts any caller."
    )
    cache_dir: Path | None = Field(None, description="Directory for an on-disk cache of generated files.")
    cache_mb: int = Field(256, ge=0, description="In-memory cache of generated files, in MiB.")
    prerender: bool = Field(
        False,
        description="Encode every message's JSON before serving (about 5 kB of memory each), so a "
        "history page costs only its assembly and link signing (benchmarks).",
    )
    small_files: bool = Field(
        False,
        description="Serve every picture as a small JPEG (~40 kB for 1024x1024 instead of a ~1.8 MB "
        "PNG, and 8x cheaper to make): same messages and decisions, for runs of tens of thousands "
        "of images.",
    )

    # -- rate limits ---------------------------------------------------------------------------
    history_limit: int = Field(5, ge=1, description="Requests per window of a channel's message routes.")
    history_window: float = Field(5.0, gt=0, description="Seconds per window of the message routes.")
    global_limit: int = Field(50, ge=1, description="Requests per second per token, all routes (global).")
    lying_headers: bool = Field(
        False, description="Message routes advertise 1000/999 remaining; the real limit still applies."
    )
    shared_429_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of API requests answered by a 429 with scope 'shared'."
    )
    ban_threshold: int = Field(
        10_000, ge=1, description="Invalid responses (401/403/429) per window that get an IP banned."
    )
    ban_window: float = Field(600.0, gt=0, description="Seconds of the invalid-request sliding window.")
    ban_duration: float = Field(60.0, gt=0, description="Seconds a Cloudflare-style ban lasts.")

    # -- CDN -----------------------------------------------------------------------------------
    link_ttl: float = Field(86_400.0, gt=0, description="Seconds a signed attachment URL stays valid.")
    signing_epoch: float | None = Field(
        None,
        description="Sign every link as issued at this Unix time instead of now, so two crawls of the "
        "same channels store byte-identical JSON (expiry is still checked against the real clock).",
    )

    # -- faults (each a pure function of seed, kind, path and attempt number) ------------------
    fault_5xx: float = Field(0.0, ge=0.0, le=1.0, description="Share of requests answered 500/502/504.")
    fault_reset: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of CDN responses whose connection is reset mid-body."
    )
    fault_truncate: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of CDN responses cut short of their Content-Length."
    )
    fault_slow: float = Field(0.0, ge=0.0, le=1.0, description="Share of requests delayed by --slow-seconds.")
    slow_seconds: float = Field(2.0, ge=0.0, description="Delay of a slow response, in seconds.")
    fault_dribble: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of CDN responses whose body trickles (1 KiB per 0.1 s): no read timeout fires.",
    )
    gone_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of attachments gone for good (CDN 404 even after refresh)."
    )
    api_body_faults: bool = Field(
        False, description="Also apply the reset/truncate faults to API responses (not only the CDN)."
    )

    @model_validator(mode="after")
    def _fits_id_space(self) -> EmulatorConfig:
        if self.channels * (1 + self.threads) > MAX_STREAMS:
            raise ValueError(f"channels x (1 + threads) must be <= {MAX_STREAMS}")
        return self

    def token_value(self) -> str | None:
        return self.token.get_secret_value() if self.token is not None else None
