"""The house rules the code keeps: small modules cut by job, no import circle,
SQL only in db/, and the web process free of torch."""

from __future__ import annotations

import ast
import re

from conftest import ROOT

PACKAGES = ("studio", "runner", "db")
MAX_LINES = 500


def modules() -> dict[str, ast.Module]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).glob("*.py")):
            name = f"{package}.{path.stem}" if path.stem != "__init__" else package
            out[name] = ast.parse(path.read_text(), str(path))
    return out


def imports_of(tree: ast.Module, known: set[str]) -> set[str]:
    """Project modules a module imports, at its top or inside a function alike."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in known}
    return found


def test_no_module_is_over_the_size_limit():
    for package in PACKAGES:
        for path in (ROOT / package).glob("*.py"):
            lines = len(path.read_text().splitlines())
            assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: cut it by job"


def test_no_import_circle():
    trees = modules()
    graph = {name: imports_of(tree, set(trees)) - {name} for name, tree in trees.items()}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done:
            return
        for other in sorted(graph[name]):
            visit(other, path + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_sql_is_written_only_in_db():
    statement = re.compile(r"\b(SELECT .* FROM|INSERT INTO|UPDATE \w+ SET|DELETE FROM|CREATE (TABLE|VIEW))\b")
    for package in ("studio", "runner"):
        for path in (ROOT / package).glob("*.py"):
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                assert not statement.search(line), f"SQL outside db/: {path.relative_to(ROOT)}:{number}: {line.strip()}"


def top_level_imports(tree: ast.Module) -> set[str]:
    """Packages a module imports when it is imported (a function may import more
    when called: the worker-side helpers do, and the live-server test checks
    that the server process never maps libtorch)."""
    names = set()
    for node in tree.body:
        for inner in ast.walk(node) if isinstance(node, (ast.If, ast.Try)) else [node]:
            if isinstance(inner, ast.Import):
                names |= {a.name.split(".")[0] for a in inner.names}
            elif isinstance(inner, ast.ImportFrom) and inner.module:
                names.add(inner.module.split(".")[0])
    return names


def test_the_page_and_its_handlers_do_not_import_torch():
    trees = modules()
    web = {"studio.app", "studio.api", "studio.forms", "studio.views", "studio.history", "studio.analysis_tab",
           "studio.figures", "studio.stats", "studio.analysis", "studio.report", "studio.supervisor", "studio.sweep"}
    reached, todo = set(), list(web)
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        todo += imports_of(trees[name], set(trees))
    for name in sorted(reached):
        top = top_level_imports(trees[name])
        assert "torch" not in top and "transformers" not in top, f"{name} imports torch or transformers"
