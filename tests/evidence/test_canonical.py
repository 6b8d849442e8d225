from __future__ import annotations

import hashlib
import json
import math
import re
import socket
import zlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import blake3
import pytest

from registry.errors import NotFound
from registry.evidence.canonical import (
    build_record,
    canonical_bytes,
    jsonable,
    ns_to_iso,
    record_bytes,
    schema_errors,
    tensor_index_digest,
)
from registry.files.safetensors import read_header
from registry.store.db import connect
from registry.store.events import append_event
from tests.evidence.registry_fixture import make_registry


class FakeSection:
    """A record section honouring the ``registry.record.Section`` contract."""

    def __init__(self, name: str, order: int, value: Any, fail: bool = False) -> None:
        self.name, self.order, self._value, self._fail = name, order, value, fail

    def load(self, con: Any, sha256: str) -> Any:
        if self._fail:
            raise RuntimeError("table missing")
        return self._value

    def render(self, value: Any) -> list[str]:
        return [str(value)]


SECTIONS = [
    FakeSection("stats", 40, {"modules": [{"name": "m", "singular_values": [3.0, 1.5, float("nan")]}]}),
    FakeSection("identify", 20, {"kind": "lora", "architecture": "sd1"}),
    FakeSection("probe", 80, None),
    FakeSection("broken", 90, 1, fail=True),
]


def test_same_state_gives_identical_bytes(tmp_path: Path) -> None:
    fx = make_registry(tmp_path)
    with connect(fx.db, read_only=True) as con:
        a = record_bytes(build_record(con, fx.sha256, SECTIONS))
        b = record_bytes(build_record(con, fx.sha256, list(reversed(SECTIONS))))
    with connect(fx.db, read_only=True) as con:
        c = record_bytes(build_record(con, fx.sha256, SECTIONS))
    assert a == b == c
    # canonical: re-serialising the parsed bytes gives the same bytes, keys sorted, no whitespace
    assert canonical_bytes(json.loads(a)) == a
    assert a.decode() == json.dumps(json.loads(a), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def test_record_changes_with_state(tmp_path: Path) -> None:
    fx = make_registry(tmp_path)
    with connect(fx.db, read_only=True) as con:
        before = build_record(con, fx.sha256, [])
    with connect(fx.db) as con:
        append_event(con, "label.add", fx.sha256, {"label": "exhibit A"})
    with connect(fx.db, read_only=True) as con:
        after = build_record(con, fx.sha256, [])
    assert before["events"]["chain_length"] == 3 and after["events"]["chain_length"] == 4
    assert after["events"]["entries"][1]["payload"]["mtime_ns"] == "1714564800123456789"
    assert [e["action"] for e in after["events"]["entries"]] == ["blob.add", "sighting.add", "note.add", "label.add"]
    assert after["events"]["chain_head"]["seq"] == 4
    assert record_bytes(before) != record_bytes(after)


def test_record_content(tmp_path: Path) -> None:
    fx = make_registry(tmp_path)
    with connect(fx.db, read_only=True) as con:
        rec = build_record(con, fx.sha256, SECTIONS)
    assert schema_errors(rec) == []
    data = fx.model.read_bytes()
    m = rec["model"]
    assert m["sha256"] == fx.sha256 and m["size"] == len(data) and m["format"] == "safetensors"
    assert m["hashes"]["autov2"] == fx.sha256[:10]
    crc = f"{zlib.crc32(data):08x}"
    assert m["hashes"]["crc32"].lower() == crc
    assert m["hashes"]["crc32_civitai"] == (crc[6:8] + crc[4:6] + crc[2:4] + crc[0:2]).upper()
    assert m["hashes"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["hashes"]["blake3"] == blake3.blake3(data).hexdigest()
    assert m["prefixed"]["sha256"] == "sha256:" + fx.sha256
    (s,) = rec["sightings"]
    assert s["host"] == socket.gethostname() and s["path"] == str(fx.model)
    assert s["mtime_ns"] == "1714564800123456789"  # beyond 2**53: a string, exactly
    assert s["mtime"] == "2024-05-01T12:00:00.123456Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z", s["seen_at"])
    assert s["provenance"] == {"repo_id": "someone/some-lora", "revision": "0123abcd", "file": "some-lora.safetensors"}
    assert rec["metadata"]["verbatim"]["ss_network_dim"] == "4"
    t = rec["tensors"]
    assert t["count"] == 9 and t["dtypes"]["F16"]["tensors"] == 9
    assert t["parameters"] == 2 * 4 * (32 + 48 + 32) + 3  # down + up factors, three scalar alphas
    h = read_header(fx.model)
    assert t["index_sha256"] == tensor_index_digest((x.name, x.dtype, x.shape, x.begin, x.end) for x in h.tensors)
    (f,) = rec["findings"]
    assert f["rule_id"] == "training.hash-claim-mismatch" and f["evidence"] == {"claimed": "ab" * 32}
    assert list(rec["sections"]) == ["identify", "stats", "probe", "broken"]
    assert rec["sections"]["probe"] is None
    assert rec["sections"]["stats"]["modules"][0]["singular_values"] == [3.0, 1.5, "NaN"]
    assert rec["section_errors"] == {"broken": "RuntimeError: table missing"}
    assert rec["tool"]["name"] == "modelreg" and rec["environment"]["packages"]["rfc8785"]


def test_schema_rejects_a_bad_record(tmp_path: Path) -> None:
    fx = make_registry(tmp_path)
    with connect(fx.db, read_only=True) as con:
        rec = build_record(con, fx.sha256, [])
    rec["model"]["sha256"] = "XYZ"
    del rec["tensors"]
    errs = schema_errors(rec)
    assert ("$.model.sha256", "'XYZ' does not match '^[0-9a-f]{64}$'") in errs
    assert any(p == "$" and "'tensors' is a required property" in msg for p, msg in errs)


def test_unknown_model(tmp_path: Path) -> None:
    fx = make_registry(tmp_path)
    with connect(fx.db, read_only=True) as con, pytest.raises(NotFound):
        build_record(con, "0" * 64, [])


def test_jsonable_normalisation() -> None:
    tz = timezone(timedelta(hours=2))
    assert jsonable(datetime(2024, 1, 2, 3, 4, 5, tzinfo=tz)) == "2024-01-02T01:04:05Z"
    assert jsonable(datetime(2024, 1, 2, 3, 4, 5, 7)) == "2024-01-02T03:04:05.000007Z"
    assert jsonable(2**53 - 1) == 2**53 - 1 and jsonable(2**53) == "9007199254740992"
    assert jsonable(-(2**60)) == str(-(2**60))
    assert jsonable([math.inf, -math.inf, math.nan, 0.1]) == ["Infinity", "-Infinity", "NaN", 0.1]
    assert jsonable({1: b"\x00\xff", "s": {3, 1}}) == {"1": "00ff", "s": [1, 3]}
    assert ns_to_iso(0) == "1970-01-01T00:00:00Z"
    assert canonical_bytes({"b": 1, "a": [1e21, 0.5, "é"]}) == '{"a":[1e+21,0.5,"é"],"b":1}'.encode()
    with pytest.raises(TypeError):
        jsonable(object())
