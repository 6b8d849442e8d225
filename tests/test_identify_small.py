"""Files that used to be "unknown": tiny autoencoders (TAESD family), A1111's VAE-approx preview decoder,
``lora_diffusion`` ``.pt`` lists of tensors, and the FLUX.2 model a FLUX.2 LoRA was made for.

The layouts come from ``tests/data/identify`` (built by ``scripts/gen_identify_fixtures.py`` from the
architectures' own configurations); two of them are checked here against the published files in the shared
corpus, name for name and shape for shape, so a wrong builder fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from cli.main import root
from registry.files.pickles import scan_file
from registry.identify import _lora_list_roles, identify
from tests.builders import CORPUS
from tests.pickle_builders import legacy_torch_bytes, torch_zip_bytes
from tests.test_identify_real import load, pairs

TAEF2_ENCODER = CORPUS / "models" / "taef2_encoder.pth"
LORA_ILLUST = CORPUS / "loras" / "lora_illust.pt"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not at {CORPUS}")


def _real(path: Path) -> list[tuple[str, tuple[int, ...]]]:
    rec = scan_file(path).recovery
    assert rec is not None and not rec.problems
    return [(t.name, t.shape) for t in rec.tensors]


def _fixture(case: str) -> list[tuple[str, tuple[int, ...]]]:
    return [(n, tuple(s)) for n, s in pairs(load(case))]


# -- real files ---------------------------------------------------------------------------------------------


@needs_corpus
def test_real_taef2_encoder_is_the_flux2_tiny_autoencoder() -> None:
    scan = scan_file(TAEF2_ENCODER)
    assert scan.verdict == "safe"
    ident, findings = identify(scan.recovery.tensor_infos() if scan.recovery else [])
    assert (ident.kind, ident.arch, ident.arch_variant, ident.confidence, ident.source) == ("vae", "other:flux2", "taef2", "high", "shapes")
    assert ident.details["part"] == "encoder" and ident.details["latent_channels"] == 32
    assert ident.details["layout"] == "f8-midblock-gn"
    assert [(e.key, e.width) for e in ident.evidence if e.key] == [("0.weight", None), ("14.weight", 32), ("11.pool.0.weight", None)]
    assert findings == []


@needs_corpus
def test_taef2_builder_gives_the_published_file_exactly() -> None:
    assert _fixture("vae_taef2_encoder") == _real(TAEF2_ENCODER)


@needs_corpus
def test_real_lora_diffusion_pt_list_is_an_sd2_lora() -> None:
    scan = scan_file(LORA_ILLUST)
    assert scan.verdict == "safe" and scan.recovery is not None and scan.recovery.root == "list"
    ident, findings = identify(scan.recovery.tensor_infos())
    assert (ident.kind, ident.adapter_type, ident.key_style, ident.arch, ident.confidence) == (
        "lora", "lora_diffusion", "lora_diffusion", "sd2", "medium",
    )  # fmt: skip
    assert ident.details["modules"] == 128 and ident.details["container"] == "list"
    # the decisive width: module 5 (the first attn2.to_k) reads the 1024-wide OpenCLIP-H context
    assert any(e.key == "11" and e.width == 1024 for e in ident.evidence)
    assert findings == []


@needs_corpus
def test_lora_diffusion_builder_gives_the_published_list_exactly() -> None:
    assert _fixture("lora_sd21_lora_diffusion_list_pt") == _real(LORA_ILLUST)


# -- tiny autoencoders and the preview decoder -------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "part", "z", "layout", "variants"),
    [
        ("vae_taesd_encoder", "encoder", 4, "f8", ["taesd", "taesdxl"]),
        ("vae_taesd_decoder", "decoder", 4, "f8", ["taesd", "taesdxl"]),
        ("vae_taef1_encoder", "encoder", 16, "f8", ["taef1", "taesd3"]),
        ("vae_taef1_decoder", "decoder", 16, "f8", ["taef1", "taesd3"]),
        ("vae_taef2_encoder", "encoder", 32, "f8-midblock-gn", ["taef2"]),
        ("vae_taef2_decoder", "decoder", 32, "f8-midblock-gn", ["taef2"]),
        ("vae_taesana_encoder", "encoder", 32, "f32", ["taesana"]),
        ("vae_taesana_decoder", "decoder", 32, "f32", ["taesana"]),
        ("vae_taesd_diffusers_autoencoder_tiny", "encoder+decoder", 4, "f8", ["taesd", "taesdxl"]),
        ("vae_taef1_diffusers_autoencoder_tiny", "encoder+decoder", 16, "f8", ["taef1", "taesd3"]),
    ],
)
def test_tiny_autoencoder_part_channels_and_variant(case: str, part: str, z: int, layout: str, variants: list[str]) -> None:
    ident, _ = identify(_fixture(case))
    d = ident.details
    assert (ident.kind, d["part"], d["latent_channels"], d["layout"], d["variant_candidates"]) == ("vae", part, z, layout, variants)
    # a variant is named only when the shapes leave one; otherwise every candidate is said
    assert ident.arch_variant == (variants[0] if len(variants) == 1 else None)
    assert any(" or " in e.what for e in ident.evidence) == (len(variants) > 1)


def test_a_tiny_autoencoder_with_a_foreign_key_is_not_one() -> None:
    t = _fixture("vae_taesd_encoder")
    assert identify(t)[0].kind == "vae"
    assert identify(t + [("extra.weight", (4, 4))])[0].kind == "unknown"
    # without its RGB side (a 4-channel input and a 4-channel output) it is neither encoder nor decoder
    t2 = [(n, (s[0], 4, *s[2:]) if n == "0.weight" else s) for n, s in t]
    assert identify(t2)[0].kind != "vae"


@pytest.mark.parametrize(("case", "z", "cands"), [("vae_approx_a1111_sd", 4, ("sd1", "sd2", "sdxl-base", "sdxl-refiner")),
                                                  ("vae_approx_a1111_sd3", 16, ("sd3", "flux1"))])  # fmt: skip
def test_vae_approx_preview_decoder(case: str, z: int, cands: tuple[str, ...]) -> None:
    ident, _ = identify(_fixture(case))
    assert (ident.kind, ident.arch_variant, ident.arch, ident.arch_candidates) == ("vae", "preview-decoder", "unknown", cands)
    assert ident.details == {"latent_channels": z, "part": "decoder", "preview_decoder": "a1111-vae-approx"}


def test_vae_approx_needs_its_exact_chain() -> None:
    t = dict(_fixture("vae_approx_a1111_sd"))
    t["conv2.weight"] = (16, 8, 3, 3)  # the second kernel is 5x5 in VAEApprox
    assert identify(list(t.items()))[0].arch_variant != "preview-decoder"


# -- lora_diffusion lists --------------------------------------------------------------------------------


@st.composite
def _lora_lists(draw: st.DrawFn) -> list[tuple[str, tuple[int, ...]]]:
    n = draw(st.integers(1, 12))
    out: list[tuple[str, tuple[int, ...]]] = []
    for _ in range(n):
        o, i = draw(st.sampled_from([320, 640, 768, 1024, 1280, 2560])), draw(st.sampled_from([320, 640, 768, 1024, 1280]))
        r = draw(st.integers(1, 64))
        conv = draw(st.booleans())
        up, down = ((o, r, 1, 1), (r, i, 1, 1)) if conv else ((o, r), (r, i))
        out += [(str(len(out)), up), (str(len(out) + 1), down)]
    return out


@given(_lora_lists(), st.integers(0, 3), st.data())
@settings(max_examples=150, deadline=None)
def test_lora_lists_are_recognised_and_broken_ones_are_not(lst: list[tuple[str, tuple[int, ...]]], how: int, data: st.DataObject) -> None:
    assert _lora_list_roles(lst) is not None
    ident, _ = identify(lst)
    assert (ident.kind, ident.adapter_type) == ("lora", "lora_diffusion")
    k = data.draw(st.integers(0, len(lst) // 2 - 1))
    broken = list(lst)
    if how == 0:  # a down factor whose rank is not its up factor's
        name, s = broken[2 * k + 1]
        broken[2 * k + 1] = (name, (s[0] + 1, *s[1:]))
    elif how == 1:  # an odd number of tensors
        broken = broken[:-1]
    elif how == 2:  # up and down swapped: the rank would be the wider side
        broken[2 * k], broken[2 * k + 1] = (broken[2 * k][0], broken[2 * k + 1][1]), (broken[2 * k + 1][0], broken[2 * k][1])
    else:  # indices with a gap
        broken[-1] = (str(len(broken) + 5), broken[-1][1])
    assert _lora_list_roles(broken) is None


def test_lora_diffusion_text_encoder_list_is_clip_l() -> None:
    ident, _ = identify(_fixture("lora_sd15_lora_diffusion_list_text_encoder_pt"))
    assert (ident.kind, ident.arch, ident.confidence, ident.components) == ("lora", "sd1", "medium", ("te1",))
    assert "48 square text-encoder modules 768 wide" in " ".join(e.what for e in ident.evidence)


@pytest.mark.parametrize("legacy", [False, True])
def test_a_lora_list_saved_by_torch_is_read_and_identified(tmp_path: Path, legacy: bool) -> None:
    shapes = _fixture("lora_sd15_lora_diffusion_list_text_encoder_pt")
    rng = np.random.default_rng(0)
    arrays = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes}
    data = _legacy_list(arrays) if legacy else torch_zip_bytes(arrays=arrays, container="list")
    p = tmp_path / "lora.text_encoder.pt"
    p.write_bytes(data)
    scan = scan_file(p)
    assert scan.verdict == "safe" and scan.recovery is not None and scan.recovery.root == "list"
    infos = scan.recovery.tensor_infos()
    assert [(t.name, t.shape) for t in infos] == shapes
    ident, _ = identify(infos)
    assert (ident.kind, ident.adapter_type, ident.arch) == ("lora", "lora_diffusion", "sd1")


def _legacy_list(arrays: dict[str, Any]) -> bytes:
    """The legacy torch format with a list at the root (``legacy_torch_bytes`` writes dicts)."""
    import pickle  # writing only
    import struct

    from tests.pickle_builders import TORCH_MAGIC, state_dict_from_arrays, state_dict_pickle

    refs, storages = state_dict_from_arrays(arrays)
    out = bytearray(pickle.dumps(TORCH_MAGIC, protocol=2))
    out += pickle.dumps(1001, protocol=2)
    out += pickle.dumps({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2)
    out += state_dict_pickle(refs, storages, container="list", legacy=True)
    out += pickle.dumps(list(storages), protocol=2)
    for s in storages.values():
        out += struct.pack("<Q", s.size) + s.astype(s.dtype.newbyteorder("<")).tobytes()
    return bytes(out)


def test_scan_records_the_new_identities(tmp_path: Path, db: Path) -> None:
    m = tmp_path / "models"
    m.mkdir()
    rng = np.random.default_rng(1)

    def arrays(case: str) -> dict[str, np.ndarray]:
        return {n: rng.standard_normal(s).astype(np.float16) for n, s in _fixture(case)}

    (m / "taef2_decoder.pth").write_bytes(torch_zip_bytes(arrays=arrays("vae_taef2_decoder")))
    (m / "model.pt").write_bytes(legacy_torch_bytes(arrays=arrays("vae_approx_a1111_sd")))
    (m / "lora.pt").write_bytes(torch_zip_bytes(arrays=arrays("lora_sd21_lora_diffusion_list_pt"), container="list"))
    r = CliRunner().invoke(root, ["scan", str(m)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    with duckdb.connect(str(db), read_only=True) as con:
        rows = con.execute(
            "SELECT regexp_extract(m.path, '[^/]*$'), i.kind, i.adapter_type, i.arch, i.arch_variant "
            "FROM model_identity i JOIN models m USING (sha256) ORDER BY 1"
        ).fetchall()
    assert rows == [
        ("lora.pt", "lora", "lora_diffusion", "sd2", None),
        ("model.pt", "vae", None, "unknown", "preview-decoder"),
        ("taef2_decoder.pth", "vae", None, "other:flux2", "taef2"),
    ]


# -- FLUX.2: which model -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "variant"),
    [("lora_flux2_klein_4b_peft", "klein-4b"), ("lora_flux2_klein_9b_peft", "klein-9b"), ("other_flux2_dev_lora_peft", "dev"),
     ("lora_flux2_klein_4b_kohya_bfl", "klein-4b"), ("lora_flux2_klein_9b_comfy_bfl", "klein-9b"),
     ("lora_flux2_dev_kohya_bfl", "dev"), ("other_flux2_dev_diffusers", "dev")],
)  # fmt: skip
def test_flux2_variant_by_width_and_depth(case: str, variant: str) -> None:
    ident, _ = identify(_fixture(case))
    assert (ident.arch, ident.arch_variant) == ("other:flux2", variant)
    text = " ".join(e.what for e in ident.evidence)
    assert "hidden width" in text and "highest block indices" in text


def test_flux2_variant_is_left_open_when_the_evidence_disagrees() -> None:
    base = _fixture("lora_flux2_klein_4b_peft")
    # a single block Klein 4B does not have (it has 20): deeper than the width allows
    deeper = base + [("transformer.single_transformer_blocks.30.attn.to_out.lora_A.weight", (4, 12288)),
                     ("transformer.single_transformer_blocks.30.attn.to_out.lora_B.weight", (3072, 4))]  # fmt: skip
    ident, _ = identify(deeper)
    assert (ident.arch, ident.arch_variant) == ("other:flux2", None)
    assert any("more blocks than klein-4b has" in e.what for e in ident.evidence)
    # a 3072-wide model with Klein 9B's text context (3 x 4096)
    ctx = base + [("transformer.context_embedder.lora_A.weight", (4, 12288)), ("transformer.context_embedder.lora_B.weight", (3072, 4))]
    ident, _ = identify(ctx)
    assert (ident.arch, ident.arch_variant) == ("other:flux2", None)
    assert any("variant undecided" in e.what for e in ident.evidence)
