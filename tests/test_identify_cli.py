"""Identification and training facts through the scan, the registry views, `show` and `ls`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
from click.testing import CliRunner

from cli.main import root
from tests import archspecs as A


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(root, list(args), catch_exceptions=False)
    return r.exit_code, r.stdout, r.stderr


def _base(path: Path) -> Path:
    s = {
        "model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [320, 768],
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_v.weight": [320, 768],
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": [320, 320, 1, 1],
    }
    s |= A.weight_tensors(A.clip_modules(768, 1), "cond_stage_model.transformer.")
    return A.write_tensors(path, s, seed=1)


def _autov1(p: Path) -> str:
    with p.open("rb") as fh:
        fh.seek(0x100000)
        return hashlib.sha256(fh.read(0x10000)).hexdigest()[:8]


def _models(tmp_path: Path) -> dict[str, Path]:
    m = tmp_path / "models"
    base = _base(m / "v1-5-pruned.safetensors")
    sha = hashlib.sha256(base.read_bytes()).hexdigest()
    sd1 = A.lora_tensors(A.unet_modules("sd1"), prefix="lora_unet_") | A.lora_tensors(A.clip_modules(768, 12), prefix="lora_te_")
    by_sha = A.write_tensors(m / "ohwx.safetensors", sd1, {
        "ss_session_id": "12345", "ss_sd_model_name": "v1-5-pruned.safetensors", "ss_new_sd_model_hash": sha.upper(),
        "ss_base_model_version": "sd_v1", "ss_network_module": "networks.lora", "ss_network_dim": "1",
        "ss_network_alpha": "1", "ss_num_train_images": "250",
        "ss_dataset_dirs": '{"10_ohwx woman": {"n_repeats": 10, "img_count": 25}}',
        "ss_tag_frequency": '{"10_ohwx woman": {"ohwx woman": 25, "1girl": 25, "smile": 7}}',
        "sshs_legacy_hash": "e3b0c442",
    })  # fmt: skip
    loha = A.lycoris_tensors([x for x in A.unet_modules("sd1") if ".attn2." in x[0]], "loha")
    by_v1 = A.write_tensors(m / "style_loha.safetensors", loha, {
        "ss_sd_model_hash": _autov1(base), "modelspec.trigger_phrase": "zkz style",
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
    })  # fmt: skip
    flux = A.lora_tensors(A.flux_modules("bfl"), prefix="lora_unet_")
    fl = A.write_tensors(m / "flux.safetensors", flux, {"ss_base_model_version": "sd_1.5"})
    emb = A.write_tensors(m / "emb.safetensors", {"emb_params": [2, 768]}, dtype="F32")
    return {"base": base, "ohwx": by_sha, "loha": by_v1, "flux": fl, "emb": emb}


def test_scan_fills_identity_training_and_hash_checks(tmp_path: Path, db: Path) -> None:
    f = _models(tmp_path)
    code, out, _ = run("scan", str(tmp_path / "models"))
    assert code == 0
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT regexp_extract(m.path, '[^/]*$'), i.kind, i.adapter_type, i.arch, i.confidence, i.source "
            "FROM model_identity i JOIN models m USING (sha256) ORDER BY 1"
        ).fetchall()
        assert rows == [
            ("emb.safetensors", "embedding", None, "sd1", "high", "shapes"),
            ("flux.safetensors", "lora", "kohya-lora", "flux1", "high", "shapes"),
            ("ohwx.safetensors", "lora", "kohya-lora", "sd1", "high", "shapes"),
            ("style_loha.safetensors", "lycoris", "loha", "sd1", "high", "shapes"),
            ("v1-5-pruned.safetensors", "checkpoint", None, "sd1", "high", "shapes"),
        ]
        checks = con.execute("SELECT claim_key, outcome FROM model_hash_checks ORDER BY 1").fetchall()
        assert checks == [("sshs_legacy_hash", "placeholder")]
        t = con.execute(
            "SELECT trainer, network_dim, distinct_images, trigger_words, base_sha256 FROM model_training "
            "WHERE base_sha256 IS NOT NULL"
        ).fetchall()
        sha_base = hashlib.sha256(f["base"].read_bytes()).hexdigest()
        assert t == [("kohya-ss/sd-scripts", 1, 25, ["ohwx woman"], sha_base)]
        links = con.execute(
            "SELECT regexp_extract(m.path, '[^/]*$'), l.matched_on FROM base_links l JOIN models m ON m.sha256 = l.adapter_sha256 ORDER BY 1"
        ).fetchall()
        assert links == [("ohwx.safetensors", "sha256"), ("style_loha.safetensors", "autov1")]
        rules = con.execute(
            "SELECT rule_id FROM findings WHERE rule_id LIKE 'identify.%' OR rule_id LIKE 'training.%' ORDER BY 1"
        ).fetchall()
        assert [r[0] for r in rules] == [
            "identify.metadata-arch-mismatch",  # flux labelled sd_1.5
            "identify.metadata-arch-mismatch",  # SD1 LoHa labelled SDXL
            "training.hash-claim-placeholder",
        ]


def test_show_presents_identity_and_training(tmp_path: Path, db: Path) -> None:
    f = _models(tmp_path)
    run("scan", str(tmp_path / "models"))
    code, out, _ = run("show", "ohwx.safetensors")
    assert code == 0
    assert "  Kind           LoRA — kohya-lora, kohya keys\n" in out
    assert "  Architecture   Stable Diffusion 1.x [sd1] — high confidence, from tensor shapes\n" in out
    assert "UNet cross-attention context width 768: SD1.x (CLIP-L context)  [lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight [1, 768]]" in out  # fmt: skip
    assert "  Metadata says  ss_base_model_version = 'sd_v1' (sd1; agrees)\n" in out
    assert "  Trigger words  ohwx woman (named by the file: name of training folder 10_ohwx woman)\n" in out
    sha_base = hashlib.sha256(f["base"].read_bytes()).hexdigest()
    assert f"  Linked base    {sha_base[:12]} {f['base']} (matched on sha256 {sha_base})\n" in out
    assert "  Hash claims    sshs_legacy_hash e3b0c442: PLACEHOLDER — the sha256 of empty input, not a hash of this file\n" in out
    code, out, _ = run("show", "flux.safetensors")
    assert "  Metadata says  ss_base_model_version = 'sd_1.5' (sd1; CONTRADICTS the shapes)\n" in out
    code, out, _ = run("show", "v1-5-pruned.safetensors")
    assert f"  Base of       2 registered adapters name this file as their base (modelreg ls --base {sha_base[:12]})\n" in out
    code, out, _ = run("show", "--format", "json", "style_loha.safetensors")
    rec = json.loads(out)
    assert (rec["identify"]["kind"], rec["identify"]["adapter_type"], rec["identify"]["arch"]) == ("lycoris", "loha", "sd1")
    assert rec["training"]["facts"]["trigger_words"] == ["zkz style"]
    assert rec["training"]["base_links"][0]["matched_on"] == "autov1"


def test_ls_filters(tmp_path: Path, db: Path) -> None:
    _models(tmp_path)
    run("scan", str(tmp_path / "models"))

    def names(*args: str) -> list[str]:
        code, out, err = run("ls", "--format", "json", *args)
        assert code == 0, err
        return sorted(r["name"] for r in json.loads(out))

    assert names("--kind", "lora") == ["flux.safetensors", "ohwx.safetensors"]
    assert names("--kind", "adapter") == ["flux.safetensors", "ohwx.safetensors", "style_loha.safetensors"]
    assert names("--arch", "sd1", "--kind", "checkpoint") == ["v1-5-pruned.safetensors"]
    assert names("--arch", "flux1") == ["flux.safetensors"]
    assert names("--arch", "sdxl") == []
    assert names("--trigger", "OHWX") == ["ohwx.safetensors"]
    assert names("--trigger", "zkz") == ["style_loha.safetensors"]
    assert names("--base", "v1-5-pruned.safetensors") == ["ohwx.safetensors", "style_loha.safetensors"]
    code, out, _ = run("ls", "--format", "csv", "--kind", "embedding")
    assert out.splitlines()[0] == "sha256,autov2,name,format,kind,arch,size,n_tensors,n_findings,max_severity,path"
    assert ",emb.safetensors,safetensors,embedding,sd1," in out
    code, _, err = run("ls", "--base", "nonexistent-model")
    assert code == 2
