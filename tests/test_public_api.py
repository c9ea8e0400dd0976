"""The public API: every name in ``nbtoolkit.__all__`` resolves; the documented core is there."""

from __future__ import annotations

import inspect

import nbtoolkit as nbtk

# DESIGN.md "Python API" (capture stage); later stages add compare, load_bundle, approve, ...
CORE = {
    "log", "log_metric", "log_params", "log_artifact", "log_figure", "log_model", "log_predictions",
    "track_data", "seed", "current_run", "start_run", "runs", "get_run", "load_ipython_extension",
    "__version__", "NbToolkitError", "RunRecord",
}


def test_core_names_are_public() -> None:
    assert CORE <= set(nbtk.__all__)
    assert len(nbtk.__all__) == len(set(nbtk.__all__))


def test_every_public_name_resolves() -> None:
    for name in nbtk.__all__:
        value = getattr(nbtk, name)
        assert value is not None, name
        assert name in dir(nbtk)


def test_unknown_name_is_an_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no_such_thing"):
        nbtk.no_such_thing  # noqa: B018


def test_log_predictions_signature_matches_design() -> None:
    sig = inspect.signature(nbtk.log_predictions)
    params = sig.parameters
    assert list(params)[:2] == ["y_true", "y_pred_or_score"]
    assert params["ids"].kind is inspect.Parameter.KEYWORD_ONLY and params["groups"].kind is inspect.Parameter.KEYWORD_ONLY
    sig = inspect.signature(nbtk.log_metric)
    assert list(sig.parameters) == ["name", "value", "step"] and sig.parameters["step"].default is None
    assert callable(nbtk.start_run) and callable(nbtk.runs) and callable(nbtk.get_run)
