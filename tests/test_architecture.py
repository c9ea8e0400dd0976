"""The package's structure, checked from its source with ``ast``.

* Only ``nbtoolkit/store/`` speaks SQL: no other module imports SQLAlchemy or the schema.
* No import cycles among the package's modules. Module-level and function-level imports of
  package modules both count (a function-level import only hides a circle until it runs);
  imports under ``if TYPE_CHECKING:`` are left out, they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nbtoolkit"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except those under ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def _statements(module: str, path: Path) -> Iterator[tuple[str, list[str]]]:
    """Per import statement: the imported module (relative made absolute) and the names taken from it.

    ``import a.b`` gives ``("a.b", [])``; ``from a import b, c`` gives ``("a", ["b", "c"])``.
    """
    is_package = path.name == "__init__.py"
    for node in _imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, []
            continue
        base = node.module or ""
        if node.level:
            anchor = module.split(".")
            anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
            base = ".".join([*anchor, base] if base else anchor)
        yield base, [alias.name for alias in node.names]


def _imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name a module imports: the modules and ``module.name`` for each ``from`` name."""
    for base, names in _statements(module, path):
        yield base
        yield from (f"{base}.{name}" for name in names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports.

    ``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module, else ``pkg``.
    """
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for base, names in _statements(module, path):
            targets = {f"{base}.{n}" if f"{base}.{n}" in modules else base for n in names} if names else {base}
            graph[module] |= {t for t in targets if t in modules and t != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _describe(found: list[list[str]]) -> str:
    return "\n".join(" <-> ".join(c) for c in found)


def test_only_the_store_imports_sqlalchemy_or_the_schema() -> None:
    offenders = []
    for module, path in _modules().items():
        if module == "nbtoolkit.store" or module.startswith("nbtoolkit.store."):
            continue
        for name in _imported_names(module, path):
            if name.split(".")[0] == "sqlalchemy" or name.startswith("nbtoolkit.store.schema"):
                offenders.append(f"{module} imports {name}")
    assert offenders == [], "SQL belongs to nbtoolkit/store/; give the store a named operation instead:\n" + "\n".join(offenders)


def test_export_stability_and_registry_form_no_circle() -> None:
    """Circle (a) of the redesign: export <-> stability <-> registry (and the policy leaf) stay acyclic."""
    watched = ("nbtoolkit.export", "nbtoolkit.stability", "nbtoolkit.registry", "nbtoolkit.policy")
    bad = [c for c in cycles(import_graph()) if any(m.startswith(watched) for m in c)]
    assert bad == [], "import cycles:\n" + _describe(bad)


def test_the_package_has_no_import_cycle() -> None:
    found = cycles(import_graph())
    assert found == [], "import cycles:\n" + _describe(found)


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """The graph sees function-level imports and relative imports, skips TYPE_CHECKING, and finds a circle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from nbtoolkit import hidden\n"
        "def f():\n    from . import sibling\n    import sqlalchemy\n"
    )
    path = tmp_path / "mod.py"
    path.write_text(source)
    names = set(_imported_names("nbtoolkit.mod", path))
    assert "nbtoolkit.sibling" in names and "sqlalchemy" in names
    assert "nbtoolkit.hidden" not in names
    real = import_graph()
    assert "nbtoolkit.store.store" in real["nbtoolkit.store"]  # `from X import module` names the module
    assert "nbtoolkit.store" in real["nbtoolkit.registry"]  # `from X import name` names the package
