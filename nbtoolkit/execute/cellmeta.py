"""What an execution writes into a cell's ``metadata["nbtoolkit"]``, shared by the engine and the runner.

Kept apart so papermill can load :mod:`nbtoolkit.execute.papermill_engine` without the runner's
plumbing (:mod:`nbtoolkit.execute.engine`).
"""

from __future__ import annotations

#: key saying the cell's output was cut at the cap: ``{"limit_bytes": N, "dropped_bytes": M}``
TRUNCATED_KEY = "output_truncated"
#: key saying how the cell's execution ended early: ``{"status": "timed_out", "timeout_s": 20.0}``
ENDED_KEY = "ended"


def truncation_note(limit: int) -> str:
    """The note a cell shows where its output was cut at ``limit`` bytes."""
    return (
        f"\n[nbtoolkit] output truncated: this cell printed more than {limit:,} bytes and the rest was "
        "dropped (raise [tool.nbtoolkit] max_output_bytes to keep more).\n"
    )
