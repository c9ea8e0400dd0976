"""Sweep and index reports written as a folder of linked pages, from a real sweep in real kernels."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from conftest import TEST_NOTEBOOKS, nbtk_cli

pytestmark = pytest.mark.slow


def _soup(path: Path) -> BeautifulSoup:
    return BeautifulSoup(path.read_text(encoding="utf-8"), "html5lib")


def _png(img: Any) -> bytes:
    src = img["src"]
    assert src.startswith("data:image/png;base64,")
    data = base64.b64decode(src.split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return data


def test_sweep_folder_links_every_child_and_explains_verdicts(project: Path, store: Any) -> None:
    nb = Path(shutil.copy(TEST_NOTEBOOKS / "small_experiment.ipynb", project / "small_experiment.ipynb"))
    res = nbtk_cli("sweep", str(nb), "--grid", "x=0.5,2", "--grid", "fail=False,True", "--grid", "pause=0,0.01",
                   "--jobs", "2", cwd=project, timeout=600)
    assert res.returncode == 1, res.stdout + res.stderr  # the failing children make the sweep exit 1
    sweep_id = store.find_sweeps("")[0].sweep_id
    out = project / "reports"
    rep = nbtk_cli("report", "--sweep", sweep_id[:8], "-o", f"{out}/", cwd=project)
    assert rep.returncode == 0, rep.stderr
    page = out / f"sweep-{sweep_id[:12]}.html"
    assert rep.stdout.strip() == str(page)
    doc = _soup(page)

    spec = {tr.select("td")[1].get_text(): (tr.select("td")[0].get_text(), tr.select("td")[2].get_text())
            for tr in doc.select("table.sweep-spec tbody tr")}
    assert spec["x"] == ("grid", "0.5, 2") and spec["fail"] == ("grid", "false, true")
    assert spec["points"] == ("runs", "8: every grid combination")

    rows = doc.select("table.sweep-runs tbody tr")
    assert len(rows) == 8
    header = [th.get_text() for th in doc.select("table.sweep-runs thead th")]
    why_col = header.index("why")
    children = {r.run_id: r for r in (store.get_run(rid["run_id"]) for rid in store.query_runs(parent_id=sweep_id)[0])}
    for row in rows:
        link = row.select_one("a.run-report")
        target = out / link["href"]
        assert target.is_file(), link["href"]
        child = _soup(target)
        run_id = child.find("h1").get_text()
        rec = next(r for rid, r in children.items() if rid in run_id)
        why = row.find_all("td")[why_col].get_text()
        if rec.status == "failed":
            assert why.startswith("failed: RuntimeError: asked to fail with x="), why
        elif rec.params["x"] == 0.5:
            assert rec.verdict == "rejected" and "score" in why, why
        else:
            assert rec.verdict == "supported" and "score" in why, why
        generated = child.select_one("p.generated").get_text(" ", strip=True)
        assert f"run {rec.status}" in generated and "not approved" in generated
    _png(doc.select_one("img.param-vs-metric"))
    _png(doc.select_one("img.parallel-coordinates"))  # three swept parameters
    assert doc.select_one("p.generated") is not None

    # a single file next to the pages links to them too; elsewhere it does not invent links
    alone = nbtk_cli("report", "--sweep", sweep_id[:8], "-o", str(out / "again.html"), cwd=project)
    assert alone.returncode == 0 and len(_soup(out / "again.html").select("a.run-report")) == 8
    nbtk_cli("report", "--sweep", sweep_id[:8], "-o", str(project / "solo.html"), cwd=project)
    assert _soup(project / "solo.html").select("a.run-report") == []


def test_index_folder_links_per_run_reports(project: Path, store: Any) -> None:
    from nbtoolkit.export import approve

    nb = Path(shutil.copy(TEST_NOTEBOOKS / "small_experiment.ipynb", project / "small_experiment.ipynb"))
    assert nbtk_cli("run", str(nb), cwd=project).returncode == 0
    assert nbtk_cli("run", str(nb), "-p", "x", "0.5", cwd=project).returncode == 0
    ids = [r["run_id"] for r in store.query_runs()[0]]
    approve(ids[-1], by="alice", note="fine", store=store)
    res = nbtk_cli("report", "--index", "-o", "log/", cwd=project)
    assert res.returncode == 0, res.stderr
    doc = _soup(project / "log" / "index.html")
    hrefs = [a["href"] for a in doc.select("a.run-report")]
    assert {f"run-{i[:12]}.html" for i in ids} <= set(hrefs)
    assert all((project / "log" / h).is_file() for h in hrefs)
    approved = _soup(project / "log" / f"run-{ids[-1][:12]}.html").select_one("p.generated").get_text(" ", strip=True)
    assert "approved by alice" in approved and "verdict supported" in approved
    other = _soup(project / "log" / f"run-{ids[0][:12]}.html").select_one("p.generated").get_text(" ", strip=True)
    assert "not approved" in other and "verdict rejected" in other
    nbtk_cli("report", "--index", "-o", "elsewhere.html", cwd=project)
    assert _soup(project / "elsewhere.html").select("a.run-report") == []
