"""Creating a registry: the whole schema in one transaction (``registry.store.db.create_schema``, issue 21)
gives the catalog that applying the migrations one by one gives, with the same ``migrations`` and ``meta``
rows; a failure leaves nothing behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from registry.errors import RegistryError
from registry.store import db as dbmod
from registry.store.db import connect, create_schema, migrate

#: (name, query) of every part of the catalog compared; object ids and other positions left out
CATALOG = {
    "tables": "SELECT schema_name, table_name, has_primary_key, column_count, index_count, check_constraint_count, "
    "sql, temporary FROM duckdb_tables() WHERE NOT internal",
    "columns": "SELECT schema_name, table_name, column_name, column_index, column_default, is_nullable, data_type, "
    "numeric_precision, numeric_scale FROM duckdb_columns() WHERE NOT internal",
    "indexes": "SELECT schema_name, index_name, table_name, is_unique, is_primary, expressions, sql "
    "FROM duckdb_indexes()",
    "views": "SELECT schema_name, view_name, column_count, sql, temporary FROM duckdb_views() WHERE NOT internal",
    "constraints": "SELECT schema_name, table_name, constraint_index, constraint_type, constraint_text, "
    "expression, constraint_column_names FROM duckdb_constraints()",
    "sequences": "SELECT schema_name, sequence_name, start_value, min_value, max_value, increment_by, cycle, "
    "last_value, sql FROM duckdb_sequences()",
    "migrations": "SELECT name, sha256 FROM migrations",
    "meta": "SELECT key, value FROM meta",
    "listing": "SELECT count(*) FROM model_listing",
}


def catalog(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in CATALOG.items()}


def _fresh(tmp_path: Path, name: str) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(tmp_path / name))


def test_the_schema_at_once_is_the_schema_step_by_step(tmp_path: Path) -> None:
    step = _fresh(tmp_path, "step.duckdb")
    applied_step = migrate(step, at_once=False)
    once = _fresh(tmp_path, "once.duckdb")
    applied_once = migrate(once, at_once=True)
    want = sorted(f.stem for f in dbmod.MIGRATIONS_DIR.glob("*.sql"))
    assert applied_step == applied_once == want
    a, b = catalog(step), catalog(once)
    assert len(a["tables"]) > 20 and len(a["views"]) > 10 and a["indexes"] and a["sequences"]  # a real schema
    assert {r[0] for r in a["migrations"]} == set(want)
    assert a == b
    # and the same after both are closed (checkpointed) and opened again (DuckDB writes a view's text anew
    # when it loads it, e.g. the columns of an EXCLUDE in another order, so compared with each other)
    step.close()
    once.close()
    a2 = catalog(_fresh(tmp_path, "step.duckdb"))
    b2 = catalog(_fresh(tmp_path, "once.duckdb"))
    assert a2 == b2, "after a reopen"
    # each migration's row records the SHA-256 of its file's text, as a replay does
    rows = dict(a["migrations"])
    for f in dbmod.MIGRATIONS_DIR.glob("*.sql"):
        assert rows[f.stem] == dbmod._sha256_hex(f.read_text(encoding="utf-8").encode())


def test_a_new_registry_gets_the_schema_at_once_and_an_old_one_is_migrated_step_by_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str] | None] = []
    real = dbmod.create_schema

    def spy(con: duckdb.DuckDBPyConnection) -> list[str] | None:
        calls.append(real(con))
        return calls[-1]

    monkeypatch.setattr(dbmod, "create_schema", spy)
    monkeypatch.setenv("MODELREG_TEMPLATES", "0")  # (a registry copied from the template: see below)
    db = tmp_path / "r.duckdb"
    n = len(list(dbmod.MIGRATIONS_DIR.glob("*.sql")))
    with connect(db) as con:
        assert con.execute("SELECT count(*) FROM migrations").fetchone() == (n,)
        # one transaction: every row has the same time
        assert con.execute("SELECT count(DISTINCT applied_at) FROM migrations").fetchone() == (1,)
    assert len(calls) == 1 and calls[0] is not None and len(calls[0]) == n
    # a registry some migrations behind: the missing ones are applied one by one, the others kept
    with connect(db) as con:
        con.execute("DELETE FROM migrations WHERE name = '1800_model_listing'")
        con.execute("DROP TABLE model_listing")
    with connect(db) as con:
        assert con.execute("SELECT count(*) FROM model_listing").fetchone() == (0,)
        assert con.execute("SELECT count(DISTINCT applied_at) FROM migrations").fetchone() == (2,)
    assert calls[1:] == [None]  # tried (the migrations table exists: nothing done), then step by step


def test_creating_over_an_existing_schema_changes_nothing(tmp_path: Path) -> None:
    """Two processes may both find no registry and create it: the one that gets the lock second finds
    the schema there and leaves it as it is."""
    con = _fresh(tmp_path, "r.duckdb")
    assert create_schema(con) is not None
    con.execute("INSERT INTO meta VALUES ('marker', 'kept')")
    before = catalog(con)
    times = con.execute("SELECT name, applied_at FROM migrations ORDER BY name").fetchall()
    assert create_schema(con) is None
    assert catalog(con) == before
    assert con.execute("SELECT name, applied_at FROM migrations ORDER BY name").fetchall() == times
    assert migrate(con) == []  # nothing pending; the connection is in no transaction
    con.execute("BEGIN TRANSACTION")
    con.execute("ROLLBACK")


def test_a_failed_creation_leaves_no_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(dbmod.MIGRATIONS_DIR, migrations)
    (migrations / "9999_broken.sql").write_text("CREATE TABLE late (x INTEGER);\nALTER TABLE no_such_table ADD COLUMN y INT;\n")
    monkeypatch.setattr(dbmod, "MIGRATIONS_DIR", migrations)
    con = _fresh(tmp_path, "r.duckdb")
    with pytest.raises(RegistryError, match="no_such_table"):
        create_schema(con)
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE NOT internal").fetchone() == (0,)
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone() == (0,)
    # the connection is usable (no transaction left open), and the creation can be run again once fixed
    (migrations / "9999_broken.sql").unlink()
    assert create_schema(con)[-1] == sorted(f.stem for f in dbmod.MIGRATIONS_DIR.glob("*.sql"))[-1] != "9999_broken"


# --- new registries copied from an empty one (registry.store.db.template_path) ---


def _exclude_sorted(cat: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """The catalog with the column lists of each view's ``EXCLUDE (…)`` in order: DuckDB writes a view's
    text anew each time it loads it, such a list in any order."""
    import re

    def fix(sql: str) -> str:
        return re.sub(r"EXCLUDE \(([^)]*)\)", lambda m: "EXCLUDE (" + ", ".join(sorted(m[1].split(", "))) + ")", sql)

    return {**cat, "views": sorted(((*r[:3], fix(r[3]), *r[4:]) for r in cat["views"]), key=repr)}


def _spy_creations(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The databases that create_schema builds a schema in from now on (by their file)."""
    made: list[Path] = []
    real = dbmod.create_schema

    def spy(con: duckdb.DuckDBPyConnection) -> list[str] | None:
        made.append(Path(con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()[0]))
        return real(con)

    monkeypatch.setattr(dbmod, "create_schema", spy)
    return made


def test_a_registry_copied_from_the_template_is_the_registry_created_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELREG_TEMPLATES", str(tmp_path / "templates"))
    made = _spy_creations(monkeypatch)
    template = dbmod.template_path()
    assert template is not None and template.parent == tmp_path / "templates" and not template.exists()
    with connect(tmp_path / "a.duckdb"):
        pass
    # the schema was built once, in the template's folder (under another name, then renamed)
    assert template.exists() and len(made) == 1 and made[0].parent == template.parent
    with duckdb.connect(str(template), read_only=True) as t:
        template_time = t.execute("SELECT max(applied_at) FROM migrations").fetchone()[0]
    before = duckdb.connect().execute("SELECT now()").fetchone()[0]
    with connect(tmp_path / "b.duckdb") as b:
        times = b.execute("SELECT count(DISTINCT applied_at), min(applied_at) FROM migrations").fetchone()
    assert len(made) == 1, "copied, not created again"
    # the creation is recorded as this registry's: one time for every migration, this moment
    assert times[0] == 1 and times[1] >= before > template_time
    monkeypatch.setenv("MODELREG_TEMPLATES", "")
    assert dbmod.template_path() is None
    with connect(tmp_path / "c.duckdb"):
        pass
    assert len(made) == 2 and made[1] == tmp_path / "c.duckdb"  # templates off: created in place
    with duckdb.connect(str(tmp_path / "b.duckdb")) as b, duckdb.connect(str(tmp_path / "c.duckdb")) as c:
        assert _exclude_sorted(catalog(b)) == _exclude_sorted(catalog(c))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["a.duckdb", "a.duckdb.head", "b.duckdb", "b.duckdb.head", "c.duckdb", "c.duckdb.head", "templates"]
    ), "no temporary file left behind"
    assert [p.name for p in (tmp_path / "templates").iterdir()] == [template.name]


@pytest.mark.parametrize(
    "tamper",
    [
        "INSERT INTO blobs (sha256, size, format, header_len, n_tensors, first_seen) VALUES ('ab', 1, 'x', 0, 0, now())",
        "INSERT INTO events VALUES (1, now(), 'me', 'blob.add', 'ab', '{}', '', 'cd')",
        "INSERT INTO meta VALUES ('registry', 'someone else''s')",
        "DELETE FROM migrations WHERE name = '0100_core'",
        "UPDATE meta SET value = 'old' WHERE key = 'views_sha256'",
    ],
)
def test_a_template_that_is_not_an_empty_registry_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tamper: str
) -> None:
    monkeypatch.setenv("MODELREG_TEMPLATES", str(tmp_path / "templates"))
    with connect(tmp_path / "a.duckdb") as a:
        empty = catalog(a)
    template = dbmod.template_path()
    assert template is not None
    with duckdb.connect(str(template)) as t:
        t.execute(tamper)
    made = _spy_creations(monkeypatch)
    with connect(tmp_path / "b.duckdb") as b:
        assert _exclude_sorted(catalog(b)) == _exclude_sorted(empty)
        assert b.execute("SELECT count(*) FROM events").fetchone() == (0,)
    assert made == [tmp_path / "b.duckdb"], "created in place"
    assert not template.exists(), "the template was removed"
    with connect(tmp_path / "c.duckdb") as c:  # and made again by the next creation
        assert _exclude_sorted(catalog(c)) == _exclude_sorted(empty)
    assert template.exists() and len(made) == 2 and made[1].parent == template.parent


def test_without_a_writable_template_folder_registries_are_created_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("MODELREG_TEMPLATES", str(tmp_path / "file" / "templates"))
    made = _spy_creations(monkeypatch)
    with connect(tmp_path / "r.duckdb") as con:
        assert con.execute("SELECT count(*) FROM migrations").fetchone()[0] == len(list(dbmod.MIGRATIONS_DIR.glob("*.sql")))
    assert made == [tmp_path / "r.duckdb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "r.duckdb", "r.duckdb.head"]


def test_the_copy_never_replaces_a_file_that_appeared_meanwhile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process may create the registry between this one finding no file and linking the copy:
    the link fails, the other process's file stays, and this one opens it as any registry."""
    monkeypatch.setenv("MODELREG_TEMPLATES", str(tmp_path / "templates"))
    target = tmp_path / "r.duckdb"
    target.write_bytes(b"the other process's registry")
    assert dbmod._copy_template(target) is False
    assert target.read_bytes() == b"the other process's registry"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.duckdb", "templates"]


def test_the_template_key_follows_the_schema_and_duckdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = dbmod.template_key()
    migrations = tmp_path / "migrations"
    shutil.copytree(dbmod.MIGRATIONS_DIR, migrations)
    monkeypatch.setattr(dbmod, "MIGRATIONS_DIR", migrations)
    dbmod.template_key.cache_clear()
    try:
        assert dbmod.template_key() == base
        (migrations / "9999_more.sql").write_text("CREATE TABLE more (x INTEGER);\n")
        dbmod.template_key.cache_clear()
        more = dbmod.template_key()
        assert more != base and len(more) == 24
        (migrations / "9999_more.sql").write_text("CREATE TABLE more (x BIGINT);\n")
        dbmod.template_key.cache_clear()
        assert dbmod.template_key() not in (base, more)
        (migrations / "9999_more.sql").unlink()
        monkeypatch.setattr(dbmod.duckdb, "__version__", "0.0.0-other")
        dbmod.template_key.cache_clear()
        assert dbmod.template_key() != base
    finally:
        dbmod.template_key.cache_clear()


def test_the_copy_is_checked_and_stamped_before_it_appears_at_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process may open the registry the moment it appears (concurrent scans of a new registry):
    the copy must be a registry of its own by then (its creation recorded, nothing left to check that
    another process's rows could fail)."""
    monkeypatch.setenv("MODELREG_TEMPLATES", str(tmp_path / "templates"))
    with connect(tmp_path / "a.duckdb"):
        pass
    template = dbmod.template_path()
    assert template is not None
    with duckdb.connect(str(template), read_only=True) as t:
        template_time = t.execute("SELECT max(applied_at) FROM migrations").fetchone()[0]
    seen: list[tuple[Any, ...]] = []
    real_link = os.link

    def link(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        assert not Path(str(src) + ".wal").exists(), "closed, nothing left in a write-ahead log"
        with duckdb.connect(str(src), read_only=True) as c:
            seen.append(c.execute("SELECT count(DISTINCT applied_at), min(applied_at) FROM migrations").fetchone())
        real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "link", link)
    with connect(tmp_path / "b.duckdb") as b:
        assert b.execute("SELECT count(DISTINCT applied_at), min(applied_at) FROM migrations").fetchone() == seen[0]
    assert len(seen) == 1 and seen[0][0] == 1 and seen[0][1] > template_time
