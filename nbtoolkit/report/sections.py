"""Extra run-report sections contributed by later stages (an extension point).

A section is a callable ``section(record, store) -> (title, html) | None`` registered under the
``nbtoolkit.report_sections`` entry-point group; it returns ``None`` for runs it does not
describe. Section HTML is inserted as is, so a section must escape every value it shows (the
built-in shadow and canary sections do). The report stage never imports the stages that
contribute sections: they are found through their entry points, lazily.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from nbtoolkit._registry import Registry

if TYPE_CHECKING:
    from nbtoolkit.store import RunRecord, Store


class ReportSection(Protocol):
    def __call__(self, record: RunRecord, store: Store) -> tuple[str, str] | None: ...


SECTIONS: Registry[Any] = Registry("nbtoolkit.report_sections", "report section")


def extra_sections(record: RunRecord, store: Store) -> list[dict[str, str]]:
    """``[{"title": ..., "html": ...}]`` from every registered section that describes ``record``."""
    out = []
    for name in SECTIONS.names():
        result = SECTIONS.get(name)(record, store)
        if result is not None:
            title, html = result
            out.append({"name": name, "title": title, "html": html})
    return out
