"""Prefect defaults for midshard runs, applied before Prefect is imported.

Measured pitfalls (shared/reference/prefect.md §3.4, §10): the embedded (ephemeral) API needs more
than its 20 s start-up timeout on a cold 2-core machine, sends telemetry that fails offline, loses
queued task-run records at exit unless the server ingests in batches, and the default thread pool is
unbounded. Users can override every value from their environment; nothing here is set if present.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS": "8",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "100",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "midshard",
}


def configure() -> str:
    """Apply the defaults; return a one-line description of the Prefect API this process will use."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("PREFECT_HOME", str(Path.home() / ".midshard" / "prefect"))
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)  # Prefect won't
    api_url = os.environ.get("PREFECT_API_URL", "")
    if api_url:
        return f"Prefect API: {api_url}"
    return f"Prefect API: embedded (ephemeral, SQLite in {os.environ['PREFECT_HOME']})"
