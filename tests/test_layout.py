"""The package layout: variants/ is the blocks and the builder, imports nothing from bench (not even lazily, in
its __init__ or any module), and its modules import each other without a circle (lazy imports inside functions
included, since they hide one)."""
import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import variants

VARIANTS = Path(variants.__file__).parent


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


def test_variant_modules_import_each_other_without_a_circle():
    graph = {path.stem: _imports(path)[0] for path in VARIANTS.glob("*.py") if path.stem != "__init__"}
    graphlib.TopologicalSorter(graph).prepare()  # raises CycleError naming the circle
    assert graph["parts"] == {"mp"}, "the toolbox is a leaf: it makes layers, and decides nothing from a spec"


def test_variants_never_imports_bench_and_importing_it_loads_none_of_bench():
    users = sorted(p.name for p in VARIANTS.glob("*.py") if "bench" in _imports(p)[1])
    assert users == []
    code = "import sys, variants; print(sorted(m for m in sys.modules if m.split('.')[0] == 'bench'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

