"""The house rules the code keeps: packages cut by job whose imports run one way
(docs/architecture.md draws them), small modules, no import circle, SQL only in
db/, and the web process free of torch."""

from __future__ import annotations

import ast
import functools
import re

from conftest import ROOT

PACKAGES = ("studio", "runner", "db")
MAX_LINES = 400
# The rooms, highest first: a module may import its own room and any room below
# it, never one above. runner.host (the launching process) and runner.rank (code
# that runs inside a rank) are side by side and never import each other: what
# crosses between them is JSON, and both read the shared modules of runner/.
ROOMS = ("studio.cli", "studio.web", "studio.reports", "studio.exchange", "studio.charts", "studio.analysis",
         "studio.sweeps", "db", "runner.host", "runner.rank", "runner")
SIDE_BY_SIDE = {frozenset({"runner.host", "runner.rank"})}


def source_files():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def module_name(path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache  # parsed once for the four tests that read it; none changes what it gets
def modules() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text(), str(path)) for path in source_files()}


def room_of(name: str) -> str:
    return next(room for room in ROOMS if name == room or name.startswith(room + "."))


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
    for path in source_files():
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: cut it by job"


def test_every_module_lives_in_a_room():
    loose = [name for name in modules() if name not in {"studio", "studio.__main__"} and not any(
        name == room or name.startswith(room + ".") for room in ROOMS)]
    assert not loose, f"modules outside the rooms of docs/architecture.md: {loose}"


def test_imports_run_one_way():
    trees = modules()
    wrong = []
    for name, tree in trees.items():
        if name in {"studio", "studio.__main__"}:
            continue
        for other in imports_of(tree, set(trees)):
            mine, theirs = room_of(name), room_of(other)
            if mine == theirs:
                continue
            if ROOMS.index(theirs) < ROOMS.index(mine) or frozenset({mine, theirs}) in SIDE_BY_SIDE:
                wrong.append(f"{name} ({mine}) imports {other} ({theirs})")
    assert not wrong, "imports against the direction of the rooms:\n" + "\n".join(sorted(wrong))


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
        for path in (ROOT / package).rglob("*.py"):
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
    web = {"studio.web.app", "studio.web.api", "studio.web.forms", "studio.web.views", "studio.web.history",
           "studio.web.analysis_tab", "studio.charts.figures", "studio.analysis.stats", "studio.analysis.analyse",
           "studio.reports.report", "studio.sweeps.supervisor", "studio.sweeps.run", "studio.sweeps.plan"}
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
