"""Unit tests for %%experiment declarations (nbtoolkit.declaration)."""

from __future__ import annotations

import datetime
import json
import pickle
import traceback

import pytest

from nbtoolkit.declaration import (
    Declaration,
    LiteralAssignment,
    build_declaration,
    literal_assignment_nodes,
    literal_assignments,
    make_declaration,
    parse_docstring,
    parse_magic_line,
    split_cell,
    validate_name,
)
from nbtoolkit.errors import CriteriaError, DeclarationError

DESIGN_CELL = '''"""
Hypothesis: Gradient boosting raises ROC AUC by at least 0.02 over the logistic baseline.
Success: roc_auc >= 0.90; roc_auc >= baseline.roc_auc + 0.02; fit_seconds <= 30
Scope: feature set v3 only
Owner: ana
Until: 2026-12-10
"""
learning_rate = 0.1          # top-of-cell literal assignments are parameters
n_estimators = 200
model = GradientBoostingClassifier(learning_rate=learning_rate).fit(X_tr, y_tr)
'''

# ------------------------------------------------------------------------------ docstring


def test_parse_docstring_reads_every_key() -> None:
    doc, _ = split_cell(DESIGN_CELL)
    fields = parse_docstring(doc or "")
    assert fields == {
        "hypothesis": "Gradient boosting raises ROC AUC by at least 0.02 over the logistic baseline.",
        "success": ["roc_auc >= 0.90", "roc_auc >= baseline.roc_auc + 0.02", "fit_seconds <= 30"],
        "scope": "feature set v3 only",
        "owner": "ana",
        "until": "2026-12-10",
        "description": "",
    }


def test_success_may_span_lines_one_criterion_per_line() -> None:
    doc = """
    Success:
        roc_auc >= 0.9
        fit_seconds <= 30; loss <= baseline.loss
    Owner: ana
    """
    fields = parse_docstring(doc)
    assert fields["success"] == ["roc_auc >= 0.9", "fit_seconds <= 30", "loss <= baseline.loss"]
    assert fields["owner"] == "ana"


def test_success_continues_on_unindented_non_key_lines() -> None:
    fields = parse_docstring("Success: a >= 1\nb <= 2\nScope: all")
    assert fields["success"] == ["a >= 1", "b <= 2"] and fields["scope"] == "all"


def test_values_continue_and_are_joined_with_spaces() -> None:
    fields = parse_docstring("Hypothesis: boosting helps\n   on small data\nOwner: ana")
    assert fields["hypothesis"] == "boosting helps on small data"


def test_keys_are_case_insensitive() -> None:
    fields = parse_docstring("HYPOTHESIS: h\nsuccess : a >= 1\nscope:s\nOWNER: o\nuntil: 2030-01-01")
    assert (fields["hypothesis"], fields["success"], fields["scope"]) == ("h", ["a >= 1"], "s")
    assert (fields["owner"], fields["until"]) == ("o", "2030-01-01")


def test_everything_else_is_description() -> None:
    doc = """Compare boosting with the logistic baseline.

    Hypothesis: boosting helps
    Success: a >= 1

    Data: the March extract; see the wiki.
    Notes: nothing else.
    """
    fields = parse_docstring(doc)
    assert fields["hypothesis"] == "boosting helps" and fields["success"] == ["a >= 1"]
    assert fields["description"] == (
        "Compare boosting with the logistic baseline.\n\n"
        "Data: the March extract; see the wiki.\nNotes: nothing else."
    )


def test_indented_lines_after_a_blank_line_still_continue_a_value() -> None:
    fields = parse_docstring("Success:\n    a >= 1\n\n    b >= 2\n\nplain text")
    assert fields["success"] == ["a >= 1", "b >= 2"] and fields["description"] == "plain text"


def test_docstring_without_keys_is_all_description() -> None:
    assert parse_docstring("Just a note.")["description"] == "Just a note."
    assert parse_docstring("") == {"hypothesis": "", "success": [], "scope": "", "owner": "",
                                   "until": "", "description": ""}


def test_repeated_key_is_refused_but_success_may_repeat() -> None:
    with pytest.raises(DeclarationError, match="Owner appears twice"):
        parse_docstring("Owner: ana\nOwner: bob")
    assert parse_docstring("Success: a >= 1\nSuccess: b <= 2")["success"] == ["a >= 1", "b <= 2"]


# ------------------------------------------------------------------------------ split_cell


def test_split_cell_returns_docstring_and_blanks_its_lines() -> None:
    doc, body = split_cell(DESIGN_CELL)
    assert doc is not None and doc.lstrip().startswith("Hypothesis: Gradient boosting")
    assert body.splitlines()[:7] == [""] * 7
    assert body.splitlines()[7:] == DESIGN_CELL.splitlines()[7:]
    assert body.count("\n") == DESIGN_CELL.count("\n")


def test_name_error_in_body_reports_the_original_line() -> None:
    cell = '# setup\n"""\nHypothesis: h\nSuccess: a >= 1\n"""\na = 1\nb = undefined_name\n'
    original_line = cell.splitlines().index("b = undefined_name") + 1
    _, body = split_cell(cell)
    namespace: dict[str, object] = {}
    with pytest.raises(NameError) as info:
        exec(compile(body, "<cell>", "exec"), namespace)
    assert traceback.extract_tb(info.tb)[-1].lineno == original_line == 7
    assert namespace["a"] == 1


def test_split_cell_without_docstring_returns_the_cell_unchanged() -> None:
    for cell in ["x = 1\n", "", "# only a comment\n", "f'{x}'\n", "b'bytes'\n", "%time x = 1\n"]:
        assert split_cell(cell) == (None, cell)


def test_split_cell_keeps_a_string_sharing_its_line_with_code() -> None:
    cell = '"""doc"""; x = 1\n'
    assert split_cell(cell) == (None, cell)


def test_split_cell_tolerates_ipython_syntax_in_the_body() -> None:
    cell = "r'''Owner: ana'''\n!ls\n%time y = 2\n"
    doc, body = split_cell(cell)
    assert doc == "Owner: ana" and body == "\n!ls\n%time y = 2\n"


def test_split_cell_with_only_a_docstring_and_no_final_newline() -> None:
    doc, body = split_cell('"""Owner: ana"""')
    assert doc == "Owner: ana" and body == ""
    doc, body = split_cell('"Owner: " "ana"\n')  # implicit concatenation is still a docstring
    assert doc == "Owner: ana" and body == "\n"


# ------------------------------------------------------------------------------ literals


def test_literal_assignments_stop_at_the_first_non_literal() -> None:
    body = "a = 1\nb = f(a)\nc = 3\n"
    assert literal_assignments(body) == {"a": 1}


def test_literal_assignments_accept_plain_literals() -> None:
    body = (
        "\n# parameters\n"
        "lr = -0.1\n"
        "n = -3\n"
        "layers = (64, -32)\n"
        "names = ['a', 'b']\n"
        "grid = {'depth': [2, 3], 'x': None}\n"
        "flag: bool = True\n"
        "label = 'v3'\n"
        "big = 1e3\n"
        "model = fit(lr)\n"
    )
    assert literal_assignments(body) == {
        "lr": -0.1, "n": -3, "layers": (64, -32), "names": ["a", "b"],
        "grid": {"depth": [2, 3], "x": None}, "flag": True, "label": "v3", "big": 1000.0,
    }


@pytest.mark.parametrize(
    "stmt",
    ["x = 1 + 2", "x = y", "x = b'raw'", "x = {1, 2}", "x = 1j", "a = b = 1", "a, b = 1, 2",
     "x += 1", "x = [f()]", "import os", "x: int", "obj.attr = 1", "x = ...", "print(1)"],
)
def test_non_literal_statements_end_the_scan(stmt: str) -> None:
    assert literal_assignments(f"first = 1\n{stmt}\nlast = 2\n") == {"first": 1}


def test_literal_assignment_line_numbers_follow_the_cell() -> None:
    _, body = split_cell('"""\nOwner: ana\n"""\nlr = 0.1\nsizes = (\n    1,\n    2,\n)\na = 1; b = 2\nfit()\n')
    assert literal_assignment_nodes(body) == [
        LiteralAssignment("lr", 0.1, 4, 4),
        LiteralAssignment("sizes", (1, 2), 5, 8),
        LiteralAssignment("a", 1, 9, 9),
        LiteralAssignment("b", 2, 9, 9),
    ]


def test_repeated_name_keeps_its_last_value() -> None:
    body = "a = 1\na = 2\n"
    assert [n.lineno for n in literal_assignment_nodes(body)] == [1, 2]
    assert literal_assignments(body) == {"a": 2}


def test_literal_assignments_skip_a_leading_docstring_and_tolerate_ipython_syntax() -> None:
    assert literal_assignments('"""Owner: ana"""\na = 1\n!pip list\nb = 2\n') == {"a": 1}
    assert literal_assignments("if True:\n    a = 1\n") == {}
    assert literal_assignments("") == {}


# ------------------------------------------------------------------------------ names


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "is empty"),
        ("x" * 200, "200 characters long; the limit is 128"),
        ("../x", "contains '/' at position 2"),
        ("a/b", "contains '/' at position 1; names cannot hold path separators. Use '-' instead, e.g. 'a-b'"),
        ("a\\b", "contains '\\\\' at position 1"),
        ("a\x07b", "control character U+0007 at position 1"),
        ("a\nb", "control character U+000A"),
        ("a\u200bb", "U+200B"),
        ("a..b", "contains '..'"),
        ("a b", "contains ' ' at position 1, which is not allowed; use letters, digits"),
        ("churn@gbm", "contains '@'"),
        (".hidden", "must start with a letter or digit, not '.'"),
        ("-x", "must start with a letter or digit"),
    ],
)
def test_bad_names_are_refused_with_the_fix(name: str, message: str) -> None:
    with pytest.raises(DeclarationError) as info:
        validate_name(name)
    assert message in str(info.value)
    assert str(info.value).startswith("The experiment name")


@pytest.mark.parametrize("name", ["churn-gbm", "a", "v1.2_final", "x" * 128, "größe-3", "実験1"])
def test_good_names_pass(name: str) -> None:
    assert validate_name(name) == name


def test_names_are_nfc_normalised_and_what_is_named() -> None:
    assert validate_name("cafe\u0301") == "caf\u00e9"
    with pytest.raises(DeclarationError, match="^The baseline name"):
        validate_name("a/b", what="baseline")


# ------------------------------------------------------------------------------ magic line


def test_parse_magic_line_reads_every_option() -> None:
    name, opts = parse_magic_line(
        'churn-gbm --baseline churn-logreg --hypothesis "GB beats LR" --success "a >= 1" '
        "--success 'b <= 2' --tag team=growth --tag stage=dev=1 --seed 3 --scope 'v3 only' "
        "--owner ana --until 2026-12-10"
    )
    assert name == "churn-gbm"
    assert opts == {
        "baseline": "churn-logreg", "hypothesis": "GB beats LR", "success": ["a >= 1", "b <= 2"],
        "scope": "v3 only", "owner": "ana", "until": "2026-12-10", "seed": 3,
        "tags": {"team": "growth", "stage": "dev=1"},
    }


def test_parse_magic_line_returns_only_given_options() -> None:
    assert parse_magic_line("exp") == ("exp", {})


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "the experiment name is missing"),
        ("--baseline x", "the experiment name is missing"),
        ("exp --bogus 1", "unrecognized arguments: --bogus 1"),
        ("exp extra", "unrecognized arguments: extra"),
        ("exp --seed many", "argument --seed: invalid int value: 'many'"),
        ("exp --success", "argument --success: expected one argument"),
        ('exp --hypothesis "open', "cannot split the options (No closing quotation)"),
        ("exp --seed -1", "--seed must be a non-negative integer"),
        ("exp --tag team", "--tag 'team' must be KEY=VALUE"),
        ("exp --tag =x", "must be KEY=VALUE"),
        ("exp --tag k=1 --tag k=2", "--tag 'k' is given twice"),
    ],
)
def test_parse_magic_line_errors(line: str, message: str) -> None:
    with pytest.raises(DeclarationError) as info:
        parse_magic_line(line)
    assert message in str(info.value)


def test_argparse_errors_carry_the_usage() -> None:
    with pytest.raises(DeclarationError) as info:
        parse_magic_line("exp --bogus")
    assert "usage: %%experiment NAME [--baseline RUN]" in str(info.value)


# ------------------------------------------------------------------------------ build


def test_build_declaration_from_the_design_example() -> None:
    decl, body = build_declaration("churn-gbm --baseline churn-logreg", DESIGN_CELL)
    assert decl.experiment == "churn-gbm" and decl.baseline == "churn-logreg"
    assert decl.owner == "ana" and decl.until == datetime.date(2026, 12, 10)
    assert [c.text for c in decl.criteria] == [
        "roc_auc >= 0.9", "roc_auc >= baseline.roc_auc + 0.02", "fit_seconds <= 30"]
    assert literal_assignments(body) == {"learning_rate": 0.1, "n_estimators": 200}


def test_options_win_for_scalars_and_add_to_success() -> None:
    cell = '"""\nHypothesis: from doc\nSuccess: a >= 1\nOwner: ana\nScope: doc scope\n"""\n'
    decl, _ = build_declaration(
        'exp --hypothesis "from option" --owner bob --success "b <= 2; c == 3" --until 2027-01-31',
        cell,
    )
    assert decl.hypothesis == "from option" and decl.owner == "bob"
    assert decl.scope == "doc scope"
    assert decl.success == ("a >= 1", "b <= 2", "c == 3")
    assert decl.until == datetime.date(2027, 1, 31)


@pytest.mark.parametrize(
    ("line", "cell"),
    [("exp", '"""Until: 10/12/2026"""\n'), ("exp --until tomorrow", "x = 1\n")],
)
def test_bad_until_names_the_format(line: str, cell: str) -> None:
    with pytest.raises(DeclarationError, match="is not a date; write it as YYYY-MM-DD"):
        build_declaration(line, cell)


def test_malformed_criterion_fails_before_the_body_runs() -> None:
    cell = '"""Success: roc_auc >= 0.9; loss != 0"""\nraise SystemExit("body ran")\n'
    with pytest.raises(CriteriaError) as info:
        build_declaration("exp", cell)
    assert info.value.criterion == "loss != 0"
    with pytest.raises(CriteriaError):
        build_declaration('exp --success "f(x) >= 1"', "x = 1\n")


@pytest.mark.parametrize("line", ["../x", "a/b", "exp --baseline ../etc", "exp --tag 'a b=1'"])
def test_build_declaration_validates_names(line: str) -> None:
    with pytest.raises(DeclarationError):
        build_declaration(line, "x = 1\n")


def test_build_declaration_without_docstring() -> None:
    decl, body = build_declaration("exp --success 'a >= 1'", "a = 2\n")
    assert decl.success == ("a >= 1",) and decl.hypothesis == "" and body == "a = 2\n"


# ------------------------------------------------------------------------------ Declaration


def test_declaration_round_trips_through_json_and_pickle() -> None:
    decl, _ = build_declaration("exp --baseline base --tag team=growth --seed 7", DESIGN_CELL)
    data = json.loads(json.dumps(decl.to_dict()))
    assert data["until"] == "2026-12-10" and data["tags"] == {"team": "growth"}
    assert Declaration.from_dict(data) == decl
    assert pickle.loads(pickle.dumps(decl)) == decl
    assert hash(decl) == hash(Declaration.from_dict(data))


def test_from_stored_reads_back_every_declaration_it_wrote() -> None:
    decl, _ = build_declaration("exp --baseline base --tag team=growth --seed 7", DESIGN_CELL)
    stored = json.loads(json.dumps(decl.to_dict()))
    assert Declaration.from_stored(stored) == decl and Declaration.from_stored(stored).to_dict() == stored


def test_from_stored_keeps_what_does_not_validate_in_extra() -> None:
    stored = {"experiment": "a b", "hypothesis": 42, "success": "x >>= 1; y >= 2", "owner": "ana",
              "until": "2026-13-01", "tags": {"bad key": "v"}, "seed": True, "notes": ["free"]}
    decl = Declaration.from_stored(stored, experiment="ignored-when-stored")
    assert decl.experiment == "a b" and decl.owner == "ana" and decl.declared
    assert (decl.hypothesis, decl.success, decl.until, dict(decl.tags), decl.seed) == ("", (), None, {}, None)
    assert decl.extra == {k: v for k, v in stored.items() if k not in ("experiment", "owner")}
    assert {k: decl.to_dict()[k] for k in stored} == stored  # nothing stored is lost on the way out
    partial = Declaration.from_stored({"hypothesis": "only"}, experiment="from-run")
    assert partial.experiment == "from-run" and partial.hypothesis == "only" and partial.extra == {}


def test_empty_declaration_for_runs_that_declared_nothing() -> None:
    for stored in (None, {}):
        empty = Declaration.from_stored(stored, experiment="plain")
        assert not empty.declared and empty.to_dict() == {} and empty.criteria == []
        assert empty.experiment == "" and empty.hypothesis == "" and empty.until is None
    assert Declaration.from_stored({}) == Declaration.from_stored(None)


def test_declaration_validates_on_construction() -> None:
    with pytest.raises(DeclarationError):
        Declaration(experiment="a/b")
    with pytest.raises(DeclarationError, match="seed"):
        Declaration(experiment="exp", seed=-1)
    with pytest.raises(CriteriaError):
        Declaration(experiment="exp", success=("a >>= 1",))
    assert Declaration(experiment="exp", until="2026-01-02").until == datetime.date(2026, 1, 2)  # type: ignore[arg-type]


def test_make_declaration_for_start_run() -> None:
    decl = make_declaration("exp", success="a >= 1; b <= 2", until="2026-05-01", tags={"n": 3})  # type: ignore[dict-item]
    assert decl.success == ("a >= 1", "b <= 2") and decl.until == datetime.date(2026, 5, 1)
    assert decl.tags == {"n": "3"}
    with pytest.raises(DeclarationError, match="not a date"):
        make_declaration("exp", until="May 1st")
