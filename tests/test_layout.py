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
# The layers, lowest first: a package imports only from its own layer or the layers below,
# at the top of a module or inside a function. Two packages of one layer do not import each
# other (no two subpackages do, whatever their layers).
LAYERS: tuple[frozenset[str], ...] = tuple(
    frozenset(layer.split())
    for layer in (
        "mailbot errors clock states logformat settings",  # foundations: values, no effects
        "mail",  # mail as bytes and text
        "standards",  # the published standards and the authority rule, pure
        "db",  # every SQL statement
        "transport",  # the servers: IMAP, SMTP, Microsoft Graph
        "app",  # the shared context and its effects
        "sending",  # mail that leaves: built, queued, sent
        "tickets",  # everything that changes a ticket
        "staff",  # staff mail parsed and authorised, then handed to tickets
        "intake",  # mail that comes in: one pass, one message
        "reporting privacy",  # the report and scheduled jobs; retention, erasure, export
        "recovery",  # the database rebuilt or restored
        "ops",  # the pass, the daemon, health
        "sandbox",  # the throwaway mail system
        "cli",  # the command line
        "__main__",
    )
)
MAX_MODULE_LINES = 600


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


def package_of(module: str) -> str:
    """`mailbot.tickets.clocks` -> `tickets`; `mailbot.app` -> `app`; `mailbot` -> `mailbot`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(package: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if package in layer)


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name, targets in import_graph().items():
        for target in targets:
            if package_of(name) != package_of(target):
                graph.setdefault(package_of(name), set()).add(package_of(target))
    return graph


def test_every_package_has_its_layer() -> None:
    placed = set().union(*LAYERS)
    unplaced = {package_of(name) for name in modules()} - placed
    assert unplaced == set(), f"add to LAYERS in tests/test_layout.py: {sorted(unplaced)}"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        for target in targets
        if layer_of(package_of(target)) > layer_of(package_of(name))
    )


def test_no_package_imports_one_above_it() -> None:
    assert upward_imports(import_graph()) == []


def test_no_two_packages_import_each_other() -> None:
    graph = package_graph()
    mutual = sorted(
        (first, second)
        for first, targets in graph.items()
        for second in targets
        if first < second and first in graph.get(second, set())
    )
    assert mutual == []


def test_no_module_is_over_the_size_limit() -> None:
    long = sorted(
        f"{name}: {lines} lines"
        for name, path in modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    )
    assert long == []


def test_the_layering_rule_sees_an_import_inside_a_function(tmp_path: Path) -> None:
    """The rule cannot pass vacuously: an import inside a function, one layer up, is caught."""
    module = tmp_path / "ticket_rows.py"
    module.write_text("def f():\n    from mailbot.tickets import clocks\n    return clocks\n")
    graph = import_graph()
    known = set(graph)
    graph["mailbot.db.ticket_rows"] = set(imports_of(module, known))
    assert upward_imports(graph) == ["mailbot.db.ticket_rows -> mailbot.tickets.clocks"]
