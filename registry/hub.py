"""Hugging Face Hub and cache integration, and the optional Civitai lookup.

Three things, none of which downloads model weights:

* **The local cache, verified** (:func:`inventory_hf_cache`, :func:`verify_blob`): every file of every
  cached revision with its provenance (repository, commit, path in the repository). Blob names are
  content addresses: an LFS blob's name is its SHA-256 and a small file's is its git blob SHA-1, so a
  blob whose content no longer matches its name is a corrupted or altered download. Interrupted
  downloads (``*.incomplete``) and snapshot links that point nowhere are findings too.
  ``huggingface_hub.scan_cache_dir`` reads the cache; it skips a whole repository when one link is
  broken, so such repositories are walked again here, tolerantly, to keep the files that are fine.
* **A remote catalog** (:func:`catalog_hf`): ``hf://ORG/REPO[@REV][/PATH]`` is resolved to a commit and
  listed through the Hub API; safetensors headers are read with HTTP range requests, LFS SHA-256 and the
  model card's data (licence, base model, data sets, tags) come from the API; everything is recorded
  with its source URL and commit.
* **Civitai by hash** (:func:`civitai_lookup`): one ``GET /api/v1/model-versions/by-hash/{hash}``,
  recorded as a timestamped observation with its URL. Never required for an audit.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from registry.errors import NotFound, RegistryError, SafetensorsError, UsageError
from registry.files.safetensors import MAX_HEADER_LEN, SafetensorsHeader, parse_header
from registry.findings import Finding, Severity, finding, rule

R_BLOB_MISMATCH = rule(
    "hf-cache.blob-mismatch",
    Severity.HIGH,
    "A Hugging Face cache blob's content does not match its name (corrupted or altered download)",
    "The cache names an LFS blob by its SHA-256 and a small file's blob by its git blob SHA-1. Delete the "
    "blob and download the file again, and find out what changed it.",
)
R_INCOMPLETE = rule(
    "hf-cache.incomplete-download",
    Severity.LOW,
    "An interrupted download (*.incomplete blob) is left in the Hugging Face cache",
    "Resume the download (huggingface_hub resumes it) or delete the partial blob.",
)
R_DANGLING = rule(
    "hf-cache.dangling-link",
    Severity.MEDIUM,
    "A snapshot file in the Hugging Face cache points to a blob that does not exist",
    "The file is missing although the snapshot lists it; download it again.",
)
R_CORRUPT_REPO = rule(
    "hf-cache.corrupt-repo",
    Severity.LOW,
    "huggingface_hub's cache scan rejected a repository folder",
    "The folder was walked tolerantly; files that could be resolved are still audited.",
)
R_UNVERIFIABLE = rule(
    "hf-cache.unverifiable-blob",
    Severity.INFO,
    "A Hugging Face cache blob is not named by a content hash, so it cannot be verified",
)
R_REMOTE_HEADER = rule(
    "hub.header-unreadable",
    Severity.MEDIUM,
    "A safetensors header on the Hub could not be read by range requests",
)

#: files read into memory to verify a git blob SHA-1 are streamed; this bounds one read
_CHUNK = 1 << 20
_HEX40 = re.compile(r"[0-9a-f]{40}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: repository folder prefixes of the cache
_REPO_PREFIXES = {"models": "model", "datasets": "dataset", "spaces": "space", "kernels": "kernel"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Located:
    """A finding about a place (a path or URL), with the blob it concerns when one is known."""

    path: str
    finding: Finding
    blob_sha256: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "blob_sha256": self.blob_sha256, **self.finding.as_dict()}


# =====================================================================================================
# The local cache
# =====================================================================================================
@dataclass(frozen=True)
class CacheFile:
    """One file of one cached revision: where it is, which blob holds it, where it came from."""

    repo_id: str
    repo_type: str
    revision: str
    refs: tuple[str, ...]
    #: path inside the repository (POSIX)
    file: str
    #: the snapshot path (what users and libraries open; usually a symlink)
    path: Path
    #: the repository-level blob the snapshot entry points to (first link hop)
    blob_path: Path
    size: int

    @property
    def blob_name(self) -> str:
        return self.blob_path.name

    @property
    def algorithm(self) -> str | None:
        """``sha256`` for an LFS blob, ``git-sha1`` for a small file's blob, None when not a hash name."""
        if self.blob_path == self.path:
            return None  # no symlinks (copied files): the name is the file name, not a hash
        if _HEX64.fullmatch(self.blob_name):
            return "sha256"
        if _HEX40.fullmatch(self.blob_name):
            return "git-sha1"
        return None

    def provenance(self) -> dict[str, Any]:
        """What a sighting records: enough for ``show`` to say where and at which commit it came from."""
        return {
            "source": "hf-cache",
            "repo_id": self.repo_id,
            "repo_type": self.repo_type,
            "revision": self.revision,
            "refs": list(self.refs),
            "file": self.file,
            "blob": self.blob_name,
            "blob_algorithm": self.algorithm,
        }


@dataclass
class CacheInventory:
    cache_dir: Path
    files: list[CacheFile] = field(default_factory=list)
    #: incomplete downloads, dangling links, rejected repositories
    findings: list[Located] = field(default_factory=list)

    def by_path(self) -> dict[str, CacheFile]:
        return {str(f.path): f for f in self.files}


def _repo_folder(path: Path) -> tuple[str, str] | None:
    if "--" not in path.name:
        return None
    prefix, rest = path.name.split("--", 1)
    if prefix not in _REPO_PREFIXES:
        return None
    return _REPO_PREFIXES[prefix], rest.replace("--", "/")


def _read_refs(repo_path: Path) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    refs = repo_path / "refs"
    if not refs.is_dir():
        return out
    for ref in refs.glob("**/*"):
        if ref.is_file():
            try:
                commit = ref.read_text(encoding="utf-8").strip()
            except OSError:
                continue
            out.setdefault(commit, set()).add(ref.relative_to(refs).as_posix())
    return out


def _first_hop(p: Path) -> Path:
    if p.is_symlink():
        return Path(os.path.abspath(p.parent / os.readlink(p)))
    return p


def _walk_repo_tolerantly(repo_path: Path, repo_type: str, repo_id: str, inv: CacheInventory) -> None:
    """Walk one repository without huggingface_hub: keep resolvable files, report broken links."""
    refs = _read_refs(repo_path)
    snapshots = repo_path / "snapshots"
    if not snapshots.is_dir():
        return
    for rev in sorted(snapshots.iterdir()):
        if not rev.is_dir():
            continue
        for p in sorted(rev.glob("**/*")):
            if p.is_dir():
                continue
            blob = _first_hop(p)
            file = p.relative_to(rev).as_posix()
            if not blob.exists():
                inv.findings.append(
                    Located(
                        str(p),
                        finding(
                            R_DANGLING.id,
                            f"{repo_id}@{rev.name[:12]}: {file} points to {blob.name}, which does not exist",
                            repo_id=repo_id,
                            revision=rev.name,
                            file=file,
                            target=str(blob),
                        ),
                    )
                )
                continue
            inv.files.append(
                CacheFile(
                    repo_id, repo_type, rev.name, tuple(sorted(refs.get(rev.name, ()))), file, p, blob, blob.stat().st_size
                )
            )


def _inventory_without_hub(cache_dir: Path) -> CacheInventory:
    if not cache_dir.is_dir():
        raise NotFound(f"Hugging Face cache {cache_dir} does not exist")
    inv = CacheInventory(cache_dir.resolve())
    for child in sorted(inv.cache_dir.iterdir()):
        folder = _repo_folder(child)
        if folder is None or not child.is_dir():
            continue
        repo_type, repo_id = folder
        _walk_repo_tolerantly(child, repo_type, repo_id, inv)
        blobs = child / "blobs"
        for inc in sorted(blobs.glob("*.incomplete")) if blobs.is_dir() else []:
            size = inc.stat().st_size
            inv.findings.append(
                Located(
                    str(inc),
                    finding(R_INCOMPLETE.id, f"{repo_id}: interrupted download {inc.name} ({size:,} bytes so far)",
                            repo_id=repo_id, size=size),  # fmt: skip
                )
            )
    return inv


def inventory_hf_cache(cache_dir: Path) -> CacheInventory:
    """List every file of a Hugging Face cache with its provenance, and the cache's own problems.

    Reads directory entries and link targets only (no file content). Raises :class:`NotFound` when the
    folder does not exist. Without huggingface_hub (the ``hub`` extra), the cache is read by modelreg's own
    walker: the same files, provenance, interrupted downloads and dangling links, but no
    ``hf-cache.corrupt-repo`` verdict (that is huggingface_hub's judgement of a repository).
    """
    try:
        from huggingface_hub import scan_cache_dir
        from huggingface_hub.errors import CacheNotFound
    except ImportError:
        return _inventory_without_hub(Path(cache_dir).expanduser())

    cache_dir = Path(cache_dir).expanduser()
    try:
        info = scan_cache_dir(cache_dir)
    except CacheNotFound:
        raise NotFound(f"Hugging Face cache {cache_dir} does not exist") from None
    except ValueError as e:
        raise UsageError(str(e)) from None
    resolved = info.cache_dir or cache_dir.resolve()
    inv = CacheInventory(resolved)
    scanned: set[Path] = set()
    for repo in sorted(info.repos, key=lambda r: str(r.repo_path)):
        scanned.add(repo.repo_path)
        for rev in sorted(repo.revisions, key=lambda r: r.commit_hash):
            for f in sorted(rev.files, key=lambda f: str(f.file_path)):
                inv.files.append(
                    CacheFile(
                        repo.repo_id,
                        repo.repo_type,
                        rev.commit_hash,
                        tuple(sorted(rev.refs)),
                        f.file_path.relative_to(rev.snapshot_path).as_posix(),
                        f.file_path,
                        f.blob_path,
                        f.size_on_disk,
                    )
                )
    for inc in sorted(info.incomplete_files, key=lambda i: str(i.file_path)):
        folder = _repo_folder(inc.file_path.parent.parent)
        repo_id = folder[1] if folder else inc.file_path.parent.parent.name
        inv.findings.append(
            Located(
                str(inc.file_path),
                finding(
                    R_INCOMPLETE.id,
                    f"{repo_id}: interrupted download {inc.file_path.name} ({inc.size_on_disk:,} bytes so far)",
                    repo_id=repo_id,
                    size=inc.size_on_disk,
                ),
            )
        )
    # repositories scan_cache_dir rejected: report why, then keep what can be kept
    warnings = [str(w) for w in info.warnings]
    for child in sorted(resolved.iterdir()):
        folder = _repo_folder(child)
        if folder is None or child in scanned or not child.is_dir():
            continue
        repo_type, repo_id = folder
        why = next((w for w in warnings if str(child) in w), "rejected by huggingface_hub.scan_cache_dir")
        inv.findings.append(
            Located(str(child), finding(R_CORRUPT_REPO.id, f"{repo_id}: {why}", repo_id=repo_id, reason=why))
        )
        _walk_repo_tolerantly(child, repo_type, repo_id, inv)
    return inv


def git_blob_sha1(path: Path) -> str:
    """``sha1(b"blob <len>\\0" + data)``, streamed."""
    size = path.stat().st_size
    h = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def verify_blob(f: CacheFile, sha256: str | None = None, git_sha1: str | None = None) -> Finding | None:
    """Compare a cache file's content digests with its blob name.

    Pass the digests a scan already computed; a missing one is computed here from the file (streamed).
    Returns a finding on mismatch (or when the blob is not named by a hash), else None.
    """
    algo = f.algorithm
    if algo is None:
        return finding(
            R_UNVERIFIABLE.id,
            f"{f.repo_id}@{f.revision[:12]}: {f.file} is stored as {f.blob_name!r}, not under a content hash",
            repo_id=f.repo_id,
            revision=f.revision,
            file=f.file,
        )
    actual = (sha256 or sha256_file(f.path)) if algo == "sha256" else (git_sha1 or git_blob_sha1(f.path))
    if actual.lower() == f.blob_name:
        return None
    label = "SHA-256" if algo == "sha256" else "git blob SHA-1"
    return finding(
        R_BLOB_MISMATCH.id,
        f"{f.repo_id}@{f.revision[:12]}: {f.file}: blob is named by {label} {f.blob_name[:16]}… but its content "
        f"hashes to {actual[:16]}… (corrupted or altered download)",
        repo_id=f.repo_id,
        revision=f.revision,
        file=f.file,
        algorithm=algo,
        expected=f.blob_name,
        actual=actual.lower(),
    )


def verify_hf_cache(cache_dir: Path) -> tuple[CacheInventory, list[Located]]:
    """Inventory a cache and verify every blob against its name (reads every blob once).

    The audit does not use this (it verifies with the digests its scan computed); it is the library's
    standalone check. Returns the inventory and all findings (the cache's own and the mismatches).
    """
    inv = inventory_hf_cache(cache_dir)
    out = list(inv.findings)
    done: dict[Path, Finding | None] = {}
    for f in inv.files:
        if f.blob_path not in done:
            done[f.blob_path] = verify_blob(f)
        fnd = done[f.blob_path]
        if fnd is not None:
            out.append(Located(str(f.path), fnd, f.blob_name if f.algorithm == "sha256" else None))
    return inv, out


# =====================================================================================================
# hf://ORG/REPO[@REV][/PATH]: a remote catalog without downloading weights
# =====================================================================================================
@dataclass(frozen=True)
class HfRef:
    repo_id: str
    revision: str | None = None
    path: str | None = None

    def uri(self) -> str:
        rev = f"@{urllib.parse.quote(self.revision, safe='')}" if self.revision else ""
        return f"hf://{self.repo_id}{rev}" + (f"/{self.path}" if self.path else "")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def is_hf_uri(text: str) -> bool:
    return text.startswith("hf://")


def parse_hf_uri(text: str) -> HfRef:
    """Parse ``hf://ORG/REPO[@REV][/PATH]``; a revision with ``/`` (``refs/pr/1``) is percent-encoded."""
    if not is_hf_uri(text):
        raise UsageError(f"{text!r} is not an hf:// reference (expected hf://ORG/REPO[@REV][/PATH])")
    rest = text[len("hf://") :]
    parts = rest.split("/", 2)
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise UsageError(f"{text!r}: expected hf://ORG/REPO[@REV][/PATH]")
    org, name = parts[0], parts[1]
    path = parts[2].strip("/") if len(parts) == 3 else ""
    revision: str | None = None
    if "@" in name:
        name, rev = name.split("@", 1)
        revision = urllib.parse.unquote(rev)
        if not revision:
            raise UsageError(f"{text!r}: empty revision after '@'")
    if not _NAME.fullmatch(org) or not _NAME.fullmatch(name) or ".." in org + name:
        raise UsageError(f"{text!r}: {org}/{name} is not a valid repository id")
    if ".." in path.split("/"):
        raise UsageError(f"{text!r}: '..' is not allowed in a path")
    return HfRef(f"{org}/{name}", revision, path or None)


@dataclass
class RemoteFile:
    path: str
    size: int | None
    #: git blob id (for LFS files, of the pointer)
    blob_id: str | None
    #: the LFS object id, i.e. the file's SHA-256 (None for files stored in git)
    sha256: str | None
    url: str
    header: SafetensorsHeader | None = None
    findings: list[Finding] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        h = self.header
        return {
            "path": self.path,
            "size": self.size,
            "blob_id": self.blob_id,
            "sha256": self.sha256,
            "url": self.url,
            "header_len": h.header_len if h else None,
            "n_tensors": len(h.tensors) if h else None,
            "metadata": h.metadata if h else None,
            "findings": [f.as_dict() for f in self.findings],
        }


@dataclass
class RemoteCatalog:
    repo_id: str
    requested_revision: str | None
    commit: str
    endpoint: str
    #: the API URL the repository's data came from, pinned to the commit
    api_url: str
    #: the browsable URL of the repository at the commit
    repo_url: str
    observed_at: datetime
    card: dict[str, Any]
    files: list[RemoteFile]

    def as_dict(self) -> dict[str, Any]:
        return {
            "uri": HfRef(self.repo_id, self.commit).uri(),
            "repo_id": self.repo_id,
            "requested_revision": self.requested_revision,
            "commit": self.commit,
            "endpoint": self.endpoint,
            "api_url": self.api_url,
            "repo_url": self.repo_url,
            "observed_at": self.observed_at.isoformat(),
            "card": self.card,
            "files": [f.as_dict() for f in self.files],
        }


def hub_endpoint(endpoint: str | None = None) -> str:
    """The Hub's base URL: the argument, else ``$HF_ENDPOINT`` (read now, not at import), else the default."""
    if endpoint:
        return endpoint.rstrip("/")
    env = os.environ.get("HF_ENDPOINT")
    if env:
        return env.rstrip("/")
    from huggingface_hub import constants

    return constants.ENDPOINT.rstrip("/")


def _card_summary(info: Any) -> dict[str, Any]:
    card = getattr(info, "card_data", None)
    raw: dict[str, Any] = card.to_dict() if card is not None and hasattr(card, "to_dict") else {}

    def listify(v: Any) -> list[str]:
        if v is None:
            return []
        return [str(x) for x in v] if isinstance(v, list | tuple) else [str(v)]

    return {
        "license": raw.get("license"),
        "license_name": raw.get("license_name"),
        "license_link": raw.get("license_link"),
        "base_model": listify(raw.get("base_model")),
        "datasets": listify(raw.get("datasets")),
        "tags": sorted(set(listify(raw.get("tags")) + listify(getattr(info, "tags", None)))),
        "pipeline_tag": getattr(info, "pipeline_tag", None) or raw.get("pipeline_tag"),
        "library_name": getattr(info, "library_name", None) or raw.get("library_name"),
        "gated": getattr(info, "gated", None),
        "last_modified": info.last_modified.isoformat() if getattr(info, "last_modified", None) else None,
    }


def _read_range(url: str, headers: dict[str, str], start: int, length: int) -> bytes:
    """Bytes ``[start, start+length)`` of a remote file by one range request, reading no more than that
    even from a server that ignores ``Range`` (the response is streamed and closed early)."""
    from huggingface_hub.utils import get_session, hf_raise_for_status

    end = start + length - 1
    with get_session().stream("GET", url, headers={**headers, "Range": f"bytes={start}-{end}"}) as r:
        if r.status_code >= 400:
            r.read()
            hf_raise_for_status(r)
        skip = start if r.status_code == 200 else 0  # server ignored the range: skip to start ourselves
        out = bytearray()
        for chunk in r.iter_bytes():
            if skip:
                drop = min(skip, len(chunk))
                chunk = chunk[drop:]
                skip -= drop
            out += chunk
            if len(out) >= length:
                break
    return bytes(out[:length])


#: the first range request: like huggingface_hub, 100 kB covers the header of almost every file
FIRST_RANGE = 100_000


def remote_safetensors_header(url: str, size: int | None, headers: dict[str, str]) -> SafetensorsHeader:
    """Read and strictly validate a remote safetensors header with at most two range requests."""
    first = _read_range(url, headers, 0, FIRST_RANGE if size is None else min(FIRST_RANGE, size))
    if len(first) < 8:
        raise SafetensorsError("safetensors.too-short", f"remote file gave only {len(first)} bytes", size=size)
    (n,) = struct.unpack("<Q", first[:8])
    if n > MAX_HEADER_LEN:
        raise SafetensorsError(
            "safetensors.header-too-large",
            f"header length field says {n:,} bytes; the format allows at most {MAX_HEADER_LEN:,}",
            header_len=n,
        )
    if size is not None and 8 + n > size:
        raise SafetensorsError(
            "safetensors.header-beyond-eof",
            f"header length field says {n:,} bytes but the file has {size:,} bytes",
            header_len=n,
            file_size=size,
        )
    raw = first[8 : 8 + n] if 8 + n <= len(first) else _read_range(url, headers, 8, n)
    if len(raw) != n:
        raise SafetensorsError("safetensors.header-beyond-eof", f"server returned {len(raw)} of {n} header bytes")
    return parse_header(raw, n, size if size is not None else 8 + n)


def _is_safetensors_name(path: str) -> bool:
    return path.lower().endswith(".safetensors")


def catalog_hf(
    ref: HfRef | str,
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    read_headers: bool = True,
) -> RemoteCatalog:
    """Catalog a Hub model repository (or one file or folder of it) at one commit.

    Calls ``HfApi.model_info`` (commit and card data), ``get_paths_info`` / ``list_repo_tree`` (files with
    their LFS SHA-256), and range-reads every safetensors header. Hub errors become :class:`NotFound`
    or :class:`RegistryError` with one clear message.
    """
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.file_download import hf_hub_url
    from huggingface_hub.hf_api import RepoFile, RepoFolder

    if isinstance(ref, str):
        ref = parse_hf_uri(ref)
    base = hub_endpoint(endpoint)
    api = HfApi(endpoint=base, token=token)
    observed_at = _now()
    try:
        info = api.model_info(ref.repo_id, revision=ref.revision)
        commit = info.sha
        if not commit:
            raise RegistryError(f"{ref.uri()}: the Hub did not say which commit it served")
        entries: list[Any]
        if ref.path:
            found = api.get_paths_info(ref.repo_id, [ref.path], revision=commit)
            if not found:
                raise NotFound(f"{ref.uri()}: no file or folder {ref.path!r} at commit {commit[:12]}")
            entries = []
            for e in found:
                if isinstance(e, RepoFolder):
                    entries.extend(api.list_repo_tree(ref.repo_id, e.path, recursive=True, revision=commit))
                else:
                    entries.append(e)
        else:
            entries = list(api.list_repo_tree(ref.repo_id, recursive=True, revision=commit))
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as e:
        raise NotFound(f"{ref.uri()}: {str(e).splitlines()[0]}") from None
    except OfflineModeIsEnabled as e:
        raise RegistryError(f"{ref.uri()}: {e}") from None
    except HfHubHTTPError as e:
        raise RegistryError(f"{ref.uri()}: the Hub answered {str(e).splitlines()[0]}") from None
    except (httpx2.TransportError, OSError) as e:  # connection refused, DNS, TLS, timeouts …
        raise RegistryError(f"{ref.uri()}: cannot reach {base}: {e}") from None

    headers = api._build_hf_headers(token=token)
    files: list[RemoteFile] = []
    for entry in sorted((x for x in entries if isinstance(x, RepoFile)), key=lambda x: x.path):
        url = hf_hub_url(ref.repo_id, entry.path, revision=commit, endpoint=base)
        rf = RemoteFile(entry.path, entry.size, entry.blob_id, entry.lfs.sha256 if entry.lfs else None, url)
        if read_headers and _is_safetensors_name(entry.path):
            try:
                rf.header = remote_safetensors_header(url, entry.size, headers)
                rf.findings.extend(rf.header.findings)
            except SafetensorsError as err:
                rf.findings.append(
                    finding(R_REMOTE_HEADER.id, f"{entry.path}: {err}", Severity.HIGH, rule=err.rule_id, url=url)
                )
            except (HfHubHTTPError, httpx2.TransportError, OSError) as err:
                msg = str(err).splitlines()[0] if str(err) else type(err).__name__
                rf.findings.append(finding(R_REMOTE_HEADER.id, f"{entry.path}: {msg}", url=url))
        files.append(rf)
    return RemoteCatalog(
        repo_id=ref.repo_id,
        requested_revision=ref.revision,
        commit=commit,
        endpoint=base,
        api_url=f"{base}/api/models/{ref.repo_id}/revision/{commit}",
        repo_url=f"{base}/{ref.repo_id}/tree/{commit}",
        observed_at=observed_at,
        card=_card_summary(info),
        files=files,
    )


# =====================================================================================================
# Civitai by hash (optional, online)
# =====================================================================================================
DEFAULT_CIVITAI_URL = "https://civitai.com"


@dataclass(frozen=True)
class CivitaiObservation:
    """What Civitai said about one hash, when, and at which URL. ``found`` is False for a 404 and None when
    there was no answer about the hash (unreachable, rate limited, server error: ``error`` says which);
    ``status`` is the HTTP status, None when no HTTP answer came at all."""

    hash: str
    url: str
    observed_at: datetime
    status: int | None
    found: bool | None
    model_id: int | None = None
    version_id: int | None = None
    version_name: str | None = None
    model_name: str | None = None
    model_type: str | None = None
    nsfw: bool | None = None
    poi: bool | None = None
    base_model: str | None = None
    trained_words: tuple[str, ...] = ()
    #: hashes Civitai lists for the version's files: [{"name":…, "hashes": {…}}]
    files: tuple[dict[str, Any], ...] = ()
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "url": self.url,
            "observed_at": self.observed_at.isoformat(),
            "status": self.status,
            "found": self.found,
            "model_id": self.model_id,
            "version_id": self.version_id,
            "version_name": self.version_name,
            "model_name": self.model_name,
            "model_type": self.model_type,
            "nsfw": self.nsfw,
            "poi": self.poi,
            "base_model": self.base_model,
            "trained_words": list(self.trained_words),
            "files": list(self.files),
            "error": self.error,
        }

    @property
    def answered(self) -> bool:
        """Civitai answered about this hash (found, or a 404): no need to ask again."""
        return self.found is not None


def civitai_base_url(base_url: str | None = None) -> str:
    return (base_url or os.environ.get("MODELREG_CIVITAI_URL") or DEFAULT_CIVITAI_URL).rstrip("/")


#: environment variables holding a Civitai API key, first set wins (Civitai's docs use CIVITAI_TOKEN;
#: many download tools use CIVITAI_API_KEY)
CIVITAI_KEY_VARS = ("CIVITAI_API_KEY", "CIVITAI_TOKEN")
#: statuses worth asking again after a pause: rate limited, server trouble
_RETRY_STATUSES = {429, 500, 502, 503, 504}


def civitai_api_key(env: Any = None) -> str | None:
    """The API key from ``CIVITAI_API_KEY`` or ``CIVITAI_TOKEN`` (sent as ``Authorization: Bearer``)."""
    env = os.environ if env is None else env
    for var in CIVITAI_KEY_VARS:
        v = (env.get(var) or "").strip()
        if v:
            return v
    return None


class CivitaiClient:
    """Civitai's by-hash endpoint, politely: an API key from the environment (``Authorization: Bearer``,
    as Civitai documents), at most one request per ``min_interval`` seconds, and ``retries`` more tries
    with exponential backoff (``backoff`` · 2^k seconds, or the server's ``Retry-After`` when it sends
    one, capped at ``max_wait``) for network errors, 429 and 5xx answers. A 404 is an answer ("not on
    Civitai"); 401/403 and other statuses are not retried. ``sleep`` and ``clock`` are injectable."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        api_key: str | None = None,
        timeout: float = 15.0,
        min_interval: float = 0.5,
        retries: int = 3,
        backoff: float = 1.0,
        max_wait: float = 60.0,
        sleep: Any = None,
        clock: Any = None,
    ) -> None:
        import time

        self.base_url = civitai_base_url(base_url)
        self.api_key = api_key if api_key is not None else civitai_api_key()
        self.timeout = timeout
        self.min_interval = min_interval
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.sleep = sleep or time.sleep
        self.clock = clock or time.monotonic
        self._last: float | None = None
        #: requests sent (tries, retries included)
        self.requests = 0

    def _wait_turn(self) -> None:
        if self._last is not None:
            wait = self.min_interval - (self.clock() - self._last)
            if wait > 0:
                self.sleep(wait)
        self._last = self.clock()

    def _get(self, url: str) -> tuple[int, bytes, dict[str, str]]:
        headers = {"Accept": "application/json", "User-Agent": "modelreg"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(url, headers=headers)
        self._wait_turn()
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) URL built by lookup
                return resp.status, resp.read(8 << 20), dict(resp.headers.items())
        except urllib.error.HTTPError as e:
            return e.code, b"", dict(e.headers.items()) if e.headers else {}

    def lookup(self, digest: str) -> CivitaiObservation:
        """Ask about one digest (any of SHA256, AutoV1/2/3, BLAKE3, CRC32). Failures are an observation
        with ``error`` set and ``found`` None (no answer about the file), never an exception."""
        h = digest.split(":", 1)[-1].strip().upper()
        if not re.fullmatch(r"[0-9A-F]{8,64}", h):
            raise UsageError(f"{digest!r} is not a hex digest Civitai can look up")
        url = f"{self.base_url}/api/v1/model-versions/by-hash/{h}"
        tries = 0
        while True:
            when = _now()
            tries += 1
            retry_after: float | None = None
            error: str | None = None
            try:
                status, body, headers = self._get(url)
            except (urllib.error.URLError, OSError) as e:
                status, body, headers = 0, b"", {}
                error = f"cannot reach Civitai: {getattr(e, 'reason', e)}"
            else:
                ra = {k.lower(): v for k, v in headers.items()}.get("retry-after")
                if ra is not None and ra.strip().isdigit():
                    retry_after = float(ra.strip())
            if status in (0, *_RETRY_STATUSES) and tries <= self.retries:
                wait = retry_after if retry_after is not None else self.backoff * 2 ** (tries - 1)
                self.sleep(min(wait, self.max_wait))
                continue
            suffix = f" after {tries} tries" if tries > 1 else ""
            if status == 0:
                return CivitaiObservation(h, url, when, None, None, error=f"{error}{suffix}")
            if status == 404:
                return CivitaiObservation(h, url, when, 404, False)
            if status != 200:
                hint = " (an API key in CIVITAI_API_KEY or CIVITAI_TOKEN may be needed)" if status in (401, 403) else ""
                return CivitaiObservation(h, url, when, status, None, error=f"HTTP {status}{suffix}{hint}")
            return _civitai_answer(h, url, when, status, body)


def civitai_lookup(
    digest: str, *, base_url: str | None = None, timeout: float = 15.0, client: CivitaiClient | None = None
) -> CivitaiObservation:
    """One by-hash lookup (see :class:`CivitaiClient`; a client made for this call when none is given)."""
    return (client or CivitaiClient(base_url, timeout=timeout)).lookup(digest)


def _civitai_answer(h: str, url: str, when: datetime, status: int, body: bytes) -> CivitaiObservation:
    try:
        doc = json.loads(body)
    except ValueError:
        return CivitaiObservation(h, url, when, status, None, error="answer is not JSON")
    if not isinstance(doc, dict):
        return CivitaiObservation(h, url, when, status, None, error="answer is not a JSON object")
    model_value = doc.get("model")
    model: dict[str, Any] = model_value if isinstance(model_value, dict) else {}
    files = tuple(
        {"name": f.get("name"), "hashes": f.get("hashes") or {}, "primary": f.get("primary")}
        for f in doc.get("files") or []
        if isinstance(f, dict)
    )
    words = doc.get("trainedWords") or []
    return CivitaiObservation(
        hash=h,
        url=url,
        observed_at=when,
        status=status,
        found=True,
        model_id=_int(doc.get("modelId")),
        version_id=_int(doc.get("id")),
        version_name=_str(doc.get("name")),
        model_name=_str(model.get("name")),
        model_type=_str(model.get("type")),
        nsfw=model.get("nsfw") if isinstance(model.get("nsfw"), bool) else None,
        poi=model.get("poi") if isinstance(model.get("poi"), bool) else None,
        base_model=_str(doc.get("baseModel")),
        trained_words=tuple(str(w) for w in words if isinstance(w, str | int | float)),
        files=files,
    )


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def iter_lookup_hashes(hashes: dict[str, str | None]) -> Iterable[str]:
    """The digests worth asking Civitai about, best first (a full SHA-256 identifies a file)."""
    for key in ("sha256", "blake3", "autov2"):
        v = hashes.get(key)
        if v:
            yield v
