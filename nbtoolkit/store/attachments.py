"""Records attached to a run: artifacts (rows for blobs already stored), data files, environment locks, approvals.

Mixed into :class:`~nbtoolkit.store.Store`, which provides the engines, the blob store and the
redactor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, insert, select
from sqlalchemy.engine import Connection

from nbtoolkit import _json
from nbtoolkit.redact import redacted_text_file
from nbtoolkit.store import schema as S
from nbtoolkit.store.blobstore import BlobStore
from nbtoolkit.store.engine import insert_ignore
from nbtoolkit.store.records import Approval, ArtifactRef, DataRef


class RunAttachments:
    """Artifacts, data files, locks and approvals of runs (mixed into :class:`~nbtoolkit.store.Store`)."""

    # provided by Store
    _redactor: Any
    _lock_cache: dict[str, Any]
    _stored_locks: set[str]
    _read: Callable[[Callable[[Connection], Any]], Any]
    _write: Callable[[Callable[[Connection], Any]], Any]
    _redact: Callable[[Any], Any]
    _redact_text: Callable[[str | None], str | None]

    if TYPE_CHECKING:  # properties of Store

        @property
        def artifacts(self) -> BlobStore: ...

    # ------------------------------------------------------------------ artifacts / data / locks
    def add_artifact(
        self,
        run_id: str,
        *,
        name: str,
        kind: str,
        digest: str,
        size: int,
        media_type: str | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> ArtifactRef:
        """Record that ``run_id`` produced the blob ``digest`` under ``name`` (replacing one of that name).

        The blob must already be at the artifact location: no row ever points at a missing blob.
        """
        return self.add_artifacts(run_id, [ArtifactRef(name, kind, digest, size, media_type, dict(meta or {}))])[0]

    def add_artifacts(self, run_id: str, refs: Sequence[ArtifactRef]) -> list[ArtifactRef]:
        """Record several artifacts of ``run_id`` in one transaction: all rows or none.

        Each blob must already be at the artifact location; a row of the same name is replaced.
        """
        for ref in refs:
            self.artifacts.require(ref.digest)
        now = time.time()
        rows = [
            {
                "run_id": run_id,
                "name": ref.name,
                "kind": ref.kind,
                "digest": ref.digest,
                "size": ref.size,
                "media_type": ref.media_type,
                "meta": _json.dumps(self._redact(dict(ref.meta))),
                "created": now,
            }
            for ref in refs
        ]

        def run(conn: Connection) -> None:
            names = [row["name"] for row in rows]
            for start in range(0, len(names), 500):  # bound the IN list
                chunk = names[start : start + 500]
                conn.execute(delete(S.artifacts).where(and_(S.artifacts.c.run_id == run_id, S.artifacts.c.name.in_(chunk))))
            if rows:
                conn.execute(insert(S.artifacts), rows)

        self._write(run)
        return list(refs)

    def put_text_artifact(self, run_id: str, *, name: str, kind: str, text: str, media_type: str = "text/plain", meta: Mapping[str, Any] | None = None) -> ArtifactRef:
        """Redact, store and record a text artifact."""
        data = (self._redact_text(text) or "").encode("utf-8")
        digest, size = self.artifacts.put_bytes(data)
        return self.add_artifact(run_id, name=name, kind=kind, digest=digest, size=size, media_type=media_type, meta=meta)

    def put_artifact_files(self, paths: Sequence[Path]) -> list[tuple[str, int]]:
        """Store files as blobs, in order (text files scrubbed of secrets first; see
        :func:`~nbtoolkit.redact.redacted_text_file`); returns their ``(sha256, size)``."""
        clean = [None if self._redactor is None else redacted_text_file(p, self._redactor) for p in paths]
        raw = iter(self.artifacts.put_files([p for p, c in zip(paths, clean, strict=True) if c is None]))
        return [next(raw) if c is None else self.artifacts.put_bytes(c) for c in clean]

    def add_datasets(self, run_id: str, refs: Iterable[DataRef]) -> None:
        rows = [
            {"run_id": run_id, "path": r.path, "source": r.source, "digest": r.digest, "algo": r.algo, "size": r.size}
            for r in refs
        ]
        if not rows:
            return

        def run(conn: Connection) -> None:
            for r in rows:
                conn.execute(
                    delete(S.datasets).where(
                        and_(S.datasets.c.run_id == run_id, S.datasets.c.path == r["path"], S.datasets.c.source == r["source"])
                    )
                )
            conn.execute(insert(S.datasets), rows)

        self._write(run)

    def put_lock(self, lock_hash: str, body: Mapping[str, Any]) -> str:
        """Store a lock body once per hash; return the hash."""
        # Most runs reuse the previous run's environment: skip the (costly) redaction and
        # serialisation of a lock this store already holds.
        if lock_hash in self._stored_locks:
            return lock_hash
        exists = self._read(
            lambda conn: conn.execute(select(S.locks.c.lock_hash).where(S.locks.c.lock_hash == lock_hash)).first()
        )
        if exists is None:
            # the lock was redacted at capture; scrub values again but keep package names intact
            clean = dict(body) if self._redactor is None else self._redactor.redact_obj(dict(body), mask_secret_keys=False)
            text = _json.canonical(clean)

            def run(conn: Connection) -> None:
                insert_ignore(conn, S.locks, [{"lock_hash": lock_hash, "created": time.time(), "body": text}])

            self._write(run)
        self._stored_locks.add(lock_hash)
        return lock_hash

    def get_lock_body(self, lock_hash: str) -> dict[str, Any] | None:
        body = self._read(lambda conn: conn.execute(select(S.locks.c.body).where(S.locks.c.lock_hash == lock_hash)).scalar())
        return _json.loads(body) if body else None

    def get_lock(self, lock_hash: str) -> Any:
        """Return the :class:`~nbtoolkit.envlock.EnvLock` stored under ``lock_hash`` (or ``None``)."""
        if lock_hash not in self._lock_cache:
            body = self.get_lock_body(lock_hash)
            if body is None:
                return None
            from nbtoolkit.envlock import EnvLock

            self._lock_cache[lock_hash] = EnvLock.from_dict(body)
        return self._lock_cache[lock_hash]

    # ------------------------------------------------------------------ approvals
    def add_approval(self, run_id: str, *, by: str, note: str = "") -> Approval:
        now = time.time()
        note, by = self._redact_text(note) or "", self._redact_text(by) or ""
        self._write(lambda conn: conn.execute(insert(S.approvals).values(run_id=run_id, by=by, note=note, created=now)))
        return Approval(run_id, by, note, now)
