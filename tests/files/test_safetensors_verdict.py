"""A valid safetensors file is safetensors, and safe, whatever its first bytes also spell (issue 12).

The 8-byte little-endian header length comes first; its low bytes can read as a pickle opcode (``0x80``
PROTO, ``0x82``–``0x84`` EXT1/2/4, ``0x58`` BINUNICODE …), a gzip magic (``1f 8b``) or a zlib header
(``78 xx``). Such a file must still be sniffed as safetensors and judged ``safe`` with no finding, while
bytes that the header does not account for (gaps, trailing data, an appended zip, a header that does not
parse) and a pickle crafted to run through the header stay caught.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.files.pickles import scan_bytes, scan_file
from registry.files.safetensors import DTYPE_BITS, parse_header
from registry.files.sniff import sniff_file, sniff_head
from registry.scan import scan
from registry.store.db import connect
from tests.pickle_builders import (
    CORPUS_DIR,
    P,
    ZipEntry,
    safetensors_pickle_polyglot,
    safetensors_with_length,
    zip_bytes,
)

EVIL = P(2).call("posix", "system", "echo pwned").stop()


def _n_for(b0: int, b1: int) -> int:
    n = b0 | b1 << 8
    return n if n >= 256 else n | 1 << 16  # byte 2 = 1: room for the JSON


def _check(data: bytes, what: str) -> None:
    s = sniff_head(data[:4096], len(data), lambda k: data[:k])
    assert s.format == "safetensors", (what, s)
    r = scan_bytes(data, recover_tensors=False)
    assert (r.verdict, r.findings, r.globals, r.evasions) == ("safe", [], [], []), (what, r.reason)
    assert r.reason.startswith("safetensors: the length prefix, a "), (what, r.reason)


#: second bytes that make the first one collide: PROTO 0–5 follows 0x80, 0x8b completes gzip's magic
_B1_FOR_SWEEP = (0, 1, 2, 3, 4, 5, 0x8B, 0xFF)
#: first bytes that read as something else: PROTO, EXT1/2/4, gzip, zlib, BINUNICODE, GLOBAL, INST,
#: SHORT_BINBYTES, SHORT_BINSTRING, SHORT_BINUNICODE
_B0_FOR_SWEEP = (0x80, 0x82, 0x83, 0x84, 0x1F, 0x78, 0x58, 0x63, 0x69, 0x43, 0x55, 0x8C)


@pytest.mark.parametrize("meta", [True, False], ids=["metadata", "no-metadata"])
@pytest.mark.parametrize("pad", [True, False], ids=["padded", "unpadded"])
def test_every_first_byte(meta: bool, pad: bool) -> None:
    for b0 in range(256):
        for b1 in _B1_FOR_SWEEP:
            _check(safetensors_with_length(_n_for(b0, b1), meta, pad), f"bytes {b0:#04x} {b1:#04x}")


@pytest.mark.parametrize("meta", [True, False], ids=["metadata", "no-metadata"])
@pytest.mark.parametrize("pad", [True, False], ids=["padded", "unpadded"])
def test_every_second_byte(meta: bool, pad: bool) -> None:
    for b1 in range(256):
        for b0 in _B0_FOR_SWEEP:
            _check(safetensors_with_length(_n_for(b0, b1), meta, pad), f"bytes {b0:#04x} {b1:#04x}")


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("MODELREG_SLOW_TESTS"), reason="65,536 files (~1 min): set MODELREG_SLOW_TESTS=1")
def test_every_pair_of_first_bytes() -> None:
    for b0 in range(256):
        for b1 in range(256):
            _check(safetensors_with_length(_n_for(b0, b1), (b0 + b1) % 2 == 0, b1 % 2 == 0), f"bytes {b0:#04x} {b1:#04x}")


def test_the_reported_file_shape_on_disk(tmp_path: Path) -> None:
    """The case of the issue: a 244,868-byte unpadded header (length 0x0003BC84: EXT4 at byte 0), and
    0x80 0x02 (PROTO 2) that used to make the format "pickle" — through the registry, every surface."""
    db = tmp_path / "r.duckdb"
    tmp_path = tmp_path / "models"
    tmp_path.mkdir()
    names = {0x3BC84: "ext4.safetensors", 0x280 + (1 << 16): "proto2.safetensors", 0x8B1F: "gzip.safetensors"}
    for n, name in names.items():
        (tmp_path / name).write_bytes(safetensors_with_length(n, True, False))
        assert sniff_file(tmp_path / name).format == "safetensors"
    s = scan([tmp_path], db)
    assert s.finding_list == []
    with connect(db, read_only=True) as con:
        rows = con.execute(
            "SELECT regexp_extract(path, '[^/]+$'), format, security_verdict, n_findings FROM models ORDER BY 1"
        ).fetchall()
        sec = con.execute("SELECT count(*) FROM model_security WHERE verdict = 'safe'").fetchone()
    assert rows == [(name, "safetensors", "safe", 0) for name in sorted(names.values())]
    assert sec == (3,)


# -- random valid headers -------------------------------------------------------------------------------

_WHOLE_BYTE_DTYPES = sorted(d for d, bits in DTYPE_BITS.items() if bits % 8 == 0)


@st.composite
def valid_files(draw: st.DrawFn) -> bytes:
    names = draw(st.lists(st.text(min_size=1, max_size=12).filter(lambda s: s != "__metadata__"),
                          max_size=6, unique=True))  # fmt: skip
    header: dict[str, Any] = {}
    if draw(st.booleans()):
        header["__metadata__"] = draw(st.dictionaries(st.text(max_size=10), st.text(max_size=40), max_size=5))
    pos = 0
    order = draw(st.permutations(names)) if names else []
    for name in order:
        dtype = draw(st.sampled_from(_WHOLE_BYTE_DTYPES))
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
        n = int(np.prod(shape, dtype=np.int64)) * DTYPE_BITS[dtype] // 8
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [pos, pos + n]}
        pos += n
    text = json.dumps(header, ensure_ascii=draw(st.booleans()),
                      separators=draw(st.sampled_from([(",", ":"), (", ", ": ")]))).encode()  # fmt: skip
    # the low 16 bits of the header length sweep all values: pad with spaces up to a drawn length
    low = draw(st.integers(0, 0xFFFF))
    target = (len(text) & ~0xFFFF) | low
    if target < len(text):
        target += 1 << 16
    if draw(st.booleans()):
        target = len(text) + draw(st.integers(0, 7))  # the usual writer padding
    raw = text + b" " * (target - len(text))
    return struct.pack("<Q", len(raw)) + raw + draw(st.binary(min_size=pos, max_size=pos))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_files())
def test_random_valid_headers_are_safe(data: bytes) -> None:
    n = int.from_bytes(data[:8], "little")
    assert parse_header(data[8 : 8 + n], n, len(data)).valid
    _check(data, f"first bytes {data[:2].hex()}")


# -- files written by the safetensors library -----------------------------------------------------------

_NP_DTYPES = [np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.float16, np.uint32, np.int32, np.float32,
              np.uint64, np.int64, np.float64]  # fmt: skip


def _np_tensors(dtype: Any) -> dict[str, np.ndarray]:
    return {
        "zero_d": np.array(1, dtype=dtype),
        "empty": np.zeros((0,), dtype=dtype),
        "empty_2d": np.zeros((3, 0), dtype=dtype),
        "plain": np.arange(6).astype(dtype).reshape(2, 3),
    }


def test_files_written_by_safetensors_numpy(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    seen_low: set[int] = set()
    for i, dt in enumerate(_NP_DTYPES):
        # metadata 8 bytes longer each time: the (8-byte padded) header length's first byte runs through
        # every multiple of 8; no metadata at all for the first
        for extra in range(0, 256, 8):
            p = tmp_path / f"np_{i}_{extra}.safetensors"
            save_file(_np_tensors(dt), str(p), metadata={"k": "x" * extra} if extra else None)
            data = p.read_bytes()
            seen_low.add(data[0])
            assert sniff_file(p).format == "safetensors"
            r = scan_file(p)
            assert (r.verdict, r.findings) == ("safe", []), (p.name, r.reason)
    assert seen_low == set(range(0, 256, 8))  # 0x80 (PROTO) among them


def test_files_written_by_safetensors_torch(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    names = ["bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64",
             "uint16", "uint32", "uint64", "float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu", "complex64"]  # fmt: skip
    written = 0
    for name in names:
        dt = getattr(torch, name, None)
        if dt is None:
            continue
        tensors = {
            "zero_d": torch.zeros((), dtype=dt),
            "empty": torch.zeros((0,), dtype=dt),
            "empty_2d": torch.zeros((2, 0, 3), dtype=dt),
            "plain": torch.zeros((2, 3), dtype=dt),
        }
        for extra in range(0, 256, 24):
            p = tmp_path / f"t_{name}_{extra}.safetensors"
            try:
                save_file(tensors, str(p), metadata={"k": "y" * extra})
            except (TypeError, ValueError, KeyError):
                break  # a dtype this safetensors release cannot write
            written += 1
            assert sniff_file(p).format == "safetensors"
            r = scan_file(p)
            assert (r.verdict, r.findings) == ("safe", []), (p.name, r.reason)
    assert written >= 13 * 11


@pytest.mark.skipif(CORPUS_DIR is None, reason="shared corpus not present")
@pytest.mark.parametrize("name", ["smart_falcon_4_lokr.safetensors", "smart_falcon_16_lokr.safetensors"])
def test_real_unpadded_lokr_files(tmp_path: Path, name: str) -> None:
    """The real files of the report, as they are and with their header re-spaced so that its length
    starts with 0x84 (EXT4) and 0x80 0x03 (PROTO 3): safe, no finding, in the `models` view."""
    assert CORPUS_DIR is not None
    src = (CORPUS_DIR / "loras" / name).read_bytes()
    n = int.from_bytes(src[:8], "little")
    text, data = src[8 : 8 + n].rstrip(b" "), src[8 + n :]
    variants = {"as_is": src}
    for label, low in (("ext4", 0x84), ("proto3", 0x0380)):
        target = (len(text) & ~0xFF if low < 0x100 else len(text) & ~0xFFFF) | low
        while target < len(text):
            target += 0x100 if low < 0x100 else 0x10000
        variants[label] = struct.pack("<Q", target) + text + b" " * (target - len(text)) + data
    assert variants["ext4"][0] == 0x84 and variants["proto3"][:2] == b"\x80\x03"
    for label, b in variants.items():
        (tmp_path / f"{label}.safetensors").write_bytes(b)
    db = tmp_path.parent / f"{tmp_path.name}.duckdb"
    s = scan([tmp_path], db)
    assert not [f for f in s.finding_list if f[0].startswith(("pickle.", "sniff."))], s.finding_list
    with connect(db, read_only=True) as con:
        got = con.execute("SELECT regexp_extract(path, '[^/]+$'), format, security_verdict, n_tensors FROM models "
                          "ORDER BY 1").fetchall()  # fmt: skip
    n_tensors = len([k for k in json.loads(text) if k != "__metadata__"])
    assert n_tensors == 1750
    assert got == [(f"{label}.safetensors", "safetensors", "safe", n_tensors) for label in sorted(variants)]


# -- what the header does not account for is still scanned ------------------------------------------------


def test_a_pickle_crafted_through_a_valid_header_is_caught(tmp_path: Path) -> None:
    import pickletools

    data = safetensors_pickle_polyglot(EVIL)
    n = int.from_bytes(data[:8], "little")
    assert parse_header(data[8 : 8 + n], n, len(data)).valid  # the strict parser accepts it
    ops = [(op.name, arg) for op, arg, _pos in pickletools.genops(data)]  # a parser, not a loader
    assert ("GLOBAL", "posix system") in ops and ops[-1][0] == "STOP"
    p = tmp_path / "polyglot.safetensors"
    p.write_bytes(data)
    assert sniff_file(p).format == "safetensors"
    r = scan_file(p)
    assert r.verdict == "dangerous" and [g.qualname for g in r.deciding] == ["posix.system"]
    assert any("safetensors/pickle polyglot" in e for e in r.evasions), r.evasions


def test_unaccounted_bytes_are_scanned(tmp_path: Path) -> None:
    good = safetensors_with_length(0x3BC84, True, False)
    # trailing pickle
    r = scan_bytes(good + EVIL)
    assert r.verdict == "dangerous" and [g.qualname for g in r.deciding] == ["posix.system"]
    assert any("bytes after the last tensor" in e and "pickle" in e for e in r.evasions), r.evasions
    # trailing zip holding a pickle
    z = zip_bytes([ZipEntry("archive/data.pkl", EVIL)])
    r = scan_bytes(good + z)
    assert r.verdict == "dangerous" and any("a zip archive is appended" in e for e in r.evasions), r.evasions
    # a gap between tensors that holds a pickle
    n_meta = {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
              "b": {"dtype": "U8", "shape": [4], "data_offsets": [4 + len(EVIL), 8 + len(EVIL)]}}  # fmt: skip
    h = json.dumps(n_meta).encode()
    gap = struct.pack("<Q", len(h)) + h + b"\0" * 4 + EVIL + b"\1" * 4
    r = scan_bytes(gap)
    assert r.verdict == "dangerous" and any("before tensor 'b'" in e for e in r.evasions), r.evasions
    # inert trailing bytes: safe, and the reason says they were looked at
    r = scan_bytes(good + b"\0" * 100)
    assert r.verdict == "safe" and r.findings == []
    assert r.reason.endswith("the 100 bytes it does not account for hold no pickle or archive")


def test_a_header_that_does_not_parse_leaves_the_first_bytes_to_the_pickle_check() -> None:
    broken = struct.pack("<Q", 60) + b"{" + b"not json" * 8
    r = scan_bytes(broken[:68] + bytes(10))
    assert broken[0] == 60  # '<' is no opcode: nothing to read
    assert r.verdict == "safe" and r.format == "safetensors"
    assert "does not parse" in json.dumps(r.container)
    # a real import at byte 0 of a file whose header does not parse is still caught
    r = scan_bytes(EVIL + broken[len(EVIL):])
    assert r.verdict == "dangerous" and [g.qualname for g in r.deciding] == ["posix.system"], r.reason
    # so is the crafted polyglot once its header is damaged (the last brace replaced: same bytes elsewhere)
    poly = bytearray(safetensors_pickle_polyglot(EVIL))
    end = 8 + struct.unpack("<Q", poly[:8])[0]
    assert poly[end - 1 : end] == b"}"
    poly[end - 1] = ord("x")
    r = scan_bytes(bytes(poly))
    assert "does not parse" in json.dumps(r.container)
    assert r.verdict == "dangerous" and [g.qualname for g in r.deciding] == ["posix.system"], r.reason


@pytest.mark.parametrize("pad", [True, False], ids=["padded", "unpadded"])
def test_truncated_files_are_never_called_dangerous(pad: bool) -> None:
    """A download cut short inside the header (or anywhere) is damaged, not hostile, whatever its length
    prefix spells: EXT1/2/4 (0x82-0x84) name no importable object, so they are no evidence of code."""
    for b0 in range(256):
        for b1 in _B1_FOR_SWEEP:
            good = safetensors_with_length(_n_for(b0, b1), True, pad)
            n = len(good)
            for cut in sorted({1, 7, 8, 9, 10, 40, n // 2, n - 9, n - 1}):
                r = scan_bytes(good[:cut], recover_tensors=False)
                assert r.verdict != "dangerous", (f"bytes {b0:#04x} {b1:#04x} cut at {cut}", r.reason)
                assert r.globals == [] or all(not g.resolved or not g.module.isidentifier() for g in r.globals), (
                    f"bytes {b0:#04x} {b1:#04x} cut at {cut}", r.globals)


def test_every_surface_shows_safe(tmp_path: Path) -> None:
    """pickle-scan, scan, show, the `models` view, audit (exit code and SARIF) and the exhibit's report
    all say safe for valid files whose first bytes spell EXT4 and PROTO 2."""
    from click.testing import CliRunner

    from cli.main import root as cli_main
    from registry.evidence.exhibit import write_exhibit

    models = tmp_path / "models"
    models.mkdir()
    for name, n in (("ext4.safetensors", 0x3BC84), ("proto2.safetensors", 0x10280)):
        (models / name).write_bytes(safetensors_with_length(n, True, False))
    db = tmp_path / "r.duckdb"

    def run(*args: str) -> tuple[int, str]:
        r = CliRunner().invoke(cli_main, ["--db", str(db), *args], catch_exceptions=False)
        return r.exit_code, r.stdout

    code, out = run("pickle-scan", str(models), "--format", "json")
    assert code == 0
    assert {(Path(r["path"]).name, r["format"], r["verdict"]) for r in json.loads(out)} == {
        ("ext4.safetensors", "safetensors", "safe"), ("proto2.safetensors", "safetensors", "safe")}  # fmt: skip
    code, out = run("audit", str(models), "--format", "sarif")
    assert code == 0
    assert [r["ruleId"] for run_ in json.loads(out)["runs"] for r in run_["results"]] == []
    code, out = run("ls", "--format", "json")
    assert [(r["name"], r["format"], r["n_findings"], r["max_severity"]) for r in json.loads(out)] == [
        ("ext4.safetensors", "safetensors", 0, None), ("proto2.safetensors", "safetensors", 0, None)]  # fmt: skip
    code, out = run("show", "ext4.safetensors")
    assert code == 0 and re.search(r"Verdict +SAFE: safetensors: the length prefix, a 244,868-byte JSON header", out)
    code, out = run("query", "SELECT count(*) AS n FROM models WHERE security_verdict = 'safe'", "--format", "json")
    assert json.loads(out) == [{"n": 2}]
    with connect(db, read_only=True) as con:
        (sha,) = con.execute("SELECT sha256 FROM models WHERE path LIKE '%ext4%'").fetchone() or ("",)
        res = write_exhibit(con, sha, tmp_path / "exhibit", pdf=False)
    html = (res.folder / "report.html").read_text(encoding="utf-8")
    record = json.loads((res.folder / "record.json").read_text(encoding="utf-8"))
    assert record["sections"]["security"]["verdict"] == "safe"
    assert "Pickle security verdict" in html and "safe: safetensors: the length prefix" in html
    assert "dangerous" not in html.lower()
