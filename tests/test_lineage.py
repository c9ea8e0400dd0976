"""Lineage: stable baselines (pins, originals only, sweep:ID:best), run kinds, `nbtk sweeps`, the single-run cache.

The store-level tests build runs with the store's own operations; the slow ones run real
notebooks in real kernels through the ``nbtk`` command line.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_NOTEBOOKS, git, make_notebook, nbtk_cli

from nbtoolkit.baselines import pin_baseline, resolve_baseline, sweep_best, unpin_baseline
from nbtoolkit.errors import DeclarationError, InputError, RunNotFoundError
from nbtoolkit.store.version import SCHEMA_VERSION


def _run(store: Any, experiment: str, *, kind: str = "experiment", verdict: str | None = "supported",
         status: str = "finished", started: float, metrics: dict[str, float] | None = None,
         success: str | None = None, **fields: Any) -> str:
    decl = {"experiment": experiment, "success": [success] if success else []}
    rid = store.create_run(experiment=experiment, kind=kind, declaration=decl, **fields)
    store.update_run(rid, started=started)
    if metrics:
        store.log_metrics(rid, [(k, v, None, started) for k, v in metrics.items()])
    store.finish_run(rid, status=status, verdict=verdict)
    return rid


def test_baseline_by_name_is_the_latest_supported_original_run(store: Any) -> None:
    t = time.time() - 1000
    original = _run(store, "base", started=t)
    _run(store, "base", verdict="rejected", started=t + 1)  # newer but not supported
    _run(store, "base", kind="reproduction", origin_run_id=original, started=t + 2)
    _run(store, "base", kind="test", started=t + 3)
    _run(store, "base", kind="shadow", started=t + 4)
    store.create_sweep("ab" * 16, notebook="nb.ipynb", spec={})
    _run(store, "base", kind="sweep", parent_id="ab" * 16, started=t + 5)
    copy = store.copy_run(original, new_id="cd" * 16, parent_id=None, cache_key="k")
    assert store.get_run(copy).kind == "cached" and store.get_run(copy).started > t + 5
    assert resolve_baseline(store, "base") == (original, None)

    newer = _run(store, "base", kind="papermill", started=t + 10)  # `nbtk run` runs are originals
    assert resolve_baseline(store, "base") == (newer, None)

    # a pin wins over "latest", and is recorded with who and when
    pin = pin_baseline(store, "base", original[:8], by="rita", note="the reviewed one")
    assert resolve_baseline(store, "base") == (original, None)
    stored = store.baseline_pin("base")
    assert (stored.run_id, stored.by, stored.note) == (original, "rita", "the reviewed one")
    assert abs(stored.created - time.time()) < 60 and stored == pin
    assert unpin_baseline(store, "base") is True and unpin_baseline(store, "base") is False
    assert resolve_baseline(store, "base") == (newer, None)

    # only nothing-but-copies: no baseline, and the reason says why
    only = _run(store, "lonely", kind="sweep", parent_id="ab" * 16, started=t)
    run_id, reason = resolve_baseline(store, "lonely")
    assert run_id is None and "no supported finished original run" in (reason or "") and only


def test_pin_refuses_runs_it_cannot_stand_for(store: Any) -> None:
    t = time.time()
    a = _run(store, "exp-a", started=t)
    b = _run(store, "exp-b", started=t)
    failed = _run(store, "exp-a", status="failed", verdict=None, started=t + 1)
    with pytest.raises(InputError, match="belongs to experiment 'exp-b'"):
        pin_baseline(store, "exp-a", b, by="rita")
    with pytest.raises(InputError, match="is failed; only a finished run"):
        pin_baseline(store, "exp-a", failed, by="rita")
    with pytest.raises(InputError, match="No experiment is called 'nope'"):
        pin_baseline(store, "nope", a, by="rita")
    with pytest.raises(InputError, match="--by"):
        pin_baseline(store, "exp-a", a, by="  ")
    with pytest.raises(RunNotFoundError):
        pin_baseline(store, "exp-a", "ffffffff", by="rita")
    assert store.baseline_pin("exp-a") is None


def test_sweep_best_follows_the_target_metric_direction(store: Any) -> None:
    from nbtoolkit.declaration import Declaration

    t = time.time()
    up, down = "1a" * 16, "2b" * 16
    store.create_sweep(up, notebook="nb.ipynb", spec={})
    store.create_sweep(down, notebook="nb.ipynb", spec={})
    kids = [_run(store, "s", kind="sweep", parent_id=up, metrics={"score": v}, success="score >= 2", started=t + i)
            for i, v in enumerate([1.0, 5.0, 3.0])]
    _run(store, "s", kind="sweep", parent_id=up, metrics={"score": 9.0}, success="score >= 2", status="failed",
         verdict=None, started=t + 5)  # a failed child never wins
    best = sweep_best(store, up)
    assert best is not None and (best.run_id, best.metric, best.value, best.higher_is_better) == (kids[1], "score", 5.0, True)
    low = [_run(store, "s", kind="sweep", parent_id=down, metrics={"loss": v}, success="loss <= 0.3", started=t + i)
           for i, v in enumerate([0.4, 0.1, 0.2])]
    assert sweep_best(store, down).run_id == low[1]
    assert resolve_baseline(store, f"sweep:{up[:6]}:best") == (kids[1], None)
    assert resolve_baseline(store, f"sweep:{down}:best") == (low[1], None)
    with pytest.raises(RunNotFoundError, match="nbtk sweeps"):
        resolve_baseline(store, "sweep:ffff:best")

    assert Declaration("cand", baseline=f"sweep:{up[:8].upper()}:best").baseline == f"sweep:{up[:8]}:best"
    with pytest.raises(DeclarationError, match="sweep:SWEEP_ID:best"):
        Declaration("cand", baseline="sweep:1a1a:worst")


def test_v4_store_upgrades_naming_cached_copies_and_sweep_children(tmp_path: Path) -> None:
    from nbtoolkit.store.store import Store

    folder = tmp_path / "v4"
    st = Store(folder)
    t = time.time()
    st.create_sweep("5e" * 16, notebook="nb.ipynb", spec={})
    original = _run(st, "e", kind="papermill", started=t)
    child = _run(st, "e", kind="papermill", parent_id="5e" * 16, started=t + 1)
    copy = st.copy_run(original, new_id="c0" * 16, parent_id="5e" * 16, cache_key="k")
    rep = _run(st, "e", kind="reproduction", origin_run_id=original, started=t + 2)
    st.dispose()
    con = sqlite3.connect(folder / "store.db")
    # what a v4 store held: copies and sweep children recorded with their source's kind
    con.executescript(
        "DROP TABLE baseline_pins; UPDATE runs SET kind='papermill' WHERE kind IN ('cached', 'sweep');"
        "UPDATE meta SET value='4' WHERE key='schema_version';"
    )
    con.commit()
    con.close()
    st = Store(folder)
    assert st.schema_version == SCHEMA_VERSION >= 5
    kinds = {rid: st.get_run(rid).kind for rid in (original, child, copy, rep)}
    assert kinds == {original: "papermill", child: "sweep", copy: "cached", rep: "reproduction"}
    assert st.baseline_pin("e") is None
    st.dispose()


def test_show_json_has_code_version_and_lineage(store: Any, project: Path) -> None:
    from nbtoolkit import tracking

    with tracking.start_run("traced", success="score >= 1") as run:
        run.log_metric("score", 2.0)
    original = run.run_id
    rep = _run(store, "traced", kind="reproduction", origin_run_id=original, started=time.time())
    store.merge_extra(rep, {"reproduction": {"result": "reproduced"}})
    d = store.get_run(original).to_dict()
    head = git(project, "rev-parse", "HEAD").strip()
    assert d["code"]["commit"] == head and d["code"]["branch"] == "main" and isinstance(d["code"]["dirty"], bool)
    assert d["lineage"]["kind"] == "experiment" and d["lineage"]["cached_from"] is None
    assert [(r["run_id"], r["result"]) for r in d["lineage"]["reproduced_by"]] == [(rep, "reproduced")]
    assert store.get_run(rep).to_dict()["lineage"]["reproduces"] == original

    shown = nbtk_cli("show", original[:8], "--json", cwd=project)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["code"]["commit"] == head and data["lineage"]["reproduced_by"][0]["run_id"] == rep
    text = nbtk_cli("show", original[:8], cwd=project).stdout
    assert "kind: experiment" in text and f"code: git {head[:12]} on main" in text
    assert f"reproduced by run {rep[:8]}: reproduced" in text


def test_baseline_cli_and_new_warning(store: Any, project: Path) -> None:
    t = time.time() - 100
    first = _run(store, "base", started=t)
    latest = _run(store, "base", started=t + 1)

    shown = nbtk_cli("baseline", "show", "base", cwd=project)
    assert shown.returncode == 0 and f"run {latest[:8]}, its latest supported original run (not pinned)" in shown.stdout
    pinned = nbtk_cli("baseline", "set", "base", first[:8], "--by", "rita", "--note", "signed off", cwd=project)
    assert pinned.returncode == 0, pinned.stderr
    assert f"Baseline of base pinned to run {first[:8]} by rita" in pinned.stdout
    shown = nbtk_cli("baseline", "show", "base", "--json", cwd=project)
    data = json.loads(shown.stdout)
    assert data["run_id"] == first and data["pinned"]["by"] == "rita" and data["pinned"]["note"] == "signed off"
    wrong = nbtk_cli("baseline", "set", "nope", first[:8], cwd=project)
    assert wrong.returncode == 2 and "No experiment is called 'nope'" in wrong.stderr and "Traceback" not in wrong.stderr
    unset = nbtk_cli("baseline", "unset", "base", cwd=project)
    assert unset.returncode == 0 and "removed" in unset.stdout
    assert resolve_baseline(store, "base") == (latest, None)

    missing = nbtk_cli("new", "cand", "--baseline", "no-such-thing", cwd=project)
    assert missing.returncode == 0 and (project / "cand.ipynb").is_file()
    assert "Warning: the baseline 'no-such-thing' names no run" in missing.stderr
    known = nbtk_cli("new", "cand2", "--baseline", "base", cwd=project)
    assert known.returncode == 0 and "Warning" not in known.stderr


def _small(project: Path) -> Path:
    return Path(shutil.copy(TEST_NOTEBOOKS / "small_experiment.ipynb", project / "small_experiment.ipynb"))


@pytest.mark.slow
def test_single_run_cache_kinds_sweeps_listing_and_stable_baseline(project: Path, store: Any) -> None:
    nb = _small(project)
    first = nbtk_cli("run", str(nb), "-p", "x", "1", cwd=project)
    assert first.returncode == 0, first.stderr
    (original,) = [r["run_id"] for r in store.query_runs()[0]]

    # the same inputs again: served from the run cache, the executed notebook still written to -o
    again = nbtk_cli("run", str(nb), "-p", "x", "1", "-o", str(project / "again.ipynb"), cwd=project)
    assert again.returncode == 0, again.stderr
    assert f"cached, verdict supported: same inputs as run {original[:8]}" in again.stdout
    copy = next(r["run_id"] for r in store.query_runs()[0] if r["run_id"] != original)
    rec = store.get_run(copy)
    assert (rec.kind, rec.origin_run_id, rec.status, rec.verdict) == ("cached", original, "finished", "supported")
    assert rec.metrics == {"score": 2.0} and (project / "again.ipynb").stat().st_size > 0
    assert rec.to_dict()["lineage"]["cached_from"] == original
    forced = nbtk_cli("run", str(nb), "-p", "x", "1", "--force", cwd=project)
    assert forced.returncode == 0 and "cached" not in forced.stdout
    assert len(store.query_runs()[0]) == 3

    # a sweep: x=1 comes from the cache, x=3 runs
    swept = nbtk_cli("sweep", str(nb), "--grid", "x=1,3", "--jobs", "1", cwd=project)
    assert swept.returncode == 0, swept.stderr
    (sweep,) = store.list_sweeps()
    listing = json.loads(nbtk_cli("sweeps", "--json", cwd=project).stdout)
    assert len(listing) == 1
    row = listing[0]
    assert (row["sweep_id"], row["points"], row["done"], row["failed"], row["cached"]) == (sweep.sweep_id, 2, 2, 0, 1)
    best_child = next(r for r in store.get_runs(store.sweep_child_ids(sweep.sweep_id)) if r.params["x"] == 3)
    assert row["best"] == {"run_id": best_child.run_id, "metric": "score", "value": 6.0, "goal": "max"}
    table = nbtk_cli("sweeps", cwd=project).stdout
    assert sweep.sweep_id[:8] in table and "small_experiment.ipynb" in table and "score=6" in table
    shown = nbtk_cli("show", sweep.sweep_id[:8], cwd=project)
    assert shown.returncode == 0 and f"sweep {sweep.sweep_id}" in shown.stdout
    assert f"best: run {best_child.run_id[:8]} score=6" in shown.stdout and "cached from" in shown.stdout

    report = nbtk_cli("report", "--sweep", sweep.sweep_id[:8], "-o", str(project / "sweep.html"), cwd=project)
    assert report.returncode == 0, report.stderr
    assert "(cached from <span class=\"mono\">" in (project / "sweep.html").read_text(encoding="utf-8")
    run_page = nbtk_cli("report", copy[:8], "-o", str(project / "copy.html"), cwd=project)
    assert run_page.returncode == 0 and "cached copy (served from the run cache" in (project / "copy.html").read_text()

    # listings: a kind column, --kind and --sweep filters
    kids = json.loads(nbtk_cli("runs", "--sweep", sweep.sweep_id[:8], "--json", cwd=project).stdout)
    assert sorted(k["kind"] for k in kids) == ["cached", "sweep"]
    assert {k["sweep_id"] for k in kids} == {sweep.sweep_id}
    cached = json.loads(nbtk_cli("runs", "--kind", "cached", "--json", cwd=project).stdout)
    assert {c["run_id"] for c in cached} == {copy, next(k["run_id"] for k in kids if k["kind"] == "cached")}
    forced_id = next(r["run_id"] for r in store.query_runs(kind="papermill")[0] if r["run_id"] != original)
    originals = json.loads(nbtk_cli("runs", "--kind", "experiment", "--json", cwd=project).stdout)
    assert {o["run_id"] for o in originals} == {original, forced_id}
    table = nbtk_cli("runs", cwd=project).stdout
    assert " kind " in table and " cached " in table and " sweep " in table
    bad = nbtk_cli("runs", "--kind", "copies", cwd=project)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr

    # a candidate declaring `--baseline small` compares with the latest *original* run, not
    # the newer cached copies or sweep children; the card and `nbtk show` name it
    cand = make_notebook(project / "cand.ipynb", "%load_ext nbtoolkit",
                         "%%experiment cand --baseline small --success 'score >= baseline.score'\nscore = 7")
    ran = nbtk_cli("run", str(cand), cwd=project)
    assert ran.returncode == 0, ran.stderr
    cand_rec = next(store.get_run(r["run_id"]) for r in store.query_runs(experiment="cand")[0])
    assert cand_rec.baseline_run_id == forced_id and cand_rec.verdict == "supported"
    text = nbtk_cli("show", cand_rec.run_id[:8], cwd=project).stdout
    assert f"baseline: small -> run {forced_id[:8]}" in text
    assert resolve_baseline(store, f"sweep:{sweep.sweep_id[:8]}:best") == (best_child.run_id, None)


def test_kind_names_map_to_stored_kinds() -> None:
    from nbtoolkit.store.kinds import lineage_kind, stored_kinds

    assert [lineage_kind(k) for k in ("papermill", "experiment", "sweep", "cached", "shadow", "abtest", "monitor")] == [
        "experiment", "experiment", "sweep", "cached", "monitor", "monitor", "monitor"]
    assert stored_kinds(["experiment", "cached"]) == ["experiment", "papermill", "cached"]
    with pytest.raises(InputError, match="Unknown run kind 'copies'; use one of: experiment, sweep, cached"):
        stored_kinds("copies")
