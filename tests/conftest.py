"""Session-wide test environment: no user Prefect profile, no stray token, offline Prefect."""

from __future__ import annotations

import os
import tempfile

import pytest

# Set before anything imports Prefect: a private PREFECT_HOME, no telemetry, no user API URL.
_PREFECT_HOME = tempfile.mkdtemp(prefix="midshard-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_API_URL"] = ""
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("DISCORD_BOT_TOKEN", None)
for _name in [n for n in os.environ if n.startswith("MIDSHARD_")]:
    os.environ.pop(_name)


@pytest.fixture(autouse=True)
def _no_stray_token(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see DISCORD_BOT_TOKEN only when they ask for the flow tests' `bot_token` fixture."""
    if "bot_token" not in request.fixturenames and "scraped" not in request.fixturenames:
        monkeypatch.delenv("DISCORD_BOT_TOKEN", raising=False)
