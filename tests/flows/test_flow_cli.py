"""The `midshard` command around the flows: settings precedence (file < MIDSHARD_* environment <
--set < flags), the token kept out of flags, clear exit-2 errors, and `midshard refresh --config` as
a real run on the session's Prefect server (`midshard demo` as a process: test_flow_experience.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flows_kit import (
    TOKEN,
    PrefectServer,
    emulator_config,
    kept_keys,
    rejected_decisions,
    truth_decisions,
    write_toml,
)
from typer.testing import CliRunner

from midshard.emulator import running_emulator
from midshard.flows.cli import app


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


def test_settings_precedence_file_then_environment_then_set(tmp_path: Path) -> None:
    config = write_toml(
        tmp_path / "midshard.toml",
        {"min_side": 100, "nsfw_threshold": 0.1, "grids": "split", "report_thumbnails": 3},
    )
    env = {"MIDSHARD_MIN_SIDE": "200", "MIDSHARD_NSFW_THRESHOLD": "0.2", "DISCORD_BOT_TOKEN": TOKEN}

    code, output = invoke("settings", "--config", str(config), "--set", "min_side=300", env=env)

    assert code == 0, output
    effective = json.loads(output)
    assert effective["grids"] == "split"  # file over default
    assert effective["report_thumbnails"] == 3
    assert effective["nsfw_threshold"] == 0.2  # environment over file
    assert effective["min_side"] == 300  # --set over environment
    assert "token" not in effective and TOKEN not in output


def test_flags_win_over_set() -> None:
    # the flag's invalid value is the one validated although --set gives a valid one ...
    code, output = invoke("scrape", "--channel", "1", "--min-side", "0", "--set", "min_side=100")
    assert code == 2 and "min_side" in output
    # ... and a valid flag replaces an invalid --set (the run then stops for want of a channel)
    code, output = invoke("scrape", "--min-side", "100", "--set", "min_side=0")
    assert code == 2 and "no channel to scrape" in output


def test_token_is_refused_as_a_setting(tmp_path: Path) -> None:
    config = write_toml(tmp_path / "midshard.toml", {"channels": [1]})
    for name in ("token", "DISCORD_BOT_TOKEN"):
        code, output = invoke("refresh", "--config", str(config), "--set", f"{name}={TOKEN}")
        assert code == 2 and "DISCORD_BOT_TOKEN" in output and TOKEN not in output
    in_file = write_toml(tmp_path / "with-token.toml", {"channels": [1], "token": TOKEN})
    code, output = invoke("settings", "--config", str(in_file))
    assert code == 2 and "must not be stored in a settings file" in output and TOKEN not in output


def test_a_bad_setting_is_a_clear_error_with_exit_code_2(tmp_path: Path) -> None:
    code, output = invoke("settings", "--set", "nsfw_threshold=2")
    assert code == 2 and "nsfw_threshold" in output and "less than or equal to 1" in output
    code, output = invoke("settings", "--set", "no_such_setting=1")
    assert code == 2 and "no_such_setting" in output
    code, output = invoke("settings", "--set", "grids")
    assert code == 2 and "not name=value" in output
    config = write_toml(tmp_path / "midshard.toml", {"grids": "sometimes"})
    code, output = invoke("refresh", "--config", str(config))
    assert code == 2 and "grids" in output


@pytest.mark.prefect
def test_refresh_command_on_the_emulator(
    prefect_server: PrefectServer, bot_token: str, emulator_cache: Path, tmp_path: Path
) -> None:
    root = tmp_path / "data"
    with running_emulator(emulator_config(emulator_cache, channels=1, messages=30)) as emulator:
        config = write_toml(
            tmp_path / "midshard.toml",
            {
                "root": str(root),
                "api_base": emulator.api_base,
                "channels": emulator.channel_ids,
                "split_salt": "cli-test",
                "shard_max_count": 10,
                "report_thumbnails": 3,
                "clean_workers": 1,
            },
        )
        env = {"MIDSHARD_SHARD_MAX_COUNT": "20", "MIDSHARD_REPORT_THUMBNAILS": "4"}

        code, output = invoke("refresh", "--config", str(config), "--set", "report_thumbnails=5", env=env)
        truth = truth_decisions(emulator.truth())

    assert code == 0, output
    assert f"Prefect API: {prefect_server.api_url}" in output
    assert "funnel" in output and TOKEN not in output
    assert kept_keys(root) == {key for key, decision in truth.items() if decision == "keep"}
    assert rejected_decisions(root) == {k: d for k, d in truth.items() if d != "keep"}
    recorded = json.loads((root / "dataset" / "manifest.json").read_text())["settings"]
    assert recorded["split_salt"] == "cli-test"  # file
    assert recorded["shard_max_count"] == 20  # environment over file
    assert recorded["report_thumbnails"] == 5  # --set over environment and file
