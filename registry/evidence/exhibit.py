"""Putting an exhibit folder together.

An exhibit is a folder a third party can check without trusting modelreg::

    record.json                 the canonical record (RFC 8785), a function of the registry state only
    metadata.json               the model file's embedded metadata in full (RFC 8785), when it has any
    model-record.schema.json    the JSON Schema (2020-12) the record validates against
    envelope.json               creation time, issuer, signer and the record's SHA-256
    signer.pub.pem              the signer's public key (when signed with a key)
    report.html, report.pdf     the human-readable report; the PDF is PDF/A-3b with record.json attached
    bom.cdx.json, spdx.json     CycloneDX 1.6 ML-BOM and SPDX 3.0.1 AI/Dataset exports
    images/<sha256>.png         probe contact sheets shown in the report (when present)
    MANIFEST                    SHA-256 of every file above (sha256sum format)
    model.sig                   OpenSSF Model Signing signature over every file above and MANIFEST
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb

from registry import __version__
from registry.errors import UsageError
from registry.evidence import bom, signing
from registry.evidence.canonical import (
    SCHEMA_ID,
    SectionLike,
    build_record,
    canonical_bytes,
    discover_sections,
    iso_utc,
    record_bytes,
    record_schema,
    sha256_hex,
)
from registry.evidence.report import METADATA_NAME, chapter_of, check_pdf_support, render_html, write_pdf

RECORD_NAME = "record.json"
SCHEMA_NAME = "model-record.schema.json"
ENVELOPE_NAME = "envelope.json"
HTML_NAME = "report.html"
PDF_NAME = "report.pdf"
CYCLONEDX_NAME = "bom.cdx.json"
SPDX_NAME = "spdx.json"
IMAGES_DIR = "images"
ENVELOPE_VERSION = "1.0"

FILE_DESCRIPTIONS = {
    RECORD_NAME: "canonical model record (RFC 8785 JSON)",
    METADATA_NAME: "the model file's embedded metadata in full (RFC 8785 JSON of its __metadata__)",
    SCHEMA_NAME: "JSON Schema 2020-12 of the record",
    ENVELOPE_NAME: "creation time, issuer, signer and the record's SHA-256",
    signing.PUBLIC_KEY_NAME: "the signer's ECDSA public key (PEM)",
    HTML_NAME: "human-readable report (HTML)",
    PDF_NAME: "human-readable report (PDF/A-3b) with record.json and metadata.json attached",
    CYCLONEDX_NAME: "CycloneDX 1.6 ML-BOM",
    SPDX_NAME: "SPDX 3.0.1 document (AI and Dataset profiles)",
    signing.MANIFEST_NAME: "SHA-256 of every file (sha256sum -c MANIFEST)",
    signing.SIGNATURE_NAME: "OpenSSF Model Signing signature (Sigstore bundle)",
}


@dataclass(frozen=True)
class ExhibitResult:
    folder: Path
    model_sha256: str
    record_sha256: str
    files: list[str]
    signer: dict[str, Any]
    envelope: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def _image_candidates(value: Any, depth: int = 0) -> Iterable[tuple[str, str | None, str | None]]:
    """``(caption, sha256, path)`` of pictures a probe section points to (contact sheets)."""
    if depth > 6:
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if "contact_sheet" in str(k) or str(k) in ("sheet", "image"):
                if isinstance(v, str):
                    yield (str(k).replace("_", " "), None, v)
                elif isinstance(v, Mapping):
                    sha = v.get("sha256")
                    path = v.get("path")
                    caption = v.get("caption") or v.get("title") or str(k).replace("_", " ")
                    yield (str(caption), sha if isinstance(sha, str) else None, path if isinstance(path, str) else None)
            elif isinstance(v, Mapping | list):
                yield from _image_candidates(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            yield from _image_candidates(v, depth + 1)


def _find_image(sha: str | None, path: str | None, roots: Sequence[Path]) -> Path | None:
    candidates: list[Path] = []
    if path:
        p = Path(path)
        candidates += [p] if p.is_absolute() else [r / p for r in roots]
    if sha:
        for r in roots:
            candidates += [r / sha, r / f"{sha}.png", r / sha[:2] / sha, r / sha[:2] / f"{sha}.png"]
    for c in candidates:
        if c.is_file():
            return c
    return None


def collect_images(
    record: Mapping[str, Any], folder: Path, roots: Sequence[Path]
) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Copy the probe pictures the record refers to into ``folder/images`` (named by SHA-256).

    A picture whose bytes do not match the SHA-256 the record gives is not copied (a note says so).
    """
    images: dict[str, list[tuple[str, str]]] = {}
    notes: list[str] = []
    for name, value in (record.get("sections") or {}).items():
        if chapter_of(name) != "probe" or value is None:
            continue
        for caption, sha, path in _image_candidates(value):
            found = _find_image(sha, path, roots)
            if found is None:
                notes.append(f"contact sheet {sha or path} not found; the report names it without showing it")
                continue
            data = found.read_bytes()
            actual = sha256_hex(data)
            if sha and actual != sha:
                notes.append(f"contact sheet {found} does not match its recorded SHA-256; not included")
                continue
            (folder / IMAGES_DIR).mkdir(exist_ok=True)
            suffix = ".png" if data[:8] == b"\x89PNG\r\n\x1a\n" else ".jpg" if data[:3] == b"\xff\xd8\xff" else ".bin"
            rel = f"{IMAGES_DIR}/{actual}{suffix}"
            (folder / rel).write_bytes(data)
            images.setdefault(name, []).append((f"{caption} (sha256:{actual[:16]}…)", rel))
    return images, notes


def prepare_folder(folder: Path) -> None:
    if folder.exists():
        if not folder.is_dir():
            raise UsageError(f"{folder} exists and is not a folder")
        if any(folder.iterdir()):
            raise UsageError(f"{folder} is not empty; an exhibit is written to a new or empty folder")
    folder.mkdir(parents=True, exist_ok=True)


def write_exhibit(
    con: duckdb.DuckDBPyConnection,
    sha256: str,
    folder: Path,
    *,
    key: Path | None = None,
    key_password: str | None = None,
    sigstore: bool = False,
    identity_token: str | None = None,
    issuer: str | None = None,
    sections: Sequence[SectionLike] | None = None,
    image_roots: Sequence[Path] = (),
    now: datetime | None = None,
    pdf: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ExhibitResult:
    """Write the exhibit of model ``sha256`` into the new or empty ``folder``; see the module docstring.

    Signs with ``key`` (ECDSA PEM) or, when ``sigstore`` is set, keylessly with Sigstore (needs the
    network). Without either the exhibit is unsigned and ``verify`` reports it.
    """
    if key is not None and sigstore:
        raise UsageError("choose one way to sign: --key or --sigstore")
    key_info = signing.key_info(key, key_password) if key is not None else None
    if pdf:
        check_pdf_support()
    prepare_folder(folder)
    say = progress or (lambda _msg: None)
    if sections is None:
        sections = discover_sections()

    say("building the canonical record")
    record = build_record(con, sha256, sections)
    rec_bytes = record_bytes(record)
    (folder / RECORD_NAME).write_bytes(rec_bytes)
    (folder / SCHEMA_NAME).write_text(json.dumps(record_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    verbatim = (record.get("metadata") or {}).get("verbatim")
    if verbatim is not None:
        (folder / METADATA_NAME).write_bytes(canonical_bytes(verbatim))
    images, notes = collect_images(record, folder, image_roots)

    issued = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
    created = iso_utc(issued)
    if key_info is not None:
        signer: dict[str, Any] = {
            "method": "ecdsa-key",
            "curve": key_info.curve,
            "public_key_sha256": key_info.fingerprint,
            "public_key_file": signing.PUBLIC_KEY_NAME,
        }
        (folder / signing.PUBLIC_KEY_NAME).write_bytes(key_info.public_pem)
    elif sigstore:
        signer = {"method": "sigstore"}
    else:
        signer = {"method": "none"}
        notes.append("the exhibit is not signed (no --key); verify will report the missing signature")
    envelope: dict[str, Any] = {
        "envelope_version": ENVELOPE_VERSION,
        "created_at": created,
        "issuer": issuer,
        "tool": {"name": "modelreg", "version": __version__},
        "model_sha256": sha256,
        "record_file": RECORD_NAME,
        "record_schema": SCHEMA_ID,
        "record_sha256": sha256_hex(rec_bytes),
        "signer": signer,
        "files": {},
    }

    say("writing CycloneDX and SPDX exports")
    cdx = bom.cyclonedx_bom(record, created)
    (folder / CYCLONEDX_NAME).write_text(json.dumps(cdx, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    spdx = bom.spdx_document(record, created)
    (folder / SPDX_NAME).write_text(json.dumps(spdx, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    say("rendering the report")
    known = {n: sha256_hex((folder / n).read_bytes()) for n in signing.exhibit_files(folder)}
    html = render_html(record, envelope, sections, images, files=known)
    (folder / HTML_NAME).write_text(html, encoding="utf-8")
    if pdf:
        attach = [RECORD_NAME] + ([METADATA_NAME] if verbatim is not None else [])
        write_pdf(
            html,
            folder / PDF_NAME,
            [(folder / n, FILE_DESCRIPTIONS[n]) for n in attach],
            base_url=folder,
            progress=say,
            created=issued,
        )

    names = [*signing.exhibit_files(folder), ENVELOPE_NAME, signing.MANIFEST_NAME]
    if key_info is not None or sigstore:
        names.append(signing.SIGNATURE_NAME)
    envelope["files"] = {
        n: FILE_DESCRIPTIONS.get(n, "probe contact sheet" if n.startswith(IMAGES_DIR + "/") else "") for n in sorted(set(names))
    }
    (folder / ENVELOPE_NAME).write_bytes(canonical_bytes(envelope))

    say("writing MANIFEST")
    signing.write_manifest(folder)
    if key is not None:
        say("signing (OpenSSF Model Signing, ECDSA key)")
        signing.sign_with_key(folder, key, key_password)
    elif sigstore:
        say("signing (OpenSSF Model Signing, Sigstore)")
        signing.sign_with_sigstore(folder, identity_token=identity_token)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return ExhibitResult(
        folder=folder,
        model_sha256=sha256,
        record_sha256=envelope["record_sha256"],
        files=files,
        signer=signer,
        envelope=envelope,
        notes=notes,
    )



def record_issue(con: duckdb.DuckDBPyConnection, result: ExhibitResult) -> int:
    """Record an issued exhibit in the registry (``exhibits`` row and an ``exhibit.issue`` event).

    Runs in its own transaction; returns the exhibit's id.
    """
    import socket

    from registry.store.events import append_event

    record = json.loads((result.folder / RECORD_NAME).read_bytes())
    head = record["events"]["chain_head"] or {}
    manifest = sha256_hex((result.folder / signing.MANIFEST_NAME).read_bytes())
    host = socket.gethostname()
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute(
            "INSERT INTO exhibits (blob_sha256, record_sha256, manifest_sha256, created_at, host, folder, "
            "signer_method, signer_fingerprint, chain_head_seq, chain_head_hash, tool_version) "
            "VALUES (?, ?, ?, ?::TIMESTAMPTZ, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            [
                result.model_sha256, result.record_sha256, manifest, result.envelope["created_at"], host,
                str(result.folder.resolve()), result.signer["method"], result.signer.get("public_key_sha256"),
                head.get("seq"), head.get("hash"), __version__,
            ],
        ).fetchone()
        assert row is not None
        append_event(
            con,
            "exhibit.issue",
            result.model_sha256,
            {
                "exhibit_id": int(row[0]),
                "record_sha256": result.record_sha256,
                "manifest_sha256": manifest,
                "folder": str(result.folder.resolve()),
                "signer": result.signer,
                "created_at": result.envelope["created_at"],
            },
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return int(row[0])
