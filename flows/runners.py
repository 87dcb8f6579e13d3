"""Which Prefect task runner a flow uses: a bounded thread pool (default) or Dask."""

from __future__ import annotations

import os

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from midshard.settings import Settings

THREADS = 8  # downloads are I/O bound; CPU work runs in the cleaners' own process pool


def default_runner() -> ThreadPoolTaskRunner:
    """The flows' own runner: bounded threads (Prefect's default pool is unbounded)."""
    return ThreadPoolTaskRunner(max_workers=THREADS)


def is_dask(runner: TaskRunner) -> bool:
    """Whether `runner` is prefect-dask's (checked by name: prefect_dask loads only when used)."""
    return type(runner).__name__ == "DaskTaskRunner"


def task_runner(settings: Settings) -> TaskRunner:
    """The runner `settings.task_runner` names.

    Dask: an existing scheduler (`dask_address`) or a LocalCluster of one single-threaded worker
    process per core. Its workers talk to the Prefect API themselves, so run a real Prefect server
    (`PREFECT_API_URL`): under the embedded API each worker would start a server of its own.
    """
    if settings.task_runner == "threads":
        return default_runner()
    from prefect_dask import DaskTaskRunner

    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    workers = os.cpu_count() or 1
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": "127.0.0.1:8787",  # Dask's default listens on every interface
        },
    )


def for_tasks(settings: Settings) -> Settings:
    """The settings handed to tasks: no token (tasks read it from their environment), and on Dask
    one image process per worker (Dask workers are the parallelism, and daemonic)."""
    update: dict[str, object] = {"token": None}
    if settings.task_runner == "dask":
        update["clean_workers"] = 1
    return settings.model_copy(update=update)
