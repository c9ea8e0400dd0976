"""Reports: parse the generated HTML (BeautifulSoup + html5lib) and check what it must hold."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from bs4 import BeautifulSoup
from conftest import nbtk_cli

from nbtoolkit._format import fmt_number
from nbtoolkit._format import metric_decimals as decimals

RNG = np.random.default_rng(11)
N = 300
Y = RNG.integers(0, 2, N)
IDS = [f"row{i}" for i in range(N)]
GROUPS = np.where(np.arange(N) % 3 == 0, "small", "large")
WEAK = np.clip(Y * 0.2 + RNG.random(N) * 0.8, 0, 1)
STRONG = np.clip(Y * 0.55 + RNG.random(N) * 0.45, 0, 1)
SVG = '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><circle r="9" cx="10" cy="10"/></svg>'
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def soup(path: Path | str) -> BeautifulSoup:
    text = Path(path).read_text(encoding="utf-8") if isinstance(path, Path) else path
    return BeautifulSoup(text, "html5lib")


def executed_notebook(marker: str = "nb-output-marker") -> Any:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("show()")
    cell.outputs = [
        nbformat.v4.new_output("display_data", data={"text/html": f"<b class='mark'>{marker}</b>", "text/plain": "x"}),
        nbformat.v4.new_output("display_data", data={"application/javascript": "console.log('js-output-marker')"}),
        nbformat.v4.new_output("display_data", data={"image/svg+xml": SVG}),
        nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(PNG_1PX).decode()}),
        nbformat.v4.new_output("stream", name="stdout", text="printed-marker\n"),
    ]
    nb.cells = [nbformat.v4.new_markdown_cell("# Analysis notes"), cell]
    return nb


def store_notebook(store: Any, run_id: str, nb: Any) -> None:
    digest, size = store.artifacts.put_bytes(nbformat.writes(nb).encode("utf-8"))
    store.add_artifact(run_id, name="output.ipynb", kind="notebook", digest=digest, size=size,
                       media_type="application/x-ipynb+json")


def make_pair(project: Path) -> tuple[Any, Any, Any]:
    """A baseline run and a candidate with predictions, steps, a figure, data, notebook."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score

    import nbtoolkit as nbtk
    from nbtoolkit.store import open_store

    store = open_store()
    with nbtk.start_run("churn-logreg", hypothesis="a linear model is enough", owner="ana",
                        success="roc_auc >= 0.6") as base:
        nbtk.log_params(lr=0.1, depth=3)
        for step in range(5):
            nbtk.log_metric("loss", 1.0 / (step + 2), step=step)
        nbtk.log(roc_auc=float(roc_auc_score(Y, WEAK)))
        nbtk.log_predictions(Y, WEAK, ids=IDS, groups=GROUPS)
    (project / "train.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with nbtk.start_run("churn-gbm", hypothesis="boosting beats the linear baseline",
                        scope="EU customers", owner="bo", until="2030-01-31",
                        description="second attempt", baseline=base.run_id,
                        success=["roc_auc >= baseline.roc_auc + 0.02", "accuracy >= 0.6"]) as cand:
        nbtk.log_params(lr=0.05, depth=3, n_estimators=200)
        for step in range(5):
            nbtk.log_metric("loss", 1.0 / (step + 3), step=step)
        nbtk.log(roc_auc=float(roc_auc_score(Y, STRONG)), accuracy=float(((STRONG >= 0.5) == Y).mean()))
        nbtk.log_predictions(Y, STRONG, ids=IDS, groups=GROUPS)
        nbtk.track_data(project / "train.csv")
        fig = plt.figure(figsize=(2, 2))
        plt.plot([0, 1], [1, 0])
        nbtk.log_figure(fig, "residuals")
        plt.close(fig)
    store.add_approval(cand.run_id, by="carla", note="looks right")
    store_notebook(store, cand.run_id, executed_notebook())
    return base, cand, store


@pytest.fixture
def pair(project: Path) -> tuple[Any, Any, Any]:
    return make_pair(project)


def resource_urls(doc: BeautifulSoup) -> list[str]:
    """Every URL the page would fetch: src, srcset, link href, poster, CSS url(...)."""
    urls = [el.get(attr) for attr in ("src", "srcset", "poster", "data") for el in doc.find_all(attrs={attr: True})]
    urls += [el.get("href") for el in doc.find_all("link")]
    css = " ".join(s.get_text() for s in doc.find_all("style")) + " ".join(
        el.get("style", "") for el in doc.find_all(style=True))
    urls += re.findall(r"url\(\s*['\"]?([^'\")]+)", css)
    urls += re.findall(r"@import\s+['\"]?([^'\";]+)", css)
    return [u for u in urls if u]


def assert_offline(doc: BeautifulSoup) -> None:
    urls = resource_urls(doc)
    assert urls, "expected at least one embedded resource"
    remote = [u for u in urls if not u.startswith("data:")]
    assert remote == []
    assert not any(re.match(r"(?i)https?://", u) for u in urls)
    csp = doc.find("meta", attrs={"http-equiv": "Content-Security-Policy"})
    assert csp is not None and "default-src 'none'" in csp["content"]


def test_run_report_content(pair: tuple[Any, Any, Any], tmp_path: Path) -> None:
    from nbtoolkit.report import write_run_report

    base, cand, store = pair
    out = write_run_report(cand.run_id, tmp_path / "run.html")
    doc = soup(out)
    banner = doc.select_one(".verdict-banner").get_text()
    assert f"Verdict: {cand.verdict.status}" in banner
    assert doc.select_one(".hypothesis").get_text() == "boosting beats the linear baseline"
    assert doc.select_one(".scope").get_text() == "EU customers"
    assert doc.select_one(".owner").get_text() == "bo"
    assert "decide by 2030-01-31" in doc.get_text()
    rows = doc.select("table.criteria tbody tr")
    assert [r.find("code").get_text() for r in rows] == ["roc_auc >= baseline.roc_auc + 0.02", "accuracy >= 0.6"]
    iv = cand.verdict.results[0].interval
    cells = [td.get_text(" ", strip=True) for td in rows[0].find_all("td")]
    first = cand.verdict.results[0]
    assert cells[1] == f">= {first.bar:.4f}"  # target: operator and bar, 4 decimals for a ~0.75 AUC
    assert cells[2] == f"{first.observed:.4f}" and cells[3] == f"{first.baseline:.4f}"
    assert cells[4] == f"{first.difference:+.4f}"
    assert cells[5].startswith(f"[{iv.low:+.4f}, {iv.high:+.4f}]") and "95%" in cells[5]
    assert cells[6].endswith(cand.verdict.results[0].status)
    assert "no interval" not in rows[1].select_one(".interval").get_text()  # absolute criterion: —
    # logged metrics: a judged one reads exactly as its criteria row (shared decimals), others 4 digits
    logged = {r.find("code").get_text(): r.find_all("td")[1].get_text() for r in doc.select("table.metrics tbody tr")}
    second = cand.verdict.results[1]
    assert logged["roc_auc"] == cells[2] and logged["accuracy"] == f"{second.observed:.{decimals(second.observed, 0.6)}f}"
    assert logged["loss"] == fmt_number(cand.record().metrics["loss"])
    # parameters: changed vs baseline first, unchanged last
    params = [(r.find("code").get_text(), r.find_all("td")[-1].get_text()) for r in doc.select("table.params tbody tr")]
    assert params == [("lr", "changed"), ("n_estimators", "added"), ("depth", "same")]
    # plots and figures embedded as PNG data URIs
    assert doc.select_one("img.step-curves")["src"].startswith("data:image/png;base64,")
    assert doc.select_one("img.roc-pr")["src"].startswith("data:image/png;base64,")
    assert doc.select_one("img.logged-figure")["alt"] == "residuals.png"
    assert "worst-group gap" in doc.get_text() and doc.select("table.groups")
    assert "train.csv" in doc.select_one("table.data").get_text()
    assert "Python" in doc.select_one("dl.env").get_text()
    assert "Not reproduced yet" in doc.select_one(".reproduction").get_text()
    approvals = doc.select_one("table.approvals").get_text()
    assert "carla" in approvals and "looks right" in approvals
    # executed notebook: collapsed, outputs present but inert
    details = doc.select_one("details.notebook")
    assert details is not None and not details.has_attr("open")
    nb_text = details.get_text()
    assert "nb-output-marker" in nb_text and "printed-marker" in nb_text
    assert "console.log('js-output-marker')" in nb_text  # JS shown as text, not run
    svg_img = [i for i in details.find_all("img") if i["src"].startswith("data:image/svg+xml;base64,")]
    assert len(svg_img) == 1 and base64.b64decode(svg_img[0]["src"].split(",", 1)[1]).decode() == SVG
    assert doc.find("svg") is None and doc.find("script") is None
    assert_offline(doc)
    assert not list(tmp_path.glob(".run.html.*"))  # atomic write leaves no temp file
    from nbtoolkit.report import render_run_report

    forked = soup(render_run_report(cand.run_id, parallel=True)).select_one("details.notebook")
    assert str(forked) == str(details)  # the notebook rendered in a child process is the same


def test_run_report_states_without_extras(project: Path, tmp_path: Path) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.report import render_run_report
    from nbtoolkit.store import open_store

    with nbtk.start_run("plain", success="roc_auc >= baseline.roc_auc") as run:
        nbtk.log(roc_auc=0.7)
        for step in range(3):  # mathtext-like names must not break the plot
            nbtk.log_metric("cost $\\frac{$ odd", float(step), step=step)
    doc = soup(render_run_report(run.run_id))
    text = doc.get_text()
    assert "Not reproduced yet" in text and "No approvals yet" in text
    assert "Not available: no executed notebook was stored with this run" in text
    assert "No interval" in text and "No figures were logged" in text
    assert doc.select_one(".verdict-banner").get_text().startswith("Verdict: inconclusive")
    assert doc.select_one("img.step-curves")["src"].startswith("data:image/png;base64,")
    store = open_store()
    store.merge_extra(run.run_id, {"reproduction": {"result": "diverged", "run_id": "f" * 32, "max_rel_diff": 0.3}})
    nb_path = project / "plain.ipynb"
    nbformat.write(executed_notebook("saved-file-marker"), nb_path)
    store.update_run(run.run_id, notebook_path=str(nb_path))
    doc = soup(render_run_report(run.run_id))
    rep = doc.select_one(".reproduction").get_text()
    assert "diverged" in rep and "ffffffff" in rep
    assert "max_rel_diff" in doc.get_text()
    details = doc.select_one("details.notebook")
    assert "saved-file-marker" in details.get_text() and "as saved" in details.get_text()


def test_baseline_override_reevaluates_and_compares(pair: tuple[Any, Any, Any], project: Path) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.report import render_run_report

    base, cand, store = pair
    with nbtk.start_run("other", success="roc_auc >= 0.5") as other:
        nbtk.log(roc_auc=0.99, accuracy=0.9)
        nbtk.log_params(lr=0.05, depth=9)
    doc = soup(render_run_report(cand.run_id, baseline=other.run_id))
    banner = doc.select_one(".verdict-banner").get_text()
    assert "re-evaluated against baseline" in banner and other.run_id[:8] in banner
    first = doc.select("table.criteria tbody tr")[0].get_text(" ", strip=True)
    assert "fail" in first  # 0.99 + 0.02 is out of reach, judged on point values
    assert "single values only" in first
    params = [(r.find("code").get_text(), r.find_all("td")[-1].get_text()) for r in doc.select("table.params tbody tr")]
    assert params[0] == ("depth", "changed") and params[-1] == ("lr", "same")
    # a damaged predictions blob degrades the report to point values instead of failing it
    blob = store.artifacts.path_for(cand.record().artifact("predictions").digest)
    blob.write_bytes(b"not an npz")
    doc = soup(render_run_report(cand.run_id))
    assert "No interval: the predictions could not be read" in doc.get_text()
    assert doc.select("table.criteria tbody tr")

def test_comparison_report_and_inline_compare(pair: tuple[Any, Any, Any], tmp_path: Path) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.report import write_comparison_report

    base, cand, store = pair
    comp = nbtk.compare(base.run_id, cand.run_id)
    assert [p.name for p in comp.changed_params] == ["lr", "n_estimators"]
    roc = next(m for m in comp.metrics if m.name == "roc_auc")
    assert roc.difference == pytest.approx(cand.record().metrics["roc_auc"] - base.record().metrics["roc_auc"])
    assert roc.interval is not None and roc.interval.low > 0 and roc.significant
    assert comp.mcnemar is not None and comp.shared_examples == N
    inline = soup(comp._repr_html_())
    assert inline.find("script") is None
    assert [r.find("code").get_text() for r in inline.select("table.params-changed tbody tr")] == ["lr", "n_estimators"]
    assert "paired bootstrap" in inline.get_text() and "McNemar" in inline.get_text()
    assert "lr" in repr(comp) and "roc_auc" in repr(comp)
    doc = soup(write_comparison_report(base.run_id, cand.run_id, tmp_path / "cmp.html"))
    rows = {r.find("code").get_text(): r for r in doc.select("table.metrics-diff tbody tr")}
    assert rows["roc_auc"].select_one(".interval").get_text().startswith(
        f"[{roc.interval.low:+.4f}, {roc.interval.high:+.4f}]")
    assert "no interval" in rows["loss"].select_one(".interval").get_text()
    # "only what changed" comes before the unchanged parameters
    text = doc.get_text()
    assert text.index("What changed") < text.index("Unchanged parameters")
    assert doc.find("script") is None and doc.find("h1").get_text().startswith("Comparison")


def _sweep(store: Any, sweep_id: str, n_lr: int, seeds: int, *, metric: str = "roc_auc") -> list[str]:
    spec = {"grid": {"lr": [0.01 * (i + 1) for i in range(n_lr)], "seed": list(range(seeds))}}
    store.create_sweep(sweep_id, notebook="train.ipynb", spec=spec, status="running")
    store.set_sweep_status(sweep_id, "finished", ended=True)
    ids = []
    for i in range(n_lr):
        for s in range(seeds):
            rid = store.create_run(experiment="sweep-exp", declaration={"success": [f"{metric} >= 0.5"]},
                                   kind="papermill", source="papermill", parent_id=sweep_id)
            store.log_params(rid, {"lr": 0.01 * (i + 1), "seed": s, "test_size": 0.3})
            store.log_metrics(rid, [(metric, 0.6 + 0.05 * i + 0.01 * s, None, time.time()),
                                    ("fit_seconds", 3.0 - 0.1 * len(ids), None, time.time())])
            store.finish_run(rid, status="finished", verdict="supported")
            ids.append(rid)
    return ids


def test_sweep_report_sorted_with_seed_groups(store: Any, tmp_path: Path) -> None:
    from nbtoolkit.report import write_sweep_report

    _sweep(store, "sw1234567890", n_lr=3, seeds=2)
    doc = soup(write_sweep_report("sw1234", tmp_path / "sweep.html", store=store))
    header = [th.get_text() for th in doc.select("table.sweep-runs thead th")]
    assert header[:4] == ["#", "run", "status", "verdict"] and "lr" in header and "roc_auc" in header
    assert "test_size" not in header  # constant parameters are not columns
    col = header.index("roc_auc")
    values = [float(r.find_all("td")[col].get_text()) for r in doc.select("table.sweep-runs tbody tr")]
    assert len(values) == 6 and values == sorted(values, reverse=True)
    groups = doc.select("table.seed-groups tbody tr")
    assert len(groups) == 3
    top = groups[0].get_text(" ", strip=True)
    assert "lr=0.03" in top and "0.705 ± 0.007071" in top and "test_size" not in top
    assert doc.select_one("img.param-vs-metric")["src"].startswith("data:image/png;base64,")
    assert_offline(doc)
    for sort, descending in (("fit_seconds", False), ("fit_seconds:desc", True), ("roc_auc:asc", False)):
        doc = soup(write_sweep_report("sw1234567890", tmp_path / "s2.html", store=store, sort=sort))
        header = [th.get_text() for th in doc.select("table.sweep-runs thead th")]
        col = header.index(sort.split(":")[0])
        values = [float(r.find_all("td")[col].get_text()) for r in doc.select("table.sweep-runs tbody tr")]
        assert values == sorted(values, reverse=descending), sort
    from nbtoolkit.errors import RunNotFoundError

    with pytest.raises(RunNotFoundError):
        write_sweep_report("nosuchsweep", tmp_path / "x.html", store=store)


def test_index_report_lists_experiments_with_offline_search(pair: tuple[Any, Any, Any], tmp_path: Path) -> None:
    import hashlib

    from nbtoolkit.report import write_index_report

    base, cand, store = pair
    doc = soup(write_index_report(tmp_path / "index.html"))
    sections = {s.find("h2").find("a").get_text(): s for s in doc.select("section.experiment")}
    assert set(sections) == {"churn-logreg", "churn-gbm"}
    gbm = sections["churn-gbm"]
    assert gbm.select_one(".hypothesis").get_text() == "boosting beats the linear baseline"
    assert gbm.select_one(".owner").get_text() == "bo"
    assert cand.verdict.status in gbm.find("h2").get_text()
    assert cand.run_id[:10] in gbm.get_text()
    data = json.loads(doc.select_one("#nbtk-search-data").string)
    assert len(data) == 2 and any("boosting" in d for d in data)
    scripts = [s for s in doc.find_all("script") if s.get("type") != "application/json"]
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].string.encode()).digest()).decode()
    csp = doc.find("meta", attrs={"http-equiv": "Content-Security-Policy"})["content"]
    assert f"script-src 'sha256-{digest}'" in csp
    assert not any(re.match(r"(?i)https?://", u) for u in resource_urls(doc))


def test_json_for_script_escapes_breakouts() -> None:
    from nbtoolkit.report.render import json_for_script

    text = json_for_script({"k": "</script><script>alert(1)</script>&\u2028\u2029"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == {"k": "</script><script>alert(1)</script>&\u2028\u2029"}


def test_sanitizer_makes_outputs_inert() -> None:
    from nbtoolkit.report.sanitize import clean_html, make_inert

    dirty = ('<div onclick="alert(1)">ok<script>alert(2)</script><img src=x onerror=alert(3)>'
             '<a href="javascript:alert(4)">j</a><a href="https://example.org/">fine</a>'
             '<img src="https://example.org/t.png"><svg onload="alert(5)"></svg>'
             '<iframe src="https://example.org"></iframe><style>*{background:url(http://e/)}</style></div>')
    clean = soup(clean_html(dirty))
    assert clean.find("script") is None and clean.find("svg") is None and clean.find("iframe") is None
    assert clean.find("style") is None
    assert not [a for el in clean.find_all(True) for a in el.attrs if a.startswith("on")]
    assert [img.get("src") for img in clean.find_all("img")] == [None, None]
    assert [a.get("href") for a in clean.find_all("a")] == [None, "https://example.org/"]
    nb = executed_notebook()
    nb.cells[1].outputs.append(nbformat.v4.new_output(
        "display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "m"}, "text/plain": "IntSlider(value=3)"}))
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    inert = make_inert(nb)
    datas = [o.get("data", {}) for o in inert.cells[1].outputs]
    assert not any(k for d in datas for k in d if "javascript" in k or "widget" in k or k == "image/svg+xml")
    assert "widgets" not in inert.metadata
    assert "IntSlider(value=3)" in datas[-1]["text/plain"]
    assert nb.cells[1].outputs[1]["data"].get("application/javascript")  # the input is not changed


def test_cli_report_modes_and_errors(pair: tuple[Any, Any, Any], project: Path) -> None:
    base, cand, store = pair
    r = nbtk_cli("report", cand.run_id[:10], "-o", "run.html", cwd=project)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()).name == "run.html"
    html = (project / "run.html").read_text(encoding="utf-8")
    assert "boosting beats" in html
    assert "nb-output-marker" in soup(html).select_one("details.notebook").get_text()  # forked render
    r = nbtk_cli("report", base.run_id, cand.run_id, "-o", "cmp.html", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "What changed" in (project / "cmp.html").read_text(encoding="utf-8")
    r = nbtk_cli("report", "-o", "x.html", cwd=project)
    assert r.returncode == 2 and "exactly one" in r.stderr
    r = nbtk_cli("report", "ffffffffffff", "-o", "x.html", cwd=project)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("Error:")
    assert not (project / "x.html").exists()


def test_templates_ship_and_compile() -> None:
    from nbtoolkit._resources import templates_dir
    from nbtoolkit.report.render import environment

    folder = templates_dir()
    names = {p.name for p in folder.glob("report_*.j2")}
    assert {"report_base.html.j2", "report_run.html.j2", "report_comparison.html.j2",
            "report_sweep.html.j2", "report_index.html.j2"} <= names
    env = environment()
    assert env.autoescape is True
    for name in names:
        env.get_template(name)  # raises on a syntax error
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8")
    assert '"templates" = "nbtoolkit/templates"' in pyproject  # the wheel carries them


def test_report_modules_import_nothing_heavy() -> None:
    import subprocess
    import sys

    code = ("import sys, nbtoolkit as n, nbtoolkit.report, nbtoolkit.stats; n.compare; "
            "print(sorted(m for m in ('numpy', 'scipy', 'matplotlib', 'jinja2', 'nbconvert', 'nh3', "
            "'nbformat', 'pandas', 'sqlalchemy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_report_of_a_damaged_stored_declaration_shows_what_was_stored(store: Any) -> None:
    from nbtoolkit.report import render_run_report

    damaged = {"experiment": "old-exp", "hypothesis": "<b>kept</b> as stored", "owner": "ana",
               "success": ["acc >>= 0.9"], "until": "soon", "legacy_note": "from v0.1"}
    run_id = store.create_run(experiment="old-exp", declaration=damaged)
    store.finish_run(run_id, status="finished", verdict="supported", verdict_detail={"criteria": []})
    doc = soup(render_run_report(run_id))
    assert doc.select_one(".hypothesis").get_text() == "<b>kept</b> as stored"  # escaped text, no markup
    assert doc.select_one(".owner").get_text() == "ana" and doc.select_one(".hypothesis b") is None
    # the unreadable criteria are not re-evaluated: the stored verdict column is what is shown
    banner = doc.select_one(".verdict-banner").get_text()
    assert banner.startswith("Verdict: supported") and "no criteria results were stored" in banner
    assert "No success criteria were declared" in doc.get_text()
