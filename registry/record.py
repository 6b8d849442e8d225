"""A model's record, assembled from sections.

A section is a module ``registry/sections/<name>.py`` exposing ``SECTION = Section(name, order, load,
render)``. ``load(con, sha256)`` reads the registry and returns a JSON-able value (or None when the
section has nothing for this model); ``render(value)`` turns that value into text lines for ``show``: a
list of ``(label, value)`` pairs and/or plain strings. ``show`` prints every section in order; ``show
--format json`` and the exhibit's ``record.json`` carry every section's value under its name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

Line = tuple[str, Any] | str


@dataclass(frozen=True)
class Section:
    name: str
    order: int
    load: Callable[[duckdb.DuckDBPyConnection, str], Any]
    render: Callable[[Any], list[Line]]
    #: a heading for ``show``; defaults to the name
    title: str = ""


_SECTIONS: list[Section] | None = None


def load_sections() -> list[Section]:
    global _SECTIONS
    if _SECTIONS is None:
        import registry.sections as pkg

        found = []
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            mod = importlib.import_module(f"registry.sections.{info.name}")
            s = getattr(mod, "SECTION", None)
            if isinstance(s, Section):
                found.append(s)
        _SECTIONS = sorted(found, key=lambda s: (s.order, s.name))
    return _SECTIONS


def build_record(
    con: duckdb.DuckDBPyConnection, sha256: str, only: set[str] | None = None
) -> dict[str, Any]:
    """Every section's value for one model (sections with nothing to say are omitted)."""
    out: dict[str, Any] = {}
    for s in load_sections():
        if only is not None and s.name not in only:
            continue
        value = s.load(con, sha256)
        if value is not None:
            out[s.name] = value
    return out

