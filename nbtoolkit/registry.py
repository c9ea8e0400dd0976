"""The model registry: a catalogue of exported versions, aliases and alias moves, over the store.

Versions are the bundles recorded by the export stage; :func:`resolve` gives one whose path is a
bundle on this machine, fetched from the store's artifact location when the export ran elsewhere. An alias (``staging``, ``production`` or
any name) points at one version of one model; every move of an alias is kept in its history
with who, when and why. Moving an alias -- promotion and rollback with their gates -- is the
stability stage's job (:mod:`nbtoolkit.stability.promotion`); this module only reads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from nbtoolkit.config import Settings
from nbtoolkit.errors import InputError
from nbtoolkit.export.fetch import local_bundle
from nbtoolkit.html import esc
from nbtoolkit.store import Store, open_store
from nbtoolkit.store.models import ModelVersion, Move

__all__ = [
    "PRODUCTION", "STAGING", "ModelEntry", "ModelVersion", "Move", "current", "get_version", "history", "lookup", "models",
    "resolve", "with_local_path",
]

PRODUCTION = "production"
STAGING = "staging"


@dataclass(frozen=True)
class ModelEntry:
    """A model in the registry: its versions (oldest first) and aliases."""

    model: str
    versions: tuple[ModelVersion, ...]
    aliases: dict[str, str]

    def to_dict(self) -> dict[str, object]:
        return {"model": self.model, "versions": [v.to_dict() for v in self.versions], "aliases": dict(self.aliases)}

    def _repr_html_(self) -> str:
        by_version: dict[str, list[str]] = {}
        for a, v in self.aliases.items():
            by_version.setdefault(v, []).append(a)
        rows = "".join(
            f"<tr><td>{esc(v.version)}</td><td>{esc(v.run_id[:8])}</td><td>{esc(', '.join(sorted(by_version.get(v.version, []))))}</td></tr>"
            for v in self.versions
        )
        return f"<h4>{esc(self.model)}</h4><table><tr><th>version</th><th>run</th><th>aliases</th></tr>{rows}</table>"


def _store(store: Store | None, settings: Settings | None) -> Store:
    return store if store is not None else open_store(settings)


def models(name: str | None = None, *, store: Store | None = None, settings: Settings | None = None) -> list[ModelEntry]:
    """List registered models (those with exported bundles) with their versions and aliases.

    Args:
        name: only this model.
    """
    versions, aliases = _store(store, settings).model_catalog(name)
    found: dict[str, tuple[dict[str, ModelVersion], dict[str, str]]] = {}
    for v in versions:
        found.setdefault(v.model, ({}, {}))[0][v.version] = v  # a re-export of a version replaces it
    for model, alias, version in aliases:
        found.setdefault(model, ({}, {}))[1][alias] = version
    return [ModelEntry(m, tuple(vs.values()), dict(sorted(al.items()))) for m, (vs, al) in sorted(found.items())]


def get_version(model: str, version: str, *, store: Store | None = None, settings: Settings | None = None) -> ModelVersion:
    """The latest export of ``model`` ``version``.

    Raises:
        InputError: no such export.
    """
    st = _store(store, settings)
    found = st.get_export(model, version)
    if found is None:
        known = [v.version for e in models(model, store=st) for v in e.versions]
        hint = f"known versions: {', '.join(known)}" if known else "export it first with `nbtk export RUN --model NAME`"
        raise InputError(f"Model {model!r} has no exported version {version!r}; {hint}.")
    return found


def current(model: str, alias: str = PRODUCTION, *, store: Store | None = None, settings: Settings | None = None) -> str | None:
    """The version ``alias`` of ``model`` points to, or ``None``."""
    return _store(store, settings).alias_version(model, alias)


def lookup(ref: str, *, store: Store | None = None, settings: Settings | None = None) -> ModelVersion:
    """The exported version ``MODEL@ALIAS`` or ``MODEL@VERSION`` names, as recorded (nothing is fetched).

    Raises:
        InputError: a malformed reference, or no such model, alias or version.
    """
    model, sep, tail = ref.rpartition("@")
    if not sep or not model or not tail:
        raise InputError(f"{ref!r} is not MODEL@ALIAS or MODEL@VERSION (e.g. churn@production, churn@1.2.0).")
    st = _store(store, settings)
    version = current(model, tail, store=st) or tail
    return get_version(model, version, store=st)


def with_local_path(version: ModelVersion, *, store: Store | None = None, settings: Settings | None = None) -> ModelVersion:
    """``version`` with ``path`` a bundle on this machine (see :func:`nbtoolkit.export.fetch.local_bundle`).

    The recorded path when it holds the version's bundle, else a copy of the archive the export
    stored in the artifact location, fetched once into the local cache and verified.

    Raises:
        BundleUnavailableError: neither the recorded path nor the store holds the bundle.
        ArtifactIntegrityError, BundleIntegrityError: the stored archive was tampered with.
    """
    local = str(local_bundle(version, store=_store(store, settings)))
    return version if local == version.path else replace(version, path=local)


def resolve(ref: str, *, store: Store | None = None, settings: Settings | None = None) -> ModelVersion:
    """Resolve ``MODEL@ALIAS`` or ``MODEL@VERSION`` to an exported version whose ``path`` is usable here.

    On the exporting machine that is the folder the export wrote; on any other machine sharing
    the store, the bundle fetched from the artifact location (:func:`with_local_path`).
    """
    st = _store(store, settings)
    return with_local_path(lookup(ref, store=st), store=st)


def history(model: str, *, alias: str | None = None, store: Store | None = None, settings: Settings | None = None) -> list[Move]:
    """Every move of ``model``'s aliases, oldest first."""
    return _store(store, settings).alias_history(model, alias=alias)
