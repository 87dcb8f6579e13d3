"""The Jinja2 environment of the dataset card and the report (templates live in `templates/`)."""

from __future__ import annotations

from pathlib import Path

import jinja2

ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(name: str, **context: object) -> str:
    return ENV.get_template(name).render(**context)
