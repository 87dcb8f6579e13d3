"""The scrape flow against the Discord emulator on a real Prefect server: the dataset holds exactly
what the emulator's ground truth says, and the run publishes its funnel, report and progress."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from flows_kit import TOKEN, Scraped, kept_keys, rejected_decisions, truth_decisions
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

pytestmark = pytest.mark.prefect


def test_scrape_reproduces_the_truth(scraped: Scraped) -> None:
    truth = truth_decisions(scraped.truth)
    keep = {key for key, decision in truth.items() if decision == "keep"}
    assert len(keep) >= 10
    assert kept_keys(scraped.root) == keep
    assert rejected_decisions(scraped.root) == {k: d for k, d in truth.items() if d != "keep"}
    assert sum(scraped.result.dataset.values()) == len(keep)
    assert scraped.result.collect_errors == {}


async def _artifacts_and_parameters(scraped: Scraped) -> tuple[dict[str, object], str]:
    async with get_client() as client:
        artifacts = await client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[scraped.flow_run_id]))
        )
        flow_run = await client.read_flow_run(scraped.flow_run_id)
    by_key = {artifact.key: artifact for artifact in artifacts}
    assert len(by_key) == len(artifacts) == 4
    return {key: (a.type, a.data) for key, a in by_key.items()}, json.dumps(flow_run.parameters)


def test_scrape_publishes_funnel_report_and_progress(scraped: Scraped) -> None:
    artifacts, parameters = asyncio.run(_artifacts_and_parameters(scraped))

    kind, table = artifacts["midshard-scrape-funnel"]
    assert kind == "table"
    rows = json.loads(table) if isinstance(table, str) else table
    stages = {row["stage"]: row["count"] for row in rows}
    assert {s: stages[s] for s in scraped.result.funnel} == scraped.result.funnel
    assert stages["messages"] == len(scraped.truth)
    assert stages["in dataset: train"] + stages["in dataset: validation"] == len(kept_keys(scraped.root))

    kind, steps = artifacts["midshard-scrape-steps"]
    steps = json.loads(steps) if isinstance(steps, str) else steps
    assert kind == "table" and [row["step"] for row in steps] == list(scraped.result.steps)
    assert steps[0]["seen"] == stages["candidates"] and all(row["seconds"] >= 0 for row in steps)

    kind, markdown = artifacts["midshard-scrape-report"]
    assert kind == "markdown"
    assert str(scraped.root / "dataset" / "report.html") in str(markdown)
    assert (scraped.root / "dataset" / "report.html").is_file()

    kind, progress = artifacts["midshard-scrape"]
    assert (kind, float(progress)) == ("progress", 100.0)

    # the settings travelled as a flow parameter; the token did not
    assert scraped.settings.api_base in parameters
    assert TOKEN not in parameters


def test_step_counts_reach_the_manifest_and_report_and_times_the_run_log(scraped: Scraped) -> None:
    manifest = json.loads((scraped.root / "dataset" / "manifest.json").read_text())
    steps = manifest["runs"][-1]["steps"]
    assert [row["step"] for row in steps] == list(scraped.result.steps)
    # no times in the dataset's files: a rebuild must give the same bytes
    assert all(set(row) == {"step", "seen", "dropped"} for row in steps)
    report = (scraped.root / "dataset" / "report.html").read_text()
    table = report[report.index("<h3>Cleaning steps</h3>") : report.index("<h2>Split</h2>")]
    row_pattern = r'<tr><td>(\w+)</td><td class="n">([\d,]+)</td><td class="n">([\d,]+)</td></tr>'
    shown = re.findall(row_pattern, table)
    assert shown == [(row["step"], f"{row['seen']:,}", f"{row['dropped']:,}") for row in steps]
    (record,) = [json.loads(path.read_text()) for path in (scraped.root / "derived" / "runs").glob("*.json")]
    assert record["steps"] == scraped.result.steps
    assert all(row["seconds"] >= 0 for row in record["steps"].values())
