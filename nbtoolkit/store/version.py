"""The store schema version this nbtoolkit reads and writes.

A module of its own so that :mod:`nbtoolkit.store.listing` can check a store's version without
loading the schema (SQLAlchemy). :mod:`nbtoolkit.store.schema` says how it changes.
"""

SCHEMA_VERSION = 6
