"""Loading the JSON Schemas shipped in the top-level ``schemas`` package.

The schemas are package data (``schemas/<name>.schema.json``), read through ``importlib.resources`` so
that they work from a source tree, a wheel or a zip. Each call returns a fresh copy: callers may not
change the cached original.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from registry.errors import RegistryError


@cache
def _load(name: str) -> dict[str, Any]:
    if "/" in name or "\\" in name or name.startswith("."):
        raise RegistryError(f"bad schema name {name!r}")
    res = resources.files("schemas").joinpath(f"{name}.schema.json")
    if not res.is_file():
        raise RegistryError(f"schema {name!r} is not shipped (no schemas/{name}.schema.json)")
    try:
        doc = json.loads(res.read_text(encoding="utf-8"))
    except ValueError as e:
        raise RegistryError(f"schema {name!r} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"schema {name!r} is not a JSON object")
    return doc


def load_schema(name: str) -> dict[str, Any]:
    """The schema ``schemas/<name>.schema.json`` as a dict (a copy: change it freely)."""
    return copy.deepcopy(_load(name))


def schema_names() -> list[str]:
    """Names of every shipped schema."""
    suffix = ".schema.json"
    return sorted(
        p.name[: -len(suffix)] for p in resources.files("schemas").iterdir() if p.name.endswith(suffix)
    )
