"""``nbtk approve / export / verify`` exit codes, DVC, and the demo handoff loaded in a fresh process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import ROOT, execute_notebook, nbtk_cli


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``nbtk ARGS`` in this process (click's runner): same exit codes, no interpreter start-up."""
    from click.testing import CliRunner

    from nbtoolkit.cli import cli as group

    result = CliRunner().invoke(group, list(args), obj={})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


def make_run(experiment: str = "cli-tree", success: str = "accuracy >= 0.5") -> str:
    from sklearn.datasets import load_breast_cancer
    from sklearn.tree import DecisionTreeClassifier

    import nbtoolkit as nbtk

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    with nbtk.start_run(experiment, success=success, hypothesis="trees work", scope="tests") as run:
        model = DecisionTreeClassifier(max_depth=2, random_state=0).fit(X, y)
        nbtk.log(accuracy=float(model.score(X, y)))
        nbtk.log_model(model, sample_input=X[:3])
    return run.run_id


def test_cli_approve_export_verify_exit_codes(project: Path, store: Any) -> None:
    run_id = make_run()
    rejected = make_run(success="accuracy >= 2")

    refused = nbtk_cli("export", rejected[:8], "--model", "m", "-o", "b")
    assert refused.returncode == 1, refused.stderr
    assert "supported:" in refused.stderr and "approved:" in refused.stderr and "Traceback" not in refused.stderr
    assert "nbtk approve" in refused.stderr and "--force --reason" in refused.stderr

    blank = nbtk_cli("approve", run_id, "--by", "  ")
    assert blank.returncode == 2 and blank.stderr.startswith("Error: An approval needs a reviewer name")
    for args in (
        ("approve", run_id),  # --by missing
        ("approve", "ffffffff", "--by", "rita"),
        ("export", "ffffffff", "--model", "m", "-o", "b"),
        ("export", rejected, "--model", "m", "-o", "b", "--force"),  # no --reason
        ("export", run_id, "--model", "../m", "-o", "b"),
        ("verify", "does-not-exist"),
    ):
        proc = cli(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.strip(), args

    ok = cli("approve", run_id[:8], "--by", "rita", "--note", "LGTM")
    assert ok.returncode == 0 and f"Approved run {run_id[:8]} by rita" in ok.stdout
    assert [(a.by, a.note) for a in store.get_run(run_id).approvals] == [("rita", "LGTM")]

    exported = nbtk_cli("export", run_id[:8], "--model", "m", "-o", "b")
    assert exported.returncode == 0, exported.stderr
    bundle = project / "b" / "m-0.1.0"
    assert "Exported m 0.1.0 (" in exported.stdout and str(bundle) in exported.stdout
    again = cli("export", run_id, "--model", "m", "-o", "b", "--archive")
    assert again.returncode == 2 and f"Run {run_id[:8]} is already exported as m 0.1.0" in again.stderr
    assert "--new-version" in again.stderr and not (project / "b" / "m-0.1.1.tar.gz").exists()
    archived = cli("export", run_id, "--model", "m", "-o", "b", "--archive", "--new-version")
    assert archived.returncode == 0 and (project / "b" / "m-0.1.1.tar.gz").is_file()
    forced = cli("export", rejected, "--model", "m", "-o", "b", "--force", "--reason", "demo day")
    assert forced.returncode == 0 and "FORCED export, reason: demo day" in forced.stderr
    assert "unmet gate: supported" in forced.stderr

    for path in (bundle, project / "b" / "m-0.1.1.tar.gz"):
        proc = cli("verify", str(path))
        assert proc.returncode == 0 and proc.stdout.startswith("OK: ") and "m 0.1." in proc.stdout
    (bundle / "requirements.txt").write_text("evil==1.0\n")
    bad = nbtk_cli("verify", str(bundle))
    assert bad.returncode == 1 and "requirements.txt: changed" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_export_dvc(project: Path, store: Any, tmp_path: Path) -> None:
    run_id = make_run()
    cli("approve", run_id, "--by", "rita")
    outside = cli("export", run_id, "--model", "m", "-o", "b", "--dvc")
    assert outside.returncode == 2 and "needs a DVC repository" in outside.stderr and "dvc init" in outside.stderr
    assert not (project / "b").exists()

    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=project, check=True, capture_output=True)
    proc = cli("export", run_id, "--model", "m", "-o", "b", "--dvc")
    assert proc.returncode == 0, proc.stderr
    dvc_file = project / "b" / "m-0.1.0.dvc"
    assert f"DVC: {dvc_file}" in proc.stdout
    import yaml

    outs = yaml.safe_load(dvc_file.read_text())["outs"]
    assert outs[0]["path"] == "m-0.1.0" and outs[0]["md5"].endswith(".dir") and outs[0]["nfiles"] >= 8
    assert "/m-0.1.0" in (project / "b" / ".gitignore").read_text()
    assert cli("verify", str(project / "b" / "m-0.1.0")).returncode == 0

    elsewhere = cli("export", run_id, "--model", "m", "-o", str(tmp_path / "out"), "--dvc")
    assert elsewhere.returncode == 2 and "outside the DVC repository" in elsewhere.stderr


LOAD_AND_PREDICT = """
import json, sys
import nbtoolkit as nbtk
from sklearn.datasets import load_breast_cancer
X = load_breast_cancer(as_frame=True).data
bundle = nbtk.load_bundle(sys.argv[1])
try:
    bundle.predict(X.drop(columns=["mean radius"]))
    refused = None
except nbtk.NbToolkitError as exc:
    refused = str(exc)
print(json.dumps({
    "pred": bundle.predict(X[:40]).tolist(), "model": bundle.name, "version": bundle.version,
    "run_id": bundle.run_id, "refused": refused,
    "store_imported": "nbtoolkit.store" in sys.modules, "sqlalchemy_imported": "sqlalchemy" in sys.modules,
}))
"""


def test_demo_challenger_exported_and_loaded_in_a_fresh_process(
    project: Path, store: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    import nbtoolkit as nbtk

    for name in ("baseline_logreg.ipynb", "challenger_gbm.ipynb"):
        shutil.copy(ROOT / "notebooks" / name, project / name)
        monkeypatch.setenv("NBTOOLKIT_NOTEBOOK", str(project / name))
        execute_notebook(project / name, cwd=project, timeout=300)
    challenger = store.latest_run("cancer-gbm")
    assert challenger is not None
    record = store.get_run(challenger)
    assert record.status == "finished" and record.baseline_run_id == store.latest_run("cancer-logreg")
    nbtk.approve(challenger, by="lead", note="demo review")
    forced = record.verdict != "supported"  # a bootstrap interval may straddle the bar
    result = nbtk.export_bundle(
        challenger, model="cancer-gbm", out_dir=project / "bundles", force=forced,
        reason="demo run is inconclusive" if forced else None,
    )
    manifest = result.manifest
    assert manifest["experiment"] == "cancer-gbm" and manifest["forced"] is forced
    names = {f["path"] for f in manifest["files"]}
    assert {"model/model.skops", "signature.json", "notebook.ipynb", "model_card.md", "requirements.txt"} <= names
    card = (result.path / "model_card.md").read_text()
    assert "Gradient boosting keeps ROC AUC" in card and "no feature engineering" in card and "lead" in card
    assert "roc_auc &gt;= baseline.roc_auc - 0.03" in card or "roc_auc >= baseline.roc_auc - 0.03" in card

    fresh = tmp_path / "elsewhere"
    fresh.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBTOOLKIT_")}
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_AND_PREDICT, str(result.path)], cwd=fresh, env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["model"], out["version"], out["run_id"]) == ("cancer-gbm", "0.1.0", challenger)
    assert out["refused"] and "missing columns: 'mean radius'" in out["refused"]
    assert not out["store_imported"] and not out["sqlalchemy_imported"]
    assert list(fresh.iterdir()) == []  # no store was created

    import skops.io as sio
    from sklearn.datasets import load_breast_cancer

    blob = store.artifacts.path_for(record.artifact("model").digest)
    original = sio.load(blob, trusted=sio.get_untrusted_types(file=blob))
    assert out["pred"] == original.predict(load_breast_cancer(as_frame=True).data[:40]).tolist()
