"""End to end: write a signed exhibit, verify it, tamper with it, read it with third-party tools."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from registry.errors import UsageError
from registry.evidence import signing
from registry.evidence.exhibit import ExhibitResult, write_exhibit
from registry.evidence.verify import FAIL, PASS, SKIP, Check, all_passed, verify_exhibit
from registry.store.db import connect
from tests.evidence.registry_fixture import Fixture, make_registry
from tests.evidence.test_canonical import SECTIONS

WHEN = datetime(2024, 6, 1, 10, 0, tzinfo=timezone.utc)


def _pdf_available() -> bool:
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError):  # OSError: the system's Pango is missing
        return False
    return True


PDF = _pdf_available()
NO_PDF = "weasyprint or the system's Pango is missing (apt-get install libpango-1.0-0 libpangoft2-1.0-0)"
ATTACHMENT = PASS if PDF else SKIP


def files(*names: str) -> list[str]:
    """``names`` without report.pdf where PDFs cannot be made here."""
    return [n for n in names if PDF or n != "report.pdf"]


class Built:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.fx: Fixture = make_registry(root)
        self.key = root / "signer.pem"
        self.pub = root / "signer.pub.pem"
        info = signing.generate_key(self.key)
        self.pub.write_bytes(info.public_pem)
        self.fingerprint = info.fingerprint
        self.result = self.write(root / "exhibit")

    def write(self, folder: Path, **kw: Any) -> ExhibitResult:
        kw.setdefault("key", self.key)
        kw.setdefault("now", WHEN)
        kw.setdefault("pdf", PDF)
        with connect(self.fx.db, read_only=True) as con:
            return write_exhibit(con, self.fx.sha256, folder, sections=SECTIONS, **kw)

    def copy(self, tmp: Path) -> Path:
        dst = tmp / "copy"
        shutil.copytree(self.result.folder, dst)
        return dst


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return Built(tmp_path_factory.mktemp("exhibit"))


def outcomes(checks: list[Check]) -> dict[str, str]:
    return {c.name: c.outcome for c in checks}


def test_exhibit_files(built: Built) -> None:
    assert built.result.files == files(
        "MANIFEST", "bom.cdx.json", "envelope.json", "metadata.json", "model-record.schema.json", "model.sig",
        "record.json", "report.html", "report.pdf", "signer.pub.pem", "spdx.json",
    )  # fmt: skip
    env = json.loads((built.result.folder / "envelope.json").read_bytes())
    assert env["created_at"] == "2024-06-01T10:00:00Z"
    assert env["signer"] == {
        "method": "ecdsa-key", "curve": "secp256r1", "public_key_sha256": built.fingerprint,
        "public_key_file": "signer.pub.pem",
    }  # fmt: skip
    assert env["model_sha256"] == built.fx.sha256
    manifest = (built.result.folder / "MANIFEST").read_text()
    assert [line.split("  ")[1] for line in manifest.splitlines()] == files(
        "bom.cdx.json", "envelope.json", "metadata.json", "model-record.schema.json", "record.json",
        "report.html", "report.pdf", "signer.pub.pem", "spdx.json",
    )  # fmt: skip


def test_same_state_gives_byte_identical_record(built: Built, tmp_path: Path) -> None:
    later = built.write(tmp_path / "again", now=datetime(2025, 1, 1, tzinfo=timezone.utc))
    a = (built.result.folder / "record.json").read_bytes()
    b = (later.folder / "record.json").read_bytes()
    assert a == b
    assert later.record_sha256 == built.result.record_sha256
    # the envelope carries the time, so it differs
    assert (built.result.folder / "envelope.json").read_bytes() != (later.folder / "envelope.json").read_bytes()


def test_same_inputs_give_identical_report_bytes(built: Built, tmp_path: Path) -> None:
    again = built.write(tmp_path / "same")
    for name in files("report.html", "report.pdf", "bom.cdx.json", "spdx.json"):
        assert (again.folder / name).read_bytes() == (built.result.folder / name).read_bytes(), name


def test_verify_passes(built: Built) -> None:
    checks = verify_exhibit(built.result.folder, model=built.fx.model, public_key=built.pub)
    assert outcomes(checks) == {
        "manifest": PASS, "signature": PASS, "envelope": PASS, "record schema": PASS,
        "record canonical": PASS, "metadata file": PASS, "report attachment": ATTACHMENT, "model hashes": PASS,
        "model header": PASS,
    }  # fmt: skip
    assert all_passed(checks)
    sig = next(c for c in checks if c.name == "signature")
    assert built.fingerprint in sig.detail and "given key" in sig.detail


def test_verify_with_shipped_key_says_so(built: Built) -> None:
    checks = verify_exhibit(built.result.folder)
    sig = next(c for c in checks if c.name == "signature")
    assert sig.outcome == PASS and "shipped in the exhibit" in sig.detail
    assert "model hashes" not in outcomes(checks)


def _model_signing(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "model_signing", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_model_signing_tool_verifies(built: Built, tmp_path: Path) -> None:
    d = built.result.folder
    ok = _model_signing("verify", "key", str(d), "--signature", str(d / "model.sig"), "--public_key", str(built.pub))
    assert ok.returncode == 0, ok.stderr
    assert "Verification succeeded" in ok.stdout
    copy = built.copy(tmp_path)
    (copy / "report.html").write_text((copy / "report.html").read_text() + " ")
    bad = _model_signing("verify", "key", str(copy), "--signature", str(copy / "model.sig"), "--public_key", str(built.pub))
    assert bad.returncode == 1
    assert "Verification failed" in bad.stderr and "Hash mismatch for" in bad.stderr and "report.html" in bad.stderr


@pytest.mark.parametrize(
    "name",
    files("record.json", "envelope.json", "report.pdf", "report.html", "bom.cdx.json", "spdx.json",
          "model-record.schema.json", "signer.pub.pem", "MANIFEST", "model.sig", "metadata.json"),
)  # fmt: skip
def test_any_changed_byte_fails(built: Built, tmp_path: Path, name: str) -> None:
    copy = built.copy(tmp_path)
    data = bytearray((copy / name).read_bytes())
    i = len(data) // 2
    data[i] ^= 0x01
    (copy / name).write_bytes(bytes(data))
    checks = verify_exhibit(copy, public_key=built.pub)
    assert not all_passed(checks)
    assert outcomes(checks)["signature"] == FAIL
    if name not in ("MANIFEST", "model.sig"):
        assert outcomes(checks)["manifest"] == FAIL


def test_rewritten_manifest_still_fails_the_signature(built: Built, tmp_path: Path) -> None:
    """An editor who changes the record and recomputes MANIFEST and envelope is caught by the signature."""
    copy = built.copy(tmp_path)
    rec = json.loads((copy / "record.json").read_bytes())
    rec["sightings"][0]["host"] = "elsewhere"
    from registry.evidence.canonical import canonical_bytes, sha256_hex

    raw = canonical_bytes(rec)
    (copy / "record.json").write_bytes(raw)
    env = json.loads((copy / "envelope.json").read_bytes())
    env["record_sha256"] = sha256_hex(raw)
    (copy / "envelope.json").write_bytes(canonical_bytes(env))
    signing.write_manifest(copy)
    got = outcomes(verify_exhibit(copy, public_key=built.pub))
    assert got["manifest"] == PASS and got["envelope"] == PASS and got["record schema"] == PASS
    assert got["signature"] == FAIL
    if PDF:
        assert got["report attachment"] == FAIL  # the PDF still carries the original record


def test_extra_or_missing_file_fails(built: Built, tmp_path: Path) -> None:
    copy = built.copy(tmp_path)
    (copy / "note.txt").write_text("added later")
    checks = verify_exhibit(copy, public_key=built.pub)
    assert outcomes(checks)["manifest"] == FAIL and outcomes(checks)["signature"] == FAIL
    assert "note.txt: present but not listed" in next(c.detail for c in checks if c.name == "manifest")
    (copy / "note.txt").unlink()
    (copy / "spdx.json").unlink()
    checks = verify_exhibit(copy, public_key=built.pub)
    assert "spdx.json: listed in MANIFEST but missing" in next(c.detail for c in checks if c.name == "manifest")


def test_wrong_key_fails(built: Built, tmp_path: Path) -> None:
    other = signing.generate_key(tmp_path / "other.pem")
    (tmp_path / "other.pub").write_bytes(other.public_pem)
    sig = next(c for c in verify_exhibit(built.result.folder, public_key=tmp_path / "other.pub") if c.name == "signature")
    assert sig.outcome == FAIL and "is not the key the envelope names" in sig.detail
    # a swapped signer.pub.pem (and no --key) fails too
    copy = built.copy(tmp_path)
    (copy / "signer.pub.pem").write_bytes(other.public_pem)
    assert outcomes(verify_exhibit(copy))["signature"] == FAIL


def test_unsigned_exhibit_fails_signature_only(built: Built, tmp_path: Path) -> None:
    res = built.write(tmp_path / "unsigned", key=None)
    assert "model.sig" not in res.files and res.signer == {"method": "none"}
    assert any("not signed" in n for n in res.notes)
    got = outcomes(verify_exhibit(res.folder))
    assert got["signature"] == FAIL
    assert {k: v for k, v in got.items() if k != "signature"} == {
        "manifest": PASS, "envelope": PASS, "record schema": PASS, "record canonical": PASS, "metadata file": PASS,
        "report attachment": ATTACHMENT,
    }  # fmt: skip


def test_changed_model_fails(built: Built, tmp_path: Path) -> None:
    model = tmp_path / "m.safetensors"
    data = bytearray(built.fx.model.read_bytes())
    data[-1] ^= 0xFF  # last byte of tensor data
    model.write_bytes(bytes(data))
    got = {c.name: c for c in verify_exhibit(built.result.folder, model=model, public_key=built.pub)}
    assert got["model hashes"].outcome == FAIL and "SHA-256: the record says " in got["model hashes"].detail
    assert "AutoV3" in got["model hashes"].detail
    assert got["model header"].outcome == PASS  # the header itself is intact
    # an edited metadata value (same length) keeps AutoV3 but fails the header comparison
    raw = built.fx.model.read_bytes().replace(b'"ss_network_dim":"4"', b'"ss_network_dim":"8"')
    model.write_bytes(raw)
    got = {c.name: c for c in verify_exhibit(built.result.folder, model=model, public_key=built.pub)}
    assert "AutoV3" not in got["model hashes"].detail
    assert got["model header"].outcome == FAIL and "embedded metadata differs" in got["model header"].detail


def test_usage_errors(built: Built, tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        verify_exhibit(tmp_path / "nope")
    with pytest.raises(UsageError):
        verify_exhibit(built.result.folder, model=tmp_path / "missing.safetensors")
    with pytest.raises(UsageError, match="not empty"):
        built.write(built.result.folder)


@pytest.mark.skipif(not PDF, reason=NO_PDF)
def test_pdf_attachment_and_pdfa(built: Built) -> None:
    from pypdf import PdfReader

    reader = PdfReader(str(built.result.folder / "report.pdf"))
    assert reader.attachments["record.json"] == [(built.result.folder / "record.json").read_bytes()]
    xmp = reader.xmp_metadata
    assert xmp is not None
    raw = xmp.stream.get_data()
    assert b'pdfaid:part="3" pdfaid:conformance="B"' in raw  # PDF/A-3b
    root: Any = reader.trailer["/Root"]
    [intent] = [x.get_object() for x in root["/OutputIntents"]]
    assert intent["/S"] == "/GTS_PDFA1" and "/DestOutputProfile" in intent  # an ICC output intent
    fonts = {}
    for page in reader.pages:
        for f in (page["/Resources"].get("/Font") or {}).values():
            font = f.get_object()
            descendants = font.get("/DescendantFonts")
            desc = (descendants[0].get_object() if descendants else font).get("/FontDescriptor")
            fonts[str(font["/BaseFont"])] = desc is not None and any(
                k in desc.get_object() for k in ("/FontFile", "/FontFile2", "/FontFile3")
            )
    assert fonts and all(fonts.values()), fonts  # every font is embedded
    for spec in (x.get_object() for x in root["/AF"]):
        assert spec["/AFRelationship"] == "/Source"
    text = reader.pages[0].extract_text()
    assert "Model exhibit" in text and built.fx.sha256 in text.replace("\n", "")


@pytest.mark.skipif(not PDF, reason=NO_PDF)
@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm (poppler-utils) is not installed")
def test_first_page_is_not_blank(built: Built, tmp_path: Path) -> None:
    import numpy as np

    subprocess.run(
        ["pdftoppm", "-r", "40", "-gray", "-f", "1", "-l", "1", str(built.result.folder / "report.pdf"), str(tmp_path / "p")],
        check=True,
        timeout=60,
    )
    (pgm,) = tmp_path.glob("p*.pgm")
    data = pgm.read_bytes()
    # binary PGM: "P5\n<w> <h>\n<max>\n" then w*h bytes
    magic, dims, maxval, pixels = data.split(b"\n", 3)
    w, h = map(int, dims.split())
    assert magic == b"P5" and maxval == b"255"
    img = np.frombuffer(pixels[: w * h], dtype=np.uint8).reshape(h, w)
    ink = float((img < 128).mean())
    assert (w, h) == (331, 468)  # A4 at 40 dpi
    assert 0.01 < ink < 0.5, ink  # text on a white page: some ink, mostly paper
    assert (img < 128).any(axis=1).sum() > 40  # ink on many rows, not a single stray line


def test_missing_pango_is_one_clear_error_before_anything_is_written(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from registry.errors import MissingExtra

    monkeypatch.setitem(sys.modules, "weasyprint", None)  # as if the import failed
    with pytest.raises(MissingExtra, match=r"libpango-1.0-0.*--no-pdf"):
        built.write(tmp_path / "nopdf", pdf=True)
    assert not (tmp_path / "nopdf").exists()


@pytest.mark.skipif(not PDF, reason=NO_PDF)
def test_a_flipped_bit_anywhere_in_the_pdf_is_a_finding_not_a_crash(built: Built, tmp_path: Path) -> None:
    """pypdf parses lazily and raises many kinds of error on damaged objects; the attachment check reads
    everything inside its guard, so a flipped bit gives a result, never an exception. Flipped: every byte
    of the embedded files' dictionaries (where a "(" turned ")" once escaped as an AttributeError) and
    150 positions spread over the whole file."""
    import re

    from registry.evidence.verify import PDF_NAME, RECORD_NAME, check_pdf

    copy = built.copy(tmp_path)
    pdf = copy / PDF_NAME
    good = pdf.read_bytes()
    record = (copy / RECORD_NAME).read_bytes()
    assert check_pdf(copy, record).outcome == PASS
    dicts = [m.span() for m in re.finditer(rb"\d+ 0 obj\s*<</Type /EmbeddedFile.*?stream\r?\n", good, re.S)]
    assert len(dicts) == 2  # record.json and metadata.json
    positions = sorted({i for a, b in dicts for i in range(a, b)} | set(range(0, len(good), len(good) // 150)))
    seen: dict[str, int] = {}
    for i in positions:
        data = bytearray(good)
        data[i] ^= 0x01
        pdf.write_bytes(bytes(data))
        got = check_pdf(copy, record).outcome
        seen[got] = seen.get(got, 0) + 1
    assert seen.get(FAIL, 0) > 0 and set(seen) <= {PASS, FAIL}


def test_an_unreadable_record_makes_no_claim_about_the_models_metadata(built: Built, tmp_path: Path) -> None:
    copy = built.copy(tmp_path)
    (copy / "record.json").write_bytes(b"{")
    got = {c.name: c for c in verify_exhibit(copy, public_key=built.pub)}
    assert got["metadata file"].outcome == FAIL  # metadata.json is there, with nothing to check it against
    assert got["metadata file"].detail == "cannot be checked: record.json is missing or unreadable"
    (copy / "metadata.json").unlink()
    got = {c.name: c for c in verify_exhibit(copy, public_key=built.pub)}
    assert got["metadata file"].outcome == SKIP and "no embedded metadata" not in got["metadata file"].detail
