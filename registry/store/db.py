"""Opening the registry, applying named migrations and (re)creating the query views.

DuckDB lets one process hold a database file for writing and refuses every other process, readers
included. So nothing holds the file for long: writers open it to commit and close it (a scan keeps its
connection across batches only while nobody else asks, see :func:`someone_waiting`); anyone who meets the
lock touches ``<registry>.waiting`` and waits (with a message through ``on_wait``) up to ``timeout``
seconds, then gets :class:`RegistryBusy`.

Migrations are files ``migrations/NNNN_name.sql``, applied in name order, each in its own explicit
transaction with its statements executed one by one, and recorded in ``migrations``. A registry being
created (no ``migrations`` table) gets them all at once instead (:func:`create_schema`: one transaction,
one ``execute``, the same catalog and ``migrations`` rows). Views are files ``views/*.sql`` (``CREATE OR REPLACE VIEW``), re-applied
whenever their combined text changes; they are the stable query surface documented in the README.

Only a write open creates a registry; a write open first checks that the registry can be written and
that its event log still matches the head file beside it (``anchor.py``), and moves the head file after
its work. Storage failures (no space, permission denied, read-only file system, a damaged ``.wal``) and a
registry of a newer schema (read, never written) become one :class:`RegistryError` naming the cause.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from registry.errors import RegistryBusy, RegistryCorrupt, RegistryError, UsageError
from registry.store._duck import duckdb, full

_HERE = Path(__file__).parent
MIGRATIONS_DIR = _HERE / "migrations"
VIEWS_DIR = _HERE / "views"

DEFAULT_BUSY_TIMEOUT = 30.0
#: a write open refuses to start below this much free space in the registry's folder
MIN_FREE_BYTES = 8 << 20


def default_db_path() -> Path:
    env = os.environ.get("MODELREG_DB")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("modelreg", appauthor=False)) / "registry.duckdb"


#: called with the registry's path before this process opens it for writing: whoever keeps a read-only
#: connection open across calls (the web view's pool) closes it here, as DuckDB refuses a read-write
#: connection in a process that holds a read-only one to the same file
_BEFORE_WRITE_OPEN: list[Callable[[Path], None]] = []


def on_write_open(release: Callable[[Path], None]) -> None:
    """Register ``release(path)``, called before each write open of a registry in this process."""
    _BEFORE_WRITE_OPEN.append(release)


def _is_lock_error(e: BaseException) -> bool:
    text = str(e)
    return "lock" in text.lower() and ("Conflicting" in text or "Could not set lock" in text)


def waiting_path(db_path: Path) -> Path:
    """``<registry>.waiting``: touched by every process that finds the registry held by another (and
    removed once it gets in), so that a scan holding its write connection across batches lets go."""
    return db_path.with_name(db_path.name + ".waiting")


#: a ``.waiting`` file touched within this many seconds means someone is waiting now (waiters touch it
#: at every retry, at most every 0.25 s; an older one was left by a waiter that gave up)
WAITING_FRESH_SECONDS = 2.0


def someone_waiting(db_path: Path) -> bool:
    """Has another process tried to open the registry in the last ``WAITING_FRESH_SECONDS``?"""
    try:
        return time.time() - os.stat(waiting_path(db_path)).st_mtime < WAITING_FRESH_SECONDS
    except OSError:
        return False


def _touch_waiting(path: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only folder: the holder lets go on its own schedule
        w = waiting_path(path)
        with open(w, "a"):
            pass
        os.utime(w)


def _open(path: Path, read_only: bool, timeout: float, on_wait: Callable[[str], None] | None) -> duckdb.DuckDBPyConnection:
    if not read_only:
        full()  # writes register Arrow tables: the whole duckdb package
        for release in list(_BEFORE_WRITE_OPEN):
            release(path)
    deadline = time.monotonic() + timeout
    told = False
    waited = False
    delay = 0.02
    while True:
        try:
            config: dict[str, str | bool | int | float | list[str]] = (
                {"enable_external_access": False} if read_only else {}
            )
            con = duckdb.connect(str(path), read_only=read_only, config=config)
            if waited:
                with contextlib.suppress(OSError):
                    waiting_path(path).unlink()
            return con
        except duckdb.IOException as e:
            if not _is_lock_error(e):
                raise storage_error(path, e, "open") from None
            waited = True
            _touch_waiting(path)
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
            raise storage_error(path, e, "open") from None


def _statements(sql: str) -> list[str]:
    return [s.query for s in duckdb.extract_statements(sql) if s.query.strip()]


MIGRATIONS_TABLE_SQL = (
    "CREATE TABLE IF NOT EXISTS migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL, sha256 VARCHAR)"
)
META_TABLE_SQL = "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)"


def migrate(con: duckdb.DuckDBPyConnection, *, at_once: bool = True) -> list[str]:
    """Apply pending migrations (each in its own transaction) and refresh views; return names applied.

    A database without the ``migrations`` table (a registry being created) gets the whole schema in one
    transaction instead (:func:`create_schema`: the same statements in the same order, the same
    ``migrations`` rows); ``at_once=False`` applies the migrations one by one there too (tests compare
    the two)."""
    if at_once:
        applied = create_schema(con)
        if applied is not None:
            return applied
    con.execute(MIGRATIONS_TABLE_SQL)
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
                "INSERT INTO migrations VALUES (?, now(), ?)", [name, _sha256_hex(sql.encode())]
            )
            con.execute("COMMIT")
        except Exception as e:
            con.execute("ROLLBACK")
            raise RegistryError(f"migration {name} failed: {e}") from e
        applied.append(name)
    _refresh_views(con, rebuild=bool(applied))
    return applied


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def create_schema(con: duckdb.DuckDBPyConnection) -> list[str] | None:
    """Create the whole schema in a database without one, in one transaction and one ``execute``: the
    ``migrations`` table, every migration's statements in name order, their ``migrations`` rows (name,
    time, SHA-256 of the file's text, as :func:`migrate` records them one by one), the ``meta`` table and
    the views with their digest. The result is the catalog that applying the migrations one by one gives
    (tests/test_db_create.py compares the two); the ``model_listing`` table is empty, as the view is over
    empty tables. Executing the statements one by one, each migration in its own transaction, cost about
    twice as much (each statement parsed and executed through a call of its own).

    Returns the names applied, or None, changing nothing, when the database has a ``migrations`` table
    already (another process created the registry first: it is migrated step by step, if at all). Any
    other failure rolls back everything and raises :class:`RegistryError`."""
    files = sorted(MIGRATIONS_DIR.glob("*.sql"))
    texts = [(f.stem, f.read_text(encoding="utf-8")) for f in files]
    digest, parts = _views_sql()
    rows = ", ".join(f"({_literal(name)}, now(), {_literal(_sha256_hex(sql.encode()))})" for name, sql in texts)
    # each file's text as it is, on lines of its own (a file may end in a comment), then a separator
    script = "\n;\n".join(
        [
            *(sql for _, sql in texts),
            f"INSERT INTO migrations VALUES {rows}",
            META_TABLE_SQL,
            *parts,
            f"INSERT OR REPLACE INTO meta VALUES ('views_sha256', {_literal(digest)})",
        ]
    )
    con.execute("BEGIN TRANSACTION")
    try:
        try:
            con.execute(MIGRATIONS_TABLE_SQL.replace(" IF NOT EXISTS", ""))
        except duckdb.CatalogException:
            con.execute("ROLLBACK")
            return None
        con.execute(script)
        con.execute("COMMIT")
    except Exception as e:
        with contextlib.suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise RegistryError(f"creating the registry's schema failed: {e}") from e
    return [name for name, _ in texts]


#: ``MODELREG_TEMPLATES``: the folder of the empty registries that new ones are copied from (default: the
#: user's cache folder, ``~/.cache/modelreg``); empty or ``0``: every registry is created statement by statement
TEMPLATES_ENV = "MODELREG_TEMPLATES"


def template_path() -> Path | None:
    """Where the empty registry of this schema and this DuckDB is kept (see :func:`_copy_template`), or None
    when ``MODELREG_TEMPLATES`` turns templates off."""
    env = os.environ.get(TEMPLATES_ENV)
    if env is not None and env.strip() in ("", "0"):
        return None
    if env:
        folder = Path(env)
    else:
        from platformdirs import user_cache_dir

        folder = Path(user_cache_dir("modelreg", appauthor=False))
    return folder / f"empty-registry-{template_key()}.duckdb"


@functools.cache
def template_key() -> str:
    """What an empty registry depends on: the DuckDB version (its storage and its rendering of the catalog)
    and the text of every migration and view, digested (24 hex digits)."""
    files = sorted(MIGRATIONS_DIR.glob("*.sql"))
    parts = [f"duckdb {duckdb.__version__}", MIGRATIONS_TABLE_SQL, META_TABLE_SQL, _views_sql()[0]]
    parts += [f"{f.stem}\n{f.read_text(encoding='utf-8')}" for f in files]
    return _sha256_hex("\n--\n".join(parts).encode())[:24]


def _fresh_name(path: Path, what: str) -> Path:
    return path.with_name(f".{path.name}.{what}-{os.getpid()}-{os.urandom(4).hex()}")


def _remove(*paths: Path) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            os.unlink(p)


def _build_template(template: Path) -> bool:
    """Create the empty registry ``template`` (:func:`create_schema` in a file of its own, closed, so that it
    has no write-ahead log, then renamed into place at once); False when that is not possible (no cache
    folder can be written …), changing nothing."""
    tmp = _fresh_name(template, "new")
    try:
        template.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(tmp))
        try:
            create_schema(con)
        finally:
            con.close()
        os.replace(tmp, template)
        return True
    except (OSError, duckdb.Error, RegistryError):
        return False
    finally:
        _remove(tmp, Path(str(tmp) + ".wal"))


def _copy_template(path: Path) -> bool:
    """Put a copy of the empty registry for this schema at ``path``, which does not exist (creating one
    statement by statement costs ~80 ms of CPU, most of it DuckDB parsing and binding the ~60 tables,
    indexes and views; the copy, with the check and the record of its creation that
    :func:`_adopt_template` makes in it, ~30 ms). The template is made on first use in the cache folder.
    The copy is made and adopted beside ``path`` under another name, so that no other process sees it
    before it is a registry of its own, then hard-linked to ``path``, which fails when ``path`` exists by
    then: another process created the registry meanwhile, and this one opens that as any registry. A
    template that fails the check is deleted (the next creation makes it again). False, with nothing
    changed, when there is no template and none can be made, the check fails, or the link does."""
    template = template_path()
    if template is None or (not template.exists() and not _build_template(template)):
        return False
    tmp = _fresh_name(path, "new")
    try:
        import shutil

        shutil.copyfile(template, tmp)
        con = duckdb.connect(str(tmp))
        try:
            adopted = _adopt_template(con)
        finally:
            con.close()  # (a checkpoint: the copy holds its record, no write-ahead log is left)
        if not adopted:
            _remove(template)
            return False
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.link(tmp, path)
        return True
    except (OSError, duckdb.Error):
        return False
    finally:
        _remove(tmp, Path(str(tmp) + ".wal"))


#: the tables of a new registry that hold rows: the schema's own record
_SCHEMA_TABLES = ("migrations", "meta")


def _adopt_template(con: duckdb.DuckDBPyConnection) -> bool:
    """Check that a copy of the template is an empty registry of this schema (every
    migration recorded, the views' digest current, no row in any other table, nothing else in ``meta``)
    and record its creation: every ``migrations`` row gets this moment, as :func:`create_schema` gives
    them. False (nothing written) when the check fails. (A sequence that was advanced is not seen: DuckDB
    2.0 reports no ``last_value``; it would only make the ids of the registry's rows start higher.)"""
    needs, newer = _schema_state(con)
    if needs or newer:
        return False
    used = con.execute(
        # (a table's estimated size is the rows in its storage, deleted ones included until a checkpoint)
        "SELECT (SELECT coalesce(sum(estimated_size), 0) FROM duckdb_tables() WHERE NOT temporary AND NOT internal "
        f"AND table_name NOT IN {_SCHEMA_TABLES}), "
        "(SELECT count(*) FROM meta WHERE key <> 'views_sha256')"
    ).fetchone()
    if used != (0, 0):
        return False
    con.execute("UPDATE migrations SET applied_at = now()")
    return True


def _sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` in hex. Every open digests the views' text (:func:`_schema_state`); the
    interpreter's own SHA-256 module does it without loading OpenSSL, which ``import hashlib`` does (3-4 ms
    of every ``show`` and ``ls``); hashlib where that module is missing."""
    return str(_sha256_constructor()(data).hexdigest())


@functools.cache
def _sha256_constructor() -> Callable[[bytes], Any]:
    """The interpreter's own ``sha256`` (looked up once: a module that is missing is searched for on the
    whole ``sys.path`` at each attempt, ~0.6 ms, and creating a registry digests every migration)."""
    for name in ("_sha2", "_sha256"):  # Python 3.12+, 3.11
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        return mod.sha256
    import hashlib

    return hashlib.sha256


def _views_sql() -> tuple[str, list[str]]:
    from registry.store.listing_table import FILL_SQL

    parts = [f.read_text(encoding="utf-8") for f in sorted(VIEWS_DIR.glob("*.sql"))]
    # the listing table's definition is part of the digest: when it changes, the table is rebuilt
    digest = _sha256_hex("\n--\n".join([*parts, FILL_SQL]).encode())
    return digest, parts


def _refresh_views(con: duckdb.DuckDBPyConnection, rebuild: bool = False) -> None:
    """Re-create the views when their text changed, and then (or when ``rebuild``: after migrations,
    which may change the rows it is computed from) recompute the ``model_listing`` table from them."""
    from registry.store.listing_table import has_listing, rebuild_listing

    digest, parts = _views_sql()
    con.execute(META_TABLE_SQL)
    row = con.execute("SELECT value FROM meta WHERE key = 'views_sha256'").fetchone()
    if row and row[0] == digest and not rebuild:
        return
    con.execute("BEGIN TRANSACTION")
    try:
        for part in parts:
            for stmt in _statements(part):
                con.execute(stmt)
        if has_listing(con):
            rebuild_listing(con)
        con.execute("INSERT OR REPLACE INTO meta VALUES ('views_sha256', ?)", [digest])
        con.execute("COMMIT")
    except Exception as e:
        con.execute("ROLLBACK")
        raise RegistryError(f"creating views failed: {e}") from e


def _schema_state(con: duckdb.DuckDBPyConnection) -> tuple[bool, list[str]]:
    """(needs migration, migrations recorded in the registry that this software does not know)."""
    try:
        done = {r[0] for r in con.execute("SELECT name FROM migrations").fetchall()}
        row = con.execute("SELECT value FROM meta WHERE key = 'views_sha256'").fetchone()
    except duckdb.CatalogException:
        return True, []
    wanted = {f.stem for f in MIGRATIONS_DIR.glob("*.sql")}
    newer = sorted(done - wanted)
    if newer:
        return False, newer
    return not wanted <= done or not row or row[0] != _views_sql()[0], []


def _cause(e: BaseException) -> tuple[str, int | None]:
    """The operating-system cause inside a DuckDB or OS error, in words, and its errno when known."""
    if isinstance(e, OSError) and e.errno is not None:
        return os.strerror(e.errno).lower(), e.errno
    text = str(e)
    for code in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EDQUOT, errno.EPERM, errno.EIO):
        words = os.strerror(code)
        if words.lower() in text.lower():
            return words.lower(), code
    return text.splitlines()[0] if text else type(e).__name__, None


def storage_error(path: Path, e: BaseException, doing: str = "write") -> RegistryError:
    """One line naming the cause of a failure to open or write the registry (exit 3)."""
    text = str(e)
    if "replaying WAL" in text or "Corrupt WAL" in text:
        wal = Path(str(path) + ".wal")
        detail = text.split(":", 1)[-1].strip() if ":" in text else text
        return RegistryCorrupt(
            f"cannot open registry {path}: its write-ahead log {wal} is damaged ({detail[:160]}). "
            f"Recovery: move it aside (mv '{wal}' '{wal}.damaged') and run the command again; the registry "
            "then opens at its last checkpoint, without the changes only the log held, and "
            "`modelreg log --verify` names the events that were lost"
        )
    cause, code = _cause(e)
    hint = {
        errno.ENOSPC: "free some space, or move the registry with --db",
        errno.EDQUOT: "free some space, or move the registry with --db",
        errno.EACCES: "check the permissions of the registry and its folder, or use --db",
        errno.EPERM: "check the permissions of the registry and its folder, or use --db",
        errno.EROFS: "the registry is on a read-only file system; use --db to write elsewhere",
    }.get(code or -1)
    return RegistryError(f"cannot {doing} registry {path}: {cause}" + (f"; {hint}" if hint else ""))


def _is_storage_failure(e: BaseException) -> bool:
    if isinstance(e, OSError):
        return True
    if isinstance(e, duckdb.IOException | duckdb.FatalException | duckdb.PermissionException):
        return True
    return isinstance(e, duckdb.Error) and _cause(e)[1] is not None


def check_writable(path: Path) -> None:
    """Before any analysis work: can the registry (its folder, file, ``.wal`` and head file) be written,
    and is there some free space? Raises a :class:`RegistryError` naming the cause."""
    folder = path.parent
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    for target in (probe, path, Path(str(path) + ".wal"), folder / (path.name + ".head")):
        if target.exists() and not os.access(target, os.W_OK):
            err = errno.EROFS if _read_only_fs(target) else errno.EACCES
            raise storage_error(path, OSError(err, f"{os.strerror(err)}: {target}"))
    import shutil

    try:
        free = shutil.disk_usage(probe).free
    except OSError as e:
        raise storage_error(path, e) from None
    if free < MIN_FREE_BYTES:
        raise storage_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))


def _read_only_fs(p: Path) -> bool:
    try:
        return bool(os.statvfs(p).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _newer_error(path: Path, newer: list[str]) -> RegistryError:
    from registry import __version__

    return RegistryError(
        f"registry {path} was written by a newer modelreg (its schema has {', '.join(newer)}, unknown to "
        f"modelreg {__version__}): reading works, writing is refused; upgrade modelreg to write to it"
    )


def open_read_only(
    path: Path, *, timeout: float = DEFAULT_BUSY_TIMEOUT, on_wait: Callable[[str], None] | None = None
) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the registry at ``path``, which the caller closes (:func:`connect` with
    ``read_only=True`` is this in a ``with``): migrated first with a short write open when its schema is
    behind the code; :class:`UsageError` when there is no registry; :class:`RegistryBusy` after
    ``timeout`` seconds of another process writing."""
    if not path.exists():
        raise UsageError(f"no registry at {path} (scan something first, or check --db)")
    con = _open(path, True, timeout, on_wait)
    needs, newer = _schema_state(con)
    if needs and not newer:
        con.close()
        check_writable(path)
        con = _open(path, False, timeout, on_wait)
        try:
            migrate(con)
        except (duckdb.Error, OSError) as e:
            con.close()
            raise storage_error(path, e) from None
        con.close()
        con = _open(path, True, timeout, on_wait)
    return con


@contextmanager
def connect(
    path: Path | None = None,
    *,
    read_only: bool = False,
    timeout: float = DEFAULT_BUSY_TIMEOUT,
    on_wait: Callable[[str], None] | None = None,
    on_create: Callable[[str], None] | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the registry and close it after use.

    Only a write open creates a registry (telling ``on_create``); a read-only open of a path with no
    registry raises :class:`UsageError` ("no registry at PATH"). A read-only open of a registry whose
    schema is behind the code first migrates it with a short write open; a registry written by a newer
    version is read as it is and never written. A write open first checks that the registry can be
    written (:func:`check_writable`) and that its event log still matches the head file
    (:mod:`registry.store.anchor`), and afterwards moves the head file to the last event. Failures of
    the storage (no space, permission denied, read-only file system, damaged ``.wal``) become one
    :class:`RegistryError` that names the cause.
    """
    path = Path(path) if path is not None else default_db_path()
    if read_only:
        con = open_read_only(path, timeout=timeout, on_wait=on_wait)
        try:
            yield con
        finally:
            con.close()
        return
    from registry.store import anchor

    created = not path.exists()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage_error(path, e, "create") from None
    check_writable(path)
    copied = created and _copy_template(path)
    con = _open(path, False, timeout, on_wait)
    try:
        # a registry created by this open gets its schema at once, unless another process created it
        # meanwhile (this one waited for the lock): then it is as any other registry
        if not copied and (not created or create_schema(con) is None):
            needs, newer = _schema_state(con)
            if newer:
                raise _newer_error(path, newer)
            if needs:
                migrate(con)
        anchor.check_before_write(con, path)
        if created and on_create is not None:
            on_create(f"created a new registry at {path}")
        yield con
        anchor.update_after_write(con, path, created)
    except RegistryError:
        raise
    except BaseException as e:
        if _is_storage_failure(e):
            raise storage_error(path, e) from None
        raise
    finally:
        with contextlib.suppress(duckdb.Error):
            con.close()
