"""The bot token never reaches a file, an output line, a log record or an exception text."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from collector_kit import TOKEN, collect_settings, emulator_config, running
from pydantic import SecretStr

from midshard.collectors.collect import collect
from midshard.collectors.history import LoginError

UNKNOWN_CHANNEL = 123456789012345678


def cli(api_base: str, root: Path, token: str | None, *channels: int) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIDSHARD_")}
    env.pop("DISCORD_BOT_TOKEN", None)
    if token is not None:
        env["DISCORD_BOT_TOKEN"] = token
    env |= {"MIDSHARD_MAX_FILE_SIZE": "300000", "MIDSHARD_DOWNLOAD_BACKOFF": "0.01"}
    command = [sys.executable, "-m", "midshard.flows.cli", "collect", "--out", str(root)]
    command += ["--api-base", api_base, "--download", "all", "--threads"]
    command += [arg for channel_id in channels for arg in ("--channel", str(channel_id))]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_token_stays_out_of_files_outputs_and_logs(
    tmp_path: Path, emulator_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    faults = {"fault_5xx": 0.05, "fault_reset": 0.2, "gone_rate": 0.2}
    config = emulator_config(emulator_cache, messages=60, threads=1, thread_messages=10, **faults)
    with running(config) as emulator:
        root = tmp_path / "data"
        run = cli(emulator.api_base, root, TOKEN, *emulator.channel_ids, UNKNOWN_CHANNEL)
        assert run.returncode == 1  # one channel failed, the others were collected
        assert f"channel {UNKNOWN_CHANNEL} failed" in run.stdout and "Unknown Channel" in run.stdout
        assert "failed attachments, too_large" in run.stdout  # the summary by reason
        outputs = [run.stdout, run.stderr]

        refused = cli(emulator.api_base, tmp_path / "refused", "not-the-" + TOKEN, *emulator.channel_ids)
        assert refused.returncode == 2 and "refused the bot token" in refused.stderr
        assert "not-the-" not in refused.stderr + refused.stdout  # not even a wrong token is echoed
        missing = cli(emulator.api_base, tmp_path / "missing", None, *emulator.channel_ids)
        assert missing.returncode == 2 and "no bot token" in missing.stderr
        outputs += [refused.stdout, refused.stderr, missing.stdout, missing.stderr]

        # in-process, with every logger (discord.py's HTTP debug lines included) recording
        caplog.set_level(logging.DEBUG)
        settings = collect_settings(emulator, tmp_path / "logged", include_threads=True)
        stats = collect(settings)
        assert stats.messages > 0 and caplog.records
        outputs += [caplog.text, repr(settings), str(settings.model_dump()), "\n".join(stats.summary())]
        with pytest.raises(LoginError) as refused_login:
            collect(collect_settings(emulator, tmp_path / "x", token=SecretStr("bad-" + TOKEN)))
        outputs += [str(refused_login.value), repr(refused_login.value)]
        assert refused_login.value.__cause__ is None and refused_login.value.__suppress_context__

    for text in outputs:
        assert TOKEN not in text
    for path in [p for p in tmp_path.rglob("*") if p.is_file()]:
        assert TOKEN.encode() not in path.read_bytes(), path


def test_redact() -> None:
    from midshard.collectors.token import REDACTED, redact

    assert redact(f"Authorization: Bot {TOKEN}", SecretStr(TOKEN)) == f"Authorization: Bot {REDACTED}"
    assert redact(f"x{TOKEN}y", None) == f"x{TOKEN}y"
