"""Build an export bundle from a vetted run (``nbtk export``).

Layout (DESIGN.md "Export bundle")::

    <model>-<version>/
      MANIFEST.json       every other file with sha256 and size; provenance; override
      model/<file>        the model as logged (skops preferred)
      signature.json      input schema from the logged sample input
      model_card.md|html  generated from the run
      report.html         the run's review report
      requirements.txt    pinned from the environment lock;  environment.yml
      notebook.ipynb      the executed notebook
      release.json        rollout plan, when the caller passes ``release=`` (canary stage)

The bundle is built in a hidden temporary folder next to the target and renamed into place,
so a reader never sees half a bundle; ``archive=True`` writes ``<model>-<version>.tar.gz``
the same way. Its archive (:mod:`nbtoolkit.export.archive`) is stored in the store's artifact
location *before* the bundle is published and the version recorded (``extra.blob``), so an
engineer on another machine resolving ``MODEL@ALIAS`` gets it from there
(:mod:`nbtoolkit.export.fetch`).

Bundles are immutable: nothing rewrites a manifest after export. A release plan therefore has
to be passed in at export time (``export_bundle(..., release={...})``), where it is hashed like
every other file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbtoolkit._format import iso
from nbtoolkit._io import new_dir_mode, sha256_bytes
from nbtoolkit._version import __version__
from nbtoolkit.config import Settings, load_settings
from nbtoolkit.envlock.written import record_written
from nbtoolkit.errors import HandoffError, InputError
from nbtoolkit.export.approvals import run_ref
from nbtoolkit.export.archive import write_archive
from nbtoolkit.export.gates import enforce_gates
from nbtoolkit.export.manifest import (
    MANIFEST_NAME,
    build_manifest,
    hash_tree,
    list_files,
    path_problem,
)
from nbtoolkit.export.model_card import card_context, render_model_card
from nbtoolkit.export.release import release_plan
from nbtoolkit.export.requirements import environment_yaml, requirements_lines
from nbtoolkit.html import coloured, esc
from nbtoolkit.redact import Redactor, default_redactor
from nbtoolkit.report import write_run_report
from nbtoolkit.store import ArtifactRef, RunRecord, Store, open_store
from nbtoolkit.store.models import BLOB_KEY, ModelVersion

__all__ = ["ExportResult", "export_bundle", "exports_of", "next_version"]

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]+)?$")
FIRST_VERSION = "0.1.0"
RELEASE_NAME = "release.json"


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_bundle` produced.

    Attributes:
        path: absolute path of the bundle folder (or ``.tar.gz`` with ``archive=True``).
        version: the version exported.
        manifest: the manifest written as ``MANIFEST.json``.
        forced: whether unmet gates were overridden.
        dvc_file: the ``.dvc`` file written by ``dvc add`` (``dvc=True``), else ``None``.
    """

    path: Path
    version: str
    manifest: dict[str, Any]
    forced: bool
    dvc_file: Path | None = field(default=None)

    def __repr__(self) -> str:
        forced = " FORCED" if self.forced else ""
        return f"<ExportResult {self.manifest.get('model')} {self.version}{forced} at {self.path}>"

    def _repr_html_(self) -> str:
        forced = " " + coloured(f"forced: {self.manifest.get('reason')}", "fail") if self.forced else ""
        return (
            f"<div>Exported <b>{esc(str(self.manifest.get('model')))} {esc(self.version)}</b> "
            f"({len(self.manifest.get('files', []))} files) to <code>{esc(str(self.path))}</code>{forced}</div>"
        )


def exports_of(store: Store, model: str | None = None) -> list[dict[str, Any]]:
    """Every recorded export (of ``model``), oldest first, as plain dicts (the ``exports`` columns)."""
    return [
        {
            "run_id": v.run_id, "model": v.model, "version": v.version, "path": v.path, "created": v.created,
            "manifest_sha256": v.manifest_sha256, "forced": int(v.forced), "reason": v.reason, "extra": json.dumps(v.extra),
        }
        for v in store.exports(model)
    ]


def _version_key(version: str) -> tuple[int, int, int] | None:
    m = VERSION.match(version)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def next_version(store: Store, model: str) -> str:
    """The next patch version of ``model`` (``0.1.0`` for a model never exported)."""
    keys = [k for v in store.exports(model) if (k := _version_key(v.version)) is not None]
    if not keys:
        return FIRST_VERSION
    major, minor, patch = max(keys)
    return f"{major}.{minor}.{patch + 1}"


def _model_artifact(record: RunRecord) -> ArtifactRef:
    models = record.artifacts_of("model")
    named = [a for a in models if a.name == "model"]
    if named:
        return named[0]
    if len(models) == 1:
        return models[0]
    if not models:
        raise InputError(
            f"Run {record.run_id[:8]} has no model artifact; log one with nbtk.log_model(model, sample_input=X[:5])."
        )
    raise InputError(
        f"Run {record.run_id[:8]} has several model artifacts ({', '.join(a.name for a in models)}) and none is "
        "called 'model'; log the one to hand off as nbtk.log_model(model, 'model', ...)."
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def _fsync_tree(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _notebook_bytes(record: RunRecord, store: Store, redactor: Redactor) -> tuple[bytes | None, str]:
    """The executed notebook (artifact 'notebook', else the run's notebook file), redacted."""
    art = record.artifact("notebook") or next(iter(record.artifacts_of("notebook")), None)
    raw: bytes | None = None
    source = ""
    if art is not None:
        raw, source = store.artifacts.read_bytes(art.digest), f"artifact {art.name!r}"
    elif record.notebook_path and Path(record.notebook_path).is_file():
        raw, source = Path(record.notebook_path).read_bytes(), f"file {record.notebook_path}"
    if raw is None:
        return None, "no executed notebook was recorded for the run (notebook.ipynb omitted)"
    try:
        nb = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, f"the run's notebook ({source}) is not valid JSON (notebook.ipynb omitted)"
    clean = redactor.redact_obj(nb, mask_secret_keys=False)
    return (json.dumps(clean, indent=1, ensure_ascii=False) + "\n").encode("utf-8"), ""


def _write_report(record: RunRecord, path: Path, store: Store, redactor: Redactor) -> None:
    write_run_report(record, path, store=store)
    # Defence in depth: the report embeds notebook outputs; no secret may leave in a bundle.
    text = path.read_text(encoding="utf-8")
    clean = redactor.redact_text(text)
    if clean != text:
        _write(path, clean)


def _untrusted(model_file: Path, serializer: str) -> list[str]:
    if serializer != "skops":
        return []
    from nbtoolkit.serializers import SERIALIZERS

    ser: Any = SERIALIZERS.get("skops")
    return sorted(ser.untrusted_types(model_file))


def _check_dvc(settings: Settings, out_dir: Path) -> Path:
    root = Path(settings.root).resolve()
    if not (root / ".dvc").is_dir():
        raise InputError(
            f"--dvc needs a DVC repository, but {root} has no .dvc/ folder; run `dvc init` there or drop --dvc."
        )
    if not out_dir.resolve().is_relative_to(root):
        raise InputError(f"--dvc: the output folder {out_dir} is outside the DVC repository {root}; export inside it.")
    return root


def _dvc_add(root: Path, target: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "add", str(target)], cwd=root, capture_output=True, text=True, timeout=600
    )
    dvc_file = target.with_name(target.name + ".dvc")
    if proc.returncode != 0 or not dvc_file.is_file():
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise HandoffError(
            f"`dvc add {target}` failed ({detail[-1] if detail else f'exit {proc.returncode}'}); the bundle is "
            "exported and recorded; fix DVC and run `dvc add` on it by hand."
        )
    return dvc_file


@dataclass(frozen=True)
class _Plan:
    """A checked export: what to build from which run, where, and the gates it passed or overrode."""

    record: RunRecord
    model: str
    version: str
    target: Path
    bundle_name: str
    artifact: ArtifactRef
    unmet: list[str]
    force: bool
    reason: str | None
    archive: bool
    release: Mapping[str, Any] | None
    dvc_root: Path | None
    redactor: Redactor


def _check_not_exported(store: Store, record: RunRecord, model: str) -> None:
    """Refuse to export a run again under an automatic version: name the version that holds it."""
    held = [v for v in store.exports(model) if v.run_id == record.run_id]
    if held:
        versions = ", ".join(v.version for v in held)
        raise InputError(
            f"Run {record.run_id[:8]} is already exported as {model} {versions} ({held[-1].path}); "
            "pass --new-version (new_version=True) to export it again as another version."
        )


def _plan(
    store: Store, settings: Settings, run: Any, *, model: str, out_dir: str | Path, version: str | None, archive: bool,
    force: bool, reason: str | None, dvc: bool, release: Mapping[str, Any] | None, new_version: bool = False,
) -> _Plan:
    """Validate the request, choose the version, enforce the gates; nothing is written yet."""
    if not isinstance(model, str) or not MODEL_NAME.match(model):
        raise InputError(f"Model name {model!r} is invalid; use letters, digits, '.', '_' and '-' (e.g. churn-gbm).")
    record = store.get_run(run_ref(run))
    unmet = enforce_gates(record, settings=settings, force=force, reason=reason)
    if release is None:
        # default rollout plan: canary steps, the project's SLAs, rollback to current production
        release = release_plan(model, settings=settings, store=store)
    elif not isinstance(release, Mapping):
        raise InputError("release= must be a dict (the rollout plan written as release.json).")
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"-o {out} is a file; pass a folder to hold the bundle.")
    dvc_root = _check_dvc(settings, out) if dvc else None
    if version is None:
        if not new_version:
            _check_not_exported(store, record, model)
        version = next_version(store, model)
    elif not VERSION.match(version):
        raise InputError(f"Version {version!r} is invalid; use MAJOR.MINOR.PATCH, e.g. 1.2.0.")
    if store.get_export(model, version) is not None:
        raise InputError(f"{model} {version} was already exported; bundles are immutable, choose another --version.")
    art = _model_artifact(record)
    bundle_name = f"{model}-{version}"
    target = out / (f"{bundle_name}.tar.gz" if archive else bundle_name)
    if target.exists() or target.is_symlink():
        raise InputError(f"{target} already exists; bundles are immutable, choose another --version or -o folder.")
    return _Plan(record, model, version, target, bundle_name, art, unmet, force, (reason or "").strip() or None, archive,
                 release, dvc_root, default_redactor(settings))


def _write_model(plan: _Plan, store: Store, build: Path, notes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Copy the model file and write ``signature.json``; return the model info and the signature."""
    art = plan.artifact
    filename = Path(str(art.meta.get("filename") or "")).name
    if filename in ("", ".", "..") or path_problem(filename) is not None:
        filename = "model.bin"
    model_path = build / "model" / filename
    store.artifacts.copy_to(art.digest, model_path)
    serializer = str(art.meta.get("serializer", "skops"))
    model_info = {
        "file": f"model/{filename}",
        "artifact": art.name,
        "serializer": serializer,
        "safe": bool(art.meta.get("safe", serializer == "skops")),
        "class": str(art.meta.get("class", "")),
        "untrusted_types": _untrusted(model_path, serializer),
    }
    signature = art.meta.get("signature")
    if not isinstance(signature, dict):
        signature = {
            "schema": "nbtoolkit.signature.v1",
            "kind": "unknown",
            "note": "no sample input was logged with the model (nbtk.log_model(model, sample_input=X[:5]))",
        }
        notes.append("signature unknown: no sample input was logged with the model")
    _write(build / "signature.json", json.dumps(signature, indent=2) + "\n")
    return model_info, signature


def _write_context(plan: _Plan, store: Store, build: Path, notes: list[str]) -> dict[str, Any] | None:
    """Write the environment files, the notebook, the report and the release plan; return the lock."""
    record, redactor = plan.record, plan.redactor
    lock = record.lock()
    lock_data = lock.to_dict() if lock is not None else None
    reqs = requirements_lines(lock_data, redactor=redactor, run_id=record.run_id)
    _write(build / "requirements.txt", "\n".join(reqs) + "\n")
    _write(build / "environment.yml", environment_yaml(lock_data, reqs, name=plan.bundle_name, redactor=redactor))
    nb, note = _notebook_bytes(record, store, redactor)
    if nb is not None:
        (build / "notebook.ipynb").write_bytes(nb)
    elif note:
        notes.append(note)
    _write_report(record, build / "report.html", store, redactor)
    if plan.release is not None:
        _write(build / RELEASE_NAME, json.dumps(redactor.redact_obj(dict(plan.release)), indent=2, sort_keys=True) + "\n")
    return lock_data


def _build(plan: _Plan, store: Store, build: Path, created: str) -> tuple[dict[str, Any], str, list[str]]:
    """Write every bundle file and the manifest into ``build``; return the manifest, its text and notes."""
    notes: list[str] = []
    model_info, signature = _write_model(plan, store, build, notes)
    lock_data = _write_context(plan, store, build, notes)
    context = card_context(
        plan.record, model=plan.model, version=plan.version, created=created, model_info=model_info, signature=signature,
        forced=plan.force, reason=plan.reason, unmet=plan.unmet, lock_data=lock_data, nbtoolkit_version=__version__,
    )
    card_md, card_html = render_model_card(context)
    _write(build / "model_card.md", card_md)
    _write(build / "model_card.html", card_html)
    files, problems = list_files(build)
    if problems:  # cannot happen for files we wrote; guard against surprises in helpers
        raise HandoffError("; ".join(msg for _, msg in problems))
    manifest = build_manifest(
        files=hash_tree(build, files), run_id=plan.record.run_id, experiment=plan.record.experiment, model=plan.model,
        version=plan.version, created=created, nbtoolkit_version=__version__, forced=plan.force,
        reason=plan.reason if plan.force else None, unmet_gates=plan.unmet, model_info=model_info, notes=notes,
    )
    manifest_text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    _write(build / MANIFEST_NAME, manifest_text)
    return manifest, manifest_text, notes


def _publish(plan: _Plan, build: Path, archive: Path) -> None:
    """Move the finished bundle into place atomically: rename the folder, or link the archive."""
    if plan.archive:
        try:
            os.link(archive, plan.target)  # fails if the target appeared meanwhile: never overwrite a bundle
        except FileExistsError:
            raise InputError(f"{plan.target} already exists; bundles are immutable, choose another --version.") from None
    else:
        try:
            os.rename(build, plan.target)  # atomic; fails if a non-empty folder appeared meanwhile
        except OSError:
            raise InputError(f"{plan.target} already exists; bundles are immutable, choose another --version.") from None
    record_written(plan.target)  # the bundle never makes the git tree dirty


def _record(plan: _Plan, store: Store, manifest: dict[str, Any], manifest_text: str, notes: list[str], now: float,
            blob: tuple[str, int]) -> Path | None:
    """Record the export in the store (and ``dvc add`` it); undo the bundle when the version was taken."""
    extra: dict[str, Any] = {"archive": plan.archive, "unmet_gates": plan.unmet, "files": len(manifest["files"]), "notes": notes,
                             BLOB_KEY: {"sha256": blob[0], "size": blob[1]}}
    row = ModelVersion(
        plan.model, plan.version, plan.record.run_id, str(plan.target), now, sha256_bytes(manifest_text.encode("utf-8")),
        plan.force, plan.reason if plan.force else None, plan.redactor.redact_obj(extra),
    )
    if not store.record_export(row):  # a concurrent export to another folder took this version first
        if plan.archive:
            plan.target.unlink()
        else:
            shutil.rmtree(plan.target)
        raise InputError(f"{plan.model} {plan.version} was exported concurrently by another process; export again.")
    if plan.dvc_root is None:
        return None
    dvc_file = _dvc_add(plan.dvc_root, plan.target)
    extra["dvc_file"] = str(dvc_file)
    store.set_export_extra(plan.model, plan.version, plan.redactor.redact_obj(extra))
    return dvc_file


def export_bundle(
    run: Any,
    *,
    model: str,
    out_dir: str | Path,
    version: str | None = None,
    archive: bool = False,
    force: bool = False,
    reason: str | None = None,
    dvc: bool = False,
    release: Mapping[str, Any] | None = None,
    new_version: bool = False,
    store: Store | None = None,
) -> ExportResult:
    """Export a vetted run as a verified handoff bundle and record the export in the store.

    The steps: plan (validate, choose the version, enforce the gates), build every file in a
    hidden temporary folder next to the target, publish it atomically, record it.

    Args:
        run: run id, unique prefix, or run object.
        model: the model name (letters, digits, ``.``, ``_``, ``-``); the bundle is
            ``out_dir/<model>-<version>``.
        out_dir: the folder that receives the bundle (created when missing).
        version: the version to export; default the next patch version of ``model``.
        archive: write ``<model>-<version>.tar.gz`` instead of a folder.
        force: export although gates are unmet; needs ``reason``. Recorded everywhere.
        reason: why the gates are overridden.
        dvc: ``dvc add`` the bundle (the project must be a DVC repository).
        release: the rollout plan written as ``release.json``; default
            :func:`nbtoolkit.export.release.release_plan` for ``model`` (canary steps, the
            project's SLAs, rollback target = the version ``production`` points to now).
            Bundles are immutable, so it cannot be added later.
        new_version: export a run already exported as ``model`` again, as the next version
            (without it, and without an explicit ``version``, that is refused naming the version
            that holds the run).
        store: the store (default: the project's).

    Returns:
        An :class:`ExportResult`.

    Raises:
        GateError: the run is not vetted and ``force`` is false (every unmet gate listed).
        InputError: bad model name, version, run, output folder, missing model artifact,
            ``--dvc`` outside a DVC repository, or the run is already exported as ``model``.
        HandoffError: ``dvc add`` failed after the export.
    """
    settings = load_settings()
    store = store or open_store(settings)
    plan = _plan(store, settings, run, model=model, out_dir=out_dir, version=version, archive=archive, force=force,
                 reason=reason, dvc=dvc, release=release, new_version=new_version)
    now = time.time()
    plan.target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{plan.bundle_name}.", suffix=".building", dir=plan.target.parent))
    os.chmod(build, new_dir_mode())  # mkdtemp makes it owner-only; the bundle is the user's usual folder
    packed = build.with_name(f"{build.name}.tar.gz")
    try:
        manifest, manifest_text, notes = _build(plan, store, build, iso(now) or "")
        _fsync_tree(build)
        write_archive(build, packed, plan.bundle_name, now)
        # the archive goes to the artifact location before anything is published or recorded,
        # so every recorded version can be fetched by other machines (nbtoolkit.export.fetch)
        blob = store.artifacts.put_file(packed)
        _publish(plan, build, packed)
    finally:
        if build.exists():
            shutil.rmtree(build, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            packed.unlink()
    dvc_file = _record(plan, store, manifest, manifest_text, notes, now, blob)
    return ExportResult(path=plan.target, version=plan.version, manifest=manifest, forced=force, dvc_file=dvc_file)
