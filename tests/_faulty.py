"""A challenger that fails on purpose (raises or sleeps), for the live canary tests.

It wraps a fitted scikit-learn classifier and misbehaves (raises, sleeps, or with mode ``wrong`` answers with the classes swapped) while ``trigger`` exists (always when
``trigger`` is ``None``). Saved with skops, it loads only when the server trusts
``_faulty.Faulty`` (``nbtk serve --trust-type _faulty.Faulty``).
"""

from __future__ import annotations

import os
import time
from typing import Any


class Faulty:
    def __init__(self, model: Any = None, mode: str = "raise", trigger: str | None = None, delay: float = 0.3) -> None:
        self.model, self.mode, self.trigger, self.delay = model, mode, trigger, delay
        if model is not None:
            self.classes_ = model.classes_
            self.feature_names_in_ = model.feature_names_in_

    def _misbehave(self) -> None:
        if self.trigger is None or os.path.exists(self.trigger):
            if self.mode == "raise":
                raise RuntimeError("challenger broken on purpose")
            time.sleep(self.delay)

    def predict_proba(self, X: Any) -> Any:
        if self.mode == "wrong":  # answers, but with the classes swapped
            return self.model.predict_proba(X)[:, ::-1]
        self._misbehave()
        return self.model.predict_proba(X)

    def predict(self, X: Any) -> Any:
        self._misbehave()
        return self.model.predict(X)
