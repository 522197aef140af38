"""Markdown and self-contained HTML (figures as base64 data URIs) from the report's sections.

Every string from the table or env.json is escaped with html.escape on its way into either format.
"""
from __future__ import annotations

import base64
import html
import os
import re
from pathlib import Path

import pandas as pd

from bench.report.render.document import Figure, Image, Section, Table, Text

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; margin-top: .4em; } .note { color: #555; font-size: .9em; }
.table { overflow-x: auto; margin: 1em 0; } table { border-collapse: collapse; font-size: .8em; }
th, td { border: 1px solid #ddd; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } .samples { display: flex; flex-wrap: wrap; gap: 1em; }
.samples figure { margin: 0; } .samples img { width: 220px; image-rendering: pixelated; }
details { margin: 1em 0; } summary { cursor: pointer; color: #555; }
td { overflow-wrap: anywhere; }
"""


def anchor(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _md(text: str) -> str:
    """Markdown renderers pass raw HTML through: escape it (quotes may stay, they are harmless in text)."""
    return html.escape(text, quote=False)


def _text(value) -> str:
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def to_markdown(title: str, intro: str, sections: list[Section], out_dir: Path) -> str:
    lines = [f"# {_md(title)}", "", _md(intro), "", "Contents:", ""]
    lines += [f"- [{_md(s.title)}](#{anchor(s.title)})" for s in sections]
    for section in sections:
        lines += ["", f"## {_md(section.title)}", ""]
        if section.note:
            lines += [f"_{_md(section.note)}_", ""]
        shown, details = _split(section)
        for item in shown:
            lines += _markdown_item(item, out_dir) + [""]
        if details:  # GitHub renders <details> in Markdown; blank lines keep the Markdown inside it working
            lines += ["<details>", f"<summary>{_md(_summary(details))}</summary>", ""]
            for item in details:
                lines += _markdown_item(item, out_dir) + [""]
            lines += ["</details>", ""]
    return "\n".join(lines) + "\n"


def _split(section: Section) -> tuple[list, list]:
    """The items shown, and the long tables and figures collapsed under the section's details."""
    return ([i for i in section.items if not getattr(i, "detail", False)],
            [i for i in section.items if getattr(i, "detail", False)])


def _summary(details: list) -> str:
    tables = sum(isinstance(i, Table) for i in details)
    figures = len(details) - tables
    counted = [f"{n} {what}{'s' if n > 1 else ''}" for n, what in ((tables, "table"), (figures, "figure")) if n]
    return f"Details: {' and '.join(counted)}"


def _markdown_item(item, out_dir: Path) -> list[str]:
    if isinstance(item, Text):
        return [f"- {_md(line)}" for line in item.lines]
    if isinstance(item, Figure | Image):
        rel = Path(os.path.relpath(item.path, out_dir)).as_posix()
        if isinstance(item, Image):
            return [f"![{_md(item.caption)}](<{rel}>)", "", _md(item.caption)]
        return [f"**{_md(item.title)}**", "", f"![{_md(item.title)}](<{rel}>)", "",
                f"Reading: {_md(item.reading)}"]
    lines = [f"**{_md(item.title)}**", ""]
    if item.note:
        lines += [_md(item.note), ""]
    return lines + markdown_table(item.frame)


def markdown_table(frame: pd.DataFrame) -> list[str]:
    """``frame``'s lines as a Markdown table, every cell escaped."""
    if frame.empty:
        return ["(no rows)"]

    def cell(value) -> str:
        return _md(_text(value)).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(cell(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return [header, rule, *body]


def to_html(title: str, intro: str, sections: list[Section]) -> str:
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", f"<p>{html.escape(intro)}</p>", "<nav><ul>"]
    parts += [f'<li><a href="#{anchor(s.title)}">{html.escape(s.title)}</a></li>' for s in sections]
    parts.append("</ul></nav>")
    for section in sections:
        parts.append(f'<section id="{anchor(section.title)}"><h2>{html.escape(section.title)}</h2>')
        if section.note:
            parts.append(f'<p class="note">{html.escape(section.note)}</p>')
        shown, details = _split(section)
        images = [i for i in shown if isinstance(i, Image)]
        parts += [_html_item(i) for i in shown if not isinstance(i, Image)]
        if images:
            parts.append('<div class="samples">' + "".join(_html_item(i) for i in images) + "</div>")
        if details:
            parts.append(f"<details><summary>{html.escape(_summary(details))}</summary>")
            parts += [_html_item(i) for i in details]
            parts.append("</details>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _html_item(item) -> str:
    if isinstance(item, Text):
        return "<ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in item.lines) + "</ul>"
    if isinstance(item, Image):
        return (f'<figure><img src="{data_uri(item.path)}" alt="{html.escape(item.caption, quote=True)}">'
                f"<figcaption>{html.escape(item.caption)}</figcaption></figure>")
    if isinstance(item, Figure):
        return (f'<figure><img src="{data_uri(item.path)}" alt="{html.escape(item.title, quote=True)}">'
                f"<figcaption><b>{html.escape(item.title)}</b><br>Reading: {html.escape(item.reading)}"
                "</figcaption></figure>")
    assert isinstance(item, Table)
    note = f'<p class="note">{html.escape(item.note)}</p>' if item.note else ""
    return f'<div class="table"><h3>{html.escape(item.title)}</h3>{note}{_html_table(item.frame)}</div>'


def _html_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "<p>(no rows)</p>"
    head = "".join(f"<th>{html.escape(_text(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_text(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
