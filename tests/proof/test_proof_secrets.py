"""The bot token appears nowhere: `midshard scrape` on the embedded Prefect API (its SQLite
database in a private PREFECT_HOME) is refused with a wrong token, killed mid-download, and
resumed to completion; then every byte under the data roots, PREFECT_HOME, the outputs and the
exception texts is searched for the token, plain, URL-encoded and base64-encoded."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from flows_kit import emulator_config
from proof_kit import TOKEN, cli_env, leaks, run_cli, scrape_args
from pydantic import SecretStr

from midshard.collectors.collect import collect
from midshard.collectors.history import LoginError
from midshard.emulator import running_emulator
from midshard.settings import Settings

pytestmark = pytest.mark.prefect

WRONG = "MTA5OTk.wrong-T0ken+aa1/Bc=not_this_one_41f0"


def test_the_token_appears_nowhere(emulator_cache: Path, tmp_path: Path) -> None:
    home, root, logs = tmp_path / "prefect-home", tmp_path / "data", tmp_path / "logs"
    config = emulator_config(emulator_cache, token=TOKEN, channels=1, messages=40)
    with running_emulator(config) as emulator:
        refused = run_cli(scrape_args(emulator, tmp_path / "refused"), cli_env(home, token=WRONG), logs / "1")
        killed = run_cli(scrape_args(emulator, root), cli_env(home), logs / "2", kill_at="media_stored:5")
        resumed = run_cli(scrape_args(emulator, root), cli_env(home), logs / "3")
        settings = Settings.load(root=str(tmp_path / "x"), api_base=emulator.api_base, channels=[1])
        with pytest.raises(LoginError) as login:
            collect(settings.model_copy(update={"token": SecretStr(WRONG)}))
        served = emulator.stats()

    assert refused.returncode != 0 and "refused the bot token" in refused.stderr, refused.stderr[-2000:]
    assert killed.killed
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert served["responses"]["401"] >= 2 and served["bans"] == 0
    database = home / "prefect.db"
    # the runs' records are in the database (or still in its write-ahead log)
    assert any(emulator.api_base.encode() in part.read_bytes() for part in home.glob("prefect.db*"))

    texts = {
        "exception": "".join(traceback.format_exception(login.value)),
        **{
            f"run {n} {stream}": text
            for n, run in enumerate((refused, killed, resumed))
            for stream, text in (("stdout", run.stdout), ("stderr", run.stderr))
        },
    }
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert database in files and any(path.suffix == ".tar" for path in files)
    found = {name: leaks(text.encode(), token) for name, text in texts.items() for token in (TOKEN, WRONG)}
    found |= {str(path): leaks(path.read_bytes(), token) for path in files for token in (TOKEN, WRONG)}
    assert not {where: forms for where, forms in found.items() if forms}
