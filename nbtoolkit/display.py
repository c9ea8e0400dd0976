"""Rich notebook outputs for runs.

Outputs are plain HTML with inline styles (no scripts), so they survive in saved notebooks,
papermill output and nbconvert, and carry a versioned JSON payload
(``application/vnd.nbtoolkit.run.v1+json``) that tools can read back from the notebook.
The card itself is :mod:`nbtoolkit.store.card`; markup helpers are in :mod:`nbtoolkit.html`.
"""

from __future__ import annotations

from typing import Any

from nbtoolkit.store import RunRecord
from nbtoolkit.store.card import run_card_html, run_card_text

RUN_MIMETYPE = "application/vnd.nbtoolkit.run.v1+json"


class RunSummary:
    """Display object for a run: HTML card, text, and a versioned JSON payload."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def __repr__(self) -> str:
        return run_card_text(self.record)

    def _repr_html_(self) -> str:
        return run_card_html(self.record)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        r = self.record
        payload = {
            "schema": "nbtoolkit.run.v1",
            "run_id": r.run_id,
            "experiment": r.experiment,
            "status": r.status,
            "verdict": r.verdict,
        }
        return {
            "text/plain": run_card_text(r),
            "text/html": run_card_html(r),
            RUN_MIMETYPE: payload,
        }
