"""``model_listing``: the ``models`` view's list columns, materialised, for listing and searching.

``modelreg ls`` and the web list sort, filter, count and page over every registered model. Computing the
``models`` view for that joins seven tables over all models and lower-cases every model's metadata on each
query (0.3–0.8 s at 100,000 models). This table holds, per model, the view's columns that a list shows,
filters on or sorts by, plus lower-cased copies of the text that free-text search reads, so a list query
is a scan of one narrow table.

The view stays the definition: the table is :data:`FILL_SQL` over the ``models`` view (and
``training_facts``, for the search text); a writer recomputes the rows of the models it touched with the
same query over :data:`MODELS_OF_AFFECTED`, the view's joins restricted to those models. It never
disagrees with the view because it is rewritten inside the same transaction as every change of the rows it
is computed from:

* :func:`registry.store.write.write_batch` (scan, rescan, re-analysis, sightings, moves) refreshes the
  models of its batch before committing;
* :func:`registry.audit` refreshes the models whose findings it adds or removes, before committing;
* :func:`registry.store.db.migrate` rebuilds the whole table after applying any migration, and whenever
  this definition changes (its text is part of the digest that re-creates the views).

A change made with SQL outside modelreg does not refresh it; :func:`listing_differences` names the models
whose row disagrees with the view, and :func:`rebuild_listing` repairs it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

TABLE = "model_listing"

#: the table's columns, in order (migration 1800_model_listing creates it with exactly these)
COLUMNS = (
    "sha256", "autov2", "name", "path", "format", "kind", "arch", "arch_label", "size", "n_tensors",
    "n_findings", "max_severity_rank", "first_seen", "path_lc", "metadata_lc", "facts_lc", "triggers_lc",
)  # fmt: skip

#: one listing row per model of the ``models`` view; ``{where}`` restricts the models computed
#: - name: the file name of the last-seen path (what ``ls`` shows and ``--name`` globs)
#: - arch_label: ``arch`` with its variant (``flux1/dev``)
#: - path_lc / metadata_lc: ``lower()`` of the path and of the metadata's JSON text (free text)
#: - facts_lc: per ``training_facts`` row, ``lower()`` of its title, output name, author and trigger
#:   words joined by newlines (free text); triggers_lc: every trigger word, lower-cased (``--trigger``)
FILL_SQL = """
SELECT m.sha256, m.autov2, regexp_extract(m.path, '[^/]*$') AS name, m.path, m.format, m.kind, m.arch,
       m.arch || coalesce('/' || m.arch_variant, '') AS arch_label, m.size, m.n_tensors, m.n_findings,
       m.max_severity_rank, m.first_seen, lower(m.path) AS path_lc,
       lower(CAST(m.metadata AS VARCHAR)) AS metadata_lc, t.facts_lc, t.triggers_lc
FROM models m
LEFT JOIN (
    SELECT blob_sha256,
           list_sort(list(lower(coalesce(title, '') || chr(10) || coalesce(output_name, '') || chr(10)
                                || coalesce(author, '') || chr(10) || coalesce(array_to_string(trigger_words, chr(10)), ''))))
               AS facts_lc,
           list_sort(flatten(list(list_transform(coalesce(trigger_words, []), lambda w: lower(w))))) AS triggers_lc
    FROM training_facts {facts_where} GROUP BY blob_sha256
) t ON t.blob_sha256 = m.sha256
{where}
"""

_IN_AFFECTED = "IN (SELECT sha256 FROM _listing_affected)"

#: the ``models`` view (registry/store/views/95_models.sql) for the models in ``_listing_affected`` only,
#: written so that each per-model aggregate reads only their rows: DuckDB does not push such a set into
#: the view's grouped joins, and computing them for every model cost 0.1-0.2 s per write at 100,000
#: models. The same joins, so the same rows (tests/test_listing_table.py compares the table with the
#: view after every kind of write); the columns the listing does not read are left out. The view's join of
#: ``model_declarations`` is left out too: that view has at most one row per model (its current version,
#: ``UNIQUE (blob_sha256, version)``, with the latest check of it), so the join never repeats a model's
#: row (which is also why recording a declaration leaves the listing alone), and binding that view and its
#: subqueries was about a quarter of each refresh (3-5 ms of every commit).
MODELS_OF_AFFECTED = f"""
(SELECT b.sha256, b.autov2, b.size, b.format, b.n_tensors, b.first_seen, sg.path,
        coalesce(fs.n_findings, 0) AS n_findings, fs.max_severity_rank, b.metadata, i.kind, i.arch, i.arch_variant
 FROM (SELECT * FROM blobs WHERE sha256 {_IN_AFFECTED}) b
 LEFT JOIN (
     SELECT blob_sha256, count(*) AS n_sightings, arg_max(path, (seen_at, id)) AS path
     FROM sightings WHERE blob_sha256 {_IN_AFFECTED} GROUP BY blob_sha256
 ) sg ON sg.blob_sha256 = b.sha256
 LEFT JOIN (
     SELECT blob_sha256, count(*) AS n_findings, max(severity_rank) AS max_severity_rank
     FROM findings WHERE blob_sha256 {_IN_AFFECTED} GROUP BY blob_sha256
 ) fs ON fs.blob_sha256 = b.sha256
 LEFT JOIN (SELECT * FROM identity WHERE blob_sha256 {_IN_AFFECTED}) i ON i.blob_sha256 = b.sha256
 LEFT JOIN (SELECT blob_sha256 FROM training_facts WHERE blob_sha256 {_IN_AFFECTED}) t ON t.blob_sha256 = b.sha256
 LEFT JOIN (SELECT blob_sha256 FROM lora_summary WHERE blob_sha256 {_IN_AFFECTED}) ls ON ls.blob_sha256 = b.sha256
 LEFT JOIN (SELECT blob_sha256 FROM pickle_scans WHERE blob_sha256 {_IN_AFFECTED}) p ON p.blob_sha256 = b.sha256)
"""


def fill_sql(restricted: bool) -> str:
    """:data:`FILL_SQL` over the ``models`` view for all models, or (``restricted``) over
    :data:`MODELS_OF_AFFECTED` for those in ``_listing_affected``."""
    if not restricted:
        return FILL_SQL.format(facts_where="", where="")
    return FILL_SQL.replace("FROM models m", f"FROM {MODELS_OF_AFFECTED} m").format(
        facts_where=f"WHERE blob_sha256 {_IN_AFFECTED}", where=""
    )


def has_listing(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main' AND NOT temporary", [TABLE]
    ).fetchone()
    return bool(row and row[0])


def refresh_listing(con: duckdb.DuckDBPyConnection, shas: Iterable[str | None]) -> None:
    """Rewrite the listing rows of these models from the view (inside the caller's transaction): a model
    that is no longer in the view loses its row. Call it after the rows it is computed from changed."""
    keys = sorted({s for s in shas if s is not None})
    if not keys:
        return
    import pyarrow as pa

    from registry.store._duck import registered

    with registered(con, "_listing_affected", pa.table({"sha256": pa.array(keys, pa.string())})):
        con.execute(f"DELETE FROM {TABLE} WHERE sha256 {_IN_AFFECTED}")
        con.execute(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) {fill_sql(True)}")


def rebuild_listing(con: duckdb.DuckDBPyConnection) -> None:
    """Recompute every listing row from the view (inside the caller's transaction)."""
    con.execute(f"DELETE FROM {TABLE}")
    con.execute(f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) {fill_sql(False)}")


def listing_differences(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The models whose listing row differs from what the view gives now (missing, extra or changed rows),
    as SHA-256 digests, sorted; empty when the table agrees with the view exactly."""
    cols = ", ".join(COLUMNS)
    fresh = fill_sql(False)
    rows = con.execute(
        f"SELECT DISTINCT sha256 FROM (((SELECT {cols} FROM {TABLE}) EXCEPT ALL (SELECT {cols} FROM ({fresh}))) "
        f"UNION ALL ((SELECT {cols} FROM ({fresh})) EXCEPT ALL (SELECT {cols} FROM {TABLE}))) ORDER BY sha256"
    ).fetchall()
    return [str(r[0]) for r in rows]
