"""`modelreg probe` refuses, in one line and before anything heavy is imported or loaded, what it cannot
measure: embeddings, LyCORIS forms diffusers cannot load, adapters for another architecture than the
base's; an embedder whose weights are missing says what to put where."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from registry.probe import missing_packages
from tests import archspecs as A

ROOT = Path(__file__).resolve().parent.parent

needs_extra = pytest.mark.skipif(
    bool(missing_packages()), reason=f"the probe extra is not installed (missing: {', '.join(missing_packages())})"
)

# runs the CLI in a fresh interpreter and reports which heavy packages were imported by the end
DRIVER = (
    "import sys\n"
    "from cli.main import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit as e:\n"
    "    code = e.code\n"
    "heavy = sorted(m for m in ('torch', 'diffusers.pipelines', 'transformers.models', 'open_clip') if m in sys.modules)\n"
    "print('HEAVY:' + ','.join(heavy), file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def probe(db: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, "--db", str(db), "probe", *args, "--embedder", "pixel", "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )
    err = out.stderr.splitlines()
    heavy = [x for x in err if x.startswith("HEAVY:")]
    return out.returncode, out.stdout, [x for x in err if not x.startswith("HEAVY:")] + heavy


def _sd1_checkpoint() -> dict[str, list[int]]:
    s = {
        "model.diffusion_model.input_blocks.0.0.weight": [320, 4, 3, 3],
        "model.diffusion_model.input_blocks.1.1.proj_in.weight": [320, 320, 1, 1],
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight": [320, 320],
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [320, 768],
        "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_v.weight": [320, 768],
        "model.diffusion_model.out.2.weight": [4, 320, 3, 3],
    }
    return s | A.weight_tensors(A.clip_modules(768, 1), "cond_stage_model.transformer.")


def _sd1_folder(root: Path) -> Path:
    (root / "unet").mkdir(parents=True)
    (root / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    (root / "unet" / "config.json").write_text(json.dumps({"cross_attention_dim": 768}))
    return root


@needs_extra
def test_flux_lora_against_a_registered_sd1_base(tmp_path: Path, db: Path) -> None:
    lora = A.write_tensors(tmp_path / "flux-style.safetensors",
                           A.lora_tensors(A.flux_modules("bfl", double=2, single=2), prefix="lora_unet_"))
    base = A.write_tensors(tmp_path / "v1-5.safetensors", _sd1_checkpoint())
    from cli.main import main

    with pytest.raises(SystemExit) as e:
        main(["--db", str(db), "scan", str(base)])
    assert e.value.code == 0
    code, out, err = probe(db, str(lora), "--base", "v1-5.safetensors")
    assert code == 2 and out == ""
    assert err[-2:] == [
        "modelreg: flux-style.safetensors: this LoRA is for FLUX.1; the base v1-5.safetensors is SD 1.x "
        "(identified from the registry)",
        "HEAVY:",
    ], err


@needs_extra
def test_flux_lora_against_an_sd1_diffusers_folder(tmp_path: Path, db: Path) -> None:
    lora = A.write_tensors(tmp_path / "f.safetensors",
                           A.lora_tensors(A.flux_modules("bfl", double=2, single=2), prefix="lora_unet_"))
    base = _sd1_folder(tmp_path / "sd15")
    code, out, err = probe(db, str(lora), "--base", str(base))
    assert code == 2
    assert err[-2] == ("modelreg: f.safetensors: this LoRA is for FLUX.1; the base sd15 is SD 1.x "
                       "(identified from model_index.json)")
    assert err[-1] == "HEAVY:"


@needs_extra
def test_sdxl_lora_on_sdxl_base_passes_preflight(tmp_path: Path) -> None:
    from registry.probe import preflight

    lora = A.write_tensors(tmp_path / "x.safetensors", A.lora_tensors(A.unet_modules("sdxl-base"), prefix="lora_unet_"))
    (tmp_path / "xl").mkdir()
    (tmp_path / "xl" / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    model, base = preflight.from_header(lora), preflight.describe_base(None, None, str(tmp_path / "xl"))
    assert model is not None and base is not None and model.family == base.family == "sdxl"
    preflight.check(model, lora, base, str(tmp_path / "xl"), checkpoint=False)  # no refusal
    # an unknown base family (a custom pipeline) never refuses
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "model_index.json").write_text(json.dumps({"_class_name": "MyPipeline"}))
    custom = preflight.describe_base(None, None, str(tmp_path / "c"))
    assert custom is not None and custom.family is None
    preflight.check(model, lora, custom, str(tmp_path / "c"), checkpoint=False)


@needs_extra
def test_embedding_is_refused_in_one_line(tmp_path: Path, db: Path) -> None:
    emb = A.write_tensors(tmp_path / "charturner.safetensors", {"emb_params": [4, 768]}, dtype="F32")
    code, out, err = probe(db, str(emb), "--base", str(_sd1_folder(tmp_path / "sd15")))
    assert code == 2 and out == ""
    assert err[-2].startswith("modelreg: charturner.safetensors is a textual-inversion embedding (SD 1.x), not a LoRA")
    assert err[-1] == "HEAVY:"
    assert not any("Traceback" in x for x in err)


@needs_extra
@pytest.mark.parametrize("algo", ["loha", "lokr", "oft"])
def test_lycoris_forms_diffusers_cannot_load_name_their_keys(algo: str, tmp_path: Path, db: Path) -> None:
    f = A.write_tensors(tmp_path / f"{algo}.safetensors", A.lycoris_tensors(A.unet_modules("sd1"), algo))
    code, out, err = probe(db, str(f), "--base", str(_sd1_folder(tmp_path / "sd15")))
    assert code == 2
    line = err[-2]
    assert line.startswith(f"modelreg: {algo}.safetensors is a LyCORIS {algo.upper()} adapter (keys like lora_unet_")
    mark = {"loha": ".hada_w1_a", "lokr": ".lokr_w", "oft": ".oft_blocks"}[algo]
    assert mark in line and line.endswith("probe the merged checkpoint with --checkpoint.")
    assert err[-1] == "HEAVY:"


@needs_extra
def test_missing_embedder_weights_say_what_to_put_where(tmp_path: Path, db: Path) -> None:
    from tests.builders import write_safetensors

    lora = write_safetensors(tmp_path / "l.safetensors", {
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": np.zeros((2, 32), np.float32),
        "unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_B.weight": np.zeros((64, 2), np.float32),
    })
    out = subprocess.run(
        [sys.executable, "-c", DRIVER, "--db", str(db), "probe", str(lora), "--base", str(_sd1_folder(tmp_path / "b")),
         "--device", "cpu"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub")},
    )
    err = [x for x in out.stderr.splitlines() if not x.startswith("HEAVY:")]
    assert out.returncode == 2, out.stderr
    assert not any("Traceback" in x for x in err), out.stderr
    assert err[-1].startswith("modelreg: the embedder open_clip:ViT-B-32:openai needs its weights, which are not in the "
                              f"local Hugging Face cache ({tmp_path / 'hf' / 'hub'}): put open_clip_model.safetensors")
    assert "--embedder open_clip:ViT-B-32:/path/to/open_clip_model.safetensors" in err[-1]
    assert "diffusers.pipelines" not in out.stderr.splitlines()[-1]  # the base was never loaded


@needs_extra
def test_weights_file_gives_no_random_init_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import open_clip
    from safetensors.torch import save_file

    from registry.probe.embed import OpenClipEmbedder

    cfg_dir = tmp_path / "cfg"
    cfg_dir.mkdir()
    (cfg_dir / "tiny-probe-test.json").write_text(json.dumps({
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 4, "layers": 1},
    }))
    open_clip.add_model_config(cfg_dir)
    with caplog.at_level("WARNING"):
        model = open_clip.create_model("tiny-probe-test", pretrained=None)
    assert any("initialized randomly" in r.getMessage() for r in caplog.records)  # open_clip does log it
    w = tmp_path / "w.safetensors"
    save_file({k: v.contiguous().clone() for k, v in model.state_dict().items()}, str(w))
    caplog.clear()
    with caplog.at_level("WARNING"):
        emb = OpenClipEmbedder("tiny-probe-test", str(w))
    assert not any("initialized randomly" in r.getMessage() for r in caplog.records), caplog.text
    assert emb.weights.startswith("sha256:")
    vec = emb.embed_images([np.zeros((32, 32, 3), np.uint8) + 100])
    assert vec.shape == (1, 16)

