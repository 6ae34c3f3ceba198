"""The test tree's own rule: no test module imports another (what several share lives in tests/support/ or
tests/conftest.py), so a test can move, be renamed or be deleted without breaking one elsewhere."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(source: str, package: tuple[str, ...]) -> list[str]:
    """Every module a file of `package` imports (and every name it imports from one, which may be a module),
    relative imports resolved against the package."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            names += [module] + [f"{module}.{a.name}" for a in node.names]
    return names


def is_test_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] == "tests" and any(p.startswith("test_") for p in parts[1:])


def test_no_test_module_imports_another():
    offenders = sorted(f"{path.relative_to(ROOT)} imports {name}"
                       for tree in ("tests", "bench") for path in (ROOT / tree).rglob("*.py")
                       if "node_modules" not in path.parts
                       for name in imported_modules(path.read_text(), path.relative_to(ROOT).parts[:-1])
                       if is_test_module(name))
    assert offenders == [], "\n".join(offenders)


def test_the_check_sees_relative_and_absolute_imports():
    """The rule's own check would pass on anything if it missed an import form: each form is caught."""
    unit = ("tests", "unit")
    for form in ["from .test_config import x", "from tests.unit.test_config import x", "from . import test_config",
                 "import tests.acceptance.test_login", "from tests.unit import test_config",
                 "from ..unit.test_x import y"]:
        assert any(is_test_module(n) for n in imported_modules(form, unit)), form
    fine = "from tests.support.fakes import FakeClock\nfrom ..support import stack\nimport tipd.config\n"
    assert not any(is_test_module(n) for n in imported_modules(fine, unit))


def module_imports(path: Path, package: tuple[str, ...]) -> list[str]:
    """The modules a file imports when it is imported: its top-level statements (a lazy import inside a
    function runs later, and an `if TYPE_CHECKING:` block never runs)."""
    tree = ast.parse(path.read_text())
    body: list[ast.stmt] = []
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                pending += node.body + node.orelse
        elif isinstance(node, ast.Try):
            pending += node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body]
        elif isinstance(node, ast.Import | ast.ImportFrom):
            body.append(node)
    return imported_modules(ast.unparse(ast.Module(body=body, type_ignores=[])), package)


def import_graph(tree: Path) -> dict[str, set[str]]:
    """tipd's modules, each with the tipd modules its import-time statements import."""
    modules: dict[str, tuple[Path, tuple[str, ...]]] = {}
    for path in tree.rglob("*.py"):
        parts = path.relative_to(tree.parent).with_suffix("").parts
        dotted = parts[:-1] if parts[-1] == "__init__" else parts
        modules[".".join(dotted)] = (path, dotted if parts[-1] == "__init__" else parts[:-1])
    graph: dict[str, set[str]] = {}
    for name, (path, package) in modules.items():
        edges = set()
        for imported in module_imports(path, package):
            while imported and imported not in modules:  # `from .x import NAME`: the module is x
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                edges.add(imported)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path (first module repeated at its end), or [] when the graph has none."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_tipd_has_no_import_cycles():
    """A module can be read, tested and moved alone only if what it imports does not import it back (the
    daemon <-> server and config <-> config_file cycles are gone; this keeps them gone)."""
    cycle = find_cycle(import_graph(ROOT / "tipd"))
    assert cycle == [], " -> ".join(cycle)


def test_the_cycle_check_finds_a_cycle_and_skips_lazy_and_type_checking_imports(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .b import thing\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n"
                              "def later():\n    from . import a\n")
    assert find_cycle(import_graph(pkg)) == []
    (pkg / "b.py").write_text("try:\n    from pkg import a\nexcept ImportError:\n    pass\n")
    assert find_cycle(import_graph(pkg)) == ["pkg.a", "pkg.b", "pkg.a"]


def test_the_daemon_imports_at_the_top_only():
    """Daemon.start imported a dozen modules inside itself (to dodge the daemon <-> server cycle): what tipd
    needs to run is imported where a reader looks for it, and a missing module fails at start, not mid-way."""
    tree = ast.parse((ROOT / "tipd" / "daemon.py").read_text())
    inside = sorted(f"{fn.name}:{node.lineno}" for fn in ast.walk(tree)
                    if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef)
                    for node in ast.walk(fn) if isinstance(node, ast.Import | ast.ImportFrom))
    assert inside == [], inside
