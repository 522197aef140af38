"""README and docs stay true to the code: generated tables equal their declarations, every column and metric of
the table is documented, every relative link resolves."""
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from bench.plan.sweep import Sweep, get_preset
from bench.schema import columns
from variants import AXES, default_grid
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
    precision = re.findall(r"^- Timing precision.*$", verdict, flags=re.M)  # what the timing reached, and why
    assert precision and block(README.read_text(), "verdict") == "\n".join([f"{table}\n\n{floor}", *precision])


def test_every_column_of_the_table_is_documented():
    text = (ROOT / "docs" / "columns.md").read_text()
    rows = {cell.strip() for line in text.splitlines() if line.startswith("| `") for cell in line.split("|")[1:2]}
    documented = set(re.findall(r"`([a-z_]+)`", " ".join(rows)))
    assert set(columns()) - set(AXES) <= documented, set(columns()) - set(AXES) - documented
    # An axis's column is named as the axis; every axis is in the README's generated table (the test above).
    assert set(AXES) <= set(columns()) and "| one column per axis, named as the axis" in text


def _variant_count(sweep: Sweep) -> int:
    """The variants a factorial sweep makes: the product of its axes' levels (the default grid's if it names none)."""
    assert sweep.design == "factorial", f"{sweep.name}: count its {sweep.design} design's variants another way"
    return math.prod(len(values) for values in (sweep.axes or default_grid()).values())


VARIANT_COUNT = re.compile(r"\b(\d+) variants\b")
PRESETS = sorted((ROOT / "bench" / "plan" / "presets").glob("*.toml"))


def test_every_variant_count_written_is_the_sweep_s():
    """Prose says "16 variants" where it means the default grid (what `make bench` sweeps) and a preset's
    description its own sweep's count: both true of the code."""
    grid = math.prod(len(values) for values in default_grid().values())
    assert _variant_count(get_preset("quick")) == grid
    for page in (README, *DOCS, ROOT / "results" / "README.md"):
        wrong = [count for count in VARIANT_COUNT.findall(page.read_text()) if int(count) != grid]
        assert not wrong, f"{page.name} writes {wrong} variants; the default grid has {grid}"
    for preset in PRESETS:
        written = {int(count) for count in VARIANT_COUNT.findall(preset.read_text())}
        assert not written or written == {_variant_count(get_preset(preset.stem))}, f"{preset.name}: {written}"


# A backticked repository path, a bare Python file name, or a dotted name in our packages.
REPO_PATH = re.compile(r"`((?:bench|variants|tests|scripts|results|docs)/[^`<>*\s]*)`")
FILE_NAME = re.compile(r"`([a-z_0-9]+\.py)`")
DOTTED = re.compile(r"`((?:bench|variants)(?:\.[A-Za-z_][A-Za-z_0-9]*)+)[(\[`]")
OUTSIDE = {"count_flops.py"}  # NVlabs' script, named where EDM2's own count is quoted


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_file_and_name_the_text_cites_exists(page):
    import importlib

    text = page.read_text()
    ours = {p.name for folder in ("bench", "variants", "tests", "scripts") for p in (ROOT / folder).rglob("*.py")}
    missing = [path for path in REPO_PATH.findall(text) if not (ROOT / path).exists()]
    missing += [name for name in FILE_NAME.findall(text) if name not in ours | OUTSIDE]
    for dotted in DOTTED.findall(text):
        module, _, name = dotted.rpartition(".")
        try:
            if not hasattr(importlib.import_module(module), name):
                importlib.import_module(dotted)
        except ImportError:
            missing.append(dotted)
    assert not missing, f"{page.name} cites what does not exist: {missing}"


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_every_relative_link_resolves(page):
    for target in re.findall(r"\]\((?!https?:|#)([^)<>\s]+)\)", page.read_text()):
        assert (page.parent / target.split("#")[0]).exists(), f"{page.name} links to a missing {target}"


# --- every command in README and docs runs ---------------------------------------------------------------------
# A block of commands runs in a scratch folder that looks like a checkout (the code linked, results/ copied, a
# small run at runs/smoke), each command as printed but for its size: `bench run` with --plan (every option
# checked, every cell planned, nothing measured), `make` with -n, pytest with --collect-only. A block marked
# `<!-- run: full -->` runs as printed; one marked `<!-- run: by tests/FILE.py::TEST -->` is what that test runs.
BLOCK = re.compile(r"(?:<!-- run: (?P<mode>[^>]*?) -->\n)?```(?P<lang>bash|python|toml)\n(?P<body>.*?)```", re.S)


RAN: set[str] = set()


def blocks() -> list:
    """(page, mode, language, body) of every code block of README and docs that is a command or a file."""
    found = []
    for page in (README, *DOCS):
        for index, match in enumerate(BLOCK.finditer(page.read_text())):
            found.append(pytest.param(page.name, match["mode"] or "check", match["lang"], match["body"],
                                      id=f"{page.stem}-{index}"))
    return found


def commands(body: str) -> list[str]:
    """The block's command lines, continuations joined, comments dropped."""
    text = body.replace("\\\n", " ")
    lines = [re.split(r"\s+#\s", line, maxsplit=1)[0].strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def sized(command: str, mode: str) -> str:
    command = command.replace(".venv/bin/python", sys.executable)
    if mode == "full":
        return command
    if re.search(r"-m bench run\b", command):
        return command + " --plan"
    if command.startswith("make "):
        return "make -n " + command.removeprefix("make ")
    if "-m pytest" in command:  # collected, not run (under xdist pytest-benchmark refuses --benchmark-only)
        return command.replace(" --benchmark-only", "") + " --collect-only -q"
    return command


@pytest.fixture(scope="module")
def checkout(tmp_path_factory, smoke_run):
    """A scratch folder laid out like the repository, with a small finished run at runs/smoke (a copy of the
    session's shared smoke run: the commands write reports into it)."""
    root = tmp_path_factory.mktemp("checkout")
    for name in ("bench", "variants", "tests", "docs", "Makefile", "pyproject.toml", ".venv"):
        if (ROOT / name).exists():
            (root / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "results", root / "results", ignore=shutil.ignore_patterns("report.*", "figures"))
    shutil.copytree(smoke_run, root / "runs" / "smoke")
    return root


def bench_args(command: str) -> list[str] | None:
    """The arguments of a plain `python -m bench ...` command, which runs as ``bench.cli.main(ARGS)`` in this process:
    the same parser and code without a new interpreter's seconds of imports. None for anything else: shell syntax,
    other programs, and `--import` (a plugin would register its variants in this process for every later test)."""
    if re.search(r"[|&;<>$`]", command):
        return None
    argv = shlex.split(command)
    if argv[:3] != [sys.executable, "-m", "bench"] or "--import" in argv:
        return None
    return argv[3:]


def run(cwd: Path, command: str) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": f"{cwd}{os.pathsep}{ROOT}"}
    result = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result


@pytest.mark.parametrize("page, mode, lang, body", blocks())
def test_every_command_and_example_runs_as_printed(checkout, page, mode, lang, body, monkeypatch, capsys):
    if mode.startswith("by "):
        file, _, name = mode.removeprefix("by ").partition("::")
        text = (ROOT / file).read_text()
        assert not name or f"def {name}(" in text, f"{page}: no test {mode}"
        return
    first = body.splitlines()[0]
    if lang in ("python", "toml"):  # a file the commands below use (`# my_variants.py`), or a snippet to run
        name = re.match(r"# (\S+\.(?:py|toml))", first)
        if name:
            (checkout / name.group(1)).write_text(body)
        elif lang == "python":
            run(checkout, f"{sys.executable} - <<'EOF'\n{body}EOF")
        return
    for command in map(lambda c: sized(c, mode), commands(body)):
        if command in RAN:  # README and docs share commands: each runs once
            continue
        args = bench_args(command)
        if args is None:
            run(checkout, command)
        else:
            monkeypatch.chdir(checkout)
            # the machine's pace probe (5 s per long plan) is tested in tests/end_to_end/test_runner.py; here, only the commands
            monkeypatch.setattr("bench.run.runner.machine_pace", lambda: 1.0)
            status = main(args)
            out, err = capsys.readouterr()
            assert status == 0, f"{command}\n{out[-2000:]}\n{err[-2000:]}"
        RAN.add(command)
