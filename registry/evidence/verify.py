"""Checking an exhibit, and optionally the model file it describes, without trusting the registry.

Each check is a :class:`Check` with a pass, fail or skip outcome and a sentence saying why. The model
file is re-hashed here with plain hashlib/blake3 (not with the scan's code) and its header re-read, so
the confirmation does not rest on the code that produced the record.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.errors import UsageError
from registry.evidence import signing
from registry.evidence.canonical import canonical_bytes, schema_errors, sha256_hex, tensor_index_digest
from registry.evidence.exhibit import ENVELOPE_NAME, METADATA_NAME, PDF_NAME, RECORD_NAME

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class Check:
    name: str
    outcome: str  # pass, fail, skip
    detail: str

    @property
    def failed(self) -> bool:
        return self.outcome == FAIL


def _load_json(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_bytes()), None
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except (ValueError, UnicodeDecodeError) as e:
        return None, f"{path.name} is not valid JSON: {e}"


def check_manifest(folder: Path) -> Check:
    problems = signing.check_manifest(folder)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        return Check("manifest", FAIL, "; ".join(problems[:5]) + more)
    n = len(signing.parse_manifest((folder / signing.MANIFEST_NAME).read_text(encoding="utf-8")))
    digest = signing.file_sha256(folder / signing.MANIFEST_NAME)
    return Check("manifest", PASS, f"{n} files match their SHA-256 in MANIFEST; no unlisted files; MANIFEST SHA-256 {digest}")


def check_signature(folder: Path, envelope: Mapping[str, Any] | None, public_key: Path | None) -> Check:
    sig = folder / signing.SIGNATURE_NAME
    signer = (envelope or {}).get("signer") or {}
    if not sig.is_file():
        return Check("signature", FAIL, f"the exhibit is not signed ({signing.SIGNATURE_NAME} is missing)")
    if signer.get("method") == "sigstore" and public_key is None:
        return Check(
            "signature",
            SKIP,
            "signed with Sigstore: check it with `model_signing verify sigstore DIR --signature DIR/model.sig "
            "--identity ID --identity_provider URL` (needs the network)",
        )
    shipped = folder / signing.PUBLIC_KEY_NAME
    key = public_key or (shipped if shipped.is_file() else None)
    if key is None:
        return Check("signature", FAIL, f"no public key: pass --key PUB.pem ({signing.PUBLIC_KEY_NAME} is missing)")
    try:
        info = signing.public_key_info(key.read_bytes())
    except OSError as e:
        raise UsageError(f"cannot read public key {key}: {e.strerror}") from None
    except UsageError as e:
        return Check("signature", FAIL, f"{key}: {e}")
    recorded = signer.get("public_key_sha256")
    if recorded and recorded != info.fingerprint:
        return Check(
            "signature",
            FAIL,
            f"the key {key} (fingerprint {info.fingerprint}) is not the key the envelope names "
            f"(fingerprint {recorded})",
        )
    try:
        signing.verify_with_key(folder, key)
    except Exception as e:  # noqa: BLE001 - any verification error is a failed check
        return Check("signature", FAIL, f"{signing.SIGNATURE_NAME} does not verify: {e}")
    whose = (
        f"the given key {key}"
        if public_key is not None
        else f"the key shipped in the exhibit ({signing.PUBLIC_KEY_NAME}); trust it only if its fingerprint is one you know"
    )
    return Check("signature", PASS, f"valid ECDSA {info.curve} signature by {whose}, fingerprint {info.fingerprint}")


def check_envelope(envelope: Any, error: str | None, record_raw: bytes | None, record: Any) -> Check:
    if error:
        return Check("envelope", FAIL, error)
    if not isinstance(envelope, Mapping):
        return Check("envelope", FAIL, f"{ENVELOPE_NAME} is not a JSON object")
    if record_raw is None:
        return Check("envelope", FAIL, f"{RECORD_NAME} is missing")
    actual = sha256_hex(record_raw)
    if envelope.get("record_sha256") != actual:
        return Check("envelope", FAIL, f"{ENVELOPE_NAME} names {RECORD_NAME} SHA-256 {envelope.get('record_sha256')}, found {actual}")
    model_sha = record.get("model", {}).get("sha256") if isinstance(record, Mapping) else None
    if envelope.get("model_sha256") != model_sha:
        return Check("envelope", FAIL, f"{ENVELOPE_NAME} names the model file SHA-256 {envelope.get('model_sha256')}, {RECORD_NAME} names {model_sha}")
    return Check("envelope", PASS, f"record SHA-256 {actual} as named; issued {envelope.get('created_at')}")


def check_record(record_raw: bytes | None, record: Any, error: str | None) -> list[Check]:
    if error or record_raw is None:
        return [Check("record schema", FAIL, error or f"{RECORD_NAME} is missing")]
    errs = schema_errors(record)
    out = []
    if errs:
        shown = "; ".join(f"{p}: {m}" for p, m in errs[:5])
        out.append(Check("record schema", FAIL, f"{len(errs)} violations: {shown}"))
    else:
        out.append(Check("record schema", PASS, "record.json validates against model-record.schema.json (2020-12)"))
    try:
        canonical = canonical_bytes(record) == record_raw
    except Exception as e:  # noqa: BLE001 - e.g. an unsafe integer planted in the record
        return [*out, Check("record canonical", FAIL, f"cannot canonicalise: {e}")]
    out.append(
        Check("record canonical", PASS, "record.json is RFC 8785 canonical JSON")
        if canonical
        else Check("record canonical", FAIL, "record.json is not in RFC 8785 canonical form")
    )
    return out


def check_metadata(folder: Path, record: Any) -> Check:
    """``metadata.json`` is the record's verbatim embedded metadata, in RFC 8785 form."""
    path = folder / METADATA_NAME
    if not isinstance(record, Mapping):
        # no record to compare with: saying the model has no metadata would be a claim nothing supports
        return Check("metadata file", FAIL if path.is_file() else SKIP,
                     f"cannot be checked: {RECORD_NAME} is missing or unreadable")
    verbatim = (record.get("metadata") or {}).get("verbatim")
    if not path.is_file():
        if verbatim is None:
            return Check("metadata file", SKIP, f"the model file has no embedded metadata, so there is no {METADATA_NAME}")
        return Check("metadata file", FAIL, f"{METADATA_NAME} is missing, yet {RECORD_NAME} holds embedded metadata")
    try:
        expected = canonical_bytes(verbatim)
    except Exception as e:  # noqa: BLE001 - an unsafe value planted in the record
        return Check("metadata file", FAIL, f"{RECORD_NAME}'s metadata cannot be canonicalised: {e}")
    found = path.read_bytes()
    if found != expected:
        return Check(
            "metadata file", FAIL,
            f"{METADATA_NAME} (SHA-256 {sha256_hex(found)}) is not the embedded metadata of {RECORD_NAME} "
            f"(canonical SHA-256 {sha256_hex(expected)})",
        )
    return Check("metadata file", PASS, f"{METADATA_NAME} is the record's embedded metadata, byte for byte (SHA-256 {sha256_hex(found)})")


def check_pdf(folder: Path, record_raw: bytes | None) -> Check:
    pdf = folder / PDF_NAME
    if not pdf.is_file():
        return Check("report attachment", SKIP, f"{PDF_NAME} is not in the exhibit")
    try:
        from pypdf import PdfReader

        wanted = [RECORD_NAME] + ([METADATA_NAME] if (folder / METADATA_NAME).is_file() else [])
        reader = PdfReader(str(pdf))
        # pypdf parses lazily: everything is read here, so that a damaged object anywhere (found by
        # flipping single bits) is a failed check, not an exception out of the verifier
        attachments = reader.attachments
        carried = {name: attachments.get(name) for name in wanted}
        root: Any = reader.trailer["/Root"]
        af = root.get("/AF")
        af_names = [str(x.get_object().get("/F")) for x in af] if af is not None else []
    except ImportError:
        return Check("report attachment", SKIP, "pypdf is not installed")
    except Exception as e:  # noqa: BLE001 - a damaged PDF is a failed check
        return Check("report attachment", FAIL, f"{PDF_NAME} cannot be read as a PDF ({type(e).__name__}: {str(e) or 'no reason given'})")
    problems = []
    for name in wanted:
        got = carried[name]
        if not got:
            problems.append(f"{PDF_NAME} carries no {name}")
            continue
        on_disk = (folder / name).read_bytes() if (folder / name).is_file() else None
        if on_disk is None or got[0] != on_disk:
            shown = sha256_hex(on_disk) if on_disk is not None else "(missing)"
            problems.append(f"the {name} inside {PDF_NAME} (SHA-256 {sha256_hex(got[0])}) differs from the exhibit's {name} (SHA-256 {shown})")
        if af_names.count(name) != 1:
            problems.append(f"{PDF_NAME}'s associated-files list (/AF) names {name} {af_names.count(name)} times, not once")
    if problems:
        return Check("report attachment", FAIL, "; ".join(problems))
    return Check("report attachment", PASS, f"{PDF_NAME} carries {' and '.join(wanted)} byte for byte, each listed once in /AF")


# -- the model file --------------------------------------------------------------------------------


def model_digests(path: Path) -> dict[str, Any]:
    """SHA-256, BLAKE3 and the safetensors tensor-data SHA-256 (AutoV3) of ``path`` in one read."""
    import blake3

    sha, b3, data_h = hashlib.sha256(), blake3.blake3(), hashlib.sha256()
    size = 0
    start: int | None = None
    with open(path, "rb") as f:
        first = f.read(8)
        if len(first) == 8:
            n = struct.unpack("<Q", first)[0]
            start = 8 + n
        chunk = first
        while chunk:
            sha.update(chunk)
            b3.update(chunk)
            if start is not None and size + len(chunk) > start:
                data_h.update(chunk[max(0, start - size) :])
            size += len(chunk)
            chunk = f.read(1 << 20)
    return {
        "sha256": sha.hexdigest(),
        "blake3": b3.hexdigest(),
        "autov3": data_h.hexdigest() if start is not None and start <= size else None,
        "size": size,
    }


def check_model(path: Path, record: Any) -> list[Check]:
    if not isinstance(record, Mapping) or not isinstance(record.get("model"), Mapping):
        return [Check("model hashes", FAIL, "no usable record to compare the model with")]
    m = record["model"]
    if not path.is_file():
        raise UsageError(f"model file {path} does not exist or is not a file")
    d = model_digests(path)
    wrong = []
    if d["size"] != m.get("size"):
        want_size = m.get("size")
        recorded = f"{want_size:,} bytes" if isinstance(want_size, int) else str(want_size)
        wrong.append(f"size: the record says {recorded}, the file has {d['size']:,} bytes")
    names = {"sha256": "SHA-256", "blake3": "BLAKE3", "autov3": "AutoV3"}
    for k in ("sha256", "blake3", "autov3"):
        want = (m.get("hashes") or {}).get(k)
        if want and d[k] != want:
            wrong.append(f"{names[k]}: the record says {want}, the file has {d[k]}")
    out = [
        Check("model hashes", FAIL, f"{path.name}: " + "; ".join(wrong))
        if wrong
        else Check("model hashes", PASS, f"{path.name}: size, SHA-256, BLAKE3 and AutoV3 equal the record's")
    ]
    if m.get("format") != "safetensors":
        out.append(Check("model header", SKIP, f"format {m.get('format')}: no safetensors header to re-read"))
        return out
    out.append(_check_header(path, record))
    return out


def _check_header(path: Path, record: Mapping[str, Any]) -> Check:
    from registry.errors import FormatError
    from registry.files.safetensors import read_header

    try:
        h = read_header(path)
    except (FormatError, OSError) as e:
        return Check("model header", FAIL, f"the header cannot be read: {e}")
    m, t = record["model"], record.get("tensors") or {}
    wrong = []
    if m.get("header_len") is not None and h.header_len != m["header_len"]:
        wrong.append(f"header length: the record says {m['header_len']:,} bytes, the file has {h.header_len:,}")
    if t.get("count") is not None and len(h.tensors) != t["count"]:
        wrong.append(f"tensors: the record says {t['count']:,}, the file has {len(h.tensors):,}")
    digest = tensor_index_digest((x.name, x.dtype, x.shape, x.begin, x.end) for x in h.tensors)
    if t.get("index_sha256") and digest != t["index_sha256"]:
        wrong.append(f"tensor names, dtypes, shapes or offsets differ: index digest in the record {t['index_sha256']}, of the file {digest}")
    recorded_meta = (record.get("metadata") or {}).get("verbatim")
    from registry.evidence.canonical import jsonable

    if jsonable(h.raw_metadata) != recorded_meta:
        wrong.append("embedded metadata differs from the record's verbatim copy")
    if wrong:
        return Check("model header", FAIL, f"{path.name}: " + "; ".join(wrong))
    return Check(
        "model header",
        PASS,
        f"header re-read: {len(h.tensors)} tensors, index digest and embedded metadata equal the record's",
    )


def verify_exhibit(folder: Path, model: Path | None = None, public_key: Path | None = None) -> list[Check]:
    """Every check of the exhibit in ``folder`` (and of ``model`` when given), in a fixed order."""
    if not folder.is_dir():
        raise UsageError(f"{folder} is not an exhibit folder")
    if public_key is not None and not public_key.is_file():
        raise UsageError(f"public key {public_key} does not exist")
    record_path = folder / RECORD_NAME
    record_raw = record_path.read_bytes() if record_path.is_file() else None
    record, rec_error = _load_json(record_path)
    envelope, env_error = _load_json(folder / ENVELOPE_NAME)
    checks: list[Check] = [
        check_manifest(folder),
        check_signature(folder, envelope if isinstance(envelope, Mapping) else None, public_key),
        check_envelope(envelope, env_error, record_raw, record),
        *check_record(record_raw, record, rec_error),
        check_metadata(folder, record),
        check_pdf(folder, record_raw),
    ]
    if model is not None:
        checks += check_model(model, record)
    return checks


def all_passed(checks: Sequence[Check]) -> bool:
    return not any(c.failed for c in checks)
