"""Keeping production stable: SLAs, shadow tests, canary simulation, feature flags and cadence.

Modules: :mod:`~nbtoolkit.stability.sla`, :mod:`~nbtoolkit.stability.shadow`,
:mod:`~nbtoolkit.stability.canary`, :mod:`~nbtoolkit.stability.flags`,
:mod:`~nbtoolkit.stability.cadence`. The public names are re-exported lazily by
``nbtoolkit`` (``nbtk.shadow``, ``nbtk.canary``, ``nbtk.flag``); nothing heavy loads here.
"""
