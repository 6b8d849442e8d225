"""Duplicates: the same model kept more than once, from what the registry knows of this host.

Three kinds, all from the latest sighting of each path on this host whose file is still the one scanned
(same size and mtime; a file changed or gone since is counted in ``stale``, never reported):

* **identical**: byte-identical files (same SHA-256) at several paths. ``reclaimable`` is the bytes a user
  would free by keeping one copy: the size times the number of *distinct* stored copies minus one
  (hard links, same device and inode, share their bytes and are counted once).
* **same-tensors**: different files (different SHA-256) whose tensor data is identical (same AutoV3, the
  SHA-256 of a safetensors file's data section): the same weights with different metadata. ``metadata_keys``
  lists the ``__metadata__`` keys whose values differ between them. Nothing is reclaimable without
  choosing which metadata to keep, so ``reclaimable`` is 0.
* **renamed** copies: within either kind, copies whose file names differ, with the sidecars beside each
  copy (``<stem>.civitai.info``, ``<stem>.cm-info.json``, A1111's ``<stem>.json``) and the model name each
  sidecar claims, so that "two names, one model" is visible.

The registry is only read; no file is opened except sidecars (small JSON) and ``lstat`` of each path.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from registry.sidecars import find_sidecars, parse_sidecar


@dataclass(frozen=True)
class Copy:
    path: str
    sha256: str
    size: int
    #: (device, inode) of the file now; copies with the same pair share their bytes (hard links)
    storage: tuple[int, int]
    #: sidecars beside this copy: (kind, sidecar file name, the model name it claims or None)
    sidecars: tuple[tuple[str, str, str | None], ...] = ()

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "name": self.name,
            "sha256": self.sha256,
            "size": self.size,
            "hard_link_of_another_copy": False,  # set by DupeGroup.as_dict
            "sidecars": [{"kind": k, "file": f, "claims_name": n} for k, f, n in self.sidecars],
        }


@dataclass(frozen=True)
class DupeGroup:
    kind: str  # identical | same-tensors
    #: sha256 (identical) or autov3 (same-tensors)
    key: str
    copies: tuple[Copy, ...]
    #: same-tensors: __metadata__ keys whose values differ between the files
    metadata_keys: tuple[str, ...] = ()

    @property
    def distinct_storage(self) -> int:
        return len({c.storage for c in self.copies})

    @property
    def reclaimable(self) -> int:
        if self.kind != "identical":
            return 0
        return self.copies[0].size * (self.distinct_storage - 1)

    @property
    def renamed(self) -> bool:
        return len({c.name for c in self.copies}) > 1

    def as_dict(self) -> dict[str, Any]:
        seen: set[tuple[int, int]] = set()
        copies = []
        for c in self.copies:
            d = c.as_dict()
            d["hard_link_of_another_copy"] = c.storage in seen
            seen.add(c.storage)
            copies.append(d)
        return {
            "kind": self.kind,
            "key": ("sha256:" if self.kind == "identical" else "autov3:") + self.key,
            "n_copies": len(self.copies),
            "distinct_storage": self.distinct_storage,
            "reclaimable_bytes": self.reclaimable,
            "renamed": self.renamed,
            "metadata_keys": list(self.metadata_keys),
            "copies": copies,
        }


@dataclass
class DupesReport:
    groups: list[DupeGroup] = field(default_factory=list)
    #: sightings considered (current files under the paths asked about)
    files: int = 0
    #: sightings whose file changed or disappeared since it was scanned (not considered)
    stale: int = 0

    @property
    def reclaimable(self) -> int:
        return sum(g.reclaimable for g in self.groups)


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _sidecars(path: str) -> tuple[tuple[str, str, str | None], ...]:
    p = Path(path)
    try:
        names = set(os.listdir(p.parent))
    except OSError:
        return ()
    out = []
    for kind, side in find_sidecars(p, names):
        try:
            claims = parse_sidecar(kind, side, p.name)
            name = claims.name + (f" {claims.version_name}" if claims.name and claims.version_name else "") if claims.name else None
        except (OSError, ValueError):
            if kind == "a1111-json":
                continue  # other JSON beside the model, not A1111's metadata
            name = None
        out.append((kind, side.name, name))
    return tuple(out)


def _differing_keys(metadatas: Iterable[Any]) -> tuple[str, ...]:
    docs = []
    for m in metadatas:
        try:
            v = json.loads(m) if isinstance(m, str) else m
        except ValueError:
            v = None
        docs.append(v if isinstance(v, dict) else {})
    keys = set().union(*(d.keys() for d in docs)) if docs else set()
    return tuple(sorted(k for k in keys if len({json.dumps(d.get(k), sort_keys=True) for d in docs}) > 1))


def find_dupes(con: duckdb.DuckDBPyConnection, paths: Iterable[str] = (), host: str | None = None) -> DupesReport:
    """Duplicates among the current files of this host (``paths``: only files under these files or folders)."""
    host = host or socket.gethostname()
    roots = [os.path.abspath(p) for p in paths]
    rows = con.execute(
        "SELECT s.path, s.blob_sha256, s.size, s.mtime_ns, b.autov3, CAST(b.metadata AS VARCHAR) "
        "FROM latest_sightings s JOIN blobs b ON b.sha256 = s.blob_sha256 WHERE s.host = ? ORDER BY s.path",
        [host],
    ).fetchall()
    report = DupesReport()
    current: list[tuple[str, str, int, tuple[int, int], str | None, Any]] = []
    for path, sha, size, mtime_ns, autov3, metadata in rows:
        if roots and not _under(path, roots):
            continue
        try:
            st = os.stat(path)
        except OSError:
            report.stale += 1
            continue
        if st.st_size != size or st.st_mtime_ns != mtime_ns:
            report.stale += 1
            continue
        current.append((path, sha, size, (st.st_dev, st.st_ino), autov3, metadata))
    report.files = len(current)

    by_sha: dict[str, list[tuple[str, str, int, tuple[int, int], str | None, Any]]] = {}
    for r in current:
        by_sha.setdefault(r[1], []).append(r)
    groups: list[DupeGroup] = []
    for sha, rs in by_sha.items():
        if len(rs) > 1:
            copies = tuple(Copy(p, s, n, st, _sidecars(p)) for p, s, n, st, _, _ in rs)
            groups.append(DupeGroup("identical", sha, copies))

    by_tensors: dict[str, list[tuple[str, str, int, tuple[int, int], str | None, Any]]] = {}
    for r in current:
        if r[4]:
            by_tensors.setdefault(r[4], []).append(r)
    for autov3, rs in by_tensors.items():
        if len({r[1] for r in rs}) > 1:
            copies = tuple(Copy(p, s, n, st, _sidecars(p)) for p, s, n, st, _, _ in rs)
            meta = {r[1]: r[5] for r in rs}
            groups.append(DupeGroup("same-tensors", autov3, copies, _differing_keys(meta.values())))
    groups.sort(key=lambda g: (-g.reclaimable, g.kind, g.key))
    report.groups = groups
    return report
