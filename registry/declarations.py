"""Training-data declarations: loading, validation against ``schemas/training-declaration.schema.json``,
a template, the contradiction rules that compare a declaration with the evidence, and transparent
overfitting indicators.

Loading (:func:`parse_document`, :func:`load_declaration`, :func:`validate`): JSON or YAML (``safe_load``
semantics only: no tags that build objects; YAML dates stay strings; duplicate keys are errors). Every
problem is returned as ``(json_path, plain message)`` with paths like ``$.datasets[0].license``;
:func:`validate_or_raise` raises :class:`~registry.errors.DeclarationInvalid` with all of them.

Checks (:func:`check_declaration`): each rule below is declared with a stable id and turns one kind of
disagreement between the declaration and the evidence into a :class:`~registry.findings.Finding` whose
evidence shows both sides. The evidence is passed in as plain values (:class:`Evidence`): the file's
hashes, its :class:`~registry.training.TrainingFacts`, the identification as a dict ``{kind,
adapter_type, arch}``, registered base models, and (later) the probe's results.

Indicators (:func:`overfitting_indicators`): documented formulas with their inputs, never one score.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match

from registry.errors import DeclarationInvalid
from registry.findings import Finding, Rule, Severity, finding, rule
from registry.schemas import load_schema
from registry.training import TrainingFacts

SCHEMA_NAME = "training-declaration"
SCHEMA_VERSION = "1.0"
#: the sha256 of nothing: what ai-toolkit writes as every hash, and what AutoV1 is for files under 1 MiB
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_MAX_SAFE_INT = 2**53 - 1

Errors = list[tuple[str, str]]


# ==================================================================================================
# Formats
# ==================================================================================================

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*$")
_INTERVAL_PART_RE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")

FORMAT_CHECKER = FormatChecker(formats=())


@FORMAT_CHECKER.checks("date", raises=ValueError)
def _check_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATE_RE.match(value):
        raise ValueError("must be a date written YYYY-MM-DD")
    date.fromisoformat(value)  # raises ValueError for 2024-02-30
    return True


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def _check_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _DATETIME_RE.match(value):
        raise ValueError("must be an RFC 3339 date-time with a time zone, e.g. 2024-05-01T12:00:00Z")
    datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
    return True


@FORMAT_CHECKER.checks("uri", raises=ValueError)
def _check_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    if not parts.scheme or not _SCHEME_RE.match(parts.scheme) or any(c.isspace() for c in value):
        raise ValueError("must be an absolute URI such as https://example.org/page")
    if parts.scheme.lower() in {"http", "https"} and not parts.netloc:
        raise ValueError("must be an absolute URI such as https://example.org/page (no host given)")
    if not (parts.netloc or parts.path):
        raise ValueError("must be an absolute URI such as https://example.org/page")
    return True


def _interval_bounds(part: str) -> tuple[date, date]:
    m = _INTERVAL_PART_RE.match(part)
    if not m:
        raise ValueError(f"{part!r} is not a date written YYYY, YYYY-MM or YYYY-MM-DD")
    y = int(m.group(1))
    if m.group(3):
        d = date(y, int(m.group(2)), int(m.group(3)))
        return d, d
    if m.group(2):
        mo = int(m.group(2))
        first = date(y, mo, 1)
        last = date(y + (mo == 12), mo % 12 + 1, 1).toordinal() - 1
        return first, date.fromordinal(last)
    return date(y, 1, 1), date(y, 12, 31)


@FORMAT_CHECKER.checks("date-interval", raises=ValueError)
def _check_interval(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = value.split("/")
    if len(parts) != 2:
        raise ValueError("must be an ISO 8601 interval 'start/end', e.g. 2023-01/2023-06")
    try:
        start, _ = _interval_bounds(parts[0])
        _, end = _interval_bounds(parts[1])
    except ValueError as e:
        raise ValueError(f"must be an ISO 8601 interval 'start/end': {e}") from None
    if end < start:
        raise ValueError("ends before it starts")
    return True


# -- SPDX license expressions (SPDX 3.0.1 Annex: license expression syntax) ------------------------

_SPDX_TOKEN_RE = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+:-]+)")
_IDSTRING_RE = re.compile(r"^[A-Za-z0-9.-]+$")
_OPERATORS = {"AND", "OR", "WITH"}


def spdx_tokens(expr: str) -> list[str]:
    pos = 0
    tokens: list[str] = []
    expr = expr.rstrip()
    while pos < len(expr):
        m = _SPDX_TOKEN_RE.match(expr, pos)
        if not m:
            raise ValueError(f"unexpected character {expr[pos:].lstrip()[:1]!r}")
        tokens.append(m.group(1))
        pos = m.end()
    return tokens


def parse_spdx_expression(expr: str) -> list[str]:
    """Check the grammar of an SPDX license expression; return the license ids it names.

    Accepts ``NONE`` and ``NOASSERTION`` alone, license ids (``+`` allowed), ``LicenseRef-…``,
    ``DocumentRef-…:LicenseRef-…``, ``AND``/``OR``/``WITH`` (upper case, as the spec writes them) and
    parentheses. Whether an id is on the SPDX license list is not checked (the list changes)."""
    if not expr.strip():
        raise ValueError("is empty")
    if expr.strip() in {"NONE", "NOASSERTION"}:
        return [expr.strip()]
    tokens = spdx_tokens(expr)
    ids: list[str] = []
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def simple() -> None:
        nonlocal pos
        tok = peek()
        if tok is None:
            raise ValueError("ends where a license id was expected")
        if tok in {"(", ")"} or tok in _OPERATORS:
            raise ValueError(f"expected a license id, found {tok!r}")
        if tok.lower() in {"and", "or", "with"}:
            raise ValueError(f"operator {tok!r} must be written in upper case ({tok.upper()})")
        if tok in {"NONE", "NOASSERTION"}:
            raise ValueError(f"{tok} cannot be combined with other licenses")
        name = tok
        if ":" in name:
            doc, _, ref = name.partition(":")
            if not doc.startswith("DocumentRef-") or not ref.startswith("LicenseRef-"):
                raise ValueError(f"{tok!r} is not a license id (DocumentRef-x:LicenseRef-y expected)")
            name = ref
        core = name[:-1] if name.endswith("+") and not name.startswith("LicenseRef-") else name
        if not _IDSTRING_RE.match(core) or core in {"LicenseRef-", ""}:
            raise ValueError(f"{tok!r} is not a license id")
        ids.append(tok)
        pos += 1

    def with_expr() -> None:
        nonlocal pos
        if peek() == "(":
            pos += 1
            or_expr()
            if peek() != ")":
                raise ValueError("has an unclosed parenthesis")
            pos += 1
            return
        simple()
        if peek() == "WITH":
            pos += 1
            exc = peek()
            if exc is None or exc in {"(", ")"} or exc in _OPERATORS or not _IDSTRING_RE.match(exc):
                raise ValueError("needs a license exception id after WITH")
            pos += 1

    def and_expr() -> None:
        nonlocal pos
        with_expr()
        while peek() == "AND":
            pos += 1
            with_expr()

    def or_expr() -> None:
        nonlocal pos
        and_expr()
        while peek() == "OR":
            pos += 1
            and_expr()

    or_expr()
    if pos != len(tokens):
        tok = tokens[pos]
        if tok.lower() in {"and", "or", "with"}:
            raise ValueError(f"operator {tok!r} must be written in upper case ({tok.upper()})")
        raise ValueError(f"unexpected {tok!r} (license ids are joined with AND, OR or WITH)")
    return ids


@FORMAT_CHECKER.checks("spdx-expression", raises=ValueError)
def _check_spdx(value: object) -> bool:
    if isinstance(value, str):
        try:
            parse_spdx_expression(value)
        except ValueError as e:
            raise ValueError(
                f"is not an SPDX license expression: {e} (use e.g. 'CC-BY-4.0', 'LicenseRef-<name>' "
                "for a proprietary licence, or 'NOASSERTION' when unknown)"
            ) from None
    return True


# ==================================================================================================
# Loading
# ==================================================================================================


class _Mapping(dict[str, Any]):
    """A parsed JSON object that remembers keys given more than once."""

    duplicates: list[str]

    def __init__(self, pairs: Iterable[tuple[Any, Any]] = ()) -> None:
        super().__init__()
        self.duplicates = []
        for k, v in pairs:
            if k in self and k not in self.duplicates:
                self.duplicates.append(k)
            self[k] = v


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 scalars and duplicate keys recorded.

    YAML 1.1 (PyYAML's default) reads ``no``/``yes``/``on``/``off`` as booleans, ``2024-05-01`` as a
    date object, ``010`` as octal 8 and ``1:20`` as 80. A declaration says ``depictsRealPersons: no``
    and means the word, so only ``true``/``false`` are booleans, plain decimal numbers are integers and
    dates stay strings (the schema checks their form)."""


_REPLACED_TAGS = {"tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int"}
_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in _REPLACED_TAGS]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> _Mapping:
    loader.flatten_mapping(node)
    pairs = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        value = loader.construct_object(value_node, deep=True)
        pairs.append((key, value))
    return _Mapping(pairs)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def json_path(parts: Iterable[str | int]) -> str:
    """``$``-rooted JSON path: ``$.datasets[0].license``; odd keys as ``$['a key']``."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif re.match(r"^[A-Za-z_$][A-Za-z0-9_$-]*$", p):
            out += f".{p}"
        else:
            out += "['" + p.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


def _json_problems(obj: Any, path: list[str | int], errors: Errors) -> None:
    """Values YAML can express but JSON cannot, and duplicate keys."""
    if isinstance(obj, dict):
        for k in getattr(obj, "duplicates", []):
            errors.append((json_path([*path, str(k)]), "key given more than once (which value is meant is ambiguous)"))
        for k, v in obj.items():
            if not isinstance(k, str):
                errors.append((json_path([*path, str(k)]), f"key must be a string, not {_type_name(k)}"))
                continue
            _json_problems(v, [*path, k], errors)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _json_problems(v, [*path, i], errors)
    elif isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return
    elif isinstance(obj, int):
        if abs(obj) > _MAX_SAFE_INT:
            errors.append((json_path(path), "integer too large for exact JSON interchange (more than 2^53 - 1)"))
    elif isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            errors.append((json_path(path), "must be a finite number (NaN and infinity are not JSON)"))
    else:
        errors.append((json_path(path), f"{_type_name(obj)} values are not allowed (only JSON types)"))


def _plain_json(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain_json(v) for v in obj]
    return obj


def parse_document(data: str | bytes, fmt: str | None = None) -> tuple[Any, str]:
    """Parse JSON or YAML text; return ``(value, "json"|"yaml")``.

    ``fmt`` forces a format; otherwise text that starts with ``{`` is JSON and anything else YAML.
    Raises :class:`DeclarationInvalid` (path ``$``) when the text cannot be parsed, and lists every
    duplicate key and non-JSON value (YAML sets, binary, NaN, non-string keys) by path."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DeclarationInvalid("declaration is not UTF-8 text", [("$", f"not UTF-8 text: {e}")]) from None
    else:
        text = data
    if fmt is None:
        fmt = "json" if text.lstrip().startswith("{") else "yaml"
    if fmt == "json":
        try:
            value = json.loads(text, object_pairs_hook=_Mapping, parse_constant=_reject_constant)
        except ValueError as e:
            raise DeclarationInvalid("declaration is not valid JSON", [("$", f"not valid JSON: {e}")]) from None
    elif fmt == "yaml":
        try:
            value = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        except yaml.YAMLError as e:
            raise DeclarationInvalid("declaration is not valid YAML", [("$", f"not valid YAML: {_yaml_msg(e)}")]) from None
    else:
        raise ValueError(f"unknown declaration format {fmt!r}")
    errors: Errors = []
    _json_problems(value, [], errors)
    if errors:
        raise DeclarationInvalid(f"declaration has {len(errors)} problem(s)", errors)
    return _plain_json(value), fmt


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _yaml_msg(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or str(e)
    if mark is not None:
        return f"line {mark.line + 1} column {mark.column + 1}: {problem}"
    return str(problem)


# ==================================================================================================
# Validation
# ==================================================================================================


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    schema = load_schema(SCHEMA_NAME)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FORMAT_CHECKER)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object (a mapping)",
    "array": "a list",
    "null": "null",
}


def _show(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else repr(v)


def _plain(err: ValidationError) -> Errors:
    """One jsonschema error as (path, plain message) pairs."""
    path = list(err.absolute_path)
    v = err.validator
    schema = err.schema if isinstance(err.schema, dict) else {}
    inst = err.instance
    if v == "required" and isinstance(inst, dict):
        return [(json_path([*path, p]), "required property is missing") for p in err.validator_value if p not in inst]
    if v == "additionalProperties" and isinstance(inst, dict):
        known = list(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        out = []
        for k in inst:
            if k in known or any(re.search(p, k) for p in patterns):
                continue
            hint = difflib.get_close_matches(k, known, n=1)
            msg = f"unknown property {k!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            if not hint and known:
                msg += f"; allowed here: {', '.join(known)}"
            out.append((json_path([*path, k]), msg))
        if out:
            return out
    if v == "type":
        want = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        names = [_TYPE_WORDS.get(str(t), str(t)) for t in want]
        words = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        return [(json_path(path), f"must be {words}, not {_type_name(inst)}")]
    if v == "enum" and len(err.validator_value) == 1:
        return [(json_path(path), f"must be {_show(err.validator_value[0])}, not {_show(inst)}")]
    if v == "enum":
        allowed = list(err.validator_value)
        hint = difflib.get_close_matches(str(inst), [str(a) for a in allowed], n=1) if isinstance(inst, str) else []
        msg = f"{_show(inst)} is not allowed; use one of: {', '.join(str(a) for a in allowed)}"
        if hint:
            msg += f" (did you mean {hint[0]!r}?)"
        return [(json_path(path), msg)]
    if v == "const":
        return [(json_path(path), f"must be {_show(err.validator_value)}")]
    if v == "format":
        cause = str(err.cause) if err.cause is not None else f"is not a valid {err.validator_value}"
        return [(json_path(path), cause)]
    if v in {"pattern", "anyOf", "oneOf"} and "errorMessage" in schema:
        return [(json_path(path), str(schema["errorMessage"]))]
    if v in {"anyOf", "oneOf"} and err.context:
        inner = best_match(err.context)
        if inner is not None:
            return _plain(inner)
    if v == "pattern":
        return [(json_path(path), f"{_show(inst)} does not match the pattern {err.validator_value}")]
    if v == "minLength" and err.validator_value == 1:
        return [(json_path(path), "must not be empty")]
    if v == "minLength":
        return [(json_path(path), f"must be at least {err.validator_value} characters long")]
    if v == "minItems":
        n = err.validator_value
        return [(json_path(path), f"needs at least {n} item{'s' if n != 1 else ''}")]
    if v == "minProperties":
        n = err.validator_value
        return [(json_path(path), f"needs at least {n} entr{'ies' if n != 1 else 'y'}")]
    if v == "minimum":
        return [(json_path(path), f"must be at least {err.validator_value}, not {_show(inst)}")]
    if v == "exclusiveMinimum":
        return [(json_path(path), f"must be greater than {err.validator_value}, not {_show(inst)}")]
    if v == "uniqueItems":
        return [(json_path(path), "lists the same item more than once")]
    return [(json_path(path), err.message)]


def _path_key(item: tuple[str, str]) -> tuple[Any, ...]:
    parts = re.findall(r"\[(\d+)\]|\.([^.\[]+)|\['([^']*)'\]", item[0])
    key: list[tuple[int, Any]] = []
    for idx, name, quoted in parts:
        key.append((0, int(idx)) if idx else (1, name or quoted))
    return (tuple(key), item[1])


def _semantic_errors(doc: Mapping[str, Any]) -> Errors:
    """Statements in one document that contradict each other (checked after the schema passes)."""
    errors: Errors = []
    training = doc.get("training", {})
    if "lycorisAlgorithm" in training and training.get("method") != "lycoris":
        errors.append(
            (
                "$.training.lycorisAlgorithm",
                f"only meaningful when method is 'lycoris' (method is {training.get('method')!r})",
            )
        )
    for i, ds in enumerate(doc.get("datasets", [])):
        cats = ds.get("contentCategories", [])
        subjects = ds.get("subjects", {})
        if ds.get("depictsRealPersons") == "no":
            if subjects.get("persons"):
                errors.append(
                    (f"$.datasets[{i}].subjects.persons", "lists real persons although depictsRealPersons is 'no'")
                )
            if "photographs-of-real-people" in cats:
                errors.append(
                    (
                        f"$.datasets[{i}].contentCategories",
                        "includes 'photographs-of-real-people' although depictsRealPersons is 'no'",
                    )
                )
        if ds.get("depictsCharacters") == "no":
            if subjects.get("characters"):
                errors.append(
                    (f"$.datasets[{i}].subjects.characters", "lists characters although depictsCharacters is 'no'")
                )
            if "characters" in cats:
                errors.append(
                    (f"$.datasets[{i}].contentCategories", "includes 'characters' although depictsCharacters is 'no'")
                )
    return errors


def validate(doc: Any) -> Errors:
    """Every problem with a parsed declaration, as sorted ``(json_path, message)`` pairs (empty: valid)."""
    errors: Errors = []
    _json_problems(doc, [], errors)
    if errors:
        return sorted(set(errors), key=_path_key)
    if not isinstance(doc, dict):
        return [("$", f"a declaration must be an object (a mapping), not {_type_name(doc)}")]
    for err in _validator().iter_errors(doc):
        errors.extend(_plain(err))
    if not errors:
        errors = _semantic_errors(doc)
    return sorted(set(errors), key=_path_key)


def validate_or_raise(doc: Any, source: str = "declaration") -> dict[str, Any]:
    errors = validate(doc)
    if errors:
        n = len(errors)
        raise DeclarationInvalid(f"{source} is invalid: {n} problem{'s' if n != 1 else ''}", errors)
    assert isinstance(doc, dict)
    return doc


def canonical_json(doc: Any) -> bytes:
    """RFC 8785 (JCS) canonical bytes of a JSON value."""
    import rfc8785

    return rfc8785.dumps(doc)


@dataclass(frozen=True)
class LoadedDeclaration:
    document: dict[str, Any]
    #: sha256 of the RFC 8785 canonical JSON of the document (equal for the same content in JSON or YAML)
    sha256: str
    #: sha256 of the bytes as given
    source_sha256: str
    source_format: str
    source_path: str | None = None


def load_declaration(source: Path | str | bytes, fmt: str | None = None) -> LoadedDeclaration:
    """Read (a path, or the text itself), parse and validate a declaration.

    A :class:`Path` is read from disk; its suffix picks the format (``.json``; ``.yaml``/``.yml``).
    Raises :class:`DeclarationInvalid` listing every problem."""
    path: str | None = None
    if isinstance(source, Path):
        path = str(source)
        raw = source.read_bytes()
        if fmt is None:
            suffix = source.suffix.lower()
            fmt = "json" if suffix == ".json" else "yaml" if suffix in {".yaml", ".yml"} else None
    else:
        raw = source.encode("utf-8") if isinstance(source, str) else source
    doc, used = parse_document(raw, fmt)
    validate_or_raise(doc, source=path or "declaration")
    return LoadedDeclaration(
        document=doc,
        sha256=hashlib.sha256(canonical_json(doc)).hexdigest(),
        source_sha256=hashlib.sha256(raw).hexdigest(),
        source_format=used,
        source_path=path,
    )


def template(sha256: str | None = None, autov3: str | None = None) -> dict[str, Any]:
    """A filled-in skeleton of every field, with example values to replace (valid as it stands).

    Give the model's hashes to have them filled in."""
    model: dict[str, Any] = {
        "sha256": (sha256 or "0" * 64).lower(),
        "name": "My character LoRA",
        "version": "1.0",
        "url": "https://example.org/models/my-character-lora",
        "license": "CreativeML-OpenRAIL-M",
    }
    if autov3 or sha256 is None:
        model["autov3"] = (autov3 or "0" * 64).lower()
    return {
        "schemaVersion": SCHEMA_VERSION,
        "model": model,
        "declarant": {
            "name": "Your Name",
            "organization": "Your Studio",
            "role": "author",
            "contact": "you@example.org",
        },
        "date": date.today().isoformat(),
        "baseModels": [
            {
                "name": "Stable Diffusion XL 1.0 Base",
                "fileName": "sd_xl_base_1.0.safetensors",
                "hashes": {"sha256": "31e35c80fc4829d14f90153f4c74cd59c90b779f6afe05a74cd6ffb79c80c4fb"},
                "source": "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0",
            }
        ],
        "training": {
            "method": "lora",
            "baseArchitecture": "sdxl",
            "trainer": {"name": "kohya-ss/sd-scripts", "version": "v0.8.7"},
            "triggerWords": ["mychar"],
            "settings": {
                "networkRank": 16,
                "networkAlpha": 8,
                "epochs": 10,
                "maxTrainSteps": 2000,
                "batchSize": 2,
                "learningRate": 0.0001,
                "resolution": 1024,
                "optimizer": "AdamW8bit",
            },
        },
        "datasets": [
            {
                "name": "Original character sheets",
                "description": "Drawings of my original character, made by me for this model.",
                "role": "training",
                "sources": [{"reference": "own drawings, 2024", "description": "made for this model"}],
                "license": "LicenseRef-Own-Work",
                "licenseText": "All rights reserved by the declarant; used with the declarant's permission.",
                "dataCollection": "Drawn by the declarant between January and March 2024.",
                "dataCollectionType": ["Manual Human Curator"],
                "dataCollectionTimeframe": "2024-01/2024-03",
                "itemCount": 40,
                "repeats": 10,
                "manifestSha256": "0" * 64,
                "contentCategories": ["artwork", "characters"],
                "depictsRealPersons": "no",
                "depictsCharacters": "yes",
                "subjects": {
                    "characters": [
                        {
                            "name": "Mychar",
                            "aliases": ["mychar"],
                            "franchise": "original",
                            "rightsHolder": "Your Studio",
                            "permission": "given",
                            "permissionEvidence": "own work",
                        }
                    ],
                    "artists": [{"name": "Your Name", "consent": "given", "consentEvidence": "declarant"}],
                },
                "optOutObservations": [],
                "dataPreprocessing": "Cropped to 1024x1024; captioned with WD14 tagger, then edited by hand.",
                "dataAnnotationProtocol": "WD14 tagger v3 with threshold 0.35, trigger word prepended.",
            }
        ],
        "intendedUse": "Illustrations of the original character 'Mychar'.",
        "restrictions": ["No depictions of real persons.", "No sexual content."],
        "attestation": "I declare that this account of the training data is true and complete to the best of my knowledge.",
    }


# ==================================================================================================
# Checks: the evidence and the rules
# ==================================================================================================


@dataclass
class Evidence:
    """What the registry knows about the file, as plain values (no database access here).

    * ``file_hashes``: computed digests, ``{"sha256": …, "autov3": …}`` (others ignored);
    * ``facts``: the embedded training metadata, normalised (issue 3's parser);
    * ``identification``: ``{"kind": …, "adapter_type": …, "arch": …}`` from shapes (issue 3);
    * ``registered_bases``: registered models whose hashes the file's or the declaration's base-model
      hashes resolve to, each ``{"sha256", "autov1", "autov2", "autov3", "arch", "name"}`` (any may be
      missing);
    * ``probe``: probe results, provisional contract ``{"subjects": [{"kind": "person"|"character",
      "score": float, "threshold": float, "label": str}]}``.
    """

    file_hashes: Mapping[str, str | None] = field(default_factory=dict)
    facts: TrainingFacts | None = None
    identification: Mapping[str, Any] | None = None
    registered_bases: Sequence[Mapping[str, Any]] = ()
    probe: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Check:
    rule: Rule
    run: Callable[[Mapping[str, Any], Evidence], list[Finding]]


CHECKS: list[Check] = []


def _check(rule_id: str, severity: Severity, title: str, help: str) -> Callable[..., Any]:
    r = rule(rule_id, severity, title, help)

    def deco(fn: Callable[[Mapping[str, Any], Evidence], list[Finding]]) -> Callable[..., Any]:
        CHECKS.append(Check(r, fn))
        return fn

    return deco


def check_declaration(doc: Mapping[str, Any], evidence: Evidence | None = None, **kwargs: Any) -> list[Finding]:
    """Every contradiction between a (valid) declaration and the evidence, rule by rule.

    Evidence may be given as an :class:`Evidence` or as its fields by keyword."""
    ev = evidence if evidence is not None else Evidence(**kwargs)
    out: list[Finding] = []
    for c in CHECKS:
        out.extend(c.run(doc, ev))
    return out


def _hex(v: Any) -> str | None:
    if not isinstance(v, str):
        return None
    s = v.strip().lower()
    if s.startswith("0x"):
        s = s[2:]
    return s if s and re.fullmatch(r"[0-9a-f]+", s) else None


def _is_placeholder(h: str) -> bool:
    """Hash values that carry no information: the empty-string sha256 (or its AutoV1/AutoV2 prefixes)."""
    return EMPTY_SHA256.startswith(h)


# -- 1. the declaration covers this file ----------------------------------------------------------


@_check(
    "declaration.hash-mismatch",
    Severity.HIGH,
    "The declaration names a different file than the one it is recorded for",
    "The declaration's model.sha256 / model.autov3 are compared with the file's computed SHA-256 and "
    "AutoV3. Different SHA-256 with equal AutoV3 means the same weights with different metadata (low); "
    "otherwise the declaration covers another file (high).",
)
def _check_hash(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    model = doc.get("model", {})
    d_sha, d_v3 = _hex(model.get("sha256")), _hex(model.get("autov3"))
    f_sha, f_v3 = _hex(ev.file_hashes.get("sha256")), _hex(ev.file_hashes.get("autov3"))
    sha_differs = d_sha is not None and f_sha is not None and d_sha != f_sha
    v3_known = d_v3 is not None and f_v3 is not None
    v3_equal = v3_known and f_v3 is not None and d_v3 is not None and f_v3.startswith(d_v3)
    evidence: dict[str, Any] = {
        "declared": {"sha256": d_sha, "autov3": d_v3},
        "file": {"sha256": f_sha, "autov3": f_v3},
    }
    rid = "declaration.hash-mismatch"
    if sha_differs and v3_equal:
        return [
            finding(
                rid,
                f"declared sha256 {d_sha} is not this file ({f_sha}), but the declared AutoV3 matches: "
                "same weights, different metadata",
                severity=Severity.LOW,
                **evidence,
            )
        ]
    if sha_differs:
        return [finding(rid, f"declaration covers sha256 {d_sha}; this file is {f_sha}", **evidence)]
    if v3_known and not v3_equal:
        return [finding(rid, f"declaration covers AutoV3 {d_v3}; this file's AutoV3 is {f_v3}", **evidence)]
    return []


# -- 2. image counts --------------------------------------------------------------------------------


def _declared_counts(doc: Mapping[str, Any], role: str) -> tuple[int, int | None, list[dict[str, Any]]]:
    """(Σ itemCount, Σ itemCount×repeats or None when any repeats are missing, per-dataset rows)."""
    rows = []
    total = 0
    with_repeats: int | None = 0
    for i, ds in enumerate(doc.get("datasets", [])):
        if ds.get("role", "training") != role:
            continue
        n, r = int(ds.get("itemCount", 0)), ds.get("repeats")
        rows.append({"dataset": f"$.datasets[{i}]", "name": ds.get("name"), "itemCount": n, "repeats": r})
        total += n
        with_repeats = None if with_repeats is None or r is None else with_repeats + n * int(r)
    return total, with_repeats, rows


def _embedded_dirs(facts: TrainingFacts, is_reg: bool) -> tuple[int | None, int | None, list[dict[str, Any]]]:
    """(Σ img_count, Σ img_count×n_repeats (None if any repeats unknown), per-dir rows) for one role."""
    dirs = [d for d in facts.datasets if d.is_reg == is_reg]
    counted = [d for d in dirs if d.img_count is not None]
    rows = [{"dir": d.name, "img_count": d.img_count, "n_repeats": d.n_repeats} for d in dirs]
    if not counted:
        return None, None, rows
    distinct = sum(int(d.img_count or 0) for d in counted)
    if all(d.n_repeats is not None for d in counted) and len(counted) == len(dirs):
        total: int | None = sum(int(d.img_count or 0) * int(d.n_repeats or 0) for d in counted)
    else:
        total = None
    return distinct, total, rows


@_check(
    "declaration.image-count.distinct",
    Severity.MEDIUM,
    "Declared number of distinct images differs from the training folders embedded in the file",
    "Σ itemCount of the declared datasets (by role: training or regularization) against Σ img_count of "
    "kohya ss_dataset_dirs / ss_datasets folders of the same role. img_count counts distinct images.",
)
def _check_distinct(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    if ev.facts is None:
        return []
    out = []
    for role, is_reg in (("training", False), ("regularization", True)):
        declared, _, drows = _declared_counts(doc, role)
        embedded, _, erows = _embedded_dirs(ev.facts, is_reg)
        if embedded is None:
            if role == "regularization" and declared and ev.facts.datasets:
                # the file lists its folders and none is a regularisation folder
                embedded = 0
            else:
                continue
        if not drows and embedded == 0:
            continue
        if declared != embedded:
            out.append(
                finding(
                    "declaration.image-count.distinct",
                    f"declaration says {declared} distinct {role} image(s); the file's training folders hold "
                    f"{embedded}",
                    role=role,
                    declared=declared,
                    embedded=embedded,
                    declared_datasets=drows,
                    embedded_dirs=erows,
                )
            )
    return out


@_check(
    "declaration.image-count.total",
    Severity.MEDIUM,
    "Declared images × repeats differ from the trainer's image count (which includes repeats)",
    "kohya ss_num_train_images (ss_num_reg_images for regularization) already multiplies each folder's "
    "images by its repeats. When every declared dataset of the role gives repeats, Σ itemCount×repeats "
    "must equal it; otherwise Σ itemCount (repeats ≥ 1) must not exceed it.",
)
def _check_total(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    if ev.facts is None:
        return []
    out = []
    for role, embedded_total in (
        ("training", ev.facts.num_train_images),
        ("regularization", ev.facts.num_reg_images),
    ):
        if embedded_total is None:
            continue
        declared, declared_total, rows = _declared_counts(doc, role)
        if not rows and embedded_total == 0:
            continue
        key = "ss_num_train_images" if role == "training" else "ss_num_reg_images"
        common: dict[str, Any] = {"role": role, "declared_datasets": rows, key: embedded_total}
        if declared_total is not None:
            if declared_total != embedded_total:
                out.append(
                    finding(
                        "declaration.image-count.total",
                        f"declared {role} images × repeats = {declared_total}; the file's {key} is "
                        f"{embedded_total}",
                        declared_images_x_repeats=declared_total,
                        **common,
                    )
                )
        elif declared > embedded_total:
            out.append(
                finding(
                    "declaration.image-count.total",
                    f"declaration says {declared} distinct {role} image(s), more than the {embedded_total} the "
                    f"trainer counted including repeats ({key})",
                    declared_images=declared,
                    **common,
                )
            )
    return out


# -- 3. base model -----------------------------------------------------------------------------------


def _declared_base_hashes(doc: Mapping[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {"sha256": set(), "autov1": set(), "autov2": set(), "autov3": set()}
    for b in doc.get("baseModels", []):
        for alg, v in b.get("hashes", {}).items():
            h = _hex(v)
            if h and alg in out:
                out[alg].add(h)
    return out


def _embedded_base_hashes(facts: TrainingFacts) -> tuple[dict[str, str], dict[str, str]]:
    """(usable {alg: hex}, ignored placeholders {alg: value})."""
    usable: dict[str, str] = {}
    ignored: dict[str, str] = {}
    for alg, v in facts.base_model_hashes.items():
        h = _hex(v)
        if h is None:
            continue
        if _is_placeholder(h):
            ignored[alg] = h
        else:
            usable[alg.lower()] = h
    return usable, ignored


def _hash_matches(alg: str, embedded: str, declared: dict[str, set[str]]) -> bool | None:
    """Whether an embedded base hash matches a declared one; None when nothing comparable is declared."""
    candidates: list[bool] = []
    if alg == "sha256":
        if declared["sha256"]:
            candidates.append(embedded in declared["sha256"])
        if declared["autov2"]:
            candidates.append(embedded[:10] in declared["autov2"])
    elif alg in {"autov1", "autov2", "autov3"}:
        if declared[alg]:
            if alg == "autov3":
                candidates.append(any(embedded.startswith(d) or d.startswith(embedded) for d in declared[alg]))
            else:
                candidates.append(embedded in declared[alg])
        if alg == "autov2" and declared["sha256"]:
            candidates.append(any(d.startswith(embedded) for d in declared["sha256"]))
    if not candidates:
        return None
    return any(candidates)


@_check(
    "declaration.base-model.missing",
    Severity.LOW,
    "The file names a base model; the declaration names none",
    "kohya ss_sd_model_name / ss_sd_model_hash / ss_new_sd_model_hash are present but the declaration "
    "has no baseModels.",
)
def _check_base_missing(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    if ev.facts is None or doc.get("baseModels"):
        return []
    usable, _ = _embedded_base_hashes(ev.facts)
    if not usable and not ev.facts.base_model_name:
        return []
    return [
        finding(
            "declaration.base-model.missing",
            f"the file says it was trained from {ev.facts.base_model_name or 'a base'}"
            + (f" ({', '.join(f'{k} {v}' for k, v in sorted(usable.items()))})" if usable else "")
            + "; the declaration names no base model",
            embedded_name=ev.facts.base_model_name,
            embedded_hashes=usable,
        )
    ]


@_check(
    "declaration.base-model.hash",
    Severity.HIGH,
    "Declared base-model hashes differ from the base hashes embedded in the file",
    "Each embedded base hash (kohya ss_new_sd_model_hash = SHA-256, ss_sd_model_hash = AutoV1) is "
    "compared with the declared base hashes of the same algorithm (SHA-256 also with AutoV2, its first "
    "10 hex). The empty-string SHA-256 (and its prefixes) that some trainers write is ignored.",
)
def _check_base_hash(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    if ev.facts is None or not doc.get("baseModels"):
        return []
    declared = _declared_base_hashes(doc)
    usable, ignored = _embedded_base_hashes(ev.facts)
    out = []
    for alg, h in sorted(usable.items()):
        if _hash_matches(alg, h, declared) is False:
            out.append(
                finding(
                    "declaration.base-model.hash",
                    f"the file's embedded base {alg} is {h}; no declared base model has it",
                    algorithm=alg,
                    embedded=h,
                    declared={k: sorted(v) for k, v in declared.items() if v},
                    embedded_name=ev.facts.base_model_name,
                    ignored_placeholders=ignored,
                )
            )
    return out


_NAME_ALIASES = [
    (re.compile(r"stable[\s_-]*diffusion"), "sd"),
    (re.compile(r"\bsdxl\b"), "sd xl"),
    (re.compile(r"\bsd(\d)"), r"sd \1"),
    (re.compile(r"\bv(\d)"), r"\1"),
]
_NAME_NOISE = {"safetensors", "ckpt", "pt", "bin", "pth", "fp16", "fp32", "bf16", "pruned", "emaonly", "ema", "only", "model"}


def _name_tokens(name: str) -> set[str]:
    base = re.split(r"[\\/]", name.strip())[-1]
    base = re.sub(r"\.(safetensors|ckpt|pt|pth|bin)$", "", base, flags=re.IGNORECASE).lower()
    for rx, rep in _NAME_ALIASES:
        base = rx.sub(rep, base)
    toks = re.findall(r"[a-z]+|\d+", base)
    return {t for t in toks if t not in _NAME_NOISE}


def base_names_match(declared: str, embedded: str) -> bool:
    """Loose comparison of free-text base names: ``sd_xl_base_1.0.safetensors`` matches
    ``Stable Diffusion XL 1.0 Base``; the smaller token set must lie within the larger."""
    a, b = _name_tokens(declared), _name_tokens(embedded)
    if not a or not b:
        return False
    small, big = (a, b) if len(a) <= len(b) else (b, a)
    return small <= big


@_check(
    "declaration.base-model.name",
    Severity.LOW,
    "Declared base-model name does not resemble the base name embedded in the file",
    "Only used when no base hash could be compared. Names are free text: the file's ss_sd_model_name "
    "(often a path) is compared with each declared base's fileName (exact file name) or name (tokens: "
    "'Stable Diffusion' = 'sd', version prefixes 'v' dropped, file extensions and 'pruned'/'fp16' ignored).",
)
def _check_base_name(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    if ev.facts is None or not doc.get("baseModels") or not ev.facts.base_model_name:
        return []
    declared_hashes = _declared_base_hashes(doc)
    usable, _ = _embedded_base_hashes(ev.facts)
    if any(_hash_matches(alg, h, declared_hashes) is not None for alg, h in usable.items()):
        return []  # the hash rule decides
    emb = ev.facts.base_model_name
    emb_file = re.split(r"[\\/]", emb.strip())[-1].lower()
    for b in doc.get("baseModels", []):
        if b.get("fileName") and b["fileName"].strip().lower() == emb_file:
            return []
        if base_names_match(b.get("name", ""), emb) or (b.get("fileName") and base_names_match(b["fileName"], emb)):
            return []
    names = [b.get("name") for b in doc.get("baseModels", [])]
    return [
        finding(
            "declaration.base-model.name",
            f"the file names its base {emb!r}; the declaration names {', '.join(repr(n) for n in names)}",
            embedded_name=emb,
            declared_names=names,
            declared_file_names=[b.get("fileName") for b in doc.get("baseModels", []) if b.get("fileName")],
        )
    ]


def _rb_hashes(rb: Mapping[str, Any]) -> dict[str, str]:
    return {alg: h for alg in ("sha256", "autov1", "autov2", "autov3") if (h := _hex(rb.get(alg)))}


def _rb_matches(rb: dict[str, str], hashes: Mapping[str, Iterable[str]]) -> bool:
    for alg, vals in hashes.items():
        mine = rb.get(alg)
        if mine is None:
            if alg == "autov2" and "sha256" in rb:
                mine = rb["sha256"][:10]
            else:
                continue
        if any(mine == v or (alg == "autov3" and (mine.startswith(v) or v.startswith(mine))) for v in vals):
            return True
    return False


@_check(
    "declaration.base-model.registered",
    Severity.HIGH,
    "The registered base model contradicts the declared base",
    "When the file's embedded base hash resolves to a model in the registry, that model's full set of "
    "hashes is compared with the declared base hashes; when a declared base is registered, its "
    "identified architecture is compared with the declared baseArchitecture.",
)
def _check_base_registered(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    if not ev.registered_bases:
        return []
    declared = _declared_base_hashes(doc)
    declared_nonempty = {k: v for k, v in declared.items() if v}
    embedded: dict[str, set[str]] = {}
    if ev.facts is not None:
        usable, _ = _embedded_base_hashes(ev.facts)
        embedded = {k: {v} for k, v in usable.items()}
    out = []
    declared_arch = doc.get("training", {}).get("baseArchitecture")
    for rb in ev.registered_bases:
        rbh = _rb_hashes(rb)
        if not rbh:
            continue
        by_embedded = _rb_matches(rbh, embedded)
        by_declared = _rb_matches(rbh, declared_nonempty)
        comparable = any(alg in rbh or (alg == "autov2" and "sha256" in rbh) for alg in declared_nonempty)
        if by_embedded and not by_declared and comparable:
            out.append(
                finding(
                    "declaration.base-model.registered",
                    f"the file's base hash points to registered model {rbh.get('sha256', next(iter(rbh.values())))}"
                    f"{' (' + str(rb['name']) + ')' if rb.get('name') else ''}; the declared base hashes are "
                    "different",
                    registered=dict(rbh, name=rb.get("name")),
                    declared={k: sorted(v) for k, v in declared_nonempty.items()},
                )
            )
        rarch = normalize_arch(rb.get("arch"))
        if by_declared and declared_arch and rarch and rarch != declared_arch:
            out.append(
                finding(
                    "declaration.base-model.registered",
                    f"the declared base is registered as a {rarch} model; the declaration says {declared_arch}",
                    registered=dict(rbh, name=rb.get("name"), arch=rb.get("arch")),
                    declared_arch=declared_arch,
                )
            )
    return out


# -- 4. architecture and method ------------------------------------------------------------------------

_ARCH_TABLE = {
    "sd1": {"sd1", "sd15", "sd1.5", "sd-1", "sd_1", "sd1x", "sd1.x", "sd_v1", "sdv1", "sd_1.5", "sd-v1",
            "stable-diffusion-v1", "stable-diffusion-v1-5", "sd_1.4", "sd14"},
    "sd2": {"sd2", "sd21", "sd2.1", "sd2.x", "sd2x", "sd-2", "sd_v2", "sdv2", "sd_2.1", "sd-v2",
            "stable-diffusion-v2", "stable-diffusion-v2-768-v", "stable-diffusion-v2-512"},
    "sdxl": {"sdxl", "sdxl-base", "sdxl_base", "sdxl-refiner", "sdxl_refiner", "sdxl_base_v1-0",
             "sdxl_base_v0-9", "stable-diffusion-xl-v1-base", "stable-diffusion-xl-v1-refiner",
             "stable-diffusion-xl-v0_9-base", "pony", "illustrious", "noobai"},
    "sd3": {"sd3", "sd3.5", "sd35", "sd3-medium", "sd3.5-large", "sd3_medium", "stable-diffusion-v3-medium",
            "stable-diffusion-v3.5-large", "stable-diffusion-3"},
    "flux1": {"flux", "flux1", "flux.1", "flux-1", "flux1-dev", "flux1-schnell", "flux-1-dev",
              "flux-1-schnell", "flux.1-dev", "flux.1-schnell", "flux1_dev", "flux1_schnell"},
}
_ARCH_LOOKUP = {alias: canon for canon, aliases in _ARCH_TABLE.items() for alias in aliases}
_UNKNOWN_WORDS = {"", "unknown", "none", "null", "?", "n/a"}


def normalize_arch(value: Any) -> str | None:
    """A declared/identified architecture name as ``sd1|sd2|sdxl|sd3|flux1|other``; None when unknown.

    Accepts ModelSpec names (``stable-diffusion-xl-v1-base/lora``), kohya ``ss_base_model_version``
    values and short forms; any other non-empty name is a named other family ("other")."""
    if not isinstance(value, str):
        return None
    s = value.strip().lower()
    s = s.split("/")[0]  # modelspec suffixes: /lora, /textual-inversion
    if s.startswith("other"):
        return "other"
    if s in _UNKNOWN_WORDS:
        return None
    if s in _ARCH_LOOKUP:
        return _ARCH_LOOKUP[s]
    if s.startswith(("sdxl", "stable-diffusion-xl")):
        return "sdxl"
    if s.startswith(("flux", "flux.1")):
        return "flux1"
    if s.startswith(("sd3", "stable-diffusion-v3", "stable-diffusion-3")):
        return "sd3"
    if s.startswith(("sd2", "stable-diffusion-v2", "sd_v2")):
        return "sd2"
    if s.startswith(("sd1", "stable-diffusion-v1", "sd_v1")):
        return "sd1"
    return "other"


@_check(
    "declaration.architecture",
    Severity.HIGH,
    "Declared base architecture differs from the architecture identified from the tensor shapes",
    "training.baseArchitecture against identification's arch (from keys and shapes). Nothing is reported "
    "when identification says unknown; an architecture identification took from metadata (source "
    "'metadata') is reported as low.",
)
def _check_arch(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    declared = doc.get("training", {}).get("baseArchitecture")
    if not declared or not ev.identification:
        return []
    raw = ev.identification.get("arch")
    found = normalize_arch(raw)
    if found is None or found == declared:
        return []
    from_metadata = ev.identification.get("source") == "metadata"
    return [
        finding(
            "declaration.architecture",
            f"declaration says {declared}; the "
            + ("file's metadata says" if from_metadata else "tensor shapes say")
            + f" {found} ({raw})",
            severity=Severity.LOW if from_metadata else None,
            declared=declared,
            identified=raw,
            identified_normalized=found,
            source=ev.identification.get("source") or "shapes",
        )
    ]


_FULL_KINDS = {"checkpoint", "full", "model", "unet", "diffusers", "diffusers-pipeline", "pipeline", "transformer"}
_EMBEDDING_KINDS = {"embedding", "textual-inversion", "textual_inversion", "ti"}
_ADAPTER_KINDS = {"lora", "lycoris", "adapter", "peft", "peft-adapter", "locon", "loha", "lokr", "dora", "ia3",
                  "glora", "oft", "boft"}
_ADAPTER_TYPES = {
    # identification's names (registry/identify.py) and common spellings
    "lora": "lora", "kohya-lora": "lora", "peft-lora": "lora", "diffusers-old-lora": "lora",
    "lora_diffusion": "lora", "xlabs-lora": "lora", "locon": "lora", "lora-conv": "lora", "kohya": "lora",
    "peft": "lora", "diffusers": "lora", "dylora": "lora",
    "dora": "dora", "loha": "loha", "hada": "loha", "lokr": "lokr", "ia3": "ia3", "glora": "glora",
    "oft": "oft", "boft": "oft", "diag-oft": "oft", "full": "full", "diff": "full", "full-diff": "full",
    "control-lora": "control",
}
#: which adapter types each declared LyCORIS algorithm can produce
_LYCORIS_ALGO_TYPES = {
    "locon": {"lora"}, "dylora": {"lora"}, "loha": {"loha"}, "lokr": {"lokr"}, "ia3": {"ia3"},
    "glora": {"glora"}, "diag-oft": {"oft"}, "boft": {"oft"}, "full": {"full"},
}


def _identified_form(ident: Mapping[str, Any]) -> tuple[str, str | None] | None:
    """(form, adapter type) with form in full|embedding|adapter|other; None when unknown."""
    kind = str(ident.get("kind") or "").strip().lower()
    at_raw = str(ident.get("adapter_type") or "").strip().lower()
    at = _ADAPTER_TYPES.get(at_raw) if at_raw else None
    if kind in _UNKNOWN_WORDS and not at:
        return None
    if kind in _FULL_KINDS:
        return "full", None
    if kind in _EMBEDDING_KINDS:
        return "embedding", None
    if kind in _ADAPTER_KINDS or at:
        return "adapter", at or _ADAPTER_TYPES.get(kind)
    return "other", None


def _metadata_identification(facts: TrainingFacts | None) -> dict[str, Any] | None:
    if facts is None or not facts.network_module:
        return None
    mod = facts.network_module.lower()
    if "lycoris" in mod:
        algo = str(facts.network_args.get("algo") or "locon").lower()
        return {"kind": "lycoris", "adapter_type": algo}
    if "lora" in mod or "dylora" in mod:
        return {"kind": "lora", "adapter_type": "lora"}
    return None


def _method_compatible(method: str, algo: str | None, form: str, at: str | None) -> bool:
    if method in {"lora", "dreambooth-lora"}:
        return form == "adapter" and at in {None, "lora", "dora"}
    if method == "lycoris":
        if form != "adapter":
            return False
        if algo and at:
            return at in _LYCORIS_ALGO_TYPES.get(algo, {at})
        return True
    if method in {"dreambooth", "full-finetune"}:
        return form == "full"
    if method == "textual-inversion":
        return form == "embedding"
    return True


@_check(
    "declaration.method",
    Severity.HIGH,
    "Declared training method differs from what the file is",
    "training.method (and lycorisAlgorithm) against identification's kind and adapter_type; when there is "
    "no identification, against the file's ss_network_module / network_args algo (reported as low: "
    "metadata is a claim).",
)
def _check_method(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    training = doc.get("training", {})
    method, algo = training.get("method"), training.get("lycorisAlgorithm")
    if not method or method == "other":
        return []
    source = "identification"
    ident = ev.identification
    form = _identified_form(ident) if ident else None
    if form is None:
        ident = _metadata_identification(ev.facts)
        form = _identified_form(ident) if ident else None
        source = "metadata"
    if form is None or ident is None:
        return []
    if _method_compatible(method, algo, form[0], form[1]):
        return []
    declared_text = method + (f" ({algo})" if algo else "")
    found_text = str(ident.get("kind")) + (f" / {ident.get('adapter_type')}" if ident.get("adapter_type") else "")
    return [
        finding(
            "declaration.method",
            f"declaration says {declared_text}; the file is {found_text} (from {source})",
            severity=Severity.LOW if source == "metadata" else None,
            declared_method=method,
            declared_algorithm=algo,
            identified={k: ident.get(k) for k in ("kind", "adapter_type", "arch") if ident.get(k) is not None},
            source=source,
        )
    ]


# -- 5. terms the captions used that the declaration never mentions ----------------------------------

#: share of a folder's captions a tag must appear in to count as a "frequent" training tag
FREQUENT_SHARE = 0.5
#: at most this many undeclared frequent tags are reported (the most frequent first)
MAX_TAG_FINDINGS = 20

#: Caption vocabulary that describes pictures in general, not a subject (booru "general" tags and
#: common natural-language caption words). A heuristic, deliberately small: see docs/declarations.md.
GENERIC_TAGS = frozenset(
    {
        # counts and framing
        "solo", "1girl", "2girls", "3girls", "4girls", "5girls", "6+girls", "multiple girls", "1boy",
        "2boys", "3boys", "4boys", "5boys", "6+boys", "multiple boys", "1other", "male focus",
        "female focus", "solo focus", "upper body", "full body", "cowboy shot", "portrait", "close-up",
        "from side", "from behind", "from above", "from below",
        # gaze, expression, pose
        "looking at viewer", "looking away", "looking back", "looking to the side", "looking up",
        "looking down", "smile", "open mouth", "closed mouth", "blush", "grin", "teeth", "tongue",
        "closed eyes", "parted lips", "standing", "sitting", "lying", "kneeling", "walking", "holding",
        "hand up", "arms up", "hands up",
        # setting
        "simple background", "outdoors", "indoors", "day", "night", "sky", "cloud", "tree", "grass",
        "water", "sunlight",
        # body and hair
        "long hair", "short hair", "medium hair", "very long hair", "bangs", "blunt bangs", "sidelocks",
        "ponytail", "twintails", "braid", "hair ornament", "hair between eyes", "ahoge", "lips", "makeup",
        "lipstick", "eyelashes", "breasts", "small breasts", "medium breasts", "large breasts", "cleavage",
        "collarbone", "navel", "midriff", "thighs", "bare shoulders",
        # clothing
        "shirt", "dress", "skirt", "jacket", "shorts", "pants", "hat", "gloves", "boots", "shoes", "socks",
        "thighhighs", "pantyhose", "long sleeves", "short sleeves", "jewelry", "earrings", "necklace",
        "choker", "bow", "ribbon", "hairband", "school uniform", "uniform", "swimsuit", "bikini", "underwear",
        # style and quality
        "realistic", "photorealistic", "photo", "photograph", "masterpiece", "best quality", "high quality",
        "highres", "absurdres", "lowres", "monochrome", "greyscale", "traditional media", "sketch", "comic",
        "signature", "watermark", "text",
        # plain words of natural-language captions
        "a", "an", "the", "of", "with", "and", "in", "on", "at", "man", "woman", "men", "women", "girl",
        "boy", "person", "people", "face",
    }
)
#: a tag "<colour or kind> <head>" is generic when its last word is one of these (e.g. "blue eyes")
GENERIC_HEADS = frozenset(
    {
        "hair", "eyes", "background", "shirt", "dress", "skirt", "jacket", "shorts", "pants", "hat",
        "gloves", "boots", "shoes", "socks", "thighhighs", "sleeves", "bow", "ribbon", "earrings",
        "necklace", "lips", "nails", "footwear", "headwear", "legwear", "bikini", "swimsuit", "sky",
    }
)


def normalize_term(text: str) -> str:
    """Lower case, booru escapes and underscores undone, punctuation to spaces, spaces collapsed."""
    s = text.lower().replace("\\(", "(").replace("\\)", ")").replace("_", " ")
    s = "".join(ch if ch.isalnum() or ch in "+" else " " for ch in s)
    return " ".join(s.split())


def is_generic_tag(tag: str) -> bool:
    t = normalize_term(tag)
    if not t or t in GENERIC_TAGS:
        return True
    words = t.split()
    return len(words) <= 3 and words[-1] in GENERIC_HEADS


def _strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def declaration_text(doc: Mapping[str, Any]) -> str:
    """Every string value of the declaration, normalised and joined (what 'mentioned' searches)."""
    return " ".join(normalize_term(s) for s in _strings(doc))


def is_mentioned(term: str, text: str, words: set[str] | None = None) -> bool:
    """A term is mentioned when its normalised phrase occurs in the normalised declaration text, or
    when every one of its significant words (3+ characters, or digits) does."""
    t = normalize_term(term)
    if not t:
        return True
    if f" {t} " in f" {text} ":
        return True
    words = words if words is not None else set(text.split())
    significant = [w for w in t.split() if len(w) >= 3 or w.isdigit()]
    return bool(significant) and all(w in words for w in significant)


def _folder_sizes(facts: TrainingFacts) -> dict[str, int]:
    return {d.name: int(d.img_count) for d in facts.datasets if d.img_count}


def frequent_tags(facts: TrainingFacts, share: float = FREQUENT_SHARE) -> list[dict[str, Any]]:
    """Tags present in at least ``share`` of a training folder's captions, most frequent first.

    A folder's caption count is its img_count from ss_dataset_dirs when known, else its most common
    tag's count (the trigger word usually appears in every caption)."""
    sizes = _folder_sizes(facts)
    best: dict[str, dict[str, Any]] = {}
    for folder, tags in facts.tag_frequency.items():
        if not tags:
            continue
        n = sizes.get(folder) or max(int(c) for c in tags.values())
        if n <= 0:
            continue
        for tag, count in tags.items():
            s = int(count) / n
            if s < share:
                continue
            key = normalize_term(tag)
            prev = best.get(key)
            if prev is None or s > prev["share"]:
                best[key] = {"tag": tag.strip(), "folder": folder, "count": int(count), "captions": n, "share": s}
    return sorted(best.values(), key=lambda r: (-r["share"], -r["count"], r["tag"]))


def _trigger_terms(facts: TrainingFacts) -> list[tuple[str, str]]:
    """(trigger word, where it came from) for the trigger rule: explicit ones (ModelSpec
    ``trigger_phrase``, class tokens …) and folder-name tokens. Trigger words that a parser inferred from
    frequent caption tags (source ``tags:…``) are left to the tag rule; generic words are skipped."""
    sources: Mapping[str, str] = getattr(facts, "trigger_sources", None) or {}
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for w in facts.trigger_words:
        key = normalize_term(w)
        src = str(sources.get(w, "metadata"))
        if not key or key in seen or src.startswith("tags:") or is_generic_tag(w):
            continue
        seen.add(key)
        out.append((w, src))
    return out


@_check(
    "declaration.undeclared-trigger-word",
    Severity.MEDIUM,
    "A trigger word of the model is not mentioned anywhere in the declaration",
    "Each trigger word the file carries (modelspec.trigger_phrase, class tokens, ai-toolkit trigger words; "
    "training-folder name tokens as low) is looked for in every text of the declaration (triggerWords, "
    "subject names and aliases, descriptions). Generic caption words and trigger words inferred from "
    "frequent tags are left to declaration.undeclared-tag.",
)
def _check_triggers(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    if ev.facts is None or not ev.facts.trigger_words:
        return []
    text = declaration_text(doc)
    words = set(text.split())
    out = []
    for w, src in _trigger_terms(ev.facts):
        if is_mentioned(w, text, words):
            continue
        from_folder = src.startswith("folder:")
        out.append(
            finding(
                "declaration.undeclared-trigger-word",
                f"trigger word {w!r}"
                + (f" (the name of training folder {src.removeprefix('folder:')!r})" if from_folder else "")
                + " is not mentioned in the declaration",
                severity=Severity.LOW if from_folder else None,
                term=w,
                source=src,
            )
        )
    return out


@_check(
    "declaration.undeclared-tag",
    Severity.LOW,
    "A frequent training-caption tag is not mentioned anywhere in the declaration",
    f"Tags in at least {FREQUENT_SHARE:.0%} of a training folder's captions (kohya ss_tag_frequency), "
    "except generic picture vocabulary (GENERIC_TAGS / '<colour> hair' forms) and trigger words, are "
    f"looked for in the declaration's texts; at most {MAX_TAG_FINDINGS} are reported. Such terms are "
    "usually how the captions named a subject.",
)
def _check_tags(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    if ev.facts is None or not ev.facts.tag_frequency:
        return []
    text = declaration_text(doc)
    words = set(text.split())
    triggers = {normalize_term(t) for t, _ in _trigger_terms(ev.facts)}
    missing = [
        r
        for r in frequent_tags(ev.facts)
        if not is_generic_tag(r["tag"]) and normalize_term(r["tag"]) not in triggers and not is_mentioned(r["tag"], text, words)
    ]
    out = []
    for r in missing[:MAX_TAG_FINDINGS]:
        out.append(
            finding(
                "declaration.undeclared-tag",
                f"tag {r['tag']!r} is in {r['count']} of {r['captions']} captions of folder {r['folder']!r} "
                f"({r['share']:.0%}) but the declaration never mentions it",
                term=r["tag"],
                folder=r["folder"],
                count=r["count"],
                captions=r["captions"],
                share=r["share"],
                not_reported=max(0, len(missing) - MAX_TAG_FINDINGS),
            )
        )
    return out


# -- 6. "no real persons" / "no characters" against the captions (and later the probe) ----------------

#: caption tags that show a human figure (drawn or photographed)
HUMAN_TAGS = frozenset(
    {
        "1girl", "2girls", "3girls", "4girls", "5girls", "6+girls", "multiple girls", "1boy", "2boys",
        "3boys", "4boys", "5boys", "6+boys", "multiple boys", "man", "woman", "men", "women", "girl", "boy",
        "person", "people", "male", "female", "lady", "guy", "child", "teenager", "human", "selfie",
        "face", "portrait", "old man", "old woman", "young woman", "young man",
    }
)
#: caption tags that say the picture is a photograph (or imitates one)
PHOTO_TAGS = frozenset(
    {
        "photo", "photograph", "photography", "photorealistic", "realistic", "real", "raw photo", "dslr",
        "real life", "real person", "celebrity", "portrait photo", "analog photo", "film photo",
        "film grain", "instagram", "candid", "paparazzi", "cosplay photo", "selfie",
    }
)
#: words that make a tag descriptive rather than a name ("anime coloring", "red scarf", "city street")
DESCRIPTIVE_WORDS = frozenset(
    {
        "anime", "coloring", "colouring", "style", "art", "artwork", "lineart", "shading", "lighting",
        "light", "dark", "color", "colour", "outfit", "uniform", "costume", "scarf", "coat", "city",
        "street", "room", "window", "table", "chair", "flower", "flowers", "black", "white", "red", "blue",
        "green", "yellow", "pink", "purple", "orange", "brown", "grey", "gray", "silver", "gold", "blonde",
        "long", "short", "big", "small", "open", "closed", "old", "young", "night", "day", "focus", "shot",
        "view", "depth", "field", "blurry", "detailed", "quality", "wearing", "holding", "looking",
    }
)
#: clothing, accessories, body parts, objects and picture terms: a tag with one of these words describes
#: what is shown ("center frills", "wrist cuffs", "wrist scrunchie", "coffee cup"), it does not name anyone
THING_WORDS = frozenset(
    {
        # clothing and accessories
        "frills", "frilled", "frill", "cuffs", "cuff", "scrunchie", "bowtie", "bow", "ribbon", "ribbons",
        "suspenders", "collar", "sleeves", "sleeve", "sleeveless", "skirt", "dress", "shirt", "blouse",
        "jacket", "hoodie", "sweater", "vest", "pants", "shorts", "jeans", "socks", "thighhighs",
        "pantyhose", "stockings", "shoes", "boots", "sneakers", "gloves", "glove", "hat", "cap", "beret",
        "hood", "necktie", "tie", "necklace", "earrings", "bracelet", "choker", "belt", "apron", "cape",
        "cloak", "armor", "bikini", "swimsuit", "leotard", "kimono", "hairband", "hairclip", "headband",
        "headphones", "glasses", "eyewear", "mask", "pom", "poms", "buttons", "button", "zipper",
        "pocket", "lace", "strap", "straps", "mittens", "wristband", "armband", "tiara", "crown",
        # body and hair
        "hair", "eyes", "eye", "ears", "ear", "tail", "mouth", "teeth", "lips", "hand", "hands", "arm",
        "arms", "leg", "legs", "finger", "fingers", "bangs", "ponytail", "twintails", "braid", "ahoge",
        "sidelocks", "wrist", "chest", "shoulder", "shoulders", "neck", "skin", "nose", "smile", "blush",
        # objects and scenery
        "cup", "mug", "bottle", "book", "phone", "microphone", "sword", "gun", "bag", "umbrella", "car",
        "tree", "trees", "sky", "cloud", "clouds", "water", "grass", "building", "wall", "floor", "bed",
        "stage", "star", "stars", "heart", "sun", "moon", "fruit", "food", "background", "indoors",
        "outdoors", "simple", "border", "frame", "signature", "watermark", "text", "logo", "sketch",
        "painting", "drawing", "illustration", "render", "monochrome", "greyscale", "traditional",
        "digital", "medium", "watercolor", "oil", "pastel", "cel", "chibi",
    }
)
#: booru qualifiers "(…)" that do not name a franchise or character
NON_CHARACTER_QUALIFIERS = frozenset(
    {"artist", "medium", "style", "object", "meme", "company", "organization", "food", "animal", "plant",
     "vehicle", "weapon", "place", "location", "photo", "real life", "cosplay photo"}
)
CHARACTER_WORDS = frozenset({"cosplay", "fanart", "fan art", "official art", "character", "crossover", "parody"})
_QUALIFIED_RE = re.compile(r"^(?P<name>.+?)\s*\((?P<qual>[^()]+)\)$")


def _tag_counts(facts: TrainingFacts) -> dict[str, int]:
    counts: dict[str, int] = {}
    for tags in facts.tag_frequency.values():
        for t, c in tags.items():
            counts[t.strip()] = counts.get(t.strip(), 0) + int(c)
    return counts


def person_indicators(facts: TrainingFacts) -> dict[str, dict[str, int]]:
    """Caption tags that a heuristic associates with real persons: ``human`` (human-figure tags),
    ``photographic`` (photographic-style tags) and ``unclassified_multiword`` (frequent tags of two or three
    plain words, in at least half a folder's captions, that are neither generic picture vocabulary nor
    contain a descriptive, clothing, body or object word). The last group is what a person's name would
    match, but so would many other tags: it says that the heuristic could not classify them, not that they
    are names."""
    counts = _tag_counts(facts)
    human = {t: c for t, c in counts.items() if normalize_term(t) in HUMAN_TAGS}
    photo = {t: c for t, c in counts.items() if normalize_term(t) in PHOTO_TAGS}
    unclassified: dict[str, int] = {}
    for r in frequent_tags(facts):
        tag = r["tag"]
        n = normalize_term(tag)
        words = n.split()
        if "(" in tag or is_generic_tag(tag) or n in HUMAN_TAGS or n in PHOTO_TAGS:
            continue
        if any(w in DESCRIPTIVE_WORDS or w in THING_WORDS for w in words):
            continue
        if 2 <= len(words) <= 3 and all(w.isalpha() and len(w) >= 2 for w in words):
            unclassified[tag] = r["count"]
    return {"human": human, "photographic": photo, "unclassified_multiword": unclassified}


def character_indicators(facts: TrainingFacts) -> dict[str, int]:
    """Tags that suggest fictional characters: booru ``name_(franchise)`` tags and words like 'cosplay'."""
    out: dict[str, int] = {}
    for t, c in _tag_counts(facts).items():
        n = t.lower().replace("\\(", "(").replace("\\)", ")").replace("_", " ").strip()
        m = _QUALIFIED_RE.match(n)
        qualified = m is not None and m.group("qual").strip() not in NON_CHARACTER_QUALIFIERS
        if qualified or normalize_term(t) in CHARACTER_WORDS:
            out[t] = c
    return out


def _all_datasets_say(doc: Mapping[str, Any], key: str, value: str) -> bool:
    ds = doc.get("datasets", [])
    return bool(ds) and all(d.get(key) == value for d in ds)


def _probe_hits(ev: Evidence, kind: str) -> list[dict[str, Any]]:
    if not ev.probe:
        return []
    hits = []
    for s in ev.probe.get("subjects", []) or []:
        if not isinstance(s, Mapping) or s.get("kind") != kind:
            continue
        score, thr = s.get("score"), s.get("threshold")
        if isinstance(score, int | float) and isinstance(thr, int | float) and score >= thr:
            hits.append(dict(s))
    return hits


@_check(
    "declaration.real-persons",
    Severity.MEDIUM,
    "The declaration says no real persons; the training captions (or the probe) suggest otherwise",
    "Applies when every dataset says depictsRealPersons: no. Reported when the captions have human-figure "
    "tags (HUMAN_TAGS) together with photographic tags (PHOTO_TAGS: medium severity) or frequent two- or "
    "three-word tags outside its descriptive, clothing, body and object vocabulary (low severity), or when "
    "the probe reports a person above its threshold (high). A heuristic on caption words, not a finding "
    "that a real person is depicted: drawn people carry the same human tags, an unclassified tag may be a "
    "name or anything else, and real names may look like anything.",
)
def _check_persons(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    if not _all_datasets_say(doc, "depictsRealPersons", "no"):
        return []
    out = []
    if ev.facts is not None and ev.facts.tag_frequency:
        ind = person_indicators(ev.facts)
        if ind["human"] and (ind["photographic"] or ind["unclassified_multiword"]):
            parts = [
                f"{label} ({', '.join(sorted(ind[key])[:5])})"
                for key, label in (
                    ("photographic", "photographic-style tags"),
                    ("unclassified_multiword", "frequent multi-word tags that the heuristic could not classify "
                                               "as descriptive (a name would match, so would other tags)"),
                )
                if ind[key]
            ]
            out.append(
                finding(
                    "declaration.real-persons",
                    "declaration says the data depicts no real persons; heuristic on caption tags, not a finding "
                    f"that a person is depicted: human-figure tags ({', '.join(sorted(ind['human'])[:5])}) occur "
                    "with " + " and with ".join(parts),
                    severity=None if ind["photographic"] else Severity.LOW,
                    source="captions",
                    indicators=ind,
                )
            )
    hits = _probe_hits(ev, "person")
    if hits:
        out.append(
            finding(
                "declaration.real-persons",
                f"declaration says the data depicts no real persons; the probe found {len(hits)} person "
                "subject(s) above threshold",
                severity=Severity.HIGH,
                source="probe",
                probe_subjects=hits,
            )
        )
    return out


@_check(
    "declaration.characters",
    Severity.MEDIUM,
    "The declaration says no characters; the training captions (or the probe) suggest otherwise",
    "Applies when every dataset says depictsCharacters: no. Reported when caption tags have the booru "
    "character form 'name_(franchise)' (qualifiers such as '(artist)' or '(medium)' excluded) or words "
    "such as 'cosplay' and 'fanart', or when the probe reports a character above its threshold (high).",
)
def _check_characters(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    if not _all_datasets_say(doc, "depictsCharacters", "no"):
        return []
    out = []
    if ev.facts is not None and ev.facts.tag_frequency:
        ind = character_indicators(ev.facts)
        if ind:
            out.append(
                finding(
                    "declaration.characters",
                    "declaration says the data depicts no characters; the captions have character tags "
                    f"({', '.join(sorted(ind)[:5])})",
                    source="captions",
                    indicators=ind,
                )
            )
    hits = _probe_hits(ev, "character")
    if hits:
        out.append(
            finding(
                "declaration.characters",
                f"declaration says the data depicts no characters; the probe found {len(hits)} character "
                "subject(s) above threshold",
                severity=Severity.HIGH,
                source="probe",
                probe_subjects=hits,
            )
        )
    return out


# -- 7. licence -----------------------------------------------------------------------------------

_LICENSE_ALIASES = {
    "creativeml-openrail-m": "creativeml-openrail-m",
    "openrail-m": "openrail-m",
    "openrail": "openrail",
    "openrail++": "openrail++",
    "openrail++-m": "openrail++",
    "apache": "apache-2.0",
    "apache2": "apache-2.0",
    "apache-2": "apache-2.0",
    "apache-license-2.0": "apache-2.0",
    "mit-license": "mit",
    "cc0": "cc0-1.0",
    "public-domain": "cc0-1.0",
    "gpl-3": "gpl-3.0-only",
    "gpl-3.0": "gpl-3.0-only",
}


def license_key(text: str) -> str:
    """A comparable key for one licence name, SPDX id or licence URL."""
    s = text.strip()
    low = s.lower()
    m = re.search(r"spdx\.org/licenses/([A-Za-z0-9.+-]+?)(?:\.html|\.json)?/?$", low)
    if m:
        low = m.group(1)
    m = re.search(r"creativecommons\.org/(licenses|publicdomain)/([a-z-]+)/(\d\.\d)", low)
    if m:
        low = "cc0-" + m.group(3) if m.group(2) == "zero" else f"cc-{m.group(2)}-{m.group(3)}"
    low = re.sub(r"[\s_]+", "-", low.strip(" .")).removesuffix("-license")
    if low.startswith("flux-1-dev-non-commercial") or low.startswith("flux-1-dev-license") or low in {"flux-1-dev", "flux1-dev"}:
        low = "flux-1-dev-non-commercial"
    return _LICENSE_ALIASES.get(low, low)


def _license_keys(expr: str) -> set[str]:
    try:
        ids = parse_spdx_expression(expr)
    except ValueError:
        return {license_key(expr)}
    return {license_key(i.split(":")[-1].removeprefix("LicenseRef-")) for i in ids} | {
        license_key(i.split(":")[-1]) for i in ids
    }


@_check(
    "declaration.license",
    Severity.MEDIUM,
    "Declared model licence differs from the licence embedded in the file (modelspec.license)",
    "model.license (an SPDX expression) against modelspec.license (free text, an SPDX id or a licence "
    "URL). Names are compared case-insensitively after mapping URLs (spdx.org, creativecommons.org) and "
    "common spellings ('Apache 2.0', 'CreativeML OpenRAIL-M') to SPDX ids. NOASSERTION on either side is "
    "not compared.",
)
def _check_license(doc: Mapping[str, Any], ev: Evidence) -> list[Finding]:
    declared = doc.get("model", {}).get("license")
    embedded = ev.facts.license if ev.facts is not None else None
    if not declared or not embedded or not embedded.strip():
        return []
    if declared.strip() == "NOASSERTION" or embedded.strip().upper() in {"NOASSERTION", "UNKNOWN", "NONE", "OTHER"}:
        return []
    ek = license_key(embedded)
    if ek == license_key(declared) or ek in _license_keys(declared) or _license_keys(embedded) & _license_keys(declared) == _license_keys(embedded):
        return []
    return [
        finding(
            "declaration.license",
            f"declaration says the model's licence is {declared!r}; the file says {embedded!r} (modelspec.license)",
            declared=declared,
            embedded=embedded,
        )
    ]


# ==================================================================================================
# Overfitting indicators
# ==================================================================================================


@dataclass(frozen=True)
class Indicator:
    """One transparent number: its formula, the inputs it was computed from, and where they came from."""

    id: str
    title: str
    #: None when an input is missing (``missing`` says which)
    value: float | int | None
    formula: str
    inputs: dict[str, Any]
    #: "embedded" (the file's training metadata) or "declared" (the declaration)
    source: str
    missing: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "value": self.value,
            "formula": self.formula,
            "inputs": self.inputs,
            "source": self.source,
            "missing": self.missing,
        }


def _ind(
    id: str, title: str, formula: str, source: str, inputs: dict[str, Any], compute: Callable[[], float | int]
) -> Indicator:
    missing = [k for k, v in inputs.items() if v is None]
    value: float | int | None = None
    if not missing:
        try:
            value = compute()
        except ZeroDivisionError:
            missing = [k for k, v in inputs.items() if v == 0]
    return Indicator(id, title, value, formula, inputs, source, missing)


def _schedule(epoch: int | None, epochs: int | None, steps: int | None, max_steps: int | None) -> tuple[int | None, str, int | None, str]:
    e, e_src = (epoch, "ss_epoch") if epoch is not None else (epochs, "ss_num_epochs")
    s, s_src = (steps, "ss_steps") if steps is not None else (max_steps, "ss_max_train_steps")
    return e, e_src, s, s_src


def overfitting_indicators(
    facts: TrainingFacts | None,
    doc: Mapping[str, Any] | None = None,
    n_parameters: int | None = None,
) -> list[Indicator]:
    """Indicators of how often each training image was used, from the embedded metadata and, where the
    declaration states the same quantities, from the declaration (separate rows, ``source`` says which).

    Each indicator is a formula over named inputs; a missing input gives ``value=None`` and names it.
    ``n_parameters`` (trainable parameters of the adapter, from the tensor table) adds parameters per
    image."""
    out: list[Indicator] = []
    if facts is not None:
        dirs = [d for d in facts.datasets if not d.is_reg]
        per_dir = {d.name: {"img_count": d.img_count, "n_repeats": d.n_repeats} for d in dirs}
        distinct = facts.distinct_images
        complete = bool(dirs) and all(d.img_count is not None and d.n_repeats is not None for d in dirs)
        per_epoch = sum(int(d.img_count or 0) * int(d.n_repeats or 0) for d in dirs) if complete else None
        epochs, e_src, steps, s_src = _schedule(facts.epoch, facts.epochs, facts.steps, facts.max_train_steps)
        rank = facts.network_dim
        src = "embedded"
        out.append(
            _ind("distinct_images", "Distinct training images", "Σ img_count over training folders (ss_dataset_dirs)",
                 src, {"distinct_images": distinct, "folders": per_dir or None}, lambda: int(distinct or 0))
        )
        ipe_title = "Images seen per epoch"
        if complete:
            out.append(
                _ind("images_per_epoch", ipe_title, "Σ img_count × n_repeats over training folders", src,
                     {"folders": per_dir}, lambda: int(per_epoch or 0))
            )
        elif facts.num_train_images is not None:
            # kohya's own count (already × repeats) stands in when the folders are not listed
            per_epoch = facts.num_train_images
            out.append(
                Indicator("images_per_epoch", ipe_title, per_epoch,
                          "ss_num_train_images (kohya: Σ img_count × n_repeats)",
                          {"ss_num_train_images": per_epoch}, src)
            )
        else:
            out.append(
                Indicator("images_per_epoch", ipe_title, None, "Σ img_count × n_repeats over training folders",
                          {"folders": None, "ss_num_train_images": None}, src, ["folders", "ss_num_train_images"])
            )
        out.append(
            _ind("trainer_image_count", "Images per epoch as the trainer counted them", "ss_num_train_images",
                 src, {"ss_num_train_images": facts.num_train_images}, lambda: int(facts.num_train_images or 0))
        )
        out.append(
            _ind("mean_repeats", "Repeats per image per epoch (mean)", "images_per_epoch / distinct_images",
                 src, {"images_per_epoch": per_epoch, "distinct_images": distinct},
                 lambda: (per_epoch or 0) / (distinct or 0))
        )
        out.append(
            _ind("epochs", "Epochs", f"{e_src}", src, {e_src: epochs}, lambda: int(epochs or 0))
        )
        out.append(
            _ind("exposures_per_image", "Times each distinct image was seen",
                 "images_per_epoch × epochs / distinct_images", src,
                 {"images_per_epoch": per_epoch, "epochs": epochs, "distinct_images": distinct},
                 lambda: (per_epoch or 0) * (epochs or 0) / (distinct or 0))
        )
        out.append(
            _ind("steps_per_distinct_image", "Optimiser steps per distinct image", f"{s_src} / distinct_images",
                 src, {s_src: steps, "distinct_images": distinct}, lambda: (steps or 0) / (distinct or 0))
        )
        out.append(
            _ind("samples_per_distinct_image", "Training samples per distinct image",
                 f"{s_src} × batch_size / distinct_images", src,
                 {s_src: steps, "batch_size": facts.batch_size, "distinct_images": distinct},
                 lambda: (steps or 0) * (facts.batch_size or 0) / (distinct or 0))
        )
        out.append(
            _ind("rank_per_image", "Network rank per distinct image", "ss_network_dim / distinct_images",
                 src, {"ss_network_dim": rank, "distinct_images": distinct}, lambda: (rank or 0) / (distinct or 0))
        )
        if n_parameters is not None:
            out.append(
                _ind("parameters_per_image", "Trainable parameters per distinct image",
                     "n_parameters / distinct_images", src,
                     {"n_parameters": n_parameters, "distinct_images": distinct},
                     lambda: n_parameters / (distinct or 0))
            )
    if doc is not None:
        out.extend(_declared_indicators(doc, facts))
    return out


def _declared_indicators(doc: Mapping[str, Any], facts: TrainingFacts | None) -> list[Indicator]:
    src = "declared"
    train = [d for d in doc.get("datasets", []) if d.get("role", "training") == "training"]
    distinct = sum(int(d.get("itemCount", 0)) for d in train) if train else None
    repeats_known = bool(train) and all(d.get("repeats") is not None for d in train)
    per_epoch = sum(int(d["itemCount"]) * int(d["repeats"]) for d in train) if repeats_known else None
    settings = doc.get("training", {}).get("settings", {})
    epochs, steps, rank, batch = (
        settings.get("epochs"), settings.get("maxTrainSteps"), settings.get("networkRank"), settings.get("batchSize")
    )
    per_ds = {d.get("name", f"#{i}"): {"itemCount": d.get("itemCount"), "repeats": d.get("repeats")} for i, d in enumerate(train)}
    out = [
        _ind("distinct_images", "Distinct training images", "Σ itemCount over training datasets", src,
             {"distinct_images": distinct, "datasets": per_ds or None}, lambda: int(distinct or 0)),
        _ind("images_per_epoch", "Images seen per epoch", "Σ itemCount × repeats over training datasets", src,
             {"datasets": per_ds if repeats_known else None}, lambda: int(per_epoch or 0)),
        _ind("exposures_per_image", "Times each distinct image was seen",
             "images_per_epoch × epochs / distinct_images", src,
             {"images_per_epoch": per_epoch, "epochs": epochs, "distinct_images": distinct},
             lambda: (per_epoch or 0) * (epochs or 0) / (distinct or 0)),
        _ind("steps_per_distinct_image", "Optimiser steps per distinct image", "maxTrainSteps / distinct_images",
             src, {"maxTrainSteps": steps, "distinct_images": distinct}, lambda: (steps or 0) / (distinct or 0)),
        _ind("samples_per_distinct_image", "Training samples per distinct image",
             "maxTrainSteps × batchSize / distinct_images", src,
             {"maxTrainSteps": steps, "batchSize": batch, "distinct_images": distinct},
             lambda: (steps or 0) * (batch or 0) / (distinct or 0)),
        _ind("rank_per_image", "Network rank per distinct image", "networkRank / distinct_images", src,
             {"networkRank": rank, "distinct_images": distinct}, lambda: (rank or 0) / (distinct or 0)),
    ]
    embedded = facts.distinct_images if facts is not None else None
    out.append(
        _ind("declared_vs_embedded_images", "Declared distinct images ÷ embedded distinct images",
             "Σ itemCount (declared) / Σ img_count (ss_dataset_dirs)", src,
             {"declared_distinct_images": distinct, "embedded_distinct_images": embedded},
             lambda: (distinct or 0) / (embedded or 0))
    )
    return out
