"""Unit tests for the Success criteria language and verdict rules (nbtoolkit.criteria)."""

from __future__ import annotations

import html
import json
import math
import pickle
from html.parser import HTMLParser

import pytest

from nbtoolkit.criteria import Criterion, parse_criteria, parse_criterion
from nbtoolkit.errors import CriteriaError, InputError
from nbtoolkit.stats import Interval
from nbtoolkit.verdict import CriterionResult, Verdict, evaluate

# ------------------------------------------------------------------------------ parsing forms


@pytest.mark.parametrize(
    ("text", "metric", "op", "target", "normalised"),
    [
        ("roc_auc >= 0.90", "roc_auc", ">=", 0.9, "roc_auc >= 0.9"),
        ("fit_seconds<=30", "fit_seconds", "<=", 30.0, "fit_seconds <= 30"),
        ("loss < 1e-3", "loss", "<", 0.001, "loss < 0.001"),
        ("delta > -2.5", "delta", ">", -2.5, "delta > -2.5"),
        ("n_trees == 200", "n_trees", "==", 200.0, "n_trees == 200"),
        ("gain >= +1.5E2", "gain", ">=", 150.0, "gain >= 150"),
        ("val.loss <= 0.3", "val.loss", "<=", 0.3, "val.loss <= 0.3"),
        ("  acc >= 0.5  ", "acc", ">=", 0.5, "acc >= 0.5"),
    ],
)
def test_absolute_forms(text: str, metric: str, op: str, target: float, normalised: str) -> None:
    c = parse_criterion(text)
    assert (c.metric, c.op, c.target) == (metric, op, target)
    assert c.baseline_metric is None and c.offset == 0.0 and not c.uses_baseline
    assert c.text == normalised == str(c)


@pytest.mark.parametrize(
    ("text", "base", "offset", "normalised"),
    [
        ("loss <= baseline.loss", "loss", 0.0, "loss <= baseline.loss"),
        ("roc_auc>=baseline.roc_auc+0.02", "roc_auc", 0.02, "roc_auc >= baseline.roc_auc + 0.02"),
        ("loss < baseline.loss - 1e-3", "loss", -0.001, "loss < baseline.loss - 0.001"),
        ("acc >= baseline.acc + -0.5", "acc", -0.5, "acc >= baseline.acc - 0.5"),
        ("acc >= baseline.acc - -0.5", "acc", 0.5, "acc >= baseline.acc + 0.5"),
        ("val.loss <= baseline.val.loss", "val.loss", 0.0, "val.loss <= baseline.val.loss"),
        ("acc > baseline.other_acc + 0", "other_acc", 0.0, "acc > baseline.other_acc"),
    ],
)
def test_baseline_forms(text: str, base: str, offset: float, normalised: str) -> None:
    c = parse_criterion(text)
    assert c.uses_baseline and c.target is None
    assert c.baseline_metric == base and c.offset == pytest.approx(offset)
    assert c.text == normalised


def test_normalised_text_parses_back_to_the_same_criterion() -> None:
    for text in ("roc_auc >= baseline.roc_auc + 0.02", "a < -1e-10", "b == 3"):
        c = parse_criterion(text)
        assert parse_criterion(c.text) == c


# ------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "the criterion is empty"),
        ("   ", "the criterion is empty"),
        ("roc_auc != 0.9", "operator '!=' is not supported; use one of >= <= > < =="),
        ("a is None", "operator 'is' is not supported"),
        ("a in b", "operator 'in' is not supported"),
        ("abs(delta) <= 0.1", "function calls are not allowed (found abs(...))"),
        ("a >= float('nan')", "function calls are not allowed (found float(...))"),
        ("__import__('os').system('x') >= 1", "function calls are not allowed"),
        ("a >= model.score", "attribute access is only allowed as baseline.METRIC, got 'model.score'"),
        ("0.8 <= a <= 0.9", "chained comparisons are not supported"),
        ("a >= 1 and b <= 2", "'and' is not supported"),
        ("a >= 1 or b <= 2", "'or' is not supported"),
        ("a >= 1 foo", "it is not a valid expression (invalid syntax at 'foo')"),
        ("a >= 1;", "it is not a valid expression"),  # ';' separates criteria in parse_criteria
        ("a >= nan", "NaN is not a valid target: nothing compares with NaN"),
        ("a >= -NaN", "NaN is not a valid target"),
        ("a >= inf", "the target must be a finite number, not infinity"),
        ("a >= 1e999", "the target must be a finite number, not infinity"),
        ("a >= baseline.a + nan", "NaN is not a valid offset"),
        ("a >= b", "the right side must be a number or baseline.METRIC, got the name 'b'"),
        ("a >= 'x'", "the target must be a number, got 'x'"),
        ("a >= True", "the target must be a number, got True"),
        ("a >= 1j", "the target must be a real number"),
        ("a[0] >= 1", "indexing is not allowed (found a[0])"),
        ("1 >= a", "the left side must be a metric name, got '1'"),
        ("baseline.a >= 1", "the left side must be a metric of this run"),
        ("a >= baseline", "'baseline' needs a metric name: write baseline.METRIC"),
        ("a >= 0.1 + baseline.a", "write the baseline first: 'baseline.METRIC + NUMBER'"),
        ("a >= baseline.a * 2", "the only arithmetic allowed is 'baseline.METRIC + NUMBER'"),
        ("a >= baseline.a + 1 + 2", "found 'baseline.a + 1 + 2'"),
        ("a >= 0.5 + 0.1", "found '0.5 + 0.1'"),
        ("a >= baseline.a + baseline.b", "the offset must be a number, got baseline.b"),
        ("a", "expected a comparison such as 'roc_auc >= 0.9', got 'a'"),
        ("a = 1", "it is not a valid expression"),
    ],
)
def test_refusals_name_the_problem(text: str, reason: str) -> None:
    with pytest.raises(CriteriaError) as info:
        parse_criterion(text)
    err = info.value
    assert reason in err.reason
    assert err.criterion.strip() == text.strip()
    assert isinstance(err, InputError)
    assert "METRIC OP NUMBER" in str(err)  # the message also tells how to write it


def test_criteria_error_survives_pickling() -> None:
    with pytest.raises(CriteriaError) as info:
        parse_criterion("a != 1")
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.criterion, clone.reason) == (info.value.criterion, info.value.reason)


def test_parse_criteria_splits_on_semicolons_and_newlines() -> None:
    source = "roc_auc >= 0.90; roc_auc >= baseline.roc_auc + 0.02\n\n fit_seconds <= 30 ;"
    assert [c.text for c in parse_criteria(source)] == [
        "roc_auc >= 0.9",
        "roc_auc >= baseline.roc_auc + 0.02",
        "fit_seconds <= 30",
    ]


def test_parse_criteria_accepts_an_iterable_whose_items_hold_semicolons() -> None:
    parsed = parse_criteria(["a >= 1; b <= 2", "", "c == 3"])
    assert [c.metric for c in parsed] == ["a", "b", "c"]
    assert parse_criteria([]) == [] and parse_criteria(" ; \n") == []


def test_parse_criteria_reports_the_bad_part() -> None:
    with pytest.raises(CriteriaError) as info:
        parse_criteria("a >= 1; b != 2; c <= 3")
    assert info.value.criterion == "b != 2"


def test_criterion_dict_round_trip() -> None:
    c = parse_criterion("roc_auc >= baseline.roc_auc + 0.02")
    d = json.loads(json.dumps(c.to_dict()))
    assert d["baseline_metric"] == "roc_auc" and d["offset"] == 0.02
    assert Criterion.from_dict(d) == c
    with pytest.raises(ValueError, match="no 'text'"):
        Criterion.from_dict({"metric": "a"})


# ------------------------------------------------------------------------------ evaluation


def _one(text: str, metrics: dict[str, float], **kw: object) -> CriterionResult:
    verdict = evaluate(parse_criteria(text), metrics, **kw)  # type: ignore[arg-type]
    assert len(verdict.results) == 1
    return verdict.results[0]


@pytest.mark.parametrize(
    ("text", "value", "status"),
    [
        ("a >= 0.9", 0.9, "pass"),
        ("a >= 0.9", 0.89, "fail"),
        ("a > 0.9", 0.9, "fail"),
        ("a > 0.9", 0.91, "pass"),
        ("a <= 30", 30, "pass"),
        ("a <= 30", 30.5, "fail"),
        ("a < 30", 29.9, "pass"),
        ("a < 30", 30, "fail"),
        ("a == 0.3", 0.1 + 0.2, "pass"),  # math.isclose, not exact float equality
        ("a == 0.3", 0.3001, "fail"),
        ("a == 0", 1e-13, "pass"),  # abs_tol=1e-12
        ("a == 0", 1e-11, "fail"),
    ],
)
def test_absolute_comparisons(text: str, value: float, status: str) -> None:
    r = _one(text, {"a": value})
    assert r.status == status and r.passed is (status == "pass")
    assert r.observed == value and r.bar == parse_criterion(text).target
    assert r.difference is None and r.interval is None


def test_reason_sentences_for_absolute_criteria() -> None:
    assert _one("a >= 0.9", {"a": 0.93}).reason == "observed 0.93 meets >= 0.9"
    assert _one("a >= 0.9", {"a": 0.85}).reason == "observed 0.85 fails >= 0.9"


def test_close_values_are_shown_with_full_precision() -> None:
    r = _one("a >= 0.9", {"a": 0.8999999})
    assert r.status == "fail" and "0.8999999" in r.reason


def test_baseline_criterion_with_point_values() -> None:
    r = _one("roc_auc >= baseline.roc_auc + 0.02", {"roc_auc": 0.93}, baseline={"roc_auc": 0.90})
    assert r.status == "pass" and r.passed is True
    assert r.baseline == 0.90 and r.bar == pytest.approx(0.92)
    assert r.difference == pytest.approx(0.03)
    r = _one("roc_auc >= baseline.roc_auc + 0.02", {"roc_auc": 0.91}, baseline={"roc_auc": 0.90})
    assert r.status == "fail" and "baseline 0.9 + 0.02" in r.reason


def test_baseline_bar_tolerates_float_noise() -> None:
    # 0.1 + 0.2 == 0.30000000000000004 in floating point; the criterion must still hold
    r = _one("a >= baseline.a + 0.2", {"a": 0.3}, baseline={"a": 0.1})
    assert r.bar is not None and r.bar > 0.3
    assert r.status == "pass"
    assert _one("a > baseline.a + 0.2", {"a": 0.3}, baseline={"a": 0.1}).status == "fail"


def test_baseline_criterion_may_name_another_baseline_metric() -> None:
    r = _one("acc > baseline.old_acc", {"acc": 0.8}, baseline={"old_acc": 0.7, "acc": 0.9})
    assert r.status == "pass" and r.baseline == 0.7


def test_missing_metric_is_inconclusive() -> None:
    r = _one("roc_auc >= 0.9", {"other": 1.0})
    assert r.status == "inconclusive" and r.passed is None and r.observed is None
    assert r.reason == "metric 'roc_auc' was not recorded"


def test_non_numeric_metric_is_inconclusive() -> None:
    r = _one("a >= 0.9", {"a": "high"})  # type: ignore[dict-item]
    assert r.status == "inconclusive" and "not a number" in r.reason


@pytest.mark.parametrize("text", ["a >= 0.9", "a <= baseline.a"])
def test_nan_observed_is_inconclusive(text: str) -> None:
    r = _one(text, {"a": math.nan}, baseline={"a": 1.0})
    assert r.status == "inconclusive" and r.reason == "metric 'a' is NaN"


def test_missing_baseline_uses_the_given_reason() -> None:
    r = _one(
        "a >= baseline.a",
        {"a": 1.0},
        baseline_missing_reason="no supported run of 'churn-logreg' yet",
    )
    assert r.status == "inconclusive" and r.reason == "no supported run of 'churn-logreg' yet"
    assert _one("a >= baseline.a", {"a": 1.0}).reason == "no baseline run to compare with"


def test_metric_missing_from_baseline_is_inconclusive() -> None:
    r = _one("a >= baseline.a", {"a": 1.0}, baseline={"b": 1.0})
    assert r.status == "inconclusive"
    assert r.reason == "metric 'a' was not recorded in the baseline run"
    r = _one("a >= baseline.a", {"a": 1.0}, baseline={"a": math.nan})
    assert r.status == "inconclusive" and "not a number" in r.reason


def test_absolute_criteria_do_not_need_a_baseline() -> None:
    assert _one("a >= 1", {"a": 2.0}, baseline_missing_reason="none").status == "pass"


# ------------------------------------------------------------------------------ intervals


@pytest.mark.parametrize(
    ("text", "low", "high", "status", "words"),
    [
        ("d >= baseline.d + 0.02", 0.021, 0.04, "pass", "clears the bar 0.02"),
        ("d >= baseline.d + 0.02", 0.02, 0.04, "pass", "clears"),  # touching counts for >=
        ("d > baseline.d + 0.02", 0.02, 0.04, "inconclusive", "straddles"),
        ("d >= baseline.d + 0.02", 0.001, 0.04, "inconclusive",
         "95% interval [+0.0010, +0.0400] of the difference straddles the bar 0.02"),
        ("d >= baseline.d + 0.02", -0.01, 0.01, "fail", "lies entirely below the bar 0.02"),
        ("d <= baseline.d", -0.2, -0.1, "pass", "clears the bar 0"),
        ("d <= baseline.d", -0.2, 0.1, "inconclusive", "straddles the bar 0"),
        ("d < baseline.d", 0.1, 0.2, "fail", "lies entirely above the bar 0"),
        ("d < baseline.d - 0.1", -0.3, -0.1, "inconclusive", "straddles"),
        ("d == baseline.d", -0.1, 0.1, "inconclusive", "straddles"),
        ("d == baseline.d", 0.1, 0.2, "fail", "excludes the bar 0"),
        ("d == baseline.d", 0.0, 0.0, "pass", "sits on the bar 0"),
    ],
)
def test_interval_of_the_difference_decides(
    text: str, low: float, high: float, status: str, words: str
) -> None:
    # the point difference always passes, so only the interval can change the outcome
    c = parse_criterion(text)
    point = 0.5 if c.op in (">=", ">") else (-0.5 if c.op in ("<=", "<") else 0.0)
    r = _one(text, {"d": 1.0 + point}, baseline={"d": 1.0}, intervals={"d": Interval(low, high)})
    assert r.status == status
    assert words in r.reason
    assert r.interval == Interval(low, high)
    assert r.difference == pytest.approx(point)


def test_interval_with_nan_bounds_is_inconclusive() -> None:
    r = _one("d >= baseline.d", {"d": 2.0}, baseline={"d": 1.0},
             intervals={"d": Interval(math.nan, 0.5)})
    assert r.status == "inconclusive" and "NaN bounds" in r.reason


def test_intervals_are_ignored_for_absolute_criteria() -> None:
    r = _one("d >= 0.5", {"d": 0.9}, intervals={"d": Interval(-1.0, 1.0)})
    assert r.status == "pass" and r.interval is None


def test_interval_rejects_low_above_high() -> None:
    with pytest.raises(ValueError, match="above"):
        Interval(0.2, 0.1)


def test_interval_level_appears_in_the_reason() -> None:
    r = _one("d >= baseline.d", {"d": 2.0}, baseline={"d": 1.0},
             intervals={"d": Interval(-0.1, 0.3, level=0.9)})
    assert r.reason.startswith("90% interval [-0.100, +0.300]")


# ------------------------------------------------------------------------------ verdict rules


def _verdict(metrics: dict[str, float], **kw: object) -> Verdict:
    criteria = parse_criteria("a >= 1; b <= 2; c >= baseline.c")
    return evaluate(criteria, metrics, **kw)  # type: ignore[arg-type]


def test_supported_when_every_criterion_passes() -> None:
    v = _verdict({"a": 1, "b": 2, "c": 3}, baseline={"c": 3})
    assert v.status == "supported" and v.reason == "all 3 criteria hold"


def test_rejected_when_any_fails_even_if_another_is_undecided() -> None:
    v = _verdict({"a": 0, "b": 2})  # a fails, c has no metric and no baseline
    assert [r.status for r in v.results] == ["fail", "pass", "inconclusive"]
    assert v.status == "rejected" and v.reason == "1 of 3 criteria failed: a >= 1"


def test_inconclusive_when_none_fails_but_one_is_undecided() -> None:
    v = _verdict({"a": 1, "b": 2, "c": 3}, baseline_missing_reason="baseline run not found")
    assert v.status == "inconclusive"
    assert v.reason == "1 of 3 criteria could not be decided: c >= baseline.c"
    assert v.results[2].reason == "baseline run not found"


def test_no_criteria_is_inconclusive() -> None:
    v = evaluate([], {"a": 1.0})
    assert v.status == "inconclusive" and v.results == ()
    assert v.reason == "no success criteria declared"


def test_single_criterion_summary() -> None:
    assert evaluate(parse_criteria("a >= 1"), {"a": 2}).reason == "the criterion holds"


def test_verdict_dict_round_trip_is_json_safe() -> None:
    v = evaluate(
        parse_criteria("a >= 1; d >= baseline.d + 0.02; e <= 1"),
        {"a": 2, "d": 1.05, "e": math.nan},
        baseline={"d": 1.0},
        intervals={"d": Interval(0.01, 0.09, n_resamples=1000)},
    )
    data = v.to_dict()
    text = json.dumps(data, allow_nan=False)  # NaN observed becomes null
    assert data["schema"] == 1 and data["results"][2]["observed"] is None
    back = Verdict.from_dict(json.loads(text))
    assert back.status == v.status == "inconclusive"
    assert back.results[:2] == v.results[:2]
    assert back.results[1].interval == Interval(0.01, 0.09, n_resamples=1000)


def test_verdict_from_dict_refuses_bad_status_and_warns_on_newer_schema() -> None:
    with pytest.raises(ValueError, match="invalid verdict status"):
        Verdict.from_dict({"status": "maybe", "results": []})
    with pytest.warns(UserWarning, match="newer"):
        v = Verdict.from_dict({"schema": 99, "status": "supported", "results": []})
    assert v.status == "supported"


def test_repr_lists_each_criterion() -> None:
    text = repr(_verdict({"a": 0, "b": 2}))
    assert text.splitlines()[0].startswith("Verdict: rejected")
    assert "[fail] a >= 1: observed 0 fails >= 1" in text
    assert "[inconclusive] c >= baseline.c" in text


class _TextCollector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_repr_html_is_a_table_with_every_string_escaped() -> None:
    evil = "<script>alert(1)</script>"
    v = evaluate(parse_criteria("a >= baseline.a; b <= 2"), {"a": 1, "b": 1},
                 baseline_missing_reason=evil)
    out = v._repr_html_()
    assert "<script>" not in out and html.escape(evil) in out
    parser = _TextCollector()
    parser.feed(out)
    assert "script" not in parser.tags
    assert parser.tags.count("tr") == 3 and "table" in parser.tags
    text = "".join(parser.text)
    assert "a >= baseline.a" in text and "b <= 2" in text and evil in text
    assert "Verdict: inconclusive" in text


def test_repr_html_without_criteria_has_no_table() -> None:
    out = evaluate([], {})._repr_html_()
    assert "<table" not in out and "no success criteria declared" in out
