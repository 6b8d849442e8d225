"""Test helpers for the Hugging Face integration.

* :func:`add_cache_file` writes a file into a Hugging Face cache folder exactly as huggingface_hub lays it
  out (``models--org--name/{blobs,snapshots/<commit>,refs}``, relative symlinks from the snapshot to the
  blob named by its SHA-256 or git blob SHA-1).
* :class:`FakeHub` is a **test double of the Hugging Face Hub**: a small HTTP server on 127.0.0.1 that
  serves the endpoints the real ``huggingface_hub`` client calls for ``model_info``, ``list_repo_tree``,
  ``get_paths_info`` and ``/resolve/`` range downloads (with the redirect the real Hub sends for LFS
  files), from repositories held in memory. It records every request so tests can assert that no weights
  were downloaded.
* :class:`FakeCivitai` is a test double of Civitai's by-hash endpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def add_cache_file(
    cache: Path,
    repo_id: str,
    commit: str,
    file: str,
    data: bytes,
    *,
    lfs: bool = True,
    ref: str | None = "main",
    blob_name: str | None = None,
) -> Path:
    """Write ``data`` as ``file`` of ``repo_id`` at ``commit``; return the snapshot path."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    name = blob_name or (hashlib.sha256(data).hexdigest() if lfs else git_sha1(data))
    blob = repo / "blobs" / name
    blob.parent.mkdir(parents=True, exist_ok=True)
    if not blob.exists():
        blob.write_bytes(data)
    snap = repo / "snapshots" / commit / file
    snap.parent.mkdir(parents=True, exist_ok=True)
    if snap.is_symlink() or snap.exists():
        snap.unlink()
    os.symlink(os.path.relpath(blob, snap.parent), snap)
    if ref is not None:
        r = repo / "refs" / ref
        r.parent.mkdir(parents=True, exist_ok=True)
        r.write_text(commit)
    return snap


@dataclass
class FakeRepo:
    repo_id: str
    commit: str
    files: dict[str, bytes]
    #: which files are LFS (by default every ``.safetensors``)
    lfs: set[str] = field(default_factory=set)
    card: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    branches: dict[str, str] = field(default_factory=lambda: {})

    def __post_init__(self) -> None:
        if not self.lfs:
            self.lfs = {p for p in self.files if p.endswith(".safetensors")}
        self.branches.setdefault("main", self.commit)

    def entry(self, path: str) -> dict[str, Any]:
        data = self.files[path]
        e: dict[str, Any] = {"type": "file", "path": path, "size": len(data)}
        if path in self.lfs:
            pointer = (
                f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
                f"size {len(data)}\n"
            ).encode()
            e["oid"] = git_sha1(pointer)
            e["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": len(pointer)}
        else:
            e["oid"] = git_sha1(data)
        return e

    def folders(self) -> set[str]:
        out = set()
        for p in self.files:
            parts = p.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                out.add("/".join(parts[:i]))
        return out


class FakeHub:
    """A test double of the Hugging Face Hub on 127.0.0.1 (see the module docstring)."""

    def __init__(self, repos: list[FakeRepo]) -> None:
        self.repos = {r.repo_id: r for r in repos}
        self.requests: list[dict[str, Any]] = []
        #: total bytes of file content served by /resolve/ (to prove weights were not downloaded)
        self.bytes_served = 0
        self._count_lock = threading.Lock()
        self.honour_range = True
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                hub._handle(self, "GET")

            def do_POST(self) -> None:
                hub._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- helpers ---------------------------------------------------------------------------------
    def _repo_rev(self, repo_id: str, rev: str) -> tuple[FakeRepo, str] | None:
        repo = self.repos.get(repo_id)
        if repo is None:
            return None
        rev = urllib.parse.unquote(rev)
        if rev == repo.commit or rev in repo.branches:
            return repo, repo.branches.get(rev, repo.commit)
        return None

    def _json(self, h: BaseHTTPRequestHandler, status: int, body: Any, extra: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)

    def _error(self, h: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        self._json(h, status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query)
        body = b""
        if method == "POST":
            body = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        self.requests.append({"method": method, "path": url.path, "query": query, "range": h.headers.get("Range")})
        path = urllib.parse.unquote(url.path)

        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)(?:/revision/(.+))?", path)
        if m and method == "GET":
            found = self._repo_rev(m.group(1), m.group(2) or "main")
            if found is None:
                code = "RepoNotFound" if m.group(1) not in self.repos else "RevisionNotFound"
                return self._error(h, 404, code, f"{code} for {m.group(1)}")
            repo, commit = found
            return self._json(
                h,
                200,
                {
                    "id": repo.repo_id,
                    "sha": commit,
                    "tags": repo.tags,
                    "cardData": repo.card,
                    "siblings": [{"rfilename": p} for p in sorted(repo.files)],
                    "lastModified": "2024-05-01T12:00:00.000Z",
                    "private": False,
                },
            )
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path)
        if m and method == "GET":
            found = self._repo_rev(m.group(1), m.group(2))
            if found is None:
                return self._error(h, 404, "RevisionNotFound", "revision not found")
            repo, _ = found
            prefix = m.group(3) or ""
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            out: list[dict[str, Any]] = []
            for folder in sorted(repo.folders()):
                parent = folder.rsplit("/", 1)[0] if "/" in folder else ""
                in_scope = (recursive and folder.startswith(prefix + "/" if prefix else "")) or parent == prefix
                if in_scope and folder != prefix:
                    out.append({"type": "directory", "path": folder, "oid": git_sha1(folder.encode()), "size": 0})
            for p in sorted(repo.files):
                parent = p.rsplit("/", 1)[0] if "/" in p else ""
                if (recursive and (not prefix or p.startswith(prefix + "/"))) or parent == prefix:
                    out.append(repo.entry(p))
            if prefix and not out:
                return self._error(h, 404, "EntryNotFound", f"{prefix} not found")
            # one page at a time: two entries per page, cursor in the Link header, like the Hub
            cursor = int(query.get("cursor", ["0"])[0])
            page = out[cursor : cursor + 2]
            extra = {}
            if cursor + 2 < len(out):
                q = dict(recursive=query.get("recursive", ["false"])[0], expand="false", cursor=str(cursor + 2))
                nxt = f"{self.url}{url.path}?{urllib.parse.urlencode(q)}"
                extra["Link"] = f'<{nxt}>; rel="next"'
            return self._json(h, 200, page, extra)
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/paths-info/([^/]+)", path)
        if m and method == "POST":
            found = self._repo_rev(m.group(1), m.group(2))
            if found is None:
                return self._error(h, 404, "RevisionNotFound", "revision not found")
            repo, _ = found
            form = urllib.parse.parse_qs(body.decode())
            out = []
            for p in form.get("paths", []):
                if p in repo.files:
                    out.append(repo.entry(p))
                elif p in repo.folders():
                    out.append({"type": "directory", "path": p, "oid": git_sha1(p.encode())})
            return self._json(h, 200, out)
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m and method == "GET":
            found = self._repo_rev(m.group(1), m.group(2))
            if found is None or m.group(3) not in found[0].files:
                return self._error(h, 404, "EntryNotFound", "entry not found")
            repo, commit = found
            if m.group(3) in repo.lfs:  # the real Hub redirects LFS files to its CDN
                h.send_response(302)
                h.send_header("Location", f"{self.url}/cdn/{repo.repo_id}/{commit}/{urllib.parse.quote(m.group(3))}")
                h.send_header("X-Repo-Commit", commit)
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            return self._serve(h, repo.files[m.group(3)], commit)
        m = re.fullmatch(r"/cdn/([^/]+/[^/]+)/([0-9a-f]+)/(.+)", path)
        if m and method == "GET":
            repo = self.repos[m.group(1)]
            return self._serve(h, repo.files[m.group(3)], m.group(2))
        self._error(h, 404, "NotFound", f"no route for {method} {path}")

    def _serve(self, h: BaseHTTPRequestHandler, data: bytes, commit: str) -> None:
        rng = h.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m and self.honour_range:
            start = int(m.group(1))
            end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            chunk = data[start : end + 1]
            h.send_response(206)
            h.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        else:
            chunk = data
            h.send_response(200)
        h.send_header("Content-Length", str(len(chunk)))
        h.send_header("X-Repo-Commit", commit)
        h.end_headers()
        # counted before the write: the client can finish reading (and the test assert) before this thread
        # runs again, so counting after the write raced with the assertion
        with self._count_lock:
            self.bytes_served += len(chunk)
        with suppress(BrokenPipeError, ConnectionResetError):
            h.wfile.write(chunk)


class FakeCivitai:
    """A test double of Civitai's ``GET /api/v1/model-versions/by-hash/{hash}`` on 127.0.0.1."""

    def __init__(self, versions: dict[str, dict[str, Any]], fail: list[tuple[int, dict[str, str]]] | None = None) -> None:
        #: upper-case hash -> model-version JSON
        self.versions = {k.upper(): v for k, v in versions.items()}
        self.requests: list[str] = []
        #: the Authorization header of each request (None when absent)
        self.auth: list[str | None] = []
        #: answers given before any real one: (status, headers), e.g. [(429, {"Retry-After": "2"}), (503, {})]
        self.fail = list(fail or [])
        civ = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                civ.requests.append(self.path)
                civ.auth.append(self.headers.get("Authorization"))
                if civ.fail:
                    status, extra = civ.fail.pop(0)
                    data = json.dumps({"error": "try later"}).encode()
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                m = re.fullmatch(r"/api/v1/model-versions/by-hash/([0-9A-Fa-f]+)", self.path)
                if m and m.group(1) in civ.versions:
                    data = json.dumps(civ.versions[m.group(1)]).encode()
                    self.send_response(200)
                else:
                    data = json.dumps({"error": "Model not found"}).encode()
                    self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeCivitai:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def no_proxy() -> Iterator[None]:
    """Make sure requests to 127.0.0.1 do not go through a proxy configured in the environment."""
    old = {k: os.environ.get(k) for k in ("NO_PROXY", "no_proxy")}
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
