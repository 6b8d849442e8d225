"""Opening the registry, applying named migrations and (re)creating the query views.

DuckDB lets one process hold a database file for writing and refuses every other process, readers
included. So nothing holds the file for long: writers open it to commit a batch and close it; anyone who
meets the lock waits (with a message through ``on_wait``) up to ``timeout`` seconds, then gets
:class:`RegistryBusy`.

Migrations are files ``migrations/NNNN_name.sql``, applied in name order, each in its own explicit
transaction with its statements executed one by one, and recorded in ``migrations``. Views are files
``views/*.sql`` (``CREATE OR REPLACE VIEW``), re-applied whenever their combined text changes; they are
the stable query surface documented in the README.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from registry.errors import RegistryBusy, RegistryError

_HERE = Path(__file__).parent
MIGRATIONS_DIR = _HERE / "migrations"
VIEWS_DIR = _HERE / "views"

DEFAULT_BUSY_TIMEOUT = 30.0


def default_db_path() -> Path:
    env = os.environ.get("MODELREG_DB")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("modelreg", appauthor=False)) / "registry.duckdb"


def _is_lock_error(e: BaseException) -> bool:
    text = str(e)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def _open(path: Path, read_only: bool, timeout: float, on_wait: Callable[[str], None] | None) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout
    told = False
    delay = 0.02
    while True:
        try:
            config: dict[str, str | bool | int | float | list[str]] = (
                {"enable_external_access": False} if read_only else {}
            )
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as e:
            if not _is_lock_error(e):
                raise RegistryError(f"cannot open registry {path}: {e}") from None
            if time.monotonic() >= deadline:
                raise RegistryBusy(
                    f"registry {path} is busy: another modelreg process (probably a scan) is writing to it; "
                    f"waited {timeout:.0f}s. Try again when it finishes."
                ) from None
            if on_wait is not None and not told:
                on_wait("registry busy: another process is writing; waiting…")
                told = True
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
        except duckdb.Error as e:
            raise RegistryError(f"cannot open registry {path}: {e}") from None


def _statements(sql: str) -> list[str]:
    return [s.query for s in duckdb.extract_statements(sql) if s.query.strip()]


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply pending migrations (each in its own transaction) and refresh views; return names applied."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL, sha256 VARCHAR)"
    )
    done = {r[0] for r in con.execute("SELECT name FROM migrations").fetchall()}
    applied = []
    for f in sorted(MIGRATIONS_DIR.glob("*.sql")):
        name = f.stem
        if name in done:
            continue
        sql = f.read_text(encoding="utf-8")
        con.execute("BEGIN TRANSACTION")
        try:
            for stmt in _statements(sql):
                con.execute(stmt)
            con.execute(
                "INSERT INTO migrations VALUES (?, now(), ?)", [name, hashlib.sha256(sql.encode()).hexdigest()]
            )
            con.execute("COMMIT")
        except Exception as e:
            con.execute("ROLLBACK")
            raise RegistryError(f"migration {name} failed: {e}") from e
        applied.append(name)
    _refresh_views(con)
    return applied


def _views_sql() -> tuple[str, list[str]]:
    parts = [f.read_text(encoding="utf-8") for f in sorted(VIEWS_DIR.glob("*.sql"))]
    digest = hashlib.sha256("\n--\n".join(parts).encode()).hexdigest()
    return digest, parts


def _refresh_views(con: duckdb.DuckDBPyConnection) -> None:
    digest, parts = _views_sql()
    con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    row = con.execute("SELECT value FROM meta WHERE key = 'views_sha256'").fetchone()
    if row and row[0] == digest:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        for part in parts:
            for stmt in _statements(part):
                con.execute(stmt)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('views_sha256', ?)", [digest])
        con.execute("COMMIT")
    except Exception as e:
        con.execute("ROLLBACK")
        raise RegistryError(f"creating views failed: {e}") from e


def _needs_migration(con: duckdb.DuckDBPyConnection) -> bool:
    try:
        done = {r[0] for r in con.execute("SELECT name FROM migrations").fetchall()}
        row = con.execute("SELECT value FROM meta WHERE key = 'views_sha256'").fetchone()
    except duckdb.CatalogException:
        return True
    wanted = {f.stem for f in MIGRATIONS_DIR.glob("*.sql")}
    return not wanted <= done or not row or row[0] != _views_sql()[0]


@contextmanager
def connect(
    path: Path | None = None,
    *,
    read_only: bool = False,
    timeout: float = DEFAULT_BUSY_TIMEOUT,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the registry (creating and migrating it when opened for writing) and close it after use.

    A read-only open of a registry that does not exist yet, or whose schema is behind the code, first
    creates or migrates it with a short write open.
    """
    path = Path(path) if path is not None else default_db_path()
    if read_only:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        con = _open(path, False, timeout, on_wait) if not path.exists() else _open(path, True, timeout, on_wait)
        if _needs_migration(con):
            con.close()
            con = _open(path, False, timeout, on_wait)
            migrate(con)
            con.close()
            con = _open(path, True, timeout, on_wait)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        con = _open(path, False, timeout, on_wait)
        if _needs_migration(con):
            migrate(con)
    try:
        yield con
    finally:
        con.close()
