"""A model's canonical record: everything the registry knows about one blob, as RFC 8785 JSON.

The record is a pure function of the registry's state (and of the software that builds it): it holds no
"now", no user name and no signer. Those live in the exhibit's ``envelope.json``, so building the record
twice from the same registry gives byte-identical ``record.json``.

Values are normalised before canonicalisation so that RFC 8785 can represent them exactly:

* timestamps become ISO 8601 UTC strings with a ``Z`` suffix (``2024-05-01T12:00:00.123456Z``);
* integers outside JavaScript's safe range (|n| > 2**53 - 1, e.g. ``mtime_ns``) become decimal strings;
* non-finite floats become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``;
* bytes become lower-case hex; tuples, sets and numpy values become lists and Python numbers;
* object keys are strings (other keys are converted with ``str``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from registry import __version__
from registry.errors import NotFound

if TYPE_CHECKING:
    import duckdb

RECORD_VERSION = "1.0"
SCHEMA_ID = "https://modelreg.dev/schemas/model-record/1.0/model-record.schema.json"
MAX_SAFE_INT = 2**53 - 1

#: packages whose versions go into the record's environment (those that shape the record's content)
ENVIRONMENT_PACKAGES = ("duckdb", "numpy", "safetensors", "blake3", "rfc8785", "jsonschema", "scipy")


class SectionLike(Protocol):
    """The record-section contract (``registry.record.Section``): a name, an order and a loader."""

    @property
    def name(self) -> str: ...

    @property
    def order(self) -> int: ...

    @property
    def load(self) -> Callable[[duckdb.DuckDBPyConnection, str], Any]: ...

    @property
    def render(self) -> Callable[[Any], Sequence[Any]]: ...


# -- normalisation -----------------------------------------------------------------------------


def iso_utc(value: datetime | date) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix; naive datetimes are taken as UTC (DuckDB's TIMESTAMP)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        value = value.astimezone(timezone.utc)
        text = value.strftime("%Y-%m-%dT%H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond:06d}"
        return text + "Z"
    return value.isoformat()


def ns_to_iso(ns: int) -> str:
    """Nanoseconds since the epoch as ISO 8601 UTC (to the microsecond, exactly, no float rounding)."""
    seconds, rest = divmod(ns, 10**9)
    return iso_utc(datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest // 1000))


def jsonable(value: Any) -> Any:
    """Turn ``value`` into plain JSON data that RFC 8785 serialises exactly (see module docstring)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Decimal):
        return jsonable(int(value)) if value == value.to_integral_value() else jsonable(float(value))
    if isinstance(value, datetime | date):
        return iso_utc(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if hasattr(value, "to_dict") and callable(value.to_dict):
        return jsonable(value.to_dict())
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return jsonable(value.tolist())
    if hasattr(value, "__dataclass_fields__"):
        from dataclasses import asdict

        return jsonable(asdict(value))
    raise TypeError(f"cannot put a {type(value).__name__} into a record")


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 (JCS) serialisation of ``obj`` after :func:`jsonable` normalisation."""
    import rfc8785

    return rfc8785.dumps(jsonable(obj))


def sha256_hex(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _json_column(text: Any) -> Any:
    """A DuckDB JSON column value (returned as text) parsed, or None."""
    if text is None:
        return None
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


# -- the record ----------------------------------------------------------------------------------


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    cols = [d[0] for d in cur.description or []]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def tensor_index_digest(entries: Iterable[tuple[str, str, Sequence[int], int | None, int | None]]) -> str:
    """SHA-256 of the canonical list ``[[name, dtype, shape, begin, end], …]`` in header order.

    The same digest is recomputed by ``verify --model`` from the file's header, so the record's tensor
    summary can be checked against the file without storing every tensor in the record.
    """
    return sha256_hex(canonical_bytes([[n, d, list(s), b, e] for n, d, s, b, e in entries]))


def _identification(blob: Mapping[str, Any]) -> dict[str, Any]:
    crc = blob.get("crc32")
    hashes: dict[str, Any] = {
        "sha256": blob["sha256"],
        "autov1": blob.get("autov1"),
        "autov2": blob.get("autov2"),
        "autov3": blob.get("autov3"),
        "blake3": blob.get("blake3"),
        "crc32": crc,
        # Civitai prints the four CRC32 bytes reversed relative to zlib's value
        "crc32_civitai": bytes.fromhex(crc)[::-1].hex().upper() if crc and len(crc) == 8 else None,
        "git_sha1": blob.get("git_sha1"),
    }
    return {
        "sha256": blob["sha256"],
        "size": blob["size"],
        "format": blob["format"],
        "header_len": blob.get("header_len"),
        "n_tensors": blob.get("n_tensors"),
        "first_seen": blob.get("first_seen"),
        "analyzers": blob.get("analyzers"),
        "hashes": hashes,
        "prefixed": {k: f"{k}:{v}" for k, v in hashes.items() if v and k in ("sha256", "blake3")},
    }


def _sightings(con: duckdb.DuckDBPyConnection, sha256: str) -> list[dict[str, Any]]:
    rows = _rows(
        con,
        "SELECT id, host, path, size, mtime_ns, inode, device, seen_at, source, provenance "
        "FROM sightings WHERE blob_sha256 = ? ORDER BY seen_at, id",
        [sha256],
    )
    out = []
    for r in rows:
        mtime = r.get("mtime_ns")
        r["mtime"] = ns_to_iso(mtime) if isinstance(mtime, int) else None
        r["provenance"] = _json_column(r.get("provenance"))
        out.append(r)
    return out


def _tensor_summary(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any]:
    rows = con.execute(
        "SELECT name, dtype, shape, data_begin, data_end, nbytes FROM tensors WHERE blob_sha256 = ? ORDER BY idx",
        [sha256],
    ).fetchall()
    by_dtype: dict[str, dict[str, int]] = {}
    total_bytes = 0
    total_params = 0
    for _name, dtype, shape, _b, _e, nbytes in rows:
        n = 1
        for d in shape or []:
            n *= int(d)
        entry = by_dtype.setdefault(dtype, {"tensors": 0, "parameters": 0, "bytes": 0})
        entry["tensors"] += 1
        entry["parameters"] += n
        entry["bytes"] += int(nbytes or 0)
        total_bytes += int(nbytes or 0)
        total_params += n
    return {
        "count": len(rows),
        "parameters": total_params,
        "bytes": total_bytes,
        "dtypes": dict(sorted(by_dtype.items())),
        "index_sha256": tensor_index_digest((r[0], r[1], r[2] or [], r[3], r[4]) for r in rows),
    }


def _findings(con: duckdb.DuckDBPyConnection, sha256: str) -> list[dict[str, Any]]:
    rows = _rows(
        con,
        "SELECT id, rule_id, severity, severity_rank, message, evidence, host, path, created_at "
        "FROM findings WHERE blob_sha256 = ? ORDER BY id",
        [sha256],
    )
    for r in rows:
        r["evidence"] = _json_column(r.get("evidence"))
    return rows


def _events(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any]:
    entries = _rows(
        con,
        "SELECT seq, event_at, actor, action, subject, payload, prev_hash, hash FROM events "
        "WHERE subject = ? OR CAST(payload AS VARCHAR) LIKE '%' || ? || '%' ORDER BY seq",
        [sha256, sha256],
    )
    for e in entries:
        e["payload"] = _json_column(e.get("payload"))
    head = con.execute("SELECT seq, hash, event_at FROM events ORDER BY seq DESC LIMIT 1").fetchone()
    count = con.execute("SELECT count(*) FROM events").fetchone()
    return {
        "entries": entries,
        "chain_head": {"seq": head[0], "hash": head[1], "event_at": head[2]} if head else None,
        "chain_length": int(count[0]) if count else 0,
        "anchor": _anchor(con),
    }


def _anchor(con: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    """The head file beside the registry (registry/store/anchor.py) as it was when the record was built:
    a third party compares it with ``chain_head`` and with ``modelreg log --verify`` of the registry."""
    from registry.store.anchor import read_head

    row = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    if not row or not row[0]:
        return None
    head = read_head(Path(str(row[0])))
    return {k: v for k, v in head.as_dict().items() if k != "format"} if head is not None else None


def environment() -> dict[str, Any]:
    """The software that built the record (no host name, no user, no time)."""
    import platform  # here, not at the top: `show` reads timestamps from this module, never this
    from importlib import metadata as importlib_metadata

    packages: dict[str, str | None] = {}
    for name in ENVIRONMENT_PACKAGES:
        try:
            packages[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            packages[name] = None
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": {"system": platform.system(), "machine": platform.machine()},
        "packages": packages,
    }


def load_sections(
    con: duckdb.DuckDBPyConnection, sha256: str, sections: Sequence[SectionLike]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Every section's value (None when it has nothing for this model) and the errors of failed loads.

    A section whose loader raises does not stop the record: its value is None and the error is kept
    (``section_errors`` in the record), so the report can say "could not be loaded" instead of
    "not analysed".
    """
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for s in sorted(sections, key=lambda s: (s.order, s.name)):
        try:
            values[s.name] = jsonable(s.load(con, sha256))
        except Exception as e:  # noqa: BLE001 - one failing section must not lose the whole record
            values[s.name] = None
            errors[s.name] = f"{type(e).__name__}: {e}"
    return values, errors


def discover_sections() -> list[SectionLike]:
    """The record sections registered in ``registry/sections/`` (see :mod:`registry.record`)."""
    from registry.record import load_sections as registered

    return list(registered())


def build_record(
    con: duckdb.DuckDBPyConnection, sha256: str, sections: Sequence[SectionLike] | None = None
) -> dict[str, Any]:
    """Assemble the canonical record of blob ``sha256`` (already normalised by :func:`jsonable`)."""
    got = _rows(con, "SELECT * FROM blobs WHERE sha256 = ?", [sha256])
    if not got:
        raise NotFound(f"no model with sha256 {sha256} in the registry")
    blob = got[0]
    if sections is None:
        sections = discover_sections()
    section_values, section_errors = load_sections(con, sha256, sections)
    record: dict[str, Any] = {
        "$schema": SCHEMA_ID,
        "record_version": RECORD_VERSION,
        "model": _identification(blob),
        "sightings": _sightings(con, sha256),
        "metadata": {"verbatim": _json_column(blob.get("metadata"))},
        "tensors": _tensor_summary(con, sha256),
        "findings": _findings(con, sha256),
        "events": _events(con, sha256),
        "sections": section_values,
        "section_errors": section_errors,
        "tool": {"name": "modelreg", "version": __version__, "record_version": RECORD_VERSION},
        "environment": environment(),
    }
    return jsonable(record)


def record_bytes(record: Mapping[str, Any]) -> bytes:
    """The bytes of ``record.json``: RFC 8785 canonical JSON (no trailing newline)."""
    return canonical_bytes(record)


# -- schema -----------------------------------------------------------------------------------------


def record_schema() -> dict[str, Any]:
    """``schemas/model-record.schema.json`` as shipped with the package."""
    from importlib import resources

    text = (resources.files("schemas") / "model-record.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_errors(record: Any) -> list[tuple[str, str]]:
    """Every violation of the record schema as ``(json_path, message)``; empty when the record is valid."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(record_schema())
    errors = sorted(validator.iter_errors(record), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [(e.json_path, e.message) for e in errors]
