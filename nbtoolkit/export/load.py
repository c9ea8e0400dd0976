"""Load a handoff bundle safely: ``nbtk.load_bundle(path)``.

Order of operations: verify every hash and path of the bundle (folder or archive) first, then
read the small JSON files, then deserialise the model -- never before verification. The model
is loaded from a private copy whose sha256 is checked once more while copying, so a file swapped
between verification and loading is refused rather than deserialised.

Which model types are trusted (skops):
  skops refuses to construct types that are not in its built-in safe set unless the caller
  trusts them. The list recorded in the manifest at export time is *not* used to trust
  anything: whoever can edit a bundle can edit its manifest too. Instead, by default only
  *classes* defined in scikit-learn, NumPy and SciPy are trusted (for instance
  ``sklearn.tree._tree.Tree`` inside a gradient-boosting model): they come from libraries the
  loading environment already trusts, and constructing them runs no attacker-chosen code.
  Functions and every other type (``numpy.load``, ``builtins.eval``, your own classes) stay
  untrusted: loading fails and lists them, and the caller accepts each one explicitly with
  ``trusted_types=[...]`` after reviewing it. ``trust=True`` trusts everything and is the only
  way to load pickle or joblib models, which run arbitrary code when loaded.
"""

from __future__ import annotations

import functools
import hashlib
import html
import importlib
import json
import pickle
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from nbtoolkit.errors import BundleIntegrityError, SignatureError
from nbtoolkit.export.verify import open_bundle

if TYPE_CHECKING:
    from nbtoolkit.store import Store

__all__ = ["Bundle", "SignatureError", "check_input", "load_bundle"]

#: Libraries whose classes are trusted by default when loading skops models.
TRUSTED_LIBRARIES = ("sklearn", "numpy", "scipy")


@functools.lru_cache(maxsize=256)  # dtypes hash: each (expected, got) pair is judged once
def _compatible(expected: str, got: Any) -> bool:
    import numpy as np

    if str(got) == expected:
        return True
    try:
        exp = np.dtype(expected)
        have = np.dtype(got)
    except TypeError:  # pandas extension dtypes (category, string, Int64): exact match only
        return False
    allowed = {"f": "fiu", "i": "iu", "u": "u", "b": "b", "O": "OU", "U": "OU", "M": "M", "m": "m", "c": "cfiu"}
    return have.kind in allowed.get(exp.kind, exp.kind)


def check_input(X: Any, signature: dict[str, Any]) -> Any:
    """Validate ``X`` against a signature; return it ready for the model.

    DataFrames must have exactly the signature's columns (reordered to its order) with
    compatible dtypes (an integer column is accepted where floats are expected, not the
    reverse; strings never pass as numbers). Arrays must match the per-row shape and dtype kind.

    Raises:
        SignatureError: every mismatch, naming the columns.
    """
    kind = signature.get("kind")
    if kind == "dataframe":
        columns = [(str(c["name"]), str(c["dtype"])) for c in signature.get("columns", [])]
        names = [n for n, _ in columns]
        if not (hasattr(X, "columns") and hasattr(X, "dtypes")):
            shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
            raise SignatureError([f"expected a pandas DataFrame with {len(names)} columns ({shown}), got {type(X).__name__}"])
        given = [str(c) for c in X.columns]
        problems = []
        missing = [n for n in names if n not in given]
        extra = [n for n in given if n not in names]
        if missing:
            problems.append("missing columns: " + ", ".join(repr(n) for n in missing))
        if extra:
            problems.append("extra columns: " + ", ".join(repr(n) for n in extra))
        frame_dtypes = X.dtypes  # computed once: pandas rebuilds the Series on every access
        dtypes = dict(zip(given, frame_dtypes.tolist(), strict=True))
        wrong = [f"{n!r} expected {d}, got {dtypes[n]}" for n, d in columns if n in dtypes and not _compatible(d, dtypes[n])]
        if wrong:
            problems.append("wrong dtypes: " + "; ".join(wrong))
        if problems:
            raise SignatureError(problems)
        return X[names] if given != names else X
    if kind == "ndarray":
        import numpy as np

        arr = np.asarray(X)
        shape = signature.get("shape") or []
        problems = []
        if arr.ndim != len(shape):
            problems.append(f"expected a {len(shape)}-dimensional array (shape {shape}), got shape {list(arr.shape)}")
        elif any(s is not None and s != a for s, a in zip(shape[1:], arr.shape[1:], strict=True)):
            problems.append(f"expected rows of shape {shape[1:]}, got {list(arr.shape[1:])}")
        if not _compatible(str(signature.get("dtype")), arr.dtype):
            problems.append(f"expected dtype {signature.get('dtype')}, got {arr.dtype}")
        if problems:
            raise SignatureError(problems)
        return arr
    return X  # unknown signature: nothing to check (the model card says so)


def _is_library_class(name: str) -> bool:
    parts = name.split(".")
    if parts[0] not in TRUSTED_LIBRARIES or len(parts) < 2:
        return False
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return isinstance(obj, type)
    return False


def _private_copy(src: Path, folder: Path, sha256: str, bundle: str) -> Path:
    """Copy ``src`` into ``folder`` while hashing it; refuse it unless it still matches ``sha256``."""
    h = hashlib.sha256()
    dest = folder / src.name
    with open(src, "rb") as fin, open(dest, "wb") as fout:
        while chunk := fin.read(1 << 20):
            h.update(chunk)
            fout.write(chunk)
    if h.hexdigest() != sha256:
        raise BundleIntegrityError(bundle, [f"{src.name}: changed while the bundle was being loaded"])
    return dest


@dataclass
class Bundle:
    """A verified, loaded bundle.

    Attributes:
        path: the bundle folder or archive.
        manifest: the decoded ``MANIFEST.json``.
        card: the model card (Markdown).
        signature: the input signature (``signature.json``).
        model: the deserialised model.
        release: the rollout plan (``release.json``), when the bundle has one.
    """

    path: Path
    manifest: dict[str, Any]
    card: str
    signature: dict[str, Any]
    model: Any = field(repr=False)
    release: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return str(self.manifest.get("model"))

    @property
    def version(self) -> str:
        return str(self.manifest.get("version"))

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id"))

    def validate(self, X: Any) -> Any:
        """Check ``X`` against the signature; return it ready for the model (see :func:`check_input`)."""
        return check_input(X, self.signature)

    def predict(self, X: Any) -> Any:
        """Validate ``X`` against the signature, then return ``model.predict(X)``.

        Raises:
            SignatureError: missing or extra columns, wrong dtypes or shape (named).
        """
        return self.model.predict(self.validate(X))

    def predict_proba(self, X: Any) -> Any:
        """Validate ``X``, then return ``model.predict_proba(X)``."""
        return self.model.predict_proba(self.validate(X))

    def __repr__(self) -> str:
        forced = " FORCED" if self.manifest.get("forced") else ""
        info = self.manifest.get("model_file") or {}
        return (
            f"<Bundle {self.name} {self.version}{forced} run={self.run_id[:8]} "
            f"model={info.get('class')} ({info.get('serializer')})>"
        )

    def _repr_html_(self) -> str:
        m = self.manifest
        info = m.get("model_file") or {}
        rows = [
            ("model", f"{m.get('model')} {m.get('version')}"),
            ("run", f"{m.get('run_id')} ({m.get('experiment')})"),
            ("created", m.get("created")),
            ("class", f"{info.get('class')} ({info.get('serializer')})"),
            ("signature", self.signature.get("kind")),
            ("files", len(m.get("files", []))),
        ]
        if m.get("forced"):
            rows.append(("forced override", m.get("reason")))
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in rows)
        return f"<div><b>nbtoolkit bundle (verified)</b><table>{body}</table></div>"


def _load_model(ser: Any, model_path: Path, *, trust: bool, trusted_types: Sequence[str] | None,
                where: tuple[str, str]) -> Any:
    """Deserialise the model file; a file the serialiser cannot read is a BundleIntegrityError."""
    trusted: list[str] = list(trusted_types or ())
    try:
        if ser.name == "skops":
            untrusted = ser.untrusted_types(model_path)
            trusted += untrusted if trust else [t for t in untrusted if _is_library_class(t)]
        return ser.load(model_path, trusted=sorted(set(trusted)))
    except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, KeyError, ValueError) as exc:
        raise BundleIntegrityError(where[0], [
            f"{where[1]}: not a readable {ser.name} file ({type(exc).__name__}: {str(exc)[:120]}); the "
            "bundle is damaged: export it again from the run"]) from exc


def load_bundle(
    path: str | Path, *, trust: bool = False, trusted_types: Sequence[str] | None = None, store: Store | None = None,
) -> Bundle:
    """Verify a bundle (folder or ``.tar.gz``), then load its model.

    Args:
        path: bundle folder or archive, or a registry reference ``MODEL@ALIAS`` /
            ``MODEL@VERSION`` (resolved with :func:`nbtoolkit.registry.resolve`: on a machine
            other than the exporter's, the bundle is fetched from the store's artifact location).
        trust: load pickle/joblib models and trust every skops type. Only for bundles from a
            source you trust: those formats run arbitrary code when loaded.
        trusted_types: extra skops types to trust after reviewing them (see the module
            docstring for what is trusted by default).
        store: the store a registry reference is resolved in (default: the project's).

    Returns:
        A :class:`Bundle`; ``bundle.predict(X)`` validates ``X`` first.

    Raises:
        InputError: ``path`` does not exist (or names no registry version).
        BundleUnavailableError: a registry version whose bundle is neither here nor in the store.
        BundleIntegrityError: the bundle fails verification, its model is pickle/joblib and
            ``trust`` is false, or its skops model holds types nobody trusted (listed).
    """
    from nbtoolkit.serializers import SERIALIZERS

    if isinstance(path, str) and "@" in path and not Path(path).exists():
        # only a registry reference needs the store: loading a bundle path never imports it
        from nbtoolkit import registry

        path = registry.resolve(path, store=store).path
    with open_bundle(path) as (root, report):
        manifest = report.manifest
        info = manifest.get("model_file") or {}
        model_rel = info.get("file")
        verified = {f.path for f in report.files}
        if not isinstance(model_rel, str) or model_rel not in verified:
            raise BundleIntegrityError(str(path), [f"MANIFEST.json: model_file {model_rel!r} is not a file of the bundle"])
        ser: Any = SERIALIZERS.get(str(info.get("serializer")))
        entry = next(f for f in report.files if f.path == model_rel)
        if not getattr(ser, "safe", False) and not trust:
            raise BundleIntegrityError(
                str(path),
                [f"{model_rel}: serialised with {ser.name}, which runs arbitrary code when loaded; refused. "
                 "Pass trust=True only if you trust the bundle's source."],
            )
        with tempfile.TemporaryDirectory(prefix="nbtk-model-") as private:
            # Load from a private copy whose hash is checked again, so a file swapped between
            # verification and loading is never deserialised.
            model_path = _private_copy(root.joinpath(*PurePosixPath(model_rel).parts), Path(private), entry.sha256, str(path))
            model = _load_model(ser, model_path, trust=trust, trusted_types=trusted_types,
                                where=(str(path), model_rel))

        def read_json(name: str) -> dict[str, Any] | None:
            if name not in verified:
                return None
            data = json.loads((root / name).read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else None

        signature = read_json("signature.json") or {"kind": "unknown"}
        release = read_json("release.json")
        card = (root / "model_card.md").read_text(encoding="utf-8") if "model_card.md" in verified else ""
    return Bundle(path=Path(path).resolve(), manifest=manifest, card=card, signature=signature, model=model, release=release)
