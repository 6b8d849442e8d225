"""The ``models`` view's per-blob aggregates (sightings count, last-seen path, findings count and worst
severity) are computed with grouped joins; they must equal the plain reading of their definition, one
correlated subquery per blob (the view's original SQL, kept here as the independent answer), on
registries with several sightings per blob, equal ``seen_at`` times, findings without a blob, and blobs
without any sighting or finding."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.store.db import connect

REFERENCE = """
SELECT
    b.sha256,
    (SELECT count(*) FROM sightings s WHERE s.blob_sha256 = b.sha256) AS n_sightings,
    (SELECT s.path FROM sightings s WHERE s.blob_sha256 = b.sha256 ORDER BY s.seen_at DESC, s.id DESC LIMIT 1) AS path,
    (SELECT count(*) FROM findings f WHERE f.blob_sha256 = b.sha256) AS n_findings,
    (SELECT max(f.severity_rank) FROM findings f WHERE f.blob_sha256 = b.sha256) AS max_severity_rank
FROM blobs b ORDER BY b.sha256
"""
VIEW = "SELECT sha256, n_sightings, path, n_findings, max_severity_rank FROM models ORDER BY sha256"
T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)

sightings = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.sampled_from(["/a", "/b/c", "/z"])),
                     max_size=25)  # fmt: skip
findings = st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 5)), st.integers(0, 4)), max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sightings, findings)
def test_models_view_aggregates_equal_the_correlated_definition(
    tmp_path_factory: object, sights: list[tuple[int, int, str]], finds: list[tuple[int | None, int]]
) -> None:
    db = tmp_path_factory.mktemp("view") / "registry.duckdb"  # type: ignore[attr-defined]
    shas = [f"{i:064x}" for i in range(6)]
    with connect(db) as con:
        for sha in shas:
            con.execute("INSERT INTO blobs (sha256, size, format, first_seen) VALUES (?, 1, 'safetensors', ?)", [sha, T0])
        for n, (b, t, path) in enumerate(sights):
            # few distinct times, so that equal seen_at values are common and the id decides
            con.execute(
                "INSERT INTO sightings (blob_sha256, host, path, size, mtime_ns, seen_at) VALUES (?, 'h', ?, 1, 0, ?)",
                [shas[b], f"{path}/{n}", T0 + timedelta(seconds=t)],
            )
        for b, rank in finds:
            con.execute(
                "INSERT INTO findings (blob_sha256, path, rule_id, severity, severity_rank, message, created_at) "
                "VALUES (?, '/p', 'x.y', 'info', ?, 'm', ?)",
                [None if b is None else shas[b], rank, T0],
            )
        want = con.execute(REFERENCE).fetchall()
        got = con.execute(VIEW).fetchall()
    assert got == want
    assert len(got) == 6


def test_models_view_on_a_scanned_registry(tmp_path: Path) -> None:
    """The same on a real scan: one file seen at two paths (the later scan's path wins), one finding."""
    import numpy as np

    from registry.scan import scan
    from tests.builders import write_safetensors

    a = write_safetensors(tmp_path / "m" / "a.safetensors", {"w": np.zeros((2, 2), np.float32)})
    b = tmp_path / "n" / "b.safetensors"
    db = tmp_path / "registry.duckdb"
    scan([a], db)
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    scan([b], db)
    with connect(db, read_only=True) as con:
        got = con.execute(VIEW).fetchall()
        assert got == con.execute(REFERENCE).fetchall()
    assert len(got) == 1 and got[0][1] == 2 and got[0][2] == str(b)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sightings, findings, st.sampled_from(["path", "size", "first_seen", "findings", "name", "kind", "arch", "format"]),
       st.booleans(), st.integers(1, 4), st.integers(0, 7), st.sampled_from([None, "medium", "high"]))  # fmt: skip
def test_list_page_and_total_in_one_pass_equal_the_two_query_reading(
    tmp_path_factory: object, sights: list[tuple[int, int, str]], finds: list[tuple[int | None, int]],
    sort: str, desc: bool, limit: int, offset: int, min_severity: str | None,
) -> None:  # fmt: skip
    """``list_models(count=True)`` pages and counts in one query; the page must equal the plain paged
    query (``count=False``) and the total the number of all matching rows, on every page (past the end
    too)."""
    from registry.listing import ListQuery, list_models

    db = tmp_path_factory.mktemp("list") / "registry.duckdb"  # type: ignore[attr-defined]
    shas = [f"{i:064x}" for i in range(6)]
    with connect(db) as con:
        for k, sha in enumerate(shas):
            con.execute("INSERT INTO blobs (sha256, size, format, first_seen) VALUES (?, ?, 'safetensors', ?)",
                        [sha, k % 3, T0 + timedelta(seconds=k % 2)])  # fmt: skip
        for n, (b, t, path) in enumerate(sights):
            con.execute(
                "INSERT INTO sightings (blob_sha256, host, path, size, mtime_ns, seen_at) VALUES (?, 'h', ?, 1, 0, ?)",
                [shas[b], f"{path}/{n % 2}", T0 + timedelta(seconds=t)],
            )
        for b, rank in finds:
            con.execute(
                "INSERT INTO findings (blob_sha256, path, rule_id, severity, severity_rank, message, created_at) "
                "VALUES (?, '/p', 'x.y', 'info', ?, 'm', ?)",
                [None if b is None else shas[b], rank, T0],
            )
    with connect(db, read_only=True) as con:
        q = ListQuery(sort=sort, descending=desc, limit=limit, offset=offset, min_severity=min_severity)
        got = list_models(con, q, count=True)
        plain = list_models(con, q, count=False)
        everything = list_models(con, ListQuery(sort=sort, descending=desc, min_severity=min_severity))
    assert got.rows == plain.rows
    assert got.rows == everything.rows[offset : offset + limit]
    assert got.total == len(everything.rows)


words = st.text(alphabet=st.sampled_from("aAbBİıKkſsSß_ \u00e9\u00c9"), max_size=4)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(st.one_of(st.none(), words), max_size=4)), max_size=6), words)
def test_trigger_filter_equals_the_unnest_reading(lists: list[list[str | None] | None], needle: str) -> None:
    """``--trigger`` (``TRIGGER_MATCH``, a filter over each row's list) selects the same rows as the plain
    reading: some trigger word, unnested, contains the text case-insensitively (NULL lists and words,
    empty lists, letters whose lower case is special)."""
    import duckdb

    from registry.listing import TRIGGER_MATCH

    con = duckdb.connect()
    con.execute("CREATE TABLE training_facts (blob_sha256 VARCHAR, trigger_words VARCHAR[])")
    for i, ws in enumerate(lists):
        con.execute("INSERT INTO training_facts VALUES (?, ?)", [str(i), ws])
    reference = con.execute(
        "SELECT DISTINCT blob_sha256 FROM training_facts, unnest(trigger_words) AS t(w) "
        "WHERE contains(lower(w), lower(?)) ORDER BY 1", [needle]
    ).fetchall()
    got = con.execute(f"SELECT blob_sha256 FROM training_facts WHERE {TRIGGER_MATCH} ORDER BY 1", [needle]).fetchall()
    assert got == reference
