"""``parse_request`` in-process: the one-block float frame equals what pandas reads, and every other input still goes through the signature check."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from nbtoolkit.serve.protocol import BadRequest, parse_request

SIGNATURE = {"kind": "dataframe", "columns": [{"name": "a", "dtype": "float64"}, {"name": "b", "dtype": "float64"}]}


def parse(body: dict, **kw):
    return parse_request(json.dumps(body).encode(), "application/json", SIGNATURE, **kw)


def test_numbers_in_signature_order_make_one_float_block_equal_to_the_general_path():
    req = parse({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2.5], [3.0, -4]]}, "ids": ["x", "y"]})
    expected = pd.DataFrame({"a": [1.0, 3.0], "b": [2.5, -4.0]})
    pd.testing.assert_frame_equal(req.frame, expected, check_column_type=False)
    assert list(req.frame.dtypes) == ["float64", "float64"] and req.records == [{"a": 1, "b": 2.5}, {"a": 3.0, "b": -4}]
    assert req.keys == ["x", "y"] and req.row_ids == ["x", "y"]
    # another column order, a missing value and a key column take the general path: the same frame
    other = parse({"dataframe_records": [{"b": 2.5, "a": 1, "uid": "k1"}, {"b": None, "a": 3.0, "uid": "k2"}]}, key_column="uid")
    assert list(other.frame.columns) == ["a", "b"] and other.keys == ["k1", "k2"]
    assert other.frame["a"].tolist() == [1.0, 3.0] and pd.isna(other.frame["b"].iloc[1])


@pytest.mark.parametrize("value, problem", [("3.1", "'a' expected float64"), (True, "'a' expected float64")])
def test_strings_and_booleans_are_not_numbers(value, problem):
    with pytest.raises(BadRequest) as err:
        parse({"dataframe_split": {"columns": ["a", "b"], "data": [[value, 1.0]]}})
    assert problem in str(err.value)


def test_an_empty_request_is_refused():
    with pytest.raises(BadRequest, match="no rows"):
        parse({"dataframe_split": {"columns": ["a", "b"], "data": []}})
