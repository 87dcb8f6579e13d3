"""Session-wide test environment: no user Prefect profile, no stray token, offline Prefect."""

from __future__ import annotations

import os
import tempfile

# Set before anything imports Prefect: a private PREFECT_HOME, no telemetry, no user API URL.
_PREFECT_HOME = tempfile.mkdtemp(prefix="midshard-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_API_URL"] = ""
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("DISCORD_BOT_TOKEN", None)
for _name in [n for n in os.environ if n.startswith("MIDSHARD_")]:
    os.environ.pop(_name)
