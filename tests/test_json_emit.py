"""Valid JSON always (NaN/±inf as null + "nonfinite"), clear errors for unrepresentable values,
and parameters as a record (no silent overwrite, a length limit), with real stores and a real server."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import nbtk_cli

import nbtoolkit as nbtk
from nbtoolkit import _json
from nbtoolkit.errors import InputError, ParameterError


def strict_loads(text: str) -> Any:
    """Parse like a browser or ``jq`` would: NaN/Infinity are syntax errors."""
    def refuse(token: str) -> Any:
        raise ValueError(f"invalid JSON constant {token}")

    return json.loads(text, parse_constant=refuse)


def test_dumps_strict_writes_null_and_names_the_original() -> None:
    value = {
        "metrics": {"auc": math.nan, "loss": 0.5, "a/b~c": math.inf},
        "steps": [{"value": -math.inf, "step": 3}, 1.0, math.nan],
        "tuple": (1, 2),
        "when": Path("x/y"),
    }
    data = strict_loads(_json.dumps_strict(value))
    assert data["metrics"] == {"auc": None, "loss": 0.5, "a/b~c": None}
    assert data["nonfinite"] == {"/metrics/auc": "NaN", "/metrics/a~1b~0c": "Infinity", "/steps/2": "NaN"}
    # an object that is an element of an array is a record of its own
    assert data["steps"][0] == {"value": None, "step": 3, "nonfinite": {"/value": "-Infinity"}}
    assert data["tuple"] == [1, 2] and data["when"] == "x/y"
    assert strict_loads(_json.dumps_strict([{"m": 1.0}])) == [{"m": 1.0}]  # nothing added when all is finite


def test_unrepresentable_values_are_input_errors_at_log_time(project: Path) -> None:
    with nbtk.start_run("huge") as run:
        with pytest.raises(InputError, match="too large for a 64-bit float"):
            nbtk.log(big=10**400)
        with pytest.raises(ParameterError, match="integer of 401 digits, outside the 64-bit range"):
            nbtk.log_params(n=10**400)
        with pytest.raises(ParameterError, match="integer of about 20000 digits"):
            nbtk.log_params(nested={"deep": [1, 10**20000]})
        with pytest.raises(ParameterError, match="is 6002 characters long as JSON; the limit is 6000"):
            nbtk.log_params(blob="x" * 6000)
        nbtk.log_params(edge=2**63 - 1, neg=-(2**63), text="y" * 5998, ok=np.int64(5))
        nbtk.log(score=1.0)
    rec = nbtk.get_run(run.run_id)
    assert rec.params["edge"] == 2**63 - 1 and rec.params["text"] == "y" * 5998 and rec.params["ok"] == 5
    assert "n" not in rec.params and "blob" not in rec.params and rec.metrics == {"score": 1.0}
    with pytest.raises(ParameterError), nbtk.start_run("huge", params={"n": 10**30}):  # validated alike
        pass


def test_parameters_are_a_record(project: Path, store: Any) -> None:
    with nbtk.start_run("record", params={"lr": 0.1}) as run:
        nbtk.log_params(lr=0.1, depth=3)  # the same value again is fine
        with pytest.raises(ParameterError) as info:
            nbtk.log_params(lr=0.2)
        assert "'lr' is already 0.1" in str(info.value) and "cannot become 0.2" in str(info.value)
        with pytest.raises(ParameterError, match="'depth' is already 3 in this run; it cannot become 4"):
            nbtk.log_params({"depth": 4})
        nbtk.log_params(nan=math.nan, nan_again=float("nan"))
        nbtk.log_params(nan=float("nan"))  # NaN is the same value as NaN
    # the store itself refuses too (another process logging to the same run)
    with pytest.raises(ParameterError, match="'depth' is already 3 in this run; it cannot become \"three\""):
        store.log_params(run.run_id, {"depth": "three", "fresh": 1})
    store.log_params(run.run_id, {"depth": 3, "fresh": 2})
    rec = store.get_run(run.run_id)
    assert rec.params["lr"] == 0.1 and rec.params["depth"] == 3 and rec.params["fresh"] == 2
    assert math.isnan(rec.params["nan"])  # recorded faithfully in the store


def test_cli_json_is_strict_with_nan_metrics_and_params(project: Path, store: Any) -> None:
    with nbtk.start_run("nan-run", params={"alpha": math.nan, "beta": math.inf}) as run:
        nbtk.log(auc=math.nan, loss=-math.inf, acc=0.75)
    shown = nbtk_cli("show", run.run_id, "--json", cwd=project)
    assert shown.returncode == 0, shown.stderr
    data = strict_loads(shown.stdout)
    assert data["metrics"]["auc"] is None and data["metrics"]["acc"] == 0.75 and data["params"]["alpha"] is None
    assert data["nonfinite"]["/metrics/auc"] == "NaN" and data["nonfinite"]["/metrics/loss"] == "-Infinity"
    assert data["nonfinite"]["/params/alpha"] == "NaN" and data["nonfinite"]["/params/beta"] == "Infinity"
    listed = nbtk_cli("runs", "--json", cwd=project)
    assert listed.returncode == 0, listed.stderr
    (row,) = strict_loads(listed.stdout)
    assert row["run_id"] == run.run_id and row["metrics"] == {"acc": 0.75, "auc": None, "loss": None}
    assert row["nonfinite"] == {"/metrics/auc": "NaN", "/metrics/loss": "-Infinity", "/params/alpha": "NaN",
                                "/params/beta": "Infinity"}


@pytest.mark.slow
def test_rest_api_survives_nan_metrics_and_params(project: Path, store: Any, tmp_path: Path) -> None:
    from _lab import JupyterServer

    with nbtk.start_run("nan-rest", params={"alpha": math.nan}) as bad:
        nbtk.log(auc=math.nan)
        for step, value in enumerate([1.0, math.inf, 0.5]):
            nbtk.log_metric("loss", value, step=step)
    with nbtk.start_run("nan-rest") as good:
        nbtk.log(auc=0.9)
    srv = JupyterServer(project, tmp_path / "jupyter", lab=False,
                        env={"NBTOOLKIT_STORE": str(project / ".nbtoolkit")}).start()
    try:
        bodies = {}
        for path in ("experiments", "runs", "runs?experiment=nan-rest", f"runs/{bad.run_id}", f"runs/{good.run_id}"):
            status, headers, body = srv.request(f"/nbtoolkit/api/{path}")
            assert status == 200, (path, body[:300])
            assert headers.get("Content-Type", "").startswith("application/json")
            bodies[path] = strict_loads(body.decode("utf-8"))
        status, _, _ = srv.request(f"/nbtoolkit/api/runs/{bad.run_id}/report")
        assert status == 200
    finally:
        srv.stop()
    runs = {r["run_id"]: r for r in bodies["runs"]["runs"]}
    assert set(runs) == {bad.run_id, good.run_id}
    detail = bodies[f"runs/{bad.run_id}"]
    assert detail["metrics"]["auc"] is None and detail["nonfinite"]["/metrics/auc"] == "NaN"
    assert detail["params"]["alpha"] is None and detail["nonfinite"]["/params/alpha"] == "NaN"
    assert bodies[f"runs/{good.run_id}"]["metrics"]["auc"] == 0.9
