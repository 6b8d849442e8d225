"""The web view of the registry (``modelreg serve``): a server-rendered Starlette app with Jinja2 templates.

Every page reads through the library (``registry.listing``, ``registry.record`` and its sections,
``registry.tensorstats``, ``registry.store.events``/``integrity``): there is no second query layer. Each
page has a JSON twin (``?format=json``). Requests read through one shared read-only connection
(:class:`ReadPool`), let go as soon as another modelreg process asks for the registry, so a scan can
take the write lock between requests; a request that meets the lock waits briefly, then answers 503
"registry busy, retrying" with ``Retry-After`` (never a 500).

Safety: autoescaping in every template; a strict Content-Security-Policy (scripts and styles only from
``/static``); files served only by content address (a 64-hex SHA-256 that the registry knows, and whose
bytes are checked against it); with a token, every page needs it (``Authorization: Bearer`` or the
cookie set by the login form); without one, only loopback ``Host`` names are answered. Read-only unless
``allow_write``; every form carries a CSRF token (double-submit cookie, compared in constant time).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import ipaddress
import os
import re
import secrets
import stat
import sys
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import duckdb
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from registry.errors import AmbiguousRef, NotFound, RegistryBusy, RegistryError, UsageError
from registry.jsonout import dumps

HERE = Path(__file__).parent
#: how long a request waits for another process's write lock before answering 503
BUSY_WAIT_S = 1.5
#: the shared read connection is closed after this many seconds without a request (sooner when another
#: modelreg process asks for the registry: see :class:`ReadPool`)
POOL_IDLE_S = 5.0
RETRY_AFTER_S = 2
PER_PAGE = 50
MAX_PER_PAGE = 500
SHA256_RE = re.compile(r"[0-9a-f]{64}")
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
AUTH_COOKIE = "modelreg_auth"
CSRF_COOKIE = "modelreg_csrf"
EXHIBIT_FILES = {"record.json": "application/json", "report.pdf": "application/pdf"}


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address, IPv6 with or without brackets) is this machine only."""
    h = host.strip().lower()
    if h in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(h.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse (UsageError, exit 2) to listen on a non-loopback address without a token."""
    if not is_loopback(host) and not token:
        raise UsageError(
            f"refusing to serve on {host}: another address than loopback needs --token TOKEN "
            "(or MODELREG_TOKEN); every page then asks for it"
        )


class _RWLock:
    """Many readers or one writer: DuckDB refuses a read-write connection in a process that holds a
    read-only one to the same file (and the other way round)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class ReadPool:
    """One read-only connection to the registry, kept open across requests (each request reads through a
    cursor of its own), so that a page does not pay for opening the registry and reloading its blocks
    (50–70 ms at 100,000 models).

    DuckDB lets a process write only while no other process has the file open, readers included, so the
    connection is let go (closed once the requests using it finish) as soon as another modelreg process
    asks for the registry (``<registry>.waiting`` is fresh: a scan, ``tag``, ``declare``… waiting for the
    lock), after ``idle_s`` seconds without requests, and before this process writes. While someone is
    waiting, requests do not use it: they open the registry for themselves, as without the pool (waiting
    briefly, then "registry busy"). Before each use it is also checked against the file: when the registry
    or its ``.wal`` changed since it was opened, it is reopened; when another process holds the write lock
    (possible when something in this process opened and closed the registry file, which drops the
    process's POSIX locks on it), it is closed and the request meets the lock as it would without a pool.
    """

    #: how often the watcher looks for a waiting writer and for idleness (seconds)
    POLL_S = 0.1
    #: one pool per registry file in this process, shared by every app serving it
    _shared: dict[Path, ReadPool] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def for_path(cls, db_path: Path, idle_s: float, timeout: float) -> ReadPool:
        """This process's pool for the registry at ``db_path`` (made on first use)."""
        from registry.store.db import on_write_open

        key = db_path.resolve()
        with cls._shared_lock:
            pool = cls._shared.get(key)
            if pool is None:
                pool = cls._shared[key] = cls(db_path, idle_s, timeout)
                on_write_open(pool.release_for)
            return pool

    def __init__(self, db_path: Path, idle_s: float, timeout: float) -> None:
        self.db_path = db_path
        self.idle_s = idle_s
        self.timeout = timeout
        self._cond = threading.Condition()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stamp: tuple[Any, ...] | None = None
        self._users = 0
        self._last = 0.0
        self._watcher: threading.Thread | None = None
        #: a descriptor of the registry file kept for the process's lifetime, only to ask whether another
        #: process holds a write lock (closing a descriptor would drop this process's locks on the file)
        self._probe_fd: int | None = None

    def release_for(self, path: Path) -> None:
        """Before this process opens ``path`` for writing: close the connection if it is to that file."""
        if path.resolve() == self.db_path.resolve():
            self.close()

    @contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        from registry.store.db import connect, open_read_only, someone_waiting

        con = None
        with self._cond:
            if not someone_waiting(self.db_path):
                if self._con is not None and (self._file_stamp() != self._stamp or self._write_locked_elsewhere()):
                    while self._users:  # changed under it, or a writer holds the file: finish, then let go
                        self._cond.wait()
                    self._close_when_unused()
                if self._con is None and not self._write_locked_elsewhere():
                    # (raises RegistryBusy after ``timeout`` while another process writes, as connect does)
                    self._con = open_read_only(self.db_path, timeout=self.timeout)
                    self._stamp = self._file_stamp()
                    self._start_watcher()
                con = self._con
            else:
                self._close_when_unused()
            if con is not None:
                self._users += 1
                cur = con.cursor()
        if con is None:
            with connect(self.db_path, read_only=True, timeout=self.timeout) as own:
                yield own
            return
        try:
            yield cur
        finally:
            cur.close()
            with self._cond:
                self._users -= 1
                self._last = time.monotonic()
                self._cond.notify_all()

    def close(self) -> None:
        """Close the connection once no request uses it (waits for those that do)."""
        with self._cond:
            while self._users:
                self._cond.wait()
            self._close_when_unused()

    def _file_stamp(self) -> tuple[Any, ...]:
        """What changes when another process writes the registry: the file's and its ``.wal``'s identity,
        size and modification time."""
        out: list[Any] = []
        for p in (self.db_path, self.db_path.with_name(self.db_path.name + ".wal")):
            try:
                st = os.stat(p)
                out.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                out.append(None)
        return tuple(out)

    def _write_locked_elsewhere(self) -> bool:
        """Does another process hold a write lock on the registry file? (Linux: asked with F_GETLK, which
        takes no lock; elsewhere False, and the file stamp alone decides.)"""
        if sys.platform != "linux":
            return False
        import fcntl
        import struct

        try:
            if self._probe_fd is None:
                self._probe_fd = os.open(self.db_path, os.O_RDONLY)
            probe = struct.pack("hhqqi", fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)
            got = fcntl.fcntl(self._probe_fd, fcntl.F_GETLK, probe)
        except OSError:
            return False
        return bool(struct.unpack("hhqqi", got)[0] != fcntl.F_UNLCK)

    def _close_when_unused(self) -> None:
        if self._con is not None and not self._users:
            self._con.close()
            self._con = None
            self._stamp = None

    def _start_watcher(self) -> None:
        if self._watcher is None or not self._watcher.is_alive():
            self._watcher = threading.Thread(target=self._watch, name="modelreg-read-pool", daemon=True)
            self._watcher.start()

    def _watch(self) -> None:
        from registry.store.db import someone_waiting

        while True:
            with self._cond:
                if self._con is None:
                    self._watcher = None
                    return
                if not self._users and (
                    time.monotonic() - self._last >= self.idle_s or someone_waiting(self.db_path)
                ):
                    self._close_when_unused()
                    self._watcher = None
                    return
                self._cond.wait(self.POLL_S)


def _jinja() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = _num
    env.filters["bytes"] = _bytes
    env.filters["json"] = lambda v: dumps(v, indent=2)
    return env


def _num(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _bytes(v: Any) -> str:
    if not isinstance(v, int):
        return ""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if v >= size:
            return f"{v / size:.2f} {unit}"
    return f"{v} B"


class WebApp:
    def __init__(self, db_path: Path, token: str | None = None, allow_write: bool = False) -> None:
        self.db_path = Path(db_path)
        self.token = token or None
        self.allow_write = allow_write
        self.secret = secrets.token_bytes(32)
        self.env = _jinja()
        self.lock = _RWLock()
        self.pool = ReadPool.for_path(self.db_path, idle_s=POOL_IDLE_S, timeout=BUSY_WAIT_S)

    # -- registry access ----------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.lock.read(), self.pool.cursor() as con:
            yield con

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        from registry.store.db import connect

        # (the write open closes the shared read connection first: see registry.store.db.on_write_open)
        with self.lock.write(), connect(self.db_path, timeout=BUSY_WAIT_S) as con:
            yield con

    # -- auth and CSRF ------------------------------------------------------------------------------

    def auth_cookie_value(self) -> str:
        assert self.token is not None
        return hmac.new(self.secret, self.token.encode(), hashlib.sha256).hexdigest()

    def authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and hmac.compare_digest(
            header[7:].strip().encode(), self.token.encode()
        ):
            return True
        cookie = request.cookies.get(AUTH_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), self.auth_cookie_value().encode())

    @staticmethod
    def csrf_token(request: Request) -> str:
        tok = getattr(request.state, "csrf", None)
        if tok is None:
            tok = request.cookies.get(CSRF_COOKIE) or ""
            if not re.fullmatch(r"[A-Za-z0-9_-]{32,64}", tok):
                tok = secrets.token_urlsafe(32)
                request.state.new_csrf = True
            request.state.csrf = tok
        return str(tok)

    @staticmethod
    async def check_csrf(request: Request) -> dict[str, str]:
        """The submitted form, after checking its CSRF token against the cookie (403 otherwise)."""
        form = await request.form()
        sent = form.get("csrf")
        cookie = request.cookies.get(CSRF_COOKIE)
        if not isinstance(sent, str) or not cookie or not hmac.compare_digest(sent.encode(), cookie.encode()):
            raise _Forbidden("the form's CSRF token is missing or does not match; reload the page and try again")
        return {k: v for k, v in form.items() if isinstance(v, str)}

    # -- rendering ----------------------------------------------------------------------------------

    def page(self, request: Request, template: str, data: Any, status: int = 200, **context: Any) -> Response:
        """The HTML page, or its JSON twin (``?format=json`` or ``Accept: application/json``)."""
        if wants_json(request):
            return json_response(data, status)
        ctx = {
            "request": request,
            "data": data,
            "csrf": self.csrf_token(request),
            "allow_write": self.allow_write,
            "token_required": self.token is not None,
            "json_url": with_params(request, format="json"),
            **context,
        }
        html = self.env.get_template(template).render(ctx)
        resp = HTMLResponse(html, status_code=status)
        self._set_csrf_cookie(request, resp)
        return resp

    @staticmethod
    def _set_csrf_cookie(request: Request, resp: Response) -> None:
        if getattr(request.state, "new_csrf", False):
            resp.set_cookie(CSRF_COOKIE, request.state.csrf, httponly=True, samesite="strict", path="/")


class _Forbidden(Exception):
    pass


def wants_json(request: Request) -> bool:
    fmt = request.query_params.get("format")
    if fmt is not None:
        return fmt == "json"
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(data, indent=2) + "\n", status_code=status, media_type="application/json", headers=headers)


def with_params(request: Request, **changes: Any) -> str:
    """This page's URL with some query parameters replaced (None removes one): shareable links."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in changes]
    items += [(k, str(v)) for k, v in changes.items() if v is not None]
    return request.url.path + ("?" + urlencode(items) if items else "")


# -- the list ---------------------------------------------------------------------------------------

LIST_FILTERS = ["q", "file_format", "name", "min_severity", "kind", "arch", "trigger", "used_in", "base",
                "min_eff_rank", "max_eff_rank", "min_norm", "max_norm", "nonfinite"]  # fmt: skip


def _float(params: QueryParams, key: str) -> float | None:
    v = params.get(key, "").strip()
    if not v:
        return None
    try:
        return float(v)
    except ValueError:
        raise UsageError(f"{key}: not a number: {v!r}") from None


def _int(params: QueryParams, key: str, default: int, lo: int, hi: int) -> int:
    v = params.get(key, "").strip()
    if not v:
        return default
    try:
        n = int(v)
    except ValueError:
        raise UsageError(f"{key}: not a whole number: {v!r}") from None
    return max(lo, min(hi, n))


def list_query(params: QueryParams) -> tuple[Any, int, int]:
    """The :class:`~registry.listing.ListQuery` a list URL asks for, with its page and page size."""
    from registry.listing import ListQuery

    page = _int(params, "page", 1, 1, 10**9)
    per_page = _int(params, "per_page", PER_PAGE, 1, MAX_PER_PAGE)

    def s(key: str) -> str | None:
        v = params.get(key, "").strip()
        return v or None

    query = ListQuery(
        q=s("q"), file_format=s("file_format"), name_glob=s("name"), min_severity=s("min_severity"),
        kind=s("kind"), arch=s("arch"), trigger=s("trigger"), used_in=s("used_in"), base_ref=s("base"),
        min_eff_rank=_float(params, "min_eff_rank"), max_eff_rank=_float(params, "max_eff_rank"),
        min_norm=_float(params, "min_norm"), max_norm=_float(params, "max_norm"),
        forms=tuple(f for f in params.getlist("form") if f), nonfinite=params.get("nonfinite") in ("1", "on", "true"),
        sort=s("sort") or "path", descending=params.get("desc") in ("1", "on", "true"),
        limit=per_page, offset=(page - 1) * per_page,
    )  # fmt: skip
    return query, page, per_page


def create_app(db_path: str | Path, token: str | None = None, allow_write: bool = False) -> Starlette:
    """The ASGI app serving the registry at ``db_path`` (see docs/serve.md)."""
    web = WebApp(Path(db_path), token, allow_write)

    def list_page(request: Request) -> Response:
        from registry.archs import KINDS
        from registry.listing import FORMS, SEVERITIES, SORTS, list_models

        items = request.query_params.multi_items()
        if any(v == "" for _, v in items):  # the filter form sends every field: keep shared URLs short
            kept = [(k, v) for k, v in items if v != ""]
            return RedirectResponse(request.url.path + ("?" + urlencode(kept) if kept else ""), status_code=303)
        query, page, per_page = list_query(request.query_params)
        with web.read() as con:
            res = list_models(con, query, count=True)
        total = res.total or 0
        data = {
            "total": total,
            "page": page,
            "per_page": per_page,
            "query": {k: v for k, v in vars(query).items() if v not in (None, (), False) and k not in ("limit", "offset")},
            "rows": [{c: r.get(c) for c in res.columns} for r in res.rows],
        }
        pages = max(1, -(-total // per_page))
        return web.page(
            request, "list.html", data, kinds=[*KINDS, "adapter"], severities=SEVERITIES, forms=FORMS,
            sorts=list(SORTS), pages=pages, params=request.query_params, query=query,
            prev_url=with_params(request, page=page - 1) if page > 1 else None,
            next_url=with_params(request, page=page + 1) if page < pages else None,
            sort_url=lambda key: with_params(
                request, sort=key, desc=None if (query.sort != key or query.descending) else "1", page=None
            ),
        )  # fmt: skip

    def model_page(request: Request) -> Response:
        from registry.record import build_record, load_sections
        from registry.store.read import resolve_ref

        ref = request.path_params["ref"]
        with web.read() as con:
            sha = resolve_ref(con, ref)
            record = build_record(con, sha)
            has_declaration = con.execute(
                "SELECT 1 FROM declarations WHERE blob_sha256 = ? LIMIT 1", [sha]
            ).fetchone() is not None
        data = {"sha256": sha, **record}
        if wants_json(request):
            return json_response(data)
        sections = [s for s in load_sections() if s.name in record]
        return web.page(
            request, "model.html", data, sha=sha, record=record, sections=sections, figures=_figures(record),
            name=_display_name(record, sha), has_declaration=has_declaration, flash=request.query_params.get("done"),
        )  # fmt: skip

    def diff_page(request: Request) -> Response:
        from registry.store.read import resolve_ref
        from registry.tensorstats import diff_checkpoints, side_from_registry

        a, b = request.query_params.get("a", "").strip(), request.query_params.get("b", "").strip()
        if not a or not b:
            return web.page(request, "diff.html", {"error": "give two models: a and b"}, a=a, b=b, rep=None)
        with web.read() as con:
            sha_a, sha_b = resolve_ref(con, a), resolve_ref(con, b)
            side_a, side_b = side_from_registry(con, sha_a), side_from_registry(con, sha_b)
        rep = diff_checkpoints(side_a, side_b)
        rows = [{"tensor": d.name, **{k: v for k, v in vars(d).items() if k != "name"}} for d in rep.tensors]
        data = {"a": sha_a, "b": sha_b, "summary": rep.summary, "by_block": rep.by_block, "tensors": rows}
        changed = sorted((r for r in rows if r["status"] != "identical"), key=lambda r: -(r["rel_change"] or 0.0))
        return web.page(
            request, "diff.html", data, a=a, b=b, rep=rep, path_a=side_a.path, path_b=side_b.path, changed=changed[:100]
        )

    def findings_page(request: Request) -> Response:
        from registry.listing import SEVERITIES, findings_overview

        severity = request.query_params.get("severity") or None
        rule = request.query_params.get("rule") or None
        limit = _int(request.query_params, "limit", 200, 1, 5000)
        with web.read() as con:
            data = findings_overview(con, severity=severity, rule=rule, limit=limit)
        return web.page(request, "findings.html", data, severities=SEVERITIES, severity=severity, rule=rule)

    def log_page(request: Request) -> Response:
        from registry.store.events import event_rows
        from registry.store.integrity import verify_registry
        from registry.store.read import resolve_ref

        ref = request.query_params.get("ref", "").strip() or None
        limit = _int(request.query_params, "limit", 500, 1, 10**7)
        verify = request.query_params.get("verify") in ("1", "on", "true")
        with web.read() as con:
            rows = event_rows(con, resolve_ref(con, ref) if ref else None)
            check = verify_registry(con, web.db_path) if verify else None
        n_events = len(rows)
        rows = rows[-limit:]
        verification = None
        if check is not None:
            verification = {
                "ok": check.ok,
                "n_events": check.chain.n_events,
                "head": check.chain.head,
                "first_broken_seq": check.chain.first_broken_seq,
                "chain_reason": check.chain.reason,
                "head_file": str(check.head_file),
                "head_file_seq": check.head.seq if check.head is not None else None,
                "problems": check.problems,
                "notes": check.notes,
            }
        data = {"n_events": n_events, "events": rows, "verify": verification}
        return web.page(request, "log.html", data, ref=ref, limit=limit)

    def exhibit_file(request: Request) -> Response:
        sha, name = request.path_params["sha"], request.path_params["name"]
        if not SHA256_RE.fullmatch(sha) or (name not in EXHIBIT_FILES and name != "exhibit.zip"):
            raise NotFound("no such exhibit file: exhibits are served by the SHA-256 of their record.json")
        with web.read() as con:
            row = con.execute(
                "SELECT folder FROM exhibits WHERE record_sha256 = ? ORDER BY created_at DESC LIMIT 1", [sha]
            ).fetchone()
        if row is None:
            raise NotFound(f"no exhibit with record sha256:{sha} in this registry")
        folder = Path(row[0])
        record = _read_plain(folder / "record.json")
        if record is None or hashlib.sha256(record).hexdigest() != sha:
            raise NotFound(f"the exhibit's folder {folder} no longer holds the record.json with sha256:{sha}")
        disposition = {"Content-Disposition": f'attachment; filename="exhibit-{sha[:16]}-{name}"'}
        if name == "record.json":
            return Response(record, media_type="application/json", headers=disposition)
        if name == "report.pdf":
            pdf = _read_plain(folder / "report.pdf")
            if pdf is None:
                raise NotFound(f"the exhibit in {folder} has no report.pdf")
            return Response(pdf, media_type="application/pdf", headers=disposition)
        return Response(_zip_folder(folder, f"exhibit-{sha[:16]}"), media_type="application/zip", headers=disposition)

    def sample_file(request: Request) -> Response:
        from registry.probe.record import sample_path

        sha = request.path_params["sha"]
        if not SHA256_RE.fullmatch(sha):
            raise NotFound("samples are served by their SHA-256 only")
        with web.read() as con:
            row = con.execute("SELECT store_root FROM probe_runs WHERE sheet_sha256 = ? LIMIT 1", [sha]).fetchone()
        if row is None:
            raise NotFound(f"no contact sheet sha256:{sha} in this registry")
        data = _read_plain(sample_path(row[0], sha))
        if data is None or hashlib.sha256(data).hexdigest() != sha:
            raise NotFound(f"contact sheet sha256:{sha} is missing from the sample store or was changed")
        return Response(data, media_type="image/png", headers={"Cache-Control": "max-age=31536000, immutable"})

    async def login(request: Request) -> Response:
        nxt = _safe_next(request.query_params.get("next"))
        if request.method == "POST":
            form = await web.check_csrf(request)
            nxt = _safe_next(form.get("next"))
            if web.token is not None and hmac.compare_digest(form.get("token", "").encode(), web.token.encode()):
                resp = RedirectResponse(nxt, status_code=303)
                resp.set_cookie(AUTH_COOKIE, web.auth_cookie_value(), httponly=True, samesite="strict", path="/")
                return resp
            return web.page(request, "login.html", {"error": "wrong token"}, status=401, next=nxt, error="wrong token")
        return web.page(request, "login.html", {"login": True}, next=nxt, error=None)

    async def recheck_declaration(request: Request) -> Response:
        if not web.allow_write:
            raise _Forbidden("this server is read-only (start it with --allow-write to re-check declarations)")
        await web.check_csrf(request)
        sha = request.path_params["sha"]
        if not SHA256_RE.fullmatch(sha):
            raise NotFound("models are addressed by their full SHA-256 here")
        from starlette.concurrency import run_in_threadpool

        def work() -> None:
            from registry.store.declarations import recheck

            with web.write() as con:
                recheck(con, sha)

        await run_in_threadpool(work)
        return RedirectResponse(f"/model/{sha}?done=rechecked#declaration", status_code=303)

    routes = [
        Route("/", list_page),
        Route("/model/{ref:path}", model_page),
        Route("/diff", diff_page),
        Route("/findings", findings_page),
        Route("/log", log_page),
        Route("/exhibit/{sha}/{name}", exhibit_file),
        Route("/sample/{sha}.png", sample_file),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/recheck/{sha}", recheck_declaration, methods=["POST"]),
        Route("/favicon.ico", lambda request: RedirectResponse("/static/favicon.svg", status_code=301)),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    def error(request: Request, status: int, message: str, extra: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> Response:  # fmt: skip
        data = {"error": message, **(extra or {})}
        if wants_json(request):
            return json_response(data, status, headers)
        resp = web.page(request, "error.html", data, status=status, message=message, extra=extra or {},
                        busy=status == 503, retry=RETRY_AFTER_S)  # fmt: skip
        for k, v in (headers or {}).items():
            resp.headers[k] = v
        return resp

    async def on_busy(request: Request, exc: Exception) -> Response:
        return error(request, 503, "registry busy, retrying: another process (probably a scan) is writing to it",
                     headers={"Retry-After": str(RETRY_AFTER_S)})  # fmt: skip

    async def on_ambiguous(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AmbiguousRef)
        return error(request, 409, str(exc), {"candidates": [str(c) for c in exc.candidates]})

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return error(request, 404, str(exc))

    async def on_usage(request: Request, exc: Exception) -> Response:
        return error(request, 400, str(exc))

    async def on_registry(request: Request, exc: Exception) -> Response:
        return error(request, 503 if isinstance(exc, RegistryBusy) else 500, str(exc))

    async def on_forbidden(request: Request, exc: Exception) -> Response:
        return error(request, 403, str(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        code = int(getattr(exc, "status_code", 500))
        return error(request, code, str(getattr(exc, "detail", "")) or "error")

    from starlette.exceptions import HTTPException

    handlers: dict[Any, Callable[[Request, Exception], Any]] = {
        RegistryBusy: on_busy,
        AmbiguousRef: on_ambiguous,
        NotFound: on_not_found,
        UsageError: on_usage,
        RegistryError: on_registry,
        _Forbidden: on_forbidden,
        HTTPException: on_http,
    }

    class Guard(BaseHTTPMiddleware):
        """Host check (no token: loopback names only), token check, security headers on every answer."""

        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            resp = await self._dispatch(request, call_next)
            resp.headers["Content-Security-Policy"] = CSP
            resp.headers["X-Content-Type-Options"] = "nosniff"
            resp.headers["Referrer-Policy"] = "no-referrer"
            resp.headers["X-Frame-Options"] = "DENY"
            resp.headers.setdefault(
                "Cache-Control", "max-age=3600" if request.url.path.startswith("/static/") else "no-store"
            )
            return resp

        async def _dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            host = request.url.hostname or ""
            if web.token is None and not is_loopback(host):
                return Response("this server answers only on loopback names (no --token given)\n", status_code=400,
                                media_type="text/plain")  # fmt: skip
            path = request.url.path
            if web.authorized(request) or path in ("/login", "/favicon.ico") or path.startswith("/static/"):
                return await call_next(request)
            if wants_json(request) or request.method != "GET":
                return json_response({"error": "token required"}, 401, {"WWW-Authenticate": "Bearer"})
            return RedirectResponse("/login?" + urlencode({"next": with_params(request)}), status_code=303)

    return Starlette(routes=routes, exception_handlers=handlers, middleware=[Middleware(Guard)])


def _safe_next(value: Any) -> str:
    """A redirect target after login: a path on this server only (no scheme, host or ``//``)."""
    # browsers drop tabs and newlines inside URLs ("/\t/evil" becomes "//evil"), so no control or space
    if (
        isinstance(value, str)
        and value.startswith("/")
        and not value.startswith("//")
        and "\\" not in value
        and not any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    ):
        return value
    return "/"


def _read_plain(path: Path) -> bytes | None:
    """A regular file's bytes, never through a symbolic link; None when absent or not a plain file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def _zip_folder(folder: Path, top: str) -> bytes:
    """Every plain file under an exhibit folder (symbolic links and special files left out) as a zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
            dirnames.sort()
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                data = _read_plain(p)
                if data is not None:
                    z.writestr(f"{top}/{p.relative_to(folder).as_posix()}", data)
    return buf.getvalue()


def _display_name(record: dict[str, Any], sha: str) -> str:
    sightings = record.get("sightings") or []
    for s in sightings:
        p = s.get("path") if isinstance(s, dict) else None
        if isinstance(p, str) and p:
            return p.replace("\\", "/").rsplit("/", 1)[-1]
    return sha[:16]


def _figures(record: dict[str, Any]) -> dict[str, Any]:
    """Inline SVG figures of the record (the exhibit report's own drawing code), by section."""
    from registry.evidence import figures

    out: dict[str, Any] = {}
    stats = record.get("stats")
    if stats is not None:
        spectra, n_modules = figures.spectra_from_stats(stats)
        if spectra:
            out["spectra"] = {
                "svg": figures.spectrum_svg(spectra, title="Singular-value spectra of the largest module updates"),
                "labels": [label for label, _ in spectra],
                "n_modules": n_modules,
            }
        bars, vname = figures.profile_from_stats(stats)
        if bars:
            out["profile"] = {
                "svg": figures.bar_profile_svg(bars, title="Per-block profile of the update", unit=vname),
                "words": figures.quantity_words(vname),
            }
    probe = record.get("probe")
    if probe is not None:
        ivs = figures.intervals_from_probe(probe)
        if ivs:
            out["intervals"] = {"svg": figures.interval_svg(ivs)}
    return out
