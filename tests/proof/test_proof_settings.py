"""Settings files and `--set` are not a way in for the token, whatever its spelling, nor for a
traceback: token-like keys are refused case-insensitively (nested tables too) and no error repeats
a value it was given. The sources are pydantic-settings' own (file < MIDSHARD_* < --set < flags),
`MIDSHARD_CONFIG` names the file when `--config` does not, and `collect` takes `--set` too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from midshard.flows.cli import app

SECRET = "MTA5OTk.settings-T0ken+never_printed_3a7e"
TOKEN_KEYS = [
    "token",
    "Token",
    "TOKEN",
    "discord_bot_token",
    "DISCORD_BOT_TOKEN",
    "Discord-Bot-Token",
    "botToken",
    "bot_tokens",
    '"discord bot token"',
]


def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    wide = {"COLUMNS": "1000"}  # typer's usage errors are boxed by rich: one path, one line
    result = CliRunner().invoke(app, list(args), env=wide | (env or {}))
    return result.exit_code, result.output


@pytest.mark.parametrize("key", TOKEN_KEYS)
def test_token_like_keys_in_a_settings_file_are_refused(tmp_path: Path, key: str) -> None:
    config = tmp_path / "midshard.toml"
    config.write_text(f'channels = [1]\n{key} = "{SECRET}"\n')
    code, output = invoke("settings", "--config", str(config))
    assert code == 2 and f"{config}: " in output and "looks like the bot token" in output, output
    assert SECRET not in output and "Traceback" not in output


@pytest.mark.parametrize(
    "table",
    ['[discord]\ntoken = "{}"\n', '[[servers]]\nname = "a"\n[[servers]]\nbot_token = "{}"\n'],
    ids=["table", "array_of_tables"],
)
def test_token_like_keys_in_nested_tables_are_refused(tmp_path: Path, table: str) -> None:
    config = tmp_path / "midshard.toml"
    config.write_text("channels = [1]\n" + table.format(SECRET))
    code, output = invoke("settings", "--config", str(config))
    assert code == 2 and "looks like the bot token" in output and SECRET not in output, output


@pytest.mark.parametrize("key", [k.strip('"') for k in TOKEN_KEYS])
def test_token_like_set_keys_are_refused_before_any_command_runs(tmp_path: Path, key: str) -> None:
    for command in (["settings"], ["collect", "--channel", "1", "--out", str(tmp_path / "data")]):
        code, output = invoke(*command, "--set", f"{key}={SECRET}")
        assert code == 2 and "DISCORD_BOT_TOKEN" in output and SECRET not in output, output
    assert not (tmp_path / "data").exists()


def test_errors_never_repeat_a_value(tmp_path: Path) -> None:
    code, output = invoke("settings", "--set", f'discord={{"bot": "{SECRET}"}}')
    assert code == 2 and "discord" in output and SECRET not in output, output
    config = tmp_path / "midshard.toml"
    config.write_text(f'channels = ["{SECRET}"]\n')
    code, output = invoke("settings", "--config", str(config))
    assert code == 2 and "channels.0" in output and SECRET not in output, output


def test_midshard_config_names_the_file_unless_config_does(tmp_path: Path) -> None:
    from_env = tmp_path / "from-env.toml"
    from_env.write_text('grids = "split"\nmin_side = 100\n')
    given = tmp_path / "given.toml"
    given.write_text("min_side = 200\n")
    env = {"MIDSHARD_CONFIG": str(from_env), "MIDSHARD_NSFW_THRESHOLD": "0.25"}

    code, output = invoke("settings", env=env)
    assert code == 0, output
    assert {"grids": "split", "min_side": 100, "nsfw_threshold": 0.25}.items() <= json.loads(output).items()
    code, output = invoke("settings", "--config", str(given), env=env)
    assert code == 0, output
    assert json.loads(output)["min_side"] == 200 and json.loads(output)["grids"] == "skip"


@pytest.mark.parametrize("what", ["directory", "missing", "not_toml", "not_utf8"])
def test_an_unusable_settings_file_is_one_clear_error(tmp_path: Path, what: str) -> None:
    path = {
        "directory": tmp_path,
        "missing": tmp_path / "nowhere.toml",
        "not_toml": tmp_path / "broken.toml",
        "not_utf8": tmp_path / "latin1.toml",
    }[what]
    (tmp_path / "broken.toml").write_text("channels = [1\n")
    (tmp_path / "latin1.toml").write_bytes('split_salt = "Straße"\n'.encode("latin-1"))
    for args, env in ((["--config", str(path)], None), ([], {"MIDSHARD_CONFIG": str(path)})):
        code, output = invoke("settings", *args, env=env)
        assert code == 2 and str(path) in output and "Traceback" not in output, (args, output)


def test_collect_takes_set_like_the_other_commands(tmp_path: Path) -> None:
    code, output = invoke("collect", "--channel", "1", "--set", "nsfw_threshold=2", "--out", str(tmp_path))
    assert code == 2 and "nsfw_threshold" in output and "less than or equal to 1" in output, output
    code, output = invoke("collect", "--set", "channels=[]", "--out", str(tmp_path))
    assert code == 2 and "no channel to scrape" in output, output
