"""The package's shape: no import cycles, and every module says what it owns. The tests'
shape: test modules share code through helper modules, never by importing each other."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "recorder"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, name: str) -> set[str]:
    """The recorder modules `path` imports, at the top or inside functions."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")[: len(name.split(".")) - node.level + is_package]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m == "recorder" or m.startswith("recorder.")}


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {m for m in imports_of(path, name) if m in modules and m != name}
        for name, path in modules.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle():
    edges = graph()
    assert len(edges) > 20 and "recorder.sources.mic" in edges["recorder.sources"]
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_subpackages_never_import_the_command_line():
    edges = graph()
    for name, deps in edges.items():
        if name.count(".") >= 2:  # inside a subpackage
            assert "recorder.cli" not in deps, name


def test_every_module_opens_with_a_docstring():
    for path in PACKAGE.rglob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text())), path


def imported_test_modules(source: str) -> set[str]:
    """The test modules (`test_*`) that Python source imports, by module name."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        found |= {n for n in names if any(p.startswith("test_") for p in n.split("."))}
    return found


def test_no_test_module_imports_another():
    paths = list((REPO / "tests").rglob("*.py"))
    assert len(paths) > 50
    for path in paths:
        assert imported_test_modules(path.read_text()) == set(), path


def test_a_test_module_imported_is_found():
    source = (
        "import os\nfrom harness import Daemon\nfrom test_crash import x\nimport tests.e2e.test_mic"
    )
    assert imported_test_modules(source) == {"test_crash", "tests.e2e.test_mic"}


MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60
MAX_DAEMON_LINES = 200


def oversized(path: Path) -> list[str]:
    """What in a module is over the size limits: the module, its functions, the Daemon."""
    source = path.read_text()
    found = []
    if source.count("\n") > MAX_MODULE_LINES:
        found.append(f"{path.name}: {source.count(chr(10))} lines")
    for node in ast.walk(ast.parse(source)):
        length = (
            (node.end_lineno or node.lineno) - node.lineno + 1 if hasattr(node, "lineno") else 0
        )
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and length > MAX_FUNCTION_LINES:
            found.append(f"{path.name}: {node.name} is {length} lines")
        if isinstance(node, ast.ClassDef) and node.name == "Daemon" and length >= MAX_DAEMON_LINES:
            found.append(f"{path.name}: Daemon is {length} lines")
    return found


def test_no_module_function_or_daemon_over_the_size_limits():
    """A module a maintainer reads in one sitting: at most 450 lines, functions at most 60,
    the Daemon under 200 (CONTRIBUTING.md)."""
    assert [f for p in sorted(PACKAGE.rglob("*.py")) for f in oversized(p)] == []


def test_the_size_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x = {i}" for i in range(MAX_FUNCTION_LINES))
    path = tmp_path / "long.py"
    path.write_text(f'"""A module."""\n\n\ndef long():\n{body}\n')
    assert oversized(path) == [f"long.py: long is {MAX_FUNCTION_LINES + 1} lines"]


def duplicate_basenames(paths: list[Path]) -> list[str]:
    """Test modules' file names used more than once (pytest imports them by name)."""
    names = [p.name for p in paths]
    return sorted({n for n in names if names.count(n) > 1})


def test_no_two_test_modules_share_a_name():
    assert duplicate_basenames(sorted((REPO / "tests").rglob("test_*.py"))) == []
    assert duplicate_basenames([Path("tests/test_x.py"), Path("tests/e2e/test_x.py")]) == [
        "test_x.py"
    ]
