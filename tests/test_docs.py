"""The documentation points at things that exist: every relative link of README.md and docs/*.md
resolves (to a file, and to a heading when it names one), and every repository path they mention —
`midshard/settings.py`, `tests/proof/`, `python bench/clean.py` — is in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP_LEVEL = (
    "midshard",
    "collectors",
    "cleaners",
    "writers",
    "flows",
    "emulator",
    "tests",
    "docs",
    "bench",
    "deploy",
)
# A repository path in prose or code: a top-level folder, then more path (no URL, no dotted module name).
REPO_PATH = re.compile(rf"(?<![\w./:-])(?:{'|'.join(TOP_LEVEL)})/[\w./*-]*")
LINK = re.compile(r"\]\(([^)\s]+)\)")
CREATED_ON_USE = ("bench/.venvs/", "bench/results/")  # made by the benchmarks, ignored by git
# An absolute path is an HTTP route or a system folder every Linux has, never a folder of one
# machine; and nothing names the `shared` folder kept beside some checkouts (tests/dce_fixtures.py).
ABSOLUTE_PATH = re.compile(r"(?:^|(?<=[\s`\"'(=]))/([A-Za-z][\w.-]*)/", flags=re.M)
ROUTES = {"api", "applications", "attachments", "channels", "guilds", "oauth2", "users"}  # Discord's
SYSTEM_OR_ROUTE = {*ROUTES, "tmp", "usr", "etc", "dev", "proc"}
OUTSIDE_FOLDER = re.compile(r"\bshared[/\\]")


def _prose(text: str) -> str:
    """Markdown without its code blocks and code spans (a link in code is an example, not a link)."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), flags=re.M)}


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(_prose(doc.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{_name(doc)}: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=_name)
def test_repository_paths_exist(doc: Path) -> None:
    missing = []
    for mention in set(REPO_PATH.findall(doc.read_text(encoding="utf-8"))):
        path = mention.rstrip(".")
        if path.startswith(CREATED_ON_USE):
            continue
        found = list(ROOT.glob(path.rstrip("/"))) if "*" in path else [ROOT / path]
        if not found or not all(p.exists() for p in found):
            missing.append(mention)
    assert not missing, f"{_name(doc)} names paths that are not in the repository: {sorted(missing)}"


def test_docs_cite_no_folder_outside_the_repository() -> None:
    """Sources are public (Discord's and Midjourney's documentation, papers), never a local folder."""
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        local = {f for f in ABSOLUTE_PATH.findall(text) if f not in SYSTEM_OR_ROUTE}
        assert not local and not OUTSIDE_FOLDER.search(text), f"{_name(doc)}: {sorted(local)}"


def test_the_architecture_table_names_every_module() -> None:
    """docs/architecture.md has one row per module of the installed packages, and no other."""
    table = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+/\w+\.py)` \|", table, flags=re.M)
    packages = ("midshard", "collectors", "cleaners", "writers", "flows", "emulator")
    modules = {f"{package}/{p.name}" for package in packages for p in (ROOT / package).glob("[!_]*.py")}
    assert len(rows) == len(set(rows)) and set(rows) == modules


def test_the_emulator_options_table_names_every_setting() -> None:
    """docs/emulator.md lists every `EmulatorConfig` field as its `midshard emulator` option."""
    from midshard.emulator import EmulatorConfig

    text = (ROOT / "docs" / "emulator.md").read_text(encoding="utf-8")
    table = text.split("## 2. Options", 1)[1].split("\n## ", 1)[0]
    first_cells = [row.split(" | ")[0] for row in table.splitlines()]
    documented = {option for cell in first_cells for option in re.findall(r"`(--[a-z0-9-]+)`", cell)}
    assert documented == {"--" + name.replace("_", "-") for name in EmulatorConfig.model_fields}


def test_the_readme_lists_the_reason_codes_in_step_order() -> None:
    from midshard.cleaners.registry import FUNNEL_ORDER

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = readme.split("## How it decides", 1)[1].split("Every drop is listed", 1)[0]
    listed = re.findall(r"`([a-z_]+)(?::<\w+>)?`", paragraph.split("in step order:", 1)[1])
    assert (*listed, "keep") == FUNNEL_ORDER
