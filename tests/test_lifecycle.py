"""Run lifecycle in a real kernel: failed, interrupted, and crashed (kernel killed with SIGKILL).

One kernel serves the whole sequence to keep the suite fast.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

RUN_MIME = "application/vnd.nbtoolkit.run.v1+json"


def _execute(kc: Any, code: str, *, timeout: float = 60) -> list[dict[str, Any]]:
    """Execute ``code`` and return the iopub messages of that request until the kernel is idle."""
    msg_id = kc.execute(code)
    msgs = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        msgs.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return msgs
    raise AssertionError(f"kernel did not finish {code!r}")


def _wait_running(store: Any, experiment: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = store.query_runs(experiment=experiment, status="running")[0]
        if rows:
            return str(rows[0]["run_id"])
        time.sleep(0.05)
    raise AssertionError(f"no running run of {experiment!r} appeared")


def _fresh_store() -> Any:
    import nbtoolkit.store as store_pkg

    store_pkg._cache.clear()
    return store_pkg.open_store()


@pytest.mark.slow
def test_failed_interrupted_and_crashed_in_a_real_kernel(project: Path, store: Any) -> None:
    from jupyter_client import KernelManager

    km = KernelManager(kernel_name="python3")
    km.start_kernel(cwd=str(project))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        setup = _execute(kc, "%load_ext nbtoolkit\nimport nbtoolkit as nbtk")
        assert not [m for m in setup if m["msg_type"] == "error"]

        # 1. a failing cell: failed, traceback stored, error in the outputs, card shown
        msgs = _execute(kc, "%%experiment fails\nvalue = 1\nraise RuntimeError('planted failure')\n")
        errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
        assert errors and errors[0]["ename"] == "RuntimeError" and errors[0]["evalue"] == "planted failure"
        cards = [m["content"]["data"] for m in msgs if m["msg_type"] == "display_data" and RUN_MIME in m["content"]["data"]]
        assert cards and cards[0][RUN_MIME]["status"] == "failed"
        failed = store.get_run(cards[0][RUN_MIME]["run_id"])
        assert failed.status == "failed" and "RuntimeError: planted failure" in failed.error
        assert failed.params == {"value": 1}

        # 2. interrupt mid-cell: interrupted
        msg_id = kc.execute("%%experiment sleeps\nimport time\ntime.sleep(60)\n")
        run_id = _wait_running(store, "sleeps")
        time.sleep(0.3)  # let the body reach time.sleep
        km.interrupt_kernel()
        msgs = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = kc.get_iopub_msg(timeout=30)
            if msg["parent_header"].get("msg_id") == msg_id:
                msgs.append(msg)
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
        assert any(m["msg_type"] == "error" and m["content"]["ename"] == "KeyboardInterrupt" for m in msgs)
        rec = store.get_run(run_id)
        assert rec.status == "interrupted" and rec.ended is not None

        # 3. SIGKILL mid-cell: the next open in a fresh process state marks it crashed
        kc.execute("%%experiment dies\nimport time\nnbtk.log(before_death=1.0)\ntime.sleep(60)\n")
        run_id = _wait_running(store, "dies")
        pid = km.provisioner.process.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while km.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.get_run(run_id).status == "running"  # nothing has looked yet
        fresh = _fresh_store()
        rec = fresh.get_run(run_id)
        assert rec.status == "crashed" and rec.ended is not None
        assert "killed" in rec.error or "died" in rec.error
        # earlier runs are untouched by recovery
        assert fresh.get_run(failed.run_id).status == "failed"
        assert fresh.query_runs(status="running")[0] == []
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
