"""What a run publishes to Prefect: the funnel as a table artifact, a markdown artifact pointing to
the report, and a progress artifact updated stage by stage (keys are stable, so the Artifacts page
compares runs month over month)."""

from __future__ import annotations

from collections.abc import Mapping
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)


class Progress:
    """A progress artifact moved forward as stages finish."""

    def __init__(self, key: str) -> None:
        self.artifact_id: UUID = create_progress_artifact(progress=0.0, key=key)

    def update(self, percent: float) -> None:
        update_progress_artifact(artifact_id=self.artifact_id, progress=percent)


def publish_funnel(key: str, funnel: Mapping[str, int], dataset: Mapping[str, int]) -> None:
    rows = [{"stage": stage, "count": count} for stage, count in funnel.items()]
    rows += [{"stage": f"in dataset: {split}", "count": count} for split, count in dataset.items()]
    create_table_artifact(key=f"{key}-funnel", table=rows, description="Candidates left after each step")


def publish_steps(key: str, steps: Mapping[str, Mapping[str, float | int]]) -> None:
    rows = [{"step": name, **figures} for name, figures in steps.items()]
    create_table_artifact(
        key=f"{key}-steps",
        table=rows,
        description="This run's cleaning steps: candidates seen, dropped, seconds",
    )


def publish_report(key: str, report_path: str, lines: list[str]) -> None:
    body = "\n".join(f"- {line}" for line in lines)
    create_markdown_artifact(
        key=f"{key}-report",
        markdown=f"# midshard run\n\nReport: `{report_path}`\n\n{body}\n",
        description="Where the dataset and its report are",
    )
