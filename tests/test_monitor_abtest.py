"""``nbtk abtest``: verdicts on logged outcomes, paired when both versions answered the same rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _predlog import log_frame, write_log
from conftest import nbtk_cli

from nbtoolkit.errors import InputError
from nbtoolkit.monitor.abtest import abtest, render_abtest, translate_criterion
from nbtoolkit.stats import Predictions, align, paired_bootstrap


def _shadow_log(n: int = 400, acc_a: float = 0.80, acc_b: float = 0.92, seed: int = 7):
    """Both versions answered every row (shadow traffic): shared row ids, one label per row."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 2, n)
    right_a = rng.random(n) < acc_a
    right_b = rng.random(n) < acc_b
    rows = []
    for i in range(n):
        for version, right in (("1.0.0", right_a[i]), ("1.1.0", right_b[i])):
            rows.append({"ts": 1000 + i, "version": version, "row_id": f"u{i}", "label": int(truth[i]),
                         "prediction": int(truth[i]) if right else int(1 - truth[i])})
    return log_frame(rows), truth, right_a, right_b


def test_translate_criterion() -> None:
    assert translate_criterion("accuracy >= a.accuracy + 0.01") == "accuracy >= baseline.accuracy + 0.01"
    assert translate_criterion("b.f1 > a.f1") == "f1 > baseline.f1"
    assert translate_criterion("data.accuracy >= 0.9") == "data.accuracy >= 0.9"


def test_paired_verdict_supported_with_the_stats_interval() -> None:
    frame, truth, right_a, right_b = _shadow_log()
    result = abtest(frame, model="m", a="1.0.0", b="1.1.0", success=["accuracy >= a.accuracy + 0.01"])
    assert result.paired and result.n_pairs == 400
    acc = {c.metric: c for c in result.comparisons}["accuracy"]
    assert acc.value_a == pytest.approx(right_a.mean()) and acc.value_b == pytest.approx(right_b.mean())
    # the same paired bootstrap a notebook experiment's verdict uses
    pa = Predictions(truth, np.where(right_a, truth, 1 - truth), ids=np.array([f"u{i}" for i in range(400)]))
    pb = Predictions(truth, np.where(right_b, truth, 1 - truth), ids=pa.ids)
    want = paired_bootstrap(*align(pb, pa), ["accuracy"])["accuracy"].interval
    assert acc.interval == want and acc.interval.method == "paired bootstrap"
    assert acc.interval.low > 0.01
    assert result.verdict.status == "supported"
    (crit,) = result.verdict.results
    assert crit.status == "pass" and crit.baseline == pytest.approx(right_a.mean())


def test_equal_versions_are_not_supported() -> None:
    frame, *_ = _shadow_log(acc_a=0.85, acc_b=0.85)
    result = abtest(frame, model="m", a="1.0.0", b="1.1.0", success=["accuracy >= a.accuracy + 0.01"])
    assert result.verdict.status in ("inconclusive", "rejected")
    worse = abtest(frame, model="m", a="1.0.0", b="1.1.0", success=["accuracy >= a.accuracy + 0.2"])
    assert worse.verdict.status == "rejected"


def test_unpaired_when_versions_answered_different_rows() -> None:
    frame, *_ = _shadow_log()
    split = frame[((frame["version"] == "1.0.0") & (frame.index % 4 == 0)) | ((frame["version"] == "1.1.0") & (frame.index % 4 == 3))]  # A on even rows, B on odd
    result = abtest(split, model="m", a="1.0.0", b="1.1.0", success=["accuracy >= a.accuracy"])
    assert not result.paired and result.n_pairs == 0 and result.n_a == 200 and result.n_b == 200
    acc = {c.metric: c for c in result.comparisons}["accuracy"]
    assert acc.interval.method == "unpaired bootstrap"
    assert acc.interval.low < acc.difference < acc.interval.high


def test_missing_version_and_bad_criterion() -> None:
    frame, *_ = _shadow_log(n=50)
    with pytest.raises(InputError, match="'2.0.0' of m has no labelled rows"):
        abtest(frame, model="m", a="1.0.0", b="2.0.0", success=["accuracy >= a.accuracy"])
    with pytest.raises(InputError):
        abtest(frame, model="m", a="1.0.0", b="1.1.0", success=["accuracy >>= a.accuracy"])


def test_report_escapes_versions() -> None:
    frame, *_ = _shadow_log(n=60)
    frame.loc[frame["version"] == "1.1.0", "version"] = "<script>x</script>"
    html = render_abtest(abtest(frame, model="m", a="1.0.0", b="<script>x</script>", success=["accuracy >= a.accuracy"]))
    assert "<script>x" not in html and "&lt;script&gt;x" in html
    assert "criterion-row" in html


def test_cli_exit_codes(project, tmp_path) -> None:
    frame, *_ = _shadow_log()
    log = write_log(frame.assign(model="cancer"), tmp_path / "log.jsonl")
    report = tmp_path / "ab.html"
    ok = nbtk_cli("abtest", "cancer", "--a", "1.0.0", "--b", "1.1.0", "--success", "accuracy >= a.accuracy + 0.01",
                  "--log", str(log), "-o", str(report), cwd=project)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "paired on 400 shared rows" in ok.stdout and "Verdict: supported" in ok.stdout
    assert "Verdict: <b>supported</b>" in report.read_text(encoding="utf-8")
    # recorded like an experiment: a run with the verdict
    from nbtoolkit.store import open_store

    record = open_store().get_run(ok.stdout.split("A/B test run ")[1].split()[0])
    assert record.kind == "abtest" and record.experiment == "abtest:cancer" and record.verdict == "supported"
    assert record.metrics["difference.accuracy"] == pytest.approx(record.metrics["b.accuracy"] - record.metrics["a.accuracy"])
    no = nbtk_cli("abtest", "cancer", "--a", "1.0.0", "--b", "1.1.0", "--success", "accuracy >= a.accuracy + 0.3",
                  "--log", str(log), "--json", cwd=project)
    assert no.returncode == 1
    assert json.loads(no.stdout)["verdict"]["status"] == "rejected"
    bad = nbtk_cli("abtest", "cancer", "--a", "1.0.0", "--b", "9.9.9", "--success", "accuracy >= a.accuracy",
                   "--log", str(log), cwd=project)
    assert bad.returncode == 2 and "no labelled rows" in bad.stderr
