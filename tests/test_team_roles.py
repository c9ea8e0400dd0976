"""Team roles on a shared PostgreSQL store: what a reviewer with only read rights can do, and the
clear refusal (no traceback, nothing lost) when such a role tries to write; granting INSERT on
approvals and comments is all a reviewer role needs (README "Team set-up", the roles table).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from _servers import PostgresServer
from conftest import nbtk_cli

import nbtoolkit as nbtk


def test_read_only_reviewer_and_reviewer_role(project: Path, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    url = postgres.new_database()
    database = url.rsplit("/", 1)[1]
    monkeypatch.setenv("NBTOOLKIT_STORE", url)
    monkeypatch.setenv("NBTOOLKIT_ARTIFACTS", str(project / "team-blobs"))
    (project / "notes.txt").write_text("notes for the reviewer")
    with nbtk.start_run("roles", params={"lr": 0.1}) as run:  # the data scientist (owner of the tables)
        nbtk.log(accuracy=0.91)
        nbtk.log_artifact(project / "notes.txt")

    role = f"reviewer_{uuid.uuid4().hex[:8]}"
    postgres.admin(f"CREATE ROLE {role} LOGIN")
    postgres.admin(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}", database=database)
    as_reviewer = {"NBTOOLKIT_STORE": url.replace("//postgres@", f"//{role}@")}

    listed = nbtk_cli("runs", "--json", cwd=project, env=as_reviewer)
    assert listed.returncode == 0, listed.stderr
    assert [(r["run_id"], r["metrics"]["accuracy"]) for r in json.loads(listed.stdout)] == [(run.run_id, 0.91)]
    shown = nbtk_cli("show", run.run_id, cwd=project, env=as_reviewer)
    assert shown.returncode == 0 and "notes.txt" in shown.stdout, shown.stderr
    report = nbtk_cli("report", run.run_id, "-o", "review.html", cwd=project, env=as_reviewer)
    assert report.returncode == 0, report.stderr
    assert run.run_id[:8] in (project / "review.html").read_text(encoding="utf-8")

    # a write with read rights only: one clear line naming the refusal, nothing recorded or lost
    refused = nbtk_cli("approve", run.run_id, "--by", "rita", cwd=project, env=as_reviewer)
    assert refused.returncode == 1
    assert "refused the operation (permission denied for table approvals)" in refused.stderr
    assert "Traceback" not in refused.stderr and role in refused.stderr and "nbtk store check" in refused.stderr
    from nbtoolkit.store import open_store

    store = open_store()
    assert store.get_run(run.run_id).approvals == () and store.get_run(run.run_id).metrics["accuracy"] == 0.91

    # the reviewer role: INSERT on approvals and comments (and their id sequences)
    postgres.admin(f"GRANT INSERT ON approvals, comments TO {role}", database=database)
    postgres.admin(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}", database=database)
    approved = nbtk_cli("approve", run.run_id, "--by", "rita", cwd=project, env=as_reviewer)
    assert approved.returncode == 0, approved.stderr
    commented = nbtk_cli("comment", run.run_id, "--by", "rita", "--text", "looks right", "--rating", "4", cwd=project, env=as_reviewer)
    assert commented.returncode == 0, commented.stderr
    assert [a.by for a in store.get_run(run.run_id).approvals] == ["rita"]
    listed_comments = nbtk_cli("comment", "--list", run.run_id, cwd=project, env=as_reviewer)
    assert "looks right" in listed_comments.stdout, listed_comments.stderr
