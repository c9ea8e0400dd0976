"""Model serialisers: skops by default; joblib and pickle only when asked (flagged unsafe).

Third parties add serialisers through the ``nbtoolkit.serializers`` entry-point group; each
implements :class:`ModelSerializer`.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from nbtoolkit._registry import Registry
from nbtoolkit.errors import BundleIntegrityError


@runtime_checkable
class ModelSerializer(Protocol):
    """How a model is written to and read from files."""

    name: str
    #: False for formats that execute code on load (pickle, joblib).
    safe: bool
    suffix: str

    def dump(self, model: Any, path: Path) -> None: ...

    def load(self, path: Path, *, trusted: Sequence[str] | None = None) -> Any: ...


class SkopsSerializer:
    """skops.io: loads only types the caller trusts."""

    name = "skops"
    safe = True
    suffix = ".skops"

    def dump(self, model: Any, path: Path) -> None:
        import skops.io as sio

        sio.dump(model, path)

    def untrusted_types(self, path: Path) -> list[str]:
        import skops.io as sio

        return list(sio.get_untrusted_types(file=path))

    def load(self, path: Path, *, trusted: Sequence[str] | None = None) -> Any:
        import skops.io as sio

        allowed = set(trusted or ())
        unknown = [t for t in self.untrusted_types(path) if t not in allowed]
        if unknown:
            raise BundleIntegrityError(
                str(path),
                [f"model file {path.name} contains untrusted types: {', '.join(sorted(unknown))}; "
                 "review them and pass them in trusted_types=[...] to load"],
            )
        return sio.load(path, trusted=sorted(allowed) or None)


class JoblibSerializer:
    """joblib: runs arbitrary code on load; only with ``trust=True``."""

    name = "joblib"
    safe = False
    suffix = ".joblib"

    def dump(self, model: Any, path: Path) -> None:
        import joblib

        joblib.dump(model, path)

    def load(self, path: Path, *, trusted: Sequence[str] | None = None) -> Any:
        import joblib

        return joblib.load(path)


class PickleSerializer:
    """pickle: runs arbitrary code on load; only with ``trust=True``."""

    name = "pickle"
    safe = False
    suffix = ".pkl"

    def dump(self, model: Any, path: Path) -> None:
        with open(path, "wb") as fh:
            pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, path: Path, *, trusted: Sequence[str] | None = None) -> Any:
        with open(path, "rb") as fh:
            return pickle.load(fh)  # noqa: S301 - gated by trust=True upstream


SERIALIZERS: Registry[ModelSerializer] = Registry("nbtoolkit.serializers", "model serializer")
SERIALIZERS.register("skops", SkopsSerializer())
SERIALIZERS.register("joblib", JoblibSerializer())
SERIALIZERS.register("pickle", PickleSerializer())
