"""The public API: every name in ``nbtoolkit.__all__`` resolves; the documented core is there."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import nbtoolkit as nbtk

PACKAGE = Path(nbtk.__file__).resolve().parent
LAZY_PACKAGES = ("nbtoolkit", "nbtoolkit.export", "nbtoolkit.execute", "nbtoolkit.widgets")

# DESIGN.md "Python API" (capture stage); later stages add compare, load_bundle, approve, ...
CORE = {
    "log", "log_metric", "log_params", "log_artifact", "log_figure", "log_model", "log_predictions",
    "track_data", "seed", "current_run", "start_run", "runs", "get_run", "load_ipython_extension",
    "__version__", "NbToolkitError", "RunRecord",
}


def test_core_names_are_public() -> None:
    assert CORE <= set(nbtk.__all__)
    assert len(nbtk.__all__) == len(set(nbtk.__all__))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def lazy_api_problems(source: str) -> list[str]:
    """Where ``__all__``, the lazy export table and the ``TYPE_CHECKING`` imports disagree.

    The table is the dict passed to ``lazy_exports``; every name in it must be imported from the
    same module under ``if TYPE_CHECKING:`` (so type checkers see what users get), and ``__all__``
    must be the table's names plus the names the module binds itself.
    """
    tree = ast.parse(source)
    dicts: dict[str, dict[str, str]] = {}
    table_name, all_names, eager = None, None, set()
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            for t in targets:
                if isinstance(t, ast.Tuple):
                    names += [e.id for e in t.elts if isinstance(e, ast.Name)]
            value = node.value
            if isinstance(value, ast.Dict) and names:
                dicts[names[0]] = ast.literal_eval(value)
            if "__all__" in names and value is not None:
                all_names = _all_names(value, dicts)
            if isinstance(value, ast.Call) and getattr(value.func, "id", "") == "lazy_exports":
                table_name = value.args[1].id  # type: ignore[attr-defined]
            eager.update(names)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            eager.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            eager.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for sub in node.body:
                if isinstance(sub, ast.ImportFrom):
                    typed.update({a.asname or a.name: str(sub.module) for a in sub.names})
    if table_name is None or all_names is None:
        return ["no lazy_exports(...) call or no __all__"]
    table = dicts[table_name]
    problems = [f"{n!r}: TYPE_CHECKING imports it from {typed.get(n)}, the table from {m}"
                for n, m in sorted(table.items()) if typed.get(n) != m]
    problems += [f"{n!r} is imported under TYPE_CHECKING but not in the table"
                 for n in sorted(set(typed) - set(table))]
    expected = set(table) | {n for n in all_names if n in eager}
    problems += [f"{n!r} is in __all__ but neither in the table nor bound by the module"
                 for n in sorted(set(all_names) - expected)]
    problems += [f"{n!r} is in the table but not in __all__" for n in sorted(set(table) - set(all_names))]
    if len(all_names) != len(set(all_names)):
        problems.append("__all__ has duplicates")
    return problems


def _all_names(node: ast.expr, dicts: dict[str, dict[str, str]]) -> list[str]:
    """The names of an ``__all__`` list; ``*TABLE`` stands for the keys of that dict."""
    assert isinstance(node, ast.List), "__all__ must be a list literal"
    names: list[str] = []
    for e in node.elts:
        if isinstance(e, ast.Starred) and isinstance(e.value, ast.Name):
            names += dicts[e.value.id]
        else:
            names.append(ast.literal_eval(e))
    return names


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_all_matches_the_lazy_table_and_the_type_checking_imports(package: str) -> None:
    path = PACKAGE.joinpath(*package.split(".")[1:], "__init__.py")
    assert lazy_api_problems(path.read_text(encoding="utf-8")) == []
    module = importlib.import_module(package)
    table = next(v for k, v in vars(module).items() if k in ("_EXPORTS", "_NAMES") and isinstance(v, dict))
    assert set(table) <= set(module.__all__)
    for name, where in table.items():  # the table's module really provides the name
        assert getattr(module, name) is getattr(importlib.import_module(where), name), name


def test_the_api_check_can_fail() -> None:
    good = (
        "from typing import TYPE_CHECKING\nfrom nbtoolkit._lazy import lazy_exports\n"
        "_EXPORTS = {'a': 'm.one', 'b': 'm.two'}\n__all__ = ['helper', *_EXPORTS]\n"
        "__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)\n"
        "def helper() -> None: ...\n"
        "if TYPE_CHECKING:\n    from m.one import a\n    from m.two import b\n"
    )
    assert lazy_api_problems(good) == []
    assert lazy_api_problems(good.replace("from m.two import b", "from m.one import b")) == [
        "'b': TYPE_CHECKING imports it from m.one, the table from m.two"]
    assert lazy_api_problems(good.replace("    from m.two import b\n", "")) == [
        "'b': TYPE_CHECKING imports it from None, the table from m.two"]
    assert lazy_api_problems(good.replace("['helper', *_EXPORTS]", "['helper', 'ghost', *_EXPORTS]")) == [
        "'ghost' is in __all__ but neither in the table nor bound by the module"]
    listed = good.replace("['helper', *_EXPORTS]", "['helper', 'a']")
    assert lazy_api_problems(listed) == ["'b' is in the table but not in __all__"]


def test_every_public_name_resolves() -> None:
    for name in nbtk.__all__:
        value = getattr(nbtk, name)
        assert value is not None, name
        assert name in dir(nbtk)


def test_unknown_name_is_an_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no_such_thing"):
        nbtk.no_such_thing  # noqa: B018


def test_log_predictions_signature_matches_design() -> None:
    sig = inspect.signature(nbtk.log_predictions)
    params = sig.parameters
    assert list(params)[:2] == ["y_true", "y_pred_or_score"]
    assert params["ids"].kind is inspect.Parameter.KEYWORD_ONLY and params["groups"].kind is inspect.Parameter.KEYWORD_ONLY
    sig = inspect.signature(nbtk.log_metric)
    assert list(sig.parameters) == ["name", "value", "step"] and sig.parameters["step"].default is None
    assert callable(nbtk.start_run) and callable(nbtk.runs) and callable(nbtk.get_run)
