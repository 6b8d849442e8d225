"""Audit what a user downloaded: find the files where users keep them, scan them, check them, report.

:func:`audit` (library; never prints, never modifies the files it audits):

1. **targets**: the given paths, or the conventional places (:func:`registry.files.layouts.discover_places`).
   A UI install folder given as a path stands for its model folders (not its virtualenv and code). Any
   Hugging Face cache met inside a target (``models--org--name/{blobs,snapshots}``) is taken out of the
   plain walk and audited as a cache: its snapshot files are scanned with their provenance (repository,
   commit, path) and each blob is verified against its content-hash name.
2. **companions**: sidecars (``<stem>.civitai.info``, ``<stem>.cm-info.json``) and previews
   (``<stem>.preview.png`` …) of a model file in the same folder are read as companions, not scanned as
   models, when their content is what their name promises (JSON, text, an image); otherwise they are
   scanned like anything else.
3. **scan** everything else through the scan pipeline, incrementally (unchanged files are not read).
4. **check**: HF blob names against the scan's digests, sidecar hash claims against the computed hashes
   (re-read only when the sidecar or the file changed), optional Civitai lookups.
5. **report** every finding about every audited file (content findings of its blob, and the findings
   bound to its path), plus the cache's own problems.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from registry.files.layouts import Discovery, Place, detect_install, discover_places, install_places
from registry.findings import Finding, Severity, finding, rule
from registry.hub import (
    CacheFile,
    CivitaiClient,
    Located,
    git_blob_sha1,
    inventory_hf_cache,
    verify_blob,
)
from registry.paths import clean_obj, display_path
from registry.scan import Mapper, ScanItem, ScanSummary, discover, scan
from registry.sidecars import (
    SIDECAR_SUFFIXES,
    NotASidecar,
    compare,
    compare_base_model,
    parse_sidecar,
    unreadable,
)
from registry.store._duck import registered
from registry.store.db import connect
from registry.store.events import EventLog
from registry.store.listing_table import refresh_listing
from registry.store.remote import civitai_row
from registry.store.write import finding_row, insert_rows

R_CIVITAI_POI = rule(
    "civitai.real-person",
    Severity.MEDIUM,
    "Civitai marks this model as depicting a real person (POI)",
    "Likeness of a real person: check consent and the platform's policy before distributing it.",
)

#: rules whose findings belong to one path (not to every copy of the content)
PATH_BOUND_PREFIXES = ("hf-cache.", "sidecar.")

#: file name endings that make a file a model for pairing companions (pairing only, never format)
MODEL_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".pkl", ".onnx")
_IMAGE_SUFFIXES = (".preview.png", ".preview.jpg", ".preview.jpeg", ".preview.webp", ".png", ".jpg", ".jpeg", ".webp")
_TEXT_SUFFIXES = (".json", ".yaml", ".yml", ".txt", ".md")
#: companions larger than this are scanned like any file
MAX_COMPANION_BYTES = 16 << 20
#: a file not named like a model, empty or UTF-8 text up to this size, is "other": counted, not scanned
MAX_OTHER_TEXT_BYTES = 1 << 20
_REPO_DIR = re.compile(r"(models|datasets|spaces|kernels)--.+")


@dataclass
class AuditReport:
    #: the places searched when no path was given (None when paths were given)
    discovery: Discovery | None
    #: what was walked: (kind, path) with kind ``folder``, ``file``, ``hf-cache``, ``install``
    targets: list[tuple[str, str]] = field(default_factory=list)
    #: finding rows, most severe first: severity, rule_id, path, blob_sha256, message, evidence
    findings: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0
    new_blobs: int = 0
    unchanged: int = 0
    unreadable: int = 0
    hf_files: int = 0
    companions: int = 0
    #: files that are not models (empty, or short text not named like a model): counted, not scanned
    other_files: int = 0
    #: Hugging Face cache files that are text (configs, READMEs): verified against their blob names only
    hf_text_files: int = 0
    sidecars_read: int = 0
    sidecars_unchanged: int = 0
    civitai_lookups: int = 0
    #: lookups without an answer about the hash (unreachable, rate limited, server error): asked again next run
    civitai_failed: int = 0
    #: lookups not made because Civitai was unreachable earlier in this run (asked next run)
    civitai_skipped: int = 0
    #: the first failure's message, for the summary
    civitai_error: str | None = None
    #: sha256 per audited path
    shas: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0

    def count_at_or_above(self, sev: Severity) -> int:
        return sum(1 for f in self.findings if Severity.parse(f["severity"]) >= sev)

    def by_severity(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f["severity"]] = out.get(f["severity"], 0) + 1
        return out


# -----------------------------------------------------------------------------------------------------
# targets and companions
# -----------------------------------------------------------------------------------------------------
def hf_cache_root_of(path: str) -> tuple[Path, str] | None:
    """``(cache root, repo folder name)`` when ``path`` lies in a Hugging Face cache's repository folder
    (``<root>/models--org--name/{blobs,snapshots,refs}/…`` or ``<root>/.locks/models--org--name/…``)."""
    if "--" not in path:
        return None
    parts = Path(path).parts
    for i in range(len(parts) - 1):
        if _REPO_DIR.fullmatch(parts[i]):
            nxt = parts[i + 1] if i + 1 < len(parts) else ""
            if nxt in ("blobs", "snapshots", "refs", ".no_exist"):
                return Path(*parts[:i]), parts[i]
            if i > 0 and parts[i - 1] == ".locks":
                return Path(*parts[: i - 1]), parts[i]
    return None


_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8")


def _looks_like_image(head: bytes) -> bool:
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _looks_like_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3  # a multi-byte character cut by the read
    return True


def companion_kind(name: str, stems: set[str]) -> str | None:
    """``sidecar``, ``image`` or ``text`` when ``name`` is ``<stem><suffix>`` of a model stem in the folder."""
    low = name.lower()
    for suffix in SIDECAR_SUFFIXES:
        if low.endswith(suffix) and name[: -len(suffix)] in stems:
            return "sidecar"
    for suffix in _IMAGE_SUFFIXES:
        if low.endswith(suffix) and name[: -len(suffix)] in stems:
            return "image"
    for suffix in _TEXT_SUFFIXES:
        if low.endswith(suffix) and name[: -len(suffix)] in stems:
            return "text"
    return None


def _model_stem(name: str) -> str | None:
    low = name.lower()
    for suffix in MODEL_SUFFIXES:
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


#: a protocol 0/1 pickle is ASCII: GLOBAL/INST opcodes ("c" or "i", then module and name lines)
_PICKLE_TEXT = re.compile(rb"(?:^|[\n(])[ci][A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")


def is_other_text(path: str, size: int) -> bool:
    """A file that is not a model: not named like one, and empty or short UTF-8 text (a README, a
    ``put_checkpoints_here`` placeholder, a config). Anything else is scanned: a file named like a model
    (a saved error page called ``model.safetensors`` is still reported), binary content, an HTML page, and
    text that could be a protocol-0 pickle (ASCII opcodes naming a global)."""
    if _model_stem(os.path.basename(path)) is not None or size > MAX_OTHER_TEXT_BYTES:
        return False
    if size == 0:
        return True
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_OTHER_TEXT_BYTES + 1)
    except OSError:
        return False
    if b"\0" in data or len(data) > MAX_OTHER_TEXT_BYTES:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    if data.lstrip()[:15].lower().startswith((b"<!doctype", b"<html")):
        return False
    return not (b"." in data and _PICKLE_TEXT.search(data))


def _content_fits(path: str, kind: str, size: int) -> bool:
    if size > MAX_COMPANION_BYTES or size == 0:
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    if kind == "image":
        return _looks_like_image(head)
    if kind == "sidecar":
        return _looks_like_text(head) and head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")
    return _looks_like_text(head)


@dataclass
class _Walk:
    plain: list[ScanItem] = field(default_factory=list)
    #: HF cache root -> restrict to paths under these (None: the whole cache)
    hf_roots: dict[Path, set[Path] | None] = field(default_factory=dict)
    #: (model path, sidecar kind, sidecar path)
    sidecars: list[tuple[str, str, str]] = field(default_factory=list)
    companions: int = 0
    other: int = 0


#: marker of huggingface_hub's cache-wide shared blob store (``<cache>/blobs/<2 hex>/<xet hash>``)
SHARED_BLOBS_MARKER = ".huggingface-shared-blobs"


def _shared_store_root(path: str, memo: dict[str, bool]) -> Path | None:
    """The cache root when ``path`` lies in a Hugging Face cache's shared blob store (those files are
    reached, with provenance, through the repositories' snapshot links)."""
    if "/blobs/" not in path:
        return None
    head = path[: path.rfind("/blobs/")]
    while True:
        if head not in memo:
            memo[head] = os.path.isfile(os.path.join(head, "blobs", SHARED_BLOBS_MARKER))
        if memo[head]:
            return Path(head)
        cut = head.rfind("/blobs/")
        if cut < 0:
            return None
        head = head[:cut]


def _walk_targets(targets: Iterable[Path], exclude: set[str]) -> _Walk:
    w = _Walk()
    seen: set[str] = set()
    memo: dict[str, bool] = {}
    for target in targets:
        for it in discover([target]):
            if it.path in seen or it.path in exclude:
                continue
            seen.add(it.path)
            hf = hf_cache_root_of(it.path)
            if hf is None:
                store = _shared_store_root(it.path, memo)
                if store is not None:
                    hf = (store, "blobs")
            if hf is not None:
                root = hf[0]
                try:
                    Path(target).resolve().relative_to(root.resolve())
                    inside = Path(target).resolve() != root.resolve()
                except ValueError:
                    inside = False
                if inside:
                    cur = w.hf_roots.get(root, set())
                    if cur is not None:
                        cur.add(Path(target).resolve())
                        w.hf_roots[root] = cur
                else:
                    w.hf_roots[root] = None
                continue
            w.plain.append(it)
    # companions: group by folder, pair with model stems
    by_dir: dict[str, list[ScanItem]] = {}
    for it in w.plain:
        by_dir.setdefault(os.path.dirname(it.path), []).append(it)
    keep: list[ScanItem] = []
    for items in by_dir.values():
        models_by_stem: dict[str, list[str]] = {}
        for it in items:
            stem = _model_stem(os.path.basename(it.path)) if it.st is not None else None
            if stem is not None:
                models_by_stem.setdefault(stem, []).append(it.path)
        for it in items:
            name = os.path.basename(it.path)
            kind = companion_kind(name, set(models_by_stem)) if it.st is not None else None
            if kind is not None and it.st is not None and _content_fits(it.path, kind, it.st.st_size):
                w.companions += 1
                if kind == "sidecar":
                    for suffix, skind in SIDECAR_SUFFIXES.items():
                        if name.lower().endswith(suffix):
                            for model in models_by_stem.get(name[: -len(suffix)], []):
                                w.sidecars.append((model, skind, it.path))
                continue
            if it.st is not None and is_other_text(it.path, it.st.st_size):
                w.other += 1
                continue
            keep.append(it)
    w.plain = keep
    return w


def resolve_targets(
    paths: list[str] | None,
    env: dict[str, str] | None = None,
    home: Path | None = None,
    config_path: Path | None = None,
) -> tuple[Discovery | None, list[tuple[str, Path]]]:
    """The places to walk: the given paths (a UI install stands for its model folders), or the
    conventional places when none are given."""
    if not paths:
        d = discover_places(env, home, config_path)
        return d, [("hf-cache" if p.kind == "hf-cache" else "folder", p.path) for p in _roots(d)]
    out: list[tuple[str, Path]] = []
    for raw in paths:
        p = Path(os.path.abspath(os.path.expanduser(raw)))
        kind = detect_install(p) if p.is_dir() else None
        if kind is not None:
            d = Discovery()
            install_places(kind, p, "given install", d, os.environ if env is None else env, home or Path.home())
            existing = [pl.path for pl in d.existing]
            out.extend(("install", e) for e in existing)
            if not existing:
                out.append(("install", p / "models"))
            continue
        out.append(("folder" if p.is_dir() else "file", p))
    return None, out


def _roots(d: Discovery) -> list[Place]:
    roots = set(d.model_roots())
    seen: set[Path] = set()
    out = []
    for p in d.existing:
        if p.path in roots and p.path not in seen:
            seen.add(p.path)
            out.append(p)
    return out


# -----------------------------------------------------------------------------------------------------
# the audit
# -----------------------------------------------------------------------------------------------------
def _merge(into: AuditReport, s: ScanSummary) -> None:
    into.files += s.files
    into.new_blobs += s.new_blobs
    into.unchanged += s.unchanged
    into.unreadable += s.unreadable
    into.shas.update(s.shas)


def audit(
    paths: list[str] | None,
    db_path: Path,
    *,
    env: dict[str, str] | None = None,
    home: Path | None = None,
    config_path: Path | None = None,
    workers: int = 1,
    rehash: bool = False,
    civitai: bool = False,
    civitai_url: str | None = None,
    civitai_client: CivitaiClient | None = None,
    progress: Callable[[int, int | None, str], None] | None = None,
    on_wait: Callable[[str], None] | None = None,
    on_places: Callable[[Discovery | None, list[tuple[str, Path]]], None] | None = None,
    on_create: Callable[[str], None] | None = None,
    mapper: Mapper | None = None,
) -> AuditReport:
    """Audit ``paths`` (or the conventional places) into the registry at ``db_path`` and report.

    ``on_places(discovery, targets)`` is called once the places to walk are known, before any file is
    read (the CLI lists them on stderr)."""
    t0 = time.monotonic()
    discovery, targets = resolve_targets(paths, env, home, config_path)
    if on_places is not None:
        on_places(discovery, targets)
    report = AuditReport(discovery, [(k, str(p)) for k, p in targets])
    # create or migrate the registry, and fail now if it cannot be written (before any file is read)
    with connect(db_path, on_wait=on_wait, on_create=on_create):
        pass
    db_abs = os.path.abspath(db_path)
    exclude = {db_abs, db_abs + ".wal", db_abs + ".tmp"}
    walk = _walk_targets([p for _, p in targets], exclude)
    report.companions = walk.companions
    report.other_files = walk.other

    # the Hugging Face caches met on the way
    hf_files: dict[str, CacheFile] = {}
    cache_findings: list[Located] = []
    for root, within in sorted(walk.hf_roots.items(), key=lambda kv: str(kv[0])):
        inv = inventory_hf_cache(root)
        if ("hf-cache", str(root)) not in report.targets:
            report.targets.append(("hf-cache", str(root)))
        for f in inv.files:
            if within is None or any(_under(f.path, w) or _under(f.path.resolve(), w) for w in within):
                hf_files[str(f.path)] = f
        cache_findings.extend(
            loc
            for loc in inv.findings
            if within is None or any(_under(Path(loc.path), w) or _under(Path(loc.path).resolve(), w) for w in within)
        )
    # text files of a cached repository (configs, READMEs) are verified, not scanned as models
    hf_text: dict[str, CacheFile] = {}
    for p, f in list(hf_files.items()):
        if is_other_text(p, f.size):
            hf_text[p] = hf_files.pop(p)
    report.hf_files = len(hf_files) + len(hf_text)
    report.hf_text_files = len(hf_text)
    for p, f in sorted(hf_text.items()):
        try:
            fnd = verify_blob(f)
        except OSError as e:
            fnd = finding("file.unreadable", f"{p}: {e.strerror or e}")
        if fnd is not None:
            cache_findings.append(Located(p, fnd, None))

    # scan: plain files, then the cache's snapshot files with their provenance
    if walk.plain:
        _merge(
            report,
            scan(
                [it.path for it in walk.plain],
                db_path,
                workers=workers,
                rehash=rehash,
                source="audit",
                progress=progress,
                on_wait=on_wait,
                mapper=mapper,
            ),
        )
    if hf_files:
        summary = scan(
            list(hf_files),
            db_path,
            workers=workers,
            rehash=rehash,
            source="hf-cache",
            provenance=lambda p: hf_files[p].provenance() if p in hf_files else None,
            progress=progress,
            on_wait=on_wait,
            mapper=mapper,
        )
        _merge(report, summary)

    # paths without content (unreadable, broken links …): their findings are recorded by the scan
    no_content = [it.path for it in walk.plain if it.path not in report.shas]
    no_content += [p for p in hf_files if p not in report.shas]
    with connect(db_path, on_wait=on_wait) as con:
        client = (civitai_client or CivitaiClient(civitai_url)) if civitai else None
        _check_and_record(con, report, hf_files, cache_findings, walk.sidecars, client)
        report.findings = _report_rows(con, report, cache_findings, no_content)
    report.elapsed = time.monotonic() - t0
    return report


def _under(p: Path, parent: Path) -> bool:
    try:
        p.relative_to(parent)
    except ValueError:
        return False
    return True


def _blob_hashes(con: duckdb.DuckDBPyConnection, shas: Iterable[str]) -> dict[str, dict[str, str | None]]:
    shas = sorted(set(shas))
    if not shas:
        return {}
    with registered(con, "_audit_shas", pa.table({"sha256": shas})):
        rows = con.execute(
            "SELECT b.sha256, b.autov1, b.autov2, b.autov3, b.blake3, b.crc32, b.git_sha1, b.size "
            "FROM blobs b JOIN _audit_shas USING (sha256)"
        ).fetchall()
    keys = ("sha256", "autov1", "autov2", "autov3", "blake3", "crc32", "git_sha1", "size")
    return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}


def _check_and_record(
    con: duckdb.DuckDBPyConnection,
    report: AuditReport,
    hf_files: dict[str, CacheFile],
    cache_findings: list[Located],
    sidecars: list[tuple[str, str, str]],
    civitai: CivitaiClient | None,
) -> None:
    host = socket.gethostname()
    now = datetime.now(UTC)
    hashes = _blob_hashes(con, report.shas.values())

    # existing path-bound findings, to record each once
    existing = {
        (r[0], r[1], r[2], r[3])
        for r in con.execute(
            "SELECT coalesce(blob_sha256, ''), path, rule_id, message FROM findings "
            "WHERE host = ? AND (rule_id LIKE 'hf-cache.%' OR rule_id LIKE 'sidecar.%' OR rule_id LIKE 'civitai.%')",
            [host],
        ).fetchall()
    }
    new_findings: list[dict[str, Any]] = []

    def add(f: Finding, blob: str | None, path: str) -> None:
        key = (blob or "", path, f.rule_id, f.message)
        if key not in existing:
            existing.add(key)
            new_findings.append(finding_row(f, blob, host, path, now))

    # HF cache: blob names against content digests
    for path, cf in hf_files.items():
        sha = report.shas.get(path)
        if sha is None:
            continue
        h = hashes.get(sha, {})
        git = h.get("git_sha1")
        if cf.algorithm == "git-sha1" and not git:
            try:
                git = git_blob_sha1(cf.path)
            except OSError:
                continue
        fnd = verify_blob(cf, sha256=sha, git_sha1=git)
        if fnd is not None:
            add(fnd, sha, path)
    for loc in cache_findings:
        add(loc.finding, loc.blob_sha256, loc.path)

    # sidecars: re-read only when the sidecar or the model's content changed
    known = {
        r[0]: (r[1], r[2], r[3])
        for r in con.execute(
            "SELECT sidecar_path, sidecar_size, sidecar_mtime_ns, blob_sha256 FROM sidecar_claims WHERE host = ?",
            [host],
        ).fetchall()
    }
    claim_rows: list[dict[str, Any]] = []
    replaced: list[str] = []
    log = EventLog(con)
    for model_path, kind, side in sidecars:
        sha = report.shas.get(model_path)
        if sha is None:
            continue
        try:
            st = os.stat(side)
        except OSError:
            continue
        if known.get(side) == (st.st_size, st.st_mtime_ns, sha):
            report.sidecars_unchanged += 1
            continue
        report.sidecars_read += 1
        replaced.append(side)
        # the findings of the sidecar read before are replaced by this reading's
        existing = {k for k in existing if not (k[1] == model_path and k[2].startswith("sidecar."))}
        computed: dict[str, str | None] = {k: v for k, v in hashes.get(sha, {}).items() if isinstance(v, str)}
        computed["sha256"] = sha
        try:
            claims = parse_sidecar(kind, Path(side), os.path.basename(model_path))
        except NotASidecar:
            continue  # some other JSON beside the model: nothing to check, nothing wrong
        except (OSError, ValueError) as e:
            add(unreadable(Path(side), str(e)), sha, model_path)
            claim_rows.append(
                {
                    "host": host,
                    "model_path": model_path,
                    "blob_sha256": sha,
                    "sidecar_path": side,
                    "kind": kind,
                    "sidecar_size": st.st_size,
                    "sidecar_mtime_ns": st.st_mtime_ns,
                    "verdict": "unreadable",
                    "read_at": now,
                }
            )
            continue
        verdict, fs = compare(claims, computed, model_path)
        if verdict in ("match", "edited", "no-hashes"):  # a sidecar for another file says nothing of this one
            fs = fs + compare_base_model(claims, _identity(con, sha))
        for f in fs:
            add(f, sha, model_path)
        claim_rows.append(
            {
                "host": host,
                "model_path": model_path,
                "blob_sha256": sha,
                "sidecar_path": side,
                "kind": kind,
                "sidecar_size": st.st_size,
                "sidecar_mtime_ns": st.st_mtime_ns,
                "verdict": verdict,
                "name": claims.name,
                "version_name": claims.version_name,
                "creator": claims.creator,
                "base_model": claims.base_model,
                "model_type": claims.model_type,
                "model_id": claims.model_id,
                "version_id": claims.version_id,
                "trained_words": list(claims.trained_words),
                "hashes": json.dumps(claims.hashes, sort_keys=True),
                "claims": json.dumps(clean_obj(claims.as_dict()), sort_keys=True),
                "read_at": now,
            }
        )
        log.append("sidecar.read", sha, {"path": model_path, "sidecar": side, "kind": kind, "verdict": verdict}, at=now)

    # Civitai (optional): one lookup per blob that Civitai has not answered about yet (found, or 404); a
    # lookup that got no answer is recorded with its error and asked again on the next run
    observations: list[dict[str, Any]] = []
    if civitai is not None:
        asked = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT blob_sha256 FROM remote_observations WHERE source = 'civitai' "
                "AND blob_sha256 IS NOT NULL AND (found OR status = 404)"
            ).fetchall()
        }
        paths_by_sha: dict[str, str] = {}
        for p, s in sorted(report.shas.items()):
            paths_by_sha.setdefault(s, p)
        unreachable = False
        for sha in sorted(set(report.shas.values()) - asked):
            if unreachable:  # no connection at all: do not wait out every remaining lookup
                report.civitai_skipped += 1
                continue
            obs = civitai.lookup(sha)
            report.civitai_lookups += 1
            if not obs.answered:
                report.civitai_failed += 1
                report.civitai_error = report.civitai_error or obs.error
                unreachable = obs.status is None
            observations.append(civitai_row(obs, sha))
            log.append("remote.observe", sha, {"source": "civitai", "url": obs.url, "status": obs.status, "found": obs.found}, at=now)
            if obs.found and obs.poi:
                add(
                    finding(
                        R_CIVITAI_POI.id,
                        f"Civitai lists this file as {obs.model_name!r} and marks it as depicting a real person",
                        url=obs.url,
                        model_id=obs.model_id,
                        version_id=obs.version_id,
                        observed_at=obs.observed_at.isoformat(),
                    ),
                    sha,
                    paths_by_sha[sha],
                )

    for row in new_findings:
        log.append("finding.add", row["blob_sha256"], {"path": row["path"], "rule_id": row["rule_id"]}, at=now)
    log.append(
        "audit.run",
        None,
        {
            "host": host,
            "targets": [p for _, p in report.targets],
            "files": report.files,
            "new_blobs": report.new_blobs,
            "unchanged": report.unchanged,
            "hf_files": report.hf_files,
            "sidecars_read": report.sidecars_read,
            "civitai_lookups": report.civitai_lookups,
            "civitai_failed": report.civitai_failed,
            "civitai_skipped": report.civitai_skipped,
            "new_findings": len(new_findings),
        },
        at=now,
    )
    con.execute("BEGIN TRANSACTION")
    touched: list[str | None] = []
    try:
        if replaced:
            with registered(con, "_replaced", pa.table({"p": [display_path(x) for x in replaced]})):
                con.execute("DELETE FROM sidecar_claims WHERE host = ? AND sidecar_path IN (SELECT p FROM _replaced)", [host])
            stale_models = sorted({m for m, _, s in sidecars if s in set(replaced)})
            with registered(con, "_stale", pa.table({"p": [display_path(x) for x in stale_models]})):
                stale_where = "host = ? AND rule_id LIKE 'sidecar.%' AND path IN (SELECT p FROM _stale)"
                touched += [r[0] for r in con.execute(f"SELECT DISTINCT blob_sha256 FROM findings WHERE {stale_where}", [host]).fetchall()]
                con.execute(f"DELETE FROM findings WHERE {stale_where}", [host])
        insert_rows(con, "sidecar_claims", claim_rows)
        insert_rows(con, "remote_observations", observations)
        insert_rows(con, "findings", new_findings)
        # the list rows (finding counts) of the models whose findings changed, in this transaction
        refresh_listing(con, touched + [r["blob_sha256"] for r in new_findings])
        log.flush()
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _report_rows(
    con: duckdb.DuckDBPyConnection,
    report: AuditReport,
    cache_findings: list[Located],
    no_content: list[str],
) -> list[dict[str, Any]]:
    host = socket.gethostname()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()

    def push(r: dict[str, Any]) -> None:
        key = (r["path"] or "", r["rule_id"], r["message"])
        if key not in seen:
            seen.add(key)
            rows.append(r)

    if report.shas:
        paths = sorted(report.shas)
        audited = pa.table({"path": [display_path(p) for p in paths], "sha256": [report.shas[p] for p in paths]})
        with registered(con, "_audited", audited):
            result = con.execute(
                "SELECT a.path, f.blob_sha256, f.rule_id, f.severity, f.message, CAST(f.evidence AS VARCHAR) "
                "FROM _audited a JOIN findings f ON f.blob_sha256 = a.sha256 "
                "WHERE NOT (f.rule_id LIKE 'hf-cache.%' OR f.rule_id LIKE 'sidecar.%') "
                "   OR (f.path = a.path AND f.host = ?) "
                "ORDER BY f.severity_rank DESC, a.path, f.rule_id, f.message",
                [host],
            ).fetchall()
        for path, sha, rid, sev, msg, ev in result:
            push(
                {
                    "severity": sev,
                    "rule_id": rid,
                    "path": path,
                    "blob_sha256": sha,
                    "message": msg,
                    "evidence": json.loads(ev) if ev else {},
                }
            )
    if no_content:
        with registered(con, "_nocontent", pa.table({"path": [display_path(p) for p in no_content]})):
            result = con.execute(
                "SELECT f.path, f.rule_id, f.severity, f.message, CAST(f.evidence AS VARCHAR) FROM findings f "
                "JOIN _nocontent n ON n.path = f.path WHERE f.blob_sha256 IS NULL AND f.host = ? "
                "ORDER BY f.severity_rank DESC, f.path",
                [host],
            ).fetchall()
        for path, rid, sev, msg, ev in result:
            push({"severity": sev, "rule_id": rid, "path": path, "blob_sha256": None, "message": msg, "evidence": json.loads(ev) if ev else {}})
    for loc in cache_findings:
        push({**loc.as_dict()})
    order = {s.label: int(s) for s in Severity}
    rows.sort(key=lambda r: (-order.get(r["severity"], 0), r["path"] or "", r["rule_id"], r["message"]))
    return [{k: r.get(k) for k in ("severity", "rule_id", "path", "blob_sha256", "message", "evidence")} for r in rows]


def _identity(con: duckdb.DuckDBPyConnection, sha256: str) -> dict[str, Any] | None:
    rows = con.execute("SELECT arch, confidence, source FROM identity WHERE blob_sha256 = ?", [sha256]).fetchall()
    return {"arch": rows[0][0], "confidence": rows[0][1], "source": rows[0][2]} if rows else None
