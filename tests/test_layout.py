"""The package layout, and who may import whom.

variants/ is the blocks and the builder: it imports nothing from bench (not lazily, in its __init__ or any module,
nor for type checkers), and its modules import each other without a circle (lazy imports inside functions
included, since they hide one).

bench/ follows its pipeline. Data flows plan -> measure -> store -> report (run carries the plan's cells to
measure and the rows to store): a stage imports the stages upstream of it, never one downstream, so the timing
cell's stopping rule cannot live in the report, nor the table's columns in the plan. What several stages share
is neutral and imports no stage: schema.py (the table's columns and vocabulary), statistics/ (the intervals and
the timing rounds' model that the stopping rule and the report both fit), atomic.py (writes) and models/ (where a
cell's network comes from). The drivers (run/, calibration/, cli.py) wire stages together and may import any.
MAY_IMPORT is the rule, in one place; every import counts, inside functions and under ``TYPE_CHECKING`` too.
"""
import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import bench
import variants

VARIANTS = Path(variants.__file__).parent
BENCH = Path(bench.__file__).parent

PIPELINE = ("plan", "measure", "store", "report")  # upstream first
NEUTRAL = frozenset({"schema", "statistics", "atomic", "models"})
# What each part of bench (bench/<part>/ or bench/<part>.py) may import besides itself.
MAY_IMPORT: dict[str, frozenset[str]] = {
    **dict.fromkeys(NEUTRAL, NEUTRAL),
    **{stage: NEUTRAL | set(PIPELINE[:i]) for i, stage in enumerate(PIPELINE)},
    "run": NEUTRAL | set(PIPELINE),
    "calibration": NEUTRAL | set(PIPELINE),
    "cli": NEUTRAL | set(PIPELINE) | {"run"},
    "__main__": frozenset({"cli"}),
    "__init__": frozenset(),
}


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(sibling modules, absolute top-level packages) that ``path`` imports when it runs (``if TYPE_CHECKING:``
    blocks, read by type checkers only, left out)."""
    siblings, packages = set(), set()
    tree = ast.parse(path.read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and
                   isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING" for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            siblings |= {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            packages.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            packages |= {a.name.split(".")[0] for a in node.names}
    return siblings, packages


def _every_import(source: str, package: str) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in ``source``, a module of ``package``: inside functions and under
    ``TYPE_CHECKING`` too, relative ones resolved, ``from pkg import name`` read as ``pkg.name``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _part(module: str) -> str | None:
    """The part of bench that ``module`` (``bench.measure.rows``, ``bench.schema.Kind``) belongs to; None outside
    bench."""
    names = module.split(".")
    return (names[1] if len(names) > 1 else "__init__") if names[0] == "bench" else None


def _breaches(path: Path) -> list[str]:
    """One line per import of ``path`` (a file under bench/) that MAY_IMPORT does not allow."""
    relative = path.relative_to(BENCH.parent).with_suffix("")
    package = ".".join(relative.parts[:-1])
    importer = _part(".".join(relative.parts))
    if importer not in MAY_IMPORT:
        return [f"{path.relative_to(BENCH.parent)}: bench/{importer} is in no row of MAY_IMPORT; add it there"]
    allowed = MAY_IMPORT[importer] | {importer}
    return [f"{path.relative_to(BENCH.parent)}:{line} imports {module}: {importer} may import only "
            f"{', '.join(sorted(allowed))} (tests/test_layout.py, MAY_IMPORT)"
            for line, module in _every_import(path.read_text(), package)
            if _part(module) is not None and _part(module) not in allowed]


def test_variant_modules_import_each_other_without_a_circle():
    graph = {path.stem: _imports(path)[0] for path in VARIANTS.glob("*.py") if path.stem != "__init__"}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the circle
    assert graph["parts"] == {"mp"}, "the toolbox is a leaf: it makes layers, and decides nothing from a spec"


def test_variants_never_imports_bench_and_importing_it_loads_none_of_bench():
    users = sorted(f"{p.name}:{line}" for p in VARIANTS.glob("*.py")
                   for line, module in _every_import(p.read_text(), "variants") if module.split(".")[0] == "bench")
    assert users == []
    code = "import sys, variants; print(sorted(m for m in sys.modules if m.split('.')[0] == 'bench'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_bench_module_imports_only_what_the_pipeline_allows():
    breaches = [line for path in sorted(BENCH.rglob("*.py")) for line in _breaches(path)]
    assert breaches == [], "\n".join(breaches)


def test_the_rule_sees_lazy_relative_and_type_checking_imports():
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.report import build\n"
              "def stop():\n    from ..store.folder import RunStore\nfrom . import rounds\n")
    modules = sorted(module for _, module in _every_import(source, "bench.measure"))
    assert modules == ["bench.measure.rounds", "bench.report.build", "bench.store.folder.RunStore",
                       "typing.TYPE_CHECKING"]
    assert {_part(m) for m in modules} - MAY_IMPORT["measure"] == {None, "measure", "report", "store"}
