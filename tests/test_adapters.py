from __future__ import annotations

import json
from collections import Counter

import pytest

from registry.adapters import group_modules, place
from tests.builders import CORPUS


def _one(names: list[str], shapes: dict[str, tuple[int, ...]] | None = None):  # type: ignore[no-untyped-def]
    g = group_modules(names, shapes)
    assert len(g.modules) == 1, (g.modules, g.incomplete, g.unassigned)
    return g.modules[0]


def test_kohya_lora_with_alpha_and_tucker_mid() -> None:
    k = "lora_unet_down_blocks_1_resnets_0_conv1"
    m = _one([f"{k}.lora_down.weight", f"{k}.lora_up.weight", f"{k}.alpha", f"{k}.lora_mid.weight", f"{k}.dora_scale"])
    assert (m.key, m.form, m.convention, m.component, m.block) == (k, "lora", "kohya", "unet", "down.1")
    assert set(m.parts) == {"down", "up", "alpha", "mid", "dora_scale"}
    assert m.tucker and m.dora


def test_peft_and_diffusers_names() -> None:
    k = "transformer.single_transformer_blocks.7.attn.to_q"
    m = _one([f"{k}.lora_A.weight", f"{k}.lora_B.weight", f"{k}.lora_magnitude_vector"])
    assert (m.form, m.convention, m.component, m.block) == ("lora", "peft", "transformer", "single.7")
    assert m.parts == {"down": f"{k}.lora_A.weight", "up": f"{k}.lora_B.weight", "dora_scale": f"{k}.lora_magnitude_vector"}
    # adapter-named PEFT keys
    m = _one(["base_model.model.up_blocks.1.attentions.0.proj_in.lora_A.default.weight",
              "base_model.model.up_blocks.1.attentions.0.proj_in.lora_B.default.weight"])
    assert (m.key, m.component, m.block) == ("base_model.model.up_blocks.1.attentions.0.proj_in", "unet", "up.1")
    # old diffusers attention processors
    k = "unet.down_blocks.0.attentions.1.transformer_blocks.0.attn2.processor.to_k_lora"
    m = _one([f"{k}.down.weight", f"{k}.up.weight"])
    assert (m.key, m.convention, m.component, m.block) == (k, "diffusers-old", "unet", "down.0")
    k = "text_encoder.text_model.encoder.layers.3.self_attn.q_proj.lora_linear_layer"
    m = _one([f"{k}.down.weight", f"{k}.up.weight"])
    assert (m.component, m.block) == ("te1", "layer.3")


def test_lora_diffusion_names() -> None:
    g = group_modules(["unet:0:down", "unet:0:up", "unet:1:down", "unet:1:up", "text_encoder:0:down", "text_encoder:0:up"])
    assert [(m.key, m.convention, m.component) for m in g.modules] == [
        ("text_encoder:0", "lora_diffusion", "te1"), ("unet:0", "lora_diffusion", "unet"), ("unet:1", "lora_diffusion", "unet")
    ]


def test_lycoris_forms() -> None:
    k = "lora_unet_input_blocks_4_1_proj_in"
    assert _one([f"{k}.hada_w1_a", f"{k}.hada_w1_b", f"{k}.hada_w2_a", f"{k}.hada_w2_b", f"{k}.alpha"]).form == "loha"
    m = _one([f"{k}.hada_w1_a", f"{k}.hada_w1_b", f"{k}.hada_w2_a", f"{k}.hada_w2_b", f"{k}.hada_t1", f"{k}.hada_t2"])
    assert m.form == "loha" and m.tucker and (m.component, m.block) == ("unet", "input.4")
    assert _one([f"{k}.lokr_w1", f"{k}.lokr_w2_a", f"{k}.lokr_w2_b", f"{k}.lokr_t2", f"{k}.alpha"]).form == "lokr"
    assert _one([f"{k}.lokr_w1_a", f"{k}.lokr_w1_b", f"{k}.lokr_w2"]).form == "lokr"
    assert _one([f"{k}.weight", f"{k}.on_input"]).form == "ia3"
    assert _one([f"{k}.a1.weight", f"{k}.a2.weight", f"{k}.b1.weight", f"{k}.b2.weight", f"{k}.alpha"]).form == "glora"
    assert _one([f"{k}.oft_blocks", f"{k}.alpha"], {f"{k}.oft_blocks": (4, 8, 8)}).form == "oft"
    assert _one([f"{k}.oft_blocks", f"{k}.rescale"], {f"{k}.oft_blocks": (2, 4, 8, 8)}).form == "boft"
    assert _one([f"{k}.oft_diag"]).form == "oft"
    assert _one([f"{k}.diff", f"{k}.diff_b"]).form == "diff"
    assert _one([f"{k}.w_norm", f"{k}.b_norm"]).form == "norm"
    assert _one(["base_model.model.q.ia3_l"]).form == "ia3"


def test_incomplete_and_unassigned() -> None:
    g = group_modules(["a.lora_down.weight", "a.alpha", "emb_params", "model.norm.weight", "b.lora_up.weight", "b.lora_down.weight"])
    assert [m.key for m in g.modules] == ["b"]
    assert g.incomplete == {"a": ["alpha", "down"]}
    assert sorted(g.unassigned) == ["emb_params", "model.norm.weight"]
    assert g.is_adapter


def test_a_checkpoint_has_no_modules() -> None:
    names = ["model.diffusion_model.input_blocks.0.0.weight", "model.diffusion_model.input_blocks.0.0.bias",
             "first_stage_model.decoder.conv_in.weight", "cond_stage_model.transformer.text_model.final_layer_norm.weight"]
    g = group_modules(names)
    assert not g.is_adapter and not g.incomplete and sorted(g.unassigned) == sorted(names)


@pytest.mark.parametrize(
    "key,expected",
    [
        ("lora_unet_double_blocks_0_img_attn_qkv", ("transformer", "double.0")),
        ("lora_unet_single_blocks_3_linear1", ("transformer", "single.3")),
        ("lora_te2_text_model_encoder_layers_3_mlp_fc1", ("te2", "layer.3")),
        ("lora_te3_encoder_block_4_layer_0_SelfAttention_q", ("te3", "layer.4")),
        ("lora_te_text_model_encoder_layers_11_self_attn_k_proj", ("te1", "layer.11")),
        ("lora_unet_middle_block_1_proj_out", ("unet", "middle")),
        ("lora_unet_mid_block_attentions_0_proj_in", ("unet", "mid")),
        ("lora_unet_output_blocks_8_0_skip_connection", ("unet", "output.8")),
        ("lora_unet_conv_in", ("unet", None)),
        ("lora_transformer_joint_blocks_2_x_block_attn_qkv", ("transformer", "joint.2")),
        ("diffusion_model.blocks.2.attn.wk", ("transformer", "block.2")),
        ("diffusion_model.txtfusion.refiner_blocks.1.mlp.up", ("transformer", "refiner.1")),
        ("model.diffusion_model.input_blocks.4.1.proj_in.weight", ("unet", "input.4")),
        ("first_stage_model.decoder.up.1.block.0.conv1.weight", ("vae", None)),
        ("conditioner.embedders.1.model.transformer.resblocks.5.attn.in_proj_weight", ("te2", "layer.5")),
    ],
)
def test_place(key: str, expected: tuple[str, str | None]) -> None:
    assert place(key) == expected


def test_transformer_blocks_are_double_when_single_blocks_exist() -> None:
    assert place("transformer.transformer_blocks.3.attn.to_q", single_blocks=True) == ("transformer", "double.3")
    assert place("transformer.transformer_blocks.3.attn.to_q") == ("transformer", "joint.3")


CORPUS_HEADERS = CORPUS / "headers"


@pytest.mark.skipif(not CORPUS_HEADERS.is_dir(), reason="shared corpus not present")
@pytest.mark.parametrize(
    "name,n,forms,components",
    [
        ("sd15-kohya", 264, {"lora": 264}, {"unet": 192, "te1": 72}),
        ("sdxl-kohya", 794, {"lora": 794}, {"unet": 722, "te1": 72}),
        ("flux1-diffusers", 494, {"lora": 494}, {"transformer": 494}),
        ("krea2-lycoris", 256, {"lokr": 256}, {"transformer": 256}),
    ],
)
def test_real_headers(name: str, n: int, forms: dict[str, int], components: dict[str, int]) -> None:
    doc = json.loads((CORPUS_HEADERS / f"{name}.json").read_text())
    keys = doc["keys"]
    g = group_modules(keys, {k: tuple(v["shape"]) for k, v in keys.items()})
    assert len(g.modules) == n and not g.incomplete and not g.unassigned
    assert dict(Counter(m.form for m in g.modules)) == forms
    assert dict(Counter(m.component for m in g.modules)) == components
    blocks = Counter((m.block or "").split(".")[0] for m in g.modules)
    if name == "flux1-diffusers":
        assert blocks == {"double": 19 * 14, "single": 38 * 6}
    if name == "sd15-kohya":
        assert blocks == {"down": 72, "mid": 12, "up": 108, "layer": 72}


def test_lora_diffusion_module_numbers_are_not_text_encoder_numbers() -> None:
    """Issue 20: `text_encoder:2` / `text_encoder:3` are the third and fourth modules of the one text encoder
    (te1, as identification and `show` say), not te2/te3; `diff` places tensors by name with place()."""
    from registry.adapters import place

    for n in (0, 2, 3, 23):
        assert place(f"text_encoder:{n}") == ("te1", None)
        assert place(f"text_encoder:{n}:up") == ("te1", None)
        assert place(f"unet:{n}:down") == ("unet", None)
    assert place("text_encoder_2:3:up") == ("te2", None)
    g = group_modules([f"text_encoder:{n}:{r}" for n in range(4) for r in ("down", "up")])
    assert {m.component for m in g.modules} == {"te1"}
    # kohya and diffusers names keep their own numbering
    assert place("lora_te2_text_model_encoder_layers_0_mlp_fc1")[0] == "te2"
    assert place("text_encoder_2.text_model.encoder.layers.0.mlp.fc1")[0] == "te2"


def test_suffix_prefilter_finds_what_searching_every_pattern_finds() -> None:
    """``_match`` skips a suffix pattern when the name lacks the literal text the pattern starts with; on
    every name below (each suffix, with look-behind contexts, PEFT adapter names, a trailing newline,
    near misses) it gives what searching every pattern in order gives."""
    import random

    from registry import adapters

    def naive(name: str):  # type: ignore[no-untyped-def]
        m = adapters._CLONEOFSIMO.match(name)
        if m:
            return f"{m['comp']}:{m['idx']}", m["role"], "lora_diffusion"
        for pat, role, conv in adapters._SUFFIXES:
            mm = pat.search(name)
            if mm and name[: mm.start()]:
                return name[: mm.start()], role, conv
        return None

    tails = [
        ".lora_down.weight", ".lora_up.weight", ".lora_mid.weight", ".lora_A.weight", ".lora_A.default.weight",
        ".lora_B.my-adapter.weight", ".lora_B.bias", ".lora_embedding_A", ".lora_embedding_B.x",
        ".lora_magnitude_vector", ".lora_magnitude_vector.default.weight", "_lora.down.weight", ".lora.up.weight",
        ".lora_linear_layer.down.weight", ".processor.to_q_lora.up.weight", ".hada_w1_a", ".hada_t2", ".lokr_w1",
        ".lokr_w1_a", ".lokr_w2_b", ".lokr_t2", ".a1.weight", ".b2.weight", ".oft_blocks", ".oft_diag", ".rescale",
        ".on_input", ".ia3_l", ".ia3_l.default.weight", ".diff", ".diff_b", ".w_norm", ".b_norm", ".dora_scale",
        ".scalar", ".alpha", ".weight", ".bias", ".down.weight", ".lora_down.weight\n", ".alpha.x", "lora_down",
        ".lora_A", ".lora_Z.weight", ".LORA_DOWN.weight", "",
    ]
    heads = ["lora_unet_down_blocks_0_attn1_to_q", "transformer.blocks.3.attn", "x", "", ".", "a.lora_up.weight.b"]
    names = [h + t for h in heads for t in tails] + ["unet:3:down", "text_encoder_2:12:up", "unet:x:down"]
    rng = random.Random(0)
    for _ in range(2000):
        names.append("".join(rng.choice(["_lora", ".lora", ".down", ".up", ".weight", "_A", ".lora_A", ".alpha", "x", "."]) for _ in range(rng.randint(1, 6))))
    for name in names:
        assert adapters._match(name) == naive(name), name


def test_a_layout_seen_before_gets_the_same_grouping_and_its_own_containers() -> None:
    """group_modules remembers groupings per layout (names in order, OFT shapes): the second file of a
    layout gets what computing it afresh gives, and changing one result's lists changes no other."""
    import registry.adapters as adapters

    names = [
        "lora_unet_down_blocks_0_attn.lora_down.weight", "lora_unet_down_blocks_0_attn.lora_up.weight",
        "lora_unet_down_blocks_0_attn.alpha", "lora_te_x.lora_down.weight", "stray.weight",
        "lycoris_a.oft_blocks", "only_down.lora_down.weight",
    ]  # fmt: skip
    shapes = {n: (4, 8) for n in names} | {"lycoris_a.oft_blocks": (2, 4, 4)}
    first = group_modules(names, shapes)
    first.modules.clear()
    first.unassigned.append("x")
    first.incomplete["only_down"].append("y")
    second = group_modules(list(names), dict(shapes))
    adapters._LAYOUTS.clear()
    adapters._match_memo.cache_clear()
    adapters._place_memo.cache_clear()
    fresh = group_modules(names, shapes)
    assert second == fresh
    assert [m.key for m in fresh.modules] == ["lora_unet_down_blocks_0_attn", "lycoris_a"]
    assert fresh.unassigned == ["stray.weight"]
    assert fresh.incomplete == {"lora_te_x": ["down"], "only_down": ["down"]}
    # OFT blocks of another rank make another layout (BOFT), not the remembered one
    boft = group_modules(names, shapes | {"lycoris_a.oft_blocks": (2, 2, 4, 4)})
    assert {m.key: m.form for m in boft.modules}["lycoris_a"] == "boft"
    assert {m.key: m.form for m in fresh.modules}["lycoris_a"] == "oft"


def _architecture_keys() -> list[str]:
    """Module keys of every layout tests/archspecs.py builds, dotted and kohya-style, with variations that
    meet each block pattern at the start, in the middle and next to a near miss."""
    from tests import archspecs as a

    paths = [m[0] for arch in a.UNET_CONFIGS for naming in ("diffusers", "ldm") for m in a.unet_modules(arch, naming)]
    paths += [m[0] for m in a.clip_modules(768, 12) + a.t5_modules(2) + a.sd3_modules(blocks=2) + a.wan_modules(layers=2)]
    paths += [m[0] for naming in ("bfl", "diffusers") for m in a.flux_modules(naming, double=2, single=2)]
    paths += [m[0] for m in a.qwen_image_modules(layers=2) + a.ltx_modules(layers=2)]
    keys = paths + [a.kohya_name(p, path) for p in ("lora_unet_", "lora_te1_", "lora_transformer_", "") for path in paths]
    odd = ["blocks_1", "mid_block", "x_mid_block", "mid_blocks_1", "xmid_block_1", "middle_block", "refiner_blocks_2_x",
           "single_transformer_blocks_0", "layers_7_blocks_2", "resblocks_1", "encoder_block_3", "Down_Blocks_1",
           "lora_unet_up_blocks_0_upsamplers_0_conv", "model.diffusion_model.out.2", "text_encoder:3", "unet:12:up"]
    return keys + odd


def test_place_skips_patterns_only_where_they_cannot_match(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block pattern is searched only in keys that hold the text every match of it contains: the same
    answers as searching every pattern in every key (an empty text is in every key)."""
    import registry.adapters as ad

    keys = _architecture_keys()
    assert len(keys) > 1000
    assert all(text and text in pat.pattern for pat, _, text in ad._BLOCKS)
    fast = [(place(k), place(k, single_blocks=True)) for k in keys]
    monkeypatch.setattr(ad, "_BLOCKS", [(pat, name, "") for pat, name, _ in ad._BLOCKS])
    slow = [(place(k), place(k, single_blocks=True)) for k in keys]
    assert fast == slow
    kinds = {b.partition(".")[0] for (_, b), _ in fast if b}
    assert {"down", "mid", "up", "input", "middle", "output", "double", "single", "joint", "layer", "block"} <= kinds
