"""Training metadata normalisation and embedded hash-claim checks."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from registry.findings import Finding
from registry.training import (
    EMPTY_SHA256,
    DatasetDir,
    TrainingFacts,
    check_hash_claims,
    normalize_hash,
    parse_training_metadata,
)
from tests.builders import CORPUS

CORPUS = Path(os.environ.get("MODELREG_CORPUS") or CORPUS)


def rules(findings: list[Finding]) -> list[str]:
    return sorted(f.rule_id for f in findings)


KOHYA = {
    "ss_session_id": "1234567",
    "ss_training_started_at": "1700000000.5",
    "ss_training_finished_at": "1700003600",
    "ss_output_name": "ohwx_woman_v1",
    "ss_sd_scripts_commit_hash": "a1b2c3d",
    "ss_sd_model_name": "v1-5-pruned-emaonly.safetensors",
    "ss_sd_model_hash": "81761151",
    "ss_new_sd_model_hash": "6CE0161689B3853ACAA03779EC93EAFE75A02F4CED659BEE03F50797806FA2FA",
    "ss_vae_name": "None",
    "ss_v2": "False",
    "ss_base_model_version": "sd_v1",
    "ss_network_module": "networks.lora",
    "ss_network_dim": "32",
    "ss_network_alpha": "16.0",
    "ss_network_args": '{"conv_dim": "8", "conv_alpha": NaN}',
    "ss_num_train_images": "300",
    "ss_num_reg_images": "0",
    "ss_dataset_dirs": '{"10_ohwx woman": {"n_repeats": 10, "img_count": 25}, "5_style": {"n_repeats": 5, "img_count": 10}}',
    "ss_tag_frequency": '{"10_ohwx woman": {"ohwx woman": 25, "1girl": 25, "smile": 7}, "5_style": {"painting": 10, "ohwx style": 9, "tree": 2}}',
    "ss_num_epochs": "10",
    "ss_epoch": "10",
    "ss_max_train_steps": "3000",
    "ss_steps": "3000",
    "ss_total_batch_size": "2",
    "ss_resolution": "(512, 512)",
    "ss_learning_rate": "0.0001",
    "ss_unet_lr": "0.0001",
    "ss_text_encoder_lr": "5e-05",
    "ss_optimizer": "bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.1)",
    "ss_lr_scheduler": "cosine",
    "ss_mixed_precision": "fp16",
    "ss_clip_skip": "2",
    "ss_noise_offset": "None",
    "ss_seed": "42",
    "sshs_model_hash": "ab" * 32,
    "sshs_legacy_hash": "e3b0c442",
}


def test_kohya_metadata() -> None:
    facts, fs = parse_training_metadata(KOHYA)
    assert facts.trainer == "kohya-ss/sd-scripts"
    assert facts.trainer_version == "a1b2c3d"
    assert facts.sources == ["kohya"]
    assert facts.base_model_name == "v1-5-pruned-emaonly.safetensors"
    assert facts.base_model_version == "sd_v1"
    assert facts.base_model_hashes == {
        "autov1": "81761151",
        "sha256": "6ce0161689b3853acaa03779ec93eafe75a02f4ced659bee03f50797806fa2fa",
    }
    assert facts.v2 is False
    assert (facts.network_module, facts.network_dim, facts.network_alpha) == ("networks.lora", 32, 16.0)
    assert facts.network_args == {"conv_dim": "8", "conv_alpha": None}
    assert facts.datasets == [DatasetDir("10_ohwx woman", 10, 25), DatasetDir("5_style", 5, 10)]
    assert facts.distinct_images == 35
    assert facts.num_train_images == 300
    assert facts.tag_frequency["5_style"] == {"painting": 10, "ohwx style": 9, "tree": 2}
    assert facts.trigger_words == ["ohwx woman", "style", "painting", "ohwx style"]
    assert facts.trigger_sources == {
        "ohwx woman": "folder:10_ohwx woman",
        "style": "folder:5_style",
        "painting": "tags:5_style",
        "ohwx style": "tags:5_style",
    }
    assert (facts.epochs, facts.epoch, facts.max_train_steps, facts.steps, facts.batch_size) == (10, 10, 3000, 3000, 2)
    assert facts.resolution == "512x512"
    assert (facts.learning_rate, facts.unet_lr, facts.text_encoder_lr) == (0.0001, 0.0001, 5e-05)
    assert facts.optimizer == "bitsandbytes.optim.adamw.AdamW8bit(weight_decay=0.1)"
    assert (facts.lr_scheduler, facts.mixed_precision, facts.clip_skip, facts.noise_offset, facts.seed) == ("cosine", "fp16", 2, None, 42)  # fmt: skip
    assert facts.started_at == "2023-11-14T22:13:20.500000Z"
    assert facts.finished_at == "2023-11-14T23:13:20Z"
    assert facts.vae_name is None
    assert facts.output_name == "ohwx_woman_v1"
    assert facts.hash_claims == {
        "sshs_model_hash": "ab" * 32,
        "sshs_legacy_hash": "e3b0c442",
        "ss_sd_model_hash": "81761151",
        "ss_new_sd_model_hash": "6CE0161689B3853ACAA03779EC93EAFE75A02F4CED659BEE03F50797806FA2FA",
    }
    # 25*10 + 10*5 = 300: consistent; the NaN inside ss_network_args is reported
    assert rules(fs) == ["training.non-finite-value"]
    # round trip through JSON (what the analyzer stores)
    assert TrainingFacts.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts


def test_kohya_dataset_config_form_and_reg_images() -> None:
    md = {
        "ss_num_train_images": "40",
        "ss_datasets": json.dumps([
            {"is_dreambooth": True, "batch_size_per_device": 4, "num_train_images": 40,
             "subsets": [
                 {"img_count": 20, "num_repeats": 2, "image_dir": "/data/train/2_zkz dog", "class_tokens": "zkz dog", "is_reg": False},
                 {"img_count": 50, "num_repeats": 1, "image_dir": "C:\\data\\reg\\1_dog", "class_tokens": "dog", "is_reg": True},
             ],
             "tag_frequency": {"2_zkz dog": {"zkz dog": 20}}},
        ]),  # fmt: skip
    }
    facts, fs = parse_training_metadata(md)
    assert facts.datasets == [
        DatasetDir("2_zkz dog", 2, 20, False, "zkz dog"),
        DatasetDir("1_dog", 1, 50, True, "dog"),
    ]
    assert facts.batch_size == 4
    assert facts.distinct_images == 20
    assert facts.trigger_words == ["zkz dog"]
    assert facts.trigger_sources == {"zkz dog": "class_tokens:2_zkz dog"}
    assert fs == []


def test_image_count_mismatch_is_a_finding() -> None:
    md = {"ss_num_train_images": "999", "ss_dataset_dirs": '{"3_abc": {"n_repeats": 3, "img_count": 10}}'}
    facts, fs = parse_training_metadata(md)
    assert rules(fs) == ["training.image-count-mismatch"]
    assert fs[0].evidence == {"num_train_images": 999, "folders_total": 30}


def test_lenient_values_become_findings_not_exceptions() -> None:
    md = {
        "ss_network_dim": "Dynamic",
        "ss_network_alpha": "Dynamic",
        "ss_num_epochs": "ten",
        "ss_learning_rate": "inf",
        "ss_v2": "maybe",
        "ss_training_started_at": "yesterday",
        "ss_tag_frequency": "{not json",
        "ss_network_args": "{'algo': 'lokr', 'factor': 8}",  # a Python repr
        "ss_text_encoder_lr": "[5e-05, 1e-05]",
        "ss_dataset_dirs": '{"x": "not a dict"}',
        "ss_resolution": "768",
    }
    facts, fs = parse_training_metadata(md)
    assert (facts.network_dim, facts.network_alpha, facts.epochs, facts.learning_rate, facts.v2) == (None, None, None, None, None)
    assert facts.network_args == {"algo": "lokr", "factor": 8}
    assert facts.text_encoder_lr == 5e-05
    assert facts.datasets == [DatasetDir("x")]
    assert facts.resolution == "768x768"
    assert rules(fs) == [
        "training.bad-json",
        "training.bad-value",
        "training.bad-value",
        "training.bad-value",
        "training.non-finite-value",
    ]


def test_modelspec_fields() -> None:
    md = {
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": "stable-diffusion-xl-v1-base/lora",
        "modelspec.implementation": "https://github.com/Stability-AI/generative-models",
        "modelspec.title": "Anya",
        "modelspec.author": "someone",
        "modelspec.description": "a character",
        "modelspec.license": "CreativeML OpenRAIL++-M",
        "modelspec.date": "2024-03-30T22:11:47",
        "modelspec.resolution": "1024x1024",
        "modelspec.prediction_type": "epsilon",
        "modelspec.tags": "anime, character",
        "modelspec.merged_from": "a, b, a",
        "modelspec.trigger_phrase": "anya, pink hair",
        "modelspec.hash_sha256": "0x" + "cd" * 32,
    }
    facts, fs = parse_training_metadata(md)
    assert facts.sources == ["modelspec"]
    assert facts.trainer is None
    assert facts.architecture_claim == "stable-diffusion-xl-v1-base/lora"
    assert (facts.title, facts.author, facts.description, facts.license) == ("Anya", "someone", "a character", "CreativeML OpenRAIL++-M")  # fmt: skip
    assert (facts.saved_at, facts.resolution, facts.prediction_type) == ("2024-03-30T22:11:47", "1024x1024", "epsilon")
    assert facts.tags == ["anime", "character"]
    assert facts.merged_from == ["a", "b"]
    assert facts.trigger_words == ["anya", "pink hair"]
    assert facts.hash_claims == {"modelspec.hash_sha256": "0x" + "cd" * 32}
    assert fs == []


def test_diffusers_peft_metadata() -> None:
    cfg = {"transformer.r": 16, "transformer.lora_alpha": 16, "transformer.target_modules": ["to_k", "to_q"],
           "transformer.use_dora": False, "transformer.peft_type": "LORA"}  # fmt: skip
    facts, fs = parse_training_metadata({"lora_adapter_metadata": json.dumps(cfg), "format": "pt"})
    assert (facts.trainer, facts.network_module, facts.network_dim, facts.network_alpha) == ("diffusers", "peft.LORA", 16, 16.0)
    assert facts.network_args == {"target_modules": ["to_k", "to_q"], "use_dora": False}
    assert facts.peft_config == cfg
    assert fs == []


def test_ai_toolkit_metadata() -> None:
    md = {
        "software": '{"name": "ai-toolkit", "repo": "https://github.com/ostris/ai-toolkit", "version": "0.1.0"}',
        "training_info": '{"step": 2000, "epoch": 20}',
        "name": "my_flux_lora",
        "ss_base_model_version": "sd_1.5",
        "ss_tag_frequency": '{"1_DB4RZ": {"DB4RZ": 1}}',
    }
    facts, fs = parse_training_metadata(md)
    assert (facts.trainer, facts.trainer_version, facts.steps, facts.epoch) == ("ai-toolkit", "0.1.0", 2000, 20)
    assert facts.sources == ["kohya", "ai-toolkit"]
    assert (facts.output_name, facts.title) == ("my_flux_lora", "my_flux_lora")
    assert facts.trigger_words == ["DB4RZ"]
    assert fs == []


def test_a1111_merge_metadata() -> None:
    md = {
        "sd_merge_recipe": '{"type": "webui", "primary_model_hash": "aa", "interp_method": "Weighted sum", "multiplier": 0.3}',
        "sd_merge_models": '{"' + "a" * 64 + '": {"name": "modelA.safetensors", "legacy_hash": "12345678", "sd_merge_recipe": null}}',
    }
    facts, fs = parse_training_metadata(md)
    assert facts.trainer == "AUTOMATIC1111 checkpoint merger"
    assert facts.merge_recipe["interp_method"] == "Weighted sum"
    assert facts.merge_models == [{"sha256": "a" * 64, "name": "modelA.safetensors", "legacy_hash": "12345678"}]
    assert facts.merged_from == ["modelA.safetensors"]
    assert fs == []


def test_no_metadata() -> None:
    assert parse_training_metadata(None) == (TrainingFacts(), [])
    assert parse_training_metadata({}) == (TrainingFacts(), [])


def test_base_hash_placeholders_and_autov2() -> None:
    facts, fs = parse_training_metadata({"ss_sd_model_hash": "e3b0c442", "ss_new_sd_model_hash": "0xZZ"})
    assert facts.base_model_hashes == {}
    assert rules(fs) == ["training.hash-claim-malformed", "training.hash-claim-placeholder"]
    facts, _ = parse_training_metadata({"ss_sd_model_hash": "6CE0161689"})
    assert facts.base_model_hashes == {"autov2": "6ce0161689"}


# -- hash claims ----------------------------------------------------------------------------------


def test_normalize_hash() -> None:
    assert normalize_hash(" 0xABCDEF12 ") == "abcdef12"
    assert normalize_hash("xyz") is None
    assert normalize_hash("") is None


AUTOV3 = hashlib.sha256(b"tensor data").hexdigest()


@pytest.mark.parametrize(
    ("key", "claimed", "outcome", "finding"),
    [
        ("sshs_model_hash", AUTOV3, "match", None),
        ("sshs_model_hash", AUTOV3.upper(), "match", None),
        ("modelspec.hash_sha256", "0x" + AUTOV3, "match", None),
        ("sshs_model_hash", AUTOV3[:12], "match", None),
        ("sshs_model_hash", "ab" * 32, "mismatch", "training.hash-claim-mismatch"),
        ("sshs_model_hash", EMPTY_SHA256, "placeholder", "training.hash-claim-placeholder"),
        ("modelspec.hash_sha256", "0x" + "0" * 64, "placeholder", "training.hash-claim-placeholder"),
        ("sshs_model_hash", "not-a-hash", "unverifiable", "training.hash-claim-malformed"),
        ("sshs_model_hash", "abc", "unverifiable", None),
        ("sshs_legacy_hash", "e3b0c442", "placeholder", "training.hash-claim-placeholder"),
        ("sshs_legacy_hash", "1234abcd", "match", None),
        ("sshs_legacy_hash", "deadbeef", "unverifiable", None),
    ],
)
def test_hash_claim_outcomes(key: str, claimed: str, outcome: str, finding: str | None) -> None:
    checks, fs = check_hash_claims({key: claimed}, {"autov3": AUTOV3, "autov1": "1234abcd"})
    assert [(c.claim_key, c.claimed, c.outcome) for c in checks] == [(key, claimed, outcome)]
    assert rules(fs) == ([finding] if finding else [])


def test_hash_claim_reasons_and_missing_computed_hash() -> None:
    checks, _ = check_hash_claims({"modelspec.hash_sha256": "0X" + AUTOV3[:10].upper()}, {"autov3": AUTOV3})
    assert checks[0].reason == "equals autov3 (0x prefix, upper case, truncated to 10 hex)"
    checks, fs = check_hash_claims({"sshs_model_hash": AUTOV3}, {"autov3": None})
    assert (checks[0].outcome, checks[0].computed, fs) == ("unverifiable", None, [])
    # a small file: its AutoV1 is the empty-input hash, so an e3b0c442 legacy claim is a true match
    checks, _ = check_hash_claims({"sshs_legacy_hash": "e3b0c442"}, {"autov1": "e3b0c442"})
    assert checks[0].outcome == "match"


@pytest.mark.skipif(not (CORPUS / "headers").is_dir(), reason=f"shared corpus not present at {CORPUS}")
def test_corpus_metadata() -> None:
    for name, trainer, words in (
        ("flux1-diffusers.json", "ai-toolkit", ["DB4RZ"]),
        ("krea2-lycoris.json", "ai-toolkit", []),
        ("sdxl-kohya.json", None, []),  # network keys and ModelSpec only: no trainer named
        ("sd15-kohya.json", None, []),
    ):
        doc = json.loads((CORPUS / "headers" / name).read_text())
        facts, fs = parse_training_metadata(doc.get("metadata"))
        assert (facts.trainer, facts.trigger_words) == (trainer, words), name
        assert fs == [], name


def _kohya_style_file(tmp_path: Path, n_elems: int) -> tuple[Path, str, str]:
    """Save like kohya's train_network: hash a copy with only the ss_* metadata (legacy = sha256 of bytes
    0x100000..0x110000, model = sha256 of the data), then write the file with modelspec + sshs_* keys."""
    import numpy as np
    from safetensors.numpy import save, save_file

    rng = np.random.default_rng(0)
    tensors = {
        "lora_unet_a.lora_down.weight": rng.standard_normal((4, n_elems // 8)).astype(np.float16),
        "lora_unet_a.lora_up.weight": rng.standard_normal((n_elems // 8, 4)).astype(np.float16),
        "lora_unet_a.alpha": np.array(4.0, dtype=np.float16),
    }
    md = {"ss_network_dim": "4", "ss_output_name": "é-unicode ✓", "modelspec.title": "t", "modelspec.sai_model_spec": "1.0.0"}
    copy = save(tensors, {k: v for k, v in md.items() if k.startswith("ss_")})
    legacy = hashlib.sha256(copy[0x100000:0x110000]).hexdigest()[:8]
    n = int.from_bytes(copy[:8], "little")
    model = hashlib.sha256(copy[8 + n :]).hexdigest()
    path = tmp_path / "kohya.safetensors"
    save_file(tensors, str(path), {**md, "sshs_model_hash": model, "sshs_legacy_hash": legacy})
    return path, legacy, model


@pytest.mark.parametrize("n_elems", [64, 1_200_000])
def test_kohya_legacy_hash_is_verified_by_rebuilding_the_copy(tmp_path: Path, n_elems: int) -> None:
    from registry.files.safetensors import read_header
    from registry.training import kohya_legacy_hashes

    path, legacy, model = _kohya_style_file(tmp_path, n_elems)
    h = read_header(path)
    raw = path.read_bytes()
    candidates = kohya_legacy_hashes(h.tensors, h.metadata, raw[h.data_start :])
    assert legacy in candidates
    autov1 = hashlib.sha256(raw[0x100000:0x110000]).hexdigest()[:8]
    autov3 = hashlib.sha256(raw[h.data_start :]).hexdigest()
    checks, fs = check_hash_claims(h.metadata, {"autov1": autov1, "autov3": autov3}, candidates)
    assert [(c.claim_key, c.outcome) for c in checks] == [("sshs_model_hash", "match"), ("sshs_legacy_hash", "match")]
    assert fs == []
    if n_elems < 1000:  # a small file: kohya's copy is under 1 MiB, so its legacy hash is the empty-input hash
        assert legacy == "e3b0c442"
    else:
        assert legacy != autov1  # the file's own AutoV1 differs: only the rebuilt copy explains the claim
        assert checks[1].reason.startswith("equals the AutoV1 of the copy kohya hashed (ss_* metadata only, header ")


def test_parse_never_raises_on_arbitrary_values() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    keys = st.sampled_from(sorted(KOHYA) + ["ss_datasets", "lora_adapter_metadata", "software", "training_info",
                                            "sd_merge_recipe", "sd_merge_models", "modelspec.trigger_phrase", "modelspec.date"])  # fmt: skip
    values = st.one_of(
        st.text(max_size=40),
        st.sampled_from(["True", "None", "NaN", "[1, NaN]", '{"a": {"b": [1e999]}}', "[[[[]]]]", "1e400", "-0", "{'x': (1, 2)}"]),
        st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=10).map(
            lambda v: json.dumps(v)),
    )  # fmt: skip

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(keys, values, max_size=12))
    def check(md: dict[str, str]) -> None:
        facts, _ = parse_training_metadata(md)
        json.dumps(facts.to_dict(), allow_nan=False)  # what the analyzer stores must be valid JSON
        check_hash_claims(md, {"autov3": AUTOV3, "autov1": "1234abcd"})

    check()
