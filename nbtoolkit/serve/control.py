"""The server's control loop: follow alias moves, flags and labels without a restart.

Every ``interval`` seconds (and at once when the canary halts) one background thread:

1. reads the canary flag (``[tool.nbtoolkit.flags]`` / ``[tool.nbtoolkit.flags.kill]`` /
   ``NBTOOLKIT_FLAG_*``; the pyproject is re-read only when its mtime changes): ``false`` or a
   kill switch sends every row to the champion, a number sets the challenger's share;
2. asks the registry where the served aliases point; a moved alias is verified, loaded and
   swapped in between requests;
3. computes quality metrics of the challenger on the rows of the current step that have
   labels (joined by feedback), and halts the canary when they breach the SLA;
4. after a halt, rolls the challenger's alias back through the registry with the breach as the
   reason (visible in ``nbtk history``), and the champion's alias too when it points at the
   challenger's version;
5. when a ``--plan`` completes (its 100 % step held its rows and window within the SLA), promotes
   the challenger: the champion's alias (e.g. ``production``) moves to the challenger's version
   through :func:`~nbtoolkit.stability.promotion.promote` (its gates included) with the plan's
   outcome as the reason, and the server answers from the new champion only -- what Flagger and
   Argo Rollouts do at the end of a successful analysis. ``promote=False`` (``--no-promote``)
   holds the challenger at 100 % instead, for a person to promote. A refused promotion (a gate,
   the cadence policy) is an event in ``/health`` and the challenger stays at 100 %.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from nbtoolkit import registry
from nbtoolkit.errors import NbToolkitError
from nbtoolkit.serve.models import ServedModel, current_version, load_served
from nbtoolkit.serve.routing import TRAFFIC_METRICS
from nbtoolkit.serve.service import ScoringService
from nbtoolkit.stability._common import compute_metrics, metric_fns
from nbtoolkit.stability.flags import resolve_flag
from nbtoolkit.stability.promotion import promote, rollback

log = logging.getLogger("nbtoolkit.serve")

#: Quality metrics the controller can measure on labelled rows.
QUALITY_METRICS = ("accuracy", "roc_auc", "mae", "rmse")


class Controller:
    """The control thread of a :class:`~nbtoolkit.serve.service.ScoringService`.

    Args:
        service: the service to steer.
        flag: name of the canary flag.
        interval: seconds between polls.
        trusted_types: extra skops types trusted when a moved alias is loaded.
        settings: resolved settings (flags are re-read from the project's pyproject).
        promote: promote the challenger when its ``--plan`` completes.
    """

    def __init__(
        self, service: ScoringService, *, flag: str = "canary", interval: float = 1.0,
        trusted_types: Sequence[str] = (), settings: Any = None, promote: bool = True,
    ) -> None:
        self.service = service
        self.flag = flag
        self.interval = interval
        self.trusted_types = tuple(trusted_types)
        self.settings = settings
        self.rolled_back = False
        self.promote = promote
        self.plan_done = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="nbtk-serve-control", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        router = self.service.router
        if router is not None:
            router.wake.set()  # wake the loop
        self._thread.join(10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            router = self.service.router
            if router is not None and not self.rolled_back:
                if router.wake.wait(self.interval):
                    router.wake.clear()  # the router's state says what happened; poll() acts on it
            else:
                self._stop.wait(self.interval)
            if self._stop.is_set():
                return
            try:
                self.poll()
            except NbToolkitError as exc:  # keep serving; say what went wrong
                self._event("error", str(exc))
                log.error("nbtk serve control: %s", exc)

    def poll(self) -> None:
        """One round: flags, quality, rollback after a halt, alias moves."""
        router = self.service.router
        if router is not None:
            value, _source, _setting = resolve_flag(self.flag, True)
            router.set_flag(value)
            if router.halt is None:
                self._judge_quality()
            if router.halt is not None and not self.rolled_back:
                self.rolled_back = True
                self._roll_back(router.halt.reason)
            if router.completed and router.halt is None and not self.plan_done:
                self.plan_done = True
                self._complete(router.completion or "canary plan completed")
            self.service.metrics.canary_share.set(router.percent)
        self._follow(self.service.champion, "champion")
        if self.service.challenger is not None and (router is None or router.halt is None):
            self._follow(self.service.challenger, "challenger")

    def _judge_quality(self) -> None:
        service, router = self.service, self.service.router
        challenger = service.challenger
        if router is None or challenger is None:
            return
        wanted = [r.metric for r in router.sla.rules if r.metric not in TRAFFIC_METRICS and r.metric in QUALITY_METRICS]
        if not wanted:
            return
        service.writer.flush(5.0)
        frame = service.store.prediction_log(challenger.model, version=challenger.version, since=router.step_started())
        frame = frame[(frame["arm"] == "challenger") & frame["ok"] & frame["label"].notna()]
        if len(frame) < router.min_rows:
            return
        import numpy as np

        y = np.asarray(frame["label"].tolist())
        pred = np.asarray(frame["prediction"].tolist())
        score = frame["score"].tolist()
        scores = None if any(s is None for s in score) else np.asarray(score, dtype=float)
        quality = compute_metrics(metric_fns(wanted), y, pred, scores)
        router.judge(quality)

    def _roll_back(self, reason: str) -> None:
        service = self.service
        challenger = service.challenger
        if challenger is None:
            return
        targets = [service.challenger, service.champion]
        for served in targets:
            ref = served.ref if served is not None else None
            if ref is None or ref.model is None or ref.alias is None:
                continue
            if registry.current(ref.model, ref.alias, store=service.store) != challenger.version:
                continue
            move = rollback(ref.model, alias=ref.alias, by="nbtk serve", reason=reason,
                                     store=service.store, settings=self.settings)
            self._event("rollback", f"{ref.model}@{ref.alias}: {move.from_version} -> {move.to_version} ({reason})")

    def _complete(self, reason: str) -> None:
        """The plan completed: move the champion's alias to the challenger and answer from it alone."""
        service, router = self.service, self.service.router
        champion, challenger = service.champion, service.challenger
        ref = champion.ref
        if challenger is None or router is None:
            return
        if not self.promote:
            self._event("plan-completed", f"{reason}; the challenger stays at 100 % (--no-promote): "
                        f"promote it with `nbtk promote {challenger.model} {challenger.version} --to ...`")
            return
        if ref.model is None or ref.alias is None or ref.model != challenger.model:
            self._event("plan-completed", f"{reason}; the champion {ref.text} is not an alias of {challenger.model}, "
                        "so nothing is promoted and the challenger stays at 100 %")
            return
        try:
            move = promote(ref.model, challenger.version, to=ref.alias, by="nbtk serve", reason=reason,
                           store=service.store, settings=self.settings)
        except NbToolkitError as exc:  # a gate or the cadence policy refused: keep the challenger at 100 %
            self._event("promotion-refused", f"{ref.model}@{ref.alias} -> {challenger.version}: {exc}")
            return
        service.champion = ServedModel(challenger.bundle, ref, challenger.path)
        service.challenger = None
        router.finish()
        self._event("promote", f"{ref.model}@{ref.alias}: {move.from_version} -> {move.to_version} ({reason})")

    def _follow(self, served: ServedModel, arm: str) -> None:
        ref = served.ref
        version = current_version(ref, store=self.service.store)
        if version is None or version == served.version:
            return
        fresh = load_served(ref, store=self.service.store, trusted_types=self.trusted_types)
        if arm == "champion":
            self.service.champion = fresh
        else:
            self.service.challenger = fresh
        self._event("reload", f"{arm} {ref.text}: {served.version} -> {fresh.version}")

    def _event(self, kind: str, detail: str) -> None:
        self.service.events.append({"kind": kind, "detail": detail, "ts": time.time()})
        log.warning("nbtk serve: %s: %s", kind, detail)
