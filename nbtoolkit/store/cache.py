"""The store's side of the run cache: finding runs by cache key and copying a run as a cache hit."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import and_, insert, select, update
from sqlalchemy.engine import Connection

from nbtoolkit import _json
from nbtoolkit.store import schema as S

#: Stored run kinds whose results may serve a cache hit (``cached`` stands for its origin).
_CACHEABLE_KINDS = ("papermill", "sweep", "experiment", "cached")

#: Tables whose rows belong to one run and travel with a copy of it.
_RUN_TABLES = (S.params, S.metrics, S.metric_steps, S.tags, S.datasets, S.artifacts)


class RunCopies:
    """Cache operations of :class:`~nbtoolkit.store.Store`, each one transaction."""

    # provided by Store: transactions (``fn(conn)`` in a read / write transaction) and redaction
    _read: Callable[[Callable[[Connection], Any]], Any]
    _write: Callable[[Callable[[Connection], Any]], Any]
    _redact: Callable[[Any], Any]
    _redact_text: Callable[[str | None], str | None]

    def cache_sources(self, key: str, *, limit: int = 20) -> list[str]:
        """Ids of the runs that really executed with cache key ``key``, newest first, without repeats.

        Only finished runs of ``nbtk run`` and sweeps count (never a test or a reproduction);
        a run that was itself a cache hit stands for its origin.
        """
        q = (
            select(S.runs.c.run_id, S.runs.c.origin_run_id, S.runs.c.kind)
            .where(and_(S.runs.c.cache_key == key, S.runs.c.status == "finished", S.runs.c.kind.in_(_CACHEABLE_KINDS)))
            .order_by(S.runs.c.started.desc())
            .limit(limit)
        )
        rows = self._read(lambda conn: conn.execute(q).all())
        out: list[str] = []
        for run_id, origin, kind in rows:
            source = origin if kind == "cached" and origin else run_id
            if source not in out:
                out.append(str(source))
        return out

    def copy_run(
        self, source_id: str, *, new_id: str, parent_id: str | None, cache_key: str,
        extra: Mapping[str, Any] | None = None,
    ) -> str:
        """Record ``new_id`` as a finished copy of ``source_id`` (a cache hit), in one transaction.

        The copy has kind ``cached``, links to its source (``origin_run_id``), carries ``extra`` merged over the
        source's plus ``cached: true``, and gets copies of the source's params, metrics, metric
        steps, tags, datasets and artifact records (blobs are shared, content-addressed).
        """
        added = self._redact(dict(extra or {}))

        def run(conn: Connection) -> None:
            row = dict(conn.execute(select(S.runs).where(S.runs.c.run_id == source_id)).mappings().one())
            merged = _json.loads(row.get("extra"), {}) or {}
            merged.update(added)
            merged["cached"] = True
            now = time.time()
            row.update(
                run_id=new_id, kind="cached", parent_id=parent_id, origin_run_id=source_id, cache_key=cache_key,
                started=now, ended=now, heartbeat=now, extra=_json.dumps(merged),
            )
            conn.execute(insert(S.runs).values(**row))
            for table in _RUN_TABLES:
                rows = [{**r, "run_id": new_id} for r in conn.execute(select(table).where(table.c.run_id == source_id)).mappings()]
                if rows:
                    conn.execute(insert(table), rows)
            conn.execute(update(S.runs).where(S.runs.c.run_id == new_id).values(status="finished"))

        self._write(run)
        return new_id
