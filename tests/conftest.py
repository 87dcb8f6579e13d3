"""Session-wide test environment (no user Prefect profile, no stray token, offline Prefect) and the
fixtures several test folders share: the emulator file cache and one real Prefect server."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from flows_kit import PrefectServer

# Set before anything imports Prefect: a private PREFECT_HOME, no telemetry, no user API URL.
_PREFECT_HOME = tempfile.mkdtemp(prefix="midshard-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_API_URL"] = ""
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("DISCORD_BOT_TOKEN", None)
for _name in [n for n in os.environ if n.startswith("MIDSHARD_")]:
    os.environ.pop(_name)


# The files that take longest (a minute or two each, measured with --durations): they start first,
# so the suite's two workers (`-n 2 --dist loadfile` in pyproject.toml) finish at about the same time.
LONGEST_FIRST = ("proof/test_proof_kill.py", "proof/test_proof_secrets.py", "flows/test_flow_deploy.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A real Prefect flow takes seconds: every `prefect` test is also `slow`."""
    for item in items:
        if item.get_closest_marker("prefect"):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: not item.nodeid.removeprefix("tests/").startswith(LONGEST_FIRST))


@pytest.fixture(autouse=True)
def _no_stray_token(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see DISCORD_BOT_TOKEN only when they ask for the flow tests' `bot_token` fixture."""
    if "bot_token" not in request.fixturenames and "scraped" not in request.fixturenames:
        monkeypatch.delenv("DISCORD_BOT_TOKEN", raising=False)


@pytest.fixture(scope="session")
def emulator_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated emulator files shared by every emulator of the session (same seed, same bytes)."""
    return tmp_path_factory.mktemp("emulator-cache")


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """One real Prefect server on 127.0.0.1 (scheduler on) for the whole session: this process and
    the processes it starts (Dask workers, `midshard` and `prefect` commands) use it.

    Prefect reads its settings once, at import: the URL goes into the live settings context for
    this process and into the environment for the processes it starts.
    """
    from flows_kit import drain_prefect_workers, start_prefect_server, stop
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = start_prefect_server(tmp_path_factory.mktemp("prefect-server"))
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
            yield server
            drain_prefect_workers()  # queued logs/events, else they retry a dead server at exit
    finally:
        os.environ["PREFECT_API_URL"] = ""
        stop(server.process)
