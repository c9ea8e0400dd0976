"""The package's structure, checked from its source with ``ast``.

* Only ``nbtoolkit/store/`` speaks SQL: no other module imports SQLAlchemy or the schema.
* No import cycles among the package's modules. Module-level and function-level imports of
  package modules both count (a function-level import only hides a circle until it runs);
  imports under ``if TYPE_CHECKING:`` are left out, they never run.
* ``nbtoolkit/stats/`` and ``nbtoolkit/verdict.py`` are pure (numbers on predictions, criteria on
  plain values): they reach ``nbtoolkit.store`` through no import at all, not even one under
  ``TYPE_CHECKING``. Reading runs from a store to judge them is ``nbtoolkit/evidence.py``.
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


def _imports(tree: ast.AST, *, type_checking: bool = False) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth; those under ``if TYPE_CHECKING:`` only with ``type_checking``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node) and not type_checking:
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node, type_checking=type_checking)


def _statements(module: str, path: Path, *, type_checking: bool = False) -> Iterator[tuple[str, list[str]]]:
    """Per import statement: the imported module (relative made absolute) and the names taken from it.

    ``import a.b`` gives ``("a.b", [])``; ``from a import b, c`` gives ``("a", ["b", "c"])``.
    """
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in _imports(tree, type_checking=type_checking):
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


def _imported_names(module: str, path: Path, *, type_checking: bool = False) -> Iterator[str]:
    """Every dotted name a module imports: the modules and ``module.name`` for each ``from`` name."""
    for base, names in _statements(module, path, type_checking=type_checking):
        yield base
        yield from (f"{base}.{name}" for name in names)


def import_graph(*, type_checking: bool = False) -> dict[str, set[str]]:
    """Module -> the package modules it imports (with ``type_checking``, also under ``TYPE_CHECKING``).

    ``from pkg import sub`` counts as importing ``pkg.sub`` when that is a module, else ``pkg``.
    """
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for base, names in _statements(module, path, type_checking=type_checking):
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


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def paths_to(graph: dict[str, set[str]], roots: list[str], package: str) -> list[list[str]]:
    """For each root that reaches ``package`` (or a module in it) through imports: one shortest path."""
    found = []
    for root in roots:
        parent = {root: root}
        queue = [root]
        hit = None
        while queue and hit is None:
            v = queue.pop(0)
            for w in sorted(graph.get(v, ())):
                if w not in parent:
                    parent[w] = v
                    queue.append(w)
                    if _in(w, package):
                        hit = w
                        break
        if hit is not None:
            path = [hit]
            while path[-1] != root:
                path.append(parent[path[-1]])
            found.append(path[::-1])
    return found


PURE = ("nbtoolkit.stats", "nbtoolkit.verdict")


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


def test_stats_and_verdict_never_import_the_store() -> None:
    """Not even under ``TYPE_CHECKING``: the pure layer knows nothing of where runs are kept."""
    graph = import_graph(type_checking=True)
    roots = [m for m in graph if any(_in(m, p) for p in PURE)]
    assert "nbtoolkit.stats.predictions" in roots and "nbtoolkit.verdict" in roots
    found = paths_to(graph, roots, "nbtoolkit.store")
    assert found == [], ("stats and verdict are pure; read runs from the store in nbtoolkit/evidence.py:\n"
                         + "\n".join(" -> ".join(p) for p in found))


def test_the_purity_check_can_fail(tmp_path: Path) -> None:
    """It follows imports through other modules, and sees those under ``TYPE_CHECKING``."""
    planted = {"nbtoolkit.verdict": {"nbtoolkit.criteria"}, "nbtoolkit.criteria": {"nbtoolkit.store.records"},
               "nbtoolkit.store.records": set(), "nbtoolkit.stats": set()}
    assert paths_to(planted, ["nbtoolkit.stats", "nbtoolkit.verdict"], "nbtoolkit.store") == [
        ["nbtoolkit.verdict", "nbtoolkit.criteria", "nbtoolkit.store.records"]]
    path = tmp_path / "mod.py"
    path.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from nbtoolkit.store import Store\n")
    assert "nbtoolkit.store.Store" in set(_imported_names("nbtoolkit.mod", path, type_checking=True))
    assert "nbtoolkit.store" not in set(_imported_names("nbtoolkit.mod", path))
    typed = import_graph(type_checking=True)  # evidence imports the store only for its types
    assert "nbtoolkit.store" in typed["nbtoolkit.evidence"]
    assert "nbtoolkit.store" not in import_graph()["nbtoolkit.evidence"]
    assert paths_to(typed, ["nbtoolkit.evidence"], "nbtoolkit.store") == [["nbtoolkit.evidence", "nbtoolkit.store"]]


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
