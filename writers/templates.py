"""The Jinja2 environment of the dataset card and the report (templates live in `templates/`).

Autoescaping is on for every `*.html.j2` template (the name `select_autoescape` sees ends in `.j2`,
so the extension must be listed whole): the report shows prompts and other text from Discord, and
none of it may become markup. Pre-rendered markup (the SVG charts) is passed as `Markup`. The
card (`*.md.j2`) is Markdown and shows only midshard's own names and figures, no Discord text."""

from __future__ import annotations

from pathlib import Path

import jinja2

ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=jinja2.select_autoescape(["html", "html.j2"]),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render(name: str, **context: object) -> str:
    return ENV.get_template(name).render(**context)
