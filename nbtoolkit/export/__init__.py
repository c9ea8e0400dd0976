"""Hand off: approve a run, export it as a verified bundle, verify and load bundles.

::

    gates.py        is a run vetted? (finished, supported, approved, reproduced if required)
    approve.py      reviewer sign-off
    bundle.py       export_bundle: plan, build in a temp folder, store its archive, publish (rename), record
    archive.py      the deterministic .tar.gz of a bundle (--archive, and the blob every export stores)
    fetch.py        a registry version's bundle on this machine: its folder, else fetched from the store
    release.py      release_plan: the rollout plan written as release.json (canary steps, SLAs)
    manifest.py     MANIFEST.json (schema nbtoolkit.bundle.v1): sha256 + size of every file
    requirements.py requirements.txt / environment.yml pinned from the environment lock
    model_card.py   model_card.md / model_card.html from templates/model_card.*.j2
    verify.py       verify_bundle: re-hash, refuse unsafe paths, links, special files
    load.py         load_bundle -> Bundle (verify first; safe model loading; predict validates)

``archive``, ``fetch``, ``manifest`` and ``verify`` import no stage (only the store, ``errors``
and ``envlock``): the registry uses them to hand out bundles that are on this machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nbtoolkit._lazy import lazy_exports

_NAMES = {
    "approve": "nbtoolkit.export.approvals",
    "export_bundle": "nbtoolkit.export.bundle",
    "ExportResult": "nbtoolkit.export.bundle",
    "exports_of": "nbtoolkit.export.bundle",
    "next_version": "nbtoolkit.export.bundle",
    "check_gates": "nbtoolkit.export.gates",
    "verify_bundle": "nbtoolkit.export.verify",
    "VerifyReport": "nbtoolkit.export.verify",
    "load_bundle": "nbtoolkit.export.load",
    "Bundle": "nbtoolkit.export.load",
    "SignatureError": "nbtoolkit.export.load",
    "MANIFEST_SCHEMA": "nbtoolkit.export.manifest",
    "release_plan": "nbtoolkit.export.release",
}

__all__ = [
    "MANIFEST_SCHEMA",
    "Bundle",
    "ExportResult",
    "SignatureError",
    "VerifyReport",
    "approve",
    "check_gates",
    "export_bundle",
    "exports_of",
    "load_bundle",
    "next_version",
    "release_plan",
    "verify_bundle",
]

__getattr__, __dir__ = lazy_exports(__name__, _NAMES)


if TYPE_CHECKING:
    from nbtoolkit.export.approvals import approve
    from nbtoolkit.export.bundle import ExportResult, export_bundle, exports_of, next_version
    from nbtoolkit.export.gates import check_gates
    from nbtoolkit.export.load import Bundle, SignatureError, load_bundle
    from nbtoolkit.export.manifest import MANIFEST_SCHEMA
    from nbtoolkit.export.release import release_plan
    from nbtoolkit.export.verify import VerifyReport, verify_bundle
