"""Training-data declarations: schema, examples, loading and validation errors by JSON path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from registry import declarations as d
from registry.errors import DeclarationInvalid, RegistryError
from registry.schemas import load_schema, schema_names

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "declarations"
SHA = "5d9b8a3c0f1e2d4b6a7c8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d"


def minimal() -> dict[str, Any]:
    return {
        "schemaVersion": "1.0",
        "model": {"sha256": SHA},
        "declarant": {"name": "Jane Doe"},
        "date": "2025-03-14",
        "training": {"method": "lora"},
        "datasets": [{"name": "Landscapes", "license": "CC-BY-4.0", "itemCount": 24}],
    }


# -- the schema --------------------------------------------------------------------------------------


def test_schema_is_valid_2020_12_with_id_and_version() -> None:
    schema = load_schema("training-declaration")
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://modelreg.dev/schemas/training-declaration/1.0.json"
    assert schema["version"] == "1.0.0"
    assert "training-declaration" in schema_names()


def test_load_schema_returns_a_copy_and_refuses_unknown_names() -> None:
    a = load_schema("training-declaration")
    a["title"] = "changed"
    assert load_schema("training-declaration")["title"] == "modelreg training-data declaration"
    with pytest.raises(RegistryError, match="not shipped"):
        load_schema("no-such-schema")
    with pytest.raises(RegistryError, match="bad schema name"):
        load_schema("../pyproject")


def _property_paths(schema: dict[str, Any], root: dict[str, Any], prefix: str = "") -> set[str]:
    """Every property path the schema defines, following $refs (array items as [])."""
    if "$ref" in schema:
        name = schema["$ref"].split("/")[-1]
        return _property_paths(root["$defs"][name], root, prefix)
    out: set[str] = set()
    for key, sub in schema.get("properties", {}).items():
        if key == "$schema":
            continue
        path = f"{prefix}.{key}"
        out.add(path)
        out |= _property_paths(sub, root, path)
    if "items" in schema and isinstance(schema["items"], dict):
        out |= _property_paths(schema["items"], root, prefix + "[]")
    return out


def _doc_paths(doc: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.add(f"{prefix}.{k}")
            out |= _doc_paths(v, f"{prefix}.{k}")
    elif isinstance(doc, list):
        for v in doc:
            out |= _doc_paths(v, prefix + "[]")
    return out


def test_complete_example_is_valid_and_uses_every_field() -> None:
    loaded = d.load_declaration(EXAMPLES / "complete.yaml")
    assert loaded.source_format == "yaml"
    schema = load_schema("training-declaration")
    missing = _property_paths(schema, schema) - _doc_paths(loaded.document)
    assert missing == set()


def test_minimal_example_is_valid_and_has_only_required_fields() -> None:
    loaded = d.load_declaration(EXAMPLES / "minimal.json")
    assert loaded.source_format == "json"
    assert set(loaded.document) == set(load_schema("training-declaration")["required"])


def test_every_dataset_field_says_what_it_maps_to() -> None:
    schema = load_schema("training-declaration")
    for name, sub in schema["$defs"]["dataset"]["properties"].items():
        assert sub.get("description"), name
    mapped = [n for n, sub in schema["$defs"]["dataset"]["properties"].items() if "Croissant" in sub["description"] or "SPDX" in sub["description"]]
    assert {"name", "description", "license", "dataCollection", "dataCollectionTimeframe", "sources", "files",
            "datasetSize", "dataPreprocessing", "dataBiases"} <= set(mapped)


def test_template_is_valid_and_takes_the_model_hashes() -> None:
    assert d.validate(d.template()) == []
    t = d.template(sha256=SHA.upper(), autov3="ab" * 32)
    assert d.validate(t) == []
    assert t["model"]["sha256"] == SHA and t["model"]["autov3"] == "ab" * 32
    assert "autov3" not in d.template(sha256=SHA)["model"]


# -- validation errors, by JSON path ------------------------------------------------------------------


def test_every_error_is_listed_by_json_path_with_a_plain_message() -> None:
    bad = {
        "schemaVersion": "2.0",
        "model": {"sha": "xx"},
        "declarant": {"name": ""},
        "date": "2025-02-30",
        "training": {"method": "lorra", "settings": {"epochs": 0, "foo": [1]}},
        "datasets": [
            {
                "name": "a",
                "licence": "MIT",
                "license": "MIT and Apache-2.0",
                "itemCount": -1,
                "sources": [{"description": "x"}],
                "dataCollectionTimeframe": "2023-05/2023-01",
                "optOutObservations": [{"mechanism": "robots.txt", "result": True, "observedAt": "2024-01-01"}],
            },
            {"name": "b", "license": "LicenseRef-Mine", "itemCount": 3},
        ],
        "restrictions": "none",
        "x-anything": {"kept": True},
    }
    assert d.validate(bad) == [
        ("$.datasets[0].dataCollectionTimeframe", "ends before it starts"),
        ("$.datasets[0].itemCount", "must be at least 0, not -1"),
        ("$.datasets[0].licence", "unknown property 'licence' (did you mean 'license'?)"),
        (
            "$.datasets[0].license",
            "is not an SPDX license expression: operator 'and' must be written in upper case (AND) (use e.g. "
            "'CC-BY-4.0', 'LicenseRef-<name>' for a proprietary licence, or 'NOASSERTION' when unknown)",
        ),
        (
            "$.datasets[0].optOutObservations[0].observedAt",
            "must be an RFC 3339 date-time with a time zone, e.g. 2024-05-01T12:00:00Z",
        ),
        (
            "$.datasets[0].optOutObservations[0].result",
            "true is not allowed; use one of: reserved, not-reserved, absent, error",
        ),
        ("$.datasets[0].sources[0]", "needs a 'url' or a 'reference'"),
        ("$.datasets[1].licenseText", "required property is missing"),
        ("$.date", "must be a date (YYYY-MM-DD) or an RFC 3339 date-time (YYYY-MM-DDThh:mm:ssZ)"),
        ("$.declarant.name", "must not be empty"),
        ("$.model", "needs the model file's 'sha256' or its 'autov3' (or both)"),
        ("$.model.sha", "unknown property 'sha' (did you mean 'sha256'?)"),
        ("$.restrictions", "must be a list, not a string"),
        ("$.schemaVersion", "must be '1.0', not '2.0'"),
        (
            "$.training.method",
            "'lorra' is not allowed; use one of: lora, lycoris, dreambooth, dreambooth-lora, full-finetune, "
            "textual-inversion, other (did you mean 'lora'?)",
        ),
        ("$.training.settings.epochs", "must be at least 1, not 0"),
        ("$.training.settings.foo", "must be a string, a number or true or false, not a list"),
    ]


def test_missing_required_fields_point_at_the_field() -> None:
    doc = minimal()
    del doc["declarant"]
    del doc["datasets"][0]["license"]
    doc["datasets"].append({"name": "x"})
    assert d.validate(doc) == [
        ("$.datasets[0].license", "required property is missing"),
        ("$.datasets[1].itemCount", "required property is missing"),
        ("$.datasets[1].license", "required property is missing"),
        ("$.declarant", "required property is missing"),
    ]


def test_odd_keys_and_deep_paths() -> None:
    doc = minimal()
    doc["datasets"][0]["subjects"] = {"persons": [{"name": "A", "consent": "yes"}]}
    doc["model"]["a key"] = 1
    assert d.validate(doc) == [
        (
            "$.datasets[0].subjects.persons[0].consent",
            "'yes' is not allowed; use one of: given, refused, withdrawn, not-required, unknown",
        ),
        ("$.model['a key']", "unknown property 'a key'; allowed here: sha256, autov3, name, version, url, license"),
    ]


def test_wrong_top_level_type_and_empty_datasets() -> None:
    assert d.validate([]) == [("$", "a declaration must be an object (a mapping), not a list")]
    doc = minimal()
    doc["datasets"] = []
    assert d.validate(doc) == [("$.datasets", "needs at least 1 item")]


def test_hash_patterns_have_plain_messages() -> None:
    doc = minimal()
    doc["model"] = {"autov3": "abc"}
    doc["baseModels"] = [{"name": "b", "hashes": {"autov1": "123", "sha256": "z" * 64}}]
    assert d.validate(doc) == [
        ("$.baseModels[0].hashes.autov1", "must be 8 hexadecimal digits"),
        ("$.baseModels[0].hashes.sha256", "must be 64 hexadecimal digits"),
        ("$.model.autov3", "must be 64 hexadecimal digits (or Civitai's 12-digit short form)"),
    ]


def test_self_contradictions_are_refused() -> None:
    doc = minimal()
    doc["training"]["lycorisAlgorithm"] = "loha"
    ds = doc["datasets"][0]
    ds.update(
        depictsRealPersons="no",
        depictsCharacters="no",
        contentCategories=["photographs-of-real-people", "characters"],
        subjects={"persons": [{"name": "A", "consent": "given"}], "characters": [{"name": "C"}]},
    )
    assert d.validate(doc) == [
        ("$.datasets[0].contentCategories", "includes 'characters' although depictsCharacters is 'no'"),
        (
            "$.datasets[0].contentCategories",
            "includes 'photographs-of-real-people' although depictsRealPersons is 'no'",
        ),
        ("$.datasets[0].subjects.characters", "lists characters although depictsCharacters is 'no'"),
        ("$.datasets[0].subjects.persons", "lists real persons although depictsRealPersons is 'no'"),
        ("$.training.lycorisAlgorithm", "only meaningful when method is 'lycoris' (method is 'lora')"),
    ]


def test_validate_or_raise_carries_every_error() -> None:
    doc = minimal()
    doc["date"] = "yesterday"
    doc["datasets"][0]["itemCount"] = "many"
    with pytest.raises(DeclarationInvalid) as ei:
        d.validate_or_raise(doc, source="x.yaml")
    assert str(ei.value) == "x.yaml is invalid: 2 problems"
    assert ei.value.errors == [
        ("$.datasets[0].itemCount", "must be an integer, not a string"),
        ("$.date", "must be a date (YYYY-MM-DD) or an RFC 3339 date-time (YYYY-MM-DDThh:mm:ssZ)"),
    ]
    assert ei.value.exit_code == 2


# -- formats ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr",
    [
        "MIT",
        "CC-BY-4.0",
        "GPL-2.0+",
        "MIT OR Apache-2.0",
        "(MIT OR Apache-2.0) AND CC-BY-4.0",
        "GPL-2.0-only WITH Classpath-exception-2.0",
        "LicenseRef-Studio-Terms",
        "DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2",
        "NOASSERTION",
        "NONE",
        "((MIT))",
    ],
)
def test_spdx_expressions_accepted(expr: str) -> None:
    d.parse_spdx_expression(expr)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("", "is empty"),
        ("MIT or Apache-2.0", "operator 'or' must be written in upper case (OR)"),
        ("MIT AND", "ends where a license id was expected"),
        ("(MIT", "has an unclosed parenthesis"),
        ("MIT Apache-2.0", "unexpected 'Apache-2.0' (license ids are joined with AND, OR or WITH)"),
        ("MIT AND NOASSERTION", "NOASSERTION cannot be combined with other licenses"),
        ("Creative Commons", "unexpected 'Commons' (license ids are joined with AND, OR or WITH)"),
        ("MIT/X11", "unexpected character '/'"),
        ("LicenseRef-", "'LicenseRef-' is not a license id"),
        ("GPL-2.0 WITH", "needs a license exception id after WITH"),
        ("Doc:LicenseRef-x", "'Doc:LicenseRef-x' is not a license id (DocumentRef-x:LicenseRef-y expected)"),
    ],
)
def test_spdx_expressions_refused(expr: str, message: str) -> None:
    with pytest.raises(ValueError) as ei:
        d.parse_spdx_expression(expr)
    assert str(ei.value) == message


def test_spdx_expression_lists_its_ids() -> None:
    assert d.parse_spdx_expression("(MIT OR Apache-2.0) AND LicenseRef-x") == ["MIT", "Apache-2.0", "LicenseRef-x"]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("2021/2022", None),
        ("2023-01/2023-06", None),
        ("2023-02-28/2023-02-28", None),
        ("2023-12/2023-12-31", None),
        ("2023-06/2023-05-31", "ends before it starts"),
        ("2023", "must be an ISO 8601 interval 'start/end', e.g. 2023-01/2023-06"),
        ("2023-13/2024", "must be an ISO 8601 interval 'start/end': month must be in 1..12"),
        ("spring/summer", "must be an ISO 8601 interval 'start/end': 'spring' is not a date written YYYY, YYYY-MM or YYYY-MM-DD"),
    ],
)
def test_collection_timeframe_interval(value: str, error: str | None) -> None:
    doc = minimal()
    doc["datasets"][0]["dataCollectionTimeframe"] = value
    expected = [] if error is None else [("$.datasets[0].dataCollectionTimeframe", error)]
    assert d.validate(doc) == expected


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("https://example.org/a?b=c", True),
        ("urn:isbn:0451450523", True),
        ("ipfs://bafy", True),
        ("example.org/page", False),
        ("https://", False),
        ("https://exa mple.org", False),
    ],
)
def test_uri_format(value: str, ok: bool) -> None:
    doc = minimal()
    doc["model"]["url"] = value
    expected = [] if ok else [("$.model.url", "must be an absolute URI such as https://example.org/page" + ("" if value != "https://" else " (no host given)"))]
    assert d.validate(doc) == expected


@pytest.mark.parametrize(
    ("value", "ok"),
    [("2024-05-01", True), ("2024-05-01T12:00:00Z", True), ("2024-05-01T12:00:00.5+02:00", True),
     ("2024-05-01T12:00:00", False), ("2024-13-01", False), ("01.05.2024", False)],
)
def test_declaration_date(value: str, ok: bool) -> None:
    doc = minimal()
    doc["date"] = value
    assert (d.validate(doc) == []) is ok


# -- parsing JSON and YAML ------------------------------------------------------------------------------


def test_yaml_dates_stay_strings_and_json_and_yaml_hash_alike(tmp_path: Path) -> None:
    doc = minimal()
    y = tmp_path / "decl.yml"
    import yaml

    y.write_text(yaml.safe_dump(doc).replace("'2025-03-14'", "2025-03-14"))
    assert "date: 2025-03-14\n" in y.read_text()
    j = tmp_path / "decl.json"
    j.write_text(json.dumps(doc, indent=2))
    ly, lj = d.load_declaration(y), d.load_declaration(j)
    assert ly.document == lj.document == doc
    assert ly.sha256 == lj.sha256
    assert ly.source_sha256 != lj.source_sha256
    import hashlib

    assert lj.sha256 == hashlib.sha256(d.canonical_json(doc)).hexdigest()
    assert lj.source_path == str(j)


def test_format_is_sniffed_when_unnamed() -> None:
    text = json.dumps(minimal())
    assert d.load_declaration(text).source_format == "json"
    assert d.load_declaration(text.encode()).source_format == "json"
    assert d.parse_document("a: b\n") == ({"a": "b"}, "yaml")


def test_unparseable_text_is_one_error_at_the_root() -> None:
    with pytest.raises(DeclarationInvalid) as ei:
        d.parse_document('{"a": 1,}')
    assert ei.value.errors == [("$", "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 9 (char 8)")]
    with pytest.raises(DeclarationInvalid) as ei:
        d.parse_document("a: [1, 2\nb: 3\n")
    assert ei.value.errors[0][0] == "$"
    assert ei.value.errors[0][1].startswith("not valid YAML: line 2 column 2:")
    with pytest.raises(DeclarationInvalid) as ei:
        d.parse_document(b"\xff\xfe")
    assert ei.value.errors[0][0] == "$"


def test_duplicate_keys_and_non_json_values_are_errors() -> None:
    with pytest.raises(DeclarationInvalid) as ei:
        d.parse_document("a: 1\na: 2\nb:\n  - {c: 1, c: 2}\n")
    assert ei.value.errors == [
        ("$.a", "key given more than once (which value is meant is ambiguous)"),
        ("$.b[0].c", "key given more than once (which value is meant is ambiguous)"),
    ]
    with pytest.raises(DeclarationInvalid) as ei:
        d.parse_document('{"a": 1, "a": 2}')
    assert ei.value.errors == [("$.a", "key given more than once (which value is meant is ambiguous)")]
    with pytest.raises(DeclarationInvalid) as ei:
        d.parse_document("x: .nan\n1: a\ns: !!set {a: null}\nb: !!binary aGVsbG8=\nn: 9007199254740993\n")
    assert ei.value.errors == [
        ("$.x", "must be a finite number (NaN and infinity are not JSON)"),
        ("$['1']", "key must be a string, not an integer"),
        ("$.s", "set values are not allowed (only JSON types)"),
        ("$.b", "bytes values are not allowed (only JSON types)"),
        ("$.n", "integer too large for exact JSON interchange (more than 2^53 - 1)"),
    ]
    with pytest.raises(DeclarationInvalid) as ei:
        d.parse_document('{"a": NaN}')
    assert ei.value.errors == [("$", "not valid JSON: NaN is not a JSON number")]


def test_yaml_is_loaded_safely() -> None:
    with pytest.raises(DeclarationInvalid) as ei:
        d.parse_document("a: !!python/object/apply:os.system ['echo hacked']\n")
    assert ei.value.errors[0][0] == "$"
    assert "could not determine a constructor" in ei.value.errors[0][1]


def test_load_declaration_raises_with_every_error(tmp_path: Path) -> None:
    p = tmp_path / "bad.yaml"
    doc = copy.deepcopy(minimal())
    doc["datasets"][0]["itemCount"] = -5
    doc["model"]["sha256"] = "nothex"
    p.write_text(json.dumps(doc))  # JSON is YAML
    with pytest.raises(DeclarationInvalid) as ei:
        d.load_declaration(p)
    assert ei.value.errors == [
        ("$.datasets[0].itemCount", "must be at least 0, not -5"),
        ("$.model.sha256", "must be 64 hexadecimal digits"),
    ]
    assert str(ei.value) == f"{p} is invalid: 2 problems"


def test_json_path_rendering() -> None:
    assert d.json_path([]) == "$"
    assert d.json_path(["datasets", 0, "license"]) == "$.datasets[0].license"
    assert d.json_path(["a b", 2, "x-y", "$schema"]) == "$['a b'][2].x-y.$schema"
    assert d.json_path(["it's"]) == "$['it\\'s']"


def test_yaml_scalars_follow_yaml_1_2() -> None:
    doc, _ = d.parse_document("a: no\nb: yes\nc: on\nd: 010\ne: 1:20\nf: 2024-01-01\ng: true\nh: -12\ni: 1.5\nj: 0\nm: null\n")
    assert doc == {"a": "no", "b": "yes", "c": "on", "d": "010", "e": "1:20", "f": "2024-01-01", "g": True, "h": -12, "i": 1.5, "j": 0, "m": None}
    text = "schemaVersion: '1.0'\nmodel: {sha256: " + SHA + "}\ndeclarant: {name: J}\ndate: 2025-03-14\ntraining: {method: lora}\n"
    text += "datasets:\n  - {name: s, license: MIT, itemCount: 3, depictsRealPersons: no, depictsCharacters: noAssertion}\n"
    loaded = d.load_declaration(text)
    assert loaded.document["datasets"][0]["depictsRealPersons"] == "no"
