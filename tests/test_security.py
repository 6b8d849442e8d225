"""The pickles analyzer in the scan: rows, findings, tensors for later analyzers, views, `show`."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from registry.analysis import FileContext
from registry.analyzers import pickles as analyzer
from registry.scan import scan
from registry.store.db import connect
from tests.builders import write_safetensors
from tests.pickle_builders import CORPUS_DIR, P, ZipEntry, legacy_torch_bytes, torch_zip_bytes, zip_bytes

ARRAYS = {
    "model.diffusion_model.out.2.weight": np.arange(32, dtype=np.float16).reshape(4, 8),
    "model.diffusion_model.out.2.bias": np.linspace(-1, 1, 4).astype(np.float32),
}
EVIL = P(2).call("posix", "system", "echo pwned").stop()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "r.duckdb"


def _ctx(path: Path, fmt: str) -> FileContext:
    return FileContext(path, path.stat().st_size, fmt, {})


@pytest.mark.parametrize("kind", ["zip", "legacy"])
def test_tensors_reach_later_analyzers_with_their_bytes(tmp_path: Path, kind: str) -> None:
    p = tmp_path / "m.ckpt"
    if kind == "zip":
        p.write_bytes(torch_zip_bytes(ARRAYS, wrap="state_dict"))
        fmt = "pytorch-zip"
    else:
        p.write_bytes(legacy_torch_bytes(ARRAYS))
        fmt = "pytorch-legacy"
    ctx = _ctx(p, fmt)
    try:
        analyzer.run(ctx)
        assert ctx.facts["handled"] is True and ctx.facts["pickle_verdict"] == "safe"
        assert [t.name for t in ctx.tensors] == list(ARRAYS)
        np_dt = {"F16": np.float16, "F32": np.float32}
        for t in ctx.tensors:
            got = np.frombuffer(ctx.raw(t), dtype=np_dt[t.dtype]).reshape(t.shape)
            assert np.array_equal(got, ARRAYS[t.name])
        c = ctx.facts["container"]
        assert c["format"] == fmt and c["tensors"] == 2 and c["tensors_readable"] == 2
        assert c["state_dict_key"] == ("state_dict" if kind == "zip" else None)
        (row,) = ctx.rows["pickle_scans"]
        assert (row["verdict"], row["verdict_rank"], row["tensors_recovered"]) == ("safe", 0, 2)
        assert {g["qualname"] if "qualname" in g else f"{g['module']}.{g['name']}" for g in json.loads(row["globals"])} == {
            "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.HalfStorage", "torch.FloatStorage"}  # fmt: skip
        assert ctx.findings == []
    finally:
        ctx.close()


def test_scalars_become_metadata(tmp_path: Path) -> None:
    p = tmp_path / "m.ckpt"
    from tests.pickle_builders import state_dict_from_arrays, state_dict_pickle

    refs, st = state_dict_from_arrays(ARRAYS)
    pkl = state_dict_pickle(refs, st, wrap="state_dict", extra=[("epoch", 6), ("global_step", 470000)])
    p.write_bytes(torch_zip_bytes(refs=refs, storages=st, data_pkl=pkl))
    ctx = _ctx(p, "pytorch-zip")
    analyzer.run(ctx)
    ctx.close()
    assert ctx.metadata == {"epoch": "6", "global_step": "470000"}


def test_dangerous_file_gets_no_tensors_and_a_critical_finding(tmp_path: Path) -> None:
    p = tmp_path / "m.pt"
    p.write_bytes(torch_zip_bytes(ARRAYS, data_pkl=EVIL))
    ctx = _ctx(p, "pytorch-zip")
    analyzer.run(ctx)
    ctx.close()
    assert ctx.tensors == [] and "container" not in ctx.facts
    assert [(f.rule_id, f.severity.label) for f in ctx.findings] == [("pickle.dangerous-global", "critical")]
    (g,) = ctx.rows["pickle_globals"]
    assert (g["module"], g["name"], g["safety"], g["member"], g["opcode"]) == ("posix", "system", "dangerous", "archive/data.pkl", "GLOBAL")


def test_pickle_with_trailing_bytes_under_another_name(tmp_path: Path) -> None:
    p = tmp_path / "weird.gguf"
    p.write_bytes(EVIL + b"GGUF" + b"\x00" * 64)
    ctx = _ctx(p, "pickle")
    analyzer.run(ctx)
    ctx.close()
    assert ctx.facts["pickle_verdict"] == "dangerous"
    assert {f.rule_id for f in ctx.findings} == {"pickle.dangerous-global", "sniff.extension-mismatch", "pickle.trailing-data"}


def test_broken_pickle_that_sniffs_as_unknown_is_still_caught(tmp_path: Path) -> None:
    from registry.files.sniff import sniff

    p = tmp_path / "model.bin"
    p.write_bytes(b"cposix\nsystem\n(S'id'\ntR\xff\xfe not a pickle any more" + bytes(200))
    fmt = sniff(p)
    assert fmt == "unknown"
    ctx = _ctx(p, fmt)
    analyzer.run(ctx)
    ctx.close()
    assert ctx.facts["pickle_verdict"] == "dangerous" and "handled" not in ctx.facts
    rules = {f.rule_id for f in ctx.findings}
    assert {"pickle.dangerous-global", "pickle.evasion", "pickle.unscannable"} <= rules


def test_safetensors_files_get_a_safe_row_and_no_finding(tmp_path: Path) -> None:
    p = write_safetensors(tmp_path / "ok.safetensors", {"w": np.zeros(3, np.float32)})
    ctx = _ctx(p, "safetensors")
    analyzer.run(ctx)
    ctx.close()
    assert ctx.findings == [] and "handled" not in ctx.facts and "pickle_globals" not in ctx.rows
    (row,) = ctx.rows["pickle_scans"]
    n = int.from_bytes(p.read_bytes()[:8], "little")
    assert (row["verdict"], row["format"], row["evasions"], row["unscannable"]) == ("safe", "safetensors", [], [])
    assert row["reason"] == (
        f"safetensors: the length prefix, a {n:,}-byte JSON header and 1 tensor(s) that loaders read as data"
    )
    assert json.loads(row["container"]) == {"kind": "safetensors", "header_len": n, "tensors": 1, "unaccounted_bytes": 0}


def test_scan_records_views_and_show(tmp_path: Path, db: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "good.ckpt").write_bytes(torch_zip_bytes(ARRAYS, wrap="state_dict"))
    (root / "evil.safetensors").write_bytes(EVIL)
    (root / "jit.pt").write_bytes(zip_bytes([
        ZipEntry("archive/data.pkl", P(2).glob("__torch__", "M").tuple_n(0).newobj().stop()),
        ZipEntry("archive/code/__torch__.py", b"def forward(self):\n  return None\n"),
        ZipEntry("archive/constants.pkl", P(2).tuple_n(0).stop()),
    ]))  # fmt: skip
    s = scan([root], db)
    rules = {(Path(p).name, r) for r, _sev, p, _m in s.finding_list}
    assert ("evil.safetensors", "pickle.dangerous-global") in rules
    assert ("evil.safetensors", "sniff.extension-mismatch") in rules
    assert ("jit.pt", "pickle.torchscript") in rules
    assert not any(r.startswith("format.unsupported") for _n, r in rules)
    with connect(db, read_only=True) as con:
        rows = con.execute(
            "SELECT regexp_extract(path, '[^/]+$'), format, verdict, n_dangerous, tensors_recovered "
            "FROM model_security ORDER BY 1"
        ).fetchall()
        fmts = dict(con.execute("SELECT regexp_extract(path, '[^/]+$'), format FROM models").fetchall())
        imports = con.execute(
            "SELECT qualname, safety, first_offset FROM model_imports WHERE safety = 'dangerous'"
        ).fetchall()
        tensors = con.execute(
            "SELECT name, dtype, shape, file_offset, nbytes FROM tensors t JOIN models m ON m.sha256 = t.blob_sha256 "
            "WHERE m.path LIKE '%good.ckpt' ORDER BY idx"
        ).fetchall()
    assert rows == [
        ("evil.safetensors", "pickle", "dangerous", 1, None),
        ("good.ckpt", "pytorch-zip", "safe", 0, 2),
        ("jit.pt", "torchscript", "suspicious", 0, None),
    ]
    assert fmts["jit.pt"] == "torchscript"
    assert imports == [("posix.system", "dangerous", 2)]
    raw = (root / "good.ckpt").read_bytes()
    for (_name, dtype, shape, off, n), arr in zip(tensors, ARRAYS.values(), strict=True):
        assert (dtype, shape, n) == ({np.float16: "F16", np.float32: "F32"}[arr.dtype.type], list(arr.shape), arr.nbytes)
        assert raw[off : off + n] == arr.tobytes()

    from cli.main import root as cli_main

    res = CliRunner().invoke(cli_main, ["--db", str(db), "show", "evil.safetensors"])
    assert res.exit_code == 0, res.output
    assert "Security" in res.output
    assert "DANGEROUS: imports posix.system at byte 2 of the file" in res.output
    assert re.search(r"Decided by +posix\.system: GLOBAL at byte 2 of the file; module 'posix' is blocked", res.output)
    res = CliRunner().invoke(cli_main, ["--db", str(db), "show", "good.ckpt", "--format", "json"])
    doc = json.loads(res.output)
    assert doc["security"]["verdict"] == "safe" and doc["security"]["tensors_recovered"] == 2
    assert doc["security"]["state_dict_key"] == "state_dict"


@pytest.mark.skipif(CORPUS_DIR is None, reason="shared corpus not present")
def test_corpus_scan(tmp_path: Path, db: Path) -> None:
    assert CORPUS_DIR is not None
    files = [CORPUS_DIR / "pickles/unsafe_zip_pytorch.pt", CORPUS_DIR / "pickles/password_protected.zip",
             CORPUS_DIR / "loras/lora_illust.pt", CORPUS_DIR / "models/taef2_encoder.pth"]  # fmt: skip
    s = scan(files, db)
    sev = {(Path(p).name, r, v) for r, v, p, _m in s.finding_list}
    assert ("unsafe_zip_pytorch.pt", "pickle.dangerous-global", "critical") in sev
    assert ("password_protected.zip", "pickle.unscannable", "high") in sev
    with connect(db, read_only=True) as con:
        got = dict(con.execute("SELECT regexp_extract(path, '[^/]+$'), verdict FROM model_security").fetchall())
        n = dict(con.execute("SELECT regexp_extract(path, '[^/]+$'), n_tensors FROM models").fetchall())
    assert got == {"unsafe_zip_pytorch.pt": "dangerous", "password_protected.zip": "unscannable",
                   "lora_illust.pt": "safe", "taef2_encoder.pth": "safe"}  # fmt: skip
    assert n["lora_illust.pt"] == 256 and n["taef2_encoder.pth"] == 79
    assert os.path.exists(CORPUS_DIR / "pickles/unsafe_zip_pytorch.pt")


def test_pickle_scan_command(tmp_path: Path) -> None:
    from cli.main import root as cli_main

    (tmp_path / "good.pt").write_bytes(torch_zip_bytes(ARRAYS))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "evil.safetensors").write_bytes(EVIL)
    res = CliRunner().invoke(cli_main, ["pickle-scan", str(tmp_path), "--format", "json"])
    assert res.exit_code == 1
    rows = {Path(r["path"]).name: r for r in json.loads(res.output)}
    assert rows["good.pt"]["verdict"] == "safe" and rows["good.pt"]["format"] == "pytorch-zip"
    assert rows["evil.safetensors"]["verdict"] == "dangerous"
    assert rows["evil.safetensors"]["decided_by"] == "posix.system"
    res = CliRunner().invoke(cli_main, ["pickle-scan", str(tmp_path / "good.pt")])
    assert res.exit_code == 0 and res.output.splitlines()[1].startswith("safe ")
    res = CliRunner().invoke(cli_main, ["pickle-scan", "--globals", "--format", "csv", str(tmp_path / "sub")])
    assert res.output.splitlines()[1].startswith("dangerous,pickle,") and ",posix.system," in res.output


def test_pt_lora_gets_the_same_identification_and_statistics_as_safetensors(tmp_path: Path, db: Path) -> None:
    rng = np.random.default_rng(1)
    arrays: dict[str, np.ndarray] = {}
    for i, proj in enumerate(["to_q", "to_k", "to_v"]):
        base = f"lora_unet_down_blocks_0_attentions_{i % 2}_transformer_blocks_0_attn1_{proj}"
        arrays[f"{base}.lora_down.weight"] = (rng.standard_normal((4, 320)) * 0.1).astype(np.float16)
        arrays[f"{base}.lora_up.weight"] = (rng.standard_normal((320, 4)) * 0.01).astype(np.float16)
        arrays[f"{base}.alpha"] = np.array(4.0, dtype=np.float32)
    root = tmp_path / "loras"
    write_safetensors(root / "a.safetensors", arrays)
    (root / "b.pt").write_bytes(torch_zip_bytes(arrays))
    (root / "c.ckpt").write_bytes(legacy_torch_bytes(arrays))
    scan([root], db)
    with connect(db, read_only=True) as con:
        ident = con.execute(
            "SELECT regexp_extract(path, '[^/]+$'), format, n_tensors, kind, adapter_type FROM models ORDER BY 1"
        ).fetchall()
        stats = con.execute(
            "SELECT regexp_extract(m.path, '[^/]+$'), s.n_modules, s.ranks, round(s.total_fro, 9) "
            "FROM lora_summary s JOIN models m ON m.sha256 = s.blob_sha256 ORDER BY 1"
        ).fetchall()
    assert [r[1:3] for r in ident] == [("safetensors", 9), ("pytorch-zip", 9), ("pytorch-legacy", 9)]
    assert len({r[3:] for r in ident}) == 1 and ident[0][3] is not None
    assert len(stats) == 3 and stats[0][1:] == stats[1][1:] == stats[2][1:] and stats[0][1] == 3
