"""Where the monitor's inputs come from and where its findings go.

Inputs: the prediction log (the store's ``prediction_log`` or an exported log file) and the
drift reference (a data file). Outputs: a run of kind ``monitor`` in experiment
``monitor:<model>`` holding the numbers, and, on a breach of the version the alias serves, a
rollback of the alias through the registry with the breach as its reason.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbtoolkit import _json, registry
from nbtoolkit._io import sha256_file
from nbtoolkit.config import load_settings
from nbtoolkit.errors import InputError
from nbtoolkit.monitor.core import MonitorResult
from nbtoolkit.stability import promotion

if TYPE_CHECKING:
    import pandas as pd

MONITOR_KIND = "monitor"
RESULT_ARTIFACT = "monitor.json"


def experiment_name(model: str) -> str:
    """The experiment monitor runs of ``model`` are recorded under (``monitor:<model>``)."""
    return f"monitor:{model}"


def read_table(path: str | Path, *, what: str) -> pd.DataFrame:
    """A data file as a frame: Parquet, CSV, JSON lines (``.jsonl``/``.ndjson``) or a JSON array.

    Raises:
        InputError: the file does not exist or its format is unknown.
    """
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{what} file {str(p)!r} does not exist.")
    suffix = p.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(p)
    if suffix == ".csv":
        return pd.read_csv(p)
    if suffix in (".jsonl", ".ndjson"):
        return pd.read_json(p, lines=True, dtype=False)
    if suffix == ".json":
        return pd.read_json(p, dtype=False)
    raise InputError(f"{what} file {p.name!r} has an unknown format; use .parquet, .csv, .jsonl or .json.")


def training_reference(store: Any, model: str, *, alias: str = registry.PRODUCTION,
                       settings: Any = None) -> tuple[pd.DataFrame, str] | None:
    """The data file the run behind ``model@alias`` tracked (``nbtk.track_data``), as the drift reference.

    Only a tabular file (.parquet, .csv, .jsonl, .json) that still exists under the project root
    with the sha256 the run recorded is used; otherwise None (pass ``--reference`` instead).

    Returns:
        ``(frame, path as recorded)`` or None.
    """
    version = registry.current(model, alias, store=store, settings=settings)
    if version is None:
        return None
    record = store.get_run(registry.get_version(model, version, store=store, settings=settings).run_id)
    root = (settings or load_settings()).root
    for ref in record.data:
        path = Path(ref.path) if Path(ref.path).is_absolute() else root / ref.path
        if (path.suffix.lower() in (".parquet", ".csv", ".jsonl", ".ndjson", ".json") and path.is_file()
                and ref.algo == "sha256" and sha256_file(path) == ref.digest):
            return read_table(path, what="Reference"), ref.path
    return None


def read_log(store: Any, model: str, *, version: str | None = None, since: float | None = None,
             until: float | None = None) -> pd.DataFrame:
    """The prediction log of ``model`` from the store (``Store.prediction_log``).

    Raises:
        InputError: this store keeps no prediction log (nothing was served through ``nbtk serve``).
    """
    read = getattr(store, "prediction_log", None)
    if read is None:
        raise InputError("This store keeps no prediction log; serve the model with `nbtk serve` first, "
                         "or pass an exported log with --log FILE.")
    frame: pd.DataFrame = read(model, version=version, since=since, until=until)
    return frame


def filter_log(frame: pd.DataFrame, *, model: str | None = None, version: str | None = None,
               since: float | None = None, until: float | None = None) -> pd.DataFrame:
    """Rows of a log file for one model / version / time range (the store applies these itself)."""
    keep = frame.index == frame.index
    if model is not None and "model" in frame.columns:
        keep &= frame["model"].astype(str) == model
    if version is not None and "version" in frame.columns:
        keep &= frame["version"].astype(str) == version
    if since is not None and "ts" in frame.columns:
        keep &= frame["ts"].astype(float) >= since
    if until is not None and "ts" in frame.columns:
        keep &= frame["ts"].astype(float) < until
    return frame[keep].reset_index(drop=True)


def record_monitor(store: Any, result: MonitorResult, *, source: dict[str, Any] | None = None) -> str:
    """Record one monitor invocation as a finished run of kind ``monitor``; return its id.

    Metrics: per version ``<version>.<metric>`` over the whole period, and per window
    ``<version>.window.<metric>`` with the window's index as step; ``sla_ok`` is 1 or 0. The full result is the
    ``monitor.json`` artifact (what ``nbtk new --from-monitor`` reads).
    """
    now = time.time()
    summary = {"model": result.model, "ok": result.ok, "versions": result.versions,
               "window_seconds": result.window_seconds, "breaches": [b.to_dict() for b in result.breaches],
               "drifted": sorted({f.feature for f in result.drift_overall if f.drifted}),
               "period": _period(result), "source": dict(source or {})}
    run_id: str = store.create_run(experiment=experiment_name(result.model), kind=MONITOR_KIND, source="script",
                                   extra={"monitor": summary})
    rows: list[tuple[str, float, int | None, float]] = []
    for w in result.overall:
        rows += [(f"{w.version}.{k}", v, None, now) for k, v in w.metrics().items()]
    starts = sorted({w.start for w in result.windows})
    for w in result.windows:
        step = starts.index(w.start)
        rows += [(f"{w.version}.window.{k}", v, step, now) for k, v in w.metrics().items()]
    rows.append(("sla_ok", 1.0 if result.ok else 0.0, None, now))
    store.log_metrics(run_id, rows)
    store.put_text_artifact(run_id, name=RESULT_ARTIFACT, kind="monitor",
                            text=_json.dumps_strict(result.to_dict()), media_type="application/json")
    store.finish_run(run_id, status="finished")
    return run_id


def _period(result: MonitorResult) -> dict[str, float] | None:
    if not result.overall:
        return None
    return {"since": min(w.start for w in result.overall), "until": max(w.end for w in result.overall)}


def rollback_on_breach(result: MonitorResult, *, alias: str, run_id: str | None, store: Any,
                       settings: Any = None) -> dict[str, Any] | None:
    """Move ``alias`` back when the version it serves breached the SLA; None when it did not.

    Only a breach of the version the alias points to moves it: a breaching challenger that never
    became the alias's version has nothing to roll back.
    """
    serving = registry.current(result.model, alias, store=store, settings=settings)
    mine = [b for b in result.breaches if b.version == serving]
    if serving is None or not mine:
        return None
    reason = f"monitor run {run_id or '-'}: SLA breach of {serving}: " + "; ".join(b.breach.describe() for b in mine[:3])
    move = promotion.rollback(result.model, alias=alias, by="nbtk monitor", reason=reason, store=store, settings=settings)
    out: dict[str, Any] = move.to_dict()
    return out


def latest_result(store: Any, model: str) -> dict[str, Any] | None:
    """The result (``MonitorResult.to_dict()`` plus ``run_id``/``recorded``) of the newest monitor run of ``model``."""
    run_id = store.latest_run(experiment_name(model))
    if run_id is None:
        return None
    record = store.get_run(run_id)
    ref = record.artifact(RESULT_ARTIFACT)
    if ref is None:
        return None
    data: dict[str, Any] = json.loads(store.artifacts.read_bytes(ref.digest))
    return {**data, "run_id": run_id, "recorded": record.ended or record.started}


def finding(store: Any, ref: str) -> dict[str, str]:
    """What a monitor run found, as the start of the next experiment (``nbtk new --from-monitor RUN``).

    Returns:
        ``{"hypothesis", "baseline", "scope"}``: the hypothesis from the first breach (else the
        drifted features, else the production quality), the production alias of the model as
        baseline, and the run's data window as scope; all one line.

    Raises:
        InputError: the run is not a monitor run.
    """
    import datetime as dt

    record = store.get_run(ref)
    summary = record.extra.get("monitor") if record.kind == MONITOR_KIND else None
    if not summary:
        raise InputError(f"Run {record.run_id[:8]} is a {record.kind} run, not a monitor run; "
                         "pass the id `nbtk monitor` printed (or see `nbtk runs -e monitor:MODEL`).")
    model, short = str(summary["model"]), record.run_id[:8]

    def when(ts: float) -> str:
        return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M UTC")

    breaches, drifted = summary.get("breaches") or [], summary.get("drifted") or []
    if breaches:
        b = breaches[0]
        op = ">=" if b["bound"] == "min" else "<="
        hypothesis = (f"A new version of {model} keeps {b['metric']} {op} {b['allowed']:g} (the SLA): monitor run {short} "
                      f"saw {b['metric']} = {b['observed']:.4g} for version {b['version']} in the window of {when(b['start'])}.")
    elif drifted:
        hypothesis = (f"Retraining {model} on recent data restores its quality: monitor run {short} found input drift "
                      f"in {', '.join(drifted[:5])}.")
    else:
        hypothesis = f"A new version of {model} beats production on the monitored quality (monitor run {short} found no breach)."
    period = summary.get("period") or {}
    scope = (f"prediction log of {model} from {when(period['since'])} to {when(period['until'])} (monitor run {short})"
             if period else f"prediction log of {model} (monitor run {short})")
    return {"hypothesis": hypothesis.replace("\\", "/").replace('"""', "'''"), "baseline": f"{model}@{registry.PRODUCTION}",
            "scope": scope}


def record_abtest(store: Any, result: Any) -> str:
    """Record an A/B test as a finished run of kind ``abtest`` (experiment ``abtest:<model>``) with its verdict.

    The declaration holds the criteria as written (``a.`` = version A); metrics are ``a.<metric>``,
    ``b.<metric>`` and ``difference.<metric>``; the verdict is the run's verdict, so the test shows
    in ``nbtk runs`` and reports like a notebook experiment.
    """
    now = time.time()
    data = result.to_dict()
    declaration = {"experiment": f"abtest:{result.model}", "hypothesis": f"{result.model} {result.b} beats {result.a} on live traffic",
                   "success": list(result.success)}
    run_id: str = store.create_run(experiment=f"abtest:{result.model}", kind="abtest", source="script",
                                   declaration=declaration, extra={"abtest": data})
    rows: list[tuple[str, float, int | None, float]] = []
    for c in data["comparisons"]:
        for name, key in (("a", "value_a"), ("b", "value_b"), ("difference", "difference")):
            if c[key] is not None:
                rows.append((f"{name}.{c['metric']}", float(c[key]), None, now))
    store.log_metrics(run_id, rows)
    store.finish_run(run_id, status="finished", verdict=result.verdict.status, verdict_detail=result.verdict.to_dict())
    return run_id
