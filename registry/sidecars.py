"""Sidecar files written next to a model by download tools, read as claims and checked against the file.

* ``<stem>.civitai.info``: the Civitai model-version JSON saved by A1111's Civitai Helper and similar tools
  (``name``, ``baseModel``, ``trainedWords``, ``model{name,type,nsfw,poi}``, ``files[].hashes``).
* ``<stem>.cm-info.json``: Stability Matrix's "connected model info" (``ModelName``, ``VersionName``,
  ``BaseModel``, ``TrainedWords``, ``ModelId``, ``VersionId``, ``Hashes{SHA256,CRC32,BLAKE3}``).
* ``<stem>.json``: A1111's own user metadata for an extra network, written by its "edit metadata" dialog
  (``modules/ui_extra_networks_user_metadata.py`` ``write_user_metadata``; the LoRA page's keys in
  ``extensions-builtin/Lora/ui_edit_user_metadata.py``): ``description``, ``sd version`` (``SD1``, ``SD2``,
  ``SDXL`` or ``Unknown``), ``activation text``, ``preferred weight``, ``negative text``, ``notes``. It
  carries no hashes; its ``sd version`` is compared with the shapes like any base-model claim.

What a sidecar says is a claim, never a fact: its hashes are compared with the hashes the scan computed.
A mismatch means the file is not the one the sidecar describes (a different download, or a file edited
since: when only the tensor-data hash still matches, the metadata was rewritten).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.findings import Finding, Severity, finding, rule

R_SIDECAR_MISMATCH = rule(
    "sidecar.hash-mismatch",
    Severity.MEDIUM,
    "A sidecar's hashes do not match the model file next to it",
    "The file is not the one the sidecar describes: a different or corrupted download, or a file replaced "
    "after the sidecar was written. Do not trust the sidecar's name, base model or trigger words for it.",
)
R_SIDECAR_EDITED = rule(
    "sidecar.file-edited",
    Severity.LOW,
    "The model file was edited after download: its tensor data matches the sidecar, its bytes do not",
    "AutoV3 (tensor data) matches while SHA-256 differs: the weights are the same but the header (metadata) "
    "was rewritten, e.g. by a metadata editor.",
)
R_SIDECAR_UNREADABLE = rule(
    "sidecar.unreadable", Severity.LOW, "A sidecar file could not be read as the JSON its name promises"
)

R_SIDECAR_BASE = rule(
    "sidecar.base-model-mismatch",
    Severity.MEDIUM,
    "A sidecar names a base model of another architecture than the file's tensor shapes show",
    "The sidecar's baseModel (e.g. 'SDXL 1.0') maps to one architecture family and modelreg's identification "
    "from tensor shapes, with high confidence, to another. Either the sidecar belongs to another file or the "
    "publisher labelled the model wrongly; filter and reuse by the shapes, not the label.",
)

#: sidecar name suffix -> kind
#: (``.json`` last: ``x.cm-info.json`` is Stability Matrix's, never A1111's ``x.cm-info`` metadata)
SIDECAR_SUFFIXES = {".civitai.info": "civitai-info", ".cm-info.json": "cm-info", ".json": "a1111-json"}
#: the keys of A1111's user metadata; a ``<stem>.json`` with none of them is not A1111's
A1111_JSON_KEYS = ("description", "sd version", "activation text", "preferred weight", "negative text", "notes")
#: the hash names sidecars use, mapped to the registry's columns
_HASH_KEYS = {
    "sha256": "sha256",
    "autov1": "autov1",
    "autov2": "autov2",
    "autov3": "autov3",
    "blake3": "blake3",
    "crc32": "crc32",
}
#: largest sidecar read (they are a few kB; Civitai descriptions can be long)
MAX_SIDECAR_BYTES = 8 << 20


class NotASidecar(ValueError):
    """A ``<stem>.json`` that is JSON but not A1111's user metadata: not a sidecar, and not a problem."""


@dataclass(frozen=True)
class SidecarClaims:
    kind: str
    path: str
    name: str | None = None
    version_name: str | None = None
    creator: str | None = None
    base_model: str | None = None
    model_type: str | None = None
    model_id: int | None = None
    version_id: int | None = None
    nsfw: bool | None = None
    poi: bool | None = None
    trained_words: tuple[str, ...] = ()
    #: hashes claimed for this file, keyed like the registry's columns (sha256, autov2, crc32 …), lower-case hex
    hashes: dict[str, str] = field(default_factory=dict)
    #: the file name the sidecar says its hashes belong to, when it names one
    file_name: str | None = None
    #: A1111 user metadata: the prompt text that activates the network, its preferred weight, negative text
    activation_text: str | None = None
    preferred_weight: float | None = None
    negative_text: str | None = None
    description: str | None = None

    def as_dict(self) -> dict[str, Any]:
        a1111 = {
            "activation_text": self.activation_text,
            "preferred_weight": self.preferred_weight,
            "negative_text": self.negative_text,
            "description": self.description,
        }
        return {
            "kind": self.kind,
            "path": self.path,
            "name": self.name,
            "version_name": self.version_name,
            "creator": self.creator,
            "base_model": self.base_model,
            "model_type": self.model_type,
            "model_id": self.model_id,
            "version_id": self.version_id,
            "nsfw": self.nsfw,
            "poi": self.poi,
            "trained_words": list(self.trained_words),
            "hashes": dict(self.hashes),
            "file_name": self.file_name,
        } | (a1111 if self.kind == "a1111-json" else {})


def sidecar_for(name: str) -> tuple[str, str] | None:
    """``(stem, kind)`` when ``name`` is a sidecar's file name, else None (the longest suffix wins)."""
    low = name.lower()
    for suffix, kind in SIDECAR_SUFFIXES.items():
        if low.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], kind
    return None


def find_sidecars(model_path: Path, names_in_dir: set[str] | None = None) -> list[tuple[str, Path]]:
    """Sidecars of a model file: ``(kind, path)`` for ``<stem>.civitai.info`` and ``<stem>.cm-info.json``.

    ``names_in_dir`` (the folder's entries, listed once by the caller) avoids a stat per candidate.
    """
    stem = model_path.stem
    out: list[tuple[str, Path]] = []
    for suffix, kind in SIDECAR_SUFFIXES.items():
        name = stem + suffix
        present = name in names_in_dir if names_in_dir is not None else (model_path.parent / name).is_file()
        if present:
            out.append((kind, model_path.parent / name))
    return out


def _s(v: Any) -> str | None:
    return v.strip() if isinstance(v, str) and v.strip() else None


def _i(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _b(v: Any) -> bool | None:
    return v if isinstance(v, bool) else None


def _words(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list):
        return ()
    return tuple(w.strip() for w in v if isinstance(w, str) and w.strip())


def _hashes(v: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if not isinstance(v, dict):
        return out
    for k, val in v.items():
        key = _HASH_KEYS.get(str(k).lower())
        if key and isinstance(val, str) and val.strip():
            out[key] = val.strip().lower().removeprefix("0x")
    return out


def _pick_file(files: list[Any], model_name: str | None) -> dict[str, Any] | None:
    files = [f for f in files if isinstance(f, dict)]
    if not files:
        return None
    if model_name:
        for f in files:
            if f.get("name") == model_name:
                return f
    for f in files:
        if f.get("primary"):
            return f
    return files[0]


def parse_sidecar(kind: str, path: Path, model_name: str | None = None) -> SidecarClaims:
    """Read one sidecar. Raises ``ValueError`` with a clear message when it is not the JSON it should be."""
    with open(path, "rb") as fh:
        raw = fh.read(MAX_SIDECAR_BYTES + 1)
    if len(raw) > MAX_SIDECAR_BYTES:
        raise ValueError(f"{path.name} is larger than {MAX_SIDECAR_BYTES >> 20} MiB; not a sidecar")
    try:
        doc = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path.name} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path.name}: expected a JSON object, found {type(doc).__name__}")
    if kind == "civitai-info":
        model_v = doc.get("model")
        model: dict[str, Any] = model_v if isinstance(model_v, dict) else {}
        creator = doc.get("creator") if isinstance(doc.get("creator"), dict) else model.get("creator")
        files_v = doc.get("files")
        files: list[Any] = files_v if isinstance(files_v, list) else []
        chosen = _pick_file(files, model_name)
        return SidecarClaims(
            kind=kind,
            path=str(path),
            name=_s(model.get("name")),
            version_name=_s(doc.get("name")),
            creator=_s(creator.get("username")) if isinstance(creator, dict) else _s(creator),
            base_model=_s(doc.get("baseModel")),
            model_type=_s(model.get("type")),
            model_id=_i(doc.get("modelId")),
            version_id=_i(doc.get("id")),
            nsfw=_b(model.get("nsfw")),
            poi=_b(model.get("poi")),
            trained_words=_words(doc.get("trainedWords")),
            hashes=_hashes(chosen.get("hashes")) if chosen else {},
            file_name=_s(chosen.get("name")) if chosen else None,
        )
    if kind == "cm-info":
        return SidecarClaims(
            kind=kind,
            path=str(path),
            name=_s(doc.get("ModelName")),
            version_name=_s(doc.get("VersionName")),
            creator=_s(doc.get("Creator")) or _s(doc.get("CreatorName")),
            base_model=_s(doc.get("BaseModel")),
            model_type=_s(doc.get("ModelType")) if isinstance(doc.get("ModelType"), str) else None,
            model_id=_i(doc.get("ModelId")),
            version_id=_i(doc.get("VersionId")),
            nsfw=_b(doc.get("Nsfw")),
            trained_words=_words(doc.get("TrainedWords")),
            hashes=_hashes(doc.get("Hashes")),
        )
    if kind == "a1111-json":
        if not any(k in doc for k in A1111_JSON_KEYS):
            raise NotASidecar(f"{path.name} has none of A1111's user-metadata keys ({', '.join(A1111_JSON_KEYS)})")
        sd = _s(doc.get("sd version"))
        weight = doc.get("preferred weight")
        activation = _s(doc.get("activation text"))
        return SidecarClaims(
            kind=kind,
            path=str(path),
            base_model=sd if sd and sd.lower() != "unknown" else None,
            trained_words=(activation,) if activation else (),
            activation_text=activation,
            preferred_weight=float(weight) if isinstance(weight, int | float) and not isinstance(weight, bool) and weight else None,
            negative_text=_s(doc.get("negative text")),
            description=_s(doc.get("description")),
        )
    raise ValueError(f"unknown sidecar kind {kind!r}")


def _crc_matches(claimed: str, zlib_hex: str) -> bool:
    """Civitai prints CRC32's four bytes reversed relative to zlib's value; accept either order."""
    try:
        return claimed == zlib_hex or claimed == bytes.fromhex(zlib_hex)[::-1].hex()
    except ValueError:
        return False


def hash_agreement(claims: SidecarClaims, computed: dict[str, str | None]) -> dict[str, bool]:
    """For each hash both the sidecar and the scan have: does it agree? (AutoV3 claims may be a prefix.)"""
    out: dict[str, bool] = {}
    for key, claimed in claims.hashes.items():
        actual = computed.get(key)
        if key == "autov2" and not actual and computed.get("sha256"):
            actual = (computed["sha256"] or "")[:10]
        if not actual:
            continue
        actual = actual.lower()
        if key == "crc32":
            out[key] = _crc_matches(claimed, actual)
        elif key == "autov3":
            out[key] = len(claimed) >= 8 and actual.startswith(claimed)
        else:
            out[key] = claimed == actual
    return out


def compare(claims: SidecarClaims, computed: dict[str, str | None], model_path: str) -> tuple[str, list[Finding]]:
    """Check a sidecar's hashes against the computed ones.

    Returns ``(verdict, findings)``; verdict is ``match``, ``mismatch``, ``edited`` (tensor data matches,
    file bytes do not) or ``no-hashes`` (nothing comparable).
    """
    agree = hash_agreement(claims, computed)
    if not agree:
        return "no-hashes", []
    if all(agree.values()):
        return "match", []
    disagree = sorted(k for k, ok in agree.items() if not ok)
    evidence: dict[str, Any] = {
        "sidecar": claims.path,
        "kind": claims.kind,
        "claimed": {k: claims.hashes[k] for k in disagree},
        "computed": {k: computed.get(k) for k in disagree},
        "agree": sorted(k for k, ok in agree.items() if ok),
    }
    label = Path(claims.path).name
    # a whole-file CRC32 that matches says the bytes did not change, so "edited" would contradict it; a
    # 32-bit checksum is also easy to match by accident or on purpose, so it never vouches for the file
    if agree.get("autov3") is True and agree.get("crc32") is not True:
        return "edited", [
            finding(
                R_SIDECAR_EDITED.id,
                f"{label} describes this file's weights (AutoV3 matches) but not its bytes "
                f"({', '.join(disagree)} differ): the file was edited after download",
                **evidence,
            )
        ]
    what = f"{claims.name!r}" + (f" {claims.version_name!r}" if claims.version_name else "") if claims.name else "a model"
    crc_note = ""
    if agree.get("crc32") is True:
        crc_note = (
            "; only its 32-bit CRC32 matches, which any edit can preserve and which does not identify a file, "
            "so the sidecar's hashes contradict each other"
        )
    return "mismatch", [
        finding(
            R_SIDECAR_MISMATCH.id,
            f"{label} says this is {what}, but its {', '.join(disagree)} do not match {Path(model_path).name}"
            + crc_note,
            **evidence,
        )
    ]


#: Civitai baseModel labels (lower-case prefixes) → architecture family as identification names it.
#: Order matters: longer, more specific prefixes first. Labels not listed (Wan, Hunyuan, Pony V7 …) are
#: not compared.
_BASE_FAMILIES: tuple[tuple[str, str], ...] = (
    ("pony v7", ""),  # AuraFlow-based, unlike earlier Pony releases
    ("sd 1.", "sd1"),
    ("sd 2.", "sd2"),
    ("sd1", "sd1"),  # A1111's user metadata: SD1, SD2, SDXL
    ("sd2", "sd2"),
    ("sdxl", "sdxl"),
    ("pony", "sdxl"),
    ("illustrious", "sdxl"),
    ("noobai", "sdxl"),
    ("sd 3", "sd3"),
    ("flux.1", "flux1"),
)


def base_family(label: str | None) -> str | None:
    """The architecture family a sidecar's base-model label names, or None when it is not one we compare."""
    if not label:
        return None
    text = label.strip().lower()
    for prefix, family in _BASE_FAMILIES:
        if text.startswith(prefix):
            return family or None
    return None


def _identity_family(arch: str) -> str:
    return "sdxl" if arch.startswith("sdxl") else arch


def compare_base_model(claims: SidecarClaims, identity: dict[str, Any] | None) -> list[Finding]:
    """A finding when the sidecar's base model and the shapes' architecture (high confidence) disagree."""
    claimed = base_family(claims.base_model)
    if claimed is None or not identity:
        return []
    arch = str(identity.get("arch") or "")
    if not arch or arch == "unknown" or identity.get("source") != "shapes" or identity.get("confidence") != "high":
        return []
    found = _identity_family(arch)
    if found == claimed:
        return []
    return [
        finding(
            R_SIDECAR_BASE.id,
            f"{Path(claims.path).name} says the base model is {claims.base_model!r} ({claimed}); the tensor shapes "
            f"say {arch}",
            sidecar=claims.path,
            claimed_base=claims.base_model,
            claimed_family=claimed,
            arch=arch,
        )
    ]


def unreadable(path: Path, why: str) -> Finding:
    return finding(R_SIDECAR_UNREADABLE.id, why, sidecar=str(path))
