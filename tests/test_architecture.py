"""The layering docs/architecture.md draws, checked from the imports themselves.

spec → engine → tracking → method, with the CLI and the Python API on top:

* only ``orchestrator.tracking`` imports MLflow; only ``orchestrator.engine`` imports
  Ray (and only its ``raytune`` part at module level);
* no import cycles between orchestrator's modules (imports under ``TYPE_CHECKING``
  aside): a module's place says what it may touch;
* Ray's private API is used in ``engine/raytune/_private.py`` only;
* no function is longer than 100 lines.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "orchestrator"
MAX_FUNCTION_LINES = 100
PRIVATE_RAY = ("ray._private", "ray._raylet", "ray.train._internal", "ray.tune.execution",
               "ray._common")


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts)
        out[name.removesuffix(".__init__")] = path
    return out


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module imported, line, at module level) for every import outside TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _type_checking(child):
                continue
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                   ast.ClassDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                found.append((child.module, child.lineno, top))
                found.extend((f"{child.module}.{a.name}", child.lineno, top)
                             for a in child.names)
            visit(child, inner)

    visit(tree, True)
    return found


def owner(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_only_tracking_imports_mlflow_and_only_the_engine_imports_ray():
    wrong = []
    for name, path in modules().items():
        for imported, line, top in imports(path):
            root = imported.split(".")[0]
            if root == "mlflow" and not name.startswith("orchestrator.tracking"):
                wrong.append(f"{name}:{line} imports {imported}")
            if root == "ray" and not name.startswith("orchestrator.engine"):
                wrong.append(f"{name}:{line} imports {imported}")
            if root == "ray" and top and not name.startswith("orchestrator.engine.raytune"):
                wrong.append(f"{name}:{line} imports {imported} on load")
    assert not wrong, "\n".join(wrong)


def test_no_private_ray_api_outside_its_one_module():
    allowed = "orchestrator.engine.raytune._private"
    wrong = [f"{name}:{line} uses {imported}" for name, path in modules().items()
             for imported, line, _ in imports(path)
             if imported.startswith(PRIVATE_RAY) and name != allowed]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles_between_modules():
    mods = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        for imported, _, _ in imports(path):
            target = imported
            while target and target not in mods:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                graph[name].add(target)
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(mods):
        if node not in state:
            visit(node, [node])
    # A package's __init__ re-exporting its own modules is not a cycle of layers.
    real = [c for c in cycles if len({owner(m) for m in c.split(" -> ")}) > 1]
    assert not real, "\n".join(real)


def test_no_function_is_longer_than_100_lines():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {length} lines")
    assert not long, "\n".join(long)


@pytest.mark.parametrize("command", [["validate", "search_spaces/quick.yaml"], ["--help"]])
def test_validate_and_help_import_no_ray_mlflow_or_torch(command):
    import subprocess
    import sys

    probe = ("import sys, runpy; sys.argv = ['orch', *sys.argv[1:]]\n"
             "try:\n    runpy.run_module('orchestrator.cli', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'mlflow', 'torch'})\n"
             "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", probe, *command], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
