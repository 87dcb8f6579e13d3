"""Prefect defaults for midshard runs, applied before Prefect is imported, and an orderly shutdown.

Measured pitfalls (Prefect's settings reference and server docs, https://docs.prefect.io/v3): the
embedded (ephemeral) API needs more than its 20 s start-up timeout on a cold 2-core machine, sends
telemetry that fails offline (the server's, and the client's when a terminal is attached), loses
queued task-run records at exit unless the server ingests in batches, and the default thread pool
is unbounded. Users can override every value from their environment; nothing here is set if present.

Prefect's console lines are quiet by default (warnings and errors only): a run shows midshard's
progress instead. Only the console handler is quieted, so the Prefect UI still gets every line;
`--verbose` brings them back to the terminal (it wins over a level set in the environment).

The embedded server, a subprocess each run starts and stops, writes to the same terminal; by default
it shows only critical lines. Stopping it can cancel its task-run recorder in the middle of a
periodic flush, which it logs as an error with a traceback although the batch goes back on its
queue and the recorder's final flush writes it (`prefect/server/services/task_run_recorder.py`).
`--verbose` shows the server's warnings and errors again (Prefect's default level).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",  # Prefect's client-side telemetry (and its notice in a terminal)
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    "PREFECT_TASKS_RUNNER_THREAD_POOL_MAX_WORKERS": "8",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "100",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "midshard",
}
# Prefect's logging.yml handler `console` (any item of it can be set by PREFECT_LOGGING_<PATH>).
CONSOLE_LEVEL = "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"
# The level of the `prefect.server` logger, in the embedded server's process as in this one.
SERVER_LEVEL = "PREFECT_SERVER_LOGGING_LEVEL"


def configure(verbose: bool = False) -> str:
    """Apply the defaults; return a one-line description of the Prefect API this process will use."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)
    if verbose:  # asked for on this command line: wins over a level inherited from the environment
        os.environ[CONSOLE_LEVEL] = "NOTSET"
        os.environ[SERVER_LEVEL] = "WARNING"
    os.environ.setdefault(CONSOLE_LEVEL, "WARNING")
    os.environ.setdefault(SERVER_LEVEL, "CRITICAL")
    os.environ.setdefault("PREFECT_HOME", str(Path.home() / ".midshard" / "prefect"))
    Path(os.environ["PREFECT_HOME"]).expanduser().mkdir(parents=True, exist_ok=True)  # Prefect won't
    api_url = os.environ.get("PREFECT_API_URL", "")
    if api_url:
        return f"Prefect API: {api_url}"
    return f"Prefect API: embedded (ephemeral, SQLite in {os.environ['PREFECT_HOME']})"


def shutdown() -> None:
    """Send this process's queued Prefect logs and events, then stop the embedded API server if this
    process started one: in that order, while the server is still there to receive them.

    Left to the interpreter's exit, the same steps race: Prefect's services drain in a thread-exit
    hook, the server stops in an atexit hook, and an event still in flight meets a stopped events
    worker or a server that is going away (the "stopped service" tracebacks at exit)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer

    APILogWorker.drain_all(at_exit=False)
    EventsWorker.drain_all(at_exit=False)
    SubprocessASGIServer().stop()  # the embedded API's server (a no-op if none was started)
