"""README and docs stay true to the code: generated tables equal their declarations, every column and metric of
the table is documented, every relative link resolves."""
import re
from pathlib import Path

import pytest

from bench.schema import columns
from variants import AXES
from variants.axes import markdown_table

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))


def block(text: str, name: str) -> str:
    """What lies between ``<!-- name: ... -->`` and ``<!-- /name -->``."""
    match = re.search(rf"<!-- {name}:[^\n]*-->\n(.*?)<!-- /{name} -->", text, flags=re.S)
    assert match, f"README.md has no <!-- {name}: --> block"
    return match.group(1).strip()


def test_the_readme_axis_table_is_the_declarations():
    expected = markdown_table()
    assert block(README.read_text(), "axes") == expected, f"README's axis table is stale; it should read:\n{expected}"


def test_the_readme_verdict_is_the_reference_report_s():
    report = (ROOT / "results" / "quick-cpu" / "report.md").read_text()
    verdict = report[report.index("## Verdict"):]
    table = re.search(r"^\| switch \|.*?(?=\n\n)", verdict, flags=re.S | re.M).group(0)
    floor = re.search(r"^- Noise floor.*$", verdict, flags=re.M).group(0)
    assert block(README.read_text(), "verdict") == f"{table}\n\n{floor}"


def test_every_column_of_the_table_is_documented():
    text = (ROOT / "docs" / "columns.md").read_text()
    rows = {cell.strip() for line in text.splitlines() if line.startswith("| `") for cell in line.split("|")[1:2]}
    documented = set(re.findall(r"`([a-z_]+)`", " ".join(rows)))
    assert set(columns()) - set(AXES) <= documented, set(columns()) - set(AXES) - documented
    assert set(AXES) <= documented | set(re.findall(r"`([a-z_]+)`", text)), "an axis column is not named"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in re.findall(r"\]\((?!https?:|#)([^)<>\s]+)\)", page.read_text()):
        assert (page.parent / target.split("#")[0]).exists(), f"{page.name} links to a missing {target}"
