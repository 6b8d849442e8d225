from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from registry.errors import SafetensorsError
from registry.files.safetensors import read_header
from tests.builders import CORPUS, raw_safetensors, safetensors_bytes


def write(tmp_path: Path, data: bytes, name: str = "m.safetensors") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def rules(h) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.rule_id for f in h.findings]


def test_valid_file_matches_reference_writer(tmp_path: Path) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    p = tmp_path / "ref.safetensors"
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, dtype=np.float16)}
    safetensors_numpy.save_file(arrays, str(p), metadata={"k": "v"})
    h = read_header(p)
    assert h.valid and h.findings == ()
    assert h.metadata == {"k": "v"}
    by = {t.name: t for t in h.tensors}
    assert by["a"].shape == (2, 3) and by["a"].dtype == "F32" and by["a"].nbytes == 24
    raw = p.read_bytes()
    np.testing.assert_array_equal(np.frombuffer(raw[by["a"].offset : by["a"].offset + 24], "<f4"), arrays["a"].ravel())


def test_our_builder_is_read_by_the_reference(tmp_path: Path) -> None:
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    p = write(tmp_path, safetensors_bytes({"x": np.arange(3, dtype=np.int64)}, {"m": "1"}))
    loaded = safetensors_numpy.load_file(str(p))
    np.testing.assert_array_equal(loaded["x"], np.arange(3))
    assert read_header(p).valid


@pytest.mark.parametrize("size", [0, 2, 7])
def test_too_short(tmp_path: Path, size: int) -> None:
    p = write(tmp_path, b"\x01" * size)
    with pytest.raises(SafetensorsError) as e:
        read_header(p)
    assert e.value.rule_id == "safetensors.too-short"
    assert f"file is {size} bytes long" in str(e.value)


def test_huge_header_length_costs_nothing(tmp_path: Path) -> None:
    p = write(tmp_path, struct.pack("<Q", 10**18) + b"{}")
    with pytest.raises(SafetensorsError) as e:
        read_header(p)
    assert e.value.rule_id == "safetensors.header-too-large"
    assert "1,000,000,000,000,000,000 bytes" in str(e.value)


def test_header_beyond_eof(tmp_path: Path) -> None:
    p = write(tmp_path, raw_safetensors(b'{"a":1}', header_len=5000))
    with pytest.raises(SafetensorsError) as e:
        read_header(p)
    assert e.value.rule_id == "safetensors.header-beyond-eof"
    assert str(e.value).startswith("header length field says 5,000 bytes but only 7 bytes follow it")


def test_not_utf8(tmp_path: Path) -> None:
    p = write(tmp_path, raw_safetensors(b'{"\xff":1}'))
    with pytest.raises(SafetensorsError) as e:
        read_header(p)
    assert e.value.rule_id == "safetensors.header-not-utf8"
    assert "header offset 2" in str(e.value)


@pytest.mark.parametrize("hdr", [b"{not json", b'{"a": NaN}', b""])
def test_not_json(tmp_path: Path, hdr: bytes) -> None:
    p = write(tmp_path, raw_safetensors(hdr))
    with pytest.raises(SafetensorsError) as e:
        read_header(p)
    assert e.value.rule_id == "safetensors.header-not-json"


def test_not_object(tmp_path: Path) -> None:
    p = write(tmp_path, raw_safetensors(b"[1, 2]"))
    with pytest.raises(SafetensorsError) as e:
        read_header(p)
    assert e.value.rule_id == "safetensors.header-not-object"
    assert str(e.value) == "header JSON is a list, not an object"


def test_truncated_names_tensor_and_bytes(tmp_path: Path) -> None:
    full = safetensors_bytes({"x": np.zeros(1000, dtype=np.float32)})
    p = write(tmp_path, full[:-1204])
    h = read_header(p)
    assert rules(h) == ["safetensors.truncated"]
    assert h.findings[0].message.startswith("file ends 1,204 bytes before tensor 'x' does")
    assert not h.valid


def test_trailing_bytes(tmp_path: Path) -> None:
    p = write(tmp_path, safetensors_bytes({"x": np.zeros(4, dtype=np.float32)}) + b"PK\x03\x04junk")
    h = read_header(p)
    assert rules(h) == ["safetensors.trailing-bytes"]
    assert h.findings[0].evidence["trailing"] == 8


def _manual(entries: dict, data: bytes) -> bytes:  # type: ignore[type-arg]
    return raw_safetensors(entries, data)


def test_gap_and_overlap(tmp_path: Path) -> None:
    gap = _manual(
        {"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]}},
        b"\0" * 6,
    )
    h = read_header(write(tmp_path, gap, "gap.safetensors"))
    assert rules(h) == ["safetensors.gap"]
    assert h.findings[0].message == "2 unused bytes after tensor 'a', before tensor 'b'"
    over = _manual(
        {"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "b": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]}},
        b"\0" * 4,
    )
    h = read_header(write(tmp_path, over, "over.safetensors"))
    assert rules(h) == ["safetensors.overlap"]
    assert h.findings[0].message == "tensor 'b' starts 2 bytes inside tensor 'a'"
    start_gap = _manual({"a": {"dtype": "U8", "shape": [2], "data_offsets": [3, 5]}}, b"\0" * 5)
    h = read_header(write(tmp_path, start_gap, "sg.safetensors"))
    assert h.findings[0].message == "3 unused bytes at the start of the data section, before tensor 'a'"


def test_unknown_dtype_size_mismatch_bad_entries(tmp_path: Path) -> None:
    doc = {
        "a": {"dtype": "F17", "shape": [1], "data_offsets": [0, 2]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [2, 6]},
        "c": {"dtype": "F32", "shape": [-1], "data_offsets": [6, 6]},
        "d": "nope",
        "e": {"dtype": "U8", "shape": [1]},
    }
    h = read_header(write(tmp_path, _manual(doc, b"\0" * 6)))
    assert rules(h) == [
        "safetensors.unknown-dtype",
        "safetensors.size-mismatch",
        "safetensors.bad-entry",
        "safetensors.bad-entry",
        "safetensors.bad-entry",
    ]
    assert h.findings[1].message == "tensor 'b' is F32 [2] = 8 bytes, but its data_offsets span 4"
    assert h.findings[4].message == "tensor 'e' lacks data_offsets"


def test_duplicate_keys_and_unknown_fields(tmp_path: Path) -> None:
    hdr = b'{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":1}}'
    h = read_header(write(tmp_path, raw_safetensors(hdr, b"\0")))
    assert sorted(rules(h)) == ["safetensors.duplicate-key", "safetensors.unknown-field"]
    assert len(h.tensors) == 1  # the last occurrence wins, as in the reference


def test_metadata_must_be_strings(tmp_path: Path) -> None:
    doc = {"__metadata__": {"ok": "1", "n": 5}, "x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}
    h = read_header(write(tmp_path, _manual(doc, b"\0")))
    assert rules(h) == ["safetensors.metadata-not-strings"]
    assert h.metadata == {"ok": "1", "n": "5"}
    assert h.raw_metadata == {"ok": "1", "n": 5}


def test_leading_whitespace_is_accepted_but_noted(tmp_path: Path) -> None:
    h = read_header(write(tmp_path, raw_safetensors(b'  {"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', b"\0")))
    assert h.valid and rules(h) == ["safetensors.leading-whitespace"]


def test_empty_header_is_valid(tmp_path: Path) -> None:
    h = read_header(write(tmp_path, raw_safetensors(b"{}")))
    assert h.valid and h.tensors == () and h.metadata is None


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus not present")
def test_corpus_conformance_samples_are_valid() -> None:
    samples = sorted((CORPUS / "safetensors-samples").glob("*.safetensors"))
    assert len(samples) == 10
    for p in samples:
        h = read_header(p)
        assert h.valid, (p, h.findings)
        assert h.metadata is not None and "test" in h.metadata
    overall = read_header(CORPUS / "safetensors-samples" / "overall.safetensors")
    assert len(overall.tensors) == 9
    assert json.loads(json.dumps(overall.metadata)) == overall.metadata


_ENTRIES = [
    {"dtype": "F16", "shape": [4, 8], "data_offsets": [0, 64]},
    {"dtype": "F16", "shape": [], "data_offsets": [10, 12]},
    {"dtype": "F16", "shape": [0, 3], "data_offsets": [5, 5]},
    {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]},  # 12 bits: not whole bytes
    {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]},
    {"dtype": "F16", "shape": [4, 8], "data_offsets": [0, 63]},  # size mismatch
    {"dtype": "F16", "shape": [4, True], "data_offsets": [0, 8]},
    {"dtype": "F16", "shape": [4, -1], "data_offsets": [0, 8]},
    {"dtype": "F16", "shape": [4.0], "data_offsets": [0, 8]},
    {"dtype": "F16", "shape": [4], "data_offsets": [8, 0]},
    {"dtype": "F16", "shape": [4], "data_offsets": [0, 8, 9]},
    {"dtype": "F16", "shape": [4], "data_offsets": [False, 8]},
    {"dtype": "F16", "shape": [4], "data_offsets": [-8, 0]},
    {"dtype": "F16", "shape": (4,), "data_offsets": [0, 8]},
    {"dtype": "X9", "shape": [4], "data_offsets": [0, 8]},
    {"dtype": None, "shape": [4], "data_offsets": [0, 8]},
    {"dtype": "F16", "shape": [4], "data_offsets": [0, 8], "extra": 1},
    {"dtype": "F16", "shape": [4]},
    {"dtype": "F16", "shape": [4], "offsets": [0, 8]},
    [1, 2, 3],
    "F16",
]


@pytest.mark.parametrize("entry", _ENTRIES, ids=[str(i) for i in range(len(_ENTRIES))])
def test_entry_fast_path_agrees_with_the_checked_path(entry: object) -> None:
    """The well-formed entry's shortcut gives what the step-by-step checks give (tensor and findings)."""
    from registry.files.safetensors import _parse_entry, _parse_entry_checked

    fast: list = []
    slow: list = []
    assert _parse_entry("t", entry, 100, fast) == _parse_entry_checked("t", entry, 100, slow)
    assert [(f.rule_id, f.message, f.evidence) for f in fast] == [(f.rule_id, f.message, f.evidence) for f in slow]
