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
