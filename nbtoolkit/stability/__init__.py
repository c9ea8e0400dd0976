"""Keeping production stable: promotion, shadow tests, canary simulation, feature flags, status.

Modules: :mod:`~nbtoolkit.stability.promotion` (promote / rollback and their gates),
:mod:`~nbtoolkit.stability.shadow`, :mod:`~nbtoolkit.stability.canary`,
:mod:`~nbtoolkit.stability.batches` (timed model calls shared by both),
:mod:`~nbtoolkit.stability.flags`, :mod:`~nbtoolkit.stability.cadence` (``nbtk status``).
SLAs and the cadence policy live in :mod:`nbtoolkit.policy`. The public names are re-exported
lazily by ``nbtoolkit`` (``nbtk.shadow``, ``nbtk.canary``, ``nbtk.flag``, ``nbtk.promote``,
``nbtk.rollback``); nothing heavy loads here.
"""
