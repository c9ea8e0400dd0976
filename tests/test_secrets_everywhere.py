"""Planted secrets reach no sink: store, executed notebooks, reports, approvals, bundles, REST, CLI JSON.

One real end-to-end pass: a notebook run by ``nbtk run`` and ``nbtk sweep`` in real kernels prints
credentials from its environment and a token typed in code; credentials in URLs are typed into
``--owner``, the hypothesis and ``nbtk approve --by``; an installed distribution records VCS and
editable origins with userinfo. Then every byte written anywhere -- raw, gzip/zlib/zip-expanded
and in base64 -- is searched for every planted value.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from _lab import JupyterServer
from conftest import make_notebook, nbtk_cli

pytestmark = pytest.mark.slow

HF = "hf_PlantedHfTokenAbCdEfGhIjKlMnOp1234"
AWS = "PlantedAwsSecret/9f8e7d6c5b4a+3210zyx"
WANDB = "plantedwandbkey0123456789abcdef01234567"
DB_PW = "PlantedDbPassw0rd77"
PIP_PW = "PlantedPipIndexPass55"
OWNER_PW = "PlantedOwnerPass33"
HYPO_PW = "PlantedHypoPass44"
APPROVER_PW = "PlantedApproverPass66"
SK = "sk-PlantedOpenAiKeyQwErTy0123456789"
VCS_PW = "PlantedVcsDeployPass88"
EDITABLE_PW = "PlantedEditablePass99"
PLANTED = (HF, AWS, WANDB, DB_PW, PIP_PW, OWNER_PW, HYPO_PW, APPROVER_PW, SK, VCS_PW, EDITABLE_PW)

ENV = {
    "HF_TOKEN": HF,
    "AWS_SECRET_ACCESS_KEY": AWS,
    "WANDB_API_KEY": WANDB,
    "DATABASE_URL": f"postgres://dbuser:{DB_PW}@db.example.com:5432/prod",
    "PIP_INDEX_URL": f"https://__token__:{PIP_PW}@pypi.example.com/simple",
}

EXPERIMENT_CELL = f'''%%experiment planted --owner https://alice:{OWNER_PW}@git.example.com/team
"""
Hypothesis: data from https://bob:{HYPO_PW}@data.example.com/v1 keeps the score up.
Success: score >= 0
"""
import os
import pandas as pd
from sklearn.tree import DecisionTreeClassifier
import nbtoolkit as nbtk

for name in ("HF_TOKEN", "AWS_SECRET_ACCESS_KEY", "WANDB_API_KEY", "DATABASE_URL", "PIP_INDEX_URL"):
    print(name, "=", os.environ[name])
print(dict(os.environ))
print("typed key:", "sk-" + "PlantedOpenAiKey" + "QwErTy0123456789")
nbtk.log_params(key="user_id", author="ann", max_tokens=512, db=os.environ["DATABASE_URL"])
nbtk.set_tags(index=os.environ["PIP_INDEX_URL"])
frame = pd.DataFrame({{"a": [0.0, 1.0, 2.0, 3.0]}})
model = DecisionTreeClassifier(random_state=0).fit(frame, [0, 0, 1, 1])
nbtk.log_model(model, sample_input=frame[:2])
score = 1.0 + x
'''


def _fake_site(site: Path) -> None:
    """Two installed distributions whose recorded origins carry credentials."""
    for name, url, info in (
        ("vcspkg", f"https://deploy:{VCS_PW}@git.example.com/team/vcspkg.git",
         {"vcs_info": {"vcs": "git", "commit_id": "0" * 40}}),
        ("editpkg", f"file://me:{EDITABLE_PW}@localhost/src/editpkg", {"dir_info": {"editable": True}}),
    ):
        dist = site / f"{name}-1.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8")
        (dist / "RECORD").write_text("", encoding="utf-8")
        (dist / "direct_url.json").write_text(json.dumps({"url": url, **info}), encoding="utf-8")


def _base64_cores(secret: bytes) -> list[bytes]:
    """The base64 text of ``secret`` at each of the three byte alignments (context chars cut)."""
    cores = []
    for shift in range(3):
        enc = base64.b64encode(b"\0" * shift + secret)
        start, end = -(-8 * shift // 6), 8 * (shift + len(secret)) // 6
        cores.append(enc[start:end])
    return cores


def _expanded(data: bytes, depth: int = 0) -> Iterator[bytes]:
    """``data`` and, recursively, what it decompresses to (gzip, zlib, zip members)."""
    yield data
    if depth > 3:
        return
    inner: list[bytes] = []
    if data[:2] == b"\x1f\x8b":
        inner.append(gzip.decompress(data))
    elif data[:1] == b"\x78":
        try:
            inner.append(zlib.decompress(data))
        except zlib.error:
            pass
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            inner.extend(zf.read(n) for n in zf.namelist())
    for blob in inner:
        yield from _expanded(blob, depth + 1)


def _leaks(sinks: dict[str, bytes]) -> list[str]:
    found = []
    for secret in PLANTED:
        raw = secret.encode()
        forms = [raw, quote(secret, safe="").encode(), *_base64_cores(raw)]
        for where, data in sinks.items():
            if any(form in blob for blob in _expanded(data) for form in forms):
                found.append(f"{secret} in {where}")
    return found


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _ok(proc: object) -> str:
    assert proc.returncode == 0, (proc.args, proc.stdout, proc.stderr)  # type: ignore[attr-defined]
    return str(proc.stdout) + str(proc.stderr)  # type: ignore[attr-defined]


def test_planted_secrets_reach_no_sink(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    site = tmp_path / "site"
    _fake_site(site)
    import os

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    nb = make_notebook(project / "planted.ipynb", "%load_ext nbtoolkit", EXPERIMENT_CELL, parameters="x = 1")
    sinks: dict[str, bytes] = {}
    console: list[str] = []

    console.append(_ok(nbtk_cli("run", str(nb), "-o", str(project / "out.ipynb"), cwd=project)))
    sweep = nbtk_cli("sweep", str(nb), "--grid", "x=2", "--jobs", "1", cwd=project)
    console.append(_ok(sweep))
    sweep_id = re.search(r"sweep ([0-9a-f]{8,})", sweep.stdout)
    assert sweep_id, sweep.stdout

    from nbtoolkit.store import open_store

    store = open_store()
    rows, _, _ = store.query_runs()
    assert len(rows) == 2
    first, second = sorted(rows, key=lambda r: r["started"])
    a, b = first["run_id"], second["run_id"]
    rec = store.get_run(a)
    # the run is real and meaningful; ordinary names survive
    assert rec.verdict == "supported" and rec.params["key"] == "user_id" and rec.params["author"] == "ann"
    assert rec.params["max_tokens"] == 512 and rec.params["db"] == "postgres://db.example.com:5432/prod"
    assert rec.declaration.owner == "https://git.example.com/team"
    out_text = (project / "out.ipynb").read_text(encoding="utf-8")
    assert "HF_TOKEN = ***" in out_text and "typed key: ***" in out_text and "DATABASE_URL = postgres://db.example.com" in out_text

    reports = project / "reports"
    console.append(_ok(nbtk_cli("report", a, "-o", str(reports / "run.html"), cwd=project)))
    console.append(_ok(nbtk_cli("report", a, b, "-o", str(reports / "compare.html"), cwd=project)))
    console.append(_ok(nbtk_cli("report", "--sweep", sweep_id.group(1), "-o", str(reports / "sweep.html"), cwd=project)))
    console.append(_ok(nbtk_cli("report", "--index", "-o", str(reports / "index.html"), cwd=project)))
    run_html = (reports / "run.html").read_text(encoding="utf-8")
    assert re.search(r"\d+ secret values? masked as <code>\*\*\*</code>", run_html), "the report says text was redacted"
    assert "user_id" in run_html

    approved = nbtk_cli("approve", a, "--by", f"https://carol:{APPROVER_PW}@review.example.com", cwd=project)
    console.append(_ok(approved))
    assert "Approved run" in approved.stdout and "review.example.com" in approved.stdout
    console.append(_ok(nbtk_cli("export", a, "--model", "m", "-o", str(project / "bundles"), cwd=project)))
    console.append(_ok(nbtk_cli("export", a, "--model", "m", "-o", str(project / "bundles"), "--archive",
                                 "--new-version", cwd=project)))
    assert list((project / "bundles").glob("*.tar.gz")) and [p for p in (project / "bundles").iterdir() if p.is_dir()]

    shown = nbtk_cli("show", a, "--json", cwd=project)
    console.append(_ok(shown))
    shown_data = json.loads(shown.stdout)
    assert shown_data["params"]["key"] == "user_id" and shown_data["params"]["max_tokens"] == 512
    console.append(_ok(nbtk_cli("runs", "--json", cwd=project)))
    console.append(_ok(nbtk_cli("env", "show", a, "--json", cwd=project)))
    assert "vcspkg" in console[-1] and "editpkg" in console[-1]

    srv = JupyterServer(project, tmp_path / "jupyter", lab=False,
                        env={"NBTOOLKIT_STORE": str(project / ".nbtoolkit")}).start()
    try:
        for path in ("experiments", "runs", f"runs/{a}", f"runs/{b}", f"runs/{a}/report"):
            status, _, body = srv.request(f"/nbtoolkit/api/{path}")
            assert status == 200, (path, body[:300])
            sinks[f"REST {path}"] = body
    finally:
        srv.stop()

    import sqlite3

    with sqlite3.connect(store.db_path, isolation_level=None) as conn:  # WAL pages into the file too
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    sinks.update(_files(project / ".nbtoolkit"))
    sinks.update(_files(reports))
    sinks.update(_files(project / "bundles"))
    sinks["out.ipynb"] = (project / "out.ipynb").read_bytes()
    sinks["console"] = "\n".join(console).encode()
    assert len(sinks) > 20 and sum(map(len, sinks.values())) > 200_000
    assert any(p.endswith(".tar.gz") for p in sinks) and any("store.db" in p for p in sinks)

    # the scan itself finds a planted value where one is (it can fail)
    assert _leaks({"probe": gzip.compress(base64.b64encode(b"x" + HF.encode()))}) == [f"{HF} in probe"]
    assert _leaks(sinks) == []
