"""``nbtk init``, ``runs``, ``show``, ``env show`` and ``env diff`` in subprocesses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import nbtk_cli

import nbtoolkit as nbtk


def _seed_runs(project: Path) -> tuple[str, str, str]:
    with nbtk.start_run("cli-a", success="auc >= 0.5", params={"lr": 0.1, "model": "gbm"}) as a:
        nbtk.log(auc=0.9)
        nbtk.log_metric("loss", 0.5, step=0)
        nbtk.log_metric("loss", 0.25, step=1)
    with nbtk.start_run("cli-a", success="auc >= 0.5", params={"lr": 0.2, "model": "gbm"}) as b:
        nbtk.log(auc=0.4)
    with nbtk.start_run("cli-b", params={"lr": 0.3}) as c:
        nbtk.log(auc=0.7)
    return a.run_id, b.run_id, c.run_id


def _ok(proc: Any) -> str:
    assert proc.returncode == 0, proc.stderr
    return str(proc.stdout)


def _usage_error(proc: Any) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and len(err.splitlines()) == 1, proc.stderr
    assert err.startswith("Error:")
    return str(err)


def test_init_creates_store_and_config(tmp_path: Path) -> None:
    from conftest import git

    root = tmp_path / "fresh"
    root.mkdir()
    git(root, "init", "-q")
    out = _ok(nbtk_cli("init", cwd=root, env={"NBTOOLKIT_STORE": ""}))
    assert "Store ready" in out
    assert (root / ".nbtoolkit" / "store.db").is_file()
    assert "[tool.nbtoolkit]" in (root / "pyproject.toml").read_text(encoding="utf-8")
    assert ".nbtoolkit/" in (root / ".gitignore").read_text(encoding="utf-8").splitlines()
    # idempotent
    _ok(nbtk_cli("init", cwd=root, env={"NBTOOLKIT_STORE": ""}))
    assert (root / "pyproject.toml").read_text(encoding="utf-8").count("[tool.nbtoolkit]") == 1
    assert (root / ".gitignore").read_text(encoding="utf-8").count(".nbtoolkit/") == 1


def test_init_keeps_an_existing_pyproject_as_written(tmp_path: Path) -> None:
    root = tmp_path / "kept"
    root.mkdir()
    before = (
        "# the project's own comment\n[project]\nname = \"kept\"   # aligned comment\n"
        "\n[tool.ruff]\nline-length = 100\n"
    )
    (root / "pyproject.toml").write_text(before, encoding="utf-8")
    out = _ok(nbtk_cli("init", cwd=root, env={"NBTOOLKIT_STORE": ""}))
    assert "Added [tool.nbtoolkit]" in out
    after = (root / "pyproject.toml").read_text(encoding="utf-8")
    assert after.startswith(before)  # formatting and comments untouched
    import tomllib

    tool = tomllib.loads(after)["tool"]
    assert tool["ruff"] == {"line-length": 100}
    assert tool["nbtoolkit"]["export"] == {"require_reproduced": False}
    assert "# where runs and artifacts live" in after


def test_init_refuses_a_broken_pyproject(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    root.mkdir()
    (root / "pyproject.toml").write_text("[project\nname = 1\n", encoding="utf-8")
    err = _usage_error(nbtk_cli("init", cwd=root, env={"NBTOOLKIT_STORE": ""}))
    assert "pyproject.toml is not valid TOML" in err and "fix" in err
    assert (root / "pyproject.toml").read_text(encoding="utf-8") == "[project\nname = 1\n"


def test_runs_json_table_where_and_show(project: Path) -> None:
    a, b, c = _seed_runs(project)
    data = json.loads(_ok(nbtk_cli("runs", "--json", cwd=project)))
    assert [r["run_id"] for r in data] == [c, b, a]  # newest first
    for row in data:
        assert set(row) == {"run_id", "experiment", "status", "verdict", "started", "ended", "kind", "sweep_id", "params", "metrics"}
        assert row["kind"] == "experiment" and row["sweep_id"] is None
    first = {r["run_id"]: r for r in data}[a]
    assert first["experiment"] == "cli-a" and first["status"] == "finished" and first["verdict"] == "supported"
    assert first["params"] == {"lr": 0.1, "model": "gbm"}
    assert first["metrics"] == {"auc": 0.9, "loss": 0.25}
    assert first["started"].endswith("+00:00") and first["ended"] >= first["started"]
    assert {r["run_id"]: r for r in data}[c]["params"] == {"lr": 0.3}  # no NaN holes from other runs

    filtered = json.loads(_ok(nbtk_cli("runs", "--json", "--where", "metrics.auc >= 0.6 and params.model == 'gbm'", cwd=project)))
    assert [r["run_id"] for r in filtered] == [a]
    only_b = json.loads(_ok(nbtk_cli("runs", "--json", "--experiment", "cli-b", cwd=project)))
    assert [r["run_id"] for r in only_b] == [c]

    table = _ok(nbtk_cli("runs", cwd=project))
    for rid in (a, b, c):
        assert rid[:8] in table
    assert "cli-a" in table and "rejected" in table and "auc" in table

    shown = _ok(nbtk_cli("show", a[:6], cwd=project))
    assert a[:12] in shown and "cli-a" in shown and "auc >= 0.5" in shown and "lr=0.1" in shown
    full = json.loads(_ok(nbtk_cli("show", a[:6], "--json", cwd=project)))
    assert full["run_id"] == a and full["params"]["lr"] == 0.1


def test_usage_errors_are_one_line_exit_2(project: Path) -> None:
    from nbtoolkit.store import open_store

    _seed_runs(project)
    st = open_store()
    st.create_run(experiment="x", run_id="beef1" + "0" * 27)
    st.create_run(experiment="x", run_id="beef2" + "0" * 27)
    err = _usage_error(nbtk_cli("show", "deadbeefdead", cwd=project))
    assert "deadbeefdead" in err
    err = _usage_error(nbtk_cli("runs", "--where", "metrics.auc >>= 1", cwd=project))
    assert "--where" in err
    err = _usage_error(nbtk_cli("runs", "--where", "nosuch.col == 1", cwd=project))
    assert "nosuch.col" in err
    err = _usage_error(nbtk_cli("show", "beef", cwd=project))
    assert "ambiguous" in err
    err = _usage_error(nbtk_cli("env", "show", "beef9", cwd=project))
    assert "beef9" in err


def test_env_show_and_diff(project: Path) -> None:
    from nbtoolkit.envlock import EnvLock
    from nbtoolkit.store import open_store

    a, b, _ = _seed_runs(project)
    st = open_store()
    shown = _ok(nbtk_cli("env", "show", a[:8], cwd=project))
    assert "python" in shown and "packages:" in shown and "sqlalchemy==" in shown.lower()
    assert "git " in shown
    as_json = json.loads(_ok(nbtk_cli("env", "show", a[:8], "--json", cwd=project)))
    assert as_json["schema"].startswith("nbtoolkit.envlock")

    same = _ok(nbtk_cli("env", "diff", a[:8], b[:8], cwd=project))
    assert "No environment differences" in same

    body = st.get_run(a).lock().to_dict()
    name = next(n for n in sorted(body["packages"]) if n.lower() == "click")
    info = body["packages"][name]
    old_version = info["version"] if isinstance(info, dict) else info
    if isinstance(info, dict):
        body["packages"][name] = {**info, "version": "0.0.1"}
    else:
        body["packages"][name] = "0.0.1"
    body["packages"]["brand-new-pkg"] = {"version": "9.9"} if isinstance(info, dict) else "9.9"
    changed = EnvLock.from_dict(body)
    st.put_lock(changed.hash, changed.to_dict())
    c = st.create_run(experiment="cli-a")
    st.update_run(c, lock_hash=changed.hash)
    st.finish_run(c, status="finished")
    out = _ok(nbtk_cli("env", "diff", a[:8], c[:8], cwd=project))
    assert f"{name} {old_version} -> 0.0.1" in out or (name in out and "0.0.1" in out and old_version in out)
    assert "brand-new-pkg" in out and "9.9" in out


@pytest.mark.parametrize("args", [("--help",), ("runs", "--help")])
def test_help(project: Path, args: tuple[str, ...]) -> None:
    out = _ok(nbtk_cli(*args, cwd=project))
    assert "Usage" in out


def test_runs_json_items_equal_the_full_records_on_both_backends(project: Path, backend: Any) -> None:
    """``nbtk runs --json`` is built from the per-run summary rows; every item must say what the
    full record says (params of every JSON type, last metric values, NaN, kind, sweep id)."""
    import math

    from nbtoolkit.query import run_summaries
    from nbtoolkit.store.kinds import lineage_kind

    store = backend
    store.create_sweep("sw-1", notebook="nb.ipynb", spec={"grid": {}})
    child = store.create_run(experiment="json-eq", kind="sweep", source="papermill", parent_id="sw-1",
                             params={"grid": [1, 2], "cfg": {"a": None}, "name": "x", "n": 3})
    store.log_metrics(child, [("loss", 0.5, 0, 1.0), ("loss", 0.25, 1, 2.0), ("auc", math.nan, None, 2.0)])
    store.finish_run(child, status="finished", verdict="supported")
    plain = store.create_run(experiment="json-eq", params={"lr": 0.1})
    store.log_metrics(plain, [("auc", 0.75, None, 3.0), ("gain", -math.inf, None, 3.0)])
    store.finish_run(plain, status="failed", error="boom")

    items = run_summaries(store=store)
    records = {r.run_id: r for r in store.get_runs([i["run_id"] for i in items])}
    assert [i["run_id"] for i in items] == [plain, child]  # newest first
    for item in items:
        rec = records[item["run_id"]]
        full = rec.to_dict(lineage=False)
        for key in ("experiment", "status", "verdict", "started", "ended", "params"):
            assert item[key] == full[key], key
        assert item["metrics"].keys() == rec.metrics.keys()
        for name, value in rec.metrics.items():
            assert item["metrics"][name] == value or (math.isnan(value) and math.isnan(item["metrics"][name]))
        assert item["kind"] == lineage_kind(rec.kind) and item["sweep_id"] == rec.parent_id
    assert items[1]["params"] == {"cfg": {"a": None}, "grid": [1, 2], "n": 3, "name": "x"}
    assert items[1]["metrics"]["loss"] == 0.25 and items[1]["kind"] == "sweep" and items[1]["sweep_id"] == "sw-1"
    assert items[0]["metrics"]["gain"] == -math.inf
    assert [i["run_id"] for i in run_summaries(verdict="supported", store=store)] == [child]
    assert [i["run_id"] for i in run_summaries(where="params.lr == 0.1", store=store)] == [plain]
    assert [i["run_id"] for i in run_summaries(kind="sweep", store=store)] == [child]

    listed = json.loads(_ok(nbtk_cli("runs", "--json", "--sweep", "sw-1", cwd=project)))
    assert [r["run_id"] for r in listed] == [child] and listed[0]["nonfinite"] == {"/metrics/auc": "NaN"}
