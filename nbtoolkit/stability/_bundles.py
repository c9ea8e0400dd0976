"""Bundle access for the registry, shadow and canary: verify and load through the export stage.

``nbtoolkit.export.verify_bundle`` / ``load_bundle`` are used when the export stage provides
them; until then (or for bundles written by hand in tests) a minimal stand-in re-hashes the
``MANIFEST.json`` entries and loads the model file with the registered serialisers.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from nbtoolkit.errors import BundleIntegrityError, HandoffError

#: Type-name prefixes the stand-in loader trusts in skops files (what scikit-learn models use).
_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.", "collections.")


def _export_attr(name: str) -> Any:
    try:
        import nbtoolkit.export as export  # noqa: PLC0415 - optional stage
    except ImportError:
        return None
    return getattr(export, name, None)


def _manifest_files(manifest: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    files = manifest.get("files", [])
    out = []
    if isinstance(files, dict):
        for name, info in files.items():
            out.append((name, str(info.get("sha256")), info.get("size")))
    else:
        for info in files:
            out.append((str(info.get("path") or info.get("name")), str(info.get("sha256")), info.get("size")))
    return out


def _verify_manifest(path: Path) -> dict[str, Any]:
    from nbtoolkit._io import sha256_file

    if not path.is_dir():
        raise BundleIntegrityError(str(path), ["not a bundle folder (archives need the export stage's verify_bundle)"])
    mpath = path / "MANIFEST.json"
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleIntegrityError(str(path), [f"MANIFEST.json is missing or unreadable ({exc})"]) from None
    problems = []
    listed = set()
    for name, digest, size in _manifest_files(manifest):
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts:
            problems.append(f"{name}: path escapes the bundle")
            continue
        listed.add(name)
        f = path / name
        if f.is_symlink() or not f.is_file():
            problems.append(f"{name}: missing or not a regular file")
        elif sha256_file(f) != digest or (size is not None and f.stat().st_size != size):
            problems.append(f"{name}: sha256 differs from MANIFEST.json (changed after export)")
    for f in path.rglob("*"):
        rel = f.relative_to(path).as_posix()
        if f.is_file() and rel != "MANIFEST.json" and rel not in listed:
            problems.append(f"{rel}: not listed in MANIFEST.json")
    if problems:
        raise BundleIntegrityError(str(path), problems)
    return manifest


def verify(path: str | Path) -> None:
    """Re-hash a bundle (folder or archive).

    Raises:
        BundleIntegrityError: a file changed, is missing, unlisted or unsafe.
    """
    verify_bundle = _export_attr("verify_bundle")
    if verify_bundle is not None:
        result = verify_bundle(path)
        if getattr(result, "ok", True) is False:
            problems = list(getattr(result, "problems", []) or ["verification failed"])
            raise BundleIntegrityError(str(path), [str(p) for p in problems])
        return
    _verify_manifest(Path(path))


def load_model(path: str | Path) -> Any:
    """Load a bundle's model (verified first). Returns the export stage's ``Bundle`` when available."""
    load_bundle = _export_attr("load_bundle")
    if load_bundle is not None:
        return load_bundle(path)
    folder = Path(path)
    manifest = _verify_manifest(folder)
    from nbtoolkit.serializers import SERIALIZERS

    models = [n for n, _, _ in _manifest_files(manifest) if n.startswith("model/")]
    for name in models:
        for ser_name in SERIALIZERS.names():
            ser = SERIALIZERS.get(ser_name)
            if name.endswith(ser.suffix):
                if not ser.safe:
                    raise HandoffError(f"{folder}: model {name} uses {ser.name}, which runs code when loaded; load it with nbtk.load_bundle(..., trust=True).")
                trusted = None
                if hasattr(ser, "untrusted_types"):
                    found = ser.untrusted_types(folder / name)
                    bad = [t for t in found if not t.startswith(_TRUSTED_PREFIXES)]
                    if bad:
                        raise HandoffError(f"{folder}: model {name} has untrusted types {bad}; load it with nbtk.load_bundle.")
                    trusted = found
                return ser.load(folder / name, trusted=trusted)
    raise BundleIntegrityError(str(folder), ["no model file under model/ in MANIFEST.json"])
