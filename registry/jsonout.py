"""JSON text as every output of modelreg writes it (CLI ``--format json`` and the web view's JSON twins):
datetimes in ISO 8601, decimals as floats, bytes as hex, paths and other objects as text."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any


def json_default(o: Any) -> Any:
    if isinstance(o, datetime | date):
        return o.isoformat()
    # a Decimal exists only once its module is loaded (DuckDB loads it to return DECIMAL values): not
    # importing it here spares `ls` and `show` its import
    decimal = sys.modules.get("decimal")
    if decimal is not None and isinstance(o, decimal.Decimal):
        return float(o)
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def dumps(obj: Any, indent: int | None = None) -> str:
    return json.dumps(obj, default=json_default, indent=indent, ensure_ascii=False)
