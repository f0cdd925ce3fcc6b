"""The tree is the architecture: subpackages by concern, no import cycle, no upward import."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import mailbot

PACKAGE = Path(mailbot.__file__).resolve().parent
# The entry points and the shared foundations; everything else sits in a subpackage.
TOP_LEVEL = {
    "__init__",
    "__main__",
    "app",
    "errors",
    "clock",
    "states",
    "logformat",
}
# What a pure module may lean on besides other pure modules: values and rules, no effects
# (the settings package, all of it).
FOUNDATIONS = {"mailbot", "mailbot.errors", "mailbot.settings", "mailbot.states"}
# Only these may import the command line, the daemon loop or the sandbox.
ENTRY_POINTS = {"mailbot.__main__", "mailbot.cli"}


def is_entry_point(name: str) -> bool:
    """`python -m mailbot`, and the command line: the package and its modules."""
    return name in ENTRY_POINTS or name.startswith("mailbot.cli.")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    name = ".".join(parts)
    return name.removesuffix(".__init__")


def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.relative_to(PACKAGE).parts
    }


def imports_of(path: Path, known: set[str]) -> Iterator[str]:
    """Every mailbot module `path` imports, at the top or inside a function."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mailbot"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in known else node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.startswith("mailbot"))


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {
        name: {target for target in imports_of(path, known) if target in known and target != name}
        for name, path in found.items()
    }


def is_pure(path: Path) -> bool:
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    return "(pure" in docstring.split("\n\n")[0]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_top_level_holds_only_entry_points_and_foundations() -> None:
    top = {path.stem for path in PACKAGE.glob("*.py")}
    assert top <= TOP_LEVEL, f"move into a subpackage: {sorted(top - TOP_LEVEL)}"
    assert len(top) <= 15


def test_every_subpackage_says_what_it_is_for() -> None:
    for init in PACKAGE.glob("*/__init__.py"):
        assert ast.get_docstring(ast.parse(init.read_text())), init


def test_no_module_imports_another_that_imports_it_back() -> None:
    assert cycles(import_graph()) == []


def test_the_pure_core_imports_no_effect() -> None:
    graph = import_graph()
    found = modules()
    pure = {name for name, path in found.items() if is_pure(path)}
    assert {
        "mailbot.mail.decoding",
        "mailbot.mail.addresses",
        "mailbot.mail.delivery_reports",
        "mailbot.mail.parse",
        "mailbot.intake.verdicts",
        "mailbot.intake.thread_links",
        "mailbot.intake.evidence",
        "mailbot.intake.rules",
        "mailbot.intake.categories",
        "mailbot.intake.classify",
        "mailbot.intake.decide",
    } <= pure
    upward = {
        (name, target)
        for name in pure
        for target in graph[name]
        if target not in pure
        and target not in FOUNDATIONS
        and not target.startswith(("mailbot.db", "mailbot.settings."))
    }
    assert upward == set()


def test_nothing_reaches_up_to_the_entry_points() -> None:
    upward = {
        (name, target)
        for name, targets in import_graph().items()
        if not is_entry_point(name) and not name.startswith("mailbot.sandbox")
        for target in targets
        if is_entry_point(target) or target.startswith("mailbot.sandbox")
    }
    assert upward == set()
