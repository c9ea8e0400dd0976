"""Parameter typing, name checks and sweep-space expansion (pure logic, no kernels)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nbtoolkit.errors import ParameterError
from nbtoolkit.execute.params import (
    check_parameters,
    known_parameters,
    merge_parameters,
    resolve_value,
)
from nbtoolkit.execute.space import Choice, Distribution, expand_points, parse_grid

NOTEBOOKS = Path(__file__).parent / "notebooks"


@pytest.mark.parametrize(
    ("text", "value"),
    [("1", 1), ("-3", -3), ("0.5", 0.5), ("1e-3", 0.001), ("True", True), ("False", False), ("None", None), ("abc", "abc"), ("true", "true")],
)
def test_resolve_value_types_like_papermill(text: str, value: object) -> None:
    from papermill.cli import _resolve_type

    assert resolve_value(text) == value
    assert type(resolve_value(text)) is type(value)
    assert resolve_value(text) == _resolve_type(text)


def test_merge_parameters_order_files_then_yaml_then_pairs(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text("lr: 0.5\nitems: [1, 2]\nname: base\n", encoding="utf-8")
    out = merge_parameters(files=[f], yaml_texts=["name: yaml\nmapping: {a: 1}"], pairs=[("lr", "0.1")])
    assert out == {"lr": 0.1, "items": [1, 2], "name": "yaml", "mapping": {"a": 1}}


def test_merge_parameters_rejects_non_mapping_yaml(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="mapping"):
        merge_parameters(yaml_texts=["- 1\n- 2"])
    with pytest.raises(ParameterError, match="does not exist"):
        merge_parameters(files=[tmp_path / "missing.yaml"])


def test_known_parameters_include_experiment_top_literals() -> None:
    names, has_cell = known_parameters(NOTEBOOKS / "params_all_types.ipynb")
    assert has_cell
    assert names[:7] == ["count", "ratio", "flag", "nothing", "name", "items", "mapping"]
    assert "lr" in names  # top-of-cell literal of the %%experiment cell


def test_unknown_parameter_lists_known_names() -> None:
    with pytest.raises(ParameterError) as info:
        check_parameters(NOTEBOOKS / "params_all_types.ipynb", {"cuont": 1})
    msg = str(info.value)
    assert "cuont" in msg and "count, ratio" in msg and "--allow-unknown" in msg
    assert check_parameters(NOTEBOOKS / "params_all_types.ipynb", {"cuont": 1}, allow_unknown=True) == []


def test_missing_parameters_cell_warns() -> None:
    warnings = check_parameters(NOTEBOOKS / "no_parameters_cell.ipynb", {})
    assert len(warnings) == 1 and "no cell tagged 'parameters'" in warnings[0]


def test_grid_expands_to_product_with_base() -> None:
    axes = parse_grid(["x=1,2", "kind=a,b,c"])
    assert axes["x"] == Choice((1, 2))
    points = expand_points(axes, base={"fixed": True})
    assert len(points) == 6
    assert points[0] == {"fixed": True, "x": 1, "kind": "a"}
    assert points[-1] == {"fixed": True, "x": 2, "kind": "c"}


def test_random_sampling_is_seeded_and_in_range() -> None:
    axes = parse_grid(["lr=loguniform(0.001,0.1)", "depth=randint(2,4)", "opt=adam,sgd", "u=uniform(0,1)"])
    assert axes["lr"] == Distribution("loguniform", 0.001, 0.1)
    a = expand_points(axes, random_n=20, seed=3)
    b = expand_points(axes, random_n=20, seed=3)
    assert a == b and len(a) == 20
    assert all(0.001 <= p["lr"] < 0.1 and p["depth"] in (2, 3, 4) and p["opt"] in ("adam", "sgd") for p in a)
    assert {p["depth"] for p in a} == {2, 3, 4}
    assert expand_points(axes, random_n=20, seed=4) != a


@pytest.mark.parametrize(
    ("items", "message"),
    [(["x"], "NAME=V1,V2"), (["x=1,,2"], "empty value"), (["x=loguniform(0,1)"], "positive"), (["x=1", "x=2"], "twice"), (["x=uniform(2,1)"], "lower bound")],
)
def test_bad_grids_are_refused(items: list[str], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        parse_grid(items)


def test_distribution_needs_random() -> None:
    with pytest.raises(ParameterError, match="--random"):
        expand_points(parse_grid(["lr=uniform(0,1)"]))


def test_parameters_are_what_papermill_inspection_says() -> None:
    from papermill import inspect_notebook

    from nbtoolkit.notebook import inspect_parameters

    path = NOTEBOOKS / "complex_parameters.ipynb"  # papermill's own test notebook
    params = {p.name: p for p in inspect_parameters(path) or []}
    assert list(params) == list(inspect_notebook(str(path))) == ["msg", "a", "b", "c"]
    assert (params["a"].type_name, params["a"].default, params["a"].help) == ("float", "2.25", "Variable a")
    assert (params["b"].type_name, params["b"].help) == ("List[str]", "Nice list")
    assert params["msg"].type_name is None and params["c"].type_name == "NoneType"
    # ``d = a == 3`` is marked "Not introspectable" in the cell and papermill skips it; so do we.
    assert known_parameters(path) == (["msg", "a", "b", "c"], True)
    assert inspect_parameters(NOTEBOOKS / "no_parameters_cell.ipynb") is None


def test_notebook_without_kernelspec_is_inspected_as_python() -> None:
    from nbtoolkit.notebook import inspect_parameters, kernel_for

    path = NOTEBOOKS / "no_kernelspec.ipynb"
    assert "kernelspec" not in __import__("json").loads(path.read_text())["metadata"]
    params = inspect_parameters(path) or []
    assert [(p.name, p.type_name, p.default, p.help) for p in params] == [
        ("epochs", "int", "3", "passes over the data"), ("label", "str", "'base'", "run label")]
    assert kernel_for(path) == ("python3", "python")
    assert kernel_for(NOTEBOOKS / "complex_parameters.ipynb") == ("python3", "python")


def test_help_notebook_lists_types_defaults_and_help() -> None:
    from click.testing import CliRunner

    from nbtoolkit.cli import cli

    res = CliRunner().invoke(cli, ["run", "--help-notebook", str(NOTEBOOKS / "complex_parameters.ipynb")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert "Parameters inferred for notebook 'complex_parameters.ipynb':" in lines
    assert "  msg: Unknown type (default None)" in lines
    assert "  a: float (default 2.25)         Variable a" in lines
    assert "  b: List[str] (default ['Hello','World'])" in lines and " " * 34 + "Nice list" in lines
    res = CliRunner().invoke(cli, ["run", "--help-notebook", str(NOTEBOOKS / "params_all_types.ipynb")])
    assert "Also settable (top literals of %%experiment cells):" in res.output
    assert "  lr: float (default 0.1)" in res.output.splitlines()
    res = CliRunner().invoke(cli, ["run", "--help-notebook", str(NOTEBOOKS / "no_parameters_cell.ipynb")])
    assert "No cell tagged 'parameters'" in res.output
    res = CliRunner().invoke(cli, ["run", "--help-notebook", "missing.ipynb"])
    assert res.exit_code == 2 and "does not exist" in res.output
