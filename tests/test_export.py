"""Export: bundle layout, manifest, model card, requirements, gates, forced overrides, approvals."""

from __future__ import annotations

import hashlib
import json
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

HYPOTHESIS = "A shallow tree separates malignant from benign tumours."
SCOPE = "breast-cancer data set, all 30 features"


@lru_cache(maxsize=1)
def cancer() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    return data.data, data.target


def make_run(
    *, experiment: str = "cancer-tree", success: str = "accuracy >= 0.5", fail: bool = False,
    serializer: str = "skops", sample: bool = True, hypothesis: str = HYPOTHESIS, data_file: Path | None = None,
) -> str:
    """Record a finished (or failed) run with a small skops model and return its id."""
    from sklearn.tree import DecisionTreeClassifier

    import nbtoolkit as nbtk

    X, y = cancer()
    run_id = ""
    try:
        with nbtk.start_run(experiment, hypothesis=hypothesis, success=success, scope=SCOPE, owner="ana") as run:
            run_id = run.run_id
            if data_file is not None:
                nbtk.track_data(data_file)
            model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
            nbtk.log(accuracy=float(model.score(X, y)))
            nbtk.log_model(model, sample_input=X[:5] if sample else None, serializer=serializer)
            if fail:
                raise RuntimeError("boom")
    except RuntimeError:
        assert fail
    return run_id


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_rows(store: Any) -> list[dict[str, Any]]:
    from nbtoolkit.export.bundle import exports_of

    return exports_of(store)


def test_export_builds_the_bundle_and_records_it(project: Path, store: Any) -> None:
    import numpy
    import yaml

    import nbtoolkit as nbtk

    (project / "train.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    run_id = make_run(data_file=project / "train.csv")
    approval = nbtk.approve(run_id[:8], by="rita", note="checked the <confusion> matrix")
    assert approval.by == "rita" and abs(approval.created - time.time()) < 60

    result = nbtk.export_bundle(run_id, model="cancer-tree", out_dir="bundles")
    bundle = project / "bundles" / "cancer-tree-0.1.0"
    assert result.path == bundle and result.path.is_absolute() and result.version == "0.1.0" and not result.forced
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    required = {"MANIFEST.json", "model/model.skops", "signature.json", "model_card.md", "model_card.html",
                "requirements.txt", "environment.yml"}
    assert required <= names
    assert not [p for p in (project / "bundles").iterdir() if p.name.startswith(".")], "temporary build folder left"

    manifest = json.loads((bundle / "MANIFEST.json").read_text())
    assert manifest["schema"] == "nbtoolkit.bundle.v1"
    assert (manifest["run_id"], manifest["experiment"], manifest["model"], manifest["version"]) == (
        run_id, "cancer-tree", "cancer-tree", "0.1.0")
    assert manifest["nbtoolkit_version"] == nbtk.__version__ and manifest["created"].startswith("20")
    assert manifest["forced"] is False and manifest["reason"] is None and manifest["unmet_gates"] == []
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == names - {"MANIFEST.json"}
    for name, entry in listed.items():
        assert entry["sha256"] == sha256(bundle / name) and entry["size"] == (bundle / name).stat().st_size
    assert manifest["model_file"]["file"] == "model/model.skops" and manifest["model_file"]["safe"] is True
    assert manifest["model_file"]["untrusted_types"] == ["sklearn.tree._tree.Tree"]

    X, _ = cancer()
    signature = json.loads((bundle / "signature.json").read_text())
    assert signature["kind"] == "dataframe"
    assert [c["name"] for c in signature["columns"]] == list(X.columns)
    assert {c["dtype"] for c in signature["columns"]} == {"float64"}

    reqs = (bundle / "requirements.txt").read_text().splitlines()
    assert f"numpy=={numpy.__version__}" in reqs
    assert any(line.startswith("scikit-learn==") for line in reqs)
    assert any(line.startswith("# nbtoolkit==") and "skipped" in line for line in reqs)  # editable install
    env = yaml.safe_load((bundle / "environment.yml").read_text())
    assert env["dependencies"][0].startswith("python=3.")
    assert f"numpy=={numpy.__version__}" in env["dependencies"][-1]["pip"]

    card = (bundle / "model_card.md").read_text()
    for text in (HYPOTHESIS, SCOPE, "accuracy", "rita", "checked the &lt;confusion&gt; matrix", "train.csv",
                 "None: every export gate was met"):
        assert text in card, text

    (row,) = export_rows(store)
    assert (row["run_id"], row["model"], row["version"], row["path"]) == (run_id, "cancer-tree", "0.1.0", str(bundle))
    assert row["forced"] == 0 and row["reason"] is None and abs(row["created"] - time.time()) < 60
    assert row["manifest_sha256"] == sha256(bundle / "MANIFEST.json")

    from nbtoolkit.errors import InputError

    # versions: the same run again needs new_version (the message names the version holding it),
    # then next patch by default, explicit versions, no overwriting
    with pytest.raises(InputError, match=r"already exported as cancer-tree 0\.1\.0 .*--new-version"):
        nbtk.export_bundle(run_id, model="cancer-tree", out_dir="bundles")
    assert nbtk.export_bundle(run_id, model="cancer-tree", out_dir="bundles", new_version=True).version == "0.1.1"
    assert nbtk.export_bundle(run_id, model="cancer-tree", out_dir="bundles", version="2.0.0").version == "2.0.0"
    assert nbtk.export_bundle(run_id, model="cancer-tree", out_dir="bundles", new_version=True).version == "2.0.1"
    assert nbtk.export_bundle(run_id, model="other", out_dir="bundles").version == "0.1.0"
    with pytest.raises(InputError, match="already exported"):
        nbtk.export_bundle(run_id, model="cancer-tree", out_dir="bundles", version="2.0.0")
    assert [r["version"] for r in export_rows(store) if r["model"] == "cancer-tree"] == ["0.1.0", "0.1.1", "2.0.0", "2.0.1"]


def test_report_html_is_the_run_report(project: Path, store: Any) -> None:
    pytest.importorskip("nbtoolkit.report")
    import nbtoolkit as nbtk

    run_id = make_run()
    nbtk.approve(run_id, by="rita")
    bundle = nbtk.export_bundle(run_id, model="m", out_dir="b").path
    report = (bundle / "report.html").read_text()
    assert report.lstrip().lower().startswith("<!doctype html") and run_id[:8] in report and HYPOTHESIS in report
    assert "rita" in report  # approvals are shown in the report too
    assert "report.html" in {f["path"] for f in json.loads((bundle / "MANIFEST.json").read_text())["files"]}


def test_model_card_shows_intervals_and_escapes_run_content(project: Path, store: Any) -> None:
    from bs4 import BeautifulSoup

    import nbtoolkit as nbtk

    evil = "Trees win <script>alert(1)</script> <img src=x onerror=alert(2)>"
    run_id = make_run(hypothesis=evil, sample=False)
    detail = store.get_run(run_id).verdict_detail.to_dict()
    detail["results"][0]["interval"] = {"low": -0.02304, "high": 3.521e-06, "level": 0.95, "method": "bootstrap",
                                        "n_resamples": 1000}  # a tiny bound once read 3.521e-06
    store.update_run(run_id, verdict_detail=detail)
    nbtk.approve(run_id, by="<b>mallory</b>", note="ok")
    bundle = nbtk.export_bundle(run_id, model="m", out_dir="b").path

    md = (bundle / "model_card.md").read_text()
    observed = store.get_run(run_id).metrics["accuracy"]
    wanted = [f"{observed:.4f}", "95% bootstrap interval [-0.0230, +0.0000]", "pass"]  # the helper's digits
    md_row = next(ln for ln in md.splitlines() if ln.startswith("| `accuracy >= 0.5`"))
    md_cells = [c.strip() for c in md_row.strip("|").split("|")]
    assert [md_cells[1], md_cells[4], md_cells[5]] == wanted and "e-0" not in md_row
    assert "<script>" not in md and "&lt;script&gt;" in md and "<b>" not in md
    assert "Unknown: no sample input was logged" in md  # signature kind 'unknown' noted

    page = (bundle / "model_card.html").read_text()
    soup = BeautifulSoup(page, "html.parser")
    assert soup.find("script") is None and soup.find("img") is None and soup.find("b") is None
    assert evil in soup.find(id="hypothesis").get_text()
    assert SCOPE in soup.find(id="intended-use").get_text()
    html_cells = [td.get_text() for td in soup.find(id="criteria").select("tbody tr")[0].select("td")]
    assert [html_cells[1], html_cells[4], html_cells[5]] == wanted
    logged = {tr.select("td")[0].get_text(): tr.select("td")[1].get_text() for tr in soup.select("#metrics tbody tr")}
    assert logged["accuracy"] == wanted[0]  # the logged-metrics table agrees with the criteria table
    assert "<b>mallory</b>" in soup.find(id="approvals").get_text()
    assert json.loads((bundle / "signature.json").read_text())["kind"] == "unknown"


def test_gates_refuse_one_by_one(project: Path, store: Any) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.errors import GateError

    def unmet(run_id: str) -> list[str]:
        with pytest.raises(GateError) as info:
            nbtk.export_bundle(run_id, model="m", out_dir="b")
        assert info.value.exit_code == 1
        return info.value.unmet

    not_approved = make_run()
    (gate,) = unmet(not_approved)
    assert gate.startswith("approved:") and f"nbtk approve {not_approved[:8]} --by NAME" in gate

    rejected = make_run(success="accuracy >= 2")
    nbtk.approve(rejected, by="rita")
    (gate,) = unmet(rejected)
    assert gate.startswith("supported:") and "'rejected'" in gate

    failed = make_run(fail=True)
    nbtk.approve(failed, by="rita")
    gates = unmet(failed)
    assert [g.split(":")[0] for g in gates][0] == "finished" and "'failed'" in gates[0]

    # require_reproduced = true adds the reproduction gate
    (project / "pyproject.toml").write_text(
        '[project]\nname = "p"\nversion = "0"\n\n[tool.nbtoolkit.export]\nrequire_reproduced = true\n', encoding="utf-8")
    vetted = make_run()
    nbtk.approve(vetted, by="rita")
    (gate,) = unmet(vetted)
    assert gate.startswith("reproduced:") and f"nbtk reproduce {vetted[:8]}" in gate
    store.merge_extra(vetted, {"reproduction": {"result": "drifted"}})
    (gate,) = unmet(vetted)
    assert "'drifted'" in gate
    store.merge_extra(vetted, {"reproduction": {"result": "reproduced"}})
    assert nbtk.export_bundle(vetted, model="m", out_dir="b").forced is False

    # every unmet gate at once, each with how to meet it
    worst = make_run(success="accuracy >= 2", fail=True)
    with pytest.raises(GateError) as info:
        nbtk.export_bundle(worst, model="m", out_dir="b")
    assert [g.split(":")[0] for g in info.value.unmet] == ["finished", "supported", "approved", "reproduced"]
    message = str(info.value)
    assert "nbtk approve" in message and "nbtk reproduce" in message and "--force --reason" in message
    assert not (project / "b" / "m-0.1.1").exists()


def test_forced_export_is_recorded_everywhere(project: Path, store: Any) -> None:
    from bs4 import BeautifulSoup

    import nbtoolkit as nbtk
    from nbtoolkit.errors import InputError

    run_id = make_run(success="accuracy >= 2")
    with pytest.raises(InputError, match="--reason"):
        nbtk.export_bundle(run_id, model="m", out_dir="b", force=True)
    with pytest.raises(InputError, match="--force"):
        nbtk.export_bundle(run_id, model="m", out_dir="b", reason="why not")
    reason = "hotfix for incident INC-42 <urgent>"
    result = nbtk.export_bundle(run_id, model="m", out_dir="b", force=True, reason=reason)
    assert result.forced
    manifest = json.loads((result.path / "MANIFEST.json").read_text())
    assert manifest["forced"] is True and manifest["reason"] == reason
    assert [g.split(":")[0] for g in manifest["unmet_gates"]] == ["supported", "approved"]
    (row,) = export_rows(store)
    assert row["forced"] == 1 and row["reason"] == reason
    assert [g.split(":")[0] for g in json.loads(row["extra"])["unmet_gates"]] == ["supported", "approved"]
    md = (result.path / "model_card.md").read_text()
    assert "Forced export" in md and "hotfix for incident INC-42 &lt;urgent&gt;" in md and "unmet gate: supported" in md
    soup = BeautifulSoup((result.path / "model_card.html").read_text(), "html.parser")
    assert reason in soup.find(id="forced-override").get_text() and reason in soup.find(id="overrides").get_text()
    assert nbtk.verify_bundle(result.path).manifest["forced"] is True


def test_approve_refuses_empty_reviewer_and_running_runs(project: Path, store: Any) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.errors import InputError, RunNotFoundError

    run_id = make_run()
    for by in ("", "   "):
        with pytest.raises(InputError, match="--by"):
            nbtk.approve(run_id, by=by)
    with pytest.raises(RunNotFoundError):
        nbtk.approve("ffffffff", by="rita")
    with nbtk.start_run("live") as live:
        with pytest.raises(InputError, match="still running"):
            nbtk.approve(live.run_id, by="rita")
    nbtk.approve(run_id, by="rita", note="first")
    nbtk.approve(run_id, by="sam")
    assert [(a.by, a.note) for a in store.get_run(run_id).approvals] == [("rita", "first"), ("sam", "")]


def test_notebook_artifact_release_plan_and_secrets(project: Path, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat

    import nbtoolkit as nbtk

    monkeypatch.setenv("MY_SERVICE_TOKEN", "s3cr3t-value-123456")
    run_id = make_run()
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(url)")
    cell.outputs = [nbformat.v4.new_output("stream", text="https://bob:hunter22@example.com/x s3cr3t-value-123456\n")]
    nb.cells.append(cell)
    digest, size = store.artifacts.put_bytes(nbformat.writes(nb).encode())
    store.add_artifact(run_id, name="notebook", kind="notebook", digest=digest, size=size, media_type="application/x-ipynb+json")
    nbtk.approve(run_id, by="rita")
    release = {"canary": [{"percent": 5, "minutes": 30}, {"percent": 50, "minutes": 60}], "rollback": "m@0.0.9"}
    result = nbtk.export_bundle(run_id, model="m", out_dir="b", release=release)
    text = (result.path / "notebook.ipynb").read_text()
    assert "print(url)" in text and "hunter22" not in text and "s3cr3t-value-123456" not in text
    nbformat.validate(nbformat.reads(text, as_version=4))
    listed = {f["path"]: f["sha256"] for f in result.manifest["files"]}
    assert listed["release.json"] == sha256(result.path / "release.json")
    assert listed["notebook.ipynb"] == sha256(result.path / "notebook.ipynb")
    assert nbtk.load_bundle(result.path).release == release
    for path in result.path.rglob("*"):
        if path.is_file() and path.suffix != ".skops":
            assert "s3cr3t-value-123456" not in path.read_text(), path


def test_requirements_pin_vcs_skip_local_and_redact() -> None:
    from nbtoolkit.export.requirements import requirements_lines
    from nbtoolkit.redact import Redactor

    lock = {"packages": {
        "numpy": {"version": "2.0.0", "origin": "index", "url": None, "commit": None},
        "mylib": {"version": "1.2", "origin": "vcs", "url": "https://user:tok3n-abc@github.com/o/mylib.git", "commit": "abc123"},
        "localpkg": {"version": "0.1", "origin": "editable", "url": "file:///home/me/localpkg", "commit": None},
        "wheelpkg": {"version": "3.0", "origin": "url", "url": "https://files.example.com/wheelpkg-3.0.whl?token=zzzsecret", "commit": None},
        "leaky": {"version": "1.0", "origin": "index", "url": None, "commit": None},
    }}
    redactor = Redactor(environ={"PRIVATE_TOKEN": "supersecret42"})
    lock["packages"]["leaky"]["version"] = "supersecret42"
    lines = requirements_lines(lock, redactor=redactor, run_id="r1")
    assert "numpy==2.0.0" in lines
    assert "mylib @ git+https://github.com/o/mylib.git@abc123" in lines
    assert any(line.startswith("# localpkg==0.1 skipped") for line in lines)
    assert not any(line.startswith("localpkg") for line in lines)
    text = "\n".join(lines)
    assert "tok3n-abc" not in text and "zzzsecret" not in text and "supersecret42" not in text
    assert "wheelpkg @ https://files.example.com/wheelpkg-3.0.whl" in text


def test_export_input_errors(project: Path, store: Any) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.errors import InputError, RunNotFoundError

    run_id = make_run()
    nbtk.approve(run_id, by="rita")
    for bad in ("../escape", "", "a/b", "-x"):
        with pytest.raises(InputError, match="Model name"):
            nbtk.export_bundle(run_id, model=bad, out_dir="b")
    with pytest.raises(InputError, match="Version"):
        nbtk.export_bundle(run_id, model="m", out_dir="b", version="latest")
    (project / "afile").write_text("x")
    with pytest.raises(InputError, match="is a file"):
        nbtk.export_bundle(run_id, model="m", out_dir="afile")
    with pytest.raises(RunNotFoundError):
        nbtk.export_bundle("abcdef12", model="m", out_dir="b")
    with nbtk.start_run("no-model", success="x >= 0") as run:
        nbtk.log(x=1)
    nbtk.approve(run.run_id, by="rita")
    with pytest.raises(InputError, match="no model artifact"):
        nbtk.export_bundle(run.run_id, model="m", out_dir="b")
    (project / "b" / "m-0.1.0").mkdir(parents=True)
    (project / "b" / "m-0.1.0" / "keep").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        nbtk.export_bundle(run_id, model="m", out_dir="b")
    assert (project / "b" / "m-0.1.0" / "keep").read_text() == "x"
    assert export_rows(store) == []


def test_sla_gate_refuses_a_breach_and_default_release_plan_is_written(project: Path, store: Any) -> None:
    import nbtoolkit as nbtk
    from nbtoolkit.errors import GateError

    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.nbtoolkit.sla]\n\"min.accuracy\" = 0.999\n", encoding="utf-8")
    run_id = make_run()
    nbtk.approve(run_id, by="rita")
    with pytest.raises(GateError) as info:
        nbtk.export_bundle(run_id, model="cancer-tree", out_dir="bundles")
    assert any(line.startswith("sla:") and "accuracy" in line for line in info.value.unmet)

    pyproject.write_text(pyproject.read_text().replace("0.999", "0.5"), encoding="utf-8")
    result = nbtk.export_bundle(run_id, model="cancer-tree", out_dir="bundles")
    plan = json.loads((result.path / "release.json").read_text())
    assert plan["schema"] == "nbtoolkit.release.v1"
    assert plan["steps"][-1] == 100 and plan["sla"]
    listed = {f["path"] for f in json.loads((result.path / "MANIFEST.json").read_text())["files"]}
    assert "release.json" in listed
