"""Sidecar claims (registry/sidecars.py) and SARIF rendering (registry/sarif.py)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from registry.findings import RULES, Severity
from registry.sarif import artifact_uri, fingerprint, relative_uri, sarif_log
from registry.sidecars import compare, find_sidecars, hash_agreement, parse_sidecar, sidecar_for

SCHEMA = json.loads((Path(__file__).parent / "data" / "sarif-schema-2.1.0.json").read_text())

SHA = "a" * 64
COMPUTED = {
    "sha256": SHA,
    "autov1": "12345678",
    "autov2": SHA[:10],
    "autov3": "b" * 64,
    "blake3": "c" * 64,
    "crc32": "0d4a1185",  # zlib's value of "hello world"
}

CIVITAI_INFO = {
    "id": 4242,
    "modelId": 99,
    "name": "v1.0",
    "baseModel": "SD 1.5",
    "trainedWords": ["sks person", " ", 3],
    "model": {"name": "Some LoRA", "type": "LORA", "nsfw": False, "poi": True},
    "creator": {"username": "someone"},
    "files": [
        {"name": "other.yaml", "hashes": {"SHA256": "F" * 64}},
        {
            "name": "some.safetensors",
            "primary": True,
            "hashes": {
                "SHA256": SHA.upper(),
                "AutoV1": "12345678",
                "AutoV2": SHA[:10].upper(),
                "AutoV3": ("b" * 12).upper(),
                "BLAKE3": ("c" * 64).upper(),
                "CRC32": "85114A0D",  # Civitai's byte order
            },
        },
    ],
}

CM_INFO = {
    "ModelId": 99,
    "ModelName": "Some LoRA",
    "ModelDescription": "<p>…</p>",
    "Nsfw": False,
    "Tags": ["person"],
    "ModelType": "LORA",
    "VersionId": 4242,
    "VersionName": "v1.0",
    "BaseModel": "SD 1.5",
    "Hashes": {"SHA256": SHA.upper(), "CRC32": "85114A0D", "BLAKE3": ("c" * 64).upper()},
    "TrainedWords": ["sks person"],
    "ImportedAt": "2024-01-02T03:04:05+00:00",
}


def test_sidecar_names(tmp_path: Path) -> None:
    assert sidecar_for("x.civitai.info") == ("x", "civitai-info")
    assert sidecar_for("my.model.cm-info.json") == ("my.model", "cm-info")
    assert sidecar_for(".civitai.info") is None
    assert sidecar_for("x.json") == ("x", "a1111-json")
    assert sidecar_for("x.yaml") is None
    m = tmp_path / "some.safetensors"
    (tmp_path / "some.civitai.info").write_text("{}")
    (tmp_path / "some.cm-info.json").write_text("{}")
    assert find_sidecars(m) == [("civitai-info", tmp_path / "some.civitai.info"), ("cm-info", tmp_path / "some.cm-info.json")]
    assert find_sidecars(m, {"some.cm-info.json"}) == [("cm-info", tmp_path / "some.cm-info.json")]


def test_parse_civitai_info(tmp_path: Path) -> None:
    p = tmp_path / "some.civitai.info"
    p.write_text(json.dumps(CIVITAI_INFO))
    c = parse_sidecar("civitai-info", p, "some.safetensors")
    assert c.as_dict() == {
        "kind": "civitai-info",
        "path": str(p),
        "name": "Some LoRA",
        "version_name": "v1.0",
        "creator": "someone",
        "base_model": "SD 1.5",
        "model_type": "LORA",
        "model_id": 99,
        "version_id": 4242,
        "nsfw": False,
        "poi": True,
        "trained_words": ["sks person"],
        "hashes": {
            "sha256": SHA,
            "autov1": "12345678",
            "autov2": SHA[:10],
            "autov3": "b" * 12,
            "blake3": "c" * 64,
            "crc32": "85114a0d",
        },
        "file_name": "some.safetensors",
    }
    assert compare(c, COMPUTED, "/m/some.safetensors") == ("match", [])
    assert hash_agreement(c, COMPUTED) == dict.fromkeys(("sha256", "autov1", "autov2", "autov3", "blake3", "crc32"), True)


def test_parse_cm_info_and_mismatch(tmp_path: Path) -> None:
    p = tmp_path / "some.cm-info.json"
    p.write_text(json.dumps(CM_INFO), encoding="utf-8")
    c = parse_sidecar("cm-info", p)
    assert (c.name, c.version_name, c.base_model, c.model_id, c.version_id, c.trained_words) == (
        "Some LoRA",
        "v1.0",
        "SD 1.5",
        99,
        4242,
        ("sks person",),
    )
    other = dict(COMPUTED, sha256="d" * 64, blake3="e" * 64, crc32="00000000", autov3="f" * 64)
    verdict, (f,) = compare(c, other, "/m/some.safetensors")
    assert verdict == "mismatch"
    assert f.rule_id == "sidecar.hash-mismatch" and f.severity == Severity.MEDIUM
    assert f.message == "some.cm-info.json says this is 'Some LoRA' 'v1.0', but its blake3, crc32, sha256 do not match some.safetensors"
    assert f.evidence["claimed"] == {"blake3": "c" * 64, "crc32": "85114a0d", "sha256": SHA}
    assert f.evidence["computed"] == {"blake3": "e" * 64, "crc32": "00000000", "sha256": "d" * 64}


def test_whole_file_crc32_match_is_not_called_edited(tmp_path: Path) -> None:
    """Issue 20: SHA-256, AutoV2 and BLAKE3 wrong but the whole-file CRC32 right: the bytes did not change
    by the CRC's account, so "file edited" would contradict the sidecar; it is a mismatch that says so."""
    p = tmp_path / "some.civitai.info"
    p.write_text(json.dumps(CIVITAI_INFO))
    c = parse_sidecar("civitai-info", p, "some.safetensors")
    computed = dict(COMPUTED, sha256="d" * 64, autov2="d" * 10, blake3="e" * 64)  # crc32 and autov3 agree
    verdict, (f,) = compare(c, computed, "/m/some.safetensors")
    assert verdict == "mismatch" and f.rule_id == "sidecar.hash-mismatch"
    assert f.message == (
        "some.civitai.info says this is 'Some LoRA' 'v1.0', but its autov2, blake3, sha256 do not match "
        "some.safetensors; only its 32-bit CRC32 matches, which any edit can preserve and which does not "
        "identify a file, so the sidecar's hashes contradict each other"
    )
    assert f.evidence["agree"] == ["autov1", "autov3", "crc32"]


def test_edited_file_keeps_autov3(tmp_path: Path) -> None:
    p = tmp_path / "some.civitai.info"
    p.write_text(json.dumps(CIVITAI_INFO))
    c = parse_sidecar("civitai-info", p, "some.safetensors")
    edited = dict(COMPUTED, sha256="d" * 64, autov2="d" * 10, blake3="e" * 64, crc32="00000000", autov1="87654321")
    verdict, (f,) = compare(c, edited, "/m/some.safetensors")
    assert verdict == "edited" and f.rule_id == "sidecar.file-edited"
    assert f.evidence["agree"] == ["autov3"]


def test_sidecar_without_comparable_hashes(tmp_path: Path) -> None:
    p = tmp_path / "x.cm-info.json"
    p.write_text(json.dumps({"ModelName": "X"}))
    assert compare(parse_sidecar("cm-info", p), COMPUTED, "x") == ("no-hashes", [])


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not json", "is not valid JSON"), (b"[1, 2]", "expected a JSON object, found list"), (b"\xff\xfe", "is not valid JSON")],
)
def test_unreadable_sidecars(tmp_path: Path, content: bytes, message: str) -> None:
    p = tmp_path / "x.civitai.info"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        parse_sidecar("civitai-info", p)


def test_artifact_uri() -> None:
    assert artifact_uri("/models/a b.safetensors") == "file:///models/a%20b.safetensors"
    assert artifact_uri("hf://org/name@abc/x.safetensors") == "hf://org/name@abc/x.safetensors"


def test_sarif_validates_against_official_schema() -> None:
    import registry.hub  # noqa: F401 - declares the hub rules
    import registry.sidecars  # noqa: F401

    rows = [
        {
            "rule_id": "hf-cache.blob-mismatch",
            "severity": "high",
            "message": "blob altered",
            "path": "/cache/models--o--r/snapshots/abc/model.safetensors",
            "blob_sha256": SHA,
            "evidence": {"expected": "1" * 64, "actual": SHA},
        },
        {"rule_id": "sidecar.file-edited", "severity": "low", "message": "edited", "path": "/m/x.safetensors"},
        {"rule_id": "hf-cache.incomplete-download", "severity": "low", "message": "partial", "path": None},
        {"rule_id": "someone.elses-rule", "severity": "critical", "message": "from another module", "path": "/m/y.ckpt"},
    ]
    log = sarif_log(rows, tool_version="0.1.0", invocation={"exit_code": 1, "arguments": ["audit", "/m"]}, base="/m")
    jsonschema.Draft4Validator.check_schema(SCHEMA)
    jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)
    run = log["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert ids == sorted(ids) and "someone.elses-rule" in ids and "hf-cache.blob-mismatch" in ids
    assert len(ids) == len({*RULES, "someone.elses-rule"})
    r0, r1, r2, r3 = run["results"]
    assert (r0["ruleId"], r0["level"], ids[r0["ruleIndex"]]) == ("hf-cache.blob-mismatch", "error", "hf-cache.blob-mismatch")
    assert r0["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "file:///cache/models--o--r/snapshots/abc/model.safetensors"
    )
    assert "uriBaseId" not in r0["locations"][0]["physicalLocation"]["artifactLocation"]
    assert r1["locations"][0]["physicalLocation"]["artifactLocation"] == {"uri": "x.safetensors", "uriBaseId": "ROOT"}
    assert run["originalUriBaseIds"] == {"ROOT": {"uri": "file:///m/"}}
    assert r0["partialFingerprints"] == {"contentAndPath/v1": fingerprint("hf-cache.blob-mismatch", SHA, r0["locations"][0]["physicalLocation"]["artifactLocation"]["uri"])}
    assert r0["properties"]["evidence"] == {"expected": "1" * 64, "actual": SHA}
    assert (r1["level"], r2["level"], r3["level"]) == ("note", "note", "error")
    assert "locations" not in r2
    blob_rule = rules[r0["ruleIndex"]]
    assert blob_rule["properties"]["security-severity"] == "8.0"
    assert blob_rule["defaultConfiguration"] == {"level": "error"}
    assert run["invocations"] == [{"executionSuccessful": True, "exitCode": 1, "arguments": ["audit", "/m"]}]


def test_sarif_schema_rejects_a_broken_log() -> None:
    """The schema check can fail: a result without a message is invalid SARIF."""
    log = sarif_log([{"rule_id": "sidecar.unreadable", "severity": "low", "message": "x"}], tool_version="0.1.0")
    del log["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(SCHEMA).validate(log)


@pytest.mark.parametrize(
    ("label", "family"),
    [("SD 1.5", "sd1"), ("SD 2.1 768", "sd2"), ("SDXL 1.0", "sdxl"), ("Pony", "sdxl"), ("Illustrious", "sdxl"),
     ("NoobAI", "sdxl"), ("SD 3.5 Large", "sd3"), ("Flux.1 D", "flux1"), ("Pony V7", None), ("Wan Video", None),
     ("", None), (None, None)],  # fmt: skip
)
def test_base_family(label: str | None, family: str | None) -> None:
    from registry.sidecars import base_family

    assert base_family(label) == family


def test_base_model_claim_against_the_shapes(tmp_path: Path) -> None:
    from registry.sidecars import SidecarClaims, compare_base_model

    claims = SidecarClaims(kind="civitai-info", path=str(tmp_path / "x.civitai.info"), base_model="SDXL 1.0")
    sd1 = {"arch": "sd1", "confidence": "high", "source": "shapes"}
    [f] = compare_base_model(claims, sd1)
    assert f.rule_id == "sidecar.base-model-mismatch" and f.severity is Severity.MEDIUM
    assert f.message == "x.civitai.info says the base model is 'SDXL 1.0' (sdxl); the tensor shapes say sd1"
    assert compare_base_model(claims, {"arch": "sdxl-base", "confidence": "high", "source": "shapes"}) == []
    assert compare_base_model(claims, {"arch": "sd1", "confidence": "low", "source": "shapes"}) == []
    assert compare_base_model(claims, {"arch": "sd1", "confidence": "high", "source": "metadata"}) == []
    assert compare_base_model(claims, None) == []


def test_sarif_relative_uris_and_one_fingerprint_per_content_and_path(tmp_path: Path) -> None:
    """Issue 20: one file at two paths gives two results with different fingerprints, and paths under the
    base are relative to ``ROOT`` (SARIF 2.1.0 §3.4.4 uriBaseId, §3.14.14 originalUriBaseIds)."""
    rows = [
        {"rule_id": "sidecar.file-edited", "severity": "low", "message": "m", "path": str(tmp_path / "a" / "x y.safetensors"), "blob_sha256": SHA},
        {"rule_id": "sidecar.file-edited", "severity": "low", "message": "m", "path": str(tmp_path / "b" / "x y.safetensors"), "blob_sha256": SHA},
    ]
    log = sarif_log(rows, tool_version="0.1.0", base=tmp_path)
    jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)
    run = log["runs"][0]
    locs = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in run["results"]]
    assert locs == [{"uri": "a/x%20y.safetensors", "uriBaseId": "ROOT"}, {"uri": "b/x%20y.safetensors", "uriBaseId": "ROOT"}]
    assert run["originalUriBaseIds"]["ROOT"]["uri"] == tmp_path.as_uri() + "/"
    fps = [r["partialFingerprints"]["contentAndPath/v1"] for r in run["results"]]
    assert len(set(fps)) == 2
    import hashlib

    assert fps[0] == hashlib.sha256(f"sidecar.file-edited\0{SHA}\0a/x%20y.safetensors".encode()).hexdigest()
    # the same content and path always give the same fingerprint (stable across runs)
    assert sarif_log(rows, tool_version="0.1.0", base=tmp_path)["runs"][0]["results"][0]["partialFingerprints"]["contentAndPath/v1"] == fps[0]


def test_relative_uri_outside_the_base_stays_absolute(tmp_path: Path) -> None:
    assert relative_uri("/elsewhere/m.ckpt", tmp_path) == ("file:///elsewhere/m.ckpt", None)
    assert relative_uri("hf://o/r@abc/m.safetensors", tmp_path) == ("hf://o/r@abc/m.safetensors", None)
    assert relative_uri(str(tmp_path / "m.ckpt"), tmp_path) == ("m.ckpt", "ROOT")


def test_a1111_user_metadata_sidecar(tmp_path: Path) -> None:
    """Issue 20: A1111's ``<stem>.json`` (the keys its edit-metadata dialog writes in
    extensions-builtin/Lora/ui_edit_user_metadata.py save_lora_user_metadata) is read as claims."""
    from registry.sidecars import NotASidecar, compare_base_model

    p = tmp_path / "ohwx.json"
    p.write_text(json.dumps({"description": "my person", "sd version": "SDXL", "activation text": "ohwx man, photo",
                             "preferred weight": 0.8, "negative text": "blurry", "notes": ""}))  # fmt: skip
    c = parse_sidecar("a1111-json", p)
    assert (c.kind, c.base_model, c.activation_text, c.trained_words, c.preferred_weight, c.negative_text) == (
        "a1111-json", "SDXL", "ohwx man, photo", ("ohwx man, photo",), 0.8, "blurry"
    )
    assert c.hashes == {} and compare(c, COMPUTED, "/m/ohwx.safetensors") == ("no-hashes", [])
    [f] = compare_base_model(c, {"arch": "sd1", "confidence": "high", "source": "shapes"})
    assert f.message == "ohwx.json says the base model is 'SDXL' (sdxl); the tensor shapes say sd1"
    assert compare_base_model(c, {"arch": "sdxl-base", "confidence": "high", "source": "shapes"}) == []
    # "Unknown" and a weight of 0 (the slider's unset value) claim nothing
    p.write_text(json.dumps({"sd version": "Unknown", "preferred weight": 0}))
    c = parse_sidecar("a1111-json", p)
    assert (c.base_model, c.preferred_weight, c.trained_words) == (None, None, ())
    # other JSON beside a model is not A1111's metadata
    p.write_text(json.dumps({"architectures": ["X"]}))
    with pytest.raises(NotASidecar):
        parse_sidecar("a1111-json", p)
