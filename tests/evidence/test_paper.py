"""The exhibit on paper: a long real exhibit laid out without split rows or text off the page, full
digests, the metadata verbatim, the attestation page, and worded verification failures."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from registry.evidence import figures, signing
from registry.evidence.exhibit import write_exhibit
from registry.evidence.verify import FAIL, PASS, verify_exhibit
from registry.store.db import connect
from tests.builders import CORPUS
from tests.evidence.test_exhibit import NO_PDF, PDF, WHEN, Built

LOKR = CORPUS / "loras" / "smart_falcon_16_lokr.safetensors"
A4_W, A4_H = 595.28, 841.89  # points
MARGIN_LR = 16 / 25.4 * 72  # the report's left and right page margins (16 mm)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return Built(tmp_path_factory.mktemp("paper"))


def _copy(built: Built, tmp: Path) -> Path:
    dst = tmp / "copy"
    shutil.copytree(built.result.folder, dst)
    return dst


# -- verification messages in words ---------------------------------------------------------------------


def test_changed_file_names_file_and_both_digests_in_hex(built: Built, tmp_path: Path) -> None:
    copy = _copy(built, tmp_path)
    before = signing.file_sha256(copy / "spdx.json")
    with open(copy / "spdx.json", "ab") as f:
        f.write(b"\n")
    after = signing.file_sha256(copy / "spdx.json")
    got = {c.name: c for c in verify_exhibit(copy, public_key=built.pub)}
    assert got["manifest"].detail == f"spdx.json: MANIFEST lists SHA-256 {before}, found {after}"
    assert got["signature"].outcome == FAIL
    assert got["signature"].detail == (
        f"model.sig does not verify: the files differ from what was signed: spdx.json: signed SHA-256 {before}, "
        f"found {after}"
    )
    for c in got.values():
        assert "b'" not in c.detail and "Digest(" not in c.detail


def test_altered_signature_bytes_give_a_reason(built: Built, tmp_path: Path) -> None:
    copy = _copy(built, tmp_path)
    bundle = json.loads((copy / "model.sig").read_bytes())
    sig = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
    sig[12] ^= 0x01
    bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    (copy / "model.sig").write_text(json.dumps(bundle))
    got = {c.name: c for c in verify_exhibit(copy, public_key=built.pub)}
    assert got["manifest"].outcome == PASS
    assert got["signature"].outcome == FAIL
    assert got["signature"].detail.startswith(
        "model.sig does not verify: every file matches the digests listed in model.sig, but the ECDSA signature "
        "over that list does not verify with the public key "
    )
    assert "InvalidSignature" not in got["signature"].detail


def test_manifest_pass_line_gives_its_digest(built: Built) -> None:
    [m] = [c for c in verify_exhibit(built.result.folder, public_key=built.pub) if c.name == "manifest"]
    digest = signing.file_sha256(built.result.folder / "MANIFEST")
    assert m.outcome == PASS and m.detail.endswith(f"MANIFEST SHA-256 {digest}")


def test_metadata_file_is_checked(built: Built, tmp_path: Path) -> None:
    copy = _copy(built, tmp_path)
    meta = json.loads((copy / "metadata.json").read_bytes())
    assert meta["sshs_model_hash"] == "ab" * 32 and meta["ss_network_dim"] == "4"
    (copy / "metadata.json").write_bytes(b'{"ss_network_dim":"8"}')
    got = {c.name: c for c in verify_exhibit(copy, public_key=built.pub)}
    assert got["metadata file"].outcome == FAIL and "is not the embedded metadata of record.json" in got["metadata file"].detail


# -- the report's content ---------------------------------------------------------------------------------


def test_attestation_page_and_full_digests(built: Built) -> None:
    html = (built.result.folder / "report.html").read_text(encoding="utf-8")
    env = built.result.envelope
    assert "<h2 class=\"newpage\"" in html and ". Attestation</h2>" in html
    assert built.fingerprint in html and env["record_sha256"] in html and env["created_at"] in html
    assert "What is signed." in html and "MANIFEST" in html
    assert "modelreg verify EXHIBIT --key KEY.pub --model FILE" in html
    assert "model_signing verify key . --signature model.sig --public_key KEY.pub" in html
    for line in ("Examiner's name", "Date", "Signature", "SHA-256 of report.pdf", "SHA-256 of MANIFEST"):
        assert f"<tr><th>{line}</th><td></td></tr>" in html.replace("&#x27;", "'")
    assert "modelreg 0" in html or "modelreg " in html
    # the files written before the report are listed with their digests, as in MANIFEST
    manifest = signing.parse_manifest((built.result.folder / "MANIFEST").read_text())
    for name in ("record.json", "metadata.json", "bom.cdx.json", "spdx.json", "signer.pub.pem"):
        assert manifest[name] in html, name
    # no digest is cut: no 16-hex prefix followed by an ellipsis anywhere
    assert not re.search(r"[0-9a-f]{12,}…", html)
    assert "signed with it" not in html


def test_metadata_verbatim_in_appendix_and_attached(built: Built) -> None:
    html = (built.result.folder / "report.html").read_text(encoding="utf-8")
    assert "Appendix A. Embedded metadata, full text" in html
    assert '<div class="verbatim">' + "ab" * 32 + "</div>" in html
    assert "Training facts from the embedded metadata" not in html
    if PDF:
        from pypdf import PdfReader

        r = PdfReader(str(built.result.folder / "report.pdf"))
        assert r.attachments["metadata.json"][0] == (built.result.folder / "metadata.json").read_bytes()
        af = [str(x.get_object()["/F"]) for x in r.trailer["/Root"]["/AF"]]
        assert af == ["record.json", "metadata.json"]


def test_times_are_utc_z_only(built: Built) -> None:
    for name in ("record.json", "envelope.json", "report.html"):
        text = (built.result.folder / name).read_text(encoding="utf-8")
        assert "+00:00" not in text, name


def test_legend_and_axis_in_words() -> None:
    long_a = "lora_unet_down_blocks_0_resnets_0_conv1"
    long_b = "lora_unet_up_blocks_0_resnets_0_conv1"
    svg = figures.spectrum_svg([(long_a, [3.0, 1.0]), (long_b, [2.0, 1.0])])
    assert long_a not in svg and ">1</text>" in svg and ">2</text>" in svg  # numbered in the chart
    from registry.evidence.report import _figure_legend

    legend = _figure_legend([long_a, long_b])
    assert "down_<wbr>blocks_<wbr>0_<wbr>resnets_<wbr>0_<wbr>conv1" in legend and "up_<wbr>blocks_<wbr>0" in legend
    bars = figures.bar_profile_svg([("unet down_blocks.0.attentions.1", 2.0)], unit="fro")
    assert "Frobenius norm of the update" in bars and ">fro<" not in bars
    assert "unet down_blocks.0.attentions.1" in bars  # labels in full
    assert figures.quantity_words("energy_share") == "share of the update's total energy"


def test_progress_only_after_the_delay() -> None:
    from cli.exhibit import DelayedProgress

    quick: list[str] = []
    p = DelayedProgress(after=5.0, write=quick.append)
    p("building the canonical record")
    p.close()
    assert quick == []
    slow: list[str] = []
    p = DelayedProgress(after=0.05, write=slow.append)
    p("rendering the report")
    time.sleep(0.3)
    p("writing MANIFEST")
    p.close()
    assert [re.sub(r" \(\d+\.\d s\)$", "", m) for m in slow] == [
        "exhibit: rendering the report …", "exhibit: writing MANIFEST …", "exhibit: done",
    ]


# -- a long real exhibit on paper -------------------------------------------------------------------------


@pytest.mark.skipif(not LOKR.is_file(), reason=f"corpus file {LOKR} is absent")
@pytest.mark.skipif(not PDF, reason=NO_PDF)
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")
def test_long_real_exhibit_fits_the_page_and_splits_no_row(tmp_path: Path) -> None:
    from weasyprint import HTML

    from registry.declarations import load_declaration, person_indicators
    from registry.evidence.report import split_table_rows
    from registry.scan import scan
    from registry.store.declarations import record_declaration

    db = tmp_path / "registry.duckdb"
    scan([LOKR], db)
    key = tmp_path / "k.pem"
    signing.generate_key(key)
    with connect(db) as con:
        [(sha,)] = con.execute("SELECT blob_sha256 FROM sightings").fetchall()
        # a declaration that says no real persons and no characters: contradictions and indicators to lay out
        doc = {
            "schemaVersion": "1.0", "model": {"sha256": sha}, "declarant": {"name": "Jane Doe"}, "date": "2025-03-14",
            "training": {"method": "lora"},
            "datasets": [{"name": "Landscape photographs", "license": "CC-BY-4.0", "itemCount": 24,
                          "depictsRealPersons": "no", "depictsCharacters": "no"}],
        }  # fmt: skip
        record_declaration(con, sha, load_declaration(json.dumps(doc).encode(), "json"))
    with connect(db, read_only=True) as con:
        result = write_exhibit(con, sha, tmp_path / "ex", key=key, now=WHEN, issuer="Test Lab")
    folder = result.folder
    html = (folder / "report.html").read_text(encoding="utf-8")
    record = json.loads((folder / "record.json").read_bytes())
    verbatim = record["metadata"]["verbatim"]
    # every metadata value is in the appendix in full, ss_tag_frequency (15,281 characters) included
    assert len(verbatim["ss_tag_frequency"]) > 15_000
    from html import escape

    for k, v in verbatim.items():
        assert f'<div class="verbatim">{escape(v)}</div>' in html, k
    # the real captions' clothing tags are not taken for names
    from registry.training import parse_training_metadata

    facts, _ = parse_training_metadata(verbatim)
    assert person_indicators(facts)["unclassified_multiword"] == {}

    doc = HTML(string=html, base_url=str(folder)).render(pdf_variant="pdf/a-3b")
    assert len(doc.pages) >= 10
    assert split_table_rows(doc) == []
    assert "declaration.<wbr>characters" in html and "Overfitting indicators" in html
    assert "name-like" not in html and "describe people" not in html

    out = subprocess.run(["pdftotext", "-bbox", str(folder / "report.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    pages = re.findall(r'<page width="([\d.]+)" height="([\d.]+)">(.*?)</page>', out, re.S)
    assert len(pages) == len(doc.pages)
    outside = []
    for n, (w, h, body) in enumerate(pages, 1):
        assert abs(float(w) - A4_W) < 1 and abs(float(h) - A4_H) < 1
        for x0, y0, x1, y1, word in re.findall(
            r'<word xMin="([\d.-]+)" yMin="([\d.-]+)" xMax="([\d.-]+)" yMax="([\d.-]+)">(.*?)</word>', body
        ):
            if float(x0) < MARGIN_LR - 1 or float(x1) > float(w) - MARGIN_LR + 1 or float(y0) < 0 or float(y1) > float(h):
                outside.append(f"page {n}: {word} ({x0}, {y0}, {x1}, {y1})")
    assert outside == []
    checks = {c.name: c.outcome for c in verify_exhibit(folder, model=LOKR)}
    assert set(checks.values()) == {PASS}, checks


@pytest.mark.skipif(not PDF, reason=NO_PDF)
@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")
def test_identifiers_wrap_at_their_separators_only(tmp_path: Path) -> None:
    from weasyprint import HTML

    from registry.evidence.report import CSS, _table, ident

    body = _table(["key", "value"], [[ident("ss_caption_dropout_every_n_epochs"), "0"]], cls="grid meta")
    HTML(string=f"<html><head><style>{CSS}</style></head><body>{body}</body></html>").write_pdf(tmp_path / "t.pdf")
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "t.pdf"), "-"], capture_output=True, text=True, check=True).stdout
    lines = [ln.strip().replace("\u200b", "") for ln in text.splitlines() if ln.strip()]
    # the key is wider than its column (28 % of the page): it wraps after an underscore, not inside a word
    assert lines[1].startswith("ss_caption_dropout_every_n_") and lines[1].split()[0].endswith("_")
    assert lines[2] == "epochs"
