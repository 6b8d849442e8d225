"""Contradiction rules between a declaration and the evidence, and the overfitting indicators.

Every rule has a positive test (the contradiction is found, with exact message and evidence) and a
negative one (a consistent declaration is quiet). TrainingFacts are built directly."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from registry import declarations as d
from registry.findings import RULES, Finding, Severity
from registry.training import DatasetDir, TrainingFacts

SHA = "5d9b8a3c0f1e2d4b6a7c8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d"
V3 = "3c1d5e7f9a0b2c4d6e8f0a1b3c5d7e9f1a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d"
OTHER = "f" * 64
BASE = "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6ffb79c80c4fb"


def decl(**top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": "1.0",
        "model": {"sha256": SHA},
        "declarant": {"name": "Jane Doe"},
        "date": "2025-03-14",
        "training": {"method": "lora"},
        "datasets": [{"name": "Anya drawings", "license": "CC-BY-4.0", "itemCount": 19}],
    }
    doc.update(copy.deepcopy(top))
    assert d.validate(doc) == [], d.validate(doc)
    return doc


def facts(**kw: Any) -> TrainingFacts:
    return TrainingFacts(**kw)


def dirs() -> list[DatasetDir]:
    return [
        DatasetDir("10_anya", n_repeats=10, img_count=15),
        DatasetDir("5_bg", n_repeats=5, img_count=4),
    ]


def run(rule_id: str, doc: dict[str, Any], **evidence: Any) -> list[Finding]:
    assert rule_id in {c.rule.id for c in d.CHECKS}
    return [f for f in d.check_declaration(doc, **evidence) if f.rule_id == rule_id]


def test_rule_catalogue_is_stable() -> None:
    ids = [c.rule.id for c in d.CHECKS]
    assert ids == [
        "declaration.hash-mismatch",
        "declaration.image-count.distinct",
        "declaration.image-count.total",
        "declaration.base-model.missing",
        "declaration.base-model.hash",
        "declaration.base-model.name",
        "declaration.base-model.registered",
        "declaration.architecture",
        "declaration.method",
        "declaration.undeclared-trigger-word",
        "declaration.undeclared-tag",
        "declaration.real-persons",
        "declaration.characters",
        "declaration.license",
    ]
    for i in ids:
        assert RULES[i].help and RULES[i].title


def test_no_evidence_no_findings() -> None:
    assert d.check_declaration(decl()) == []
    assert d.check_declaration(d.template(), facts=TrainingFacts()) == []


# -- hash mismatch ------------------------------------------------------------------------------------


def test_hash_mismatch_negative() -> None:
    doc = decl(model={"sha256": SHA.upper(), "autov3": V3[:12]})
    assert run("declaration.hash-mismatch", doc, file_hashes={"sha256": SHA, "autov3": V3}) == []


def test_hash_mismatch_other_file() -> None:
    [f] = run("declaration.hash-mismatch", decl(), file_hashes={"sha256": OTHER, "autov3": V3})
    assert f.severity is Severity.HIGH
    assert f.message == f"declaration covers sha256 {SHA}; this file is {OTHER}"
    assert f.evidence == {"declared": {"sha256": SHA, "autov3": None}, "file": {"sha256": OTHER, "autov3": V3}}


def test_hash_mismatch_same_weights_other_metadata_is_low() -> None:
    doc = decl(model={"sha256": SHA, "autov3": V3[:12]})
    [f] = run("declaration.hash-mismatch", doc, file_hashes={"sha256": OTHER, "autov3": V3})
    assert f.severity is Severity.LOW
    assert f.message.endswith("but the declared AutoV3 matches: same weights, different metadata")


def test_hash_mismatch_by_autov3_only() -> None:
    doc = decl(model={"autov3": V3})
    [f] = run("declaration.hash-mismatch", doc, file_hashes={"sha256": SHA, "autov3": OTHER})
    assert f.message == f"declaration covers AutoV3 {V3}; this file's AutoV3 is {OTHER}"
    assert run("declaration.hash-mismatch", doc, file_hashes={"sha256": SHA, "autov3": V3}) == []
    assert run("declaration.hash-mismatch", doc, file_hashes={"sha256": SHA, "autov3": None}) == []


# -- image counts ---------------------------------------------------------------------------------------


def test_distinct_count_negative() -> None:
    assert run("declaration.image-count.distinct", decl(), facts=facts(datasets=dirs())) == []


def test_distinct_count_positive() -> None:
    doc = decl(datasets=[{"name": "Anya drawings", "license": "CC-BY-4.0", "itemCount": 25}])
    [f] = run("declaration.image-count.distinct", doc, facts=facts(datasets=dirs()))
    assert f.message == "declaration says 25 distinct training image(s); the file's training folders hold 19"
    assert f.evidence["declared"] == 25 and f.evidence["embedded"] == 19
    assert f.evidence["embedded_dirs"] == [
        {"dir": "10_anya", "img_count": 15, "n_repeats": 10},
        {"dir": "5_bg", "img_count": 4, "n_repeats": 5},
    ]


def test_regularisation_images_must_be_declared() -> None:
    fx = facts(datasets=[*dirs(), DatasetDir("1_woman", n_repeats=1, img_count=200, is_reg=True)])
    [f] = run("declaration.image-count.distinct", decl(), facts=fx)
    assert f.message == "declaration says 0 distinct regularization image(s); the file's training folders hold 200"
    doc = decl(
        datasets=[
            {"name": "Anya drawings", "license": "CC-BY-4.0", "itemCount": 19},
            {"name": "class images", "license": "CC0-1.0", "itemCount": 200, "role": "regularization"},
        ]
    )
    assert run("declaration.image-count.distinct", doc, facts=fx) == []
    # declared regularisation images that the file's folders do not have
    [f] = run("declaration.image-count.distinct", doc, facts=facts(datasets=dirs()))
    assert f.evidence["role"] == "regularization" and f.evidence["embedded"] == 0


def test_total_count_with_declared_repeats() -> None:
    ok = decl(
        datasets=[
            {"name": "Anya", "license": "CC-BY-4.0", "itemCount": 15, "repeats": 10},
            {"name": "Backgrounds", "license": "CC-BY-4.0", "itemCount": 4, "repeats": 5},
        ]
    )
    fx = facts(num_train_images=170, num_reg_images=0)
    assert run("declaration.image-count.total", ok, facts=fx) == []
    bad = copy.deepcopy(ok)
    bad["datasets"][0]["repeats"] = 8
    [f] = run("declaration.image-count.total", bad, facts=fx)
    assert f.message == "declared training images × repeats = 140; the file's ss_num_train_images is 170"
    assert f.evidence["declared_images_x_repeats"] == 140


def test_total_count_without_repeats_is_a_lower_bound() -> None:
    fx = facts(num_train_images=170)
    assert run("declaration.image-count.total", decl(), facts=fx) == []  # 19 images, repeats unknown
    doc = decl(datasets=[{"name": "Anya drawings", "license": "CC-BY-4.0", "itemCount": 200}])
    [f] = run("declaration.image-count.total", doc, facts=fx)
    assert f.message == (
        "declaration says 200 distinct training image(s), more than the 170 the trainer counted including "
        "repeats (ss_num_train_images)"
    )


def test_total_count_for_regularisation() -> None:
    doc = decl(
        datasets=[
            {"name": "Anya drawings", "license": "CC-BY-4.0", "itemCount": 19},
            {"name": "class", "license": "CC0-1.0", "itemCount": 100, "repeats": 2, "role": "regularization"},
        ]
    )
    assert run("declaration.image-count.total", doc, facts=facts(num_train_images=170, num_reg_images=200)) == []
    [f] = run("declaration.image-count.total", doc, facts=facts(num_train_images=170, num_reg_images=0))
    assert f.message == "declared regularization images × repeats = 200; the file's ss_num_reg_images is 0"


# -- base model ----------------------------------------------------------------------------------------


def test_base_missing() -> None:
    fx = facts(base_model_name="sd_xl_base_1.0.safetensors", base_model_hashes={"sha256": BASE})
    [f] = run("declaration.base-model.missing", decl(), facts=fx)
    assert f.message == (
        f"the file says it was trained from sd_xl_base_1.0.safetensors (sha256 {BASE}); the declaration "
        "names no base model"
    )
    assert run("declaration.base-model.missing", decl(baseModels=[{"name": "SDXL"}]), facts=fx) == []
    assert run("declaration.base-model.missing", decl(), facts=facts()) == []


def test_base_hash_negative() -> None:
    fx = facts(base_model_hashes={"sha256": BASE, "autov1": "be9edd61"})
    doc = decl(baseModels=[{"name": "SDXL", "hashes": {"sha256": BASE, "autov1": "BE9EDD61"}}])
    assert run("declaration.base-model.hash", doc, facts=fx) == []
    # AutoV2 is the first 10 hex of the SHA-256
    doc = decl(baseModels=[{"name": "SDXL", "hashes": {"autov2": BASE[:10]}}])
    assert run("declaration.base-model.hash", doc, facts=facts(base_model_hashes={"sha256": BASE})) == []


def test_base_hash_positive() -> None:
    fx = facts(base_model_hashes={"sha256": BASE, "autov1": "be9edd61"}, base_model_name="sdxl.safetensors")
    doc = decl(baseModels=[{"name": "SDXL", "hashes": {"sha256": OTHER, "autov1": "12345678"}}])
    fs = run("declaration.base-model.hash", doc, facts=fx)
    assert [f.message for f in fs] == [
        "the file's embedded base autov1 is be9edd61; no declared base model has it",
        f"the file's embedded base sha256 is {BASE}; no declared base model has it",
    ]
    assert fs[1].evidence["declared"] == {"sha256": [OTHER], "autov1": ["12345678"]}


def test_base_hash_ignores_empty_string_placeholders() -> None:
    fx = facts(base_model_hashes={"sha256": d.EMPTY_SHA256, "autov1": "e3b0c442"})
    doc = decl(baseModels=[{"name": "SDXL", "hashes": {"sha256": BASE, "autov1": "be9edd61"}}])
    assert run("declaration.base-model.hash", doc, facts=fx) == []
    assert run("declaration.base-model.missing", decl(), facts=fx) == []


def test_base_name() -> None:
    fx = facts(base_model_name="/models/sd_xl_base_1.0.safetensors")
    ok = decl(baseModels=[{"name": "Stable Diffusion XL 1.0 Base"}])
    assert run("declaration.base-model.name", ok, facts=fx) == []
    assert run("declaration.base-model.name", decl(baseModels=[{"name": "x", "fileName": "SD_XL_BASE_1.0.safetensors"}]), facts=fx) == []
    bad = decl(baseModels=[{"name": "Pony Diffusion V6 XL"}])
    [f] = run("declaration.base-model.name", bad, facts=fx)
    assert f.severity is Severity.LOW
    assert f.message == "the file names its base '/models/sd_xl_base_1.0.safetensors'; the declaration names 'Pony Diffusion V6 XL'"
    # a comparable hash decides instead of the name
    fx2 = facts(base_model_name="/models/sd_xl_base_1.0.safetensors", base_model_hashes={"sha256": BASE})
    bad_h = decl(baseModels=[{"name": "Pony Diffusion V6 XL", "hashes": {"sha256": BASE}}])
    assert run("declaration.base-model.name", bad_h, facts=fx2) == []


@pytest.mark.parametrize(
    ("declared", "embedded", "match"),
    [
        ("Stable Diffusion 1.5", "runwayml/stable-diffusion-v1-5", True),
        ("SDXL 1.0 base", "sd_xl_base_1.0.safetensors", True),
        ("v1-5-pruned-emaonly", "C:\\models\\v1-5-pruned-emaonly.ckpt", True),
        ("Stable Diffusion 1.5", "sd_xl_base_1.0.safetensors", False),
        ("Illustrious XL", "noobaiXLNAIXL_vPred10Version.safetensors", False),
    ],
)
def test_base_names_match(declared: str, embedded: str, match: bool) -> None:
    assert d.base_names_match(declared, embedded) is match


def test_base_registered() -> None:
    registered = [{"sha256": BASE, "autov1": "be9edd61", "name": "sd_xl_base_1.0", "arch": "sdxl"}]
    fx = facts(base_model_hashes={"autov1": "be9edd61"})
    ok = decl(baseModels=[{"name": "SDXL", "hashes": {"sha256": BASE}}], training={"method": "lora", "baseArchitecture": "sdxl"})
    assert run("declaration.base-model.registered", ok, facts=fx, registered_bases=registered) == []
    bad = decl(baseModels=[{"name": "SDXL", "hashes": {"sha256": OTHER}}])
    [f] = run("declaration.base-model.registered", bad, facts=fx, registered_bases=registered)
    assert f.message == (
        f"the file's base hash points to registered model {BASE} (sd_xl_base_1.0); the declared base hashes "
        "are different"
    )
    # the declared base is registered, with another architecture than declared
    wrong_arch = decl(baseModels=[{"name": "SDXL", "hashes": {"sha256": BASE}}], training={"method": "lora", "baseArchitecture": "sd1"})
    [f] = run("declaration.base-model.registered", wrong_arch, registered_bases=registered)
    assert f.message == "the declared base is registered as a sdxl model; the declaration says sd1"


# -- architecture and method -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "arch", ["sdxl", "SDXL", "sdxl-base", "sdxl-refiner", "stable-diffusion-xl-v1-base/lora", "sdxl_base_v1-0", None, "unknown", ""]
)
def test_architecture_negative(arch: str | None) -> None:
    doc = decl(training={"method": "lora", "baseArchitecture": "sdxl"})
    assert run("declaration.architecture", doc, identification={"kind": "lora", "arch": arch}) == []


def test_architecture_positive() -> None:
    doc = decl(training={"method": "lora", "baseArchitecture": "sdxl"})
    [f] = run("declaration.architecture", doc, identification={"kind": "lora", "adapter_type": "lora", "arch": "flux.1-dev"})
    assert f.message == "declaration says sdxl; the tensor shapes say flux1 (flux.1-dev)"
    assert f.severity is Severity.HIGH
    [f] = run("declaration.architecture", doc, identification={"arch": "other:wan"})
    assert f.evidence["identified_normalized"] == "other"
    [f] = run("declaration.architecture", doc, identification={"arch": "sd1", "source": "metadata"})
    assert f.severity is Severity.LOW
    assert f.message == "declaration says sdxl; the file's metadata says sd1 (sd1)"


@pytest.mark.parametrize(
    ("training", "ident"),
    [
        ({"method": "lora"}, {"kind": "lora", "adapter_type": "lora"}),
        ({"method": "lora"}, {"kind": "lora", "adapter_type": "locon"}),
        ({"method": "dreambooth-lora"}, {"kind": "lora"}),
        ({"method": "lycoris", "lycorisAlgorithm": "loha"}, {"kind": "lycoris", "adapter_type": "loha"}),
        ({"method": "lycoris", "lycorisAlgorithm": "locon"}, {"kind": "lora", "adapter_type": "lora"}),
        ({"method": "lycoris"}, {"kind": "lycoris", "adapter_type": "lokr"}),
        ({"method": "full-finetune"}, {"kind": "checkpoint"}),
        ({"method": "dreambooth"}, {"kind": "checkpoint"}),
        ({"method": "textual-inversion"}, {"kind": "embedding"}),
        ({"method": "other"}, {"kind": "vae"}),
        ({"method": "lora"}, {"kind": "unknown"}),
        # identification's own vocabulary (registry/identify.py)
        ({"method": "lora"}, {"kind": "lora", "adapter_type": "kohya-lora", "arch": "sdxl-base"}),
        ({"method": "lora"}, {"kind": "lora", "adapter_type": "peft-lora"}),
        ({"method": "lycoris", "lycorisAlgorithm": "full"}, {"kind": "lycoris", "adapter_type": "full-diff"}),
        ({"method": "lycoris", "lycorisAlgorithm": "boft"}, {"kind": "lycoris", "adapter_type": "oft"}),
    ],
)
def test_method_negative(training: dict[str, Any], ident: dict[str, Any]) -> None:
    assert run("declaration.method", decl(training=training), identification=ident) == []


@pytest.mark.parametrize(
    ("training", "ident", "message"),
    [
        ({"method": "lora"}, {"kind": "lycoris", "adapter_type": "loha"}, "declaration says lora; the file is lycoris / loha (from identification)"),
        ({"method": "lycoris", "lycorisAlgorithm": "lokr"}, {"kind": "lycoris", "adapter_type": "loha"}, "declaration says lycoris (lokr); the file is lycoris / loha (from identification)"),
        ({"method": "full-finetune"}, {"kind": "lora", "adapter_type": "lora"}, "declaration says full-finetune; the file is lora / lora (from identification)"),
        ({"method": "textual-inversion"}, {"kind": "checkpoint"}, "declaration says textual-inversion; the file is checkpoint (from identification)"),
        ({"method": "lora"}, {"kind": "vae"}, "declaration says lora; the file is vae (from identification)"),
        ({"method": "lora"}, {"kind": "controlnet", "adapter_type": "control-lora"}, "declaration says lora; the file is controlnet / control-lora (from identification)"),
        ({"method": "lycoris"}, {"kind": "text_encoder"}, "declaration says lycoris; the file is text_encoder (from identification)"),
    ],
)
def test_method_positive(training: dict[str, Any], ident: dict[str, Any], message: str) -> None:
    [f] = run("declaration.method", decl(training=training), identification=ident)
    assert f.message == message
    assert f.severity is Severity.HIGH


def test_method_from_metadata_when_not_identified() -> None:
    fx = facts(network_module="lycoris.kohya", network_args={"algo": "lokr"})
    [f] = run("declaration.method", decl(), facts=fx)
    assert f.severity is Severity.LOW
    assert f.message == "declaration says lora; the file is lycoris / lokr (from metadata)"
    assert run("declaration.method", decl(), facts=facts(network_module="networks.lora")) == []


# -- terms ---------------------------------------------------------------------------------------------


def test_undeclared_trigger_word() -> None:
    fx = facts(trigger_words=["ohwx anya", "ohwx anya"])
    [f] = run("declaration.undeclared-trigger-word", decl(), facts=fx)
    assert f.message == "trigger word 'ohwx anya' is not mentioned in the declaration"
    doc = decl(training={"method": "lora", "triggerWords": ["OHWX_Anya"]})
    assert run("declaration.undeclared-trigger-word", doc, facts=fx) == []


def test_trigger_word_sources() -> None:
    fx = facts(trigger_words=["zkx", "mira", "pink hair", "blorp"])
    fx.trigger_sources = {"zkx": "modelspec.trigger_phrase", "mira": "folder:10_mira", "pink hair": "tags:10_mira", "blorp": "tags:10_mira"}  # type: ignore[attr-defined]
    fs = run("declaration.undeclared-trigger-word", decl(), facts=fx)
    assert [(f.evidence["term"], f.severity.label) for f in fs] == [("zkx", "medium"), ("mira", "low")]
    assert fs[1].message == "trigger word 'mira' (the name of training folder '10_mira') is not mentioned in the declaration"
    # a trigger word inferred from tags is the tag rule's business
    fx.tag_frequency = {"10_mira": {"blorp": 10, "pink hair": 10}}
    assert [f.evidence["term"] for f in run("declaration.undeclared-tag", decl(), facts=fx)] == ["blorp"]


TAGS = {
    "10_anya": {
        "anya forger": 15,
        "1girl": 15,
        "pink hair": 14,
        "green eyes": 15,
        "smile": 9,
        "eden academy uniform": 12,
        "rare tag": 2,
    }
}


def test_undeclared_frequent_tags() -> None:
    fx = facts(datasets=dirs(), tag_frequency=TAGS)
    fs = run("declaration.undeclared-tag", decl(), facts=fx)
    assert [f.evidence["term"] for f in fs] == ["anya forger", "eden academy uniform"]
    assert fs[1].message == (
        "tag 'eden academy uniform' is in 12 of 15 captions of folder '10_anya' (80%) but the declaration "
        "never mentions it"
    )
    assert fs[1].evidence["share"] == 0.8
    doc = copy.deepcopy(decl())
    doc["datasets"][0]["description"] = "Drawings of Anya Forger in her Eden Academy uniform."
    assert run("declaration.undeclared-tag", doc, facts=fx) == []


def test_undeclared_tags_without_folder_sizes_use_the_top_tag() -> None:
    fx = facts(tag_frequency={"x": {"zzchar": 10, "mystic sword": 4, "other": 6}})
    fs = run("declaration.undeclared-tag", decl(), facts=fx)
    assert [(f.evidence["term"], f.evidence["captions"]) for f in fs] == [("zzchar", 10), ("other", 10)]


def test_undeclared_tags_are_capped() -> None:
    tags = {f"term{i:02d}": 10 for i in range(30)}
    fs = run("declaration.undeclared-tag", decl(), facts=facts(tag_frequency={"d": tags}))
    assert len(fs) == d.MAX_TAG_FINDINGS
    assert fs[0].evidence["not_reported"] == 10


@pytest.mark.parametrize(
    ("term", "mentioned"),
    [("Anya_(Spy_x_Family)", True), ("anya", True), ("spy family", True), ("eden", False), ("x", True)],
)
def test_is_mentioned(term: str, mentioned: bool) -> None:
    text = d.normalize_term("Anya from Spy x Family")
    assert d.is_mentioned(term, text) is mentioned


# -- real persons / characters -------------------------------------------------------------------------


def _no(person: bool = True) -> dict[str, Any]:
    key = "depictsRealPersons" if person else "depictsCharacters"
    return decl(datasets=[{"name": "set", "license": "CC-BY-4.0", "itemCount": 20, key: "no"}])


def test_real_persons_from_photographic_tags() -> None:
    fx = facts(tag_frequency={"d": {"1girl": 20, "photo": 18, "realistic": 20, "smile": 3}})
    [f] = run("declaration.real-persons", _no(), facts=fx)
    assert f.severity is Severity.MEDIUM
    assert f.message == (
        "declaration says the data depicts no real persons; heuristic on caption tags, not a finding that a "
        "person is depicted: human-figure tags (1girl) occur with photographic-style tags (photo, realistic)"
    )
    assert f.evidence["indicators"] == {
        "human": {"1girl": 20}, "photographic": {"photo": 18, "realistic": 20}, "unclassified_multiword": {}
    }


def test_real_persons_from_unclassified_tags_is_low_and_says_it_is_a_heuristic() -> None:
    fx = facts(datasets=[DatasetDir("d", 1, 10)], tag_frequency={"d": {"woman": 10, "jane smith": 9, "red dress": 9}})
    [f] = run("declaration.real-persons", _no(), facts=fx)
    assert f.severity is Severity.LOW
    assert f.evidence["indicators"]["unclassified_multiword"] == {"jane smith": 9}
    assert f.message == (
        "declaration says the data depicts no real persons; heuristic on caption tags, not a finding that a "
        "person is depicted: human-figure tags (woman) occur with frequent multi-word tags that the heuristic "
        "could not classify as descriptive (a name would match, so would other tags) (jane smith)"
    )
    assert "name-like" not in f.message and "describe people" not in f.message


@pytest.mark.parametrize(
    "tags",
    [
        # clothing and accessories (the tags of a real LoKr's captions)
        {"center frills": 9, "wrist cuffs": 9, "wrist scrunchie": 9, "black bowtie": 9, "pom pom": 9},
        # objects and scenery
        {"coffee cup": 9, "night sky": 9, "school building": 9, "simple background": 9},
        # styles and media
        {"traditional media": 9, "oil painting": 9, "cel shading": 9, "watercolor pencil": 9},
    ],
    ids=["clothing", "objects", "styles"],
)
def test_clothing_object_and_style_tags_are_not_unclassified(tags: dict[str, int]) -> None:
    fx = facts(datasets=[DatasetDir("d", 1, 10)], tag_frequency={"d": {"portrait": 10, **tags}})
    assert run("declaration.real-persons", _no(), facts=fx) == []
    from registry.declarations import person_indicators

    assert person_indicators(fx)["unclassified_multiword"] == {}


def test_real_persons_negative() -> None:
    drawn = facts(tag_frequency={"d": {"1girl": 20, "smile": 20, "anime coloring": 20}})
    assert run("declaration.real-persons", _no(), facts=drawn) == []
    photo = facts(tag_frequency={"d": {"1girl": 20, "photo": 20}})
    said_yes = decl(datasets=[{"name": "s", "license": "MIT", "itemCount": 1, "depictsRealPersons": "yes"}])
    assert run("declaration.real-persons", said_yes, facts=photo) == []
    assert run("declaration.real-persons", decl(), facts=photo) == []  # never said "no"


def test_real_persons_probe_hook() -> None:
    probe = {"subjects": [{"kind": "person", "score": 0.71, "threshold": 0.5, "label": "face cluster 1"},
                          {"kind": "person", "score": 0.2, "threshold": 0.5}]}
    [f] = run("declaration.real-persons", _no(), probe=probe)
    assert f.severity is Severity.HIGH and f.evidence["source"] == "probe"
    assert f.evidence["probe_subjects"] == [probe["subjects"][0]]
    assert run("declaration.real-persons", _no(), probe={"subjects": [{"kind": "person", "score": 0.1, "threshold": 0.5}]}) == []


def test_characters_from_tags() -> None:
    fx = facts(tag_frequency={"d": {"anya_(spy_x_family)": 12, "1girl": 12}})
    [f] = run("declaration.characters", _no(person=False), facts=fx)
    assert f.message == "declaration says the data depicts no characters; the captions have character tags (anya_(spy_x_family))"
    fx = facts(tag_frequency={"d": {"cosplay": 3}})
    assert len(run("declaration.characters", _no(person=False), facts=fx)) == 1


def test_characters_negative() -> None:
    fx = facts(tag_frequency={"d": {"ilya kuvshinov \\(artist\\)": 12, "watercolor (medium)": 12, "1girl": 12}})
    assert run("declaration.characters", _no(person=False), facts=fx) == []
    fx = facts(tag_frequency={"d": {"anya_(spy_x_family)": 12}})
    assert run("declaration.characters", decl(), facts=fx) == []


def test_characters_probe_hook() -> None:
    probe = {"subjects": [{"kind": "character", "score": 0.9, "threshold": 0.8}]}
    [f] = run("declaration.characters", _no(person=False), probe=probe)
    assert f.severity is Severity.HIGH


# -- licence -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "embedded"),
    [
        ("CreativeML-OpenRAIL-M", "creativeml-openrail-m"),
        ("CreativeML-OpenRAIL-M", "CreativeML OpenRAIL-M"),
        ("Apache-2.0", "Apache 2.0"),
        ("CC-BY-NC-4.0", "https://creativecommons.org/licenses/by-nc/4.0/"),
        ("CC0-1.0", "https://creativecommons.org/publicdomain/zero/1.0/"),
        ("MIT", "https://spdx.org/licenses/MIT.html"),
        ("MIT OR Apache-2.0", "apache-2.0"),
        ("LicenseRef-Studio-Terms", "studio-terms"),
        ("NOASSERTION", "MIT"),
        ("MIT", "unknown"),
    ],
)
def test_license_negative(declared: str, embedded: str) -> None:
    doc = decl(model={"sha256": SHA, "license": declared})
    assert run("declaration.license", doc, facts=facts(license=embedded)) == []


@pytest.mark.parametrize(
    ("declared", "embedded"),
    [("MIT", "CC-BY-NC-4.0"), ("MIT", "MIT AND CC-BY-4.0"), ("CreativeML-OpenRAIL-M", "openrail++")],
)
def test_license_positive(declared: str, embedded: str) -> None:
    doc = decl(model={"sha256": SHA, "license": declared})
    [f] = run("declaration.license", doc, facts=facts(license=embedded))
    assert f.message == f"declaration says the model's licence is {declared!r}; the file says {embedded!r} (modelspec.license)"


# -- indicators ----------------------------------------------------------------------------------------


def _by_id(inds: list[d.Indicator], source: str) -> dict[str, d.Indicator]:
    return {i.id: i for i in inds if i.source == source}


def test_embedded_indicators_exact() -> None:
    fx = facts(
        datasets=[*dirs(), DatasetDir("1_woman", n_repeats=1, img_count=200, is_reg=True)],
        num_train_images=170,
        epoch=8,
        epochs=10,
        steps=680,
        max_train_steps=850,
        batch_size=2,
        network_dim=32,
    )
    ind = _by_id(d.overfitting_indicators(fx, n_parameters=1900), "embedded")
    values = {k: v.value for k, v in ind.items()}
    assert values == {
        "distinct_images": 19,
        "images_per_epoch": 170,
        "trainer_image_count": 170,
        "mean_repeats": 170 / 19,
        "epochs": 8,
        "exposures_per_image": 170 * 8 / 19,
        "steps_per_distinct_image": 680 / 19,
        "samples_per_distinct_image": 680 * 2 / 19,
        "rank_per_image": 32 / 19,
        "parameters_per_image": 100.0,
    }
    assert ind["exposures_per_image"].formula == "images_per_epoch × epochs / distinct_images"
    assert ind["exposures_per_image"].inputs == {"images_per_epoch": 170, "epochs": 8, "distinct_images": 19}
    assert ind["steps_per_distinct_image"].inputs == {"ss_steps": 680, "distinct_images": 19}
    assert ind["epochs"].inputs == {"ss_epoch": 8}
    assert ind["images_per_epoch"].inputs == {
        "folders": {"10_anya": {"img_count": 15, "n_repeats": 10}, "5_bg": {"img_count": 4, "n_repeats": 5}}
    }
    assert all(i.missing == [] for i in ind.values())


def test_indicators_name_what_is_missing() -> None:
    fx = facts(num_train_images=170, max_train_steps=850, network_dim=None)
    ind = _by_id(d.overfitting_indicators(fx), "embedded")
    assert ind["images_per_epoch"].value == 170
    assert ind["images_per_epoch"].formula == "ss_num_train_images (kohya: Σ img_count × n_repeats)"
    assert ind["distinct_images"].value is None
    assert ind["mean_repeats"].value is None and ind["mean_repeats"].missing == ["distinct_images"]
    assert ind["steps_per_distinct_image"].inputs == {"ss_max_train_steps": 850, "distinct_images": None}
    assert ind["rank_per_image"].missing == ["ss_network_dim", "distinct_images"]
    assert ind["epochs"].missing == ["ss_num_epochs"]


def test_declared_indicators_exact() -> None:
    doc = decl(
        training={"method": "lora", "settings": {"epochs": 10, "maxTrainSteps": 850, "batchSize": 2, "networkRank": 32}},
        datasets=[
            {"name": "Anya", "license": "CC-BY-4.0", "itemCount": 15, "repeats": 10},
            {"name": "Backgrounds", "license": "CC-BY-4.0", "itemCount": 4, "repeats": 5},
            {"name": "class", "license": "CC0-1.0", "itemCount": 200, "repeats": 1, "role": "regularization"},
        ],
    )
    fx = facts(datasets=[DatasetDir("10_anya", 10, 15), DatasetDir("5_bg", 5, 5)])
    ind = _by_id(d.overfitting_indicators(fx, doc), "declared")
    assert {k: v.value for k, v in ind.items()} == {
        "distinct_images": 19,
        "images_per_epoch": 170,
        "exposures_per_image": 170 * 10 / 19,
        "steps_per_distinct_image": 850 / 19,
        "samples_per_distinct_image": 850 * 2 / 19,
        "rank_per_image": 32 / 19,
        "declared_vs_embedded_images": 19 / 20,
    }
    assert ind["declared_vs_embedded_images"].inputs == {"declared_distinct_images": 19, "embedded_distinct_images": 20}
    assert ind["declared_vs_embedded_images"].as_dict()["formula"] == "Σ itemCount (declared) / Σ img_count (ss_dataset_dirs)"


def test_declared_indicators_without_repeats() -> None:
    ind = _by_id(d.overfitting_indicators(None, decl()), "declared")
    assert ind["distinct_images"].value == 19
    assert ind["images_per_epoch"].value is None and ind["images_per_epoch"].missing == ["datasets"]
    assert ind["declared_vs_embedded_images"].missing == ["embedded_distinct_images"]
