"""The README's main job: ``nbtk demo`` runs the whole pipeline in a fresh project."""

from __future__ import annotations

import json
from pathlib import Path

from bs4 import BeautifulSoup
from conftest import nbtk_cli


def test_nbtk_demo_end_to_end(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    res = nbtk_cli("demo", "-o", str(folder), "--jobs", "2", cwd=tmp_path, env={"NBTOOLKIT_STORE": ""}, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr

    from nbtoolkit import registry
    from nbtoolkit.config import load_settings
    from nbtoolkit.export import verify_bundle
    from nbtoolkit.query import runs
    from nbtoolkit.store import open_store

    store = open_store(load_settings(folder, store=folder / ".nbtoolkit"))
    frame = runs(store=store)
    by_exp = frame.groupby("experiment")["run_id"].count().to_dict()
    assert by_exp["cancer-logreg"] == 1
    assert by_exp["cancer-gbm"] >= 1 + 4  # the run, the 2 x 2 sweep (and the reproduction run)
    assert set(frame["status"]) == {"finished"}

    bundle = folder / "bundles" / "cancer-gbm-0.1.0"
    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    challenger = store.get_run(manifest["run_id"])
    assert challenger.experiment == "cancer-gbm" and challenger.verdict == "supported"
    assert challenger.extra["reproduction"]["result"] in ("reproduced", "drifted")
    assert [a.by for a in challenger.approvals] == ["demo-reviewer"]

    sweep_pages = list((folder / "reports").glob("sweep-*.html"))
    assert len(sweep_pages) == 1
    for page in [folder / "reports" / f"{name}.html" for name in ("challenger", "comparison", "index")] + sweep_pages:
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html5lib")
        assert soup.find("h1") is not None, page.name
        assert str(page) in res.stdout
    # written after approval, export and reproduction: the reports are not stale
    run_page = BeautifulSoup((folder / "reports" / "challenger.html").read_text(encoding="utf-8"), "html5lib")
    generated = run_page.select_one("p.generated").get_text(" ", strip=True)
    assert "approved by demo-reviewer" in generated and "reproduction " in generated, generated
    sweep_links = BeautifulSoup(sweep_pages[0].read_text(encoding="utf-8"), "html5lib").select("a.run-report")
    assert len(sweep_links) == 4 and all((folder / "reports" / a["href"]).is_file() for a in sweep_links)
    log_links = BeautifulSoup((folder / "reports" / "index.html").read_text(encoding="utf-8"), "html5lib").select("a.run-report")
    assert {a["href"] for a in sweep_links} <= {a["href"] for a in log_links}
    # nbtoolkit's own outputs (reports, bundle) do not make the demo's git tree dirty
    from nbtoolkit.envlock import capture_lock

    assert capture_lock(load_settings(folder, store=folder / ".nbtoolkit"), environ={}).data["git"]["dirty"] is False
    assert not manifest["forced"]
    assert len(verify_bundle(bundle).files) == len(manifest["files"])
    assert registry.current("cancer-gbm", "production", store=store) == "0.1.0"

    # running the main job again replaces its own folder; a foreign folder is refused
    again = nbtk_cli("demo", "-o", str(folder), cwd=tmp_path, env={"NBTOOLKIT_STORE": ""}, timeout=600)
    assert again.returncode == 0, again.stderr
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("precious", encoding="utf-8")
    refused = nbtk_cli("demo", "-o", str(foreign), cwd=tmp_path, env={"NBTOOLKIT_STORE": ""})
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert (foreign / "keep.txt").read_text(encoding="utf-8") == "precious"
