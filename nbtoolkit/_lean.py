"""Import trimming for nbtoolkit's own short-lived processes (the CLI, sweep workers).

jsonschema imports ``rfc3987_syntax`` (when installed) only to offer an ``iri`` format checker,
and that module compiles a grammar at import time: 1-3 s on a small machine, paid by every
process that loads nbformat. nbformat validates without format checks, so nbtoolkit's processes
never need it; marking it absent in ``sys.modules`` makes jsonschema skip the checker. Sweep
workers also skip papermill's optional cloud handlers (they read and write local files only).
Never applied to a user's kernel.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

#: unused by any nbtoolkit process
UNUSED_EVERYWHERE = ("rfc3987_syntax",)
#: also unused by sweep workers, which drive kernels on local files
UNUSED_IN_WORKERS = (*UNUSED_EVERYWHERE, "pyarrow", "boto3")


def skip_unused_optional_imports(names: Iterable[str] = UNUSED_EVERYWHERE) -> None:
    """Make later ``import NAME`` raise ImportError in this process (where not imported yet)."""
    for name in names:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
