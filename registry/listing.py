"""Listing and searching registered models: the one query layer behind ``modelreg ls`` and the web list.

:class:`ListQuery` holds every filter of ``ls`` plus free text (``q``), a sort key, and a page
(``offset``/``limit``); :func:`list_models` runs it against the ``model_listing`` table (the ``models``
view's list columns, materialised: registry/store/listing_table.py), or against the view itself for a
raw ``where`` condition, and returns the rows (the columns of ``ls --format json``) and, when asked, the
total number of matching models. Both give the same rows (tests/test_listing_table.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from registry.errors import UsageError
from registry.store._duck import duckdb
from registry.store.listing_table import has_listing

SEVERITIES = ["info", "low", "medium", "high", "critical"]
COLUMNS = ["sha256", "autov2", "name", "format", "kind", "arch", "size", "n_tensors", "n_findings", "max_severity", "path"]
FORMS = ["lora", "loha", "lokr", "ia3", "glora", "oft", "boft", "diff"]

#: sort key -> ORDER BY terms (as ``ls`` sorts; NULLs last). ``descending`` reverses every term, ties
#: (broken by SHA-256) and NULLs included, so a reversed list is exactly the list read backwards.
SORTS: dict[str, list[tuple[str, bool]]] = {
    "path": [("path", False)],
    "size": [("size", True)],
    "first_seen": [("first_seen", False)],
    "findings": [("max_severity_rank", True), ("n_findings", True)],
    "name": [("name", False)],
    "kind": [("kind", False)],
    "arch": [("arch", False)],
    "format": [("format", False)],
}


def order_by(sort: str, descending: bool = False) -> str:
    """The ORDER BY text of a sort key, with SHA-256 as the last tie-breaker."""
    terms = [*SORTS[sort], ("sha256", False)]
    return ", ".join(
        f"{col} {'DESC' if desc != descending else 'ASC'} NULLS {'FIRST' if descending else 'LAST'}"
        for col, desc in terms
    )


@dataclass(frozen=True)
class ListQuery:
    """Every filter of ``modelreg ls``; None (or empty) means "no filter"."""

    file_format: str | None = None
    name_glob: str | None = None
    min_severity: str | None = None
    kind: str | None = None
    arch: str | None = None
    trigger: str | None = None
    used_in: str | None = None
    base_ref: str | None = None
    min_eff_rank: float | None = None
    max_eff_rank: float | None = None
    min_norm: float | None = None
    max_norm: float | None = None
    forms: tuple[str, ...] = ()
    nonfinite: bool = False
    #: free text, case-insensitive substring: file name and path, trigger words, title, output name,
    #: author, tags and every other embedded metadata value
    q: str | None = None
    #: raw SQL condition on the ``models`` view (``ls --where``; never offered on the web)
    where: str | None = None
    sort: str = "path"
    descending: bool = False
    limit: int | None = None
    offset: int = 0


@dataclass
class ListResult:
    rows: list[dict[str, Any]]
    #: matching models in all (when asked for; independent of limit/offset)
    total: int | None = None
    columns: list[str] = field(default_factory=lambda: list(COLUMNS))


def _conditions(con: duckdb.DuckDBPyConnection, query: ListQuery, listing: bool = False) -> tuple[list[str], list[Any]]:
    """The WHERE conditions of ``query`` and their parameters, over the ``models`` view or (``listing``)
    the ``model_listing`` table, whose precomputed lower-cased columns give the same answers."""
    conds: list[str] = []
    params: list[Any] = []
    for col, op, val in [("mean_eff_rank", ">=", query.min_eff_rank), ("mean_eff_rank", "<=", query.max_eff_rank),
                         ("total_fro", ">=", query.min_norm), ("total_fro", "<=", query.max_norm)]:  # fmt: skip
        if val is not None:
            conds.append(f"sha256 IN (SELECT blob_sha256 FROM lora_summary WHERE {col} {op} ?)")
            params.append(val)
    if query.forms:
        conds.append("sha256 IN (SELECT blob_sha256 FROM lora_modules WHERE form IN (SELECT unnest(?)))")
        params.append(list(query.forms))
    if query.nonfinite:
        conds.append("sha256 IN (SELECT sha256 FROM model_weight_stats WHERE nonfinite > 0)")
    if query.file_format:
        conds.append("format = ?")
        params.append(query.file_format)
    if query.name_glob:
        conds.append("name GLOB ?")
        params.append(query.name_glob)
    if query.min_severity:
        if query.min_severity not in SEVERITIES:
            raise UsageError(f"unknown severity {query.min_severity!r}; one of: {', '.join(SEVERITIES)}")
        conds.append("max_severity_rank >= ?")
        params.append(SEVERITIES.index(query.min_severity))
    if query.kind:
        kinds = ["lora", "lycoris"] if query.kind.lower() == "adapter" else [query.kind.lower()]
        conds.append("kind IN (SELECT unnest(?))")
        params.append(kinds)
    if query.arch:
        a = query.arch.lower()
        conds.append("(arch = ? OR arch LIKE ? OR arch = ?)")
        params += [a, f"{a}-%", f"other:{a}"]
    if query.trigger:
        # (list_filter over each row's list, not unnest: the same rows, ~8x faster at 100,000 models)
        if listing:
            conds.append("len(list_filter(triggers_lc, lambda w: contains(w, lower(?)))) > 0")
        else:
            conds.append(
                "sha256 IN (SELECT blob_sha256 FROM training_facts "
                f"WHERE {TRIGGER_MATCH})"
            )
        params.append(query.trigger)
    if query.q and listing:
        conds.append(
            "(contains(path_lc, lower(?)) OR contains(metadata_lc, lower(?)) "
            "OR len(list_filter(facts_lc, lambda t: contains(t, lower(?)))) > 0)"
        )
        params += [query.q, json.dumps(query.q, ensure_ascii=False)[1:-1], query.q]
    elif query.q:
        conds.append(
            "(contains(lower(path), lower(?)) "
            "OR contains(lower(CAST(metadata AS VARCHAR)), lower(?)) "
            "OR sha256 IN (SELECT blob_sha256 FROM training_facts WHERE "
            "contains(lower(coalesce(title, '') || chr(10) || coalesce(output_name, '') || chr(10) || "
            "coalesce(author, '') || chr(10) || coalesce(array_to_string(trigger_words, chr(10)), '')), lower(?))))"
        )
        # the metadata is matched in its JSON text, where quotes and backslashes are escaped
        params += [query.q, json.dumps(query.q, ensure_ascii=False)[1:-1], query.q]
    if query.where:
        conds.append(f"({query.where})")
    if query.used_in:
        from registry.trace.store import resolve_image

        conds.append("sha256 IN (SELECT model_sha256 FROM image_models WHERE image_sha256 = ?)")
        params.append(resolve_image(con, query.used_in))
    if query.base_ref:
        from registry.store.read import resolve_ref

        conds.append("sha256 IN (SELECT adapter_sha256 FROM base_links WHERE base_sha256 = ?)")
        params.append(resolve_ref(con, query.base_ref))
    return conds, params


#: a training_facts row has a trigger word containing the parameter, case-insensitively
TRIGGER_MATCH = "len(list_filter(trigger_words, lambda w: contains(lower(w), lower(?)))) > 0"

#: the models listed: the ``models`` view (for a raw ``where`` condition, which may name any of its
#: columns), or the ``model_listing`` table, its list columns materialised (registry/store/listing_table.py)
_VIEW_FROM = (
    "(SELECT *, regexp_extract(path, '[^/]*$') AS name, arch || coalesce('/' || arch_variant, '') AS arch_label "
    "FROM models) AS m"
)
_LISTING_FROM = "model_listing AS m"
_COLUMNS_SQL = (
    "SELECT sha256, autov2, name, format, size, n_tensors, n_findings, "
    "CASE max_severity_rank WHEN 0 THEN 'info' WHEN 1 THEN 'low' WHEN 2 THEN 'medium' WHEN 3 THEN 'high' "
    "WHEN 4 THEN 'critical' END AS max_severity, path, kind, arch_label AS arch"
)


def list_models(con: duckdb.DuckDBPyConnection, query: ListQuery, count: bool = False) -> ListResult:
    """The models matching ``query``, sorted and paged (ties broken by SHA-256); with ``count`` also the
    total. A filter that does not parse (``where``) raises :class:`UsageError`."""
    if query.sort not in SORTS:
        raise UsageError(f"unknown sort {query.sort!r}; one of: {', '.join(SORTS)}")
    listing = query.where is None and has_listing(con)
    source = _LISTING_FROM if listing else _VIEW_FROM
    conds, params = _conditions(con, query, listing)
    if count and listing and not conds:
        return _whole_listing(con, query)
    where = (" WHERE " + " AND ".join(conds)) if conds else ""
    order = f" ORDER BY {order_by(query.sort, query.descending)}"
    page = (f" LIMIT {int(query.limit)}" if query.limit else "") + (f" OFFSET {int(query.offset)}" if query.offset else "")
    if count:
        # one pass: the matching models are computed once, and counted and paged from there (a second
        # query for the count evaluated the whole view again: +30-50% at 100,000 models)
        inner = f"{_COLUMNS_SQL}, max_severity_rank, first_seen FROM {source}"  # with the sort keys
        sql = (f"WITH matching AS MATERIALIZED ({inner}{where}) SELECT * EXCLUDE (max_severity_rank, first_seen), "
               f"(SELECT count(*) FROM matching) AS _total FROM matching{order}{page}")  # fmt: skip
    else:
        sql = f"{_COLUMNS_SQL} FROM {source}{where}{order}{page}"
    try:
        cur = con.execute(sql, params)
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        total: int | None = None
        if count:
            if rows:
                total = int(rows[0]["_total"])
                for r in rows:
                    del r["_total"]
            elif not query.offset:  # no row from the first: none matches
                total = 0
            else:  # no row on this page: the count alone
                row = con.execute(f"SELECT count(*) FROM {source}{where}", params).fetchone()
                total = int(row[0]) if row else 0
    except duckdb.Error as e:
        raise UsageError(f"ls: bad filter: {str(e).splitlines()[0]}") from None
    return ListResult(rows=rows, total=total)


def _whole_listing(con: duckdb.DuckDBPyConnection, query: ListQuery) -> ListResult:
    """A page of every model, from the listing table: the count is the table's, and a page past the middle
    is read from the other end in the reversed order (sorting keeps ``offset + limit`` rows: half the work
    at worst), then turned back."""
    row = con.execute("SELECT count(*) FROM model_listing").fetchone()
    total = int(row[0]) if row else 0
    offset = max(0, int(query.offset))
    limit = total - offset if not query.limit else min(int(query.limit), total - offset)
    if limit <= 0:
        return ListResult(rows=[], total=total)
    backwards = offset + limit > total - offset  # more rows before the page's end than after its start
    if backwards:
        order, skip = order_by(query.sort, not query.descending), total - offset - limit
    else:
        order, skip = order_by(query.sort, query.descending), offset
    cur = con.execute(f"{_COLUMNS_SQL} FROM {_LISTING_FROM} ORDER BY {order} LIMIT {limit} OFFSET {skip}")
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    return ListResult(rows=rows[::-1] if backwards else rows, total=total)


def findings_overview(
    con: duckdb.DuckDBPyConnection, severity: str | None = None, rule: str | None = None, limit: int = 200
) -> dict[str, Any]:
    """Findings across the registry: counts by severity and by rule (findings and distinct models), and
    the findings themselves (most severe first, ``limit`` of them) filtered by ``severity``/``rule``."""
    if severity is not None and severity not in SEVERITIES:
        raise UsageError(f"unknown severity {severity!r}; one of: {', '.join(SEVERITIES)}")
    by_sev = {
        s: {"findings": int(n), "models": int(m)}
        for s, n, m in con.execute(
            "SELECT severity, count(*), count(DISTINCT blob_sha256) FROM findings GROUP BY severity, severity_rank "
            "ORDER BY severity_rank DESC"
        ).fetchall()
    }
    by_rule = [
        {"rule_id": r, "severity": s, "findings": int(n), "models": int(m)}
        for r, s, n, m in con.execute(
            "SELECT rule_id, arg_max(severity, severity_rank), count(*), count(DISTINCT blob_sha256) FROM findings "
            "GROUP BY rule_id ORDER BY max(severity_rank) DESC, count(*) DESC, rule_id"
        ).fetchall()
    ]
    conds, params = [], []
    if severity is not None:
        conds.append("f.severity = ?")
        params.append(severity)
    if rule is not None:
        conds.append("f.rule_id = ?")
        params.append(rule)
    where = (" WHERE " + " AND ".join(conds)) if conds else ""
    row = con.execute(f"SELECT count(*) FROM findings f{where}", params).fetchone()
    cur = con.execute(
        "SELECT f.blob_sha256 AS sha256, regexp_extract(coalesce(m.path, f.path), '[^/]*$') AS name, f.rule_id, f.severity, f.message "
        f"FROM findings f LEFT JOIN models m ON m.sha256 = f.blob_sha256{where} "
        "ORDER BY f.severity_rank DESC, f.rule_id, f.blob_sha256, f.message LIMIT ?",
        [*params, int(limit)],
    )
    cols = [d[0] for d in cur.description]
    return {
        "by_severity": by_sev,
        "by_rule": by_rule,
        "total": int(row[0]) if row else 0,
        "findings": [dict(zip(cols, r, strict=True)) for r in cur.fetchall()],
    }
