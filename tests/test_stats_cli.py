"""The stats analyzer through a real scan, and its surface: show, show --modules, ls filters, diff, views."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import root
from registry.scan import scan
from registry.store.db import connect
from tests.builders import CORPUS, write_safetensors


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(root, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def orth(m: int, k: int, seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((m, k)))
    return q


SIG = [4.0, 2.0, 1.0, 0.5]
KEYS = [
    "lora_unet_down_blocks_1_attentions_0_proj_in",
    "lora_unet_up_blocks_0_attentions_1_proj_out",
    "lora_te1_text_model_encoder_layers_3_self_attn_q_proj",
]


def lora_file(path: Path, scale_up: float = 1.0) -> Path:
    t: dict[str, np.ndarray | tuple[str, list[int], bytes]] = {}
    for i, k in enumerate(KEYS):
        t[k + ".lora_up.weight"] = orth(64, 4, i) * np.array(SIG) * scale_up  # F64: exact
        t[k + ".lora_down.weight"] = orth(32, 4, 10 + i).T
        t[k + ".alpha"] = ("F16", [], np.array(2.0, "<f2").tobytes())
    return write_safetensors(path, t, {"ss_network_dim": "4"})


def checkpoints(root_dir: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    base = {
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": rng.standard_normal((64, 64)).astype(np.float32),
        "model.diffusion_model.middle_block.1.proj_out.weight": rng.standard_normal((64, 64)).astype(np.float32),
        "first_stage_model.decoder.conv_in.weight": rng.standard_normal((8, 4, 3, 3)).astype(np.float16),
    }
    tuned = dict(base)
    tuned["model.diffusion_model.middle_block.1.proj_out.weight"] = base["model.diffusion_model.middle_block.1.proj_out.weight"] * np.float32(1.25)
    broken = dict(base)
    x = base["first_stage_model.decoder.conv_in.weight"].copy()
    x.flat[3] = np.nan
    broken["first_stage_model.decoder.conv_in.weight"] = x
    return {
        "base": write_safetensors(root_dir / "base.safetensors", base),
        "tuned": write_safetensors(root_dir / "tuned.safetensors", tuned),
        "broken": write_safetensors(root_dir / "broken.safetensors", broken),
    }


@pytest.fixture
def scanned(tmp_path: Path, db: Path) -> dict[str, Path]:
    files = checkpoints(tmp_path / "m")
    files["lora"] = lora_file(tmp_path / "m" / "tiny_lora.safetensors")
    files["big"] = lora_file(tmp_path / "m" / "big_lora.safetensors", scale_up=10.0)
    scan([tmp_path / "m"], db)
    return files


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_scan_writes_module_rows_summary_and_profile(scanned: dict[str, Path], db: Path) -> None:
    s = sha(scanned["lora"])
    with connect(db, read_only=True) as con:
        rows = con.execute(
            "SELECT module, form, component, block, rank, alpha, scale, fro, spectral, rank90, rank99, sv, method, dtype "
            "FROM model_lora_modules WHERE blob_sha256 = ? ORDER BY module", [s]
        ).fetchall()
        assert [r[:7] for r in rows] == [
            (KEYS[2], "lora", "te1", "layer.3", 4, 2.0, 0.5),
            (KEYS[0], "lora", "unet", "down.1", 4, 2.0, 0.5),
            (KEYS[1], "lora", "unet", "up.0", 4, 2.0, 0.5),
        ]
        for r in rows:
            assert r[7] == pytest.approx(0.5 * math.sqrt(21.25), rel=1e-12)
            assert r[8] == pytest.approx(2.0, rel=1e-12)
            np.testing.assert_allclose(r[11], [2.0, 1.0, 0.5, 0.25], rtol=1e-12)
            assert (r[9], r[10], r[12], r[13]) == (2, 3, "factored", "F16,F64")
        summ = con.execute("SELECT n_modules, total_fro, sum_rank, ranks, alphas, forms FROM lora_summary WHERE blob_sha256 = ?", [s]).fetchone()
        assert summ is not None
        assert summ[0] == 3 and summ[1] == pytest.approx(0.5 * math.sqrt(3 * 21.25), rel=1e-12)
        assert (summ[2], summ[3], summ[4], json.loads(summ[5])) == (12, [4], [2.0], {"lora": 3})
        prof = con.execute("SELECT component, block, n_modules, energy_share FROM lora_profile WHERE blob_sha256 = ? ORDER BY 1, 2", [s]).fetchall()
        assert [(c, b, n) for c, b, n, _ in prof] == [("te1", "(all)", 1), ("te1", "layer.3", 1), ("unet", "(all)", 2), ("unet", "down.1", 1), ("unet", "up.0", 1)]
        assert prof[2][3] == pytest.approx(2 / 3, rel=1e-12)
        # checkpoints got tensor statistics instead, and no module rows
        c = sha(scanned["base"])
        assert con.execute("SELECT count(*) FROM lora_modules WHERE blob_sha256 = ?", [c]).fetchone() == (0,)
        ts = con.execute("SELECT tensor, numel, digest LIKE 'blake3:%', component, block FROM tensor_stats WHERE blob_sha256 = ? ORDER BY tensor", [c]).fetchall()
        assert ts == [
            ("first_stage_model.decoder.conv_in.weight", 288, True, "vae", None),
            ("model.diffusion_model.input_blocks.1.1.proj_in.weight", 4096, True, "unet", "input.1"),
            ("model.diffusion_model.middle_block.1.proj_out.weight", 4096, True, "unet", "middle"),
        ]
        kinds = dict(con.execute("SELECT sha256, kind FROM model_weight_stats").fetchall())
        assert kinds[s] == "adapter" and kinds[c] == "checkpoint" and len(kinds) == 5
        f = con.execute("SELECT rule_id, severity FROM findings WHERE blob_sha256 = ?", [sha(scanned["broken"])]).fetchall()
        assert f == [("stats.nonfinite-tensor", "high")]


def test_rehash_replaces_stats_rows(scanned: dict[str, Path], db: Path, tmp_path: Path) -> None:
    scan([tmp_path / "m"], db, rehash=True)
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM lora_modules").fetchone() == (6,)
        assert con.execute("SELECT count(*) FROM lora_summary").fetchone() == (2,)
        assert con.execute("SELECT count(*) FROM tensor_stats").fetchone() == (9,)


def test_show_summarises_and_lists_modules(scanned: dict[str, Path]) -> None:
    code, out, _ = run("show", "tiny_lora.safetensors")
    assert code == 0
    assert "Weights\n  Kind                   adapter, 3 modules (lora 3; kohya)\n" in out
    assert "  Stated rank / alpha    4 / 2 (per module, as the file states them)\n" in out
    assert "  Reachable rank         per module 4 (all 3): LoRA min(r, out, in)\n" in out
    assert "  Rank for 90% / 99%     per module 2 / 3 (all 3) (kohya sv_fro: smallest k keeping 90% / 99% of ‖ΔW‖_F)\n" in out
    assert "    totals               6 / 9 of 12 reachable, summed over 3 modules\n" in out
    assert "  Exactness              every figure exact (float64 singular values of each module's update)\n" in out
    assert "  Where it acts          te1 33.3%, unet 66.7%\n" in out
    assert "Modules (" not in out
    code, out, _ = run("show", "tiny_lora.safetensors", "--modules")
    assert "Modules (3)\nMODULE " in out
    (line,) = [ln for ln in out.splitlines() if ln.startswith(KEYS[0])]
    assert line.split() == [KEYS[0], "lora", "unet", "down.1", "4", "4", "0.5", "2.305", "2", "2.063", "2", "3"]
    code, out, _ = run("show", "tiny_lora.safetensors", "--modules", "--format", "json")
    rec = json.loads(out)
    w = rec["stats"]
    assert w["kind"] == "adapter" and w["n_modules"] == 3
    assert [(p["component"], p["block"]) for p in w["by_component"]] == [("te1", "(all)"), ("unet", "(all)")]
    assert sorted(p["block"] for p in w["profile"]) == ["down.1", "layer.3", "up.0"]
    assert len(w["top_modules"]) == 3 and w["top_modules"][0]["sv"] == pytest.approx([2.0, 1.0, 0.5, 0.25], rel=1e-12)
    assert [m["module"] for m in rec["modules"]] == sorted(KEYS)
    assert rec["modules"][0]["sv"] == pytest.approx([2.0, 1.0, 0.5, 0.25], rel=1e-12)
    code, out, _ = run("show", "broken.safetensors", "--section", "stats")
    assert "  NaN / Inf" in out and "1 tensors (1 NaN, 0 Inf): first_stage_model.decoder.conv_in.weight" in out


def test_ls_filters_on_stats(scanned: dict[str, Path]) -> None:
    def names(*args: str) -> list[str]:
        code, out, _ = run("ls", "--format", "json", *args)
        assert code == 0
        return [r["name"] for r in json.loads(out)]

    assert names("--min-norm", "10") == ["big_lora.safetensors"]
    assert names("--max-norm", "10") == ["tiny_lora.safetensors"]
    assert names("--min-eff-rank", "2", "--max-eff-rank", "2.1") == ["big_lora.safetensors", "tiny_lora.safetensors"]
    assert names("--min-eff-rank", "3") == []
    assert names("--form", "lora") == ["big_lora.safetensors", "tiny_lora.safetensors"]
    assert names("--form", "loha") == []
    assert names("--nonfinite") == ["broken.safetensors"]


def test_diff_command(scanned: dict[str, Path]) -> None:
    code, out, _ = run("diff", "base.safetensors", "tuned.safetensors", "--format", "json")
    assert code == 0
    rep = json.loads(out)
    assert rep["summary"]["status"] == {"changed": 1, "identical": 2}
    assert rep["summary"]["identical_by_digest"] == 2
    assert rep["summary"]["bytes_read"] == 2 * 64 * 64 * 4
    by = {t["tensor"]: t for t in rep["tensors"]}
    assert by["model.diffusion_model.middle_block.1.proj_out.weight"]["rel_change"] == pytest.approx(0.25, rel=1e-6)
    assert rep["by_block"][0]["block"] == "middle"
    code, out, _ = run("diff", "base.safetensors", "tuned.safetensors")
    assert "tensors: 3 (1 changed, 2 identical); 2 identical by digest" in out
    assert "Most changed tensors" in out and "model.diffusion_model.middle_block.1.proj_out.weight  changed  0.25" in out


def test_diff_without_the_files_uses_digests(scanned: dict[str, Path]) -> None:
    scanned["tuned"].unlink()
    code, out, _ = run("diff", "base.safetensors", sha(scanned["broken"]), "--format", "json")
    rep = json.loads(out)
    by = {t["tensor"]: t for t in rep["tensors"]}
    assert by["first_stage_model.decoder.conv_in.weight"]["status"] == "changed"
    assert by["model.diffusion_model.input_blocks.1.1.proj_in.weight"]["how"] == "digest"


LORA_DIFFUSION = CORPUS / "loras" / "analog_svd_rank4.safetensors"
SD15_HEADER = CORPUS / "headers" / "sd15-kohya.json"


@pytest.mark.skipif(not LORA_DIFFUSION.exists(), reason="shared corpus not present")
def test_real_lora_diffusion_file(tmp_path: Path, db: Path) -> None:
    scan([LORA_DIFFUSION], db)
    from registry.files.dtypes import decode
    from registry.files.safetensors import read_header

    h = read_header(LORA_DIFFUSION)
    raw = LORA_DIFFUSION.read_bytes()
    t = {x.name: decode(raw[x.offset : x.offset + x.nbytes], x.dtype, x.shape).astype(np.float64) for x in h.tensors}
    with connect(db, read_only=True) as con:
        s = con.execute("SELECT n_modules, forms, conventions, components, ranks FROM lora_summary").fetchone()
        assert s is not None
        assert (s[0], json.loads(s[1]), json.loads(s[2]), json.loads(s[3]), s[4]) == (
            192, {"lora": 192}, {"lora_diffusion": 192}, {"te1": 48, "unet": 144}, [4]
        )
        rows = con.execute("SELECT module, scale, sv FROM lora_modules WHERE module IN ('unet:0', 'text_encoder:5')").fetchall()
    assert len(rows) == 2
    for module, scale, sv in rows:
        dense = np.linalg.svd(t[f"{module}:up"] @ t[f"{module}:down"], compute_uv=False)[:4]
        assert scale == 1.0
        np.testing.assert_allclose(sv, dense, rtol=1e-9)


@pytest.mark.skipif(not SD15_HEADER.exists(), reason="shared corpus not present")
def test_real_sd15_header_with_random_factors(tmp_path: Path, db: Path) -> None:
    from tests.builders import header_json_to_file

    p = header_json_to_file(SD15_HEADER, tmp_path / "sd15.safetensors", fill="random")
    scan([p], db)
    with connect(db, read_only=True) as con:
        n, comps, ranks, failed = con.execute(
            "SELECT n_modules, components, ranks, failed_modules + nonfinite_modules FROM lora_summary"
        ).fetchone()  # type: ignore[misc]
        assert (n, json.loads(comps), ranks, failed) == (264, {"te1": 72, "unet": 192}, [32], 0)
        blocks = dict(con.execute("SELECT block, n_modules FROM lora_profile WHERE component = 'unet' AND block <> '(all)'").fetchall())
        assert blocks == {"down.0": 24, "down.1": 24, "down.2": 24, "mid": 12, "up.1": 36, "up.2": 36, "up.3": 36}


def test_sketched_loha_shows_its_bounds(tmp_path: Path, db: Path) -> None:
    """A LoHa with one module too dear for an exact spectrum: the scan records it as sketched, show says
    which figures are exact and gives its ranks as intervals, show --modules prints them."""
    g = np.random.default_rng(8)
    t: dict[str, np.ndarray | tuple[str, list[int], bytes]] = {}
    for key, (o, i, r) in {"lora_unet_mid_block_attentions_0_proj_in": (420, 380, 16),
                           "lora_te1_text_model_encoder_layers_0_mlp_fc1": (24, 20, 4)}.items():
        t[f"{key}.hada_w1_a"], t[f"{key}.hada_w1_b"] = g.standard_normal((o, r)), g.standard_normal((r, i))
        t[f"{key}.hada_w2_a"], t[f"{key}.hada_w2_b"] = g.standard_normal((o, r)), g.standard_normal((r, i))
    write_safetensors(tmp_path / "m" / "loha.safetensors", t)
    scan([tmp_path / "m"], db)
    code, out, _ = run("show", "loha.safetensors")
    assert code == 0
    assert ("  Exactness              1 of 2 modules exact; 1 sketched: Frobenius norm exact, leading singular "
            "values are lower bounds; σ1 within +") in out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("    sketched modules")]
    assert "rank for 90% between" in line and "certain lower and upper bounds" in line
    code, out, _ = run("show", "loha.safetensors", "--modules", "--format", "json")
    mods = {m["module"]: m for m in json.loads(out)["modules"]}
    sk = mods["lora_unet_mid_block_attentions_0_proj_in"]
    assert (sk["method"], sk["exact"], sk["rank90"]) == ("sketched", False, None)
    lo, hi = sk["extra"]["sketch"]["rank90"]
    assert 1 <= lo < hi <= sk["max_rank"] == 256
    assert mods["lora_te1_text_model_encoder_layers_0_mlp_fc1"]["exact"] is True
    code, out, _ = run("show", "loha.safetensors", "--modules")
    (row,) = [ln for ln in out.splitlines() if ln.startswith("lora_unet_mid_block")]
    assert f"{lo}–{hi}" in row.split()
