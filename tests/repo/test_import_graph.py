"""batch_widget's modules import one another without a cycle, counting every import.

import-linter's contracts see only the imports a module runs when it loads; a cycle
closed through an import inside a function or an ``if TYPE_CHECKING:`` block is still a
cycle a reader has to untangle. This test reads every module with ``ast`` and counts
every ``import`` and ``from ... import`` statement wherever it stands.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import batch_widget

PACKAGE = "batch_widget"
PACKAGE_DIR = Path(batch_widget.__file__).resolve().parent


def module_name(path: Path) -> str:
    """The dotted name of the module at ``path`` (a package is named by its __init__)."""
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(name: str, is_package: bool) -> str:
    """The package a relative import in module ``name`` counts from."""
    return name if is_package else name.rpartition(".")[0]


def absolute_base(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    """The module a ``from X import ...`` statement names, made absolute."""
    if node.level == 0:
        return node.module or ""
    base = package_of(name, is_package)
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def imported_modules(source: str, name: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """Every batch_widget module that module ``name`` imports, anywhere in its text."""
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield from _known_prefix(alias.name, known)
        elif isinstance(node, ast.ImportFrom):
            base = absolute_base(node, name, is_package)
            for alias in node.names:
                # `from pkg import sub` imports a submodule; `from mod import name` a name.
                candidate = f"{base}.{alias.name}"
                target = candidate if candidate in known else from_known(base, known)
                if target:
                    yield target


def _known_prefix(dotted: str, known: set[str]) -> Iterator[str]:
    """``import a.b.c`` loads the deepest of a.b.c, a.b, a that is ours."""
    if target := from_known(dotted, known):
        yield target


def from_known(dotted: str, known: set[str]) -> str:
    """The deepest module of ours that ``dotted`` names or lies inside."""
    while dotted and dotted not in known:
        dotted = dotted.rpartition(".")[0]
    return dotted


def import_graph() -> dict[str, set[str]]:
    """Module -> the batch_widget modules it imports."""
    paths = {module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py"))}
    known = set(paths)
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        is_package = path.name == "__init__.py"
        targets = set(imported_modules(path.read_text(), name, is_package, known)) & known
        # A name taken from a package's __init__ counts as an edge to that package: the
        # __init__ runs first, and it may import the very module asking.
        graph[name] = targets - {name}
    return graph


def find_cycle(graph: Mapping[str, set[str]]) -> list[str] | None:
    """One cycle in ``graph`` as a closed path of module names, or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" when fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_the_graph_sees_function_level_and_type_checking_imports() -> None:
    """The reader counts what import-linter skips, or the cycle test proves nothing."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "from .. import protocol\n"
        "if TYPE_CHECKING:\n    from . import b\n"
        "def f() -> None:\n    from .c import thing\n"
        "def g() -> None:\n    import batch_widget.kernel.d\n"
    )
    names = ["a", "b", "c", "d"]
    known = {PACKAGE, f"{PACKAGE}.protocol", f"{PACKAGE}.kernel"}
    known |= {f"{PACKAGE}.kernel.{n}" for n in names}
    found = set(imported_modules(source, f"{PACKAGE}.kernel.a", False, known))
    assert found == {f"{PACKAGE}.protocol"} | {f"{PACKAGE}.kernel.{n}" for n in names[1:]}


def test_no_import_cycle_among_batch_widget_modules() -> None:
    """Counting imports inside functions and TYPE_CHECKING blocks, the graph is acyclic."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
